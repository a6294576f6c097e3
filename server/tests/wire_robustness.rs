//! Wire tests: misbehaving clients get their stream error without disturbing anyone
//! else; resource conflicts; many aborted connections; restart persistence.

mod common;

use common::{Client, HEADER, Server, befriend, item, message_with_body, presence};
use hydrant_proto::ns;

/// Two working sessions of distinct users; `exchange` proves they still talk.
async fn pair(server: &Server) -> (Client, Client) {
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let a = server.online("alice", "pw-alice", "home").await;
    let b = server.online("bob", "pw-bob", "work").await;
    (a, b)
}

async fn exchange(a: &mut Client, b: &mut Client, tag: &str) {
    let (ta, tb) = (format!("{tag} a->b"), format!("{tag} b->a"));
    a.send(&format!(
        "<message to='bob@localhost/work' type='chat'><body>{ta}</body></message>"
    ))
    .await;
    b.send(&format!(
        "<message to='alice@localhost/home' type='chat'><body>{tb}</body></message>"
    ))
    .await;
    let m = b.expect("message from alice", message_with_body(&ta)).await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"), "{m}");
    let m = a.expect("message from bob", message_with_body(&tb)).await;
    assert_eq!(m.attr("from"), Some("bob@localhost/work"), "{m}");
}

/// A third, logged-in session that will misbehave.
async fn mallory(server: &Server) -> Client {
    server.add_user("mallory", "pw-mallory");
    server.online("mallory", "pw-mallory", "evil").await
}

#[tokio::test]
async fn malformed_xml_is_not_well_formed() {
    let server = Server::start().await;
    let (mut a, mut b) = pair(&server).await;
    let mut m = mallory(&server).await;
    exchange(&mut a, &mut b, "before").await;
    // RFC 6120 4.9.3.13: mismatched tags.
    m.send("<message to='bob@localhost/work'><body>oops</bod></message>")
        .await;
    assert_eq!(m.expect_stream_error().await, "not-well-formed");
    m.expect_closed().await;
    exchange(&mut a, &mut b, "after").await;
    b.sync().await;
    b.assert_none("part of the malformed message", message_with_body("oops"));
}

#[tokio::test]
async fn character_data_between_stanzas_ends_the_stream() {
    let server = Server::start().await;
    let (mut a, mut b) = pair(&server).await;
    let mut m = mallory(&server).await;
    m.send("garbage that is not XML at all").await;
    // Text directly inside <stream:stream> is well-formed XML but not XMPP. RFC 6120
    // 4.9.3.1 (bad-format) fits best; the reader deliberately reports it like other
    // garbage, as not-well-formed (4.9.3.13, proto commit fd6b6f0). Either ends it.
    let cond = m.expect_stream_error().await;
    assert!(
        cond == "not-well-formed" || cond == "bad-format",
        "unexpected condition {cond}"
    );
    m.expect_closed().await;
    exchange(&mut a, &mut b, "after").await;
}

