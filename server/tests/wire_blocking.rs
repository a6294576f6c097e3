//! Wire tests: XEP-0191 Blocking Command. The blocklist requests and their pushes (3.2 to
//! 3.5), what a block does to stanzas both ways (3.3) for local and remote JIDs, matched
//! as section 6 says, presence on block and unblock, PEP notifications of and to a
//! blocked contact, stored messages and requests, persistence across a restart and an
//! account's removal, and the `[blocking] max_items` cap.

mod common;

use std::fmt::Write as _;

use common::caps::{announce_caps, answer_caps_query, caps_ver};
use common::pubsub::{PW, entry, publish, users};
use common::remote::{Peer, inject};
use common::{
    Client, DOMAIN, Server, befriend, is_reply, message_with_body, new_id, presence, stanza_error,
};
use hydrant_proto::{Element, ns};
use hydrant_storage::{BlockStore as _, SqliteStore};

const BLOCKING: &str = "urn:xmpp:blocking";
const CAROL: &str = "carol@remote.example/phone";
const TUNE: &str = "http://jabber.org/protocol/tune";

fn items(jids: &[&str]) -> String {
    let mut out = String::new();
    for j in jids {
        let _ = write!(out, "<item jid='{j}'/>");
    }
    out
}

async fn block(c: &mut Client, jids: &[&str]) -> Element {
    c.iq(
        "set",
        None,
        &format!("<block xmlns='{BLOCKING}'>{}</block>", items(jids)),
    )
    .await
}

async fn unblock(c: &mut Client, jids: &[&str]) -> Element {
    c.iq(
        "set",
        None,
        &format!("<unblock xmlns='{BLOCKING}'>{}</unblock>", items(jids)),
    )
    .await
}

#[track_caller]
fn assert_ok(res: &Element) {
    assert_eq!(res.attr("type"), Some("result"), "{res}");
}

/// XEP-0191 3.2: the list (and from then on, the pushes).
async fn blocklist(c: &mut Client) -> Vec<String> {
    let res = c
        .iq("get", None, &format!("<blocklist xmlns='{BLOCKING}'/>"))
        .await;
    assert_ok(&res);
    res.get_child("blocklist", BLOCKING)
        .unwrap_or_else(|| panic!("no <blocklist/>: {res}"))
        .children()
        .filter_map(|i| i.attr("jid").map(str::to_owned))
        .collect()
}

/// A push (iq set) of `<block/>` or `<unblock/>` with exactly these items.
fn push(name: &'static str, jids: &[&str]) -> impl Fn(&Element) -> bool + use<> {
    let jids: Vec<String> = jids.iter().map(|j| (*j).to_owned()).collect();
    move |e: &Element| {
        e.name() == "iq"
            && e.attr("type") == Some("set")
            && e.get_child(name, BLOCKING).is_some_and(|p| {
                p.children()
                    .filter_map(|i| i.attr("jid"))
                    .eq(jids.iter().map(String::as_str))
            })
    }
}

fn any_push(e: &Element) -> bool {
    e.name() == "iq"
        && (e.get_child("block", BLOCKING).is_some() || e.get_child("unblock", BLOCKING).is_some())
}

/// An error reply to the stanza with this id, and its condition.
async fn error_for(c: &mut Client, id: &str) -> (Element, String) {
    let id = id.to_owned();
    let e = c
        .expect(&format!("an error for {id}"), move |e| {
            e.attr("id") == Some(id.as_str()) && e.attr("type") == Some("error")
        })
        .await;
    let cond = stanza_error(&e).unwrap_or_default();
    (e, cond)
}

/// XEP-0191 3.3: `<not-acceptable/>` with `<blocked xmlns='urn:xmpp:blocking:errors'/>`.
#[track_caller]
fn assert_blocked_error(e: &Element, cond: &str) {
    assert_eq!(cond, "not-acceptable", "{e}");
    assert!(
        e.get_child("error", ns::CLIENT)
            .and_then(|er| er.get_child("blocked", "urn:xmpp:blocking:errors"))
            .is_some(),
        "{e}"
    );
}

