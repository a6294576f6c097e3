//! SASL (RFC 6120 section 6): SCRAM-SHA-256, SCRAM-SHA-1, PLAIN, failures and throttling.

mod common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{DOMAIN, Harness, assert_sasl_failure, config, feature_names};
use hydrant_proto::ns;
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn scram_sha256_success_then_restart_offers_bind() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    // `scram` checks the server signature in <success/> with the sasl crate's client.
    c.scram(true, "alice", "secret").await.unwrap();
    let features = c.open().await;
    assert_eq!(
        feature_names(&features)[0],
        ("bind".to_owned(), ns::BIND.to_owned())
    );
    assert_eq!(
        c.bind(Some("laptop")).await,
        format!("alice@{DOMAIN}/laptop")
    );
}

#[tokio::test(start_paused = true)]
async fn scram_sha1_success() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.scram(false, "alice", "secret").await.unwrap();
    let features = c.open().await;
    assert!(
        features.get_child("bind", ns::BIND).is_some(),
        "{features:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn plain_success() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.plain("", "alice", "secret").await.unwrap();
    let features = c.open().await;
    assert!(
        features.get_child("bind", ns::BIND).is_some(),
        "{features:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn plain_with_own_authzid_and_bare_jid_authcid_succeeds() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.plain(
        &format!("alice@{DOMAIN}"),
        &format!("alice@{DOMAIN}"),
        "secret",
    )
    .await
    .unwrap();
    c.open().await;
    assert_eq!(c.bind(Some("x")).await, format!("alice@{DOMAIN}/x"));
}

#[tokio::test(start_paused = true)]
async fn plain_without_initial_response_gets_an_empty_challenge() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>")
        .await;
    let challenge = c.expect_element().await;
    assert!(challenge.is("challenge", ns::SASL), "{challenge:?}");
    assert_eq!(challenge.text(), "");
    c.send_response(b"\0alice\0secret").await;
    let success = c.expect_element().await;
    assert!(success.is("success", ns::SASL), "{success:?}");
}

#[tokio::test(start_paused = true)]
async fn scram_wrong_password_is_not_authorized() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    let failure = c.scram(true, "alice", "wrong").await.unwrap_err();
    assert_sasl_failure(&failure, "not-authorized");
}

#[tokio::test(start_paused = true)]
async fn plain_wrong_password_is_not_authorized() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    let failure = c.plain("", "alice", "Secret").await.unwrap_err();
    assert_sasl_failure(&failure, "not-authorized");
}

/// Sends a SCRAM-SHA-256 client-first for `user` and returns the challenge's attributes.
async fn scram_challenge(c: &mut common::Client, user: &str) -> Vec<(String, String)> {
    c.send_auth(
        "SCRAM-SHA-256",
        format!("n,,n={user},r=clientnonce").as_bytes(),
    )
    .await;
    let challenge = c.expect_element().await;
    assert!(challenge.is("challenge", ns::SASL), "{challenge:?}");
    let text = String::from_utf8(B64.decode(challenge.text().trim()).unwrap()).unwrap();
    text.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn unknown_user_looks_like_a_wrong_password() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    // Unknown users get a challenge shaped like a real one, with a salt that is stable
    // per name, so probing cannot tell accounts apart.
    let real = scram_challenge(&mut c, "alice").await;
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    assert_sasl_failure(&c.expect_element().await, "aborted");
    let fake1 = scram_challenge(&mut c, "nobody").await;
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    assert_sasl_failure(&c.expect_element().await, "aborted");
    let fake2 = scram_challenge(&mut c, "nobody").await;
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    assert_sasl_failure(&c.expect_element().await, "aborted");
    let keys = |v: &[(String, String)]| v.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&real), ["r", "s", "i"]);
    assert_eq!(keys(&fake1), ["r", "s", "i"]);
    assert_eq!(fake1[1], fake2[1], "stable fake salt");
    assert_ne!(fake1[1], real[1]);
    assert_ne!(fake1[0], fake2[0], "fresh server nonce each time");
    assert!(fake1[0].1.starts_with("clientnonce"), "{fake1:?}");

    // And the end of the exchange is the same <not-authorized/> as a wrong password.
    let failure = c.scram(true, "nobody", "secret").await.unwrap_err();
    assert_sasl_failure(&failure, "not-authorized");
    let failure = c.plain("", "nobody", "secret").await.unwrap_err();
    assert_sasl_failure(&failure, "not-authorized");
}

#[tokio::test(start_paused = true)]
async fn unknown_mechanism_is_invalid_mechanism() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send_auth("DIGEST-MD5", b"").await;
    assert_sasl_failure(&c.expect_element().await, "invalid-mechanism");
    // Not a credential failure: no delay was imposed, and login still works.
    c.plain("", "alice", "secret").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn plain_on_an_insecure_stream_is_invalid_mechanism() {
    let mut cfg = config();
    cfg.require_tls = false;
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    let mut c = h.connect(false);
    let features = c.open().await;
    assert_eq!(
        common::mechanisms(&features),
        ["SCRAM-SHA-256", "SCRAM-SHA-1"]
    );
    let failure = c.plain("", "alice", "secret").await.unwrap_err();
    assert_sasl_failure(&failure, "invalid-mechanism");
    // SCRAM is fine without TLS when TLS is not required.
    c.scram(true, "alice", "secret").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn bad_base64_is_incorrect_encoding() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!not base64!!</auth>",
    )
    .await;
    assert_sasl_failure(&c.expect_element().await, "incorrect-encoding");
}

