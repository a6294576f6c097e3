//! PEP across servers by `+notify` (XEP-0163 4.3, XEP-0115): a contact on another server
//! whose client's caps ask for a node gets the owner's events without subscribing, as
//! stock clients expect (avatars, nicknames, OMEMO device lists), and its last item when
//! the interest becomes known. Two hydrant servers on loopback, as in wire_federation.rs.

mod common;

use common::caps::{announce_caps, answer_caps_query, caps_query, caps_ver};
use common::federation::{free_port, online, s2s};
use common::pubsub::{entry, publish};
use common::{Server, befriend};
use hydrant_proto::{Element, ns};

const NODE: &str = "urn:example:mood";

/// A PEP event of `NODE` from `from` carrying item `id`.
fn event(from: &str, id: &str) -> impl Fn(&Element) -> bool + use<> {
    let (from, id) = (from.to_owned(), id.to_owned());
    move |e| {
        e.name() == "message"
            && e.attr("from") == Some(from.as_str())
            && e.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
                .is_some_and(|items| {
                    items.attr("node") == Some(NODE)
                        && items
                            .get_child("item", ns::PUBSUB_EVENT)
                            .is_some_and(|i| i.attr("id") == Some(id.as_str()))
                })
    }
}

fn any_event(e: &Element) -> bool {
    e.name() == "message" && e.get_child("event", ns::PUBSUB_EVENT).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_contact_gets_pep_events_by_its_caps() {
    let (pa, pb) = (free_port(), free_port());
    let sa = Server::start_domain("a.test", &s2s(pa, "b.test", pb)).await;
    let sb = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    let mut alice = online(&sa, "alice").await;
    let mut bob = online(&sb, "bob").await;
    let mut carol = online(&sb, "carol").await;
    befriend(&mut alice, &mut bob).await;

    // Alice publishes before bob's interest is known: nothing reaches him.
    publish(&mut alice, "alice@a.test", NODE, "m1", &entry("happy")).await;

    // Bob's client announces caps with NODE+notify. Its own server asks it (from b.test),
    // and so does alice's, on alice's behalf (from her bare JID), having received his
    // presence as her contact.
    let features = vec![
        "http://jabber.org/protocol/caps".to_owned(),
        ns::DISCO_INFO.to_owned(),
        format!("{NODE}+notify"),
    ];
    let ver = caps_ver(&features);
    announce_caps(&mut bob, &ver).await;
    answer_caps_query(&mut bob, "b.test", &ver, &features).await;
    answer_caps_query(&mut bob, "alice@a.test", &ver, &features).await;

    // XEP-0163 4.3.4: the last item once the interest is known, then each new one.
    bob.expect("alice's last item", event("alice@a.test", "m1"))
        .await;
    publish(&mut alice, "alice@a.test", NODE, "m2", &entry("sleepy")).await;
    let m = bob
        .expect("alice's next item", event("alice@a.test", "m2"))
        .await;
    assert_eq!(m.attr("to"), Some("bob@b.test/phone"), "{m}");

    // Carol is not alice's contact: the same caps in directed presence to alice get no
    // query from alice's side and no events.
    carol
        .send(&format!(
            "<presence to='alice@a.test'><c xmlns='{}' hash='sha-1' \
             node='{}' ver='{ver}'/></presence>",
            ns::CAPS,
            common::caps::CAPS_NODE
        ))
        .await;
    // Bob's answer is cached by `ver` at a.test: a second resource of his with the same
    // caps needs no query and gets the last item at once; its presence crossing after
    // carol's means carol's has been handled by then (one stream, in order).
    let mut bob2 = sb.online("bob", common::pubsub::PW, "tablet").await;
    bob2.send_presence(&format!(
        "<c xmlns='{}' hash='sha-1' node='{}' ver='{ver}'/>",
        ns::CAPS,
        common::caps::CAPS_NODE
    ))
    .await;
    bob2.expect("alice's last item, at once", event("alice@a.test", "m2"))
        .await;
    publish(&mut alice, "alice@a.test", NODE, "m3", &entry("awake")).await;
    bob.expect("m3 at the first resource", event("alice@a.test", "m3"))
        .await;
    bob2.expect("m3 at the second resource", event("alice@a.test", "m3"))
        .await;
    carol.sync().await;
    carol.assert_none(
        "a query from alice's side",
        caps_query("alice@a.test", &ver),
    );
    carol.assert_none("an event without being a contact", any_event);

    // Unavailable: that resource is forgotten; the other still gets events.
    bob2.send("<presence type='unavailable'/>").await;
    bob2.close().await;
    publish(&mut alice, "alice@a.test", NODE, "m4", &entry("busy")).await;
    bob.expect("m4", event("alice@a.test", "m4")).await;
}
