//! The life of one c2s stream: header exchange, negotiation, bound session, close.
//!
//! The state machine is driven by [`Conn::poll_next`] events and timers; handlers for each
//! negotiation step live in `negotiate/` and the bound-session logic in `session.rs`.

use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hydrant_proto::{
    Element, StreamError, StreamErrorCondition as Cond, StreamEvent, StreamHeader, StreamReader, ns,
};
use hydrant_stream::close::{self, Closing};
use hydrant_stream::header::{self, ContentNs, StreamId};
use hydrant_stream::liveness::{Liveness, LivenessConfig};
use hydrant_stream::sasl::SaslServer;
use hydrant_stream::{Conn, Io, Outbox};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::backend::{Backend, SessionInfo};
use crate::config::C2sConfig;
use crate::throttle::AuthThrottle;
use hydrant_stream::admission::{Admission, PreauthGuard};

/// State shared by all c2s connections of one server.
pub struct Shared<B> {
    pub cfg: Arc<C2sConfig>,
    pub backend: Arc<B>,
    pub(crate) throttle: AuthThrottle,
    /// Per-address connection rate and unauthenticated-connection caps.
    pub(crate) admission: Arc<Admission>,
    next_session: AtomicU64,
    /// XEP-0198 sessions that may be resumed.
    pub(crate) resumable: crate::sm::Registry,
    /// Key for the fake SCRAM salts of unknown users, so probing cannot tell them apart.
    pub(crate) fake_salt_key: [u8; 32],
}

impl<B: Backend> Shared<B> {
    pub fn new(cfg: C2sConfig, backend: Arc<B>) -> Arc<Self> {
        let mut fake_salt_key = [0u8; 32];
        getrandom::fill(&mut fake_salt_key).expect("the OS random source is available");
        Arc::new(Shared {
            admission: Admission::new(cfg.per_ip),
            cfg: Arc::new(cfg),
            backend,
            throttle: AuthThrottle::default(),
            next_session: AtomicU64::new(1),
            resumable: crate::sm::Registry::default(),
            fake_salt_key,
        })
    }

    pub(crate) fn session_id(&self) -> u64 {
        self.next_session.fetch_add(1, Ordering::Relaxed)
    }
}

/// How a stream's task ended.
pub(crate) enum Exit {
    Done,
    /// `<proceed/>` was sent and flushed: the caller takes the socket
    /// ([`Stream::into_io`]), runs the TLS handshake and starts a new stream over it.
    StartTls,
}

/// What a handler asks of the loop.
pub(crate) enum Flow {
    Continue,
    StartTls,
    /// `<compressed/>` was queued: once it is written, both directions compress and a
    /// new stream starts (XEP-0138 5).
    Compress,
}

pub(crate) struct Stream<'a, S, B> {
    pub(crate) conn: Conn<S>,
    pub(crate) shared: &'a Shared<B>,
    pub(crate) peer: SocketAddr,
    pub(crate) secure: bool,
    /// We sent our header for the current stream (errors need one first, RFC 6120 4.9.1.1).
    header_sent: bool,
    awaiting_header: bool,
    /// The authenticated username once SASL succeeded.
    pub(crate) username: Option<String>,
    pub(crate) sasl: SaslServer,
    pub(crate) auth_failures: u32,
    pub(crate) register_attempts: u32,
    pub(crate) bound: Option<SessionInfo>,
    /// Closed by us, waiting for the peer's close, or lingering.
    closing: Closing,
    liveness: Liveness,
    /// From TCP accept to a bound resource: covers the TLS handshake and every restart.
    auth_deadline: Instant,
    /// When we started waiting for the peer's current stream header.
    header_wait_since: Instant,
    /// Counts this connection against its address until it authenticates.
    preauth: Option<PreauthGuard>,
    /// XEP-0198: this session may be resumed after its connection breaks.
    pub(crate) resume: Option<Box<crate::sm::Slot>>,
    /// The connection broke while the session was resumable: wait for the client.
    hibernating: bool,
    /// Why the stream ended (the first cause), for its one log line at the end.
    end_reason: Option<&'static str>,
}

