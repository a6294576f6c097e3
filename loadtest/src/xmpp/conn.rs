//! One client connection: TCP (from a chosen source address), optional TLS, stream
//! negotiation up to a bound resource, in-band registration, and the idle loop.
//!
//! Each step consumes and returns the connection, as a client library would chain
//! connect → starttls → auth → bind. All waits during negotiation share one deadline,
//! and every error names the stage it happened in, so a report can group failures.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, timeout_at};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::sasl::{self, Mechanism};
use super::scan::{self, Event, Scanner};

const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
const NS_REGISTER: &str = "jabber:iq:register";
const NS_PING: &str = "urn:xmpp:ping";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_COMPRESS_FEATURE: &str = "http://jabber.org/features/compress";
const NS_COMPRESS: &str = "http://jabber.org/protocol/compress";

/// Size of the read buffer: large enough for stream features in one read.
const READ_BUF: usize = 4096;

/// How TLS is used (`--tls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plaintext stream; STARTTLS is not attempted even if offered.
    None,
    /// RFC 6120 STARTTLS on the c2s port.
    Starttls,
    /// XEP-0368 direct TLS: TLS from the first byte.
    Direct,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::None => "none",
            TlsMode::Starttls => "starttls",
            TlsMode::Direct => "direct",
        })
    }
}

/// Everything a connection needs to know about the server and the accounts.
#[derive(Debug, Clone)]
pub struct Target {
    pub server: SocketAddr,
    /// XMPP domain: the stream's `to`, the TLS SNI and the JIDs' domain part.
    pub domain: String,
    pub tls: TlsMode,
    /// `Some` whenever `tls` is not `None`: the shared client config and the SNI.
    pub tls_config: Option<(Arc<rustls::ClientConfig>, ServerName<'static>)>,
    pub mechanism: Mechanism,
    pub password: String,
    /// Resource to bind (the connection index is appended).
    pub resource: String,
    /// Send initial presence after binding.
    pub presence: bool,
    /// Time allowed for connect + negotiation of one connection.
    pub timeout: std::time::Duration,
    /// `SO_RCVBUF` for the socket (small values make a slow reader felt sooner).
    pub recv_buffer: Option<u32>,
    /// Negotiate XEP-0138 zlib compression after authentication.
    pub zlib: bool,
}

/// Where in the sequence a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Connect,
    Tls,
    Stream,
    Register,
    Auth,
    Bind,
    Session,
    /// XEP-0138 compression negotiation.
    Compress,
    /// Pubsub setup: node creation, configuration, subscription.
    Pubsub,
    Hold,
    /// `hostile`'s attackers, after the stream is open.
    Attack,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Stream => "stream",
            Stage::Register => "register",
            Stage::Auth => "auth",
            Stage::Bind => "bind",
            Stage::Session => "session",
            Stage::Compress => "compress",
            Stage::Pubsub => "pubsub",
            Stage::Hold => "hold",
            Stage::Attack => "attack",
        })
    }
}

/// What went wrong.
#[derive(Debug)]
pub enum ErrorKind {
    Io(io::Error),
    Tls(io::Error),
    Timeout,
    /// The server closed the TCP connection or the stream.
    Closed,
    /// `<stream:error>` with this condition.
    StreamError(String),
    /// SASL `<failure>` or an iq error, with its condition.
    Refused(String),
    /// The server said something this client does not accept.
    Protocol(String),
}

/// A failed connection: the stage and the reason.
#[derive(Debug)]
pub struct ConnError {
    pub stage: Stage,
    pub kind: ErrorKind,
}

impl ConnError {
    pub fn new(stage: Stage, kind: ErrorKind) -> Self {
        Self { stage, kind }
    }

    fn protocol(stage: Stage, what: impl Into<String>) -> Self {
        Self::new(stage, ErrorKind::Protocol(what.into()))
    }

    /// A short, low-cardinality reason for grouping failures in a report.
    pub fn reason(&self) -> String {
        let kind = match &self.kind {
            ErrorKind::Io(e) => io_reason(e),
            ErrorKind::Tls(e) => format!("TLS error: {e}"),
            ErrorKind::Timeout => "timeout".to_owned(),
            ErrorKind::Closed => "closed by server".to_owned(),
            ErrorKind::StreamError(c) => format!("stream error <{c}/>"),
            ErrorKind::Refused(c) => format!("<{c}/>"),
            ErrorKind::Protocol(w) => format!("protocol: {w}"),
        };
        format!("{}: {kind}", self.stage)
    }
}

fn io_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        // EMFILE: a limit of the generator, not of the server; say which.
        Some(libc::EMFILE) => "too many open files (generator RLIMIT_NOFILE)".to_owned(),
        Some(libc::EADDRNOTAVAIL) => "address not available (source ports exhausted?)".to_owned(),
        _ => e.kind().to_string(),
    }
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason())
    }
}