async fn sync_all(clients: &mut [&mut Client]) {
    for c in clients.iter_mut() {
        c.sync().await;
    }
}

#[tokio::test]
async fn blocklist_requests_and_pushes() {
    let server = Server::start().await;
    users(&server, &["alice"]);
    let mut a1 = server.online("alice", PW, "a1").await;
    let mut a2 = server.online("alice", PW, "a2").await;
    let mut a3 = server.online("alice", PW, "a3").await;
    // 3.2: an empty list is an empty <blocklist/>.
    assert!(blocklist(&mut a1).await.is_empty());
    assert!(blocklist(&mut a2).await.is_empty());

    // 3.3: a result, and a push to each session that requested the list (a3 did not).
    // JIDs are normalised (RFC 7622), so the push names them as stored.
    let res = block(&mut a1, &["Romeo@Montague.example", "evil.example"]).await;
    assert_ok(&res);
    for c in [&mut a1, &mut a2] {
        c.expect(
            "block push",
            push("block", &["romeo@montague.example", "evil.example"]),
        )
        .await;
    }
    assert_eq!(
        blocklist(&mut a3).await,
        ["evil.example", "romeo@montague.example"]
    );

    // 3.4: unblock one.
    assert_ok(&unblock(&mut a2, &["romeo@montague.example"]).await);
    for c in [&mut a1, &mut a2, &mut a3] {
        c.expect("unblock push", push("unblock", &["romeo@montague.example"]))
            .await;
    }
    assert_eq!(blocklist(&mut a1).await, ["evil.example"]);

    // 3.5: an empty <unblock/> unblocks all, and is pushed empty.
    assert_ok(&unblock(&mut a1, &[]).await);
    for c in [&mut a1, &mut a2, &mut a3] {
        c.expect("unblock-all push", push("unblock", &[])).await;
    }
    assert!(blocklist(&mut a2).await.is_empty());

    // 3.3: a <block/> without items is <bad-request/>; a JID that is none is
    // <jid-malformed/>; an item without one is <bad-request/>. None changes the list.
    let res = block(&mut a1, &[]).await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");
    let res = block(&mut a1, &["not@a@jid"]).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("jid-malformed"),
        "{res}"
    );
    let res = a1
        .iq(
            "set",
            None,
            &format!("<block xmlns='{BLOCKING}'><item/></block>"),
        )
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");
    assert!(blocklist(&mut a1).await.is_empty());
    sync_all(&mut [&mut a1, &mut a2, &mut a3]).await;
    for c in [&mut a1, &mut a2, &mut a3] {
        c.assert_none("a push for a refused request", any_push);
    }
}

