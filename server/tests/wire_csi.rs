//! Wire tests: XEP-0352 client state indication (issue 11, item 3).
//!
//! While a client is inactive, pubsub notifications (and presence) are held and written
//! in batches: when enough bytes are held, when the oldest is old enough, when something
//! urgent (a message with a body, an iq) takes them along, or when the client is active
//! again; never reordered, never lost, also across an XEP-0198 resumption.
//!
//! "Nothing arrived" checks wait a short while after an event that proves the fan-out
//! ran (an active subscriber got the same notification): a server that did not hold
//! would have written within microseconds, so the check cannot pass by being early.

mod common;

use std::time::Duration;

use common::pubsub::{PW, entry, publish, subscribe, users};
use common::{Client, Server, message_with_body, new_id};
use hydrant_proto::{Element, ns};

const SVC: &str = "pubsub.localhost";
const CSI: &str = "urn:xmpp:csi:0";
const SM: &str = "urn:xmpp:sm:3";

fn item_id(e: &Element) -> Option<String> {
    e.get_child("event", ns::PUBSUB_EVENT)
        .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
        .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
        .and_then(|i| i.attr("id"))
        .map(str::to_owned)
}

fn is_item(id: &str) -> impl Fn(&Element) -> bool + use<> {
    let id = id.to_owned();
    move |e| item_id(e).as_deref() == Some(id.as_str())
}

/// carol owns `feed`; alice (inactive once `inactive` is sent) and bob (active, the
/// witness that the fan-out ran) subscribe.
async fn setup(server: &Server) -> (Client, Client, Client) {
    users(server, &["alice", "bob", "carol"]);
    let mut carol = server.online("carol", PW, "desk").await;
    let res = carol
        .iq(
            "set",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{}'><create node='feed'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let (mut alice, features) = {
        let (mut c, _) = server.connect_tls().await;
        c.auth_plain("alice", PW).await.expect("login");
        let f = c.open_stream().await;
        (c, f)
    };
    assert!(
        features.get_child("csi", CSI).is_some(),
        "XEP-0352 advertised after authentication: {features}"
    );
    alice.bind(&features, "phone").await;
    alice.send_presence("").await;
    subscribe(&mut alice, SVC, "feed", "alice@localhost", None).await;
    let mut bob = server.online("bob", PW, "desk").await;
    subscribe(&mut bob, SVC, "feed", "bob@localhost", None).await;
    (alice, bob, carol)
}

/// Publishes `id` and waits until bob (active) has it: the fan-out ran.
async fn publish_seen(carol: &mut Client, bob: &mut Client, id: &str, text: &str) {
    publish(carol, SVC, "feed", id, &entry(text)).await;
    bob.expect("the notification at the active subscriber", is_item(id))
        .await;
}

async fn nothing_for_a_while(c: &mut Client) {
    let got = c
        .try_expect_within(Duration::from_millis(300), |e| e.name() == "message")
        .await;
    assert!(got.is_none(), "held while inactive, yet written: {got:?}");
}

#[tokio::test]
async fn an_inactive_client_gets_what_was_held_in_order_when_active_again() {
    let server = Server::start().await;
    let (mut alice, mut bob, mut carol) = setup(&server).await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice.sync().await;
    for i in 0..3 {
        publish_seen(&mut carol, &mut bob, &format!("i{i}"), "x").await;
    }
    nothing_for_a_while(&mut alice).await;
    alice.send(&format!("<active xmlns='{CSI}'/>")).await;
    for i in 0..3 {
        alice
            .expect("held notification", is_item(&format!("i{i}")))
            .await;
    }
    // Active again: live.
    publish_seen(&mut carol, &mut bob, "live", "x").await;
    alice.expect("a live notification", is_item("live")).await;
    alice.sync().await;
    alice.assert_none("a notification twice", |e| item_id(e).is_some());
}

#[tokio::test]
async fn a_message_with_a_body_takes_the_held_batch_along() {
    let server = Server::start().await;
    let (mut alice, mut bob, mut carol) = setup(&server).await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice.sync().await;
    publish_seen(&mut carol, &mut bob, "n0", "x").await;
    publish_seen(&mut carol, &mut bob, "n1", "x").await;
    // A chat state (no body) waits too; a message with a body goes at once.
    let to = alice.jid.clone();
    bob.send(&format!(
        "<message to='{to}' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>"
    ))
    .await;
    bob.sync().await;
    nothing_for_a_while(&mut alice).await;
    bob.send(&format!(
        "<message to='{to}' type='chat' id='{}'><body>wake up</body></message>",
        new_id()
    ))
    .await;
    let got = alice
        .expect("the message", message_with_body("wake up"))
        .await;
    alice.put_back(got);
    let order: Vec<String> = alice
        .take_buffered(|e| e.name() == "message")
        .iter()
        .map(|e| {
            item_id(e).unwrap_or_else(|| {
                if e.get_child("body", ns::CLIENT).is_some() {
                    "body".into()
                } else {
                    "chatstate".into()
                }
            })
        })
        .collect();
    assert_eq!(
        order,
        ["n0", "n1", "chatstate", "body"],
        "in the order sent"
    );
}

