//! `hydrant_s2s::resolve` against a real authoritative DNS server (hickory-server, in
//! process, on 127.0.0.1 with a free UDP+TCP port) serving the zone `example.test.`, with
//! targets on 127.0.0.x and real TCP listeners. No test sleeps: each waits on a DNS answer,
//! a TCP accept, or (for the timeout) tokio's paused clock.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::ServerFuture;
use hickory_server::authority::{Catalog, ZoneType};
use hickory_server::proto::rr::rdata::{A, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::store::in_memory::InMemoryAuthority;
use hydrant_s2s::resolve::{ResolveError, Resolver, ResolverConfig, Target};
use tokio::net::{TcpListener, UdpSocket};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

fn name(text: &str) -> Name {
    Name::from_str(text).unwrap()
}

fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(name(owner), 60, RData::A(A(Ipv4Addr::from(ip))))
}

fn target(host: &str, port: u16, direct_tls: bool) -> Target {
    Target {
        host: host.to_owned(),
        port,
        direct_tls,
    }
}

/// The authoritative server for `example.test.`; dropping it stops it (its tasks live in
/// the server's `JoinSet`).
struct TestDns {
    addr: SocketAddr,
    _server: ServerFuture<Catalog>,
}

async fn start_dns(records: Vec<Record>) -> TestDns {
    let origin = name("example.test.");
    let mut zone = InMemoryAuthority::empty(origin.clone(), ZoneType::Primary, false);
    let soa = SOA::new(
        name("ns.example.test."),
        name("hostmaster.example.test."),
        1,
        3600,
        600,
        86400,
        60,
    );
    assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
    for record in records {
        assert!(zone.upsert_mut(record, 1));
    }
    let mut catalog = Catalog::new();
    catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);
    let mut server = ServerFuture::new(catalog);

    // The resolver asks UDP and TCP on the same port. A port free for UDP can be taken for
    // TCP; try a few.
    for _ in 0..20 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = udp.local_addr().unwrap();
        if let Ok(tcp) = TcpListener::bind(addr).await {
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(10));
            return TestDns {
                addr,
                _server: server,
            };
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

