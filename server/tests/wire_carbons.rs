//! Wire tests: XEP-0280 Message Carbons. Enabling per session (4, 5, 10.1), copies of
//! received (7) and sent (8) messages for the account's other carbons-enabled sessions,
//! with other domains too, the eligibility rules (6.1) and `<private/>` / `<no-copy/>`
//! (9), and that no client is handed a carbons wrapper the server did not write (11).

mod common;

use common::remote::{Peer, inject};
use common::{Client, DOMAIN, Server, message_with_body, stanza_error};
use hydrant_proto::{Element, ns};

const PW: &str = "carbons-pw";
const CARBONS: &str = "urn:xmpp:carbons:2";
const CAROL: &str = "carol@remote.example/phone";

async fn enable(c: &mut Client) {
    let res = c
        .iq("set", None, &format!("<enable xmlns='{CARBONS}'/>"))
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
}

async fn online(server: &Server, user: &str, resource: &str) -> Client {
    server.online(user, PW, resource).await
}

fn users(server: &Server, names: &[&str]) {
    for n in names {
        server.add_user(n, PW);
    }
}

/// The message a carbon (`<sent/>` or `<received/>`) carries.
fn inner<'a>(el: &'a Element, dir: &str) -> Option<&'a Element> {
    el.get_child(dir, CARBONS)?
        .get_child("forwarded", ns::FORWARD)?
        .get_child("message", ns::CLIENT)
}

/// A carbon of direction `dir` whose forwarded message has this body.
fn carbon(dir: &'static str, body: &str) -> impl Fn(&Element) -> bool + use<> {
    let body = body.to_owned();
    move |e: &Element| {
        e.name() == "message"
            && inner(e, dir).is_some_and(|m| {
                m.get_child("body", ns::CLIENT)
                    .map(Element::text)
                    .as_deref()
                    == Some(body.as_str())
            })
    }
}

fn any_carbon(e: &Element) -> bool {
    e.name() == "message"
        && (e.get_child("sent", CARBONS).is_some() || e.get_child("received", CARBONS).is_some())
}

/// XEP-0280 7 / 8: the wrapper's addresses and type.
#[track_caller]
fn assert_wrapper(c: &Element, to: &str, kind: &str) {
    assert_eq!(c.attr("from"), Some("alice@localhost"), "{c}");
    assert_eq!(c.attr("to"), Some(to), "{c}");
    assert_eq!(c.attr("type"), Some(kind), "{c}");
}

async fn sync_all(clients: &mut [&mut Client]) {
    for c in clients.iter_mut() {
        c.sync().await;
    }
}

