//! Wire tests: iq routing (RFC 6120 8.2.3, RFC 6121 8.5) and the server's own services:
//! XEP-0199 ping, XEP-0030 disco, XEP-0092 version, XEP-0077 password change and
//! account removal.

mod common;

use common::{Server, is_reply, new_id, stanza_error};
use hydrant_proto::{Element, ns};

const PING: &str = "<ping xmlns='urn:xmpp:ping'/>";

#[tokio::test]
async fn ping_the_server() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a = server.login("alice", "pw-alice", "home").await;
    for to in [None, Some("localhost")] {
        let res = a.iq("get", to, PING).await;
        assert_eq!(res.attr("type"), Some("result"), "{res}");
        assert!(res.children().next().is_none(), "{res}");
        if to.is_some() {
            assert_eq!(res.attr("from"), Some("localhost"), "{res}");
        }
    }
    // A ping to one's own bare JID is answered by the server for the account.
    let res = a.iq("get", Some("alice@localhost"), PING).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
}

#[tokio::test]
async fn iq_to_full_jid_is_relayed_and_answered() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.login("alice", "pw-alice", "home").await;
    let mut b = server.login("bob", "pw-bob", "work").await;
    let id = new_id();
    a.send(&format!(
        "<iq type='get' id='{id}' to='bob@localhost/work'>{PING}</iq>"
    ))
    .await;
    let req = b
        .expect("relayed ping", |e| {
            e.name() == "iq" && e.attr("id") == Some(id.as_str())
        })
        .await;
    assert_eq!(req.attr("type"), Some("get"), "{req}");
    assert_eq!(req.attr("from"), Some("alice@localhost/home"), "{req}");
    assert_eq!(req.attr("to"), Some("bob@localhost/work"), "{req}");
    assert!(req.get_child("ping", ns::PING).is_some(), "{req}");
    b.send(&format!(
        "<iq type='result' id='{id}' to='alice@localhost/home'/>"
    ))
    .await;
    let res = a.expect("the pong", is_reply(&id)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    assert_eq!(res.attr("from"), Some("bob@localhost/work"), "{res}");

    // An error reply travels back the same way.
    let id = new_id();
    a.send(&format!(
        "<iq type='get' id='{id}' to='bob@localhost/work'><query xmlns='urn:example:x'/></iq>"
    ))
    .await;
    b.expect("relayed query", |e| e.attr("id") == Some(id.as_str()))
        .await;
    b.send(&format!(
        "<iq type='error' id='{id}' to='alice@localhost/home'><error type='cancel'>\
         <feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    ))
    .await;
    let res = a.expect("the error", is_reply(&id)).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("feature-not-implemented"),
        "{res}"
    );
}

#[tokio::test]
async fn iq_errors() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.login("alice", "pw-alice", "home").await;
    // RFC 6121 8.5.3.2.1: no such resource.
    let res = a.iq("get", Some("bob@localhost/nowhere"), PING).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );
    assert_eq!(res.attr("from"), Some("bob@localhost/nowhere"), "{res}");
    // RFC 6121 8.5.1: no such account.
    let res = a.iq("get", Some("ghost@localhost"), PING).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );
    let res = a.iq("get", Some("ghost@localhost/x"), PING).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );
    // RFC 6120 8.4: a payload namespace the server does not understand.
    for to in [None, Some("localhost")] {
        let res = a
            .iq("get", to, "<query xmlns='urn:example:unknown'/>")
            .await;
        assert_eq!(
            stanza_error(&res).as_deref(),
            Some("service-unavailable"),
            "{res}"
        );
    }
    // RFC 6120 8.2.3: a get must carry exactly one payload.
    let res = a.iq("get", None, "").await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");
    // Another domain, unreachable without s2s.
    let res = a.iq("get", Some("example.net"), PING).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("remote-server-not-found"),
        "{res}"
    );
    // Results addressed to the server are not answered (no error loops).
    a.send("<iq type='result' id='stray'/>").await;
    a.sync().await;
    a.assert_none("a reply to a result", |e| e.attr("id") == Some("stray"));
}

#[tokio::test]
async fn disco_and_version() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a = server.login("alice", "pw-alice", "home").await;
    let res = a
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let q = res.get_child("query", ns::DISCO_INFO).expect("query");
    let identity = q.get_child("identity", ns::DISCO_INFO).expect("identity");
    assert_eq!(identity.attr("category"), Some("server"), "{res}");
    assert_eq!(identity.attr("type"), Some("im"), "{res}");
    let features: Vec<&str> = q
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|c| c.attr("var"))
        .collect();
    for f in [
        ns::DISCO_INFO,
        ns::DISCO_ITEMS,
        ns::PING,
        ns::VERSION,
        ns::REGISTER,
    ] {
        assert!(features.contains(&f), "{f} advertised: {res}");
    }
    // An unknown node is item-not-found (XEP-0030 3.1).
    let res = a
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/>",
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("item-not-found"),
        "{res}"
    );
    let res = a
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    let res = a
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='jabber:iq:version'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let q = res.get_child("query", ns::VERSION).expect("query");
    assert_eq!(
        q.get_child("name", ns::VERSION)
            .map(Element::text)
            .as_deref(),
        Some("hydrant")
    );
    let version = q.get_child("version", ns::VERSION).map(Element::text);
    assert!(version.is_some_and(|v| !v.is_empty()), "{res}");
}

