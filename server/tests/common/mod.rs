//! Wire-test harness (DESIGN.md "Testing", tier 3): a real hydrant server in-process on
//! 127.0.0.1 port 0, with real TLS (its generated self-signed certificate, verified by the
//! client against exactly that certificate) and a real SQLite file in a temp dir, plus a
//! scripted XMPP client over real TCP sockets.
//!
//! Synchronisation is by events only: `expect` reads until the wanted stanza arrives (or
//! a generous timeout fails the test), and `sync` is a round trip to the server (a ping)
//! that proves every stanza this client caused earlier was processed. Stanzas read while
//! waiting for something else are buffered for later `expect`s, so interleavings in
//! delivery order never make a test flaky.

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod caps;
pub mod federation;
pub mod pubsub;
pub mod remote;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hydrant_proto::scram::{DEFAULT_ITERATIONS, StoredCredentials};
use hydrant_proto::{Element, Limits, StreamEvent, StreamReader, ns};
use hydrant_server::config::Config;
use hydrant_storage::{AccountStore as _, SqliteStore};
use rustls::pki_types::ServerName;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take. Generous: two shared cores, debug builds.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub const DOMAIN: &str = "localhost";

/// The stream header a client sends.
pub const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn init_tracing() {
    // Server logs go to the test's captured output (shown for failing tests only).
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_test_writer()
        .try_init();
}

/// A running server.
pub struct Server {
    pub c2s: SocketAddr,
    pub direct_tls: SocketAddr,
    dir: Option<TempDir>,
    extra: String,
    /// Extra keys of the `[c2s]` section (see [`Server::start_in_with_c2s`]).
    c2s_extra: String,
    shutdown: CancellationToken,
    /// The result of `serve`, once it returned.
    done: Option<tokio::sync::oneshot::Receiver<anyhow::Result<()>>>,
    tls: Arc<rustls::ClientConfig>,
    /// The running server's router (tests that stand in for s2s).
    pub router: Arc<hydrant_server::router::Router>,
    /// The s2s listener, if federation is on.
    pub s2s: Option<SocketAddr>,
    /// The domain served.
    pub domain: String,
}

impl Server {
    /// A server with the test configuration (registration on).
    pub async fn start() -> Server {
        Server::start_with("").await
    }

    /// A server with extra TOML sections appended to the test configuration.
    pub async fn start_with(extra: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("hydrant-wire-")
            .tempdir()
            .expect("temp dir");
        Server::start_in(dir, extra).await
    }

    /// A server on an existing data directory (for restart tests).
    ///
    /// The server runs on its own OS thread with its own runtime, as it would in
    /// production: a server task that hogs its threads cannot stall the test's client
    /// side, whose timeouts then still fire and fail the test.
    pub async fn start_in(dir: TempDir, extra: &str) -> Server {
        Server::start_in_with_c2s(dir, "", extra).await
    }

    /// A server on an existing data directory with extra keys for the `[c2s]` section
    /// (one per line, e.g. `"outbound_queue_bytes = 65536"`) and extra TOML sections.
    /// A `require_tls` key there replaces the test default (`true`).
    pub async fn start_in_with_c2s(dir: TempDir, c2s: &str, extra: &str) -> Server {
        Server::start_for(dir, DOMAIN, c2s, extra).await
    }

    /// A server for another domain than `localhost` (federation tests), with extra TOML
    /// sections.
    pub async fn start_domain(domain: &str, extra: &str) -> Server {
        let dir = tempfile::Builder::new()
            .prefix("hydrant-wire-")
            .tempdir()
            .expect("temp dir");
        Server::start_for(dir, domain, "", extra).await
    }

    /// [`Server::start_domain`] on a prepared data directory (e.g. with certificates).
    pub async fn start_domain_in(dir: TempDir, domain: &str, extra: &str) -> Server {
        Server::start_for(dir, domain, "", extra).await
    }

