//! Wire tests: stored state handed over at login never overflows the connection's
//! outbound queue, and nothing stored is lost on the way (issue 8, item 13).
//!
//! Offline messages (RFC 6121 8.5.2.2.1) go out in pages that fit the queue's free space
//! and are deleted only once queued; pending subscription requests (RFC 6121 3.1.3) are
//! stored trimmed, so however large the original request was, redelivering it at every
//! login costs a few dozen bytes.

mod common;

use common::{Client, Server, message_with_body, new_id, presence};
use hydrant_proto::{Element, ns};

/// A queue this small holds only a handful of the messages below.
const QUEUE: &str = "outbound_queue_bytes = 8192";

async fn send_chat(c: &mut Client, to: &str, text: &str) {
    let id = new_id();
    c.send(&format!(
        "<message to='{to}' type='chat' id='{id}'><body>{text}</body></message>"
    ))
    .await;
}

fn body_of(e: &Element) -> Option<String> {
    (e.name() == "message")
        .then(|| e.get_child("body", ns::CLIENT).map(Element::text))
        .flatten()
}

#[tokio::test]
async fn more_offline_messages_than_fit_in_the_queue_all_arrive_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, QUEUE, "").await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    // 60 messages of about 1 KiB each: about 8 times the queue.
    const N: usize = 60;
    let pad = "x".repeat(1000);
    for i in 0..N {
        send_chat(&mut a, "bob@localhost", &format!("{i:03} {pad}")).await;
    }
    a.sync().await;

    let mut b = server.login("bob", "pw-bob", "work").await;
    b.send_presence("").await;
    for i in 0..N {
        let m = b
            .expect("every offline message", |e| {
                body_of(e).is_some_and(|t| t.starts_with(&format!("{i:03} ")))
            })
            .await;
        assert!(m.get_child("delay", ns::DELAY).is_some(), "{m}");
    }
    b.sync().await;
    b.assert_none("a message twice", |e| e.name() == "message");
    assert!(!b.closed, "the session survived its backlog");

    // Delivered rows are gone: nothing again at the next login.
    b.close().await;
    let mut b = server.online("bob", "pw-bob", "work").await;
    b.sync().await;
    b.assert_none("offline messages delivered twice", |e| {
        e.name() == "message"
    });
    // And the queue is usable for live traffic afterwards.
    send_chat(&mut a, "bob@localhost", "live").await;
    b.expect("live message", message_with_body("live")).await;
}

#[tokio::test]
async fn large_subscription_requests_are_stored_trimmed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, QUEUE, "").await;
    server.add_user("bob", "pw-bob");
    // Five strangers each send bob (offline) a subscription request carrying about
    // 7 KiB of payload: together far more than bob's queue.
    let strangers = ["s1", "s2", "s3", "s4", "s5"];
    let junk = format!("<status>{}</status>", "y".repeat(7000));
    for s in strangers {
        server.add_user(s, "pw");
        let mut c = server.online(s, "pw", "r").await;
        c.send(&format!(
            "<presence to='bob@localhost' type='subscribe'>{junk}\
               <nick xmlns='http://jabber.org/protocol/nick'>{s}</nick>\
               <x xmlns='urn:example:junk'>{}</x></presence>",
            "z".repeat(7000)
        ))
        .await;
        c.sync().await;
        c.close().await;
    }
    // Twice: pending requests are redelivered at every login until answered.
    for _ in 0..2 {
        let mut b = server.login("bob", "pw-bob", "work").await;
        b.send_presence("").await;
        for s in strangers {
            let from = format!("{s}@localhost");
            let p = b
                .expect("the stored request", presence(&from, Some("subscribe")))
                .await;
            assert_eq!(p.attr("to"), Some("bob@localhost"), "{p}");
            assert!(
                p.get_child("status", ns::CLIENT).is_none()
                    && p.children().all(|c| c.ns() != "urn:example:junk"),
                "stored without the payload: {p}"
            );
            assert!(p.to_string().len() < 512, "{p}");
        }
        b.sync().await;
        assert!(!b.closed, "the session survived its pending requests");
        b.close().await;
    }
}

#[tokio::test]
async fn a_session_that_goes_unavailable_mid_backlog_leaves_the_rest_stored() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, QUEUE, "").await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    const N: usize = 60;
    let pad = "x".repeat(1000);
    for i in 0..N {
        send_chat(&mut a, "bob@localhost", &format!("{i:03} {pad}")).await;
    }
    a.sync().await;

    // Available, and unavailable again before reading anything: delivery stops at the
    // next page (how far it got depends on timing), the rest stays stored.
    let mut b = server.login("bob", "pw-bob", "first").await;
    b.send("<presence/><presence type='unavailable'/>").await;
    b.sync().await;
    // Read to the end of the stream: what was queued for it is all written before.
    b.send("</stream:stream>").await;
    b.expect_closed().await;
    let mut got: Vec<usize> = b
        .take_buffered(|e| e.name() == "message")
        .iter()
        .filter_map(|m| body_of(m)?.get(..3)?.parse().ok())
        .collect();

    let mut b = server.login("bob", "pw-bob", "second").await;
    b.send_presence("").await;
    // Whatever the first session did not get, the second does, in order.
    for i in got.len()..N {
        let m = b
            .expect("the rest", |e| {
                body_of(e).is_some_and(|t| t.starts_with(&format!("{i:03} ")))
            })
            .await;
        got.push(i);
        assert!(m.get_child("delay", ns::DELAY).is_some(), "{m}");
    }
    b.sync().await;
    b.assert_none("a message twice", |e| e.name() == "message");
    assert_eq!(got, (0..N).collect::<Vec<_>>());
}
