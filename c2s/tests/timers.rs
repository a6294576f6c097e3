//! Timers on paused tokio time: the authentication timeout, XEP-0199 pings and whitespace
//! keepalives. Durations are measured on the paused clock, so they are exact.

mod common;

use std::time::Duration;

use common::{DOMAIN, Harness, Record, config};
use hydrant_proto::{Element, ns};
use tokio::time::Instant;

const LONG: Duration = Duration::from_hours(1);

#[tokio::test(start_paused = true)]
async fn unauthenticated_stream_times_out() {
    let h = Harness::with_alice();
    assert_eq!(h.shared.cfg.auth_timeout, Duration::from_secs(30));
    let start = Instant::now();
    let mut c = h.connect(true);
    c.open().await;
    c.expect_stream_error_within("connection-timeout", Duration::from_mins(1))
        .await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

#[tokio::test(start_paused = true)]
async fn auth_timeout_runs_from_accept_even_for_a_chatty_client() {
    let mut cfg = config();
    cfg.header_timeout = Duration::from_secs(25);
    let h = Harness::new(cfg);
    let start = Instant::now();
    let mut c = h.connect(true);
    // No header yet; whitespace is not progress.
    for _ in 0..2 {
        assert!(c.is_silent_for(Duration::from_secs(10)).await);
        c.send(" ").await;
    }
    c.send(&common::header(DOMAIN)).await;
    c.expect_open().await;
    c.expect_features().await;
    c.expect_stream_error_within("connection-timeout", Duration::from_mins(1))
        .await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

/// Hardening issue item 4: a client that connects and never sends its header is gone
/// after `header_timeout` (10 s), not after the whole authentication timeout.
#[tokio::test(start_paused = true)]
async fn missing_stream_header_times_out_early() {
    let h = Harness::with_alice();
    assert_eq!(h.shared.cfg.header_timeout, Duration::from_secs(10));
    let start = Instant::now();
    let mut c = h.connect(true);
    c.expect_open().await;
    c.expect_stream_error_within("connection-timeout", Duration::from_mins(1))
        .await;
    assert_eq!(start.elapsed(), Duration::from_secs(10));
}

/// The restart after SASL success waits for a new header under the same short deadline.
#[tokio::test(start_paused = true)]
async fn header_after_sasl_restart_is_due_within_the_header_timeout() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.plain("", "alice", "secret").await.expect("PLAIN login");
    let restarted = Instant::now();
    c.expect_open().await;
    c.expect_stream_error_within("connection-timeout", Duration::from_mins(1))
        .await;
    assert_eq!(restarted.elapsed(), Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn authenticated_but_unbound_stream_times_out() {
    let h = Harness::with_alice();
    let start = Instant::now();
    let mut c = h.connect(true);
    c.login("alice", "secret").await;
    c.expect_stream_error_within("connection-timeout", Duration::from_mins(1))
        .await;
    assert_eq!(start.elapsed(), Duration::from_secs(30));
}

/// alice bound to /home with pings every `interval`, no keepalives.
async fn pinged(interval: Duration, timeout: Duration) -> (Harness, common::Client, String) {
    let mut cfg = config();
    cfg.ping_interval = interval;
    cfg.ping_timeout = timeout;
    cfg.whitespace_keepalive = LONG;
    let mut h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    let mut c = h.connect(true);
    let jid = c.bound_alice("home").await;
    assert!(matches!(h.record().await, Record::Bind(_)));
    (h, c, jid)
}

/// The next element must be the server's XEP-0199 ping to `jid`; returns it.
async fn expect_ping(c: &mut common::Client, jid: &str, wait: Duration) -> Element {
    let ping = c.expect_element_within(wait).await;
    assert!(ping.is("iq", ns::CLIENT), "{ping:?}");
    assert_eq!(ping.attr("type"), Some("get"), "{ping:?}");
    assert_eq!(ping.attr("from"), Some(DOMAIN));
    assert_eq!(ping.attr("to"), Some(jid));
    assert!(ping.attr("id").is_some_and(|id| !id.is_empty()));
    assert_eq!(ping.children().count(), 1);
    assert!(ping.get_child("ping", ns::PING).is_some(), "{ping:?}");
    ping
}

fn pong(ping: &Element) -> String {
    format!(
        "<iq type='result' id='{}' to='{DOMAIN}'/>",
        ping.attr("id").unwrap()
    )
}

#[tokio::test(start_paused = true)]
async fn bound_session_is_not_subject_to_the_auth_timeout() {
    let (_h, mut c, _) = pinged(Duration::from_mins(5), Duration::from_mins(1)).await;
    assert!(c.is_silent_for(Duration::from_secs(299)).await);
}

#[tokio::test(start_paused = true)]
async fn idle_session_is_pinged_and_an_answer_keeps_it() {
    let (_h, mut c, jid) = pinged(Duration::from_mins(5), Duration::from_mins(1)).await;
    let start = Instant::now();
    let ping = expect_ping(&mut c, &jid, LONG).await;
    assert_eq!(start.elapsed(), Duration::from_mins(5));
    // Answer a little later, as a real client over a real network would.
    assert!(c.is_silent_for(Duration::from_secs(1)).await);
    c.send(&pong(&ping)).await;
    // The session lives on: no timeout, and the next ping comes a full interval after
    // the answer.
    let answered = Instant::now();
    let ping2 = expect_ping(&mut c, &jid, LONG).await;
    assert_eq!(answered.elapsed(), Duration::from_mins(5));
    c.send(&pong(&ping2)).await;
    assert!(c.is_silent_for(Duration::from_secs(299)).await);
}

#[tokio::test(start_paused = true)]
async fn ping_answered_at_once_keeps_the_session() {
    let (_h, mut c, jid) = pinged(Duration::from_mins(5), Duration::from_mins(1)).await;
    let ping = expect_ping(&mut c, &jid, LONG).await;
    // Answered in the same instant (on the paused clock no time passes at all).
    c.send(&pong(&ping)).await;
    let answered = Instant::now();
    expect_ping(&mut c, &jid, LONG).await;
    assert_eq!(answered.elapsed(), Duration::from_mins(5));
}

#[tokio::test(start_paused = true)]
async fn unanswered_ping_is_connection_timeout() {
    let (mut h, mut c, jid) = pinged(Duration::from_mins(5), Duration::from_mins(1)).await;
    expect_ping(&mut c, &jid, LONG).await;
    let pinged_at = Instant::now();
    c.expect_stream_error_within("connection-timeout", LONG)
        .await;
    assert_eq!(pinged_at.elapsed(), Duration::from_mins(1));
    assert!(matches!(h.record().await, Record::Unbind(_)));
}

#[tokio::test(start_paused = true)]
async fn client_traffic_postpones_the_ping() {
    let (_h, mut c, jid) = pinged(Duration::from_mins(5), Duration::from_mins(1)).await;
    // A whitespace keepalive from the client every 200 s: no ping is ever needed.
    for _ in 0..5 {
        assert!(c.is_silent_for(Duration::from_secs(200)).await);
        c.send(" ").await;
    }
    let last = Instant::now();
    expect_ping(&mut c, &jid, LONG).await;
    assert_eq!(last.elapsed(), Duration::from_mins(5));
}

#[tokio::test(start_paused = true)]
async fn whitespace_keepalive_after_output_silence() {
    let mut cfg = config();
    cfg.whitespace_keepalive = Duration::from_mins(1);
    cfg.ping_interval = LONG;
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    let mut c = h.connect(true);
    c.bound_alice("home").await;
    // The bind result was the last thing written.
    let mut last = Instant::now();
    for _ in 0..3 {
        let bytes = c.next_raw_within(LONG).await;
        assert_eq!(bytes, b" ");
        assert_eq!(last.elapsed(), Duration::from_mins(1));
        last = Instant::now();
    }
    // Other output resets the keepalive clock.
    assert!(c.is_silent_for(Duration::from_secs(30)).await);
    let outbox = h.backend.outbox(&format!("alice@{DOMAIN}/home"));
    outbox
        .push(bytes::Bytes::from_static(
            b"<message from='bob@example.com'/>",
        ))
        .unwrap();
    let el = c.expect_element().await;
    assert!(el.is("message", ns::CLIENT));
    let wrote = Instant::now();
    assert_eq!(c.next_raw_within(LONG).await, b" ");
    assert_eq!(wrote.elapsed(), Duration::from_mins(1));
}