    async fn start_for(dir: TempDir, domain: &str, c2s: &str, extra: &str) -> Server {
        init_tracing();
        let text = config_text_for(dir.path(), domain, c2s, extra);
        let cfg = Config::parse(&text, Path::new("test")).expect("the test config is valid");
        let shutdown = CancellationToken::new();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let token = shutdown.clone();
        std::thread::Builder::new()
            .name("hydrant-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                let result = rt.block_on(hydrant_server::serve::serve(cfg, token, Some(ready_tx)));
                let _ = done_tx.send(result);
            })
            .expect("server thread");
        let bound = match tokio::time::timeout(TIMEOUT, ready_rx).await {
            Ok(Ok(b)) => b,
            Ok(Err(closed)) => panic!("server failed to start ({closed}): {:?}", done_rx.await),
            Err(elapsed) => panic!("server did not report its addresses: {elapsed}"),
        };
        assert_eq!(bound.c2s.len(), 1, "{bound:?}");
        assert_eq!(bound.direct_tls.len(), 1, "{bound:?}");
        let tls = client_tls(&dir.path().join("tls").join(format!("{domain}.crt")));
        Server {
            c2s: bound.c2s[0],
            direct_tls: bound.direct_tls[0],
            dir: Some(dir),
            extra: extra.to_owned(),
            c2s_extra: c2s.to_owned(),
            shutdown,
            done: Some(done_rx),
            tls,
            router: bound.router.clone().expect("serve reports its router"),
            s2s: bound.s2s.first().copied(),
            domain: domain.to_owned(),
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.as_ref().expect("running").path()
    }

    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    /// Graceful stop: cancels the token and waits for `serve` to return `Ok`. Returns the
    /// data directory so a new server can start on it.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.cancel();
        let done = self.done.take().expect("running");
        match tokio::time::timeout(TIMEOUT, done).await {
            Ok(Ok(Ok(()))) => {}
            other => panic!("server did not stop cleanly: {other:?}"),
        }
        self.dir.take().expect("running")
    }

    /// Stops and starts again on the same data directory and configuration.
    pub async fn restart(self) -> Server {
        let (extra, c2s, domain) = (
            self.extra.clone(),
            self.c2s_extra.clone(),
            self.domain.clone(),
        );
        let dir = self.stop().await;
        Server::start_for(dir, &domain, &c2s, &extra).await
    }

    /// Creates an account directly in the store (SQLite allows a second connection).
    pub fn add_user(&self, user: &str, password: &str) {
        let store = SqliteStore::open(&self.data_dir().join("hydrant.sqlite3")).expect("store");
        let creds = StoredCredentials::from_password(password, DEFAULT_ITERATIONS);
        store.create_account(user, &creds).expect("create account");
    }

    /// Connects to the STARTTLS port and negotiates TLS; returns the features offered on
    /// the secured stream.
    pub async fn connect_tls(&self) -> (Client, Element) {
        let mut c = Client::tcp(self.c2s, self.tls()).await;
        c.domain.clone_from(&self.domain);
        let features = c.open_stream().await;
        let starttls = features
            .get_child("starttls", ns::TLS)
            .unwrap_or_else(|| panic!("STARTTLS not offered: {features}"));
        assert!(
            starttls.get_child("required", ns::TLS).is_some(),
            "STARTTLS must be required by the test config: {features}"
        );
        c.starttls().await;
        let features = c.open_stream().await;
        (c, features)
    }

    /// STARTTLS, SASL PLAIN, bind `resource`: a bound session that sent no presence.
    pub async fn login(&self, user: &str, password: &str, resource: &str) -> Client {
        let (mut c, features) = self.connect_tls().await;
        assert!(
            mechanisms(&features).contains(&"PLAIN".to_owned()),
            "{features}"
        );
        c.auth_plain(user, password)
            .await
            .unwrap_or_else(|f| panic!("PLAIN login of {user} failed: {f}"));
        let features = c.open_stream().await;
        c.bind(&features, resource).await;
        c
    }

    /// [`Server::login`] with XEP-0138 zlib negotiated between SASL and binding (the
    /// server must offer it: `[c2s] compression = true`).
    pub async fn login_compressed(&self, user: &str, password: &str, resource: &str) -> Client {
        let (mut c, _) = self.connect_tls().await;
        c.auth_plain(user, password)
            .await
            .unwrap_or_else(|f| panic!("PLAIN login of {user} failed: {f}"));
        let features = c.open_stream().await;
        assert!(
            features
                .get_child("compression", "http://jabber.org/features/compress")
                .is_some(),
            "compression offered after authentication: {features}"
        );
        let features = c.compress().await;
        c.bind(&features, resource).await;
        c
    }

    /// Plaintext (the server must run with `require_tls = false`), SASL SCRAM-SHA-256,
    /// bind `resource`: a bound session that sent no presence. `recv_buffer` sets the
    /// client socket's SO_RCVBUF before connecting (a small one makes a client that stops
    /// reading fill up sooner).
    pub async fn login_plaintext(
        &self,
        user: &str,
        password: &str,
        resource: &str,
        recv_buffer: Option<u32>,
    ) -> Client {
        let mut c = Client::tcp_with_recv_buffer(self.c2s, self.tls(), recv_buffer).await;
        c.domain.clone_from(&self.domain);
        let features = c.open_stream().await;
        if let Some(st) = features.get_child("starttls", ns::TLS) {
            assert!(
                st.get_child("required", ns::TLS).is_none(),
                "plaintext login needs require_tls = false: {features}"
            );
        }
        assert!(
            mechanisms(&features).contains(&"SCRAM-SHA-256".to_owned()),
            "{features}"
        );
        c.auth_scram_sha256(user, password)
            .await
            .unwrap_or_else(|f| panic!("SCRAM login of {user} failed: {f}"));
        let features = c.open_stream().await;
        c.bind(&features, resource).await;
        c
    }

    /// `login`, then a roster get (so the session receives roster pushes) and initial
    /// presence, waiting for the server's echo of that presence.
    pub async fn online(&self, user: &str, password: &str, resource: &str) -> Client {
        let mut c = self.login(user, password, resource).await;
        c.roster_get(None).await;
        c.send_presence("").await;
        c
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The test configuration's text for a data directory (see [`Server::start_in_with_c2s`]).
pub fn config_text(dir: &Path, c2s: &str, extra: &str) -> String {
    config_text_for(dir, DOMAIN, c2s, extra)
}

/// [`config_text`] for another domain.
pub fn config_text_for(dir: &Path, domain: &str, c2s: &str, extra: &str) -> String {
    // Debug formatting of a path string is a valid TOML basic string for temp paths.
    let dir = dir.to_str().expect("UTF-8 temp dir");
    let require_tls = if c2s.contains("require_tls") {
        ""
    } else {
        "require_tls = true\n"
    };
    // Tests open many connections from 127.0.0.1 at once; per-address admission gets
    // its own tests, which set these keys themselves.
    let per_ip = if c2s.contains("_per_ip") {
        ""
    } else {
        "max_unauthenticated_per_ip = 100000\n\
         connections_per_ip_per_sec = 100000\n\
         connection_burst_per_ip = 100000\n"
    };
    // Federation is off unless a test configures it: with it on, a stanza for another
    // domain would be resolved through the system's DNS, and tests talk to loopback only.
    let s2s = if extra.contains("[s2s]") {
        ""
    } else {
        "[s2s]\nenabled = false\n"
    };
    format!(
        "domain = {domain:?}\n\
         data_dir = {dir:?}\n\
         log = \"warn\"\n\
         [c2s]\n\
         listen = [\"127.0.0.1:0\"]\n\
         direct_tls_listen = [\"127.0.0.1:0\"]\n\
         {require_tls}\
         {per_ip}\
         {c2s}\n\
         auth_failure_max_delay_secs = 1\n\
         [registration]\n\
         enabled = true\n\
         {extra}\n\
         {s2s}"
    )
}

/// A client config trusting exactly the server's generated certificate.
fn client_tls(cert: &PathBuf) -> Arc<rustls::ClientConfig> {
    let pem = std::fs::read(cert).unwrap_or_else(|e| panic!("{}: {e}", cert.display()));
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(c.expect("PEM certificate")).expect("usable root");
    }
    assert_eq!(roots.len(), 1, "one generated certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// The SASL mechanisms in a features element.
pub fn mechanisms(features: &Element) -> Vec<String> {
    features
        .get_child("mechanisms", ns::SASL)
        .map(|m| m.children().map(Element::text).collect())
        .unwrap_or_default()
}

enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

impl Transport {
    async fn write_all(&mut self, b: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
            Transport::Tls(s) => {
                s.write_all(b).await?;
                s.flush().await
            }
            Transport::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf).await,
            Transport::Tls(s) => s.read(buf).await,
            Transport::Gone => Ok(0),
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A unique stanza id.
pub fn new_id() -> String {
    format!("t{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// What reading produced.
enum Read {
    Stanza(Element),
    Header,
    /// `</stream:stream>` or end of the connection.
    Closed,
    Timeout,
}

/// A scripted XMPP client.
pub struct Client {
    io: Transport,
    reader: StreamReader,
    buffered: VecDeque<Element>,
    tls: Arc<rustls::ClientConfig>,
    /// The full JID once bound.
    pub jid: String,
    /// The server sent `</stream:stream>` or closed the connection.
    pub closed: bool,
    /// The stream id of the server's latest header.
    pub stream_id: Option<String>,
    /// The ALPN protocol agreed in the TLS handshake.
    pub alpn: Option<Vec<u8>>,
    /// The domain this client's streams are for (`localhost` unless set).
    pub domain: String,
    /// XEP-0138 zlib, once negotiated ([`Client::compress`]): a stock per-stream
    /// compressor and inflater (flate2), which also checks what the server writes.
    zlib: Option<Box<(flate2::Compress, flate2::Decompress)>>,
    /// Bytes read from the socket, and what they were before compression (equal on an
    /// uncompressed stream).
    pub wire_in: u64,
    pub plain_in: u64,
}

fn reader() -> StreamReader {
    StreamReader::new(Limits {
        max_stanza_bytes: 16 << 20,
        max_depth: 64,
        max_attrs: 64,
        ..Limits::default()
    })
}

impl Client {
    /// A plain TCP connection (no bytes sent yet).
    pub async fn tcp(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        Client {
            io: Transport::Plain(tcp),
            reader: reader(),
            buffered: VecDeque::new(),
            tls,
            jid: String::new(),
            closed: false,
            stream_id: None,
            alpn: None,
            domain: DOMAIN.to_owned(),
            zlib: None,
            wire_in: 0,
            plain_in: 0,
        }
    }

    /// A plain TCP connection whose socket has SO_RCVBUF = `recv_buffer` (if given),
    /// set before connecting so that the advertised window honours it.
    pub async fn tcp_with_recv_buffer(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        recv_buffer: Option<u32>,
    ) -> Client {
        let Some(size) = recv_buffer else {
            return Client::tcp(addr, tls).await;
        };
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .expect("socket");
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
        let tcp = socket.connect(addr).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        Client {
            io: Transport::Plain(tcp),
            reader: reader(),
            buffered: VecDeque::new(),
            tls,
            jid: String::new(),
            closed: false,
            stream_id: None,
            alpn: None,
            domain: DOMAIN.to_owned(),
            zlib: None,
            wire_in: 0,
            plain_in: 0,
        }
    }

    /// The plaintext socket, for tests that read the raw byte stream themselves (e.g.
    /// thousands of subscribers scanning notifications without an XML parser). Panics if
    /// the stream is TLS or if anything was received and not consumed yet.
    pub fn into_tcp(self) -> TcpStream {
        assert!(
            self.buffered.is_empty() && self.reader.buffered_len() == 0,
            "{}: unconsumed input: {}",
            self.jid,
            self.describe_buffer()
        );
        match self.io {
            Transport::Plain(tcp) => tcp,
            _ => panic!("into_tcp on a stream that is not plain TCP"),
        }
    }

    /// A direct TLS connection (XEP-0368), offering ALPN "xmpp-client".
    pub async fn direct_tls(addr: SocketAddr, tls: Arc<rustls::ClientConfig>) -> Client {
        let mut cfg = (*tls).clone();
        cfg.alpn_protocols = vec![b"xmpp-client".to_vec()];
        let mut c = Client::tcp(addr, Arc::new(cfg)).await;
        c.tls_handshake().await;
        c
    }

    async fn tls_handshake(&mut self) {
        let Transport::Plain(tcp) = std::mem::replace(&mut self.io, Transport::Gone) else {
            panic!("TLS handshake on a stream that is not plain TCP");
        };
        let name = ServerName::try_from(self.domain.clone()).expect("server name");
        let tls = tokio::time::timeout(
            TIMEOUT,
            TlsConnector::from(self.tls.clone()).connect(name, tcp),
        )
        .await
        .expect("TLS handshake timed out")
        .expect("TLS handshake (certificate verified against the generated one)");
        self.alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        self.io = Transport::Tls(Box::new(tls));
    }

    /// Sends raw text (compressed, with a sync flush, on a compressed stream).
    pub async fn send(&mut self, xml: &str) {
        let bytes = match self.zlib.as_mut() {
            None => xml.as_bytes().to_vec(),
            Some(z) => {
                let mut out = Vec::with_capacity(xml.len() + 64);
                let mut input = xml.as_bytes();
                loop {
                    out.reserve(input.len() + 64);
                    let before = z.0.total_in();
                    z.0.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
                        .expect("deflate");
                    input = &input[(z.0.total_in() - before) as usize..];
                    if input.is_empty() && out.len() < out.capacity() {
                        break;
                    }
                }
                out
            }
        };
        self.io
            .write_all(&bytes)
            .await
            .unwrap_or_else(|e| panic!("sending {xml}: {e}"));
    }

    /// XEP-0138: asks for zlib, waits for `<compressed/>`, then compresses both ways and
    /// opens the new stream; returns its features.
    pub async fn compress(&mut self) -> Element {
        self.send(
            "<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>",
        )
        .await;
        let ok = self
            .expect("<compressed/> or <failure/>", |e| {
                e.ns() == "http://jabber.org/protocol/compress"
            })
            .await;
        assert_eq!(ok.name(), "compressed", "{ok}");
        assert_eq!(
            self.reader.buffered_len(),
            0,
            "nothing uncompressed may follow <compressed/>"
        );
        self.zlib = Some(Box::new((
            flate2::Compress::new(flate2::Compression::default(), true),
            flate2::Decompress::new(true),
        )));
        self.reader.restart();
        self.open_stream().await
    }

    /// Sends raw bytes, reporting (not panicking on) errors: the server may have closed
    /// the connection already.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.io.write_all(bytes).await
    }

    async fn read_until(&mut self, deadline: Instant) -> Read {
        let mut buf = vec![0u8; 16384];
        loop {
            match self.reader.next_event() {
                Ok(Some(StreamEvent::Stanza(el))) => return Read::Stanza(el),
                Ok(Some(StreamEvent::Open(h))) => {
                    self.stream_id = h.id().map(str::to_owned);
                    assert_eq!(h.from(), Some(self.domain.as_str()), "server header 'from'");
                    assert_eq!(h.version(), Some("1.0"), "server header version");
                    return Read::Header;
                }
                Ok(Some(StreamEvent::Close)) => {
                    self.closed = true;
                    return Read::Closed;
                }
                Ok(None) => {}
                Err(e) => panic!("the server sent malformed XML: {e}"),
            }
            if self.closed {
                return Read::Closed;
            }
            let n = match tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await {
                Err(_) => return Read::Timeout,
                Ok(Ok(n)) => n,
                // A reset, or TCP closed without TLS close_notify: the connection is over.
                Ok(Err(_)) => 0,
            };
            if n == 0 {
                self.closed = true;
                return Read::Closed;
            }
            self.wire_in += n as u64;
            let plain = match self.zlib.as_mut() {
                None => buf[..n].to_vec(),
                Some(z) => {
                    // Everything the server wrote is flushed to a byte boundary: a stock
                    // inflater gives all of it back at once.
                    let mut out = Vec::with_capacity(4 * n + 1024);
                    let mut input = &buf[..n];
                    loop {
                        out.reserve(4 * n + 1024);
                        let before = z.1.total_in();
                        z.1.decompress_vec(input, &mut out, flate2::FlushDecompress::Sync)
                            .unwrap_or_else(|e| panic!("the server sent bad zlib data: {e}"));
                        input = &input[(z.1.total_in() - before) as usize..];
                        if input.is_empty() && out.len() < out.capacity() {
                            break;
                        }
                    }
                    out
                }
            };
            self.plain_in += plain.len() as u64;
            if let Err(e) = self.reader.feed(&plain) {
                panic!("the server sent malformed XML: {e}");
            }
        }
    }

    fn describe_buffer(&self) -> String {
        if self.buffered.is_empty() {
            return "nothing".into();
        }
        self.buffered
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n  ")
    }

    /// Reads until a stanza matching `pred` arrives (earlier unmatched ones are kept for
    /// later); panics naming `what` after `timeout` or if the stream ends first.
    pub async fn expect_within(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Element) -> bool,
    ) -> Element {
        if let Some(i) = self.buffered.iter().position(&pred) {
            return self.buffered.remove(i).expect("index from position");
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_until(deadline).await {
                Read::Stanza(el) if pred(&el) => return el,
                Read::Stanza(el) => self.buffered.push_back(el),
                Read::Header => {}
                Read::Closed => panic!(
                    "{}: stream closed while waiting for {what}; received:\n  {}",
                    self.jid,
                    self.describe_buffer()
                ),
                Read::Timeout => panic!(
                    "{}: no {what} within {timeout:?}; received:\n  {}",
                    self.jid,
                    self.describe_buffer()
                ),
            }
        }
    }

    /// Like [`Client::expect_within`], but `None` once `timeout` passes: for a check
    /// that something is *not* written, made after an event proving it would have been.
    pub async fn try_expect_within(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&Element) -> bool,
    ) -> Option<Element> {
        if let Some(i) = self.buffered.iter().position(&pred) {
            return self.buffered.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.read_until(deadline).await {
                Read::Stanza(el) if pred(&el) => return Some(el),
                Read::Stanza(el) => self.buffered.push_back(el),
                Read::Header => {}
                Read::Closed => panic!("{}: stream closed", self.jid),
                Read::Timeout => return None,
            }
        }
    }

    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
        self.expect_within(what, TIMEOUT, pred).await
    }

    /// Waits for the server's stream header and returns the features that follow it.
    pub async fn open_stream(&mut self) -> Element {
        if self.domain == DOMAIN {
            self.send(HEADER).await;
        } else {
            let header = HEADER.replace("to='localhost'", &format!("to='{}'", self.domain));
            self.send(&header).await;
        }
        self.expect("<stream:features/>", |e| e.is("features", ns::STREAM))
            .await
    }

    pub async fn starttls(&mut self) {
        self.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            .await;
        self.expect("<proceed/>", |e| e.is("proceed", ns::TLS))
            .await;
        assert_eq!(
            self.reader.buffered_len(),
            0,
            "nothing may follow <proceed/> in plaintext"
        );
        self.tls_handshake().await;
        self.reader = reader();
    }

    /// SASL PLAIN; `Err` is the failure condition.
    pub async fn auth_plain(&mut self, user: &str, password: &str) -> Result<(), String> {
        let payload = B64.encode(format!("\0{user}\0{password}"));
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
        ))
        .await;
        self.sasl_outcome().await.map(|_| ())
    }

    /// SASL SCRAM-SHA-256 with the `sasl` crate's client, which also verifies the
    /// server's signature in `<success/>`.
    pub async fn auth_scram_sha256(&mut self, user: &str, password: &str) -> Result<(), String> {
        use sasl::client::Mechanism as _;
        use sasl::client::mechanisms::Scram;
        use sasl::common::scram::Sha256;
        use sasl::common::{ChannelBinding, Credentials};
        let creds = Credentials::default()
            .with_username(user)
            .with_password(password)
            .with_channel_binding(ChannelBinding::None);
        let mut scram = Scram::<Sha256>::from_credentials(creds).expect("SCRAM client");
        let first = B64.encode(scram.initial());
        self.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>{first}</auth>"
        ))
        .await;
        let challenge = self.expect("SASL challenge", |e| e.ns() == ns::SASL).await;
        if challenge.name() == "failure" {
            return Err(failure_condition(&challenge));
        }
        assert_eq!(challenge.name(), "challenge", "{challenge}");
        let challenge = B64
            .decode(challenge.text().trim())
            .expect("base64 challenge");
        let response = scram.response(&challenge).expect("server-first is valid");
        self.send(&format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(response)
        ))
        .await;
        let data = self.sasl_outcome().await?;
        scram
            .success(&data)
            .expect("the server proves it knows the password (server signature)");
        Ok(())
    }

    /// Waits for `<success/>` (restarting the reader, RFC 6120 6.4.6) or `<failure/>`.
    async fn sasl_outcome(&mut self) -> Result<Vec<u8>, String> {
        let el = self
            .expect("SASL success or failure", |e| {
                e.is("success", ns::SASL) || e.is("failure", ns::SASL)
            })
            .await;
        if el.name() == "failure" {
            return Err(failure_condition(&el));
        }
        self.reader.restart();
        let text = el.text();
        let text = text.trim();
        Ok(if text.is_empty() || text == "=" {
            Vec::new()
        } else {
            B64.decode(text).expect("base64 success data")
        })
    }

    /// Binds `resource` (RFC 6120 7) after checking the post-auth features.
    pub async fn bind(&mut self, features: &Element, resource: &str) -> String {
        assert!(features.get_child("bind", ns::BIND).is_some(), "{features}");
        assert!(
            features.get_child("ver", ns::ROSTERVER).is_some(),
            "roster versioning advertised (RFC 6121 2.6.1): {features}"
        );
        let id = new_id();
        self.send(&format!(
            "<iq type='set' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <resource>{resource}</resource></bind></iq>"
        ))
        .await;
        let res = self.expect("bind result", is_reply(&id)).await;
        assert_eq!(res.attr("type"), Some("result"), "{res}");
        let jid = res
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .map_or_else(|| panic!("bind result without jid: {res}"), Element::text);
        self.jid.clone_from(&jid);
        jid
    }

    /// Sends an iq with a fresh id and returns the reply (result or error).
    /// `attrs_and_payload`: e.g. `("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")`.
    pub async fn iq(&mut self, kind: &str, to: Option<&str>, payload: &str) -> Element {
        let id = new_id();
        let to = to.map(|t| format!(" to='{t}'")).unwrap_or_default();
        self.send(&format!("<iq type='{kind}' id='{id}'{to}>{payload}</iq>"))
            .await;
        self.expect(&format!("reply to iq {id}"), is_reply(&id))
            .await
    }

    /// A ping round trip to the server: once it returns, every stanza this client sent
    /// earlier has been processed, and everything the server queued for this client
    /// before answering has been read into the buffer.
    pub async fn sync(&mut self) {
        let res = self
            .iq(
                "get",
                Some(&self.domain.clone()),
                "<ping xmlns='urn:xmpp:ping'/>",
            )
            .await;
        assert_eq!(res.attr("type"), Some("result"), "{res}");
    }

    /// Puts back the stanza `expect` just returned, in its place (the last received):
    /// to be taken again later.
    pub fn put_back(&mut self, el: Element) {
        self.buffered.push_back(el);
    }

    /// Stanzas received (and buffered) so far that match `pred`, removed from the buffer.
    pub fn take_buffered(&mut self, pred: impl Fn(&Element) -> bool) -> Vec<Element> {
        let (hit, keep): (Vec<_>, Vec<_>) = self.buffered.drain(..).partition(|e| pred(e));
        self.buffered = keep.into();
        hit
    }

    /// Asserts that no buffered stanza matches `pred` (call after `sync`).
    pub fn assert_none(&mut self, what: &str, pred: impl Fn(&Element) -> bool) {
        let hits = self.take_buffered(pred);
        assert!(
            hits.is_empty(),
            "{}: unexpected {what}: {}",
            self.jid,
            hits.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }

    /// Roster get; returns the `<query/>` of the result (`None` for an empty result).
    pub async fn roster_get(&mut self, ver: Option<&str>) -> Option<Element> {
        let ver = ver.map(|v| format!(" ver='{v}'")).unwrap_or_default();
        let res = self
            .iq(
                "get",
                None,
                &format!("<query xmlns='jabber:iq:roster'{ver}/>"),
            )
            .await;
        assert_eq!(res.attr("type"), Some("result"), "{res}");
        res.get_child("query", ns::ROSTER).cloned()
    }

    /// Sends broadcast presence with `children` and waits for the server's echo of it
    /// to this resource (RFC 6121 4.2.2 / 4.4.2).
    pub async fn send_presence(&mut self, children: &str) {
        self.send(&format!("<presence>{children}</presence>")).await;
        let me = self.jid.clone();
        self.expect("own presence echo", |e| {
            e.name() == "presence"
                && e.attr("from") == Some(me.as_str())
                && e.attr("type").is_none()
        })
        .await;
    }

    /// Waits for a `<stream:error/>` and returns its condition name.
    pub async fn expect_stream_error(&mut self) -> String {
        let err = self
            .expect("<stream:error/>", |e| e.is("error", ns::STREAM))
            .await;
        err.children()
            .find(|c| c.ns() == ns::STREAMS && c.name() != "text")
            .map_or_else(
                || panic!("stream error without condition: {err}"),
                |c| c.name().to_owned(),
            )
    }

    /// Waits until the server closes the stream (`</stream:stream>` or end of connection);
    /// stanzas before that are kept in the buffer.
    pub async fn expect_closed(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.read_until(deadline).await {
                Read::Stanza(el) => self.buffered.push_back(el),
                Read::Header => {}
                Read::Closed => return,
                Read::Timeout => panic!(
                    "{}: stream not closed within {TIMEOUT:?}; received:\n  {}",
                    self.jid,
                    self.describe_buffer()
                ),
            }
        }
    }

    /// Closes the stream in order (RFC 6120 4.4) and waits for the server's close.
    pub async fn close(mut self) {
        self.send("</stream:stream>").await;
        self.expect_closed().await;
    }
}