impl std::error::Error for ConnError {}

/// A byte stream the connection can run over: TCP, or TLS over TCP.
trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An incoming top-level item, copied out of the scanner.
enum Incoming {
    Open,
    Element(Vec<u8>),
    Close,
}

/// A connected client stream.
pub struct Conn {
    io: Box<dyn Io>,
    scanner: Scanner,
    rbuf: Box<[u8]>,
    target: Arc<Target>,
    deadline: Instant,
    /// Stream features of the current stream.
    features: Vec<u8>,
    /// The full JID bound by `login` (empty before).
    jid: String,
    /// Counter for iq ids of `iq`.
    next_id: u64,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn").finish_non_exhaustive()
    }
}

/// The account of connection `index`: `{prefix}{index}`.
pub fn username(prefix: &str, index: u64) -> String {
    format!("{prefix}{index}")
}

/// Outcome of an in-band registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    Created,
    /// `<conflict/>`: the account exists already, which is fine for a load run.
    Existed,
}

impl Conn {
    /// TCP connect (from `source` if given), direct TLS if configured, open the
    /// stream, and STARTTLS if configured. Returns with the features of the (TLS)
    /// stream read.
    pub async fn open(target: Arc<Target>, source: Option<IpAddr>) -> Result<Self, ConnError> {
        let deadline = Instant::now() + target.timeout;
        let tcp = timeout_at(
            deadline,
            tcp_connect(target.server, source, target.recv_buffer),
        )
        .await
        .map_err(|_| ConnError::new(Stage::Connect, ErrorKind::Timeout))?
        .map_err(|e| ConnError::new(Stage::Connect, ErrorKind::Io(e)))?;
        let io: Box<dyn Io> = if target.tls == TlsMode::Direct {
            tls_handshake(&target, Box::new(tcp), deadline).await?
        } else {
            Box::new(tcp)
        };
        let mut conn = Conn {
            io,
            scanner: Scanner::default(),
            rbuf: vec![0; READ_BUF].into_boxed_slice(),
            target,
            deadline,
            features: Vec::new(),
            jid: String::new(),
            next_id: 0,
        };
        conn.start_stream().await?;
        if conn.target.tls == TlsMode::Starttls {
            conn = conn.starttls().await?;
        }
        Ok(conn)
    }