#[tokio::test]
async fn a_batch_goes_out_when_enough_bytes_are_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, "csi_max_held_bytes = 2000", "").await;
    let (mut alice, mut bob, mut carol) = setup(&server).await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice.sync().await;
    // About 700 bytes each: the third passes 2,000.
    let pad = "p".repeat(550);
    publish_seen(&mut carol, &mut bob, "b0", &pad).await;
    publish_seen(&mut carol, &mut bob, "b1", &pad).await;
    nothing_for_a_while(&mut alice).await;
    publish_seen(&mut carol, &mut bob, "b2", &pad).await;
    for id in ["b0", "b1", "b2"] {
        alice.expect("the batch", is_item(id)).await;
    }
}

#[tokio::test]
async fn a_batch_goes_out_when_the_oldest_is_old_enough() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, "csi_max_delay_secs = 1", "").await;
    let (mut alice, mut bob, mut carol) = setup(&server).await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice.sync().await;
    publish_seen(&mut carol, &mut bob, "old", "x").await;
    alice
        .expect_within(
            "the held notification after its delay",
            Duration::from_secs(10),
            is_item("old"),
        )
        .await;
}

#[tokio::test]
async fn what_was_held_survives_a_stream_resumption() {
    let server = Server::start().await;
    let (mut alice, mut bob, mut carol) = setup(&server).await;
    alice
        .send(&format!("<enable xmlns='{SM}' resume='true'/>"))
        .await;
    let enabled = alice.expect("<enabled/>", |e| e.is("enabled", SM)).await;
    let id = enabled.attr("id").expect("id").to_owned();
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice.sync().await;
    alice.send(&format!("<r xmlns='{SM}'/>")).await;
    let _ = alice.expect("<a/>", |e| e.is("a", SM)).await;
    publish_seen(&mut carol, &mut bob, "h0", "x").await;
    publish_seen(&mut carol, &mut bob, "h1", "x").await;
    drop(alice);
    publish_seen(&mut carol, &mut bob, "h2", "x").await;

    let (mut again, _) = server.connect_tls().await;
    again.auth_plain("alice", PW).await.expect("login");
    again.open_stream().await;
    // Everything alice received was the sync's ping result: acknowledge all but it...
    again
        .send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    again.expect("<resumed/>", |e| e.is("resumed", SM)).await;
    // ...so it comes again, then the held notifications, then the one queued meanwhile.
    for n in ["h0", "h1", "h2"] {
        again.expect("every notification once", is_item(n)).await;
    }
    again.sync().await;
    again.assert_none("a notification twice", |e| item_id(e).is_some());
}

/// A node the subscriber marked urgent (subscription option `x-hydrant#urgent`) is
/// delivered at once while the client is inactive; its other nodes wait. The option is
/// kept across a restart.
#[tokio::test]
async fn an_urgent_node_is_not_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in(dir, "").await;
    let (mut alice, mut bob, mut carol) = setup(&server).await;
    let res = carol
        .iq(
            "set",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{}'><create node='alerts'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    subscribe(
        &mut alice,
        SVC,
        "alerts",
        "alice@localhost",
        Some(
            "<x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field>\
             <field var='x-hydrant#urgent'><value>1</value></field></x>",
        ),
    )
    .await;
    subscribe(&mut bob, SVC, "alerts", "bob@localhost", None).await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice.sync().await;
    publish_seen(&mut carol, &mut bob, "f0", "x").await;
    publish(&mut carol, SVC, "alerts", "a0", &entry("fire")).await;
    // The urgent one comes at once and takes the held one along, in order.
    alice.expect("the urgent notification", is_item("a0")).await;
    let got: Vec<String> = alice
        .take_buffered(|e| item_id(e).is_some())
        .iter()
        .filter_map(item_id)
        .collect();
    assert_eq!(got, ["f0"], "the held one came first");

    // The option is stored: after a restart the node is still urgent for alice.
    drop((alice, bob, carol));
    let server = server.restart().await;
    let mut carol = server.online("carol", PW, "desk").await;
    let mut alice = server.login("alice", PW, "phone").await;
    alice.send_presence("").await;
    alice.send(&format!("<inactive xmlns='{CSI}'/>")).await;
    alice.sync().await;
    publish(&mut carol, SVC, "alerts", "a1", &entry("fire")).await;
    alice.expect("urgent after a restart", is_item("a1")).await;
}