/// XEP-0191 3.3, local JIDs: what the blocked JID sends is refused (messages, iq) or
/// dropped (presence), what the user sends it gets `<not-acceptable/>` + `<blocked/>`;
/// section 6 matching (a bare JID covers its resources, a full JID only itself).
#[tokio::test]
async fn stanzas_between_a_user_and_a_blocked_jid() {
    let server = Server::start().await;
    users(&server, &["alice", "bob", "carol", "dave"]);
    let mut a = server.online("alice", PW, "a1").await;
    let mut b = server.online("bob", PW, "b").await;
    let mut c = server.online("carol", PW, "c").await;
    let mut d1 = server.online("dave", PW, "phone").await;
    let mut d2 = server.online("dave", PW, "laptop").await;
    assert_ok(&block(&mut a, &["bob@localhost", "dave@localhost/phone"]).await);

    // A message: <service-unavailable/>, what an offline user's server says.
    b.send("<message to='alice@localhost' type='chat' id='m1'><body>hi</body></message>")
        .await;
    let (_, cond) = error_for(&mut b, "m1").await;
    assert_eq!(cond, "service-unavailable");
    b.send("<message to='alice@localhost/a1' type='chat' id='m2'><body>hi</body></message>")
        .await;
    let (_, cond) = error_for(&mut b, "m2").await;
    assert_eq!(cond, "service-unavailable");
    // An iq get or set: <service-unavailable/>, to the full and to the bare JID.
    for to in ["alice@localhost/a1", "alice@localhost"] {
        let res = b
            .iq(
                "get",
                Some(to),
                &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
            )
            .await;
        assert_eq!(
            stanza_error(&res).as_deref(),
            Some("service-unavailable"),
            "{res}"
        );
    }
    // Presence, directed or a subscription request: dropped, no error.
    b.send("<presence to='alice@localhost/a1'/>").await;
    b.send("<presence to='alice@localhost' type='subscribe' id='p1'/>")
        .await;

    // Only dave's blocked resource is blocked.
    d1.send("<message to='alice@localhost/a1' id='d1'><body>from phone</body></message>")
        .await;
    let (_, cond) = error_for(&mut d1, "d1").await;
    assert_eq!(cond, "service-unavailable");
    d2.send("<message to='alice@localhost/a1'><body>from laptop</body></message>")
        .await;
    a.expect("dave's other resource", message_with_body("from laptop"))
        .await;
    // Unblocked JIDs are untouched.
    c.send("<message to='alice@localhost'><body>from carol</body></message>")
        .await;
    a.expect("carol's message", message_with_body("from carol"))
        .await;

    // Outbound: refused with <not-acceptable/> and <blocked/>, for each kind.
    a.send("<message to='bob@localhost/b' id='o1'><body>hey</body></message>")
        .await;
    let (e, cond) = error_for(&mut a, "o1").await;
    assert_blocked_error(&e, &cond);
    assert_eq!(e.attr("from"), Some("bob@localhost/b"), "{e}");
    let res = a
        .iq(
            "get",
            Some("bob@localhost/b"),
            "<ping xmlns='urn:xmpp:ping'/>",
        )
        .await;
    let cond = stanza_error(&res).unwrap_or_default();
    assert_blocked_error(&res, &cond);
    a.send("<presence to='bob@localhost' type='subscribe' id='o2'/>")
        .await;
    let (e, cond) = error_for(&mut a, "o2").await;
    assert_blocked_error(&e, &cond);
    a.send("<message to='dave@localhost/phone' id='o3'><body>x</body></message>")
        .await;
    let (e, cond) = error_for(&mut a, "o3").await;
    assert_blocked_error(&e, &cond);
    // An error is never answered with one.
    a.send(
        "<message to='bob@localhost' type='error' id='o4'><error type='cancel'>\
         <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    )
    .await;

    sync_all(&mut [&mut a, &mut b, &mut c, &mut d1, &mut d2]).await;
    a.assert_none("a stanza from a blocked JID", |e| {
        let from = e.attr("from").unwrap_or("");
        from.starts_with("bob@") || from == "dave@localhost/phone"
    });
    a.assert_none("an error for an error", |e| e.attr("id") == Some("o4"));
    b.assert_none("a stanza from alice", |e| {
        e.attr("from").unwrap_or("").starts_with("alice@") && e.attr("type") != Some("error")
    });
    b.assert_none("an answer to its presence", |e| e.attr("id") == Some("p1"));
}

/// XEP-0191 3.3 and 3.4: the blocked contact gets unavailable presence and then none of
/// the user's presence; unblocked, it gets the current presence, and the user gets the
/// contact's again.
#[tokio::test]
async fn presence_on_block_and_unblock() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut a = server.online("alice", PW, "a1").await;
    let mut b = server.online("bob", PW, "b").await;
    befriend(&mut a, &mut b).await;

    assert_ok(&block(&mut a, &["bob@localhost"]).await);
    b.expect(
        "unavailable from alice",
        presence("alice@localhost/a1", Some("unavailable")),
    )
    .await;
    // Neither side sees the other's presence any more.
    a.send_presence("<show>away</show>").await;
    b.send("<presence><show>dnd</show></presence>").await;
    // A session that logs in now is not shown to bob, nor bob to it.
    let mut a2 = server.online("alice", PW, "a2").await;
    sync_all(&mut [&mut a, &mut a2, &mut b]).await;
    b.assert_none("alice's presence while blocked", |e| {
        e.name() == "presence" && e.attr("from").unwrap_or("").starts_with("alice@")
    });
    for c in [&mut a, &mut a2] {
        c.assert_none("bob's presence while blocked", |e| {
            e.name() == "presence" && e.attr("from").unwrap_or("").starts_with("bob@")
        });
    }
    // Nor does its end: alice's own a1 hears a2 leave after the contacts would have.
    a2.close().await;
    a.expect(
        "a2's unavailable to its own account",
        presence("alice@localhost/a2", Some("unavailable")),
    )
    .await;
    b.sync().await;
    b.assert_none("a2's unavailable", |e| {
        e.name() == "presence" && e.attr("from").unwrap_or("").starts_with("alice@")
    });

    // 3.4: unblocked, bob gets alice's current presence, and alice bob's.
    assert_ok(&unblock(&mut a, &["bob@localhost"]).await);
    let p = b
        .expect(
            "alice's current presence",
            presence("alice@localhost/a1", None),
        )
        .await;
    assert_eq!(
        p.get_child("show", ns::CLIENT)
            .map(Element::text)
            .as_deref(),
        Some("away"),
        "{p}"
    );
    let p = a
        .expect("bob's current presence", presence("bob@localhost/b", None))
        .await;
    assert_eq!(
        p.get_child("show", ns::CLIENT)
            .map(Element::text)
            .as_deref(),
        Some("dnd"),
        "{p}"
    );
}

