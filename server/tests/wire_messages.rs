//! Wire tests: message routing (RFC 6121 section 8.5), offline storage with XEP-0203
//! delay stamps, and 'from' stamping / spoofing (RFC 6120 8.1.2.1).

mod common;

use common::{Client, Server, message_with_body, new_id, stanza_error};
use hydrant_proto::{Element, ns};

fn body(e: &Element) -> Option<String> {
    e.get_child("body", ns::CLIENT).map(Element::text)
}

/// An error reply to the stanza with this id.
fn error_to(id: &str) -> impl Fn(&Element) -> bool + use<> {
    let id = id.to_owned();
    move |e: &Element| e.attr("id") == Some(id.as_str()) && e.attr("type") == Some("error")
}

async fn send_message(c: &mut Client, to: &str, kind: &str, text: &str) -> String {
    let id = new_id();
    c.send(&format!(
        "<message to='{to}' type='{kind}' id='{id}'><body>{text}</body></message>"
    ))
    .await;
    id
}

#[tokio::test]
async fn full_jid_and_bare_jid_delivery() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    let mut b1 = server.online("bob", "pw-bob", "one").await;
    let mut b2 = server.login("bob", "pw-bob", "two").await;
    b2.send_presence("<priority>5</priority>").await;
    let mut b3 = server.login("bob", "pw-bob", "three").await;
    b3.send_presence("<priority>-1</priority>").await;
    // Bound but never available: not a candidate for bare-JID delivery.
    let mut b4 = server.login("bob", "pw-bob", "four").await;

    // To a full JID: that resource only, stamped with the sender's full JID.
    send_message(&mut a, "bob@localhost/three", "chat", "to three").await;
    let m = b3.expect("message", message_with_body("to three")).await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"), "{m}");
    assert_eq!(m.attr("to"), Some("bob@localhost/three"), "{m}");
    assert_eq!(m.attr("type"), Some("chat"), "{m}");

    // To the bare JID: every available resource with non-negative priority (8.5.2.1.1).
    send_message(&mut a, "bob@localhost", "normal", "to all").await;
    for c in [&mut b1, &mut b2] {
        let m = c
            .expect("bare-JID message", message_with_body("to all"))
            .await;
        assert_eq!(m.attr("from"), Some("alice@localhost/home"), "{m}");
    }
    a.sync().await;
    for c in [&mut b1, &mut b2, &mut b3, &mut b4] {
        c.sync().await;
        c.assert_none("a second copy or a copy to an ineligible resource", |e| {
            e.name() == "message"
        });
    }
}

