//! Fan-out semantics over the wire (XEP-0060 and XEP-0163 on `pubsub.localhost` and PEP):
//! bare- and full-JID subscribers, presence-based delivery, several subscriptions of one
//! JID (SHIM SubID headers), notification types, payload-less notifications, the last
//! item on subscription, and PEP delivery through entity capabilities (XEP-0115),
//! verified (cached for every session with the same `ver`) and unverifiable (that
//! session only).

mod common;

use common::pubsub::{PW, assert_result, entry, publish, users};

use std::fmt::Write as _;

use common::caps::{announce_caps, answer_caps_query, caps_ver};
use common::{Client, DOMAIN, Server, befriend, is_reply, new_id};
use hydrant_proto::{Element, ns};

const SVC: &str = "pubsub.localhost";
const SHIM: &str = "http://jabber.org/protocol/shim";
const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
const SUBSCRIBE_OPTIONS: &str = "http://jabber.org/protocol/pubsub#subscribe_options";
const TUNE: &str = "http://jabber.org/protocol/tune";

// --- Helpers ----------------------------------------------------------------------------

/// A submitted data form.
fn form(form_type: &str, fields: &[(&str, &[&str])]) -> String {
    let mut x = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>{form_type}</value></field>"
    );
    for (var, values) in fields {
        let _ = write!(x, "<field var='{var}'>");
        for v in *values {
            let _ = write!(x, "<value>{v}</value>");
        }
        x.push_str("</field>");
    }
    x.push_str("</x>");
    x
}