#[tokio::test(start_paused = true)]
async fn bad_base64_in_a_response_is_incorrect_encoding() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    scram_challenge(&mut c, "alice").await;
    c.send("<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>@@@</response>")
        .await;
    assert_sasl_failure(&c.expect_element().await, "incorrect-encoding");
}

#[tokio::test(start_paused = true)]
async fn abort_is_aborted_and_a_new_exchange_may_start() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    scram_challenge(&mut c, "alice").await;
    c.send("<abort xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
        .await;
    assert_sasl_failure(&c.expect_element().await, "aborted");
    // The aborted exchange is gone: a response now is out of sequence.
    c.send_response(b"c=biws,r=x,p=eA==").await;
    assert_sasl_failure(&c.expect_element().await, "malformed-request");
    c.scram(true, "alice", "secret").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn authzid_of_another_user_is_invalid_authzid() {
    let h = Harness::with_alice();
    h.backend.add_user("bob", "bobpw");
    let mut c = h.connect(true);
    c.open().await;
    let failure = c
        .plain(&format!("bob@{DOMAIN}"), "alice", "secret")
        .await
        .unwrap_err();
    assert_sasl_failure(&failure, "invalid-authzid");
    // The same with SCRAM's a= attribute.
    c.send_auth(
        "SCRAM-SHA-256",
        format!("n,a=bob@{DOMAIN},n=alice,r=clientnonce").as_bytes(),
    )
    .await;
    assert_sasl_failure(&c.expect_element().await, "invalid-authzid");
}

#[tokio::test(start_paused = true)]
async fn too_many_failures_end_the_stream_with_policy_violation() {
    let h = Harness::with_alice();
    assert_eq!(h.shared.cfg.max_auth_failures, 3);
    let mut c = h.connect(true);
    c.open().await;
    for _ in 0..3 {
        let failure = c.plain("", "alice", "wrong").await.unwrap_err();
        assert_sasl_failure(&failure, "not-authorized");
    }
    c.expect_stream_error("policy-violation").await;
}

#[tokio::test(start_paused = true)]
async fn stream_stays_open_below_the_failure_limit() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    for _ in 0..2 {
        let failure = c.plain("", "alice", "wrong").await.unwrap_err();
        assert_sasl_failure(&failure, "not-authorized");
    }
    c.plain("", "alice", "secret").await.unwrap();
}

/// Time from sending a wrong PLAIN password to the `<failure/>` (paused clock: exact).
async fn timed_failure(c: &mut common::Client) -> Duration {
    let start = Instant::now();
    let failure = c.plain("", "alice", "wrong").await.unwrap_err();
    assert_sasl_failure(&failure, "not-authorized");
    start.elapsed()
}

#[tokio::test(start_paused = true)]
async fn failure_delay_doubles_per_address_and_success_resets_it() {
    let mut cfg = config();
    cfg.max_auth_failures = 10;
    cfg.auth_failure_max_delay = Duration::from_secs(2);
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    let mut c = h.connect(true);
    c.open().await;
    let ms = Duration::from_millis;
    assert_eq!(timed_failure(&mut c).await, ms(250));
    assert_eq!(timed_failure(&mut c).await, ms(500));
    assert_eq!(timed_failure(&mut c).await, ms(1000));
    // The record is per address, not per stream.
    let mut c2 = h.connect(true);
    c2.open().await;
    assert_eq!(timed_failure(&mut c2).await, ms(2000));
    assert_eq!(timed_failure(&mut c2).await, ms(2000), "capped");
    // A success from the address forgets it.
    let start = Instant::now();
    c2.plain("", "alice", "secret").await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO, "success is not delayed");
    assert_eq!(timed_failure(&mut c).await, ms(250));
}

#[tokio::test(start_paused = true)]
async fn restart_header_pipelined_behind_auth_is_kept() {
    // Bytes after <auth/> that arrive in the same read belong to the restarted stream
    // (RFC 6120 6.4.6): the reader keeps them across the restart.
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send(&format!(
        "<auth xmlns='{}' mechanism='PLAIN'>{}</auth>{}",
        ns::SASL,
        B64.encode(b"\0alice\0secret"),
        common::header(DOMAIN)
    ))
    .await;
    let success = c.expect_element().await;
    assert!(success.is("success", ns::SASL), "{success:?}");
    c.restart();
    c.expect_open().await;
    let features = c.expect_features().await;
    assert!(
        features.get_child("bind", ns::BIND).is_some(),
        "{features:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn scram_failures_count_towards_the_limit_too() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    for _ in 0..3 {
        let failure = c.scram(false, "alice", "wrong").await.unwrap_err();
        assert_sasl_failure(&failure, "not-authorized");
    }
    c.expect_stream_error("policy-violation").await;
}
