//! Wire tests: XEP-0198 stream management on c2s (issue 11, item 2).
//!
//! Acks count stanzas both ways; a session whose TCP connection is cut waits for its
//! client, which resumes it on a new connection and gets every stanza it had not
//! acknowledged, and everything routed to it meanwhile (pubsub notifications included),
//! exactly once and in order; nobody else can resume it; when nobody comes back, what
//! the client never acknowledged is stored or bounced as RFC 6121 says; a client that
//! never acknowledges is a slow consumer.

mod common;

use common::pubsub::{PW, entry, publish, subscribe, users};
use common::{Client, Server, befriend, is_reply, message_with_body, new_id, presence};
use hydrant_proto::{Element, ns};

const SM: &str = "urn:xmpp:sm:3";
const SVC: &str = "pubsub.localhost";

fn is_sm(name: &'static str) -> impl Fn(&Element) -> bool {
    move |e| e.is(name, SM)
}

fn h_of(e: &Element) -> u32 {
    e.attr("h")
        .and_then(|h| h.parse().ok())
        .unwrap_or_else(|| panic!("no h: {e}"))
}

/// Logs in up to (not including) binding; returns the features offered after SASL.
async fn authenticate(server: &Server, user: &str) -> (Client, Element) {
    let (mut c, _) = server.connect_tls().await;
    c.auth_plain(user, PW)
        .await
        .unwrap_or_else(|f| panic!("login of {user} failed: {f}"));
    let features = c.open_stream().await;
    (c, features)
}

/// Logs in, binds, enables stream management with resumption, sends presence; returns
/// the client and the resumption id.
async fn online_with_sm(server: &Server, user: &str, resource: &str) -> (Client, String) {
    let (mut c, features) = authenticate(server, user).await;
    assert!(
        features.get_child("sm", SM).is_some(),
        "XEP-0198 offered after authentication: {features}"
    );
    c.bind(&features, resource).await;
    c.send(&format!("<enable xmlns='{SM}' resume='true'/>"))
        .await;
    let enabled = c.expect("<enabled/>", is_sm("enabled")).await;
    assert_eq!(enabled.attr("resume"), Some("true"), "{enabled}");
    let max: u64 = enabled.attr("max").and_then(|m| m.parse().ok()).unwrap();
    assert!(max > 0, "{enabled}");
    let id = enabled.attr("id").expect("a resumption id").to_owned();
    c.roster_get(None).await;
    c.send_presence("").await;
    (c, id)
}

async fn chat(from: &mut Client, to: &str, body: &str) {
    from.send(&format!(
        "<message to='{to}' type='chat' id='{}'><body>{body}</body></message>",
        new_id()
    ))
    .await;
}

fn body(e: &Element) -> Option<String> {
    (e.name() == "message")
        .then(|| e.get_child("body", ns::CLIENT).map(Element::text))
        .flatten()
}

#[tokio::test]
async fn acks_count_the_stanzas_of_each_direction() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let (mut a, _) = online_with_sm(&server, "alice", "phone").await;
    // Since <enable/>: a roster get, the presence, and now three pings.
    for _ in 0..3 {
        a.sync().await;
    }
    a.send(&format!("<r xmlns='{SM}'/>")).await;
    let ack = a.expect("<a/>", is_sm("a")).await;
    assert_eq!(h_of(&ack), 5, "{ack}");

    // The server asks for acks on its own after a burst (sm_request_every, 16).
    let mut b = server.online("bob", PW, "desk").await;
    for i in 0..20 {
        chat(&mut b, &a.jid.clone(), &format!("m{i}")).await;
    }
    a.expect("an <r/> from the server", is_sm("r")).await;
    for i in 0..20 {
        a.expect("every message", message_with_body(&format!("m{i}")))
            .await;
    }
    // Stanzas received since <enable/>: roster result, presence echo, three ping
    // results, 20 messages (the <r/> and <a/> are not stanzas).
    a.send(&format!("<a xmlns='{SM}' h='25'/>")).await;
    a.sync().await;
    // More than was ever sent: the stream ends (XEP-0198 4).
    a.send(&format!("<a xmlns='{SM}' h='1000'/>")).await;
    assert_eq!(a.expect_stream_error().await, "undefined-condition");
}

#[tokio::test]
async fn enable_needs_a_bound_resource_and_works_once() {
    let server = Server::start().await;
    users(&server, &["alice"]);
    let (mut c, features) = authenticate(&server, "alice").await;
    c.send(&format!("<enable xmlns='{SM}'/>")).await;
    let failed = c.expect("<failed/>", is_sm("failed")).await;
    assert!(
        failed
            .get_child("unexpected-request", ns::STANZAS)
            .is_some(),
        "{failed}"
    );
    c.bind(&features, "r").await;
    c.send(&format!("<enable xmlns='{SM}'/>")).await;
    let enabled = c.expect("<enabled/>", is_sm("enabled")).await;
    assert_eq!(
        enabled.attr("resume"),
        None,
        "resumption only when asked: {enabled}"
    );
    c.send(&format!("<enable xmlns='{SM}'/>")).await;
    c.expect("<failed/> for a second enable", is_sm("failed"))
        .await;
    c.sync().await;
}

