//! Wire test: stanzas for another domain are decided in one place (`router/remote.rs`).
//! Until s2s exists that place refuses them with `<remote-server-not-found/>` (RFC 6120
//! 10.4.3), and the error goes back to whoever sent the stanza: the client for its
//! messages, iqs and presence; the pubsub service for a notification to a remote
//! subscriber, never the sessions behind the service's address (for PEP, the owner's).
//!
//! What reached the pubsub service is read through an in-process metrics recorder; this
//! binary holds this one test so no other server adds to the counters.

mod common;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::pubsub::{PW, assert_result, entry, publish, users};
use common::{Client, DOMAIN, Server, stanza_error};
use hydrant_proto::{Element, ns};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use tokio::sync::watch;

const SVC: &str = "pubsub.localhost";
const REMOTE: &str = "carol@remote.example";

/// The counters this test watches, as watch channels so the test waits on events.
struct Watched {
    /// `hydrant_pubsub_notifications_undeliverable_total`: errors that reached a service.
    undeliverable: watch::Sender<u64>,
    /// `hydrant_router_remote_refused_total`, all kinds.
    refused: watch::Sender<u64>,
}

fn watched() -> &'static Watched {
    static W: OnceLock<Watched> = OnceLock::new();
    W.get_or_init(|| Watched {
        undeliverable: watch::channel(0).0,
        refused: watch::channel(0).0,
    })
}

struct Count(Which);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        (self.0)(watched()).send_modify(|v| *v += value);
    }

    fn absolute(&self, value: u64) {
        (self.0)(watched()).send_modify(|v| *v = value);
    }
}

struct Recorder;

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let which: Which = match key.name() {
            "hydrant_pubsub_notifications_undeliverable_total" => |w| &w.undeliverable,
            "hydrant_router_remote_refused_total" => |w| &w.refused,
            _ => return Counter::noop(),
        };
        Counter::from_arc(Arc::new(Count(which)))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

/// Waits until the counter reaches `n` (the fan-out runs after the publish is answered).
async fn reaches(which: Which, n: u64, what: &str) {
    let mut rx = which(watched()).subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(|v| *v >= n)).await;
    assert!(
        waited.is_ok(),
        "{what}: counter stayed at {}",
        *which(watched()).borrow()
    );
}

type Which = fn(&Watched) -> &watch::Sender<u64>;

fn refused(w: &Watched) -> &watch::Sender<u64> {
    &w.refused
}

fn undeliverable(w: &Watched) -> &watch::Sender<u64> {
    &w.undeliverable
}

fn current(which: Which) -> u64 {
    *which(watched()).borrow()
}

fn is_error_from<'a>(name: &'a str, from: &'a str) -> impl Fn(&Element) -> bool + 'a {
    move |e| e.name() == name && e.attr("type") == Some("error") && e.attr("from") == Some(from)
}

/// Sends `xml` and returns the error stanza that comes back from `from`.
async fn bounced(c: &mut Client, name: &str, from: &str, xml: &str) -> Element {
    c.send(xml).await;
    c.expect(
        &format!("{name} error from {from}"),
        is_error_from(name, from),
    )
    .await
}

#[tokio::test]
async fn stanzas_for_another_domain_are_refused_in_one_place() {
    metrics::set_global_recorder(Recorder).expect("the only recorder of this test binary");
    let server = Server::start().await;
    users(&server, &["alice"]);
    let mut alice = server.online("alice", PW, "phone").await;

    // A message: the error comes from the address it was sent to (RFC 6120 8.3.1).
    let err = bounced(
        &mut alice,
        "message",
        REMOTE,
        &format!("<message to='{REMOTE}' type='chat' id='m1'><body>hi</body></message>"),
    )
    .await;
    assert_eq!(
        stanza_error(&err).as_deref(),
        Some("remote-server-not-found"),
        "{err}"
    );
    assert_eq!(err.attr("id"), Some("m1"), "{err}");

    // An iq to another server.
    let res = alice
        .iq(
            "get",
            Some("remote.example"),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("remote-server-not-found"),
        "{res}"
    );
    assert_eq!(res.attr("from"), Some("remote.example"), "{res}");

    // Directed presence and a subscription request.
    let to_full = format!("{REMOTE}/laptop");
    let err = bounced(
        &mut alice,
        "presence",
        &to_full,
        &format!("<presence to='{to_full}'/>"),
    )
    .await;
    assert_eq!(
        stanza_error(&err).as_deref(),
        Some("remote-server-not-found"),
        "{err}"
    );
    let err = bounced(
        &mut alice,
        "presence",
        REMOTE,
        &format!("<presence to='{REMOTE}' type='subscribe'/>"),
    )
    .await;
    assert_eq!(
        stanza_error(&err).as_deref(),
        Some("remote-server-not-found"),
        "{err}"
    );

    // An error stanza is refused too, but never answered with another error.
    let before = current(refused);
    alice
        .send(&format!(
            "<message to='{REMOTE}' type='error' id='e1'><error type='cancel'>\
             <item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>"
        ))
        .await;
    reaches(refused, before + 1, "the error message was routed").await;
    alice.sync().await;
    alice.assert_none("error for an error", is_error_from("message", REMOTE));

    // A pubsub notification to a remote subscriber (set by the node's owner, XEP-0060
    // 8.8.2): the service gets the error, the owner's client does not.
    let res = alice
        .iq(
            "set",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{}'><create node='news'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "create");
    let owner_subs = |node: &str| {
        format!(
            "<pubsub xmlns='{}'><subscriptions node='{node}'>\
             <subscription jid='{REMOTE}' subscription='subscribed'/></subscriptions></pubsub>",
            ns::PUBSUB_OWNER
        )
    };
    let res = alice.iq("set", Some(SVC), &owner_subs("news")).await;
    assert_result(&res, "owner subscribes a remote JID");
    let before = current(undeliverable);
    publish(&mut alice, SVC, "news", "n1", &entry("one")).await;
    reaches(
        undeliverable,
        before + 1,
        "the notification's error reached the service",
    )
    .await;
    alice.sync().await;
    alice.assert_none("notification error", |e| e.attr("type") == Some("error"));

    // The same from alice's PEP service, whose address is her bare JID: her own sessions
    // must not get the error.
    let bare = format!("alice@{DOMAIN}");
    publish(&mut alice, &bare, "urn:example:pep", "p1", &entry("pep")).await;
    let res = alice
        .iq("set", Some(&bare), &owner_subs("urn:example:pep"))
        .await;
    assert_result(&res, "owner subscribes a remote JID to a PEP node");
    let before = current(undeliverable);
    publish(
        &mut alice,
        &bare,
        "urn:example:pep",
        "p2",
        &entry("pep two"),
    )
    .await;
    reaches(
        undeliverable,
        before + 1,
        "the PEP notification's error reached the service",
    )
    .await;
    alice.sync().await;
    alice.assert_none("PEP notification error", |e| {
        e.attr("type") == Some("error")
    });

    // The server kept serving: a local round trip still works.
    alice.sync().await;
}
