//! Stanzas from another domain take the router's one entry, `Router::route` with
//! `Origin::Remote` (what s2s calls once it has checked a stanza's `from`), and every answer
//! goes back through the transport to other domains, never through a local session.
//!
//! The test stands in for s2s on both sides: it injects stanzas as an authenticated peer
//! would deliver them, and installs a transport that records what the server sends out.

mod common;

use common::pubsub::{PW, assert_result, entry, publish, users};
use common::remote::{Peer, inject};
use common::{Server, presence, stanza_error};
use hydrant_proto::{Element, ns};

const CAROL: &str = "carol@remote.example/phone";
const SVC: &str = "pubsub.localhost";

fn to_carol(name: &'static str) -> impl Fn(&Element) -> bool {
    move |e| e.name() == name && e.attr("to") == Some(CAROL)
}

// The router runs parts of a request on blocking threads (`block_in_place`), which needs
// the multi-threaded runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanzas_from_another_domain_are_routed_and_answered_through_it() {
    let server = Server::start().await;
    let mut peer = Peer::install(&server);
    users(&server, &["alice"]);
    let mut alice = server.online("alice", PW, "phone").await;

    // A chat message reaches the local user with the remote sender's address.
    inject(
        &server,
        CAROL,
        "<message to='alice@localhost' type='chat' id='c1'><body>hello from afar</body></message>",
    )
    .await;
    let msg = alice
        .expect("carol's message", |e| {
            e.name() == "message" && e.attr("id") == Some("c1")
        })
        .await;
    assert_eq!(msg.attr("from"), Some(CAROL), "{msg}");

    // The server's own services answer a remote requester through the transport.
    inject(
        &server,
        CAROL,
        &format!(
            "<iq to='localhost' type='get' id='d1'><query xmlns='{}'/></iq>",
            ns::DISCO_INFO
        ),
    )
    .await;
    let reply = peer.expect("disco#info result", to_carol("iq")).await;
    assert_eq!(
        (reply.attr("type"), reply.attr("id")),
        (Some("result"), Some("d1")),
        "{reply}"
    );
    assert_eq!(reply.attr("from"), Some("localhost"), "{reply}");
    assert!(
        reply.get_child("query", ns::DISCO_INFO).is_some(),
        "{reply}"
    );

    // The roster belongs to the account's own client: another domain gets an error.
    inject(
        &server,
        CAROL,
        "<iq to='localhost' type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
    )
    .await;
    let reply = peer.expect("roster refused", to_carol("iq")).await;
    assert_eq!(reply.attr("id"), Some("r1"), "{reply}");
    assert_eq!(
        stanza_error(&reply).as_deref(),
        Some("service-unavailable"),
        "{reply}"
    );

    // A probe from someone without a subscription learns nothing (RFC 6121 4.3.2).
    inject(
        &server,
        CAROL,
        "<presence to='alice@localhost' type='probe'/>",
    )
    .await;
    let probe = peer.expect("probe answer", to_carol("presence")).await;
    assert_eq!(probe.attr("type"), Some("unsubscribed"), "{probe}");
    assert_eq!(probe.attr("from"), Some("alice@localhost"), "{probe}");

    // A subscription request reaches the user from the requester's bare JID (3.1.3).
    inject(
        &server,
        CAROL,
        "<presence to='alice@localhost' type='subscribe'/>",
    )
    .await;
    alice
        .expect(
            "carol's subscription request",
            presence("carol@remote.example", Some("subscribe")),
        )
        .await;

    // A stanza for a third domain is not relayed: the sender gets an error.
    inject(
        &server,
        CAROL,
        "<message to='dave@third.example' id='x1'><body>relay me</body></message>",
    )
    .await;
    let err = peer.expect("no relay", to_carol("message")).await;
    assert_eq!(
        (err.attr("type"), err.attr("id")),
        (Some("error"), Some("x1")),
        "{err}"
    );

    // Pubsub: carol subscribes to an open node of the component, and alice's publish
    // notifies her through the transport.
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
    assert_result(&res, "create news");
    inject(
        &server,
        CAROL,
        &format!(
            "<iq to='{SVC}' type='set' id='s1'><pubsub xmlns='{}'>\
             <subscribe node='news' jid='{CAROL}'/></pubsub></iq>",
            ns::PUBSUB
        ),
    )
    .await;
    let reply = peer.expect("subscribe result", to_carol("iq")).await;
    assert_eq!(
        (reply.attr("type"), reply.attr("id")),
        (Some("result"), Some("s1")),
        "{reply}"
    );
    publish(&mut alice, SVC, "news", "n1", &entry("first")).await;
    let note = peer.expect("the notification", to_carol("message")).await;
    assert_eq!(note.attr("from"), Some(SVC), "{note}");
    let item = note
        .get_child("event", ns::PUBSUB_EVENT)
        .and_then(|e| e.get_child("items", ns::PUBSUB_EVENT))
        .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
        .unwrap_or_else(|| panic!("no item: {note}"));
    assert_eq!(item.attr("id"), Some("n1"), "{note}");

    // Items can be read from afar too (the reply is serialised once, then re-parsed for
    // the transport).
    inject(
        &server,
        CAROL,
        &format!(
            "<iq to='{SVC}' type='get' id='i1'><pubsub xmlns='{}'><items node='news'/></pubsub></iq>",
            ns::PUBSUB
        ),
    )
    .await;
    let reply = peer.expect("items result", to_carol("iq")).await;
    assert_eq!(
        (reply.attr("type"), reply.attr("id")),
        (Some("result"), Some("i1")),
        "{reply}"
    );
    assert!(reply.to_string().contains("first"), "{reply}");
}

