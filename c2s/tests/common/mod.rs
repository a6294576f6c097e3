//! Shared harness for the c2s session tests (DESIGN.md "Testing", tier 2): a recording
//! test [`Backend`], and a tiny client that drives a real c2s stream over
//! `tokio::io::duplex` and parses the server's output with `hydrant_proto::StreamReader`.
//!
//! Every wait is on an event (bytes from the pipe, a backend record, the stream task
//! ending) bounded by a timeout; the tests run on paused tokio time, where such a timeout
//! only fires once every task is idle, so it is deterministic.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hydrant_c2s::{Backend, C2sConfig, RegisterError, SessionInfo, Shared};
use hydrant_proto::scram::StoredCredentials;
use hydrant_proto::{
    Element, Limits, Stanza, StreamError, StreamErrorCondition, StreamEvent, StreamHeader,
    StreamReader, ns,
};
use hydrant_stream::outbox::Outbox;
use sasl::client::Mechanism;
use sasl::common::{ChannelBinding, Credentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout, timeout_at};
use tokio_util::sync::CancellationToken;

pub const DOMAIN: &str = "example.com";
/// How long a test waits for an expected event before failing. Shorter than the server's
/// default timers (auth 30 s, ping 300 s) so a missing answer is reported as such.
pub const WAIT: Duration = Duration::from_secs(20);
/// Capacity of each direction of the in-memory pipe.
pub const PIPE: usize = 64 * 1024;
/// SCRAM iteration count for test accounts (the RFC 7677 minimum, cheap enough in debug).
pub const ITERATIONS: u32 = 4096;

pub fn peer() -> SocketAddr {
    "192.0.2.7:40000".parse().unwrap()
}

/// A config for a stream that counts as TLS-protected (`secure = true`): no TLS offered.
pub fn config() -> C2sConfig {
    C2sConfig::new(DOMAIN)
}

// ---------------------------------------------------------------------------------------
// The test backend.

/// What the backend saw, in order, for assertions.
#[derive(Debug)]
pub enum Record {
    Bind(SessionInfo),
    Stanza(SessionInfo, Box<Stanza>),
    Unbind(SessionInfo),
}

pub struct TestBackend {
    accounts: Mutex<HashMap<String, StoredCredentials>>,
    /// Bound sessions by full JID: session id and its outbox.
    sessions: Mutex<HashMap<String, (u64, Arc<Outbox>)>>,
    records: mpsc::UnboundedSender<Record>,
}

impl TestBackend {
    pub fn new() -> (Arc<Self>, mpsc::UnboundedReceiver<Record>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let b = Arc::new(TestBackend {
            accounts: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            records: tx,
        });
        (b, rx)
    }

    pub fn add_user(&self, username: &str, password: &str) {
        self.accounts.lock().unwrap().insert(
            username.to_owned(),
            StoredCredentials::from_password(password, ITERATIONS),
        );
    }

    pub fn has_user(&self, username: &str) -> bool {
        self.accounts.lock().unwrap().contains_key(username)
    }

    /// The outbox of the session bound to `full_jid`, as the router would hold it.
    pub fn outbox(&self, full_jid: &str) -> Arc<Outbox> {
        self.sessions
            .lock()
            .unwrap()
            .get(full_jid)
            .unwrap_or_else(|| panic!("no session bound to {full_jid}"))
            .1
            .clone()
    }

    pub fn is_bound(&self, full_jid: &str) -> bool {
        self.sessions.lock().unwrap().contains_key(full_jid)
    }
}

impl Backend for TestBackend {
    async fn credentials(&self, username: &str) -> Option<StoredCredentials> {
        self.accounts.lock().unwrap().get(username).cloned()
    }

    async fn register(&self, username: &str, password: &str) -> Result<(), RegisterError> {
        let mut accounts = self.accounts.lock().unwrap();
        if accounts.contains_key(username) {
            return Err(RegisterError::Conflict);
        }
        accounts.insert(
            username.to_owned(),
            StoredCredentials::from_password(password, ITERATIONS),
        );
        Ok(())
    }

    async fn bind(
        &self,
        session: &SessionInfo,
        outbox: Arc<Outbox>,
        result: bytes::Bytes,
    ) -> Result<(), hydrant_proto::StanzaError> {
        let _ = outbox.push(result);
        let old = self
            .sessions
            .lock()
            .unwrap()
            .insert(session.jid.to_string(), (session.id, outbox));
        if let Some((_, old)) = old {
            // What the real router does with a resource conflict: the older session is
            // replaced and closed with <conflict/>.
            let mut bytes = StreamError::new(StreamErrorCondition::Conflict)
                .with_text("replaced by a new session with the same resource")
                .to_bytes();
            bytes.extend_from_slice(b"</stream:stream>");
            old.close_after(Some(bytes.into()));
        }
        let _ = self.records.send(Record::Bind(session.clone()));
        Ok(())
    }