/// XEP-0191 3.3 with other domains: a blocked remote JID's stanzas are refused or
/// dropped, the user's to it never leave, a domain item covers the whole domain, and a
/// remote contact is told unavailable on block and the current presence on unblock.
// `inject` runs router code on the test's runtime, parts of it in `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_jids_of_other_domains() {
    let server = Server::start().await;
    users(&server, &["alice"]);
    let mut peer = Peer::install(&server);
    let mut a = server.online("alice", PW, "a1").await;
    // Carol subscribes to alice's presence and alice approves: carol may see it.
    inject(
        &server,
        CAROL,
        "<presence to='alice@localhost' type='subscribe'/>",
    )
    .await;
    a.expect(
        "carol's request",
        presence("carol@remote.example", Some("subscribe")),
    )
    .await;
    a.send("<presence to='carol@remote.example' type='subscribed'/>")
        .await;
    peer.expect("alice's presence for carol", |e| {
        e.name() == "presence"
            && e.attr("to") == Some("carol@remote.example")
            && e.attr("type").is_none()
    })
    .await;

    assert_ok(&block(&mut a, &["carol@remote.example"]).await);
    peer.expect("unavailable for carol", |e| {
        e.name() == "presence"
            && e.attr("from") == Some("alice@localhost/a1")
            && e.attr("to") == Some("carol@remote.example")
            && e.attr("type") == Some("unavailable")
    })
    .await;

    inject(
        &server,
        CAROL,
        "<message to='alice@localhost' type='chat' id='r1'><body>hi</body></message>",
    )
    .await;
    let err = peer
        .expect("the error for carol", |e| e.attr("id") == Some("r1"))
        .await;
    assert_eq!(
        stanza_error(&err).as_deref(),
        Some("service-unavailable"),
        "{err}"
    );
    inject(
        &server,
        CAROL,
        "<iq to='alice@localhost/a1' type='get' id='r2'><ping xmlns='urn:xmpp:ping'/></iq>",
    )
    .await;
    let err = peer
        .expect("the iq error for carol", |e| e.attr("id") == Some("r2"))
        .await;
    assert_eq!(
        stanza_error(&err).as_deref(),
        Some("service-unavailable"),
        "{err}"
    );
    // Presence of every kind is dropped unanswered: the probe gets no answer.
    inject(&server, CAROL, "<presence to='alice@localhost/a1'/>").await;
    inject(
        &server,
        CAROL,
        "<presence to='alice@localhost' type='probe' id='r3'/>",
    )
    .await;
    // Alice's messages to carol do not leave.
    a.send(&format!(
        "<message to='{CAROL}' id='o1'><body>bye</body></message>"
    ))
    .await;
    let (e, cond) = error_for(&mut a, "o1").await;
    assert_blocked_error(&e, &cond);

    // A domain item blocks everyone there.
    assert_ok(&block(&mut a, &["remote.example"]).await);
    inject(
        &server,
        "dave@remote.example/x",
        "<message to='alice@localhost/a1' id='r4'><body>hello</body></message>",
    )
    .await;
    peer.expect("the error for dave", |e| e.attr("id") == Some("r4"))
        .await;

    a.sync().await;
    a.assert_none("a stanza from the blocked domain", |e| {
        e.attr("from")
            .is_some_and(|f| f.ends_with("remote.example") || f.contains("remote.example/"))
    });
    let leaked = peer.sent_so_far(|e| {
        e.attr("id") == Some("r3") || e.attr("id") == Some("o1") || e.name() == "presence"
    });
    assert!(leaked.is_empty(), "sent to the blocked domain: {leaked:?}");

    // 3.4: unblocked (both items), carol gets alice's current presence again.
    assert_ok(&unblock(&mut a, &[]).await);
    peer.expect("alice's presence again", |e| {
        e.name() == "presence"
            && e.attr("from") == Some("alice@localhost/a1")
            && e.attr("to") == Some("carol@remote.example")
            && e.attr("type").is_none()
    })
    .await;
}