/// XEP-0054 2.3 from another domain: a local account's vCard is public, answered by the
/// server; setting it and reading the account's XEP-0049 private XML are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vcards_are_public_to_other_domains_private_xml_is_not() {
    let server = Server::start().await;
    let mut peer = Peer::install(&server);
    users(&server, &["alice"]);
    let mut alice = server.login("alice", PW, "phone").await;
    for payload in [
        "<vCard xmlns='vcard-temp'><FN>Alice</FN></vCard>",
        "<query xmlns='jabber:iq:private'><p xmlns='urn:secret'>s3cret</p></query>",
    ] {
        let res = alice.iq("set", None, payload).await;
        assert_result(&res, payload);
    }

    inject(
        &server,
        CAROL,
        "<iq to='alice@localhost' type='get' id='v1'><vCard xmlns='vcard-temp'/></iq>",
    )
    .await;
    let reply = peer.expect("vCard result", to_carol("iq")).await;
    assert_eq!(
        (reply.attr("type"), reply.attr("id"), reply.attr("from")),
        (Some("result"), Some("v1"), Some("alice@localhost")),
        "{reply}"
    );
    assert!(reply.to_string().contains("Alice"), "{reply}");

    for (id, xml, want) in [
        (
            "v2",
            "<vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard>",
            "forbidden",
        ),
        (
            "p1",
            "<query xmlns='jabber:iq:private'><p xmlns='urn:secret'/></query>",
            "forbidden",
        ),
    ] {
        let kind = if id == "v2" { "set" } else { "get" };
        inject(
            &server,
            CAROL,
            &format!("<iq to='alice@localhost' type='{kind}' id='{id}'>{xml}</iq>"),
        )
        .await;
        let reply = peer.expect("refusal", to_carol("iq")).await;
        assert_eq!(reply.attr("id"), Some(id), "{reply}");
        assert_eq!(stanza_error(&reply).as_deref(), Some(want), "{reply}");
        assert!(!reply.to_string().contains("s3cret"), "{reply}");
    }
    let res = alice.iq("get", None, "<vCard xmlns='vcard-temp'/>").await;
    assert!(res.to_string().contains("Alice"), "unchanged: {res}");
}