#[tokio::test]
async fn undeliverable_messages_bounce() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    let mut b = server.online("bob", "pw-bob", "work").await;

    // No such user (8.5.2 / 8.5.3): <service-unavailable/>, from the addressed JID.
    let id = send_message(&mut a, "ghost@localhost", "chat", "anyone?").await;
    let e = a.expect("error", error_to(&id)).await;
    assert_eq!(
        stanza_error(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );
    assert_eq!(e.attr("from"), Some("ghost@localhost"), "{e}");
    assert_eq!(e.attr("to"), Some("alice@localhost/home"), "{e}");
    // Same for a full JID of a user that does not exist.
    let id = send_message(&mut a, "ghost@localhost/r", "chat", "anyone?").await;
    let e = a.expect("error", error_to(&id)).await;
    assert_eq!(
        stanza_error(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );

    // groupchat to a bare JID (8.5.2.1.1), even of an online user.
    let id = send_message(&mut a, "bob@localhost", "groupchat", "room?").await;
    let e = a.expect("error", error_to(&id)).await;
    assert_eq!(
        stanza_error(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );
    // groupchat to an unavailable full JID (8.5.3.2.1).
    let id = send_message(&mut a, "bob@localhost/nope", "groupchat", "room?").await;
    let e = a.expect("error", error_to(&id)).await;
    assert_eq!(
        stanza_error(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );

    // Another domain: no s2s yet, so <remote-server-not-found/>, never silence.
    let id = send_message(&mut a, "romeo@montague.example", "chat", "hi").await;
    let e = a.expect("error", error_to(&id)).await;
    assert_eq!(
        stanza_error(&e).as_deref(),
        Some("remote-server-not-found"),
        "{e}"
    );

    // An error message is never answered with an error (RFC 6120 8.3.1).
    a.send(
        "<message to='ghost@localhost' type='error' id='e1'><error type='cancel'>\
            <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    )
    .await;
    a.sync().await;
    a.assert_none("an error about an error", error_to("e1"));

    b.sync().await;
    b.assert_none("a bounced message", |e| e.name() == "message");
}

#[tokio::test]
async fn offline_messages_delivered_after_initial_presence_with_delay() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    send_message(&mut a, "bob@localhost", "chat", "first").await;
    // To an unavailable full JID, chat/normal are handled like the bare JID (8.5.3.2.1).
    send_message(&mut a, "bob@localhost/gone", "normal", "second").await;
    // A headline for an offline user is dropped, not stored (8.5.2.2.1).
    send_message(&mut a, "bob@localhost", "headline", "news").await;
    a.sync().await;
    a.assert_none("an error for a storable message", |e| {
        e.attr("type") == Some("error")
    });

    // Bound without presence: nothing yet.
    let mut b = server.login("bob", "pw-bob", "work").await;
    b.sync().await;
    b.assert_none("offline message before initial presence", |e| {
        e.name() == "message"
    });
    b.send_presence("").await;
    for text in ["first", "second"] {
        let m = b.expect("offline message", message_with_body(text)).await;
        assert_eq!(m.attr("from"), Some("alice@localhost/home"), "{m}");
        let delay = m
            .get_child("delay", ns::DELAY)
            .unwrap_or_else(|| panic!("XEP-0203 delay: {m}"));
        assert_eq!(delay.attr("from"), Some("localhost"), "{m}");
        let stamp = delay.attr("stamp").expect("stamp");
        assert!(
            stamp.len() >= 20 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "XEP-0082 UTC date-time: {stamp}"
        );
    }
    b.sync().await;
    b.assert_none("the dropped headline", |e| e.name() == "message");

    // Delivered once: not again at the next login.
    b.close().await;
    let mut b = server.online("bob", "pw-bob", "work").await;
    b.sync().await;
    b.assert_none("offline messages delivered twice", |e| {
        e.name() == "message"
    });
    // While online, nothing is stored or delayed.
    send_message(&mut a, "bob@localhost", "chat", "live").await;
    let m = b.expect("live message", message_with_body("live")).await;
    assert!(m.get_child("delay", ns::DELAY).is_none(), "{m}");
}

#[tokio::test]
async fn negative_priority_only_means_offline_storage() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    let mut b = server.login("bob", "pw-bob", "shy").await;
    b.send_presence("<priority>-1</priority>").await;
    // 8.5.2.1.1: no resource with non-negative priority, so the message is stored.
    send_message(&mut a, "bob@localhost", "chat", "for later").await;
    a.sync().await;
    b.sync().await;
    b.assert_none("a message to a negative-priority resource", |e| {
        e.name() == "message"
    });
    let mut b2 = server.online("bob", "pw-bob", "main").await;
    let m = b2
        .expect("stored message", message_with_body("for later"))
        .await;
    assert!(m.get_child("delay", ns::DELAY).is_some(), "{m}");
}

#[tokio::test]
async fn offline_storage_is_capped() {
    let server = Server::start_with("[offline]\nmax_messages_per_user = 2\n").await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    let id1 = send_message(&mut a, "bob@localhost", "chat", "one").await;
    let id2 = send_message(&mut a, "bob@localhost", "chat", "two").await;
    let id3 = send_message(&mut a, "bob@localhost", "chat", "three").await;
    // RFC 6121 8.5.2.2.1 (storage full): <service-unavailable/> to the sender.
    let e = a.expect("error for the third", error_to(&id3)).await;
    assert_eq!(
        stanza_error(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );
    a.sync().await;
    a.assert_none("errors for stored messages", |e| {
        error_to(&id1)(e) || error_to(&id2)(e)
    });
    let mut b = server.online("bob", "pw-bob", "work").await;
    b.expect("one", message_with_body("one")).await;
    b.expect("two", message_with_body("two")).await;
    b.sync().await;
    b.assert_none("the refused message", |e| e.name() == "message");
}

#[tokio::test]
async fn from_is_stamped_and_spoofing_ends_the_stream() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    let mut b = server.online("bob", "pw-bob", "work").await;

    // No 'from': the server stamps the full JID (RFC 6120 8.1.2.1).
    a.send("<message to='bob@localhost/work' type='chat'><body>no from</body></message>")
        .await;
    let m = b.expect("message", message_with_body("no from")).await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"), "{m}");
    // The bare JID is an acceptable 'from'; it is still stamped with the full JID.
    a.send(
        "<message from='alice@localhost' to='bob@localhost/work' type='chat'>\
         <body>bare from</body></message>",
    )
    .await;
    let m = b.expect("message", message_with_body("bare from")).await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"), "{m}");

    // Someone else's JID: <invalid-from/> stream error (RFC 6120 4.9.3.9), not delivered.
    a.send(
        "<message from='mallory@localhost/x' to='bob@localhost/work' type='chat'>\
         <body>spoofed</body></message>",
    )
    .await;
    assert_eq!(a.expect_stream_error().await, "invalid-from");
    a.expect_closed().await;
    b.sync().await;
    b.assert_none("the spoofed message", message_with_body("spoofed"));
    // Alice's session is gone: bob (not subscribed) gets nothing; a new login works.
    let mut a = server.online("alice", "pw-alice", "home").await;
    a.send("<message to='bob@localhost/work' type='chat'><body>again</body></message>")
        .await;
    b.expect("message after relogin", message_with_body("again"))
        .await;
}

#[tokio::test]
async fn message_to_the_server_itself() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a = server.online("alice", "pw-alice", "home").await;
    // The server offers no message service: RFC 6120 10.3 / RFC 6121 8.5.1.
    let id = send_message(&mut a, "localhost", "chat", "hello server").await;
    let e = a.expect("error", error_to(&id)).await;
    assert_eq!(
        stanza_error(&e).as_deref(),
        Some("service-unavailable"),
        "{e}"
    );
    assert_eq!(
        body(&e).as_deref(),
        Some("hello server"),
        "the original is included: {e}"
    );
}

#[tokio::test]
async fn message_without_to_goes_to_the_senders_bare_jid() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut home = server.online("alice", "pw-alice", "home").await;
    let mut phone = server.online("alice", "pw-alice", "phone").await;
    // RFC 6120 10.3.1: a message with no 'to' is handled as if addressed to the
    // sender's bare JID (here: delivered to her available resources).
    home.send("<message type='chat' id='self1'><body>note to self</body></message>")
        .await;
    let m = phone
        .expect(
            "the message on the other resource",
            message_with_body("note to self"),
        )
        .await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"), "{m}");
    home.sync().await;
    home.assert_none("an error", error_to("self1"));
}