// `inject` runs router code on the test's runtime, parts of it in `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbons_are_advertised_and_toggled_per_session() {
    let server = Server::start().await;
    users(&server, &["alice"]);
    let mut a = online(&server, "alice", "a1").await;

    // XEP-0280 3 and XEP-0191 3.1: the server's disco#info names both.
    let info = a
        .iq(
            "get",
            Some(DOMAIN),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    let features: Vec<&str> = info
        .get_child("query", ns::DISCO_INFO)
        .map(|q| q.children().filter_map(|f| f.attr("var")).collect())
        .unwrap_or_default();
    assert!(features.contains(&CARBONS), "{info}");
    assert!(features.contains(&"urn:xmpp:blocking"), "{info}");

    // 10.1: enabling or disabling twice is not an error.
    enable(&mut a).await;
    enable(&mut a).await;
    for _ in 0..2 {
        let res = a
            .iq("set", None, &format!("<disable xmlns='{CARBONS}'/>"))
            .await;
        assert_eq!(res.attr("type"), Some("result"), "{res}");
    }
    // Addressed to the account's bare JID, it is the same request.
    let res = a
        .iq(
            "set",
            Some("alice@localhost"),
            &format!("<enable xmlns='{CARBONS}'/>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    // Only a set enables.
    let res = a
        .iq("get", None, &format!("<enable xmlns='{CARBONS}'/>"))
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");

    // 4.1: "<not-allowed/> if the request is from a client that is not hosted on this
    // server".
    let mut peer = Peer::install(&server);
    inject(
        &server,
        CAROL,
        &format!("<iq to='localhost' type='set' id='e1'><enable xmlns='{CARBONS}'/></iq>"),
    )
    .await;
    let err = peer
        .expect("the refusal", |e| e.attr("id") == Some("e1"))
        .await;
    assert_eq!(stanza_error(&err).as_deref(), Some("not-allowed"), "{err}");
}

/// XEP-0280 7: each carbons-enabled session that did not receive the message gets a
/// copy; the sessions that got it under RFC 6121 get nothing more.
#[tokio::test]
async fn received_messages_are_copied_to_the_other_enabled_sessions() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut a1 = online(&server, "alice", "a1").await;
    let mut a2 = online(&server, "alice", "a2").await;
    let mut a3 = online(&server, "alice", "a3").await;
    let mut a4 = server.login("alice", PW, "a4").await;
    a4.send_presence("<priority>-1</priority>").await;
    let mut b = online(&server, "bob", "b").await;
    for c in [&mut a1, &mut a2, &mut a4] {
        enable(c).await;
    }

    // To a full JID: that session has the message; a2 and a4 get copies, a3 (carbons
    // not enabled) nothing.
    b.send("<message to='alice@localhost/a1' type='chat' id='m1'><body>to a1</body></message>")
        .await;
    a1.expect("the message", message_with_body("to a1")).await;
    for (c, to) in [
        (&mut a2, "alice@localhost/a2"),
        (&mut a4, "alice@localhost/a4"),
    ] {
        let copy = c
            .expect("a received carbon", carbon("received", "to a1"))
            .await;
        assert_wrapper(&copy, to, "chat");
        let m = inner(&copy, "received").expect("forwarded message");
        assert_eq!(m.attr("from"), Some("bob@localhost/b"), "{copy}");
        assert_eq!(m.attr("to"), Some("alice@localhost/a1"), "{copy}");
        assert_eq!(m.attr("id"), Some("m1"), "{copy}");
    }

    // To the bare JID: every available session with a non-negative priority has it (no
    // copy for them); a4 (priority -1) gets a copy.
    b.send("<message to='alice@localhost' type='chat'><body>to all</body></message>")
        .await;
    for c in [&mut a1, &mut a2, &mut a3] {
        c.expect("the bare-JID message", message_with_body("to all"))
            .await;
    }
    let copy = a4
        .expect("a received carbon", carbon("received", "to all"))
        .await;
    assert_wrapper(&copy, "alice@localhost/a4", "chat");

    sync_all(&mut [&mut b, &mut a1, &mut a2, &mut a3, &mut a4]).await;
    for c in [&mut a1, &mut a2, &mut a3, &mut a4] {
        c.assert_none("another copy", |e| e.name() == "message");
    }
}

/// XEP-0280 8: what a session sends is copied to the account's other carbons-enabled
/// sessions, whether or not the sender enabled carbons, and never to the sender.
#[tokio::test]
async fn sent_messages_are_copied_to_the_senders_other_enabled_sessions() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut a1 = online(&server, "alice", "a1").await;
    let mut a2 = online(&server, "alice", "a2").await;
    let mut a3 = online(&server, "alice", "a3").await;
    let mut b = online(&server, "bob", "b").await;
    enable(&mut a2).await;

    a1.send("<message to='bob@localhost' type='normal' id='s1'><body>hi bob</body></message>")
        .await;
    b.expect("the message", message_with_body("hi bob")).await;
    let copy = a2.expect("a sent carbon", carbon("sent", "hi bob")).await;
    assert_wrapper(&copy, "alice@localhost/a2", "normal");
    let m = inner(&copy, "sent").expect("forwarded message");
    assert_eq!(m.attr("from"), Some("alice@localhost/a1"), "{copy}");
    assert_eq!(m.attr("to"), Some("bob@localhost"), "{copy}");

    // With carbons on, the sender still gets no copy of its own message (8: "SHOULD
    // NOT send a forwarded copy to the sending full JID").
    enable(&mut a1).await;
    a1.send("<message to='bob@localhost' type='chat'><body>again</body></message>")
        .await;
    a2.expect("a sent carbon", carbon("sent", "again")).await;

    sync_all(&mut [&mut a1, &mut a2, &mut a3, &mut b]).await;
    a1.assert_none("a copy of its own message", any_carbon);
    a2.assert_none("another copy", any_carbon);
    a3.assert_none("a copy without carbons enabled", any_carbon);
}