/// The condition of a SASL `<failure/>`.
fn failure_condition(el: &Element) -> String {
    el.children()
        .find(|c| c.name() != "text")
        .map_or_else(|| "(none)".into(), |c| c.name().to_owned())
}

/// Matches the reply (result or error) to the iq with this id.
pub fn is_reply(id: &str) -> impl Fn(&Element) -> bool + use<> {
    let id = id.to_owned();
    move |e: &Element| {
        e.name() == "iq"
            && e.attr("id") == Some(id.as_str())
            && matches!(e.attr("type"), Some("result" | "error"))
    }
}

/// The defined condition of a stanza error (`<error><cond xmlns=stanzas/></error>`).
pub fn stanza_error(el: &Element) -> Option<String> {
    if el.attr("type") != Some("error") {
        return None;
    }
    el.get_child("error", ns::CLIENT)?
        .children()
        .find(|c| c.ns() == ns::STANZAS && c.name() != "text")
        .map(|c| c.name().to_owned())
}

/// A message with this body.
pub fn message_with_body(body: &str) -> impl Fn(&Element) -> bool + use<> {
    let body = body.to_owned();
    move |e: &Element| {
        e.name() == "message"
            && e.get_child("body", ns::CLIENT)
                .map(Element::text)
                .as_deref()
                == Some(body.as_str())
    }
}