/// The brief's pubsub case: PEP notifications of a blocked contact's nodes do not reach
/// the user (its PEP service is its bare JID), explicit subscription or +notify alike,
/// and a blocking owner's notifications do not reach the blocked contact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_notifications_and_blocked_contacts() {
    let server = Server::start().await;
    users(&server, &["amy", "ben", "cal"]);
    let mut amy = server.online("amy", PW, "phone").await;
    let mut ben = server.online("ben", PW, "b").await;
    let mut cal = server.online("cal", PW, "c").await;
    befriend(&mut amy, &mut ben).await;
    befriend(&mut cal, &mut ben).await;
    befriend(&mut amy, &mut cal).await;
    let amy_bare = amy.bare();
    let features = vec![
        "http://jabber.org/protocol/caps".to_owned(),
        ns::DISCO_INFO.to_owned(),
        format!("{TUNE}+notify"),
    ];
    let ver = caps_ver(&features);
    announce_caps(&mut ben, &ver).await;
    answer_caps_query(&mut ben, DOMAIN, &ver, &features).await;
    ben.sync().await;
    let tune = |t: &str| format!("<tune xmlns='{TUNE}'><title>{t}</title></tune>");
    let event = |id: &'static str| {
        move |e: &Element| {
            e.name() == "message"
                && e.get_child("event", ns::PUBSUB_EVENT)
                    .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
                    .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
                    .is_some_and(|i| i.attr("id") == Some(id))
        }
    };
    let any_event = |e: &Element| e.get_child("event", ns::PUBSUB_EVENT).is_some();

    publish(&mut amy, &amy_bare, TUNE, "t1", &tune("one")).await;
    ben.expect("the +notify event", event("t1")).await;
    // Cal's tune: a new session of ben gets cal's last item after amy's (contacts in
    // roster order), which tells when amy's would have come.
    publish(&mut cal, "cal@localhost", TUNE, "c1", &tune("cal's")).await;
    ben.expect("cal's event", event("c1")).await;

    // Ben blocks amy: her +notify events do not reach him, nor her last item when a new
    // session's interest becomes known.
    assert_ok(&block(&mut ben, &[&amy_bare]).await);
    publish(&mut amy, &amy_bare, TUNE, "t2", &tune("two")).await;
    let mut ben2 = server.online("ben", PW, "b2").await;
    announce_caps(&mut ben2, &ver).await;
    ben2.expect("cal's last item", event("c1")).await;
    sync_all(&mut [&mut amy, &mut ben, &mut ben2]).await;
    ben.assert_none("an event of a blocked contact", any_event);
    ben2.assert_none("the last item of a blocked contact", any_event);
    assert_ok(&unblock(&mut ben, &[&amy_bare]).await);
    publish(&mut amy, &amy_bare, TUNE, "t3", &tune("three")).await;
    ben.expect("an event after unblocking", event("t3")).await;
    ben2.expect("an event after unblocking", event("t3")).await;

    // Amy blocks ben: her events do not go to him, nor her last item to a new session.
    assert_ok(&block(&mut amy, &["ben@localhost"]).await);
    publish(&mut amy, &amy_bare, TUNE, "t4", &tune("four")).await;
    let mut ben3 = server.online("ben", PW, "b3").await;
    announce_caps(&mut ben3, &ver).await;
    ben3.expect("cal's last item", event("c1")).await;
    sync_all(&mut [&mut amy, &mut ben, &mut ben2, &mut ben3]).await;
    for c in [&mut ben, &mut ben2, &mut ben3] {
        c.assert_none("an event from an owner that blocks him", any_event);
    }
    assert_ok(&unblock(&mut amy, &["ben@localhost"]).await);

    // An explicit subscription (the node's presence access admits ben) is held to the
    // same, in the fan-out itself, both ways.
    let res = ben
        .iq(
            "set",
            Some(&amy_bare),
            &format!(
                "<pubsub xmlns='{}'><subscribe node='{TUNE}' jid='ben@localhost'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_ok(&res);
    publish(&mut amy, &amy_bare, TUNE, "t5", &tune("five")).await;
    ben.expect("the subscription's event", event("t5")).await;
    assert_ok(&block(&mut ben, &[&amy_bare]).await);
    publish(&mut amy, &amy_bare, TUNE, "t6", &tune("six")).await;
    assert_ok(&unblock(&mut ben, &[&amy_bare]).await);
    assert_ok(&block(&mut amy, &["ben@localhost"]).await);
    publish(&mut amy, &amy_bare, TUNE, "t7", &tune("seven")).await;
    sync_all(&mut [&mut ben, &mut ben2, &mut ben3]).await;
    for c in [&mut ben, &mut ben2, &mut ben3] {
        c.assert_none("an event while blocked", |e| {
            event("t6")(e) || event("t7")(e)
        });
    }

    // With amy offline her list is read from the store: still no last item for ben.
    amy.close().await;
    cal.expect(
        "amy's unavailable (she is gone)",
        presence("amy@localhost/phone", Some("unavailable")),
    )
    .await;
    let mut ben4 = server.online("ben", PW, "b4").await;
    announce_caps(&mut ben4, &ver).await;
    ben4.expect("cal's last item", event("c1")).await;
    ben4.sync().await;
    ben4.assert_none("the last item of an offline owner that blocks him", |e| {
        e.attr("from") == Some("amy@localhost")
    });
}

/// A pubsub component the user blocks sends it no notifications (domain matching on the
/// service's address).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_pubsub_service_notifies_nobody_blocking_it() {
    let server = Server::start().await;
    users(&server, &["amy", "ben"]);
    let mut amy = server.online("amy", PW, "a").await;
    let mut ben = server.online("ben", PW, "b").await;
    let svc = "pubsub.localhost";
    let res = amy
        .iq(
            "set",
            Some(svc),
            &format!(
                "<pubsub xmlns='{}'><create node='news'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_ok(&res);
    for c in [&mut amy, &mut ben] {
        let jid = c.bare();
        let res = c
            .iq(
                "set",
                Some(svc),
                &format!(
                    "<pubsub xmlns='{}'><subscribe node='news' jid='{jid}'/></pubsub>",
                    ns::PUBSUB
                ),
            )
            .await;
        assert_ok(&res);
    }
    assert_ok(&block(&mut ben, &[svc]).await);
    publish(&mut amy, svc, "news", "n1", &entry("first")).await;
    amy.expect("amy's notification", |e| {
        e.get_child("event", ns::PUBSUB_EVENT).is_some()
    })
    .await;
    ben.sync().await;
    ben.assert_none("a notification of a blocked service", |e| {
        e.get_child("event", ns::PUBSUB_EVENT).is_some()
    });
}

/// The list outlives sessions and restarts, and applies while the user is offline:
/// messages are refused rather than stored, requests dropped; what was stored before the
/// block is not delivered after it.
#[tokio::test]
async fn the_blocklist_persists_and_applies_offline() {
    let server = Server::start().await;
    users(&server, &["alice", "bob", "carol", "dave"]);
    let mut b = server.online("bob", PW, "b").await;
    let mut c = server.online("carol", PW, "c").await;
    let mut d = server.online("dave", PW, "d").await;

    // Stored while alice is away: carol's message, bob's request, dave's message.
    c.send("<message to='alice@localhost'><body>stored from carol</body></message>")
        .await;
    b.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    d.send("<message to='alice@localhost'><body>stored from dave</body></message>")
        .await;
    sync_all(&mut [&mut b, &mut c, &mut d]).await;

    // Alice binds, blocks carol and bob before any presence, then comes online: only
    // dave's message is delivered.
    let mut a = server.login("alice", PW, "a1").await;
    assert_ok(&block(&mut a, &["carol@localhost", "bob@localhost"]).await);
    a.send_presence("").await;
    a.expect(
        "dave's stored message",
        message_with_body("stored from dave"),
    )
    .await;
    a.sync().await;
    a.assert_none("what blocked JIDs sent before the block", |e| {
        e.attr("from")
            .is_some_and(|f| f.starts_with("carol@") || f.starts_with("bob@"))
    });
    a.close().await;

    // Offline now, and across a restart.
    let server = server.restart().await;
    let mut b = server.online("bob", PW, "b").await;
    let id = new_id();
    b.send(&format!(
        "<message to='alice@localhost' type='chat' id='{id}'><body>still?</body></message>"
    ))
    .await;
    let (_, cond) = error_for(&mut b, &id).await;
    assert_eq!(cond, "service-unavailable", "refused, not stored");
    b.send("<presence to='alice@localhost' type='unsubscribe'/>")
        .await;
    b.sync().await;

    let mut a = server.login("alice", PW, "a1").await;
    assert_eq!(
        blocklist(&mut a).await,
        ["bob@localhost", "carol@localhost"]
    );
    a.send_presence("").await;
    a.sync().await;
    a.assert_none("a stanza from bob", |e| {
        e.attr("from").is_some_and(|f| f.starts_with("bob@"))
    });
}

/// Removing the account removes its blocklist (the store's cascade): an account
/// registered again under the name blocks nobody.
#[tokio::test]
async fn account_removal_removes_the_blocklist() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut a = server.online("alice", PW, "a1").await;
    assert_ok(&block(&mut a, &["bob@localhost"]).await);
    let id = new_id();
    a.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'><remove/></query></iq>"
    ))
    .await;
    let res = a.expect("removal result", is_reply(&id)).await;
    assert_ok(&res);
    a.expect_closed().await;

    let store = SqliteStore::open(&server.data_dir().join("hydrant.sqlite3")).expect("store");
    assert_eq!(store.blocklist("alice").unwrap(), Vec::<String>::new());
    drop(store);

    server.add_user("alice", PW);
    let mut a = server.online("alice", PW, "a1").await;
    assert!(blocklist(&mut a).await.is_empty());
    let mut b = server.online("bob", PW, "b").await;
    b.send("<message to='alice@localhost'><body>hello again</body></message>")
        .await;
    a.expect("bob's message", message_with_body("hello again"))
        .await;
}