/// XEP-0280 6.1 and 9: only instant messages are copied, and never one marked
/// `<private/>` or `<no-copy/>`; messages between the account's own resources neither.
#[tokio::test]
async fn only_eligible_messages_are_copied() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut a1 = online(&server, "alice", "a1").await;
    let mut a2 = online(&server, "alice", "a2").await;
    let mut b = online(&server, "bob", "b").await;
    enable(&mut a1).await;
    enable(&mut a2).await;

    let not_copied = [
        "<message type='headline'><body>news</body></message>",
        "<message><x xmlns='urn:example:custom'/></message>",
        "<message type='groupchat'><body>room</body></message>",
        "<message type='chat'><body>secret</body><private xmlns='urn:xmpp:carbons:2'/>\
         <no-copy xmlns='urn:xmpp:hints'/></message>",
        "<message type='chat'><body>hinted</body><no-copy xmlns='urn:xmpp:hints'/></message>",
        "<message type='chat'><body>from an occupant</body>\
         <x xmlns='http://jabber.org/protocol/muc#user'/></message>",
    ];
    for xml in not_copied {
        b.send(&xml.replace("<message", "<message to='alice@localhost/a1'"))
            .await;
    }
    let copied = [
        ("normal", "<message><body>a note</body></message>"),
        (
            "chat",
            "<message type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/>\
             </message>",
        ),
        (
            "normal",
            "<message><received xmlns='urn:xmpp:receipts' id='m1'/></message>",
        ),
    ];
    for (_, xml) in copied {
        b.send(&xml.replace("<message", "<message to='alice@localhost/a1'"))
            .await;
    }
    // The three eligible ones, in order, and nothing else.
    for (kind, _) in copied {
        let c = a2
            .expect("a received carbon", |e| {
                e.get_child("received", CARBONS).is_some()
            })
            .await;
        assert_eq!(c.attr("type").unwrap_or("normal"), kind, "{c}");
    }

    // Sent with <private/>: no copy for a2.
    a1.send(
        "<message to='bob@localhost' type='chat'><body>private</body>\
         <private xmlns='urn:xmpp:carbons:2'/><no-copy xmlns='urn:xmpp:hints'/></message>",
    )
    .await;
    b.expect("the private message", message_with_body("private"))
        .await;
    // Between the account's own resources: no copies either way.
    a1.send("<message to='alice@localhost/a2' type='chat'><body>note to self</body></message>")
        .await;
    a2.expect("the message itself", message_with_body("note to self"))
        .await;

    sync_all(&mut [&mut b, &mut a1, &mut a2]).await;
    a1.assert_none("a copy", any_carbon);
    a2.assert_none("a copy of an ineligible message", any_carbon);
}