fn resolver(nameserver: SocketAddr, overrides: HashMap<String, Vec<(String, u16)>>) -> Resolver {
    Resolver::new(ResolverConfig {
        nameserver: Some(nameserver),
        overrides,
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// A port on `ip` where nothing listens (bound, then released).
async fn closed_port(ip: &str) -> u16 {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn srv_targets_come_back_in_priority_order() {
    let dns = start_dns(vec![
        srv(
            "_xmpp-server._tcp.prio.example.test.",
            30,
            0,
            5269,
            "c.example.test.",
        ),
        srv(
            "_xmpp-server._tcp.prio.example.test.",
            10,
            0,
            5269,
            "a.example.test.",
        ),
        srv(
            "_xmpp-server._tcp.prio.example.test.",
            20,
            0,
            5271,
            "b.example.test.",
        ),
        srv(
            "_xmpps-server._tcp.prio.example.test.",
            15,
            0,
            5270,
            "tls.example.test.",
        ),
    ])
    .await;
    let resolver = resolver(dns.addr, HashMap::new());

    // All weights 0, so the order is fully determined by priority; the direct TLS record
    // sits between the STARTTLS ones by its priority (XEP-0368 mixes the two sets).
    let targets = resolver.targets("prio.example.test").await.unwrap();
    assert_eq!(
        targets,
        [
            target("a.example.test", 5269, false),
            target("tls.example.test", 5270, true),
            target("b.example.test", 5271, false),
            target("c.example.test", 5269, false),
        ]
    );
}

#[tokio::test]
async fn connect_skips_targets_that_fail() {
    let live = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let live_addr = live.local_addr().unwrap();
    let dead_port = closed_port("127.0.0.2").await;
    let dns = start_dns(vec![
        // First: a name without any address records.
        srv(
            "_xmpp-server._tcp.conn.example.test.",
            5,
            0,
            5269,
            "noaddr.example.test.",
        ),
        // Second: an address where nothing listens (connection refused).
        srv(
            "_xmpp-server._tcp.conn.example.test.",
            10,
            0,
            dead_port,
            "dead.example.test.",
        ),
        // Third: the listener.
        srv(
            "_xmpp-server._tcp.conn.example.test.",
            20,
            0,
            live_addr.port(),
            "live.example.test.",
        ),
        a("dead.example.test.", [127, 0, 0, 2]),
        a("live.example.test.", [127, 0, 0, 3]),
    ])
    .await;
    let resolver = resolver(dns.addr, HashMap::new());

    let (stream, reached) = resolver
        .connect("conn.example.test", CONNECT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        reached,
        target("live.example.test", live_addr.port(), false)
    );
    assert_eq!(stream.peer_addr().unwrap(), live_addr);
    let (_accepted, from) = live.accept().await.unwrap();
    assert_eq!(from, stream.local_addr().unwrap());
}

#[tokio::test]
async fn connect_reports_what_it_tried_when_all_fail() {
    let dead_port = closed_port("127.0.0.2").await;
    let dns = start_dns(vec![
        srv(
            "_xmpp-server._tcp.down.example.test.",
            10,
            0,
            dead_port,
            "dead.example.test.",
        ),
        srv(
            "_xmpp-server._tcp.down.example.test.",
            20,
            0,
            5269,
            "noaddr.example.test.",
        ),
        a("dead.example.test.", [127, 0, 0, 2]),
    ])
    .await;
    let resolver = resolver(dns.addr, HashMap::new());

    match resolver.connect("down.example.test", CONNECT_TIMEOUT).await {
        Err(ResolveError::Unreachable(text)) => {
            assert!(
                text.contains(&format!(
                    "dead.example.test:{dead_port} (127.0.0.2:{dead_port})"
                )),
                "{text}"
            );
            assert!(text.contains("noaddr.example.test:5269"), "{text}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn dot_target_means_no_service() {
    let dns = start_dns(vec![
        srv("_xmpp-server._tcp.none.example.test.", 0, 0, 0, "."),
        // Would be the RFC 6120 3.2.2 fallback if "." were ignored.
        a("none.example.test.", [127, 0, 0, 5]),
    ])
    .await;
    let resolver = resolver(dns.addr, HashMap::new());

    assert_eq!(
        resolver.targets("none.example.test").await,
        Err(ResolveError::NoService)
    );
    assert!(matches!(
        resolver.connect("none.example.test", CONNECT_TIMEOUT).await,
        Err(ResolveError::NoService)
    ));
}

#[tokio::test]
async fn no_srv_records_fall_back_to_the_domain_on_5269() {
    let dns = start_dns(vec![
        // NXDOMAIN for both SRV names.
        a("plain.example.test.", [127, 0, 0, 4]),
        // NOERROR without SRV records (the owner names exist with another type): also "no
        // records", not a failure.
        a("nodata.example.test.", [127, 0, 0, 4]),
        a("_xmpp-server._tcp.nodata.example.test.", [127, 0, 0, 4]),
        a("_xmpps-server._tcp.nodata.example.test.", [127, 0, 0, 4]),
    ])
    .await;
    let resolver = resolver(dns.addr, HashMap::new());

    assert_eq!(
        resolver.targets("plain.example.test").await.unwrap(),
        [target("plain.example.test", 5269, false)]
    );
    assert_eq!(
        resolver.targets("NoData.Example.Test.").await.unwrap(),
        [target("nodata.example.test", 5269, false)]
    );
}

#[tokio::test]
async fn refused_answer_is_a_dns_error_not_a_fallback() {
    let dns = start_dns(vec![]).await;
    let resolver = resolver(dns.addr, HashMap::new());

    // The server is not authoritative for other.test and answers REFUSED: that says nothing
    // about the domain's records, so no A/AAAA fallback.
    match resolver.targets("other.test").await {
        Err(ResolveError::Dns(text)) => assert!(text.contains("Query Refused"), "{text}"),
        other => panic!("expected a DNS error, got {other:?}"),
    }
}

#[tokio::test]
async fn overrides_bypass_dns() {
    // A "name server" that never answers, as std sockets so the test can check afterwards,
    // without waiting, that nothing was sent to it.
    let silent_udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent_udp.local_addr().unwrap();
    let silent_tcp = std::net::TcpListener::bind(silent_addr).unwrap();
    silent_udp.set_nonblocking(true).unwrap();
    silent_tcp.set_nonblocking(true).unwrap();

    let live = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live_addr = live.local_addr().unwrap();
    let resolver = resolver(
        silent_addr,
        HashMap::from([
            (
                "Static.Example.Test".to_owned(),
                vec![
                    ("127.0.0.1".to_owned(), live_addr.port()),
                    ("[::1]".to_owned(), 5269),
                ],
            ),
            ("banned.example.test".to_owned(), vec![]),
        ]),
    );

    assert_eq!(
        resolver.targets("static.example.test").await.unwrap(),
        [
            target("127.0.0.1", live_addr.port(), false),
            target("[::1]", 5269, false)
        ]
    );
    let (stream, reached) = resolver
        .connect("static.example.test", CONNECT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(reached, target("127.0.0.1", live_addr.port(), false));
    assert_eq!(stream.peer_addr().unwrap(), live_addr);
    live.accept().await.unwrap();

    assert_eq!(
        resolver.targets("banned.example.test").await,
        Err(ResolveError::NoService)
    );

    let mut buf = [0u8; 512];
    assert_eq!(
        silent_udp.recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    assert_eq!(
        silent_tcp.accept().unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
}

#[tokio::test]
async fn override_hosts_are_still_resolved_but_srv_is_not() {
    let live = TcpListener::bind("127.0.0.3:0").await.unwrap();
    let live_addr = live.local_addr().unwrap();
    let dead_port = closed_port("127.0.0.2").await;
    let dns = start_dns(vec![
        // What DNS says for the domain; the override must win.
        srv(
            "_xmpp-server._tcp.static.example.test.",
            0,
            0,
            dead_port,
            "dead.example.test.",
        ),
        a("dead.example.test.", [127, 0, 0, 2]),
        a("live.example.test.", [127, 0, 0, 3]),
    ])
    .await;
    let resolver = resolver(
        dns.addr,
        HashMap::from([(
            "static.example.test".to_owned(),
            vec![("live.example.test".to_owned(), live_addr.port())],
        )]),
    );

    assert_eq!(
        resolver.targets("static.example.test").await.unwrap(),
        [target("live.example.test", live_addr.port(), false)]
    );
    let (stream, _) = resolver
        .connect("static.example.test", CONNECT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap(), live_addr);
    live.accept().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn dns_timeout_is_a_dns_error() {
    // Never answers; with the clock paused, tokio jumps to the lookup deadline as soon as
    // everything is waiting, so this takes no real time.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    silent.set_nonblocking(true).unwrap();
    let resolver = Resolver::new(ResolverConfig {
        nameserver: Some(silent.local_addr().unwrap()),
        overrides: HashMap::new(),
        timeout: Duration::from_secs(3),
    })
    .unwrap();

    match resolver.targets("slow.example.test").await {
        Err(ResolveError::Dns(text)) => assert!(text.contains("timed out"), "{text}"),
        other => panic!("expected a DNS error, got {other:?}"),
    }
    // It did ask (the error is not from some earlier step).
    let mut buf = [0u8; 512];
    assert!(silent.recv_from(&mut buf).is_ok());
}

#[tokio::test]
async fn ip_literal_domains_are_dialled_directly() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let resolver = resolver(silent.local_addr().unwrap(), HashMap::new());
    assert_eq!(
        resolver.targets("192.0.2.7").await.unwrap(),
        [target("192.0.2.7", 5269, false)]
    );
    assert_eq!(
        resolver.targets("[2001:db8::1]").await.unwrap(),
        [target("2001:db8::1", 5269, false)]
    );
}