/// `[blocking] max_items`: a block that would take the list past it is refused whole
/// with `<resource-constraint/>`; JIDs blocked already do not count twice.
#[tokio::test]
async fn the_blocklist_is_capped() {
    let server = Server::start_with("[blocking]\nmax_items = 3\n").await;
    users(&server, &["alice"]);
    let mut a = server.online("alice", PW, "a1").await;
    assert!(blocklist(&mut a).await.is_empty());
    assert_ok(&block(&mut a, &["a@x.example", "b@x.example"]).await);
    a.expect("push", push("block", &["a@x.example", "b@x.example"]))
        .await;
    let res = block(&mut a, &["c@x.example", "d@x.example"]).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("resource-constraint"),
        "{res}"
    );
    assert_eq!(blocklist(&mut a).await, ["a@x.example", "b@x.example"]);
    assert_ok(&block(&mut a, &["a@x.example", "c@x.example"]).await);
    let res = block(&mut a, &["d@x.example"]).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("resource-constraint"),
        "{res}"
    );
    // More distinct JIDs than the cap in one request: refused before any store work.
    let res = block(
        &mut a,
        &["e@x.example", "f@x.example", "g@x.example", "h@x.example"],
    )
    .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("resource-constraint"),
        "{res}"
    );
    assert_eq!(
        blocklist(&mut a).await,
        ["a@x.example", "b@x.example", "c@x.example"]
    );
}

