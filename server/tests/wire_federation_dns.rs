//! Two hydrant servers that find each other the way servers on the Internet do: through
//! DNS SRV records, served here by a real authoritative DNS server (hickory-server, in
//! process, on loopback) that both use as `[s2s] resolver`.
//!
//! `a.test` publishes `_xmpp-server._tcp` (STARTTLS) with a dead first target (priority 0,
//! nothing listening) before the real one (priority 10): its peer must fall through to
//! the second (RFC 6120 3.2.1). `b.test` publishes only `_xmpps-server._tcp` (XEP-0368), on
//! a direct TLS listener. Messages cross both ways, with dialback (self-signed
//! certificates) calling each side back through the same records.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use common::Server;
use common::federation::{free_port, message_from, online};
use hickory_server::ServerFuture;
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use tokio::net::{TcpListener, UdpSocket};

fn name(text: &str) -> Name {
    Name::from_str(text).expect("a DNS name")
}

fn srv(owner: &str, priority: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SRV(SRV::new(priority, 5, port, name(target))),
    )
}

fn a_record(owner: &str) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::LOCALHOST)))
}

/// The authoritative server for `test.` on a free UDP+TCP port of 127.0.0.1, bound
/// before the records are known; `serve` then starts it. Dropped, it stops.
struct TestDns {
    addr: SocketAddr,
    sockets: Option<(UdpSocket, TcpListener)>,
    /// Kept so the server runs as long as the test holds this.
    server: Option<ServerFuture<Catalog>>,
}

impl TestDns {
    async fn bind() -> TestDns {
        for _ in 0..20 {
            let udp = UdpSocket::bind("127.0.0.1:0").await.expect("udp");
            let addr = udp.local_addr().expect("addr");
            if let Ok(tcp) = TcpListener::bind(addr).await {
                return TestDns {
                    addr,
                    sockets: Some((udp, tcp)),
                    server: None,
                };
            }
        }
        panic!("no port free for both UDP and TCP on 127.0.0.1");
    }

    fn serve(&mut self, records: Vec<Record>) {
        let origin = name("test.");
        let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
        let soa = SOA::new(
            name("ns.test."),
            name("hostmaster.test."),
            1,
            3600,
            600,
            86400,
            60,
        );
        assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
        for r in records {
            assert!(zone.upsert_mut(r, 1));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
        let mut server = ServerFuture::new(catalog);
        let (udp, tcp) = self.sockets.take().expect("served once");
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(10));
        self.server = Some(server);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_find_each_other_through_srv_records() {
    let mut dns = TestDns::bind().await;
    let (a_port, b_tls_port, dead) = (free_port(), free_port(), free_port());
    let resolver = format!("resolver = \"{}\"\n", dns.addr);
    let a = Server::start_domain(
        "a.test",
        &format!("[s2s]\nlisten = [\"127.0.0.1:{a_port}\"]\n{resolver}"),
    )
    .await;
    let b = Server::start_domain(
        "b.test",
        &format!(
            "[s2s]\nlisten = []\ndirect_tls_listen = [\"127.0.0.1:{b_tls_port}\"]\n{resolver}"
        ),
    )
    .await;
    dns.serve(vec![
        srv("_xmpp-server._tcp.a.test.", 0, dead, "dead.a.test."),
        srv("_xmpp-server._tcp.a.test.", 10, a_port, "xmpp.a.test."),
        srv("_xmpps-server._tcp.b.test.", 0, b_tls_port, "xmpp.b.test."),
        a_record("dead.a.test."),
        a_record("xmpp.a.test."),
        a_record("xmpp.b.test."),
    ]);
    let mut alice = online(&a, "alice").await;
    let mut bob = online(&b, "bob").await;

    // a -> b: b's only SRV record is direct TLS.
    alice
        .send("<message to='bob@b.test' type='chat' id='s1'><body>over xmpps</body></message>")
        .await;
    let m = bob
        .expect("alice's message", message_from("alice@a.test/phone"))
        .await;
    assert!(m.to_string().contains("over xmpps"), "{m}");

    // b -> a: a's first target is dead; the second answers.
    bob.send("<message to='alice@a.test/phone' type='chat' id='s2'><body>past the dead one</body></message>")
        .await;
    let m = alice
        .expect("bob's answer", message_from("bob@b.test/phone"))
        .await;
    assert!(m.to_string().contains("past the dead one"), "{m}");
}
