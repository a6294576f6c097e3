//! Federation between two hydrant servers on loopback: `a.test` and `b.test`, each with
//! its pubsub service, found through `[s2s] overrides` (DNS SRV resolution has its own
//! tests in the s2s crate). Streams are encrypted with STARTTLS; the generated
//! certificates are self-signed, so each server authenticates the other with Server
//! Dialback (XEP-0220), calling the other's authoritative side back.

mod common;

use common::federation::{free_port, message_from, online, s2s, s2s_with};
use common::pubsub::{PW, assert_result, entry, publish};
use common::{Server, presence};
use hydrant_proto::{Element, ns};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_exchange_messages_subscriptions_and_pubsub_events() {
    let (pa, pb) = (free_port(), free_port());
    let a = Server::start_domain("a.test", &s2s(pa, "b.test", pb)).await;
    let b = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    let mut alice = online(&a, "alice").await;
    let mut bob = online(&b, "bob").await;

    // A message from a.test to b.test: a stream from a to b, authenticated by b calling
    // a back.
    alice
        .send("<message to='bob@b.test' type='chat' id='m1'><body>hello bob</body></message>")
        .await;
    let m = bob
        .expect("alice's message", message_from("alice@a.test/phone"))
        .await;
    assert_eq!(m.attr("id"), Some("m1"), "{m}");
    assert!(m.to_string().contains("hello bob"), "{m}");

    // And back: the other direction has a stream of its own.
    bob.send(
        "<message to='alice@a.test/phone' type='chat' id='m2'><body>hi alice</body></message>",
    )
    .await;
    let m = alice
        .expect("bob's answer", message_from("bob@b.test/phone"))
        .await;
    assert!(m.to_string().contains("hi alice"), "{m}");

    // A presence subscription request crosses with the requester's bare JID.
    alice
        .send("<presence to='bob@b.test' type='subscribe'/>")
        .await;
    bob.expect(
        "alice's subscription request",
        presence("alice@a.test", Some("subscribe")),
    )
    .await;

    // Pubsub: bob subscribes to a node of pubsub.a.test from b.test, and alice's publish
    // reaches him through the service's own stream to b.test.
    let res = alice
        .iq(
            "set",
            Some("pubsub.a.test"),
            &format!(
                "<pubsub xmlns='{}'><create node='news'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "create news");
    let res = bob
        .iq(
            "set",
            Some("pubsub.a.test"),
            &format!(
                "<pubsub xmlns='{}'><subscribe node='news' jid='bob@b.test/phone'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "bob subscribes across servers");
    publish(&mut alice, "pubsub.a.test", "news", "n1", &entry("first")).await;
    let n = bob
        .expect("the notification", message_from("pubsub.a.test"))
        .await;
    let item = n
        .get_child("event", ns::PUBSUB_EVENT)
        .and_then(|e| e.get_child("items", ns::PUBSUB_EVENT))
        .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
        .unwrap_or_else(|| panic!("no item: {n}"));
    assert_eq!(item.attr("id"), Some("n1"), "{n}");

    // PEP across servers (XEP-0163): bob gets alice's presence (she approves, and her
    // presence then reaches him, RFC 6121 3.1.5), so her presence-access node admits
    // him; he subscribes to it from b.test and receives her next item.
    common::subscribe_and_approve(&mut bob, &mut alice).await;
    publish(
        &mut alice,
        "alice@a.test",
        "urn:example:status",
        "s1",
        &entry("first status"),
    )
    .await;
    let res = bob
        .iq(
            "set",
            Some("alice@a.test"),
            &format!(
                "<pubsub xmlns='{}'><subscribe node='urn:example:status' jid='bob@b.test/phone'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "bob subscribes to alice's PEP node");
    publish(
        &mut alice,
        "alice@a.test",
        "urn:example:status",
        "s2",
        &entry("second status"),
    )
    .await;
    let n = bob
        .expect("alice's PEP item", |e| {
            message_from("alice@a.test")(e) && e.to_string().contains("second status")
        })
        .await;
    assert!(n.get_child("event", ns::PUBSUB_EVENT).is_some(), "{n}");
}

/// Stanzas for a peer that is down wait for it (retried with backoff) and are delivered
/// when it comes back within `give_up_after_secs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stanzas_wait_for_a_peer_that_comes_back() {
    let (pa, pb) = (free_port(), free_port());
    let a = Server::start_domain(
        "a.test",
        &s2s_with(pa, "b.test", pb, "give_up_after_secs = 30"),
    )
    .await;
    let mut alice = online(&a, "alice").await;
    alice
        .send("<message to='bob@b.test' type='chat' id='w1'><body>are you there?</body></message>")
        .await;
    // Nothing listens on b.test's port yet: the message waits. Once b.test is up, the
    // next retry reaches it and the message is stored for bob, offline until now.
    alice.sync().await;
    let b = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    b.add_user("bob", PW);
    let mut bob = b.login("bob", PW, "phone").await;
    bob.send_presence("").await;
    let m = bob
        .expect(
            "the message that waited",
            message_from("alice@a.test/phone"),
        )
        .await;
    assert_eq!(m.attr("id"), Some("w1"), "{m}");
    alice.assert_none("no bounce", |e| e.attr("type") == Some("error"));
}

/// A stanza for a domain nobody serves comes back with an error after the configured
/// time, from the one routing point (RFC 6120 10.4.3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_bounces_what_waited_for_it() {
    let dead = free_port();
    let extra = format!(
        "[s2s]\n\
         listen = [\"127.0.0.1:0\"]\n\
         give_up_after_secs = 1\n\
         connect_timeout_secs = 1\n\
         [s2s.overrides]\n\
         \"down.test\" = [\"127.0.0.1:{dead}\"]\n"
    );
    let a = Server::start_domain("a.test", &extra).await;
    let mut alice = online(&a, "alice").await;
    alice
        .send("<message to='carol@down.test' type='chat' id='d1'><body>anyone?</body></message>")
        .await;
    let err = alice
        .expect("the bounce", |e| {
            e.name() == "message" && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(err.attr("id"), Some("d1"), "{err}");
    assert_eq!(err.attr("from"), Some("carol@down.test"), "{err}");
    assert_eq!(
        common::stanza_error(&err).as_deref(),
        Some("remote-server-timeout"),
        "{err}"
    );
}

/// XEP-0138 between two hydrants (`[s2s] compression = true` on both): the outbound
/// side negotiates zlib on the encrypted stream before dialback, and messages, a pubsub
/// notification for several subscribers (XEP-0033 multicast) and the answers cross
/// compressed both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_federate_compressed() {
    let (pa, pb) = (free_port(), free_port());
    let a = Server::start_domain("a.test", &s2s_with(pa, "b.test", pb, "compression = true")).await;
    let b = Server::start_domain("b.test", &s2s_with(pb, "a.test", pa, "compression = true")).await;
    let mut alice = online(&a, "alice").await;
    let mut bob = online(&b, "bob").await;
    let mut carol = online(&b, "carol").await;
    alice
        .send("<message to='bob@b.test' type='chat' id='z1'><body>squeezed</body></message>")
        .await;
    bob.expect("alice's message", message_from("alice@a.test/phone"))
        .await;
    bob.send("<message to='alice@a.test/phone' type='chat' id='z2'><body>back</body></message>")
        .await;
    alice
        .expect("bob's answer", message_from("bob@b.test/phone"))
        .await;
    let res = alice
        .iq(
            "set",
            Some("pubsub.a.test"),
            &format!("<pubsub xmlns='{}'><create node='z'/></pubsub>", ns::PUBSUB),
        )
        .await;
    assert_result(&res, "create");
    for c in [&mut bob, &mut carol] {
        let jid = c.jid.clone();
        let res = c
            .iq(
                "set",
                Some("pubsub.a.test"),
                &format!(
                    "<pubsub xmlns='{}'><subscribe node='z' jid='{jid}'/></pubsub>",
                    ns::PUBSUB
                ),
            )
            .await;
        assert_result(&res, "subscribe across");
    }
    publish(
        &mut alice,
        "pubsub.a.test",
        "z",
        "z1",
        &entry("compressed item"),
    )
    .await;
    for c in [&mut bob, &mut carol] {
        c.expect("the notification", |e| {
            message_from("pubsub.a.test")(e) && e.to_string().contains("compressed item")
        })
        .await;
    }
    // Each server compressed its outbound streams and accepted the other's.
    let (inbound, outbound) = hydrant_s2s::compressed_streams();
    assert!(
        inbound >= 2 && outbound >= 2,
        "in {inbound}, out {outbound}"
    );
}

/// What waits for a peer is bounded in bytes (`[s2s] queue_bytes`): past it, a stanza is
/// refused at once with `<resource-constraint/>` and the earlier ones keep waiting. The
/// peer here accepts TCP and never says a word, so the stream stays in negotiation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_waits_for_a_peer_is_bounded_in_bytes() {
    let mute = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = mute.local_addr().expect("addr").port();
    let extra = format!(
        "[s2s]\n\
         listen = [\"127.0.0.1:0\"]\n\
         queue_bytes = 6000\n\
         [s2s.overrides]\n\
         \"mute.test\" = [\"127.0.0.1:{port}\"]\n"
    );
    let a = Server::start_domain("a.test", &extra).await;
    let mut alice = online(&a, "alice").await;
    let body = "x".repeat(2000);
    for i in 0..4 {
        alice
            .send(&format!(
                "<message to='carol@mute.test' type='chat' id='q{i}'><body>{body}</body></message>"
            ))
            .await;
    }
    let err = alice
        .expect("a refusal", |e| {
            e.name() == "message" && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(
        common::stanza_error(&err).as_deref(),
        Some("resource-constraint"),
        "{err}"
    );
    // The first ones fit (about 2 KB each against 6,000 bytes) and still wait.
    let id = err.attr("id").unwrap_or_default();
    assert!(id == "q2" || id == "q3", "{err}");
    alice.sync().await;
    alice.assert_none("a refusal of what fitted", |e| {
        e.attr("type") == Some("error") && matches!(e.attr("id"), Some("q0" | "q1"))
    });
    drop(mute);
}

/// An inbound peer that opens a stream and never authenticates is closed with
/// `<connection-timeout/>` when `negotiate_timeout_secs` is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_never_authenticates_is_timed_out() {
    let a = Server::start_domain(
        "a.test",
        "[s2s]\nlisten = [\"127.0.0.1:0\"]\nrequire_tls = false\nnegotiate_timeout_secs = 1\n",
    )
    .await;
    let mut p = RawPeer::connect(a.s2s.expect("s2s listener"), "b.test", "a.test").await;
    let err = p
        .next(|e| e.is("error", ns::STREAM))
        .await
        .expect("a stream error");
    assert_eq!(
        stream_error_condition(&err).as_deref(),
        Some("connection-timeout"),
        "{err}"
    );
    assert!(p.next(|_| false).await.is_none(), "then the stream ends");
}

/// A test CA and, per domain, a certificate it signed for the domain and its pubsub
/// service (server and client use), written where the servers and test clients find them.
struct Pki {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let key = rcgen::KeyPair::generate().expect("CA key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_pem = params.self_signed(&key).expect("CA certificate").pem();
        Pki {
            issuer: rcgen::Issuer::new(params, key),
            ca_pem,
        }
    }

    /// A data directory for `domain` holding its certificate and key, the CA file, and
    /// the CA as `tls/<domain>.crt` (what the test clients trust); returns it with the
    /// `[tls]` section and the CA file's path.
    fn dir_for(&self, domain: &str) -> (tempfile::TempDir, String, String) {
        let dir = tempfile::Builder::new()
            .prefix("hydrant-wire-")
            .tempdir()
            .expect("temp dir");
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let mut params =
            rcgen::CertificateParams::new(vec![domain.to_owned(), format!("pubsub.{domain}")])
                .expect("leaf params");
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let p = dir.path();
        std::fs::create_dir_all(p.join("tls")).expect("tls dir");
        std::fs::write(p.join("leaf.crt"), cert.pem()).expect("write");
        std::fs::write(p.join("leaf.key"), key.serialize_pem()).expect("write");
        std::fs::write(p.join("ca.crt"), &self.ca_pem).expect("write");
        std::fs::write(p.join("tls").join(format!("{domain}.crt")), &self.ca_pem).expect("write");
        // Temp paths are plain ASCII: quoted as they are, they are valid TOML strings.
        let tls = format!(
            "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            p.join("leaf.crt").display(),
            p.join("leaf.key").display()
        );
        let ca = format!("\"{}\"", p.join("ca.crt").display());
        (dir, tls, ca)
    }
}

/// With certificates both trust and dialback off on both sides, only SASL EXTERNAL
/// (XEP-0178) can authenticate the streams: messages still cross both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_authenticates_servers_with_trusted_certificates() {
    let pki = Pki::new();
    let (pa, pb) = (free_port(), free_port());
    let (da, tls_a, ca_a) = pki.dir_for("a.test");
    let (db, tls_b, ca_b) = pki.dir_for("b.test");
    let keys = |ca: &str| format!("allow_dialback = false\nca_file = {ca}");
    let a_cfg = format!("{tls_a}{}", s2s_with(pa, "b.test", pb, &keys(&ca_a)));
    let b_cfg = format!("{tls_b}{}", s2s_with(pb, "a.test", pa, &keys(&ca_b)));
    let a = Server::start_domain_in(da, "a.test", &a_cfg).await;
    let b = Server::start_domain_in(db, "b.test", &b_cfg).await;
    let mut alice = online(&a, "alice").await;
    let mut bob = online(&b, "bob").await;
    alice
        .send("<message to='bob@b.test' type='chat' id='x1'><body>by certificate</body></message>")
        .await;
    let m = bob
        .expect("alice's message", message_from("alice@a.test/phone"))
        .await;
    assert!(m.to_string().contains("by certificate"), "{m}");
    bob.send(
        "<message to='alice@a.test/phone' type='chat' id='x2'><body>likewise</body></message>",
    )
    .await;
    let m = alice
        .expect("bob's answer", message_from("bob@b.test/phone"))
        .await;
    assert!(m.to_string().contains("likewise"), "{m}");
}

/// Dialback off and certificates nobody trusts (each server's own self-signed one): the
/// peers cannot authenticate each other, and the message bounces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trust_or_dialback_the_peer_is_refused() {
    let (pa, pb) = (free_port(), free_port());
    let off = "allow_dialback = false";
    let a = Server::start_domain("a.test", &s2s_with(pa, "b.test", pb, off)).await;
    let _b = Server::start_domain("b.test", &s2s_with(pb, "a.test", pa, off)).await;
    let mut alice = online(&a, "alice").await;
    alice
        .send("<message to='bob@b.test' type='chat' id='r1'><body>let me in</body></message>")
        .await;
    let err = alice
        .expect("the bounce", |e| {
            e.name() == "message" && e.attr("type") == Some("error")
        })
        .await;
    assert_eq!(err.attr("id"), Some("r1"), "{err}");
    assert_eq!(
        common::stanza_error(&err).as_deref(),
        Some("remote-server-not-found"),
        "{err}"
    );
}

/// A raw TCP peer speaking s2s to `addr` (no TLS: the server under test allows that).
struct RawPeer {
    tcp: tokio::net::TcpStream,
    reader: hydrant_proto::StreamReader,
}

impl RawPeer {
    async fn connect(addr: std::net::SocketAddr, from: &str, to: &str) -> RawPeer {
        let mut p = RawPeer {
            tcp: tokio::net::TcpStream::connect(addr).await.expect("connect"),
            reader: hydrant_proto::StreamReader::new(hydrant_proto::Limits::default()),
        };
        p.send(&format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             from='{from}' to='{to}' version='1.0'>"
        ))
        .await;
        p
    }

    async fn send(&mut self, xml: &str) {
        use tokio::io::AsyncWriteExt as _;
        self.tcp.write_all(xml.as_bytes()).await.expect("send");
    }

    /// The next top-level element matching `pred` (others skipped); `None` at the end of
    /// the stream.
    async fn next(&mut self, pred: impl Fn(&Element) -> bool) -> Option<Element> {
        use tokio::io::AsyncReadExt as _;
        let wait = async {
            let mut buf = [0u8; 4096];
            loop {
                while let Some(ev) = self.reader.next_event().expect("well-formed") {
                    match ev {
                        hydrant_proto::StreamEvent::Stanza(el) if pred(&el) => return Some(el),
                        hydrant_proto::StreamEvent::Close => return None,
                        _ => {}
                    }
                }
                let n = self.tcp.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    return None;
                }
                self.reader.feed(&buf[..n]).expect("well-formed");
            }
        };
        tokio::time::timeout(common::TIMEOUT, wait)
            .await
            .expect("the server answered in time")
    }
}

fn stream_error_condition(el: &Element) -> Option<String> {
    el.children()
        .find(|c| c.ns() == ns::STREAMS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// What a peer that is not who it claims gets: stanzas before authentication are an
/// `<invalid-from/>` stream error, and a forged dialback key is checked with the real
/// authoritative server (b.test), found invalid, answered `invalid`, and the stream
/// closed; nothing reaches the user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_impostor_peer_is_refused() {
    let (pa, pb) = (free_port(), free_port());
    // a.test lets peers in without TLS so that this test can speak raw XML to it.
    let a =
        Server::start_domain("a.test", &s2s_with(pa, "b.test", pb, "require_tls = false")).await;
    let _b = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    let mut alice = online(&a, "alice").await;
    let addr = a.s2s.expect("s2s listener");

    // Unauthenticated: a stanza claiming to be from b.test.
    let mut p = RawPeer::connect(addr, "b.test", "a.test").await;
    p.send(
        "<message from='mallory@b.test' to='alice@a.test' id='f1'><body>trust me</body></message>",
    )
    .await;
    let err = p
        .next(|e| e.is("error", ns::STREAM))
        .await
        .expect("a stream error");
    assert_eq!(
        stream_error_condition(&err).as_deref(),
        Some("invalid-from"),
        "{err}"
    );

    // A dialback key b.test never issued.
    let mut p = RawPeer::connect(addr, "b.test", "a.test").await;
    p.send(&format!(
        "<db:result from='b.test' to='a.test'>{}</db:result>",
        "ab".repeat(32)
    ))
    .await;
    let answer = p
        .next(|e| e.ns() == ns::DIALBACK && e.name() == "result")
        .await
        .expect("a dialback answer");
    assert_eq!(answer.attr("type"), Some("invalid"), "{answer}");
    assert!(
        p.next(|_| false).await.is_none(),
        "the stream is closed after invalid"
    );

    alice.sync().await;
    alice.assert_none("nothing from the impostor", |e| e.name() == "message");
}

/// A peer address that opens connections faster than `connections_per_ip_per_sec` allows
/// (past its burst) is refused at accept: the socket is closed before any byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_opening_streams_in_a_loop_is_refused_at_accept() {
    use tokio::io::AsyncReadExt as _;
    let (pa, pb) = (free_port(), free_port());
    let limits = "connection_burst_per_ip = 2\nconnections_per_ip_per_sec = 1";
    let a = Server::start_domain("a.test", &s2s_with(pa, "b.test", pb, limits)).await;
    let addr = a.s2s.expect("s2s listener");
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut p = RawPeer::connect(addr, "b.test", "a.test").await;
        p.next(|e| e.is("features", ns::STREAM))
            .await
            .expect("features for a connection within the burst");
        kept.push(p);
    }
    let mut third = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(common::TIMEOUT, third.read(&mut buf))
        .await
        .expect("the server closes the connection")
        .unwrap_or(0);
    assert_eq!(n, 0, "refused at accept, without a stream header");
}