/// A presence from `from` whose `type` is `kind` (`None`: available).
pub fn presence(from: &str, kind: Option<&str>) -> impl Fn(&Element) -> bool + use<> {
    let (from, kind) = (from.to_owned(), kind.map(str::to_owned));
    move |e: &Element| {
        e.name() == "presence"
            && e.attr("from") == Some(from.as_str())
            && e.attr("type") == kind.as_deref()
    }
}

/// A roster push (iq set with one item) for `jid`.
pub fn roster_push(jid: &str) -> impl Fn(&Element) -> bool + use<> {
    let jid = jid.to_owned();
    move |e: &Element| {
        e.name() == "iq"
            && e.attr("type") == Some("set")
            && e.get_child("query", ns::ROSTER)
                .and_then(|q| q.get_child("item", ns::ROSTER))
                .is_some_and(|i| i.attr("jid") == Some(jid.as_str()))
    }
}

/// The single item of a roster push or result query.
pub fn item(el: &Element) -> &Element {
    let q = if el.is("query", ns::ROSTER) {
        el
    } else {
        el.get_child("query", ns::ROSTER)
            .unwrap_or_else(|| panic!("no roster query: {el}"))
    };
    let items: Vec<_> = q.children().filter(|c| c.is("item", ns::ROSTER)).collect();
    assert_eq!(items.len(), 1, "exactly one item: {el}");
    items[0]
}

