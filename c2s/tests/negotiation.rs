//! Stream headers, stream features, STARTTLS policy and XEP-0077 registration.

mod common;

use std::sync::Arc;

use common::{
    DOMAIN, Harness, assert_sasl_failure, assert_stanza_error, config, feature_names, header,
    mechanisms,
};
use hydrant_proto::{Element, StreamEvent, ns};

fn tls_config() -> Arc<rustls::ServerConfig> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let cert = ck.cert.der().clone();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], key)
    .unwrap();
    Arc::new(cfg)
}

/// A harness whose streams are plaintext with STARTTLS offered and required.
fn tls_required() -> Harness {
    let mut cfg = config();
    cfg.tls = Some(tls_config());
    cfg.require_tls = true;
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    h
}

fn names(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

// -- Headers --------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn server_answers_with_its_header_and_features() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' \
         from='alice@{DOMAIN}' version='1.0' xml:lang='en'>"
    ))
    .await;
    let hdr = c.expect_open().await;
    // RFC 6120 4.7.2: 'to' of the response is the initiator's 'from'.
    assert_eq!(hdr.to(), Some(format!("alice@{DOMAIN}").as_str()));
    let features = c.expect_features().await;
    assert_eq!(
        feature_names(&features),
        names(&[("mechanisms", ns::SASL)]),
        "registration is off and the stream is already secure: {features:?}"
    );
    assert_eq!(
        mechanisms(&features),
        ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]
    );
}

#[tokio::test(start_paused = true)]
async fn stream_ids_differ_between_streams() {
    let h = Harness::with_alice();
    let mut a = h.connect(true);
    let mut b = h.connect(true);
    a.send(&header(DOMAIN)).await;
    b.send(&header(DOMAIN)).await;
    let ida = a.expect_open().await.id().unwrap().to_owned();
    let idb = b.expect_open().await.id().unwrap().to_owned();
    assert_ne!(ida, idb);
}

#[tokio::test(start_paused = true)]
async fn header_without_to_is_improper_addressing() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
    )
    .await;
    c.expect_open().await;
    c.expect_stream_error("improper-addressing").await;
}

#[tokio::test(start_paused = true)]
async fn header_to_another_domain_is_host_unknown() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&header("example.org")).await;
    c.expect_open().await;
    c.expect_stream_error("host-unknown").await;
}

#[tokio::test(start_paused = true)]
async fn header_to_a_jid_with_localpart_is_host_unknown() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&header(&format!("alice@{DOMAIN}"))).await;
    c.expect_open().await;
    c.expect_stream_error("host-unknown").await;
}

#[tokio::test(start_paused = true)]
async fn header_to_is_compared_after_normalisation() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&header("Example.COM")).await;
    c.expect_open().await;
    let features = c.expect_features().await;
    assert!(features.get_child("mechanisms", ns::SASL).is_some());
}

#[tokio::test(start_paused = true)]
async fn jabber_server_namespace_is_invalid_namespace() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='1.0'>"
    ))
    .await;
    // Our header declares jabber:client whatever the peer sent.
    c.expect_open().await;
    c.expect_stream_error("invalid-namespace").await;
}

#[tokio::test(start_paused = true)]
async fn header_without_version_is_unsupported_version() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&format!(
        "<stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}'>"
    ))
    .await;
    c.expect_open().await;
    c.expect_stream_error("unsupported-version").await;
}

#[tokio::test(start_paused = true)]
async fn header_with_major_version_2_is_unsupported_version() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&format!(
        "<stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{DOMAIN}' version='2.0'>"
    ))
    .await;
    c.expect_open().await;
    c.expect_stream_error("unsupported-version").await;
}

#[tokio::test(start_paused = true)]
async fn server_sends_its_header_before_an_error_on_garbage() {
    // RFC 6120 4.9.1.1: even when the peer's first bytes are not a header, the error is
    // preceded by our stream header.
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send("GET / HTTP/1.1\r\n\r\n").await;
    match c.next_event().await {
        Some(StreamEvent::Open(hdr)) => {
            assert_eq!(hdr.from(), Some(DOMAIN));
            assert_eq!(hdr.to(), None, "the peer gave no 'from'");
        }
        other => panic!("expected our header first, got {other:?}"),
    }
    c.expect_stream_error("not-well-formed").await;
}

// -- Features -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn registration_is_advertised_when_allowed() {
    let mut cfg = config();
    cfg.allow_registration = true;
    let h = Harness::new(cfg);
    let mut c = h.connect(true);
    let features = c.open().await;
    assert_eq!(
        feature_names(&features),
        names(&[("mechanisms", ns::SASL), ("register", ns::REGISTER_FEATURE)])
    );
}