    async fn stanza(&self, session: &SessionInfo, stanza: Stanza) {
        let _ = self
            .records
            .send(Record::Stanza(session.clone(), Box::new(stanza)));
    }

    async fn unbind(&self, session: &SessionInfo) {
        {
            let mut sessions = self.sessions.lock().unwrap();
            let key = session.jid.to_string();
            if sessions.get(&key).is_some_and(|(id, _)| *id == session.id) {
                sessions.remove(&key);
            }
        }
        let _ = self.records.send(Record::Unbind(session.clone()));
    }
}

// ---------------------------------------------------------------------------------------
// The harness: one server config, any number of client streams.

pub struct Harness {
    pub shared: Arc<Shared<TestBackend>>,
    pub backend: Arc<TestBackend>,
    pub shutdown: CancellationToken,
    records: mpsc::UnboundedReceiver<Record>,
}

impl Harness {
    pub fn new(cfg: C2sConfig) -> Self {
        let (backend, records) = TestBackend::new();
        Harness {
            shared: Shared::new(cfg, backend.clone()),
            backend,
            shutdown: CancellationToken::new(),
            records,
        }
    }

    /// A harness with the default test config and the account alice/secret.
    pub fn with_alice() -> Self {
        let h = Harness::new(config());
        h.backend.add_user("alice", "secret");
        h
    }

    /// Starts a server stream task on a fresh pipe and returns the client end.
    pub fn connect(&self, secure: bool) -> Client {
        self.connect_with_pipe(secure, PIPE)
    }

    pub fn connect_with_pipe(&self, secure: bool, pipe: usize) -> Client {
        self.connect_from_with_pipe(peer(), secure, pipe)
    }

    /// A stream from another client address (for the per-network limits).
    pub fn connect_from(&self, from: &str, secure: bool) -> Client {
        self.connect_from_with_pipe(from.parse().expect("a socket address"), secure, PIPE)
    }

    fn connect_from_with_pipe(&self, from: SocketAddr, secure: bool, pipe: usize) -> Client {
        let (client_io, server_io) = tokio::io::duplex(pipe);
        let shared = self.shared.clone();
        let shutdown = self.shutdown.clone();
        let task = tokio::spawn(async move {
            hydrant_c2s::run_stream_for_test(server_io, from, secure, &shared, &shutdown).await;
        });
        Client {
            io: client_io,
            reader: StreamReader::new(Limits::default()),
            eof: false,
            received: Vec::new(),
            task: Some(task),
        }
    }

    /// The next backend record.
    pub async fn record(&mut self) -> Record {
        let Ok(record) = timeout(WAIT, self.records.recv()).await else {
            panic!("timed out waiting for a backend record");
        };
        record.expect("the backend is alive")
    }

    /// The next backend record, which must be a stanza.
    pub async fn stanza(&mut self) -> (SessionInfo, Stanza) {
        match self.record().await {
            Record::Stanza(info, s) => (info, *s),
            other => panic!("expected a stanza at the backend, got {other:?}"),
        }
    }