impl Client {
    /// Forgets everything buffered so far.
    pub fn clear(&mut self) {
        self.buffered.clear();
    }

    /// The bare JID of the bound session.
    pub fn bare(&self) -> String {
        self.jid
            .split_once('/')
            .map_or(self.jid.clone(), |(b, _)| b.to_owned())
    }
}

/// Mutual subscription between two available sessions that requested their rosters
/// (RFC 6121 3.1, both ways), checking the final pushes and the presence exchanged, then
/// syncing both and clearing their buffers.
pub async fn befriend(a: &mut Client, b: &mut Client) {
    subscribe_and_approve(a, b).await;
    subscribe_and_approve(b, a).await;
    let (a_bare, b_bare) = (a.bare(), b.bare());
    for (x, y) in [(&mut *a, b_bare), (&mut *b, a_bare)] {
        let pred = roster_push(&y);
        let both = move |e: &Element| pred(e) && item(e).attr("subscription") == Some("both");
        x.expect("push with subscription='both'", both).await;
        x.sync().await;
    }
    a.sync().await;
    a.clear();
    b.clear();
}

/// `x` subscribes to `y`'s presence and `y` approves (RFC 6121 3.1.2 to 3.1.5).
pub async fn subscribe_and_approve(x: &mut Client, y: &mut Client) {
    let (x_bare, y_bare, y_full) = (x.bare(), y.bare(), y.jid.clone());
    x.send(&format!("<presence to='{y_bare}' type='subscribe'/>"))
        .await;
    y.expect("subscribe", presence(&x_bare, Some("subscribe")))
        .await;
    y.send(&format!("<presence to='{x_bare}' type='subscribed'/>"))
        .await;
    x.expect("subscribed", presence(&y_bare, Some("subscribed")))
        .await;
    // 3.1.5: after approval, the contact's available presence reaches the user.
    x.expect(
        "the contact's presence after approval",
        presence(&y_full, None),
    )
    .await;
}
