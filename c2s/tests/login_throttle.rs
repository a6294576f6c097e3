//! Login throttling: budgets of failed logins per client network and per account, shared
//! by every connection and checked before a credential is verified; PLAIN costs an
//! unknown user the same work as a known one.

mod common;

use std::time::Duration;

use common::{Client, Harness, assert_sasl_failure, config};
use hydrant_c2s::C2sConfig;
use hydrant_proto::{Element, ns};

fn harness(per_ip: u32, per_account: u32) -> Harness {
    let mut cfg: C2sConfig = config();
    cfg.auth_failures_per_ip_per_hour = per_ip;
    cfg.auth_failures_per_account_per_hour = per_account;
    cfg.max_auth_failures = 5;
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    h.backend.add_user("mallory", "mallory-pw");
    h
}

/// The SASL failure condition of `el`.
fn condition(el: &Element) -> String {
    assert!(el.is("failure", ns::SASL), "{el:?}");
    el.children()
        .find(|c| c.name() != "text")
        .map(|c| c.name().to_owned())
        .expect("a condition")
}

async fn opened(h: &Harness, from: &str) -> Client {
    let mut c = h.connect_from(from, true);
    c.open().await;
    c
}

#[tokio::test(start_paused = true)]
async fn parallel_connections_share_the_network_budget() {
    let h = harness(3, 0);
    // Five guesses sent at once over five connections from one address.
    let mut clients = Vec::new();
    for port in 1..=5 {
        let mut c = opened(&h, &format!("192.0.2.9:{port}")).await;
        c.send_auth("PLAIN", b"\0alice\0guess").await;
        clients.push(c);
    }
    let mut answers = Vec::new();
    for c in &mut clients {
        answers.push(condition(&c.expect_element().await));
    }
    answers.sort();
    assert_eq!(
        answers,
        [
            "not-authorized",
            "not-authorized",
            "not-authorized",
            "temporary-auth-failure",
            "temporary-auth-failure"
        ],
        "only three guesses were checked"
    );
    // The right password is not even checked now (RFC 6120 6.5.11: try again later).
    let mut c = opened(&h, "192.0.2.9:6").await;
    let refused = c.plain("", "alice", "secret").await.unwrap_err();
    assert_sasl_failure(&refused, "temporary-auth-failure");
    // Another network is not affected.
    let mut other = opened(&h, "198.51.100.1:1").await;
    other.plain("", "alice", "secret").await.unwrap();
    // One attempt comes back every 20 minutes (on a new connection: the old ones have
    // reached their authentication timeout by then).
    tokio::time::advance(Duration::from_mins(20)).await;
    let mut later = opened(&h, "192.0.2.9:7").await;
    later.plain("", "alice", "secret").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_burst_of_right_passwords_from_one_network_is_not_refused() {
    // A big NAT after a server restart: more logins at once than the failure budget.
    let h = harness(2, 0);
    let mut clients = Vec::new();
    for port in 1..=8 {
        let mut c = opened(&h, &format!("192.0.2.10:{port}")).await;
        c.send_auth("PLAIN", b"\0alice\0secret").await;
        clients.push(c);
    }
    for c in &mut clients {
        let answer = c.expect_element().await;
        assert!(answer.is("success", ns::SASL), "{answer:?}");
    }
    // The budget is intact.
    for guess in ["guess1", "guess2"] {
        let mut c = opened(&h, "192.0.2.10:9").await;
        let failure = c.plain("", "alice", guess).await.unwrap_err();
        assert_sasl_failure(&failure, "not-authorized");
    }
}

#[tokio::test(start_paused = true)]
async fn an_account_is_protected_across_networks() {
    let h = harness(0, 2);
    // Two guesses from two networks, PLAIN and SCRAM alike, use up alice's budget.
    let mut a = opened(&h, "192.0.2.1:1").await;
    assert_sasl_failure(
        &a.plain("", "alice", "guess1").await.unwrap_err(),
        "not-authorized",
    );
    let mut b = opened(&h, "[2001:db8::1]:1").await;
    assert_sasl_failure(
        &b.scram(true, "alice", "guess2").await.unwrap_err(),
        "not-authorized",
    );
    // A third network's SCRAM proof is not checked, even with the right password.
    let mut c = opened(&h, "203.0.113.1:1").await;
    assert_sasl_failure(
        &c.scram(true, "alice", "secret").await.unwrap_err(),
        "temporary-auth-failure",
    );
    // Other accounts log in as usual from the same networks.
    a.plain("", "mallory", "mallory-pw").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn logging_in_to_ones_own_account_buys_no_guesses() {
    let h = harness(2, 0);
    let mut c = opened(&h, "192.0.2.5:1").await;
    assert_sasl_failure(
        &c.plain("", "alice", "guess1").await.unwrap_err(),
        "not-authorized",
    );
    // The attacker logs in to an account of their own on another connection...
    let mut own = opened(&h, "192.0.2.5:2").await;
    own.plain("", "mallory", "mallory-pw").await.unwrap();
    // ...and still has only the one guess left.
    assert_sasl_failure(
        &c.plain("", "alice", "guess2").await.unwrap_err(),
        "not-authorized",
    );
    assert_sasl_failure(
        &c.plain("", "alice", "guess3").await.unwrap_err(),
        "temporary-auth-failure",
    );
}

#[tokio::test(start_paused = true)]
async fn throttled_attempts_count_towards_the_stream_limit() {
    let h = harness(1, 0);
    let mut c = opened(&h, "192.0.2.6:1").await;
    assert_sasl_failure(
        &c.plain("", "alice", "guess").await.unwrap_err(),
        "not-authorized",
    );
    for _ in 0..4 {
        assert_sasl_failure(
            &c.plain("", "alice", "guess").await.unwrap_err(),
            "temporary-auth-failure",
        );
    }
    c.expect_stream_error("policy-violation").await;
}

/// Wall-clock time of one failed PLAIN login on a fresh stream (the PBKDF2 run is real
/// work on the blocking pool; the paused clock only skips the failure delay).
async fn plain_cost(h: &Harness, port: u16, user: &str) -> std::time::Duration {
    let mut c = opened(h, &format!("192.0.2.8:{port}")).await;
    let start = std::time::Instant::now();
    let failure = c.plain("", user, "wrong").await.unwrap_err();
    let cost = start.elapsed();
    assert_sasl_failure(&failure, "not-authorized");
    cost
}

#[tokio::test(start_paused = true)]
async fn plain_for_an_unknown_user_costs_a_key_derivation_too() {
    let h = harness(0, 0);
    // The fastest of a few runs each, so a busy machine cannot fake a difference. The
    // dummy derivation has the same iteration count, so the two are alike; without it an
    // unknown user is answered thousands of times faster.
    let mut known = Duration::MAX;
    let mut unknown = Duration::MAX;
    for port in 0..3 {
        known = known.min(plain_cost(&h, 2 * port, "alice").await);
        unknown = unknown.min(plain_cost(&h, 2 * port + 1, "nobody").await);
    }
    assert!(
        unknown * 3 >= known,
        "unknown user {unknown:?} vs known user {known:?}"
    );
}