#[tokio::test]
async fn dtd_is_restricted_xml() {
    let server = Server::start().await;
    let (mut a, mut b) = pair(&server).await;
    let mut m = mallory(&server).await;
    // RFC 6120 11.1: no DTDs (and so no entity expansion attacks).
    m.send(
        "<!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;&lol;'>]>\
         <message to='bob@localhost/work'><body>&lol2;</body></message>",
    )
    .await;
    assert_eq!(m.expect_stream_error().await, "restricted-xml");
    m.expect_closed().await;
    exchange(&mut a, &mut b, "after").await;
    b.sync().await;
    b.assert_none("a message after the DTD", |e| {
        e.name() == "message" && e.attr("from").is_some_and(|f| f.starts_with("mallory"))
    });

    // Also before authentication, in the prolog.
    let mut c = Client::tcp(server.c2s, server.tls()).await;
    c.send(
        "<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY x 'y'>]>\
         <stream:stream to='localhost' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert_eq!(c.expect_stream_error().await, "restricted-xml");
    c.expect_closed().await;
}

#[tokio::test]
async fn oversized_stanza_is_a_policy_violation() {
    // The default limit: 262,144 bytes.
    const MAX: usize = 262_144;
    let server = Server::start().await;
    let (mut a, mut b) = pair(&server).await;
    let mut m = mallory(&server).await;
    // Exactly one byte over the limit and never closed: the server must refuse it as
    // soon as the limit is passed, without waiting for the end of the stanza. Sending
    // no more than that also means it has read everything when it closes (no RST).
    let mut stanza = b"<message to='bob@localhost/work'><body>".to_vec();
    stanza.resize(MAX + 1, b'x');
    m.send_raw(&stanza).await.expect("the server reads it all");
    assert_eq!(m.expect_stream_error().await, "policy-violation");
    m.expect_closed().await;
    exchange(&mut a, &mut b, "after").await;

    // A stanza just under the limit is fine (RFC 6120 13.12 asks for at least 10,000).
    let mut big = b"<message to='bob@localhost/work' type='chat'><body>".to_vec();
    let tail = b"</body></message>";
    big.resize(MAX - tail.len(), b'y');
    big.extend_from_slice(tail);
    a.send_raw(&big).await.expect("send");
    let m = b
        .expect("the large message", |e| {
            e.name() == "message"
                && e.get_child("body", ns::CLIENT)
                    .is_some_and(|body| body.text().len() > 200_000)
        })
        .await;
    assert_eq!(m.attr("from"), Some("alice@localhost/home"));
}

#[tokio::test]
async fn non_stanza_element_after_bind_is_unsupported_stanza_type() {
    let server = Server::start().await;
    let (mut a, mut b) = pair(&server).await;
    let mut m = mallory(&server).await;
    m.send("<nonsense/>").await;
    // RFC 6120 4.9.3.24.
    assert_eq!(m.expect_stream_error().await, "unsupported-stanza-type");
    m.expect_closed().await;
    exchange(&mut a, &mut b, "after").await;
}

#[tokio::test]
async fn bad_stream_headers() {
    let server = Server::start().await;
    // RFC 6120 4.9.3.6: a domain we do not serve.
    let mut c = Client::tcp(server.c2s, server.tls()).await;
    c.send(
        "<stream:stream to='example.org' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert_eq!(c.expect_stream_error().await, "host-unknown");
    c.expect_closed().await;
    // RFC 6120 4.9.3.10: the wrong content namespace.
    let mut c = Client::tcp(server.c2s, server.tls()).await;
    c.send(
        "<stream:stream to='localhost' version='1.0' xmlns='jabber:server' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await;
    assert_eq!(c.expect_stream_error().await, "invalid-namespace");
    c.expect_closed().await;
    // A header that is a valid header still works after all that.
    let mut c = Client::tcp(server.c2s, server.tls()).await;
    c.send(HEADER).await;
    c.expect("features", |e| e.is("features", ns::STREAM)).await;
}

#[tokio::test]
async fn resource_conflict_replaces_the_older_session() {
    let server = Server::start().await;
    let (mut a, mut b) = pair(&server).await;
    befriend(&mut a, &mut b).await;
    let mut b2 = server.login("bob", "pw-bob", "work").await;
    // RFC 6120 7.7.2.2: the older session is closed with <conflict/>.
    assert_eq!(b.expect_stream_error().await, "conflict");
    b.expect_closed().await;
    // Alice sees the old session leave.
    a.expect(
        "the replaced session's unavailable",
        presence("bob@localhost/work", Some("unavailable")),
    )
    .await;
    // The new session works: presence, messages both ways.
    b2.send_presence("<status>new</status>").await;
    a.expect(
        "the new session's presence",
        presence("bob@localhost/work", None),
    )
    .await;
    exchange(&mut a, &mut b2, "after conflict").await;
    // And when the replacement leaves, alice hears it once more.
    b2.close().await;
    a.expect(
        "unavailable of the new session",
        presence("bob@localhost/work", Some("unavailable")),
    )
    .await;
}

#[tokio::test]
async fn many_aborted_connections_do_not_disturb_a_session() {
    const N: usize = 200;
    let server = Server::start().await;
    let (mut a, mut b) = pair(&server).await;
    let (c2s, direct, tls) = (server.c2s, server.direct_tls, server.tls());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let tls = tls.clone();
        tasks.spawn(async move {
            match i % 5 {
                // Connect and vanish.
                0 => drop(tokio::net::TcpStream::connect(c2s).await.expect("connect")),
                // Half a stream header.
                1 => {
                    let mut c = Client::tcp(c2s, tls).await;
                    c.send("<?xml version='1.0'?><stream:stream to='localh").await;
                }
                // A whole header, then gone before STARTTLS.
                2 => {
                    let mut c = Client::tcp(c2s, tls).await;
                    c.open_stream().await;
                }
                // STARTTLS accepted, then gone before the TLS handshake.
                3 => {
                    let mut c = Client::tcp(c2s, tls).await;
                    c.open_stream().await;
                    c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
                        .await;
                    c.expect("proceed", |e| e.is("proceed", ns::TLS)).await;
                }
                // Direct TLS, header sent, then gone mid-SASL.
                _ => {
                    let mut c = Client::direct_tls(direct, tls).await;
                    c.open_stream().await;
                    c.send(
                        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'/>",
                    )
                    .await;
                }
            }
        });
        if i % 20 == 0 {
            exchange(&mut a, &mut b, &format!("during {i}")).await;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("connection task");
    }
    exchange(&mut a, &mut b, "after").await;
    // New logins still work.
    server.add_user("carol", "pw-carol");
    let mut c = server.online("carol", "pw-carol", "r").await;
    c.sync().await;
}

#[tokio::test]
async fn accounts_rosters_and_offline_messages_survive_a_restart() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    // carol registers in band, so her account exists only through the server.
    let (mut c, _) = server.connect_tls().await;
    let res = c
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:register'><username>carol</username><password>pw-carol</password></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    drop(c);
    let mut a = server.online("alice", "pw-alice", "home").await;
    let mut c = server.online("carol", "pw-carol", "desk").await;
    befriend(&mut a, &mut c).await;
    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='carol@localhost' name='Carol'>\
             <group>Friends</group></item></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let q = a.roster_get(None).await.expect("roster");
    let ver = q.attr("ver").expect("ver").to_owned();
    c.close().await;
    a.send("<message to='carol@localhost' type='chat'><body>while you were out</body></message>")
        .await;
    a.sync().await;
    let cert = std::fs::read(server.data_dir().join("tls/localhost.crt")).expect("cert");

    // A graceful stop tells connected clients why (RFC 6120 4.9.3.22).
    let stopping = server.stop();
    let (dir, cond) = tokio::join!(stopping, a.expect_stream_error());
    assert_eq!(cond, "system-shutdown");
    a.expect_closed().await;

    let server = Server::start_in(dir, "").await;
    assert_eq!(
        std::fs::read(server.data_dir().join("tls/localhost.crt")).expect("cert"),
        cert,
        "the generated certificate is reused"
    );
    let mut a = server.login("alice", "pw-alice", "home").await;
    assert!(
        a.roster_get(Some(&ver)).await.is_none(),
        "the roster version survives"
    );
    let q = a.roster_get(None).await.expect("roster");
    let it = item(&q);
    assert_eq!(it.attr("jid"), Some("carol@localhost"), "{q}");
    assert_eq!(it.attr("name"), Some("Carol"), "{q}");
    assert_eq!(it.attr("subscription"), Some("both"), "{q}");
    let groups: Vec<_> = it.children().map(hydrant_proto::Element::text).collect();
    assert_eq!(groups, ["Friends"]);
    a.send_presence("").await;

    let mut c = server.login("carol", "pw-carol", "desk").await;
    c.send_presence("").await;
    let m = c
        .expect("stored message", message_with_body("while you were out"))
        .await;
    assert!(m.get_child("delay", ns::DELAY).is_some(), "{m}");
    // The subscription works again: carol's presence reaches alice, and carol got
    // alice's through the probe.
    c.expect(
        "alice's presence via probe",
        presence("alice@localhost/home", None),
    )
    .await;
    a.expect("carol's presence", presence("carol@localhost/desk", None))
        .await;
}