/// PEP `+notify` events to another server's contacts (XEP-0163 over s2s) skip a
/// resource the owner blocks by its full JID; the contact's other resources keep them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_events_skip_a_blocked_remote_resource() {
    use common::federation::{free_port, online, s2s};
    let (pa, pb) = (free_port(), free_port());
    let sa = Server::start_domain("a.test", &s2s(pa, "b.test", pb)).await;
    let sb = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    let mut alice = online(&sa, "alice").await;
    let mut bob = online(&sb, "bob").await;
    befriend(&mut alice, &mut bob).await;
    let features = vec![
        "http://jabber.org/protocol/caps".to_owned(),
        ns::DISCO_INFO.to_owned(),
        format!("{TUNE}+notify"),
    ];
    let ver = caps_ver(&features);
    let tune = |t: &str| format!("<tune xmlns='{TUNE}'><title>{t}</title></tune>");
    let event = |id: &'static str| {
        move |e: &Element| {
            e.attr("from") == Some("alice@a.test")
                && e.get_child("event", ns::PUBSUB_EVENT)
                    .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
                    .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
                    .is_some_and(|i| i.attr("id") == Some(id))
        }
    };
    publish(&mut alice, "alice@a.test", TUNE, "m1", &tune("one")).await;
    // The phone's caps, answered to both servers; its last item shows a.test cached
    // them, so the tablet with the same caps is not asked again.
    announce_caps(&mut bob, &ver).await;
    answer_caps_query(&mut bob, "b.test", &ver, &features).await;
    answer_caps_query(&mut bob, "alice@a.test", &ver, &features).await;
    bob.expect("m1 at the phone", event("m1")).await;
    let mut tablet = sb.online("bob", PW, "tablet").await;
    announce_caps(&mut tablet, &ver).await;
    tablet.expect("m1 at the tablet", event("m1")).await;

    assert_ok(&block(&mut alice, &["bob@b.test/tablet"]).await);
    tablet
        .expect(
            "alice unavailable to the blocked resource",
            presence("alice@a.test/phone", Some("unavailable")),
        )
        .await;
    publish(&mut alice, "alice@a.test", TUNE, "m2", &tune("two")).await;
    bob.expect("m2 at the phone", event("m2")).await;
    // Unblocked, the tablet gets alice's presence again, and her next event: any copy
    // of m2 would have come before it (a node's events leave in order).
    assert_ok(&unblock(&mut alice, &["bob@b.test/tablet"]).await);
    tablet
        .expect(
            "alice's presence again",
            presence("alice@a.test/phone", None),
        )
        .await;
    publish(&mut alice, "alice@a.test", TUNE, "m3", &tune("three")).await;
    tablet.expect("m3 at the tablet", event("m3")).await;
    tablet.assert_none("m2 while blocked", event("m2"));
}
