use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hydrant_proto::scram::{ScramHash, ScramKeys};

use super::*;

const ALL: &[Mechanism] = &[
    Mechanism::ScramSha256,
    Mechanism::ScramSha1,
    Mechanism::Plain,
    Mechanism::External,
];

fn ctx<'a>(ids: &'a [&'a str]) -> AuthContext<'a> {
    AuthContext {
        offered: ALL,
        domain: "example.com",
        certificate_ids: ids,
    }
}

fn keys(password: &str) -> ScramKeys {
    ScramKeys::derive(ScramHash::Sha256, password, 4096)
}

fn plain(m: &mut SaslServer, payload: &[u8]) -> Step {
    m.auth(&ctx(&[]), "PLAIN", &B64.encode(payload))
}

#[test]
fn plain_asks_for_budgets_then_keys_then_verifies() {
    let mut m = SaslServer::new();
    let Step::Check { username } = plain(&mut m, b"\0Alice@example.com\0pw") else {
        panic!()
    };
    assert_eq!(username.as_deref(), Some("alice"));
    let Step::NeedKeys { username, hash } = m.check() else {
        panic!()
    };
    assert_eq!((username.as_str(), hash), ("alice", ScramHash::Sha256));
    let Step::VerifyPassword(check) = m.keys(keys("pw")) else {
        panic!()
    };
    assert!(matches!(check.run(), Step::Success { username, .. } if username == "alice"));

    let Step::Check { .. } = plain(&mut m, b"\0alice\0wrong") else {
        panic!()
    };
    let Step::NeedKeys { .. } = m.check() else {
        panic!()
    };
    let Step::VerifyPassword(check) = m.keys(keys("pw")) else {
        panic!()
    };
    assert!(matches!(check.run(), Step::Failure(Failure::NotAuthorized)));
}

#[test]
fn plain_refusals() {
    let mut m = SaslServer::new();
    assert!(matches!(
        plain(&mut m, b"alice\0pw"),
        Step::Failure(Failure::MalformedRequest)
    ));
    assert!(matches!(
        plain(&mut m, b"bob@example.com\0alice\0pw"),
        Step::Failure(Failure::InvalidAuthzid)
    ));
    // A name that cannot exist still goes through the budgets, then fails.
    let Step::Check { username: None } = plain(&mut m, b"\0a@other.example\0pw") else {
        panic!()
    };
    assert!(matches!(m.check(), Step::Failure(Failure::NotAuthorized)));
    // Without initial response: the empty challenge, then the response carries it.
    assert!(matches!(m.auth(&ctx(&[]), "PLAIN", ""), Step::Challenge(c) if c.is_empty()));
    assert!(matches!(
        m.response(&ctx(&[]), &B64.encode(b"\0alice\0pw")),
        Step::Check { username: Some(_) }
    ));
}

#[test]
fn mechanism_encoding_and_state_errors() {
    let mut m = SaslServer::new();
    let only_scram = AuthContext {
        offered: &[Mechanism::ScramSha256],
        ..ctx(&[])
    };
    assert!(matches!(
        m.auth(&only_scram, "PLAIN", "=",),
        Step::Failure(Failure::InvalidMechanism)
    ));
    assert!(matches!(
        m.auth(&ctx(&[]), "PLAIN", "!!"),
        Step::Failure(Failure::IncorrectEncoding)
    ));
    assert!(matches!(
        m.response(&ctx(&[]), "="),
        Step::Failure(Failure::MalformedRequest)
    ));
    assert!(matches!(
        m.input(&ctx(&[]), Input::Abort),
        Step::Failure(Failure::Aborted)
    ));
}

#[test]
fn scram_needs_keys_before_its_challenge_and_budgets_before_the_proof() {
    let mut m = SaslServer::new();
    let first = B64.encode(b"n,,n=alice,r=abcdefgh");
    let Step::NeedKeys { username, hash } = m.auth(&ctx(&[]), "SCRAM-SHA-1", &first) else {
        panic!()
    };
    assert_eq!((username.as_str(), hash), ("alice", ScramHash::Sha1));
    let Step::Challenge(c) = m.keys(ScramKeys::derive(ScramHash::Sha1, "pw", 4096)) else {
        panic!()
    };
    assert!(c.starts_with(b"r=abcdefgh"));
    let Step::Check { username: Some(u) } = m.response(&ctx(&[]), &B64.encode(b"garbage")) else {
        panic!()
    };
    assert_eq!(u, "alice");
    assert!(matches!(
        m.check(),
        Step::Failure(Failure::MalformedRequest)
    ));
    // Unknown domain in the authcid: a failed check at once.
    let first = B64.encode(b"n,,n=alice@other.example,r=abcdefgh");
    assert!(matches!(
        m.auth(&ctx(&[]), "SCRAM-SHA-256", &first),
        Step::Failure(Failure::NotAuthorized)
    ));
}

#[test]
fn external_follows_xep_0178_authzid_rules() {
    let mut m = SaslServer::new();
    let one = ["a.example"];
    let two = ["a.example", "b.example"];
    let ok = |s: Step, want: &str| matches!(s, Step::Success { username, .. } if username == want);
    assert!(ok(m.auth(&ctx(&one), "EXTERNAL", "="), "a.example"));
    assert!(ok(
        m.auth(&ctx(&two), "EXTERNAL", &B64.encode("B.example")),
        "b.example"
    ));
    assert!(matches!(
        m.auth(&ctx(&two), "EXTERNAL", "="),
        Step::Failure(Failure::InvalidAuthzid)
    ));
    assert!(matches!(
        m.auth(&ctx(&one), "EXTERNAL", &B64.encode("c.example")),
        Step::Failure(Failure::InvalidAuthzid)
    ));
    assert!(matches!(
        m.auth(&ctx(&[]), "EXTERNAL", "="),
        Step::Failure(Failure::NotAuthorized)
    ));
    // No initial response: empty challenge, the authzid comes in the response.
    assert!(matches!(m.auth(&ctx(&one), "EXTERNAL", ""), Step::Challenge(c) if c.is_empty()));
    assert!(ok(m.response(&ctx(&one), ""), "a.example"));
}