impl<'a, S, B> Stream<'a, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    /// A stream on a connection accepted at `accepted` (the authentication deadline
    /// counts from there, across STARTTLS and restarts).
    pub(crate) fn new(
        io: S,
        shared: &'a Shared<B>,
        peer: SocketAddr,
        secure: bool,
        accepted: Instant,
        preauth: Option<PreauthGuard>,
    ) -> Self {
        let outbox = Outbox::new(shared.cfg.outbound_queue_bytes);
        Stream {
            conn: Conn::new(io, StreamReader::new(shared.cfg.preauth_limits), outbox),
            shared,
            peer,
            secure,
            header_sent: false,
            awaiting_header: true,
            username: None,
            sasl: SaslServer::new(),
            auth_failures: 0,
            register_attempts: 0,
            bound: None,
            closing: Closing::default(),
            liveness: Liveness::default(),
            auth_deadline: accepted + shared.cfg.auth_timeout,
            header_wait_since: Instant::now(),
            preauth,
            resume: None,
            hibernating: false,
            end_reason: None,
        }
    }

    /// The socket and the admission guard, after [`Exit::StartTls`].
    pub(crate) fn into_parts(self) -> (S, Option<PreauthGuard>) {
        (self.conn.into_io(), self.preauth)
    }

    pub(crate) fn cfg(&self) -> &C2sConfig {
        &self.shared.cfg
    }

    /// Runs the stream to its end.
    ///
    /// Takes `&mut self` rather than `self`: an async fn stores a by-value receiver twice in
    /// its future, and this future lives as long as the connection.
    pub(crate) async fn run(&mut self, shutdown: &CancellationToken) -> Exit {
        let exit = loop {
            enum Wake {
                Io(Io),
                Timer,
                Shutdown,
                Takeover(Option<crate::sm::Takeover>),
            }
            // A cooperative yield point: however much input is buffered, one connection
            // never keeps a worker thread from the others.
            tokio::task::coop::consume_budget().await;
            let deadline = self.deadline();
            let wake = tokio::select! {
                io = poll_fn(|cx| self.conn.poll_next(cx)) => Wake::Io(io),
                () = sleep_until(deadline) => Wake::Timer,
                () = shutdown.cancelled(), if !self.closing.is_closing() => Wake::Shutdown,
                t = crate::sm::next_takeover(&mut self.resume), if self.resume.is_some() => {
                    Wake::Takeover(t)
                }
            };
            match wake {
                Wake::Timer => {
                    if self.on_timer() {
                        break Exit::Done;
                    }
                }
                Wake::Shutdown => {
                    self.stream_error(StreamError::new(Cond::SystemShutdown));
                }
                Wake::Takeover(t) => {
                    // Another stream resumes this session (XEP-0198 5).
                    if let Some(t) = t {
                        self.hand_over(t, true);
                    }
                }
                Wake::Io(Io::Event(ev)) => {
                    if self.closing.is_closing() {
                        // After our close only the peer's close matters (RFC 6120 4.4).
                        if matches!(ev, StreamEvent::Close) {
                            break Exit::Done;
                        }
                        continue;
                    }
                    match ev {
                        StreamEvent::Open(h) => self.on_open(&h),
                        StreamEvent::Close => self.close(),
                        StreamEvent::Stanza(el) => {
                            // Boxed in its own statement: stanza handling (routing,
                            // storage) has large futures that would otherwise size every
                            // idle connection's task.
                            let handling = Box::pin(self.on_element(el));
                            let flow = handling.await;
                            if let Flow::Compress = flow {
                                let flushed = Box::pin(self.conn.flush()).await;
                                if flushed.is_err() {
                                    break Exit::Done;
                                }
                                self.conn.start_compression();
                                // XEP-0138 5: the old stream is void; a compressed stream
                                // header comes next.
                                self.restart();
                                continue;
                            }
                            if let Flow::StartTls = flow {
                                // RFC 6120 5.4.3.3: nothing the client sent before the TLS
                                // handshake may be used afterwards; the reader is dropped.
                                let flushed = Box::pin(self.conn.flush()).await;
                                if flushed.is_err() {
                                    break Exit::Done;
                                }
                                break Exit::StartTls;
                            }
                        }
                    }
                }
                Wake::Io(Io::Malformed(e)) => {
                    debug!(peer = %self.peer, error = %e, "malformed input");
                    self.stream_error(e);
                }
                Wake::Io(Io::Overflow) => {
                    // The slow-consumer policy (README): the stream ends with
                    // <policy-violation/>; the client reconnects and catches up.
                    debug!(peer = %self.peer, "outbound queue overflow");
                    self.ended("slow consumer: outbound queue limit exceeded");
                    metrics::counter!("hydrant_c2s_slow_consumer_disconnects_total").increment(1);
                    self.stream_error(
                        StreamError::new(Cond::PolicyViolation).with_text(
                            "outbound queue limit exceeded: the client reads too slowly",
                        ),
                    );
                }
                Wake::Io(Io::Failed(e)) => {
                    debug!(peer = %self.peer, error = %e, "connection failed");
                    self.hibernating = self.resumable() && !self.closing.is_closing();
                    self.ended("connection failed");
                    break Exit::Done;
                }
                Wake::Io(Io::Eof) => {
                    debug!(peer = %self.peer, "peer closed the connection");
                    // Without our closing tag first, a TCP close is a broken connection,
                    // not the end of the session (XEP-0198 5).
                    self.hibernating = self.resumable() && !self.closing.is_closing();
                    self.ended("connection closed by the client");
                    break Exit::Done;
                }
                // A timer changed inside the connection: the loop recomputes it.
                Wake::Io(Io::Rearm) => {}
                Wake::Io(Io::Closed) => {
                    // Our error and `</stream:stream>` are written and the write side is
                    // shut down: linger (hydrant_stream::close::Closing::on_closed).
                    if self.closing.on_closed(self.cfg().linger) {
                        break Exit::Done;
                    }
                }
            }
        };
        let who = self
            .bound
            .as_ref()
            .map(|i| i.jid.to_string())
            .or_else(|| self.username.clone());
        if self.hibernating {
            let waiting = Box::pin(self.hibernate(shutdown));
            let taken = waiting.await;
            info!(
                peer = %self.peer,
                jid = who.as_deref().unwrap_or("-"),
                reason = self.end_reason.unwrap_or("connection lost"),
                resumed = taken,
                "stream ended; the session waited for its client"
            );
            if taken {
                // Another stream carries the session on.
                return exit;
            }
        } else if matches!(exit, Exit::Done) {
            // One line per stream end with its reason (issue 12): what an operator
            // greps for when a client says it was cut off.
            info!(
                peer = %self.peer,
                jid = who.as_deref().unwrap_or("-"),
                reason = self.end_reason.unwrap_or("closed"),
                "stream ended"
            );
        }
        if let Some(info) = self.bound.take() {
            let unbind = Box::pin(self.shared.backend.unbind(&info));
            unbind.await;
            // After the unbind, so what is returned is not routed back to this session.
            let end = Box::pin(self.sm_end(&info));
            end.await;
        }
        exit
    }

    fn deadline(&self) -> Instant {
        if let Some(at) = self.closing.deadline() {
            return at;
        }
        if self.bound.is_none() {
            return self.preauth_deadline();
        }
        let live = self.liveness.deadline(
            &self.liveness_cfg(),
            self.conn.last_read,
            self.conn.last_write,
        );
        let mut at = live;
        if self.conn.sm_unrequested() > 0 {
            // Stanzas not yet asked about: an <r/> once the stream has been quiet.
            at = at.min(self.conn.last_write + self.cfg().sm_request_after);
        }
        if let Some(due) = self.conn.csi_due() {
            at = at.min(due);
        }
        at
    }

    fn liveness_cfg(&self) -> LivenessConfig {
        let cfg = self.cfg();
        LivenessConfig {
            ping_interval: cfg.ping_interval,
            ping_timeout: cfg.ping_timeout,
            whitespace_keepalive: cfg.whitespace_keepalive,
        }
    }

    /// Until bound: the authentication deadline, and while a stream header is awaited
    /// the (shorter) header deadline.
    fn preauth_deadline(&self) -> Instant {
        if self.awaiting_header {
            self.auth_deadline
                .min(self.header_wait_since + self.cfg().header_timeout)
        } else {
            self.auth_deadline
        }
    }

    /// Handles an expired deadline; true when the task should end now.
    fn on_timer(&mut self) -> bool {
        let now = Instant::now();
        if let Some(at) = self.closing.deadline() {
            return now >= at;
        }
        if self.bound.is_none() {
            if now >= self.preauth_deadline() {
                let text = if now >= self.auth_deadline {
                    "authentication timeout"
                } else {
                    "no stream header in time"
                };
                self.stream_error(StreamError::new(Cond::ConnectionTimeout).with_text(text));
            }
            return false;
        }
        if self.conn.csi_due().is_some_and(|due| now >= due) {
            self.conn.release_held();
        }
        if self.conn.sm_unrequested() > 0
            && now >= self.conn.last_write + self.cfg().sm_request_after
        {
            self.conn.request_ack();
        }
        let cfg = self.liveness_cfg();
        let due = self
            .liveness
            .on_timer(&cfg, now, self.conn.last_read, self.conn.last_write);
        if due.timed_out {
            if self.resumable() {
                // A dead connection of a resumable session: the session waits for its
                // client rather than ending (XEP-0198 5).
                self.hibernating = true;
                self.ended("no answer to the server's ping");
                return true;
            }
            self.stream_error(StreamError::new(Cond::ConnectionTimeout));
            return false;
        }
        if due.ping {
            self.send_ping();
        }
        if due.keepalive {
            self.conn.send(&b" "[..]);
            self.conn.last_write = now;
        }
        false
    }

    fn send_ping(&mut self) {
        let Some(info) = &self.bound else { return };
        let ping = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", format!("c2s-ping-{}", info.id))
            .with_attr("from", self.shared.cfg.domain.as_str())
            .with_attr("to", info.jid.to_string())
            .with_child(Element::new("ping", ns::PING));
        self.send_element(&ping);
        self.liveness.ping_sent(Instant::now());
    }

    /// Serialises an element into the stream (default namespace jabber:client); a
    /// stanza goes as one, so stream management counts it.
    pub(crate) fn send_element(&self, el: &Element) {
        let _ = self.conn.outbox.push(hydrant_stream::Frame::element(el));
    }

    fn on_open(&mut self, h: &StreamHeader) {
        if !self.awaiting_header {
            // A second header without a restart is not well-formed nesting of streams.
            return self.stream_error(StreamError::new(Cond::NotWellFormed));
        }
        self.awaiting_header = false;
        self.send_header(h.from());
        // RFC 6120 4.8.2: the content namespace of a c2s stream is jabber:client; then
        // the addressing (4.7.2) and the version (4.7.5), in this order.
        let checked = header::check_namespace(h, ContentNs::Client)
            .and_then(|()| header::check_to(h, &self.shared.cfg.domain))
            .and_then(|()| header::check_version(h));
        if let Err(e) = checked {
            return self.stream_error(e);
        }
        let features = self.features();
        self.conn.send(features);
    }

    fn send_header(&mut self, peer_from: Option<&str>) {
        // RFC 6120 4.7.2: 'to' of the response is the 'from' of the initial header, if any.
        let out = header::response_header(
            ContentNs::Client,
            &StreamId::random(),
            &self.shared.cfg.domain,
            peer_from,
            true,
        );
        self.conn.send(out);
        self.header_sent = true;
    }

    /// Ends the stream with an error (RFC 6120 4.9): the error, our closing tag, then the
    /// socket is shut down once written.
    pub(crate) fn stream_error(&mut self, e: StreamError) {
        if self.closing.is_closing() {
            return;
        }
        metrics::counter!("hydrant_c2s_stream_errors_total", "condition" => e.condition.as_str())
            .increment(1);
        self.ended(e.condition.as_str());
        debug!(peer = %self.peer, condition = e.condition.as_str(), text = ?e.text, "stream error");
        if !self.header_sent {
            self.send_header(None);
        }
        close::queue_error_close(&self.conn.outbox, &e);
        self.closing.start(Instant::now());
    }

    /// Records why the stream ends (the first cause wins).
    pub(crate) fn ended(&mut self, why: &'static str) {
        self.end_reason.get_or_insert(why);
    }

    /// Closes our side of the stream in order (RFC 6120 4.4).
    fn close(&mut self) {
        self.ended("closed by the client");
        if !self.closing.is_closing() {
            debug!(peer = %self.peer, "closing the stream");
            close::queue_close(&self.conn.outbox);
            self.closing.start(Instant::now());
        }
    }

    /// A stream restart (after SASL success): new header expected, parser state reset.
    pub(crate) fn restart(&mut self) {
        self.conn.reader.restart();
        self.awaiting_header = true;
        self.header_wait_since = Instant::now();
        self.header_sent = false;
        if self.username.is_some() {
            // Authenticated (the restart after SASL success, RFC 6120 6.4.6): the full
            // limits apply from the new stream on, and the connection no longer counts
            // against its address's unauthenticated cap.
            self.conn.reader.set_limits(self.shared.cfg.limits);
            if let Some(mut guard) = self.preauth.take() {
                guard.authenticated();
            }
        }
    }

    async fn on_element(&mut self, el: Element) -> Flow {
        if self.bound.is_some() {
            self.on_bound_element(el).await;
            return Flow::Continue;
        }
        if self.username.is_some() {
            return self.on_authenticated_element(el).await;
        }
        self.on_preauth_element(el).await
    }
}