#[tokio::test(start_paused = true)]
async fn after_authentication_bind_session_and_extra_features_are_offered() {
    let mut cfg = config();
    cfg.extra_features = vec![Element::new("ver", ns::ROSTERVER)];
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    let mut c = h.connect(true);
    let features = c.login("alice", "secret").await;
    assert_eq!(
        feature_names(&features),
        names(&[
            ("bind", ns::BIND),
            ("sm", "urn:xmpp:sm:3"),
            ("csi", "urn:xmpp:csi:0"),
            ("session", ns::SESSION),
            ("ver", ns::ROSTERVER)
        ])
    );
    let session = features.get_child("session", ns::SESSION).unwrap();
    assert!(
        session.get_child("optional", ns::SESSION).is_some(),
        "{session:?}"
    );
    assert!(
        features.get_child("mechanisms", ns::SASL).is_none(),
        "no SASL after authentication"
    );
}

#[tokio::test(start_paused = true)]
async fn starttls_required_hides_mechanisms_and_registration() {
    let mut cfg = config();
    cfg.tls = Some(tls_config());
    cfg.require_tls = true;
    cfg.allow_registration = true;
    let h = Harness::new(cfg);
    let mut c = h.connect(false);
    let features = c.open().await;
    assert_eq!(feature_names(&features), names(&[("starttls", ns::TLS)]));
    let starttls = features.get_child("starttls", ns::TLS).unwrap();
    assert_eq!(
        feature_names(starttls),
        names(&[("required", ns::TLS)]),
        "{starttls:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn optional_starttls_offers_scram_but_not_plain_in_the_clear() {
    let mut cfg = config();
    cfg.tls = Some(tls_config());
    cfg.require_tls = false;
    let h = Harness::new(cfg);
    let mut c = h.connect(false);
    let features = c.open().await;
    assert_eq!(
        feature_names(&features),
        names(&[("starttls", ns::TLS), ("mechanisms", ns::SASL)])
    );
    assert!(
        features
            .get_child("starttls", ns::TLS)
            .unwrap()
            .get_child("required", ns::TLS)
            .is_none()
    );
    assert_eq!(mechanisms(&features), ["SCRAM-SHA-256", "SCRAM-SHA-1"]);
}

// -- STARTTLS policy ------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn auth_before_required_tls_is_encryption_required() {
    let h = tls_required();
    let mut c = h.connect(false);
    c.open().await;
    let err = c.plain("", "alice", "secret").await.unwrap_err();
    assert_sasl_failure(&err, "encryption-required");
}

#[tokio::test(start_paused = true)]
async fn stanza_before_required_tls_is_policy_violation() {
    let h = tls_required();
    let mut c = h.connect(false);
    c.open().await;
    c.send("<message to='bob@example.com'><body>hi</body></message>")
        .await;
    c.expect_stream_error("policy-violation").await;
}

#[tokio::test(start_paused = true)]
async fn registration_before_required_tls_is_policy_violation() {
    let mut cfg = config();
    cfg.tls = Some(tls_config());
    cfg.require_tls = true;
    cfg.allow_registration = true;
    let h = Harness::new(cfg);
    let mut c = h.connect(false);
    c.open().await;
    c.send(
        "<iq type='set' id='r1'><query xmlns='jabber:iq:register'>\
         <username>mallory</username><password>pw</password></query></iq>",
    )
    .await;
    c.expect_stream_error("policy-violation").await;
    assert!(!h.backend.has_user("mallory"));
}

#[tokio::test(start_paused = true)]
async fn starttls_on_a_secure_stream_fails_and_closes() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await;
    let failure = c.expect_element().await;
    assert!(failure.is("failure", ns::TLS), "{failure:?}");
    // RFC 6120 5.4.2.2: after <failure/> the stream is closed.
    c.expect_stream_error("policy-violation").await;
}

#[tokio::test(start_paused = true)]
async fn starttls_proceeds_and_drops_pipelined_plaintext() {
    let h = tls_required();
    let mut c = h.connect(false);
    c.open().await;
    // An <auth/> injected right behind <starttls/> in the same packet must never be
    // processed: it did not come over TLS (CVE-2011-0411).
    c.send(
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\
         <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>",
    )
    .await;
    let proceed = c.expect_element().await;
    assert!(proceed.is("proceed", ns::TLS), "{proceed:?}");
    // The task hands the socket to the TLS handshake (run_stream_for_test drops it):
    // nothing more is written in plaintext.
    assert!(
        c.next_event().await.is_none(),
        "nothing after <proceed/>: {}",
        c.transcript()
    );
    c.expect_task_end().await;
    assert!(!c.transcript().contains("success"), "{}", c.transcript());
}