    /// Records already delivered, without waiting.
    pub fn pending_records(&mut self) -> Vec<Record> {
        let mut out = Vec::new();
        while let Ok(r) = self.records.try_recv() {
            out.push(r);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// The client side of the pipe.

/// The opening header a c2s client sends.
pub fn header(to: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='{}' to='{to}' version='1.0'>",
        ns::STREAM
    )
}

pub struct Client {
    pub io: DuplexStream,
    reader: StreamReader,
    eof: bool,
    /// Every byte the server sent, for failure messages.
    received: Vec<u8>,
    task: Option<JoinHandle<()>>,
}

impl Client {
    /// Writes raw bytes; panics if the server side is gone.
    pub async fn send(&mut self, data: &str) {
        self.io
            .write_all(data.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("writing {data:?}: {e}"));
    }

    /// Writes raw bytes, reporting failure (the server may have closed the pipe).
    pub async fn try_send(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.io.write_all(data).await
    }

    pub fn transcript(&self) -> String {
        String::from_utf8_lossy(&self.received).into_owned()
    }

    /// The next event from the server, `None` at end of stream (EOF on the pipe).
    pub async fn next_event(&mut self) -> Option<StreamEvent> {
        self.next_event_within(WAIT).await
    }

    pub async fn next_event_within(&mut self, wait: Duration) -> Option<StreamEvent> {
        let deadline = Instant::now() + wait;
        loop {
            match self.reader.next_event() {
                Ok(Some(ev)) => return Some(ev),
                Ok(None) => {}
                Err(e) => panic!(
                    "the server's output is not a valid stream ({e}): {}",
                    self.transcript()
                ),
            }
            if self.eof {
                return None;
            }
            self.read_chunk(deadline, wait).await;
        }
    }

    /// Reads one chunk from the pipe into the reader; returns it (empty at EOF).
    async fn read_chunk(&mut self, deadline: Instant, wait: Duration) -> Vec<u8> {
        let mut buf = vec![0u8; 16 * 1024];
        let Ok(read) = timeout_at(deadline, self.io.read(&mut buf)).await else {
            panic!(
                "timed out after {wait:?} waiting for the server; received so far: {}",
                self.transcript()
            );
        };
        match read {
            Err(e) => panic!("reading from the server: {e}"),
            Ok(0) => {
                self.eof = true;
                Vec::new()
            }
            Ok(n) => {
                buf.truncate(n);
                self.received.extend_from_slice(&buf);
                if let Err(e) = self.reader.feed(&buf) {
                    panic!(
                        "the server's output is not a valid stream ({e}): {}",
                        self.transcript()
                    );
                }
                buf
            }
        }
    }

    /// The raw bytes of the next read, when no event is pending (for whitespace
    /// keepalives, which the reader skips). The bytes are fed to the reader as well.
    pub async fn next_raw_within(&mut self, wait: Duration) -> Vec<u8> {
        assert_eq!(
            self.reader.buffered_len(),
            0,
            "unread server output: {}",
            self.transcript()
        );
        let deadline = Instant::now() + wait;
        let chunk = self.read_chunk(deadline, wait).await;
        assert!(!chunk.is_empty(), "EOF: {}", self.transcript());
        chunk
    }

    /// True if the server sent nothing within `wait` (the client's idle check).
    pub async fn is_silent_for(&mut self, wait: Duration) -> bool {
        if self.reader.buffered_len() > 0 || self.eof {
            return false;
        }
        let mut buf = [0u8; 1];
        // Peeking is not possible on a duplex pipe: any byte read is kept for the reader.
        match timeout(wait, self.io.read(&mut buf)).await {
            Err(_) => true,
            Ok(Ok(0)) => {
                self.eof = true;
                false
            }
            Ok(Ok(n)) => {
                self.received.extend_from_slice(&buf[..n]);
                self.reader.feed(&buf[..n]).expect("valid server output");
                false
            }
            Ok(Err(e)) => panic!("reading from the server: {e}"),
        }
    }

    /// Forgets the current stream (after `<success/>` or `<proceed/>`): the server's
    /// next output starts a new document.
    pub fn restart(&mut self) {
        self.reader.restart();
    }

    /// The next event, which must be the server's stream header.
    pub async fn expect_open(&mut self) -> StreamHeader {
        match self.next_event().await {
            Some(StreamEvent::Open(h)) => {
                assert_eq!(h.ns(), ns::STREAM);
                assert_eq!(h.default_ns(), ns::CLIENT);
                assert_eq!(h.from(), Some(DOMAIN));
                assert_eq!(h.version(), Some("1.0"));
                assert!(h.id().is_some_and(|id| !id.is_empty()), "stream id");
                h
            }
            other => panic!(
                "expected the server's stream header, got {other:?}: {}",
                self.transcript()
            ),
        }
    }

    /// The next event, which must be a top-level element.
    pub async fn expect_element(&mut self) -> Element {
        match self.next_event().await {
            Some(StreamEvent::Stanza(el)) => el,
            other => panic!("expected an element, got {other:?}: {}", self.transcript()),
        }
    }

    pub async fn expect_element_within(&mut self, wait: Duration) -> Element {
        match self.next_event_within(wait).await {
            Some(StreamEvent::Stanza(el)) => el,
            other => panic!("expected an element, got {other:?}: {}", self.transcript()),
        }
    }

    /// The next element must be `<stream:features/>`.
    pub async fn expect_features(&mut self) -> Element {
        let el = self.expect_element().await;
        assert!(
            el.is("features", ns::STREAM),
            "expected stream features, got {el:?}"
        );
        el
    }

    /// Sends our header and reads the server's header and features.
    pub async fn open(&mut self) -> Element {
        self.send(&header(DOMAIN)).await;
        self.expect_open().await;
        self.expect_features().await
    }

    /// The stream ends with `<stream:error><{condition}/></stream:error>`, the closing
    /// tag, and EOF; the server's task ends. Returns the error element.
    pub async fn expect_stream_error(&mut self, condition: &str) -> Element {
        self.expect_stream_error_within(condition, WAIT).await
    }

    pub async fn expect_stream_error_within(&mut self, condition: &str, wait: Duration) -> Element {
        let el = self.expect_element_within(wait).await;
        assert_stream_error(&el, condition);
        self.expect_closed().await;
        el
    }

    /// `</stream:stream>` then EOF, and the server's task ends. Like a real client, we
    /// close our side once the server closed its own (RFC 6120 4.4): the server lingers,
    /// reading, until then.
    pub async fn expect_closed(&mut self) {
        match self.next_event().await {
            Some(StreamEvent::Close) => {}
            other => panic!(
                "expected </stream:stream>, got {other:?}: {}",
                self.transcript()
            ),
        }
        let _ = self.io.shutdown().await;
        self.expect_eof().await;
    }

    /// No more events: the pipe reaches EOF, and the server's task ends.
    pub async fn expect_eof(&mut self) {
        if let Some(ev) = self.next_event().await {
            panic!("expected EOF, got {ev:?}: {}", self.transcript());
        }
        self.expect_task_end().await;
    }

    /// The server's stream task finished (without panicking).
    pub async fn expect_task_end(&mut self) {
        let task = self.task.take().expect("task already awaited");
        let Ok(joined) = timeout(WAIT, task).await else {
            panic!("the server task did not end");
        };
        if let Err(e) = joined {
            panic!("the server task failed: {e}");
        }
    }

    pub fn task_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }

    // -- SASL -----------------------------------------------------------------------------

    /// Sends `<auth/>` with an initial response.
    pub async fn send_auth(&mut self, mechanism: &str, initial: &[u8]) {
        let payload = if initial.is_empty() {
            "=".to_owned()
        } else {
            B64.encode(initial)
        };
        self.send(&format!(
            "<auth xmlns='{}' mechanism='{mechanism}'>{payload}</auth>",
            ns::SASL
        ))
        .await;
    }

    pub async fn send_response(&mut self, data: &[u8]) {
        let payload = if data.is_empty() {
            "=".to_owned()
        } else {
            B64.encode(data)
        };
        self.send(&format!(
            "<response xmlns='{}'>{payload}</response>",
            ns::SASL
        ))
        .await;
    }

    /// A SCRAM exchange with the `sasl` crate's client up to the server's answer to the
    /// final message: `<success/>` (verified by the client: `v=` must match) or the
    /// `<failure/>` element.
    pub async fn scram(
        &mut self,
        sha256: bool,
        username: &str,
        password: &str,
    ) -> Result<(), Element> {
        let creds = Credentials::default()
            .with_username(username)
            .with_password(password)
            .with_channel_binding(ChannelBinding::None);
        let (mech, mut client): (&str, Box<dyn Mechanism>) = if sha256 {
            (
                "SCRAM-SHA-256",
                Box::new(
                    sasl::client::mechanisms::Scram::<sasl::common::scram::Sha256>::from_credentials(
                        creds,
                    )
                    .unwrap(),
                ),
            )
        } else {
            (
                "SCRAM-SHA-1",
                Box::new(
                    sasl::client::mechanisms::Scram::<sasl::common::scram::Sha1>::from_credentials(
                        creds,
                    )
                    .unwrap(),
                ),
            )
        };
        let first = client.initial();
        self.send_auth(mech, &first).await;
        let challenge = self.expect_element().await;
        if challenge.is("failure", ns::SASL) {
            return Err(challenge);
        }
        assert!(
            challenge.is("challenge", ns::SASL),
            "expected a SCRAM challenge, got {challenge:?}"
        );
        let challenge = B64
            .decode(challenge.text().trim())
            .expect("base64 challenge");
        let fin = client
            .response(&challenge)
            .expect("a valid server-first-message");
        self.send_response(&fin).await;
        let answer = self.expect_element().await;
        if answer.is("failure", ns::SASL) {
            return Err(answer);
        }
        assert!(
            answer.is("success", ns::SASL),
            "expected <success/>, got {answer:?}"
        );
        let data = B64
            .decode(answer.text().trim())
            .expect("base64 success data");
        client
            .success(&data)
            .expect("the client verifies the server signature (v=)");
        self.restart();
        Ok(())
    }

    /// PLAIN with an initial response; `Ok` on `<success/>` (the client restarts).
    pub async fn plain(
        &mut self,
        authzid: &str,
        username: &str,
        password: &str,
    ) -> Result<(), Element> {
        let msg = format!("{authzid}\0{username}\0{password}");
        self.send_auth("PLAIN", msg.as_bytes()).await;
        let answer = self.expect_element().await;
        if answer.is("success", ns::SASL) {
            assert_eq!(answer.text(), "", "PLAIN success carries no data");
            self.restart();
            return Ok(());
        }
        assert!(
            answer.is("failure", ns::SASL),
            "expected success or failure, got {answer:?}"
        );
        Err(answer)
    }

    /// Opens, authenticates with PLAIN and restarts: returns the post-auth features.
    pub async fn login(&mut self, username: &str, password: &str) -> Element {
        self.open().await;
        self.plain("", username, password)
            .await
            .unwrap_or_else(|f| panic!("login failed: {f:?}"));
        self.open().await
    }

    /// Binds a resource (`None`: let the server choose) and returns the full JID.
    pub async fn bind(&mut self, resource: Option<&str>) -> String {
        let inner = resource
            .map(|r| format!("<resource>{r}</resource>"))
            .unwrap_or_default();
        self.send(&format!(
            "<iq type='set' id='bind1'><bind xmlns='{}'>{inner}</bind></iq>",
            ns::BIND
        ))
        .await;
        let reply = self.expect_element().await;
        assert!(reply.is("iq", ns::CLIENT), "{reply:?}");
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
        assert_eq!(reply.attr("id"), Some("bind1"));
        reply
            .get_child("bind", ns::BIND)
            .and_then(|b| b.get_child("jid", ns::BIND))
            .map(Element::text)
            .expect("<bind><jid/></bind> in the result")
    }

    /// A stream of alice, authenticated and bound to `resource`.
    pub async fn bound_alice(&mut self, resource: &str) -> String {
        self.login("alice", "secret").await;
        let jid = self.bind(Some(resource)).await;
        assert_eq!(jid, format!("alice@{DOMAIN}/{resource}"));
        jid
    }
}

// ---------------------------------------------------------------------------------------
// Assertions on elements.

/// `el` is `<stream:error>` with exactly the given defined condition.
pub fn assert_stream_error(el: &Element, condition: &str) {
    assert!(
        el.is("error", ns::STREAM),
        "expected <stream:error><{condition}/>, got {el:?}"
    );
    let conds: Vec<&str> = el
        .children()
        .filter(|c| c.ns() == ns::STREAMS && c.name() != "text")
        .map(Element::name)
        .collect();
    assert_eq!(conds, [condition], "stream error condition: {el:?}");
}

/// `el` is a SASL `<failure/>` with exactly the given condition.
pub fn assert_sasl_failure(el: &Element, condition: &str) {
    assert!(
        el.is("failure", ns::SASL),
        "expected a SASL failure, got {el:?}"
    );
    let conds: Vec<&str> = el
        .children()
        .filter(|c| c.name() != "text")
        .map(Element::name)
        .collect();
    assert_eq!(conds, [condition], "SASL failure condition: {el:?}");
    assert!(el.children().all(|c| c.ns() == ns::SASL), "{el:?}");
}

/// `el` is an error reply with this type and defined condition; returns the `<error/>`.
pub fn assert_stanza_error<'a>(el: &'a Element, kind: &str, condition: &str) -> &'a Element {
    assert_eq!(el.attr("type"), Some("error"), "not an error reply: {el:?}");
    let err = el
        .get_child("error", ns::CLIENT)
        .unwrap_or_else(|| panic!("no <error/> child: {el:?}"));
    assert_eq!(err.attr("type"), Some(kind), "error type: {el:?}");
    let conds: Vec<&str> = err
        .children()
        .filter(|c| c.ns() == ns::STANZAS && c.name() != "text")
        .map(Element::name)
        .collect();
    assert_eq!(conds, [condition], "stanza error condition: {el:?}");
    err
}

/// The `(name, namespace)` of each child of a features element.
pub fn feature_names(features: &Element) -> Vec<(String, String)> {
    features
        .children()
        .map(|c| (c.name().to_owned(), c.ns().to_owned()))
        .collect()
}

/// The SASL mechanisms offered, in order.
pub fn mechanisms(features: &Element) -> Vec<String> {
    features
        .get_child("mechanisms", ns::SASL)
        .map(|m| {
            m.children()
                .filter(|c| c.is("mechanism", ns::SASL))
                .map(Element::text)
                .collect()
        })
        .unwrap_or_default()
}