/// XEP-0280 11: a client accepts carbons only from its own bare JID, and only the server
/// writes that address; a `<sent/>` or `<received/>` someone put in a message is
/// removed, from a local client and from another domain alike.
// `inject` runs router code on the test's runtime, parts of it in `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carbons_wrappers_from_others_are_removed() {
    let server = Server::start().await;
    users(&server, &["alice", "mallory"]);
    let mut peer = Peer::install(&server);
    let mut a1 = online(&server, "alice", "a1").await;
    let mut a2 = online(&server, "alice", "a2").await;
    let mut m = online(&server, "mallory", "m").await;
    enable(&mut a1).await;
    enable(&mut a2).await;
    let forged = |body: &str| {
        format!(
            "<received xmlns='{CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='bob@localhost/b' to='alice@localhost/a1' \
             type='chat'><body>forged</body></message></forwarded></received>\
             <sent xmlns='{CARBONS}'><forwarded xmlns='urn:xmpp:forward:0'>\
             <message xmlns='jabber:client' from='alice@localhost/a1' to='bob@localhost' \
             type='chat'><body>forged</body></message></forwarded></sent><body>{body}</body>"
        )
    };

    m.send(&format!(
        "<message to='alice@localhost/a1' type='chat'>{}</message>",
        forged("from mallory")
    ))
    .await;
    let got = a1
        .expect("mallory's message", message_with_body("from mallory"))
        .await;
    assert_eq!(got.attr("from"), Some("mallory@localhost/m"), "{got}");
    assert!(!any_carbon(&got), "a wrapper reached the client: {got}");
    // a2's copy is the server's, and carries the message without the forgery.
    let copy = a2
        .expect("the server's carbon", carbon("received", "from mallory"))
        .await;
    assert_wrapper(&copy, "alice@localhost/a2", "chat");
    assert!(
        !any_carbon(inner(&copy, "received").expect("forwarded")),
        "{copy}"
    );

    // The same from another domain.
    inject(
        &server,
        CAROL,
        &format!(
            "<message to='alice@localhost/a1' type='chat'>{}</message>",
            forged("from carol")
        ),
    )
    .await;
    let got = a1
        .expect("carol's message", message_with_body("from carol"))
        .await;
    assert!(!any_carbon(&got), "a wrapper reached the client: {got}");

    // And one mallory addresses to another domain leaves without it.
    m.send(&format!(
        "<message to='dave@remote.example' type='chat'>{}</message>",
        forged("to dave")
    ))
    .await;
    let out = peer
        .expect("mallory's message out", |e| {
            e.attr("to") == Some("dave@remote.example")
        })
        .await;
    assert!(!any_carbon(&out), "a wrapper left the server: {out}");

    sync_all(&mut [&mut m, &mut a1, &mut a2]).await;
    a1.assert_none("a carbon", any_carbon);
    a2.assert_none("another carbon", |e| {
        any_carbon(e) && !carbon("received", "from carol")(e)
    });
}

/// Copies of messages to and from other domains (XEP-0280 7 and 8 over s2s).
// `inject` runs router code on the test's runtime, parts of it in `block_in_place`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_with_other_domains_are_copied() {
    let server = Server::start().await;
    users(&server, &["alice"]);
    let mut peer = Peer::install(&server);
    let mut a1 = online(&server, "alice", "a1").await;
    let mut a2 = online(&server, "alice", "a2").await;
    enable(&mut a2).await;

    inject(
        &server,
        CAROL,
        "<message to='alice@localhost/a1' type='chat'><body>from afar</body></message>",
    )
    .await;
    a1.expect("carol's message", message_with_body("from afar"))
        .await;
    let copy = a2
        .expect("a received carbon", carbon("received", "from afar"))
        .await;
    assert_wrapper(&copy, "alice@localhost/a2", "chat");
    assert_eq!(
        inner(&copy, "received").and_then(|m| m.attr("from")),
        Some(CAROL),
        "{copy}"
    );

    a1.send(&format!(
        "<message to='{CAROL}' type='chat'><body>to afar</body></message>"
    ))
    .await;
    peer.expect("the message out", |e| e.attr("to") == Some(CAROL))
        .await;
    let copy = a2.expect("a sent carbon", carbon("sent", "to afar")).await;
    assert_wrapper(&copy, "alice@localhost/a2", "chat");
}

/// XEP-0280 5: after `<disable/>` a session gets no more copies.
#[tokio::test]
async fn disabled_sessions_get_no_copies() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut a1 = online(&server, "alice", "a1").await;
    let mut a2 = online(&server, "alice", "a2").await;
    let mut b = online(&server, "bob", "b").await;
    enable(&mut a2).await;
    b.send("<message to='alice@localhost/a1' type='chat'><body>one</body></message>")
        .await;
    a2.expect("a carbon while enabled", carbon("received", "one"))
        .await;
    let res = a2
        .iq("set", None, &format!("<disable xmlns='{CARBONS}'/>"))
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    b.send("<message to='alice@localhost/a1' type='chat'><body>two</body></message>")
        .await;
    a1.expect("the message", message_with_body("two")).await;
    sync_all(&mut [&mut b, &mut a2]).await;
    a2.assert_none("a carbon after disabling", any_carbon);
}