// -- XEP-0077 registration ------------------------------------------------------------------

fn registration() -> Harness {
    let mut cfg = config();
    cfg.allow_registration = true;
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    h
}

#[tokio::test(start_paused = true)]
async fn registration_form() {
    let h = registration();
    let mut c = h.connect(true);
    c.open().await;
    c.send("<iq type='get' id='g1'><query xmlns='jabber:iq:register'/></iq>")
        .await;
    let reply = c.expect_element().await;
    assert!(reply.is("iq", ns::CLIENT));
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("id"), Some("g1"));
    let query = reply.get_child("query", ns::REGISTER).expect("query");
    assert!(query.get_child("username", ns::REGISTER).is_some());
    assert!(query.get_child("password", ns::REGISTER).is_some());
    assert!(query.get_child("instructions", ns::REGISTER).is_some());
}

#[tokio::test(start_paused = true)]
async fn registration_creates_an_account_that_can_log_in() {
    let h = registration();
    let mut c = h.connect(true);
    c.open().await;
    c.send(
        "<iq type='set' id='s1'><query xmlns='jabber:iq:register'>\
         <username>Bob</username><password>hunter2</password></query></iq>",
    )
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("id"), Some("s1"));
    // The username is stored normalised (RFC 7622 nodeprep).
    assert!(h.backend.has_user("bob"));
    // The same stream may now authenticate.
    c.scram(true, "bob", "hunter2").await.unwrap();
    let features = c.open().await;
    assert!(features.get_child("bind", ns::BIND).is_some());
    let jid = c.bind(Some("r")).await;
    assert_eq!(jid, format!("bob@{DOMAIN}/r"));
}

#[tokio::test(start_paused = true)]
async fn registering_a_taken_username_is_conflict() {
    let h = registration();
    let mut c = h.connect(true);
    c.open().await;
    c.send(
        "<iq type='set' id='s2'><query xmlns='jabber:iq:register'>\
         <username>alice</username><password>other</password></query></iq>",
    )
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("id"), Some("s2"));
    assert_stanza_error(&reply, "cancel", "conflict");
    // The original password still works.
    c.plain("", "alice", "secret").await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn registration_without_password_is_not_acceptable() {
    let h = registration();
    let mut c = h.connect(true);
    c.open().await;
    c.send(
        "<iq type='set' id='s3'><query xmlns='jabber:iq:register'>\
         <username>carol</username></query></iq>",
    )
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("id"), Some("s3"));
    assert_stanza_error(&reply, "modify", "not-acceptable");
    c.send(
        "<iq type='set' id='s4'><query xmlns='jabber:iq:register'>\
         <username>carol</username><password></password></query></iq>",
    )
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("id"), Some("s4"));
    assert_stanza_error(&reply, "modify", "not-acceptable");
    assert!(!h.backend.has_user("carol"));
}

#[tokio::test(start_paused = true)]
async fn registration_when_disabled_is_service_unavailable() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send(
        "<iq type='set' id='s5'><query xmlns='jabber:iq:register'>\
         <username>dave</username><password>pw</password></query></iq>",
    )
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("id"), Some("s5"));
    assert_stanza_error(&reply, "cancel", "service-unavailable");
    assert!(!h.backend.has_user("dave"));
}

/// A username whose nodeprep form is not a fixed point (fuzz/README.md, Findings): U+1F130
/// SQUARED LATIN CAPITAL LETTER A was unassigned in Unicode 3.2, so nodeprep's case
/// folding skips it and NFKC then turns it into `A`: `🄰lice` was stored as the account
/// `Alice`, which bound as `alice@domain`, another user's address. Refused instead.
#[tokio::test(start_paused = true)]
async fn a_username_that_normalises_to_another_users_is_refused() {
    let h = registration();
    let mut c = h.connect(true);
    c.open().await;
    c.send(
        "<iq type='set' id='s6'><query xmlns='jabber:iq:register'>\
         <username>&#x1F130;lice</username><password>mallory</password></query></iq>",
    )
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("id"), Some("s6"));
    assert_stanza_error(&reply, "modify", "not-acceptable");
    assert!(!h.backend.has_user("Alice"));

    // An account that exists under such a name (made before this check) cannot log in.
    h.backend.add_user("Alice", "mallory");
    let mut c = h.connect(true);
    c.open().await;
    assert!(c.scram(true, "\u{1F130}lice", "mallory").await.is_err());
    let mut c = h.connect(true);
    c.open().await;
    assert!(c.plain("", "\u{1F130}lice", "mallory").await.is_err());
}