    /// Open (or restart) the stream and read its features.
    async fn start_stream(&mut self) -> Result<(), ConnError> {
        self.scanner.reset();
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
             xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0' \
             xml:lang='en'>",
            scan::escape(&self.target.domain)
        );
        self.send(Stage::Stream, header.as_bytes()).await?;
        match self.read(Stage::Stream).await? {
            Incoming::Open => {}
            _ => return Err(ConnError::protocol(Stage::Stream, "no stream header")),
        }
        let features = self.read_element(Stage::Stream).await?;
        if scan::root_name(&features) != b"features" {
            return Err(ConnError::protocol(Stage::Stream, "no stream features"));
        }
        self.features = features;
        Ok(())
    }

    async fn starttls(mut self) -> Result<Self, ConnError> {
        if !scan::has_child(&self.features, "starttls", Some(NS_TLS)) {
            return Err(ConnError::protocol(Stage::Tls, "STARTTLS not offered"));
        }
        self.send(
            Stage::Tls,
            format!("<starttls xmlns='{NS_TLS}'/>").as_bytes(),
        )
        .await?;
        let reply = self.read_element(Stage::Tls).await?;
        match scan::root_name(&reply) {
            b"proceed" => {}
            b"failure" => {
                return Err(ConnError::new(
                    Stage::Tls,
                    ErrorKind::Refused("failure".into()),
                ));
            }
            _ => return Err(ConnError::protocol(Stage::Tls, "expected <proceed/>")),
        }
        if self.scanner.buffered() > 0 {
            // Bytes after <proceed/> in the clear would be a STARTTLS injection.
            return Err(ConnError::protocol(Stage::Tls, "data after <proceed/>"));
        }
        self.io = tls_handshake(&self.target, self.io, self.deadline).await?;
        self.start_stream().await?;
        Ok(self)
    }

    /// XEP-0077 in-band registration of `user`, then close the stream.
    pub async fn register(mut self, user: &str) -> Result<Registered, ConnError> {
        let iq = format!(
            "<iq type='set' id='reg1'><query xmlns='{NS_REGISTER}'><username>{}</username>\
             <password>{}</password></query></iq>",
            scan::escape(user),
            scan::escape(&self.target.password)
        );
        self.send(Stage::Register, iq.as_bytes()).await?;
        let reply = self.read_iq_result(Stage::Register, "reg1").await;
        let outcome = match reply {
            Ok(_) => Ok(Registered::Created),
            Err(ConnError {
                kind: ErrorKind::Refused(cond),
                ..
            }) if cond == "conflict" => Ok(Registered::Existed),
            Err(e) => Err(e),
        };
        self.close().await;
        outcome
    }

    /// SASL, stream restart, resource bind, legacy session if required, presence.
    pub async fn login(mut self, user: &str, index: u64) -> Result<Self, ConnError> {
        self.authenticate(user).await?;
        self.start_stream().await?;
        if self.target.zlib {
            self.compress().await?;
        }
        self.jid = self.bind(index).await?;
        if let Some(session) = scan::child_tag(&self.features, "session")
            && scan::attr(session, "xmlns").as_deref() == Some(NS_SESSION)
            && !session_is_optional(&self.features)
        {
            let iq = format!("<iq type='set' id='sess1'><session xmlns='{NS_SESSION}'/></iq>");
            self.send(Stage::Session, iq.as_bytes()).await?;
            self.read_iq_result(Stage::Session, "sess1").await?;
        }
        if self.target.presence {
            self.send(Stage::Session, b"<presence/>").await?;
        }
        // Idle from here on: give back what negotiation used.
        self.features = Vec::new();
        self.scanner.shrink();
        Ok(self)
    }

    async fn authenticate(&mut self, user: &str) -> Result<(), ConnError> {
        let (mech, password) = (self.target.mechanism, self.target.password.clone());
        self.authenticate_with(mech, user, &password).await
    }

    /// One SASL exchange with any credentials, with a fresh deadline: `Ok` on
    /// `<success/>`, `Refused(condition)` on `<failure/>`, after which the stream may
    /// try again (RFC 6120 6.4.5) if the server has not closed it. For `hostile`'s
    /// login guessing.
    pub async fn sasl_attempt(
        &mut self,
        mech: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<(), ConnError> {
        self.deadline = Instant::now() + self.target.timeout;
        self.authenticate_with(mech, user, password).await
    }

    /// Features of the current stream (before `login` ends negotiation).
    pub fn features(&self) -> &[u8] {
        &self.features
    }

    /// Send bytes as they are, with a fresh deadline (`hostile`'s raw payloads).
    pub async fn send_raw(&mut self, stage: Stage, data: &[u8]) -> Result<(), ConnError> {
        self.deadline = Instant::now() + self.target.timeout;
        self.send(stage, data).await
    }

    /// The next top-level element, with a fresh deadline; a stream error, the
    /// stream's end or the socket's end is an `Err`.
    pub async fn next_element(&mut self, stage: Stage) -> Result<Vec<u8>, ConnError> {
        self.deadline = Instant::now() + self.target.timeout;
        self.read_element(stage).await
    }

    async fn authenticate_with(
        &mut self,
        mech: Mechanism,
        user: &str,
        password: &str,
    ) -> Result<(), ConnError> {
        let offered = scan::child_texts(&self.features, "mechanism");
        if !offered.iter().any(|m| m == mech.name()) {
            return Err(ConnError::protocol(
                Stage::Auth,
                format!(
                    "{} not offered (offered: {})",
                    mech.name(),
                    offered.join(" ")
                ),
            ));
        }
        let mut client = sasl::Client::new(mech, user, password);
        let auth = format!(
            "<auth xmlns='{NS_SASL}' mechanism='{}'>{}</auth>",
            mech.name(),
            B64.encode(client.initial())
        );
        self.send(Stage::Auth, auth.as_bytes()).await?;
        loop {
            let elem = self.read_element(Stage::Auth).await?;
            let data = || {
                let text = scan::root_text(&elem);
                if text == "=" {
                    return Ok(Vec::new());
                }
                B64.decode(text)
                    .map_err(|_| ConnError::protocol(Stage::Auth, "SASL data is not base64"))
            };
            let sasl_err = |e: sasl::SaslError| ConnError::protocol(Stage::Auth, e.to_string());
            match scan::root_name(&elem) {
                b"challenge" => {
                    let response = client.respond(&data()?).map_err(sasl_err)?;
                    let msg = format!(
                        "<response xmlns='{NS_SASL}'>{}</response>",
                        B64.encode(response)
                    );
                    self.send(Stage::Auth, msg.as_bytes()).await?;
                }
                b"success" => {
                    client.finish(&data()?).map_err(sasl_err)?;
                    return Ok(());
                }
                b"failure" => {
                    let cond = scan::first_child_name(&elem).unwrap_or_else(|| "failure".into());
                    return Err(ConnError::new(Stage::Auth, ErrorKind::Refused(cond)));
                }
                _ => return Err(ConnError::protocol(Stage::Auth, "unexpected element")),
            }
        }
    }

    /// XEP-0138: zlib from here on in both directions, then a stream restart (section
    /// 3: after authentication, before resource binding).
    async fn compress(&mut self) -> Result<(), ConnError> {
        // <method/> appears in stream features only inside <compression/>.
        let offered = scan::has_child(&self.features, "compression", Some(NS_COMPRESS_FEATURE))
            && scan::child_texts(&self.features, "method")
                .iter()
                .any(|m| m == "zlib");
        if !offered {
            return Err(ConnError::protocol(
                Stage::Compress,
                "zlib compression not offered",
            ));
        }
        let req = format!("<compress xmlns='{NS_COMPRESS}'><method>zlib</method></compress>");
        self.send(Stage::Compress, req.as_bytes()).await?;
        let reply = self.read_element(Stage::Compress).await?;
        match scan::root_name(&reply) {
            b"compressed" => {}
            b"failure" => {
                let cond = scan::first_child_name(&reply).unwrap_or_else(|| "failure".into());
                return Err(ConnError::new(Stage::Compress, ErrorKind::Refused(cond)));
            }
            _ => {
                return Err(ConnError::protocol(
                    Stage::Compress,
                    "expected <compressed/>",
                ));
            }
        }
        if self.scanner.buffered() > 0 {
            // The server speaks zlib right after <compressed/>; plain bytes here would
            // be read as compressed ones.
            return Err(ConnError::protocol(
                Stage::Compress,
                "data after <compressed/>",
            ));
        }
        let (placeholder, _) = tokio::io::duplex(1);
        let io = std::mem::replace(&mut self.io, Box::new(placeholder));
        self.io = Box::new(super::zlib::Zlib::new(io));
        self.start_stream().await
    }

    async fn bind(&mut self, index: u64) -> Result<String, ConnError> {
        if !scan::has_child(&self.features, "bind", Some(NS_BIND)) {
            return Err(ConnError::protocol(Stage::Bind, "bind not offered"));
        }
        let iq = format!(
            "<iq type='set' id='bind1'><bind xmlns='{NS_BIND}'><resource>{}{index}</resource>\
             </bind></iq>",
            scan::escape(&self.target.resource)
        );
        self.send(Stage::Bind, iq.as_bytes()).await?;
        let result = self.read_iq_result(Stage::Bind, "bind1").await?;
        scan::child_texts(&result, "jid")
            .into_iter()
            .next()
            .ok_or_else(|| ConnError::protocol(Stage::Bind, "no <jid> in bind result"))
    }

    /// Stay connected until `cancel`, answering pings; then close the stream.
    /// Returns `Err` if the server ended the connection first.
    pub async fn hold(
        mut self,
        cancel: CancellationToken,
        pings: &AtomicU64,
    ) -> Result<(), ConnError> {
        let err = |kind| ConnError::new(Stage::Hold, kind);
        loop {
            let n = tokio::select! {
                () = cancel.cancelled() => {
                    self.close().await;
                    return Ok(());
                }
                r = self.io.read(&mut self.rbuf) => r.map_err(|e| err(ErrorKind::Io(e)))?,
            };
            if n == 0 {
                return Err(err(ErrorKind::Closed));
            }
            self.scanner.feed(&self.rbuf[..n]);
            let mut replies = Vec::new();
            drain_elements(&mut self.scanner, |elem| {
                if let Some(reply) = answer_iq(elem) {
                    if scan::has_child(elem, "ping", Some(NS_PING)) {
                        pings.fetch_add(1, Ordering::Relaxed);
                    }
                    replies.extend_from_slice(reply.as_bytes());
                }
            })?;
            if !replies.is_empty() {
                self.io
                    .write_all(&replies)
                    .await
                    .map_err(|e| err(ErrorKind::Io(e)))?;
                self.io.flush().await.map_err(|e| err(ErrorKind::Io(e)))?;
            }
        }
    }

    /// The full JID bound by `login`.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// Send `<iq type='{kind}' to='{to}' id=...>{payload}</iq>` and wait for its result
    /// (skipping and answering other stanzas), with a fresh deadline of the target's
    /// timeout. Returns the result element.
    pub async fn iq(
        &mut self,
        stage: Stage,
        kind: &str,
        to: &str,
        payload: &str,
    ) -> Result<Vec<u8>, ConnError> {
        self.next_id += 1;
        let id = format!("q{}", self.next_id);
        self.deadline = Instant::now() + self.target.timeout;
        let iq = format!(
            "<iq type='{kind}' to='{}' id='{id}'>{payload}</iq>",
            scan::escape(to)
        );
        self.send(stage, iq.as_bytes()).await?;
        self.read_iq_result(stage, &id).await
    }

    /// One read from the socket (at most `max` bytes, and at most the read buffer),
    /// then `on_element` for every complete top-level element in it. Server iq
    /// requests (pings) are answered and not passed on. A stream error, the stream's
    /// end or the socket's end is an `Err` in stage `Hold`. Returns the bytes read.
    pub async fn receive(
        &mut self,
        max: usize,
        mut on_element: impl FnMut(&[u8]),
    ) -> Result<usize, ConnError> {
        let err = |kind| ConnError::new(Stage::Hold, kind);
        let max = max.clamp(1, self.rbuf.len());
        let n = self
            .io
            .read(&mut self.rbuf[..max])
            .await
            .map_err(|e| err(ErrorKind::Io(e)))?;
        if n == 0 {
            return Err(err(ErrorKind::Closed));
        }
        self.scanner.feed(&self.rbuf[..n]);
        let mut replies = Vec::new();
        drain_elements(&mut self.scanner, |elem| {
            if let Some(reply) = answer_iq(elem) {
                replies.extend_from_slice(reply.as_bytes());
            } else {
                on_element(elem);
            }
        })?;
        if !replies.is_empty() {
            self.io
                .write_all(&replies)
                .await
                .map_err(|e| err(ErrorKind::Io(e)))?;
            self.io.flush().await.map_err(|e| err(ErrorKind::Io(e)))?;
        }
        Ok(n)
    }

    /// Use a larger read buffer from now on (bulk receivers: fewer syscalls).
    pub fn set_read_buffer(&mut self, size: usize) {
        self.rbuf = vec![0; size.max(READ_BUF)].into_boxed_slice();
    }

    /// Split into a reader (which keeps the scanner) and a writer, for a connection
    /// that sends and receives at the same time (a publisher with requests in flight).
    pub fn split(self) -> (ConnReader, ConnWriter) {
        let (r, w) = tokio::io::split(self.io);
        (
            ConnReader {
                io: r,
                scanner: self.scanner,
                rbuf: self.rbuf,
            },
            ConnWriter { io: w },
        )
    }

    /// Close the stream politely; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            self.io.write_all(b"</stream:stream>").await?;
            self.io.flush().await?;
            self.io.shutdown().await
        })
        .await;
    }

    async fn send(&mut self, stage: Stage, data: &[u8]) -> Result<(), ConnError> {
        let io = &mut self.io;
        timeout_at(self.deadline, async {
            io.write_all(data).await?;
            io.flush().await
        })
        .await
        .map_err(|_| ConnError::new(stage, ErrorKind::Timeout))?
        .map_err(|e| ConnError::new(stage, ErrorKind::Io(e)))
    }

    async fn read(&mut self, stage: Stage) -> Result<Incoming, ConnError> {
        loop {
            match self.scanner.next_event() {
                Ok(Some(Event::StreamOpen(_))) => return Ok(Incoming::Open),
                Ok(Some(Event::Element(e))) => return Ok(Incoming::Element(e.to_vec())),
                Ok(Some(Event::StreamClose)) => return Ok(Incoming::Close),
                Ok(None) => {}
                Err(e) => return Err(ConnError::protocol(stage, e.to_string())),
            }
            let n = timeout_at(self.deadline, self.io.read(&mut self.rbuf))
                .await
                .map_err(|_| ConnError::new(stage, ErrorKind::Timeout))?
                .map_err(|e| ConnError::new(stage, ErrorKind::Io(e)))?;
            if n == 0 {
                return Err(ConnError::new(stage, ErrorKind::Closed));
            }
            self.scanner.feed(&self.rbuf[..n]);
        }
    }

    /// The next top-level element; a stream error or close is an error.
    async fn read_element(&mut self, stage: Stage) -> Result<Vec<u8>, ConnError> {
        match self.read(stage).await? {
            Incoming::Element(e) if scan::root_name(&e) == b"error" => {
                Err(ConnError::new(stage, stream_error(&e)))
            }
            Incoming::Element(e) => Ok(e),
            Incoming::Close => Err(ConnError::new(stage, ErrorKind::Closed)),
            Incoming::Open => Err(ConnError::protocol(stage, "unexpected stream header")),
        }
    }

    /// Wait for the iq answering `id`, answering pings and skipping anything else.
    async fn read_iq_result(&mut self, stage: Stage, id: &str) -> Result<Vec<u8>, ConnError> {
        loop {
            let elem = self.read_element(stage).await?;
            if scan::root_name(&elem) != b"iq" || scan::attr(&elem, "id").as_deref() != Some(id) {
                if let Some(reply) = answer_iq(&elem) {
                    self.send(stage, reply.as_bytes()).await?;
                }
                continue;
            }
            return match scan::attr(&elem, "type").as_deref() {
                Some("result") => Ok(elem),
                Some("error") => {
                    let cond = error_condition(&elem).unwrap_or_else(|| "error".into());
                    Err(ConnError::new(stage, ErrorKind::Refused(cond)))
                }
                _ => Err(ConnError::protocol(stage, "bad iq type in reply")),
            };
        }
    }
}