/// Creates `node` on the component with these `pubsub#…` settings.
async fn create_node(c: &mut Client, node: &str, config: &[(&str, &str)]) {
    let fields: Vec<(&str, [&str; 1])> = config.iter().map(|(k, v)| (*k, [*v])).collect();
    let fields: Vec<(&str, &[&str])> = fields.iter().map(|(k, v)| (*k, &v[..])).collect();
    let configure = if fields.is_empty() {
        String::new()
    } else {
        format!("<configure>{}</configure>", form(NODE_CONFIG, &fields))
    };
    let res = c
        .iq(
            "set",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{}'><create node='{node}'/>{configure}</pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, &format!("create {node}"));
}

/// Subscribes `jid` to `node`; returns the SubID.
async fn subscribe(c: &mut Client, node: &str, jid: &str, options: Option<&str>) -> String {
    let sub = common::pubsub::subscribe(c, SVC, node, jid, options).await;
    assert_eq!(sub.attr("jid"), Some(jid), "{sub}");
    sub.attr("subid")
        .unwrap_or_else(|| panic!("no subid: {sub}"))
        .to_owned()
}

fn tune(title: &str) -> String {
    format!("<tune xmlns='{TUNE}'><title>{title}</title></tune>")
}

/// The `<items/>` of a pubsub event message.
fn event_items(m: &Element) -> Option<&Element> {
    if m.name() != "message" {
        return None;
    }
    m.get_child("event", ns::PUBSUB_EVENT)?
        .get_child("items", ns::PUBSUB_EVENT)
}

/// An event message from `from` about `node` carrying item `id`.
fn event(from: &str, node: &str, id: &str) -> impl Fn(&Element) -> bool + use<> {
    let (from, node, id) = (from.to_owned(), node.to_owned(), id.to_owned());
    move |m: &Element| {
        m.attr("from") == Some(from.as_str())
            && event_items(m).is_some_and(|items| {
                items.attr("node") == Some(node.as_str())
                    && items.children().any(|i| {
                        i.is("item", ns::PUBSUB_EVENT) && i.attr("id") == Some(id.as_str())
                    })
            })
    }
}

/// Any event message about `node`.
fn any_event(node: &str) -> impl Fn(&Element) -> bool + use<> {
    let node = node.to_owned();
    move |m: &Element| event_items(m).is_some_and(|items| items.attr("node") == Some(node.as_str()))
}

/// The single `<item/>` of an event message.
fn the_item(m: &Element) -> &Element {
    let items: Vec<&Element> = event_items(m)
        .unwrap_or_else(|| panic!("not an event: {m}"))
        .children()
        .filter(|i| i.is("item", ns::PUBSUB_EVENT))
        .collect();
    assert_eq!(items.len(), 1, "one item: {m}");
    items[0]
}

/// The SubIDs of the SHIM headers of a message, sorted.
fn shim_subids(m: &Element) -> Vec<String> {
    let mut ids: Vec<String> = m
        .get_child("headers", SHIM)
        .map(|h| {
            h.children()
                .filter(|c| c.is("header", SHIM) && c.attr("name") == Some("SubID"))
                .map(Element::text)
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

// --- XEP-0060 on the component --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bare_jid_subscriber_gets_every_available_resource_full_jid_only_its_own() {
    let server = Server::start().await;
    users(&server, &["owner", "alice", "bob"]);
    let mut owner = server.online("owner", PW, "desk").await;
    let mut a1 = server.online("alice", PW, "a1").await;
    let mut a2 = server.online("alice", PW, "a2").await;
    // Bound but never available: bare-JID delivery skips it (RFC 6121 8.5.2.1.1).
    let mut a3 = server.login("alice", PW, "a3").await;
    let mut b1 = server.online("bob", PW, "b1").await;
    let mut b2 = server.online("bob", PW, "b2").await;

    create_node(&mut owner, "news", &[]).await;
    let alice = a1.bare();
    subscribe(&mut a1, "news", &alice, None).await;
    let b1_full = b1.jid.clone();
    subscribe(&mut b1, "news", &b1_full, None).await;

    publish(&mut owner, SVC, "news", "n1", &entry("first")).await;

    for c in [&mut a1, &mut a2] {
        let m = c.expect("the notification", event(SVC, "news", "n1")).await;
        assert_eq!(
            m.attr("to"),
            Some(alice.as_str()),
            "addressed to the subscribed JID: {m}"
        );
        assert_eq!(m.attr("type"), Some("headline"), "the default type: {m}");
        let item = the_item(&m);
        assert!(
            item.get_child("entry", "urn:example:news").is_some(),
            "payload delivered: {m}"
        );
        assert!(
            m.get_child("headers", SHIM).is_none(),
            "one subscription, no SHIM: {m}"
        );
    }
    let m = b1
        .expect("the notification", event(SVC, "news", "n1"))
        .await;
    assert_eq!(m.attr("to"), Some(b1_full.as_str()), "{m}");
    for c in [&mut a1, &mut a2, &mut a3, &mut b1, &mut b2, &mut owner] {
        c.sync().await;
        c.assert_none("a (second) notification", any_event("news"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_based_delivery_skips_unavailable_subscribers() {
    let server = Server::start().await;
    users(&server, &["owner", "carol", "dave"]);
    let mut owner = server.online("owner", PW, "desk").await;
    // Carol's session is bound but sent no initial presence.
    let mut carol = server.login("carol", PW, "c1").await;
    let mut dave = server.online("dave", PW, "d1").await;

    create_node(&mut owner, "pb", &[("pubsub#presence_based_delivery", "1")]).await;
    create_node(&mut owner, "np", &[]).await;
    let (carol_full, dave_full) = (carol.jid.clone(), dave.jid.clone());
    subscribe(&mut carol, "pb", &carol_full, None).await;
    subscribe(&mut carol, "np", &carol_full, None).await;
    subscribe(&mut dave, "pb", &dave_full, None).await;

    publish(&mut owner, SVC, "pb", "p1", &entry("presence-based")).await;
    publish(&mut owner, SVC, "np", "q1", &entry("always")).await;
    dave.expect("pb notification", event(SVC, "pb", "p1")).await;
    // A full-JID subscription reaches that resource whatever its presence...
    carol
        .expect("np notification", event(SVC, "np", "q1"))
        .await;
    // ...unless the node delivers on presence only.
    carol.sync().await;
    carol.assert_none(
        "a presence-based notification while unavailable",
        any_event("pb"),
    );

    carol.roster_get(None).await;
    carol.send_presence("").await;
    publish(&mut owner, SVC, "pb", "p2", &entry("now available")).await;
    carol
        .expect("pb notification once available", event(SVC, "pb", "p2"))
        .await;
    dave.expect("pb notification", event(SVC, "pb", "p2")).await;
    for c in [&mut carol, &mut dave] {
        c.sync().await;
        c.assert_none("another pb notification", any_event("pb"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_subscriptions_of_one_jid_get_one_notification_with_both_subids() {
    let server = Server::start().await;
    users(&server, &["owner", "erin"]);
    let mut owner = server.online("owner", PW, "desk").await;
    let mut erin = server.online("erin", PW, "e1").await;
    create_node(&mut owner, "multi", &[]).await;

    let bare = erin.bare();
    let first = subscribe(&mut erin, "multi", &bare, None).await;
    // The same subscription again (no new options) is the existing one...
    assert_eq!(subscribe(&mut erin, "multi", &bare, None).await, first);
    // ...different options make a second one (XEP-0060 6.1.6, multi-subscribe).
    let options = form(
        SUBSCRIBE_OPTIONS,
        &[("pubsub#show-values", &["online", "chat"])],
    );
    let second = subscribe(&mut erin, "multi", &bare, Some(&options)).await;
    assert_ne!(first, second);

    publish(&mut owner, SVC, "multi", "m1", &entry("twice subscribed")).await;
    let m = erin
        .expect("the notification", event(SVC, "multi", "m1"))
        .await;
    let mut want = vec![first, second];
    want.sort();
    assert_eq!(
        shim_subids(&m),
        want,
        "SHIM headers name both (XEP-0060 7.1.2.4): {m}"
    );
    assert!(
        the_item(&m)
            .get_child("entry", "urn:example:news")
            .is_some(),
        "{m}"
    );
    erin.sync().await;
    erin.assert_none("a second copy", any_event("multi"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_type_and_payload_less_notifications() {
    let server = Server::start().await;
    users(&server, &["owner", "gina"]);
    let mut owner = server.online("owner", PW, "desk").await;
    let mut gina = server.online("gina", PW, "g1").await;
    create_node(&mut owner, "hl", &[]).await;
    create_node(&mut owner, "nm", &[("pubsub#notification_type", "normal")]).await;
    create_node(
        &mut owner,
        "hl2",
        &[("pubsub#notification_type", "headline")],
    )
    .await;
    create_node(&mut owner, "ids", &[("pubsub#deliver_payloads", "0")]).await;
    let bare = gina.bare();
    for node in ["hl", "nm", "hl2", "ids"] {
        subscribe(&mut gina, node, &bare, None).await;
    }
    for node in ["hl", "nm", "hl2", "ids"] {
        publish(&mut owner, SVC, node, &format!("{node}-1"), &entry(node)).await;
    }
    for (node, kind) in [("hl", "headline"), ("nm", "normal"), ("hl2", "headline")] {
        let m = gina
            .expect(node, event(SVC, node, &format!("{node}-1")))
            .await;
        assert_eq!(m.attr("type"), Some(kind), "{m}");
        assert!(
            the_item(&m)
                .get_child("entry", "urn:example:news")
                .is_some(),
            "{m}"
        );
    }
    let m = gina.expect("ids", event(SVC, "ids", "ids-1")).await;
    let item = the_item(&m);
    assert_eq!(
        item.children().count(),
        0,
        "deliver_payloads = 0: the item id only: {m}"
    );
    assert_eq!(m.attr("type"), Some("headline"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_last_published_item_on_sub() {
    let server = Server::start().await;
    users(&server, &["owner", "hank"]);
    let mut owner = server.online("owner", PW, "desk").await;
    let mut hank = server.online("hank", PW, "h1").await;
    create_node(
        &mut owner,
        "last",
        &[
            ("pubsub#send_last_published_item", "on_sub"),
            ("pubsub#max_items", "5"),
        ],
    )
    .await;
    create_node(&mut owner, "never", &[]).await;
    for node in ["last", "never"] {
        publish(&mut owner, SVC, node, "old", &entry("older")).await;
        publish(&mut owner, SVC, node, "new", &entry("newest")).await;
    }

    let bare = hank.bare();
    // The last item follows the subscription result at once.
    let id = new_id();
    hank.send(&format!(
        "<iq type='set' id='{id}' to='{SVC}'><pubsub xmlns='{}'>\
         <subscribe node='last' jid='{bare}'/></pubsub></iq>",
        ns::PUBSUB
    ))
    .await;
    let res = hank.expect("subscribe result", is_reply(&id)).await;
    assert_result(&res, "subscribe");
    let m = hank.expect("the last item", any_event("last")).await;
    let item = the_item(&m);
    assert_eq!(item.attr("id"), Some("new"), "only the last item: {m}");
    assert_eq!(
        item.get_child("entry", "urn:example:news")
            .map(Element::text)
            .as_deref(),
        Some("newest"),
        "{m}"
    );
    assert_eq!(m.attr("from"), Some(SVC), "{m}");
    hank.sync().await;
    hank.assert_none("another last-item message", any_event("last"));

    // Default (never): nothing on subscription.
    subscribe(&mut hank, "never", &bare, None).await;
    hank.sync().await;
    hank.assert_none("a last item from a 'never' node", any_event("never"));
}

// --- PEP (XEP-0163) with entity capabilities (XEP-0115) ----------------------------------

/// The disco#info features of the test client, with or without tune+notify.
fn features(notify: bool) -> Vec<String> {
    let mut f = vec![
        "http://jabber.org/protocol/caps".to_owned(),
        ns::DISCO_INFO.to_owned(),
        TUNE.to_owned(),
    ];
    if notify {
        f.push(format!("{TUNE}+notify"));
    }
    f
}

/// Any disco#info query from the server.
fn any_caps_query(e: &Element) -> bool {
    e.name() == "iq"
        && e.attr("type") == Some("get")
        && e.attr("from") == Some(DOMAIN)
        && e.get_child("query", ns::DISCO_INFO).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_last_item_when_caps_become_known_verified_and_unverified() {
    let server = Server::start().await;
    users(&server, &["amy", "ben", "cal", "dan", "eve"]);
    let mut amy = server.online("amy", PW, "phone").await;
    let mut ben = server.online("ben", PW, "b").await;
    let mut cal = server.online("cal", PW, "c").await;
    let mut dan = server.online("dan", PW, "d").await;
    let mut e1 = server.online("eve", PW, "e1").await;
    for c in [&mut ben, &mut cal, &mut dan, &mut e1] {
        befriend(&mut amy, c).await;
    }
    let amy_bare = amy.bare();

    // Amy publishes before anyone's interest is known: nobody gets it yet.
    publish(&mut amy, &amy_bare, TUNE, "t1", &tune("First Song")).await;
    for c in [&mut ben, &mut cal, &mut dan, &mut e1] {
        c.sync().await;
        c.assert_none("a tune before caps", any_event(TUNE));
    }

    // Ben: verifiable caps with tune+notify. The server asks, caches, and sends Amy's
    // last tune at once (XEP-0163 4.3.1: the contact's interest became known).
    let with_notify = features(true);
    let v_notify = caps_ver(&with_notify);
    announce_caps(&mut ben, &v_notify).await;
    answer_caps_query(&mut ben, DOMAIN, &v_notify, &with_notify).await;
    let m = ben
        .expect("Amy's last tune", event(&amy_bare, TUNE, "t1"))
        .await;
    assert!(the_item(&m).get_child("tune", TUNE).is_some(), "{m}");

    // Cal: verifiable caps without +notify: asked, but no tune.
    let without = features(false);
    let v_plain = caps_ver(&without);
    assert_ne!(v_plain, v_notify);
    announce_caps(&mut cal, &v_plain).await;
    answer_caps_query(&mut cal, DOMAIN, &v_plain, &without).await;

    // Dan: the same ver as Ben's: known already, so no query, and the last tune at once.
    announce_caps(&mut dan, &v_notify).await;
    dan.expect(
        "Amy's last tune (cached caps)",
        event(&amy_bare, TUNE, "t1"),
    )
    .await;
    dan.sync().await;
    dan.assert_none("a caps query for a verified, cached ver", any_caps_query);

    // Eve: an unverifiable ver. Her answer still counts for that session...
    let bogus = "not-a-real-hash=";
    announce_caps(&mut e1, bogus).await;
    answer_caps_query(&mut e1, DOMAIN, bogus, &with_notify).await;
    e1.expect(
        "Amy's last tune (unverified caps, this session)",
        event(&amy_bare, TUNE, "t1"),
    )
    .await;
    // ...but is not cached: her second resource with the same ver is asked again, and
    // its own answer (no +notify) is what counts for it.
    let mut e2 = server.online("eve", PW, "e2").await;
    announce_caps(&mut e2, bogus).await;
    answer_caps_query(&mut e2, DOMAIN, bogus, &without).await;

    for c in [&mut ben, &mut cal, &mut dan, &mut e1, &mut e2] {
        c.sync().await;
    }
    cal.assert_none("a tune without +notify", any_event(TUNE));
    e2.assert_none("a tune without +notify", any_event(TUNE));
    for c in [&mut ben, &mut dan, &mut e1] {
        c.assert_none("the last tune twice", any_event(TUNE));
    }
}

/// Live PEP events (XEP-0163 4.3): a contact whose caps ask for +notify gets each new
/// item, addressed to its full JID; contacts without +notify, and the owner, do not.
///
/// Also the guard against duplicates: the last item sent when a session's interest
/// becomes known races with the live notification of the same publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_live_events_reach_contacts_with_notify_only() {
    let server = Server::start().await;
    users(&server, &["amy", "ben", "cal", "eve"]);
    let mut amy = server.online("amy", PW, "phone").await;
    let mut ben = server.online("ben", PW, "b").await;
    let mut cal = server.online("cal", PW, "c").await;
    let mut eve = server.online("eve", PW, "e1").await;
    for c in [&mut ben, &mut cal, &mut eve] {
        befriend(&mut amy, c).await;
    }
    let amy_bare = amy.bare();

    // Interest first (Amy has no tune node yet, so there is no last item to send).
    let with_notify = features(true);
    let v_notify = caps_ver(&with_notify);
    announce_caps(&mut ben, &v_notify).await;
    answer_caps_query(&mut ben, DOMAIN, &v_notify, &with_notify).await;
    let without = features(false);
    let v_plain = caps_ver(&without);
    announce_caps(&mut cal, &v_plain).await;
    answer_caps_query(&mut cal, DOMAIN, &v_plain, &without).await;
    let bogus = "not-a-real-hash=";
    announce_caps(&mut eve, bogus).await;
    answer_caps_query(&mut eve, DOMAIN, bogus, &with_notify).await;
    for c in [&mut ben, &mut cal, &mut eve] {
        c.sync().await;
    }

    for (n, title) in [(1, "First Song"), (2, "Second Song")] {
        let id = format!("t{n}");
        publish(&mut amy, &amy_bare, TUNE, &id, &tune(title)).await;
        for c in [&mut ben, &mut eve] {
            let me = c.jid.clone();
            let m = c
                .expect("Amy's new tune", event(&amy_bare, TUNE, &id))
                .await;
            assert_eq!(m.attr("to"), Some(me.as_str()), "{m}");
            assert_eq!(
                the_item(&m)
                    .get_child("tune", TUNE)
                    .and_then(|t| t.get_child("title", TUNE))
                    .map(Element::text)
                    .as_deref(),
                Some(title),
                "{m}"
            );
        }
    }
    for c in [&mut amy, &mut ben, &mut cal, &mut eve] {
        c.sync().await;
    }
    for c in [&mut ben, &mut eve] {
        c.assert_none("a duplicate tune", any_event(TUNE));
    }
    cal.assert_none("a tune without +notify", any_event(TUNE));
    amy.assert_none("her own tune (no +notify)", any_event(TUNE));
}

/// The PEP audience is decided by the same access check as a request (XEP-0163 4.3 is
/// "subject to the access model"): a contact the owner made an outcast of the node
/// stops getting its events, presence subscription and +notify notwithstanding.
#[tokio::test]
async fn pep_outcast_contact_gets_no_implicit_events() {
    let server = Server::start().await;
    users(&server, &["amy", "ben"]);
    let mut amy = server.online("amy", PW, "phone").await;
    let mut ben = server.online("ben", PW, "b").await;
    befriend(&mut amy, &mut ben).await;
    let amy_bare = amy.bare();
    let with_notify = features(true);
    let v_notify = caps_ver(&with_notify);
    announce_caps(&mut ben, &v_notify).await;
    answer_caps_query(&mut ben, DOMAIN, &v_notify, &with_notify).await;
    ben.sync().await;

    publish(&mut amy, &amy_bare, TUNE, "t1", &tune("Before")).await;
    ben.expect("the tune while a contact", event(&amy_bare, TUNE, "t1"))
        .await;

    let ben_bare = ben.bare();
    let res = amy
        .iq(
            "set",
            Some(&amy_bare),
            &format!(
                "<pubsub xmlns='{}'><affiliations node='{TUNE}'>\
                 <affiliation jid='{ben_bare}' affiliation='outcast'/></affiliations></pubsub>",
                ns::PUBSUB_OWNER
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    publish(&mut amy, &amy_bare, TUNE, "t2", &tune("After")).await;
    ben.sync().await;
    ben.assert_none("a tune as an outcast", any_event(TUNE));
}