#[tokio::test]
async fn a_cut_connection_is_resumed_with_every_stanza_exactly_once() {
    let server = Server::start().await;
    users(&server, &["alice", "bob", "carol"]);
    let mut owner = server.online("carol", PW, "desk").await;
    let res = owner
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

    let (mut a, id) = online_with_sm(&server, "alice", "phone").await;
    let jid = a.jid.clone();
    subscribe(&mut a, SVC, "feed", "alice@localhost", None).await;
    let mut b = server.online("bob", PW, "desk").await;
    // Stanzas a receives since <enable/>: roster result, presence echo, subscribe result.
    let mut received: u32 = 3;
    for i in 0..5 {
        chat(&mut b, &jid, &format!("before-{i}")).await;
        a.expect("message", message_with_body(&format!("before-{i}")))
            .await;
        received += 1;
    }
    // Alice acknowledges only the first two messages, then her connection is cut
    // (no closing tag: a phone losing its network).
    a.send(&format!("<a xmlns='{SM}' h='{}'/>", received - 3))
        .await;
    let handled_by_server = {
        a.send(&format!("<r xmlns='{SM}'/>")).await;
        h_of(&a.expect("<a/>", is_sm("a")).await)
    };
    drop(a);

    // Meanwhile: three more messages and three notifications.
    for i in 0..3 {
        chat(&mut b, &jid, &format!("after-{i}")).await;
    }
    b.sync().await;
    for i in 0..3 {
        publish(&mut owner, SVC, "feed", &format!("item-{i}"), &entry("x")).await;
    }
    // Bob sees no unavailable presence: the session waits (it is still online).

    // Someone else cannot resume it; an unknown id neither.
    let (mut b2, _) = authenticate(&server, "bob").await;
    b2.send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let failed = b2.expect("<failed/>", is_sm("failed")).await;
    assert!(
        failed.get_child("item-not-found", ns::STANZAS).is_some(),
        "{failed}"
    );
    let (mut a3, _) = authenticate(&server, "alice").await;
    a3.send(&format!("<resume xmlns='{SM}' previd='not-{id}' h='0'/>"))
        .await;
    a3.expect("<failed/>", is_sm("failed")).await;

    let (mut a2, _) = authenticate(&server, "alice").await;
    a2.send(&format!(
        "<resume xmlns='{SM}' previd='{id}' h='{}'/>",
        received - 3
    ))
    .await;
    let resumed = a2.expect("<resumed/>", is_sm("resumed")).await;
    assert_eq!(resumed.attr("previd"), Some(id.as_str()), "{resumed}");
    assert_eq!(h_of(&resumed), handled_by_server, "{resumed}");
    a2.jid.clone_from(&jid);
    let mut bodies = Vec::new();
    let mut items = Vec::new();
    // Everything arrives before the reply to a ping sent now.
    let ping = new_id();
    a2.send(&format!(
        "<iq type='get' id='{ping}'><ping xmlns='urn:xmpp:ping'/></iq>"
    ))
    .await;
    a2.expect("ping reply", is_reply(&ping)).await;
    for e in a2.take_buffered(|e| e.name() == "message") {
        if let Some(b) = body(&e) {
            bodies.push(b);
        }
        if let Some(item) = e
            .get_child("event", ns::PUBSUB_EVENT)
            .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
            .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
        {
            items.push(item.attr("id").unwrap_or_default().to_owned());
        }
    }
    assert_eq!(
        bodies,
        [
            "before-2", "before-3", "before-4", "after-0", "after-1", "after-2"
        ],
        "the unacknowledged messages again, then what came meanwhile, once each"
    );
    assert_eq!(items, ["item-0", "item-1", "item-2"]);
    // The resumed session is the same one: still online to bob, same full JID.
    chat(&mut b, &jid, "later").await;
    a2.expect("a message after resuming", message_with_body("later"))
        .await;
    b.sync().await;
    b.assert_none("alice going offline", presence(&jid, Some("unavailable")));
    // The old id still resumes the session later (XEP-0198: the same id).
    drop(a2);
    let (mut a4, _) = authenticate(&server, "alice").await;
    a4.send(&format!("<resume xmlns='{SM}' previd='{id}' h='0'/>"))
        .await;
    let failed_or_resumed = a4
        .expect("an answer", |e| e.is("resumed", SM) || e.is("failed", SM))
        .await;
    // h='0' is behind what alice acknowledged: ignored, not an error.
    assert!(failed_or_resumed.is("resumed", SM), "{failed_or_resumed}");
}

