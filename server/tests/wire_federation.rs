//! Federation between two hydrant servers on loopback: `a.test` and `b.test`, each with
//! its pubsub service, found through `[s2s] overrides` (DNS SRV resolution has its own
//! tests in the s2s crate). Streams are encrypted with STARTTLS; the generated
//! certificates are self-signed, so each server authenticates the other with Server
//! Dialback (XEP-0220), calling the other's authoritative side back.

mod common;

use common::pubsub::{PW, assert_result, entry, publish};
use common::{Client, Server, presence};
use hydrant_proto::{Element, ns};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `[s2s]` for a server listening on `port` that finds `other` (and its pubsub service)
/// on `other_port`.
fn s2s(port: u16, other: &str, other_port: u16) -> String {
    format!(
        "[s2s]\n\
         listen = [\"127.0.0.1:{port}\"]\n\
         negotiate_timeout_secs = 10\n\
         [s2s.overrides]\n\
         \"{other}\" = [\"127.0.0.1:{other_port}\"]\n\
         \"pubsub.{other}\" = [\"127.0.0.1:{other_port}\"]\n"
    )
}

fn message_from(from: &str) -> impl Fn(&Element) -> bool + '_ {
    move |e| e.name() == "message" && e.attr("from") == Some(from)
}

async fn online(server: &Server, user: &str) -> Client {
    server.add_user(user, PW);
    server.online(user, PW, "phone").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_exchange_messages_subscriptions_and_pubsub_events() {
    let (pa, pb) = (free_port(), free_port());
    let a = Server::start_domain("a.test", &s2s(pa, "b.test", pb)).await;
    let b = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    let mut alice = online(&a, "alice").await;
    let mut bob = online(&b, "bob").await;

    // A message from a.test to b.test: a stream from a to b, authenticated by b calling
    // a back.
    alice
        .send("<message to='bob@b.test' type='chat' id='m1'><body>hello bob</body></message>")
        .await;
    let m = bob
        .expect("alice's message", message_from("alice@a.test/phone"))
        .await;
    assert_eq!(m.attr("id"), Some("m1"), "{m}");
    assert!(m.to_string().contains("hello bob"), "{m}");

    // And back: the other direction has a stream of its own.
    bob.send(
        "<message to='alice@a.test/phone' type='chat' id='m2'><body>hi alice</body></message>",
    )
    .await;
    let m = alice
        .expect("bob's answer", message_from("bob@b.test/phone"))
        .await;
    assert!(m.to_string().contains("hi alice"), "{m}");

    // A presence subscription request crosses with the requester's bare JID.
    alice
        .send("<presence to='bob@b.test' type='subscribe'/>")
        .await;
    bob.expect(
        "alice's subscription request",
        presence("alice@a.test", Some("subscribe")),
    )
    .await;

    // Pubsub: bob subscribes to a node of pubsub.a.test from b.test, and alice's publish
    // reaches him through the service's own stream to b.test.
    let res = alice
        .iq(
            "set",
            Some("pubsub.a.test"),
            &format!(
                "<pubsub xmlns='{}'><create node='news'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "create news");
    let res = bob
        .iq(
            "set",
            Some("pubsub.a.test"),
            &format!(
                "<pubsub xmlns='{}'><subscribe node='news' jid='bob@b.test/phone'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "bob subscribes across servers");
    publish(&mut alice, "pubsub.a.test", "news", "n1", &entry("first")).await;
    let n = bob
        .expect("the notification", message_from("pubsub.a.test"))
        .await;
    let item = n
        .get_child("event", ns::PUBSUB_EVENT)
        .and_then(|e| e.get_child("items", ns::PUBSUB_EVENT))
        .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
        .unwrap_or_else(|| panic!("no item: {n}"));
    assert_eq!(item.attr("id"), Some("n1"), "{n}");
}

/// A stanza for a domain nobody serves comes back with an error after the configured
/// time, from the one routing point (RFC 6120 10.4.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_bounces_what_waited_for_it() {
    let dead = free_port();
    let extra = format!(
        "[s2s]\n\
         listen = [\"127.0.0.1:0\"]\n\
         give_up_after_secs = 1\n\
         connect_timeout_secs = 1\n\
         [s2s.overrides]\n\
         \"down.test\" = [\"127.0.0.1:{dead}\"]\n"
    );
    let a = Server::start_domain("a.test", &extra).await;
    let mut alice = online(&a, "alice").await;
    alice
        .send("<message to='carol@down.test' type='chat' id='d1'><body>anyone?</body></message>")
        .await;
    let err = alice
        .expect("the bounce", |e| {
            e.name() == "message" && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(err.attr("id"), Some("d1"), "{err}");
    assert_eq!(err.attr("from"), Some("carol@down.test"), "{err}");
    assert_eq!(
        common::stanza_error(&err).as_deref(),
        Some("remote-server-timeout"),
        "{err}"
    );
}