/// The receiving half of a split connection.
pub struct ConnReader {
    io: tokio::io::ReadHalf<Box<dyn Io>>,
    scanner: Scanner,
    rbuf: Box<[u8]>,
}

impl fmt::Debug for ConnReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnReader").finish_non_exhaustive()
    }
}

impl ConnReader {
    /// One read, then `on_element` for every complete top-level element (pings are
    /// passed on too: the caller has the writer). Stream errors and ends are `Err`.
    pub async fn receive(&mut self, on_element: impl FnMut(&[u8])) -> Result<(), ConnError> {
        let err = |kind| ConnError::new(Stage::Hold, kind);
        let n = self
            .io
            .read(&mut self.rbuf)
            .await
            .map_err(|e| err(ErrorKind::Io(e)))?;
        if n == 0 {
            return Err(err(ErrorKind::Closed));
        }
        self.scanner.feed(&self.rbuf[..n]);
        drain_elements(&mut self.scanner, on_element)
    }
}

/// Every complete top-level element buffered in `scanner`, to `on_element`, during the
/// hold stage of a connection. A stream error, the stream's end or a second header is
/// the `Err` that ends the connection.
fn drain_elements(
    scanner: &mut Scanner,
    mut on_element: impl FnMut(&[u8]),
) -> Result<(), ConnError> {
    let err = |kind| ConnError::new(Stage::Hold, kind);
    loop {
        match scanner.next_event() {
            Ok(Some(Event::Element(elem))) => {
                if scan::root_name(elem) == b"error" {
                    return Err(err(stream_error(elem)));
                }
                on_element(elem);
            }
            Ok(Some(Event::StreamClose)) => return Err(err(ErrorKind::Closed)),
            Ok(Some(Event::StreamOpen(_))) => {
                return Err(ConnError::protocol(Stage::Hold, "second stream header"));
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(ConnError::protocol(Stage::Hold, e.to_string())),
        }
    }
}

/// The sending half of a split connection.
pub struct ConnWriter {
    io: tokio::io::WriteHalf<Box<dyn Io>>,
}

impl fmt::Debug for ConnWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnWriter").finish_non_exhaustive()
    }
}