#[cfg(test)]
mod size_tests {
    //! An idle connection's memory is mostly its task's future, whose size is fixed at
    //! compile time by everything awaited inline. These bounds catch a change that
    //! inlines a large future (routing, storage, TLS) into every connection again.
    use std::sync::Arc;

    struct Nop;
    impl crate::Backend for Nop {
        async fn credentials(&self, _: &str) -> Option<hydrant_proto::scram::StoredCredentials> {
            None
        }
        async fn register(&self, _: &str, _: &str) -> Result<(), crate::RegisterError> {
            Ok(())
        }
        async fn bind(
            &self,
            _: &crate::SessionInfo,
            _: Arc<hydrant_stream::Outbox>,
            _: bytes::Bytes,
        ) -> Result<(), hydrant_proto::StanzaError> {
            Ok(())
        }
        async fn stanza(&self, _: &crate::SessionInfo, _: hydrant_proto::Stanza) {}
        async fn unbind(&self, _: &crate::SessionInfo) {}
    }

    #[tokio::test]
    async fn connection_task_futures_stay_small() {
        let shared = super::Shared::new(crate::C2sConfig::new("x"), Arc::new(Nop));
        let tok = tokio_util::sync::CancellationToken::new();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let _c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (s, peer) = l.accept().await.unwrap();
        let mut st = super::Stream::new(s, &shared, peer, false, tokio::time::Instant::now(), None);
        let stream_size = std::mem::size_of_val(&st);
        let run_size = std::mem::size_of_val(&st.run(&tok));
        assert!(
            stream_size <= 1024,
            "Stream<TcpStream> is {stream_size} bytes"
        );
        assert!(run_size <= 1024, "Stream::run future is {run_size} bytes");
        let _c = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (s, peer) = l.accept().await.unwrap();
        let handle_size = std::mem::size_of_val(&crate::handle(
            s,
            peer,
            crate::ListenerKind::StartTls,
            &shared,
            &tok,
        ));
        assert!(handle_size <= 512, "handle future is {handle_size} bytes");
    }
}