#[tokio::test]
async fn a_session_nobody_resumes_stores_its_unacknowledged_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, "sm_resume_timeout_secs = 1", "").await;
    users(&server, &["alice", "bob"]);
    let (mut a, _) = online_with_sm(&server, "alice", "phone").await;
    let jid = a.jid.clone();
    let mut b = server.online("bob", PW, "desk").await;
    befriend(&mut a, &mut b).await;
    chat(&mut b, &jid, "never-acked").await;
    a.expect("message", message_with_body("never-acked")).await;
    let iq = new_id();
    b.send(&format!(
        "<iq type='get' to='{jid}' id='{iq}'><query xmlns='jabber:iq:version'/></iq>"
    ))
    .await;
    let get = iq.clone();
    a.expect("the iq", move |e| {
        e.name() == "iq" && e.attr("id") == Some(get.as_str())
    })
    .await;
    drop(a);
    // The session ends once the resumption time is over: bob sees alice go offline, and
    // gets an error for the iq alice never answered.
    b.expect("alice offline", presence(&jid, Some("unavailable")))
        .await;
    let err = b.expect("iq error", is_reply(&iq)).await;
    assert_eq!(
        common::stanza_error(&err).as_deref(),
        Some("service-unavailable"),
        "{err}"
    );
    // The message she never acknowledged waits in offline storage.
    let mut a2 = server.login("alice", PW, "phone").await;
    a2.send("<presence/>").await;
    let m = a2
        .expect(
            "the unacknowledged message, stored",
            message_with_body("never-acked"),
        )
        .await;
    assert!(m.get_child("delay", ns::DELAY).is_some(), "{m}");
    a2.sync().await;
    a2.assert_none("it twice", message_with_body("never-acked"));
}

#[tokio::test]
async fn a_client_that_never_acknowledges_is_a_slow_consumer() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, "sm_max_unacked_bytes = 4096", "").await;
    users(&server, &["alice", "bob"]);
    let (mut a, _) = online_with_sm(&server, "alice", "phone").await;
    let jid = a.jid.clone();
    let mut b = server.online("bob", PW, "desk").await;
    let pad = "y".repeat(500);
    for i in 0..20 {
        chat(&mut b, &jid, &format!("{i} {pad}")).await;
    }
    assert_eq!(a.expect_stream_error().await, "policy-violation");
}

#[tokio::test]
async fn stream_management_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, "stream_management = false", "").await;
    users(&server, &["alice"]);
    let (mut c, features) = authenticate(&server, "alice").await;
    assert!(features.get_child("sm", SM).is_none(), "{features}");
    c.bind(&features, "r").await;
    c.send(&format!("<enable xmlns='{SM}'/>")).await;
    let failed = c.expect("<failed/>", is_sm("failed")).await;
    assert!(
        failed
            .get_child("feature-not-implemented", ns::STANZAS)
            .is_some(),
        "{failed}"
    );
}

#[tokio::test]
async fn a_quiet_stream_asks_for_the_last_acks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_in_with_c2s(dir, "sm_request_after_ms = 200", "").await;
    users(&server, &["alice", "bob"]);
    let (mut a, _) = online_with_sm(&server, "alice", "phone").await;
    // The roster result and the presence echo are two stanzas, far below
    // sm_request_every: their <r/> comes from the quiet timer.
    a.expect("an <r/> after the login", is_sm("r")).await;
    let mut b = server.online("bob", PW, "desk").await;
    chat(&mut b, &a.jid.clone(), "one").await;
    a.expect("the message", message_with_body("one")).await;
    // And again for the one message.
    a.expect("an <r/> after a quiet while", is_sm("r")).await;
}

/// Hostile or broken stream-management input: a malformed `h`, a resume without its
/// attributes, an unknown element in the namespace, and the same for XEP-0352.
#[tokio::test]
async fn malformed_stream_management_and_csi_input() {
    let server = Server::start().await;
    users(&server, &["alice"]);
    let (mut c, _) = authenticate(&server, "alice").await;
    c.send(&format!("<resume xmlns='{SM}' h='1'/>")).await;
    let failed = c.expect("<failed/>", is_sm("failed")).await;
    assert!(
        failed.get_child("bad-request", ns::STANZAS).is_some(),
        "{failed}"
    );

    let (mut a, _) = online_with_sm(&server, "alice", "phone").await;
    a.send(&format!("<a xmlns='{SM}' h='lots'/>")).await;
    assert_eq!(a.expect_stream_error().await, "invalid-xml");

    let (mut b, _) = online_with_sm(&server, "alice", "tablet").await;
    b.send(&format!("<bogus xmlns='{SM}'/>")).await;
    assert_eq!(b.expect_stream_error().await, "unsupported-stanza-type");

    let (mut d, _) = online_with_sm(&server, "alice", "desk").await;
    d.send("<sleepy xmlns='urn:xmpp:csi:0'/>").await;
    assert_eq!(d.expect_stream_error().await, "unsupported-stanza-type");
}