/// `[s2s] deny`: a stanza for a denied domain is refused at once with `<not-allowed/>`
/// (no connection is tried), and the denied server's own attempts are refused with a
/// stream error, which ends its tries at once (its user gets `<remote-server-not-found/>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_domain_is_refused_both_ways() {
    let (pa, pb) = (free_port(), free_port());
    let a =
        Server::start_domain("a.test", &s2s_with(pa, "b.test", pb, "deny = [\"b.test\"]")).await;
    let b = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    let mut alice = online(&a, "alice").await;
    let mut bob = online(&b, "bob").await;
    let is_error = |e: &Element| e.name() == "message" && e.attr("type") == Some("error");

    alice
        .send("<message to='bob@b.test' type='chat' id='d1'><body>hello?</body></message>")
        .await;
    let err = alice.expect("the refusal", is_error).await;
    assert_eq!(err.attr("id"), Some("d1"), "{err}");
    assert_eq!(
        common::stanza_error(&err).as_deref(),
        Some("not-allowed"),
        "{err}"
    );

    bob.send("<message to='alice@a.test' type='chat' id='d2'><body>let me in</body></message>")
        .await;
    let err = bob.expect("the refusal", is_error).await;
    assert_eq!(err.attr("id"), Some("d2"), "{err}");
    assert_eq!(
        common::stanza_error(&err).as_deref(),
        Some("remote-server-not-found"),
        "{err}"
    );
    alice.sync().await;
    alice.assert_none("nothing from the denied domain", |e| e.name() == "message");
}