#[tokio::test]
async fn password_change_in_band() {
    let server = Server::start().await;
    server.add_user("alice", "old-password");
    server.add_user("bob", "pw-bob");
    let mut a = server.login("alice", "old-password", "home").await;
    // Too short (min_password_length = 4) and someone else's account: refused.
    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:register'><username>alice</username><password>abc</password></query>",
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:register'><username>bob</username><password>hijacked</password></query>",
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    // XEP-0077 3.3.
    let res = a
        .iq(
            "set",
            Some("localhost"),
            "<query xmlns='jabber:iq:register'><username>alice</username><password>new-password</password></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    let (mut c, _) = server.connect_tls().await;
    assert_eq!(
        c.auth_plain("alice", "old-password").await,
        Err("not-authorized".into()),
        "the old password no longer works"
    );
    c.auth_scram_sha256("alice", "new-password").await.unwrap();
    let (mut c, _) = server.connect_tls().await;
    c.auth_plain("alice", "new-password").await.unwrap();
    // Bob's password is unchanged.
    let (mut c, _) = server.connect_tls().await;
    c.auth_plain("bob", "pw-bob").await.unwrap();
}

#[tokio::test]
async fn account_removal_kicks_every_session() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a1 = server.online("alice", "pw-alice", "one").await;
    let mut a2 = server.online("alice", "pw-alice", "two").await;
    let id = new_id();
    a1.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'><remove/></query></iq>"
    ))
    .await;
    // XEP-0077 3.2: the result, then the sessions end.
    let res = a1.expect("removal result", is_reply(&id)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    for c in [&mut a1, &mut a2] {
        assert_eq!(c.expect_stream_error().await, "not-authorized");
        c.expect_closed().await;
    }
    let (mut c, _) = server.connect_tls().await;
    assert_eq!(
        c.auth_plain("alice", "pw-alice").await,
        Err("not-authorized".into()),
        "the account is gone"
    );
    // The name can be registered again, as a fresh account.
    let res = c
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:register'><username>alice</username><password>fresh-pw</password></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    c.auth_plain("alice", "fresh-pw").await.unwrap();
    let features = c.open_stream().await;
    c.bind(&features, "one").await;
    let q = c.roster_get(None).await.expect("roster");
    assert_eq!(
        q.children().count(),
        0,
        "a fresh account has no roster: {q}"
    );
}

/// XEP-0163 4 and 6.1: the account's own disco#info says it is a PEP service and lists
/// the XEP-0060 features clients check before using it (aioxmpp's PEP service needs
/// the identity; Conversations and Gajim look for publish-options).
#[tokio::test]
async fn the_account_is_a_pep_service_with_its_features() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a = server.login("alice", "pw-alice", "r").await;
    let res = a
        .iq(
            "get",
            Some("alice@localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let q = res
        .get_child("query", hydrant_proto::ns::DISCO_INFO)
        .unwrap_or_else(|| panic!("{res}"));
    assert!(
        q.children().any(|i| i.name() == "identity"
            && i.attr("category") == Some("pubsub")
            && i.attr("type") == Some("pep")),
        "{res}"
    );
    let features: Vec<&str> = q
        .children()
        .filter(|f| f.name() == "feature")
        .filter_map(|f| f.attr("var"))
        .collect();
    for f in [
        "publish",
        "publish-options",
        "retrieve-items",
        "auto-create",
        "access-whitelist",
    ] {
        let var = format!("http://jabber.org/protocol/pubsub#{f}");
        assert!(features.contains(&var.as_str()), "{var}: {res}");
    }
    assert!(
        !features.contains(&"urn:xmpp:mam:2"),
        "no message archive: {res}"
    );
}

/// `[pubsub] pep = false`: no PEP identity or features on the account, and a PEP
/// publish gets `<service-unavailable/>`.
#[tokio::test]
async fn pep_can_be_turned_off() {
    let server = Server::start_with("[pubsub]\npep = false\n").await;
    server.add_user("alice", "pw-alice");
    let mut a = server.login("alice", "pw-alice", "r").await;
    let res = a
        .iq(
            "get",
            Some("alice@localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    let text = res.to_string();
    assert!(
        !text.contains("type='pep'") && !text.contains("type=\"pep\""),
        "{res}"
    );
    assert!(!text.contains("pubsub#publish"), "{res}");
    let res = a
        .iq(
            "set",
            None,
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:x'><item><x xmlns='urn:x'/></item></publish></pubsub>",
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );
}