impl ConnWriter {
    pub async fn send(&mut self, data: &[u8]) -> Result<(), ConnError> {
        let err = |e| ConnError::new(Stage::Hold, ErrorKind::Io(e));
        self.io.write_all(data).await.map_err(err)?;
        self.io.flush().await.map_err(err)
    }

    /// End the stream; errors do not matter any more.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
            self.io.write_all(b"</stream:stream>").await?;
            self.io.flush().await?;
            self.io.shutdown().await
        })
        .await;
    }
}

/// The defined condition inside an iq's `<error>`: the child in the stanzas namespace.
pub fn error_condition(iq: &[u8]) -> Option<String> {
    let start = iq.windows(6).position(|w| w == b"<error")?;
    let error = &iq[start..];
    let mut pos = 0;
    while let Some(lt) = error[pos + 1..].iter().position(|&b| b == b'<') {
        pos += 1 + lt;
        let tag = &error[pos..];
        if scan::attr(tag, "xmlns").as_deref() == Some(NS_STANZAS) {
            let name = scan::local_name(scan::tag_name(tag));
            if name != b"text" {
                return Some(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    None
}

fn stream_error(elem: &[u8]) -> ErrorKind {
    ErrorKind::StreamError(scan::first_child_name(elem).unwrap_or_else(|| "unknown".into()))
}

fn session_is_optional(features: &[u8]) -> bool {
    // <session xmlns='...xmpp-session'><optional/></session> (RFC 3921bis / XEP-0206 note).
    scan::has_child(features, "optional", None)
}

/// The reply to a server's iq get/set: a result for XEP-0199 pings, an error for
/// anything else (RFC 6120 §8.2.3 requires a reply). `None` for other stanzas.
pub fn answer_iq(elem: &[u8]) -> Option<String> {
    if scan::root_name(elem) != b"iq" {
        return None;
    }
    let kind = scan::attr(elem, "type")?;
    if kind != "get" && kind != "set" {
        return None;
    }
    let id = scan::escape(&scan::attr(elem, "id").unwrap_or_default());
    let to = scan::attr(elem, "from")
        .map(|f| format!(" to='{}'", scan::escape(&f)))
        .unwrap_or_default();
    if kind == "get" && scan::has_child(elem, "ping", Some(NS_PING)) {
        Some(format!("<iq type='result' id='{id}'{to}/>"))
    } else {
        Some(format!(
            "<iq type='error' id='{id}'{to}><error type='cancel'>\
             <service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
        ))
    }
}

pub async fn tcp_connect(
    server: SocketAddr,
    source: Option<IpAddr>,
    recv_buffer: Option<u32>,
) -> io::Result<TcpStream> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

async fn tls_handshake(
    target: &Target,
    io: Box<dyn Io>,
    deadline: Instant,
) -> Result<Box<dyn Io>, ConnError> {
    let (config, name) = target
        .tls_config
        .as_ref()
        .expect("TLS mode without a TLS config");
    let connector = TlsConnector::from(config.clone());
    let tls = timeout_at(deadline, connector.connect(name.clone(), io))
        .await
        .map_err(|_| ConnError::new(Stage::Tls, ErrorKind::Timeout))?
        .map_err(|e| ConnError::new(Stage::Tls, ErrorKind::Tls(e)))?;
    Ok(Box::new(tls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pings_get_results_other_requests_get_errors() {
        let ping = b"<iq from='example.com' to='u@example.com/r' id='p1' type='get'><ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(
            answer_iq(ping).unwrap(),
            "<iq type='result' id='p1' to='example.com'/>"
        );
        let version = b"<iq id='v' type='get'><query xmlns='jabber:iq:version'/></iq>";
        assert!(answer_iq(version).unwrap().contains("service-unavailable"));
        assert_eq!(answer_iq(b"<iq id='r' type='result'/>"), None);
        assert_eq!(answer_iq(b"<message><body>hi</body></message>"), None);
    }

    #[test]
    fn iq_error_condition() {
        let e = b"<iq type='error' id='reg1'><query xmlns='jabber:iq:register'/><error type='cancel'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/><text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>exists</text></error></iq>";
        assert_eq!(error_condition(e).as_deref(), Some("conflict"));
    }

    #[test]
    fn session_optional_detection() {
        let f = b"<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>";
        assert!(session_is_optional(f));
        let f = b"<stream:features><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>";
        assert!(!session_is_optional(f));
    }

    /// A scripted server on 127.0.0.1:0: the whole client sequence over a real socket.
    mod wire {
        use super::super::*;
        use tokio::net::TcpListener;

        /// Read the next event from the client, as (kind, bytes), over any byte stream
        /// (the zlib layer included).
        async fn next<S: AsyncRead + Unpin>(
            sock: &mut S,
            sc: &mut Scanner,
        ) -> (&'static str, Vec<u8>) {
            let mut buf = [0u8; 512];
            loop {
                match sc.next_event().unwrap() {
                    Some(Event::StreamOpen(b)) => return ("open", b.to_vec()),
                    Some(Event::Element(b)) => return ("elem", b.to_vec()),
                    Some(Event::StreamClose) => return ("close", Vec::new()),
                    None => {}
                }
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed early");
                sc.feed(&buf[..n]);
            }
        }

        const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='load.test' version='1.0'>";

        async fn server(listener: TcpListener) -> u64 {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut sc = Scanner::default();
            assert_eq!(next(&mut sock, &mut sc).await.0, "open");
            let features = format!(
                "{HEADER}<stream:features><mechanisms xmlns='{NS_SASL}'>\
                 <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>\
                 </stream:features>"
            );
            sock.write_all(features.as_bytes()).await.unwrap();
            let (_, auth) = next(&mut sock, &mut sc).await;
            assert_eq!(scan::attr(&auth, "mechanism").as_deref(), Some("PLAIN"));
            assert_eq!(B64.decode(scan::root_text(&auth)).unwrap(), b"\0load7\0pw");
            sock.write_all(format!("<success xmlns='{NS_SASL}'/>").as_bytes())
                .await
                .unwrap();

            sc.reset();
            assert_eq!(next(&mut sock, &mut sc).await.0, "open");
            let features = format!(
                "{HEADER}<stream:features><bind xmlns='{NS_BIND}'/>\
                 <session xmlns='{NS_SESSION}'/></stream:features>"
            );
            // Split the features in an awkward place, with a pause.
            let (a, b) = features.split_at(features.len() - 20);
            sock.write_all(a.as_bytes()).await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            sock.write_all(b.as_bytes()).await.unwrap();

            let (_, bind) = next(&mut sock, &mut sc).await;
            assert_eq!(scan::child_texts(&bind, "resource"), ["hl7"]);
            let id = scan::attr(&bind, "id").unwrap();
            let reply = format!(
                "<iq type='result' id='{id}'><bind xmlns='{NS_BIND}'><jid>load7@load.test/hl7</jid></bind></iq>"
            );
            sock.write_all(reply.as_bytes()).await.unwrap();
            let (_, sess) = next(&mut sock, &mut sc).await;
            assert!(scan::has_child(&sess, "session", Some(NS_SESSION)));
            let id = scan::attr(&sess, "id").unwrap();
            sock.write_all(format!("<iq type='result' id='{id}'/>").as_bytes())
                .await
                .unwrap();
            let (_, presence) = next(&mut sock, &mut sc).await;
            assert_eq!(scan::root_name(&presence), b"presence");

            // Idle: whitespace keepalives and two pings, one split across writes.
            sock.write_all(b" \n ").await.unwrap();
            for (i, split) in [(1, 7), (2, 30)] {
                let ping = format!(
                    "<iq type='get' id='ping{i}' from='load.test'><ping xmlns='{NS_PING}'/></iq>"
                );
                sock.write_all(&ping.as_bytes()[..split]).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                sock.write_all(&ping.as_bytes()[split..]).await.unwrap();
                let (_, pong) = next(&mut sock, &mut sc).await;
                assert_eq!(scan::attr(&pong, "type").as_deref(), Some("result"));
                assert_eq!(scan::attr(&pong, "id").unwrap(), format!("ping{i}"));
                assert_eq!(scan::attr(&pong, "to").as_deref(), Some("load.test"));
            }
            sock.write_all(b"</stream:stream>").await.unwrap();
            2
        }

        fn target(addr: SocketAddr) -> Arc<Target> {
            Arc::new(Target {
                server: addr,
                domain: "load.test".into(),
                tls: TlsMode::None,
                tls_config: None,
                mechanism: Mechanism::Plain,
                password: "pw".into(),
                resource: "hl".into(),
                presence: true,
                timeout: std::time::Duration::from_secs(5),
                recv_buffer: None,
                zlib: false,
            })
        }

        #[tokio::test]
        async fn zlib_is_negotiated_after_auth_and_the_stream_restarts_compressed() {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut sc = Scanner::default();
                assert_eq!(next(&mut sock, &mut sc).await.0, "open");
                let f = format!(
                    "{HEADER}<stream:features><mechanisms xmlns='{NS_SASL}'>\
                     <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
                );
                sock.write_all(f.as_bytes()).await.unwrap();
                next(&mut sock, &mut sc).await;
                let ok = format!("<success xmlns='{NS_SASL}'/>");
                sock.write_all(ok.as_bytes()).await.unwrap();
                sc.reset();
                assert_eq!(next(&mut sock, &mut sc).await.0, "open");
                let f = format!(
                    "{HEADER}<stream:features><compression xmlns='{NS_COMPRESS_FEATURE}'>\
                     <method>zlib</method></compression><bind xmlns='{NS_BIND}'/></stream:features>"
                );
                sock.write_all(f.as_bytes()).await.unwrap();
                let (_, req) = next(&mut sock, &mut sc).await;
                assert_eq!(scan::root_name(&req), b"compress");
                assert_eq!(scan::child_texts(&req, "method"), ["zlib"]);
                let done = format!("<compressed xmlns='{NS_COMPRESS}'/>");
                sock.write_all(done.as_bytes()).await.unwrap();
                // From here on both directions are zlib: the same layer serves the
                // scripted server.
                let mut z = super::super::super::zlib::Zlib::new(sock);
                sc.reset();
                assert_eq!(next(&mut z, &mut sc).await.0, "open");
                let f =
                    format!("{HEADER}<stream:features><bind xmlns='{NS_BIND}'/></stream:features>");
                z.write_all(f.as_bytes()).await.unwrap();
                z.flush().await.unwrap();
                let (_, bind) = next(&mut z, &mut sc).await;
                let id = scan::attr(&bind, "id").unwrap();
                let reply = format!(
                    "<iq type='result' id='{id}'><bind xmlns='{NS_BIND}'><jid>load3@load.test/hl3</jid></bind></iq>"
                );
                z.write_all(reply.as_bytes()).await.unwrap();
                z.flush().await.unwrap();
                assert_eq!(next(&mut z, &mut sc).await.0, "close");
            });
            let mut t = (*target(addr)).clone();
            t.zlib = true;
            t.presence = false;
            let conn = Conn::open(Arc::new(t), None).await.unwrap();
            let conn = conn.login("load3", 3).await.unwrap();
            assert_eq!(conn.jid(), "load3@load.test/hl3");
            conn.close().await;
            server.await.unwrap();
        }

        #[tokio::test]
        async fn login_and_hold_against_a_scripted_server() {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(server(listener));
            let conn = Conn::open(target(addr), Some("127.0.0.1".parse().unwrap()))
                .await
                .unwrap()
                .login("load7", 7)
                .await
                .unwrap();
            let pings = AtomicU64::new(0);
            let end = conn
                .hold(CancellationToken::new(), &pings)
                .await
                .unwrap_err();
            assert_eq!(end.reason(), "hold: closed by server");
            assert_eq!(pings.load(Ordering::Relaxed), server.await.unwrap());
        }

        #[tokio::test]
        async fn sasl_failure_is_reported_with_its_condition() {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                let (mut sock, _) = listener.accept().await.unwrap();
                let mut sc = Scanner::default();
                next(&mut sock, &mut sc).await;
                let f = format!(
                    "{HEADER}<stream:features><mechanisms xmlns='{NS_SASL}'>\
                     <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
                );
                sock.write_all(f.as_bytes()).await.unwrap();
                next(&mut sock, &mut sc).await;
                let fail = format!("<failure xmlns='{NS_SASL}'><not-authorized/></failure>");
                sock.write_all(fail.as_bytes()).await.unwrap();
            });
            let err = Conn::open(target(addr), None)
                .await
                .unwrap()
                .login("load7", 7)
                .await
                .unwrap_err();
            assert_eq!(err.reason(), "auth: <not-authorized/>");
        }
    }
}
