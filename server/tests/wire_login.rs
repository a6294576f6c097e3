//! Wire tests: connecting and logging in (RFC 6120 4-7, XEP-0368, XEP-0077).

mod common;

use common::{Client, Server, is_reply, mechanisms, new_id, stanza_error};
use hydrant_proto::ns;

#[tokio::test]
async fn starttls_login_with_plain_then_ping() {
    let server = Server::start().await;
    server.add_user("alice", "wonderland");
    let mut c = Client::tcp(server.c2s, server.tls()).await;
    let features = c.open_stream().await;
    // Before TLS: STARTTLS required, and no authentication on offer (require_tls).
    assert!(
        features.get_child("starttls", ns::TLS).is_some(),
        "{features}"
    );
    assert!(mechanisms(&features).is_empty(), "{features}");
    let plain_id = c.stream_id.clone().expect("stream id");
    c.starttls().await;
    let features = c.open_stream().await;
    assert!(
        features.get_child("starttls", ns::TLS).is_none(),
        "{features}"
    );
    let mechs = mechanisms(&features);
    for m in ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"] {
        assert!(mechs.contains(&m.to_owned()), "{m} offered: {features}");
    }
    assert!(
        features
            .get_child("register", ns::REGISTER_FEATURE)
            .is_some(),
        "{features}"
    );
    assert_ne!(
        c.stream_id.as_ref(),
        Some(&plain_id),
        "new stream id after TLS"
    );
    c.auth_plain("alice", "wonderland").await.unwrap();
    let features = c.open_stream().await;
    let jid = c.bind(&features, "laptop").await;
    assert_eq!(jid, "alice@localhost/laptop");
    c.sync().await;
    c.close().await;
}

#[tokio::test]
async fn direct_tls_login() {
    let server = Server::start().await;
    server.add_user("bob", "builder1");
    let mut c = Client::direct_tls(server.direct_tls, server.tls()).await;
    assert_eq!(
        c.alpn.as_deref(),
        Some(&b"xmpp-client"[..]),
        "XEP-0368 ALPN"
    );
    let features = c.open_stream().await;
    assert!(
        features.get_child("starttls", ns::TLS).is_none(),
        "no STARTTLS on an already secure stream: {features}"
    );
    assert!(
        mechanisms(&features).contains(&"PLAIN".to_owned()),
        "{features}"
    );
    c.auth_plain("bob", "builder1").await.unwrap();
    let features = c.open_stream().await;
    assert_eq!(c.bind(&features, "tablet").await, "bob@localhost/tablet");
    let res = c.iq("get", None, "<ping xmlns='urn:xmpp:ping'/>").await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    c.close().await;
}

#[tokio::test]
async fn register_in_band_then_login_with_scram_sha256() {
    let server = Server::start().await;
    let (mut c, _) = server.connect_tls().await;
    let form = c
        .iq("get", None, "<query xmlns='jabber:iq:register'/>")
        .await;
    assert_eq!(form.attr("type"), Some("result"), "{form}");
    let q = form.get_child("query", ns::REGISTER).expect("form");
    assert!(q.get_child("username", ns::REGISTER).is_some(), "{form}");
    assert!(q.get_child("password", ns::REGISTER).is_some(), "{form}");
    let res = c
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:register'><username>carol</username>\
             <password>s3cret-pw</password></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    // The same name again is a conflict (XEP-0077 3.1).
    let res = c
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:register'><username>carol</username>\
             <password>other-pw</password></query>",
        )
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("conflict"), "{res}");
    // A wrong password fails, the right one succeeds, both over SCRAM-SHA-256.
    assert_eq!(
        c.auth_scram_sha256("carol", "other-pw").await,
        Err("not-authorized".into())
    );
    c.auth_scram_sha256("carol", "s3cret-pw").await.unwrap();
    let features = c.open_stream().await;
    assert_eq!(c.bind(&features, "phone").await, "carol@localhost/phone");
    c.sync().await;
    c.close().await;
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail() {
    let server = Server::start().await;
    server.add_user("dave", "correct-horse");
    let (mut c, _) = server.connect_tls().await;
    assert_eq!(
        c.auth_plain("dave", "battery").await,
        Err("not-authorized".into())
    );
    assert_eq!(
        c.auth_plain("nobody", "battery").await,
        Err("not-authorized".into())
    );
    // After failures the stream is still usable for a correct attempt.
    c.auth_plain("dave", "correct-horse").await.unwrap();
    let features = c.open_stream().await;
    c.bind(&features, "r").await;
    c.sync().await;
}

#[tokio::test]
async fn stanzas_before_tls_are_refused() {
    let server = Server::start().await;
    let mut c = Client::tcp(server.c2s, server.tls()).await;
    c.open_stream().await;
    let id = new_id();
    c.send(&format!(
        "<iq type='get' id='{id}'><query xmlns='jabber:iq:register'/></iq>"
    ))
    .await;
    // RFC 6120 5.3.1: with STARTTLS required, anything else first is a policy violation.
    assert_eq!(c.expect_stream_error().await, "policy-violation");
    c.expect_closed().await;
    assert!(c.take_buffered(is_reply(&id)).is_empty());
}
