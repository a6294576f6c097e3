//! Wire tests: per-account quotas. Sessions per account (RFC 6120 7.6.2.1), roster
//! groups per item (RFC 6121 2.3.3), pending inbound subscription requests (RFC 6121
//! 3.1.3).

mod common;

use std::fmt::Write as _;

use common::{Server, is_reply, new_id, presence, stanza_error};

/// Past `[c2s] max_sessions_per_account` a bind is refused with `<resource-constraint/>`
/// (type wait); rebinding a resource in use replaces it and is not one more; a freed
/// place can be taken again.
#[tokio::test]
async fn sessions_per_account_are_capped() {
    let dir = tempfile::Builder::new()
        .prefix("hydrant-wire-")
        .tempdir()
        .expect("temp dir");
    let server = Server::start_in_with_c2s(dir, "max_sessions_per_account = 2", "").await;
    server.add_user("alice", "pw");
    let one = server.login("alice", "pw", "one").await;
    let _two = server.login("alice", "pw", "two").await;

    let (mut c, _) = server.connect_tls().await;
    c.auth_plain("alice", "pw").await.unwrap();
    c.open_stream().await;
    let bind = |resource: &str| {
        let id = new_id();
        let xml = format!(
            "<iq type='set' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        );
        (id, xml)
    };
    let (id, xml) = bind("three");
    c.send(&xml).await;
    let res = c.expect("bind refused", is_reply(&id)).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("resource-constraint"),
        "{res}"
    );
    assert!(res.to_string().contains("type='wait'"), "{res}");

    // The same stream may bind a resource in use: it replaces that session.
    let (id, xml) = bind("two");
    c.send(&xml).await;
    let res = c.expect("bind replaces", is_reply(&id)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    // Another account is not affected; a place freed is free.
    server.add_user("bob", "pw");
    let _b = server.login("bob", "pw", "x").await;
    one.close().await;
    let _three = server.login("alice", "pw", "three").await;
}

/// Roster groups per item and their length are bounded (`<not-acceptable/>`).
#[tokio::test]
async fn roster_groups_per_item_are_capped() {
    let server = Server::start_with("[roster]\nmax_groups_per_item = 3\nmax_name_bytes = 8").await;
    server.add_user("alice", "pw");
    let mut a = server.login("alice", "pw", "r").await;
    let set = |groups: &[&str]| {
        let mut g = String::new();
        for name in groups {
            let _ = write!(g, "<group>{name}</group>");
        }
        format!("<query xmlns='jabber:iq:roster'><item jid='bob@localhost'>{g}</item></query>")
    };
    let res = a.iq("set", None, &set(&["a", "b", "c"])).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    for bad in [&["a", "b", "c", "d"][..], &["123456789"][..]] {
        let res = a.iq("set", None, &set(bad)).await;
        assert_eq!(
            stanza_error(&res).as_deref(),
            Some("not-acceptable"),
            "{bad:?}: {res}"
        );
    }
    // Ten thousand distinct groups (the duplicate check is a set, linear): refused by
    // count, nothing stored.
    let names: Vec<String> = (0..10_000).map(|k| format!("{k:x}")).collect();
    let many: Vec<&str> = names.iter().map(String::as_str).collect();
    let res = a.iq("set", None, &set(&many)).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    let q = a.roster_get(None).await.expect("roster");
    assert_eq!(q.to_string().matches("<group>").count(), 3, "{q}");
}

/// Past `[roster] max_pending_subscriptions` a new subscription request is refused
/// with `unsubscribed` on the contact's behalf (RFC 6121 3.1.3); stored requests and
/// repeats from pending JIDs are unaffected.
#[tokio::test]
async fn pending_subscription_requests_are_capped() {
    let server = Server::start_with("[roster]\nmax_pending_subscriptions = 2").await;
    server.add_user("alice", "pw");
    let mut senders = Vec::new();
    for name in ["b1", "b2", "b3"] {
        server.add_user(name, "pw");
        senders.push(server.online(name, "pw", "r").await);
    }
    // One after another (each processed before the next is sent), so "the third" is b3.
    for s in &mut senders {
        s.send("<presence to='alice@localhost' type='subscribe'/>")
            .await;
        s.sync().await;
    }
    senders[2]
        .expect("refused", presence("alice@localhost", Some("unsubscribed")))
        .await;
    for s in &mut senders[..2] {
        s.sync().await;
        s.assert_none("no refusal", |e| e.attr("type") == Some("unsubscribed"));
    }
    // A repeat from a pending JID is stored (it replaces the earlier one).
    senders[0]
        .send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    senders[0].sync().await;
    senders[0].assert_none("no refusal", |e| e.attr("type") == Some("unsubscribed"));
    // Alice gets the two stored requests when she comes online.
    let mut a = server.online("alice", "pw", "r").await;
    for from in ["b1@localhost", "b2@localhost"] {
        a.expect("pending request", presence(from, Some("subscribe")))
            .await;
    }
    a.sync().await;
    a.assert_none("third request", |e| {
        e.attr("from") == Some("b3@localhost") && e.attr("type") == Some("subscribe")
    });
}
