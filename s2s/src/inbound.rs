//! Inbound streams: a peer connects to us (RFC 6120 4, XEP-0220 as receiving and as
//! authoritative server).
//!
//! The stream is encrypted first (STARTTLS, required by default), then each domain pair
//! the peer wants to send for is authenticated with dialback: we check the key with the
//! originating domain's authoritative server over a stream of our own (`verify.rs`) and
//! answer `<db:result type='valid'/>` or `invalid`. Several pairs may be authenticated on
//! one stream (XEP-0220 piggybacking); every stanza's `from` and `to` must belong to one.
//! The same streams carry `<db:verify/>` requests for keys we gave out (we are then the
//! authoritative server).

use std::sync::Arc;

use hydrant_proto::{
    Element, Jid, Stanza, StanzaParseError, StreamError, StreamErrorCondition as Cond, StreamEvent,
    StreamHeader, StreamReader, error_reply, ns,
};
use hydrant_stream::close;
use hydrant_stream::header::{StreamId, escape_attr};
use hydrant_stream::sasl::{AuthContext, Input, Mechanism, SaslServer, Step};
use hydrant_stream::{Conn, Io, Outbox, OverflowPolicy};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tracing::debug;

use crate::Shared;
use crate::backend::S2sBackend;
use crate::dialback::{self, DbElement};
use crate::open::BoxIo;

/// A verification's outcome, sent back to the stream that asked: `Ok(valid)`, or the
/// authoritative server could not be asked.
struct Verified {
    originating: String,
    receiving: String,
    valid: Result<bool, ()>,
}

/// Serves one accepted connection until it closes.
pub(crate) async fn serve<B: S2sBackend>(
    shared: Arc<Shared<B>>,
    tcp: TcpStream,
    mut guard: hydrant_stream::admission::PreauthGuard,
    direct_tls: bool,
) {
    let deadline = Instant::now() + shared.cfg.negotiate_timeout;
    let mut io: BoxIo = Box::new(tcp);
    let mut tls = false;
    let mut peer_chain = None;
    if direct_tls {
        // XEP-0368: TLS from the first byte, then the stream as after STARTTLS.
        let Some(t) =
            hydrant_stream::tls::accept(io, Arc::clone(&shared.tls_server), deadline).await
        else {
            return;
        };
        peer_chain = t.get_ref().1.peer_certificates().map(<[_]>::to_vec);
        io = Box::new(t);
        tls = true;
    }
    loop {
        let outbox = Outbox::with_policy(shared.cfg.queue_bytes, OverflowPolicy::Refuse);
        let conn = Conn::new(io, StreamReader::new(shared.cfg.limits), outbox);
        let mut s = Inbound {
            shared: &shared,
            conn,
            tls,
            id: StreamId::random(),
            dialback: dialback::Inbound::default(),
            authenticated: false,
            deadline,
            peer_chain: peer_chain.take(),
            peer_domain: None,
            local_domain: None,
            external: None,
            sasl: SaslServer::new(),
            guard: &mut guard,
        };
        match s.run().await {
            Next::Done => return,
            Next::StartTls => {
                let io_plain = s.conn.into_io();
                let Some(t) =
                    hydrant_stream::tls::accept(io_plain, Arc::clone(&shared.tls_server), deadline)
                        .await
                else {
                    return;
                };
                peer_chain = t.get_ref().1.peer_certificates().map(<[_]>::to_vec);
                io = Box::new(t);
                tls = true;
            }
        }
    }
}

enum Next {
    Done,
    StartTls,
}

struct Inbound<'a, 'g, B> {
    shared: &'a Arc<Shared<B>>,
    conn: Conn<BoxIo>,
    tls: bool,
    id: StreamId,
    dialback: dialback::Inbound,
    /// Some domain pair is authenticated on this stream.
    authenticated: bool,
    /// Until some domain pair is authenticated.
    deadline: Instant,
    /// The certificate the peer presented in the TLS handshake, if any.
    peer_chain: Option<Vec<CertificateDer<'static>>>,
    /// The current header's `from` (the peer's domain) and `to` (ours).
    peer_domain: Option<String>,
    local_domain: Option<String>,
    /// The domain SASL EXTERNAL authenticated (XEP-0178), for the stream's `to`.
    external: Option<String>,
    sasl: SaslServer,
    /// Counts the connection against its address until it authenticates.
    guard: &'g mut hydrant_stream::admission::PreauthGuard,
}

impl<B: S2sBackend> Inbound<'_, '_, B> {
    async fn run(&mut self) -> Next {
        let (tx, mut rx) = mpsc::unbounded_channel::<Verified>();
        let mut header_seen = false;
        let mut closing = false;
        loop {
            let wake = if self.authenticated {
                self.conn.last_read + self.shared.cfg.idle_timeout
            } else {
                self.deadline
            };
            let ev = tokio::select! {
                ev = std::future::poll_fn(|cx| self.conn.poll_next(cx)) => ev,
                Some(v) = rx.recv() => {
                    if !self.verified(v) {
                        closing = true;
                    }
                    continue;
                }
                () = sleep_until(wake), if !closing => {
                    closing = true;
                    self.fail(header_seen, StreamError::new(Cond::ConnectionTimeout));
                    continue;
                }
            };
            match ev {
                Io::Event(StreamEvent::Open(h)) => {
                    if let Err(e) = self.open(&h) {
                        closing = true;
                        self.fail(false, e);
                    }
                    header_seen = true;
                }
                Io::Event(StreamEvent::Close) => {
                    if !closing {
                        close::queue_close(&self.conn.outbox);
                    }
                    closing = true;
                }
                Io::Event(StreamEvent::Stanza(el)) if closing => drop(el),
                Io::Event(StreamEvent::Stanza(el)) => match self.element(el, &tx).await {
                    Ok(Some(next)) => return next,
                    Ok(None) => {}
                    Err(e) => {
                        closing = true;
                        self.fail(true, e);
                    }
                },
                Io::Malformed(e) => {
                    closing = true;
                    self.fail(header_seen, e);
                }
                Io::Rearm => {}
                Io::Closed | Io::Eof | Io::Failed(_) | Io::Overflow => return Next::Done,
            }
        }
    }

    /// Queues a stream error and our close (with our header first if not yet sent).
    fn fail(&self, header_sent: bool, e: StreamError) {
        debug!(condition = ?e, "s2s inbound stream error");
        metrics::counter!("hydrant_s2s_stream_errors_total", "condition" => e.condition.as_str())
            .increment(1);
        if !header_sent {
            self.conn.send(self.response_header(None));
        }
        close::queue_error_close(&self.conn.outbox, &e);
    }

    fn response_header(&self, peer: Option<&str>) -> Vec<u8> {
        let mut h = format!(
            "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' xmlns:db='{}' \
             id='{}' version='1.0'",
            ns::SERVER,
            ns::STREAM,
            ns::DIALBACK,
            self.id.as_str(),
        );
        if let Some(p) = peer {
            h.push_str(" to='");
            h.push_str(&escape_attr(p));
            h.push('\'');
        }
        h.push('>');
        h.into_bytes()
    }

    /// RFC 6120 4.7 for a receiving server: the header, then our header and features.
    fn open(&mut self, h: &StreamHeader) -> Result<(), StreamError> {
        if h.default_ns() != ns::SERVER {
            return Err(StreamError::new(Cond::InvalidNamespace));
        }
        // RFC 6120 4.9.3.6: a `to` we do not serve.
        let to = h.to().map(str::to_owned);
        if let Some(to) = &to
            && !self.shared.backend.is_local(to)
        {
            return Err(StreamError::new(Cond::HostUnknown));
        }
        let peer = h.from().filter(|f| Jid::new(f).is_ok());
        if let Some(p) = peer
            && !self.shared.cfg.federates_with(p)
        {
            // The operator does not federate with this domain (`[s2s] allow`/`deny`).
            return Err(StreamError::new(Cond::PolicyViolation)
                .with_text("this server does not federate with your domain"));
        }
        // RFC 6120 4.7.3: a fresh id for every stream, restarts included.
        self.id = StreamId::random();
        self.peer_domain = peer.map(str::to_owned);
        self.local_domain.clone_from(&to);
        let mut out = self.response_header(peer);
        if let Some(to) = &to {
            // Our `from` is the domain the peer asked for (RFC 6120 4.7.1).
            let at = out.len() - 1;
            out.splice(at..at, format!(" from='{}'", escape_attr(to)).into_bytes());
        }
        out.extend_from_slice(b"<stream:features>");
        if !self.tls {
            out.extend_from_slice(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>");
            if self.shared.cfg.require_tls {
                out.extend_from_slice(b"<required/>");
            }
            out.extend_from_slice(b"</starttls>");
        }
        if self.external_eligible() {
            // XEP-0178: the certificate the peer presented verifies for its domain.
            out.extend_from_slice(
                b"<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism></mechanisms>",
            );
        }
        if self.compression_offered() {
            // XEP-0138 (XEP-0170 order: after TLS, and before dialback or after SASL).
            out.extend_from_slice(
                b"<compression xmlns='http://jabber.org/features/compress'><method>zlib</method></compression>",
            );
        }
        if self.shared.cfg.allow_dialback && (self.tls || !self.shared.cfg.require_tls) {
            // XEP-0220 2.1 (stream feature, with error support).
            out.extend_from_slice(
                b"<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>",
            );
        }
        out.extend_from_slice(b"</stream:features>");
        self.conn.send(out);
        Ok(())
    }

    /// One top-level element after the header.
    async fn element(
        &mut self,
        el: Element,
        tx: &mpsc::UnboundedSender<Verified>,
    ) -> Result<Option<Next>, StreamError> {
        if el.is("starttls", ns::TLS) && !self.tls {
            self.conn
                .send(&b"<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"[..]);
            if self.conn.flush().await.is_err() {
                return Ok(Some(Next::Done));
            }
            return Ok(Some(Next::StartTls));
        }
        if self.shared.cfg.require_tls && !self.tls {
            // RFC 6120 5.3.1: TLS is mandatory-to-negotiate here.
            return Err(StreamError::new(Cond::PolicyViolation)
                .with_text("STARTTLS is required before anything else"));
        }
        if el.is("compress", ns::COMPRESS) {
            return self.compress(&el).await;
        }
        if el.ns() == ns::DIALBACK {
            return self.dialback(&el, tx).map(|()| None);
        }
        if el.ns() == ns::SASL {
            return self.sasl(&el).map(|()| None);
        }
        if el.ns() != ns::SERVER {
            return Err(StreamError::new(Cond::UnsupportedStanzaType));
        }
        self.stanza(el).await.map(|()| None)
    }

    /// Whether XEP-0138 compression is offered now: on, not on already, past TLS (if
    /// required), and either nothing authenticated yet or authenticated by SASL (whose
    /// restart the compression restart follows): a dialback-authenticated stream is not
    /// restarted, since its pairs would not survive a new stream.
    fn compression_offered(&self) -> bool {
        self.shared.cfg.compression
            && !self.conn.is_compressed()
            && (self.tls || !self.shared.cfg.require_tls)
            && (!self.authenticated || self.external.is_some())
    }

    /// `<compress/>`: `<compressed/>`, then both directions compressed and a new stream
    /// (XEP-0138 5), or `<failure/>` and the stream goes on as it was (XEP-0138 6).
    async fn compress(&mut self, el: &Element) -> Result<Option<Next>, StreamError> {
        let zlib = el
            .children()
            .any(|m| m.is("method", ns::COMPRESS) && m.text().trim() == "zlib");
        if !self.compression_offered() || !zlib {
            let why = if zlib {
                "setup-failed"
            } else {
                "unsupported-method"
            };
            self.conn.send(format!(
                "<failure xmlns='http://jabber.org/protocol/compress'><{why}/></failure>"
            ));
            return Ok(None);
        }
        self.conn
            .send(&b"<compressed xmlns='http://jabber.org/protocol/compress'/>"[..]);
        if self.conn.flush().await.is_err() {
            return Ok(Some(Next::Done));
        }
        self.conn.start_compression();
        self.conn.reader = StreamReader::new(self.shared.cfg.limits);
        tracing::info!(peer = ?self.peer_domain, "s2s inbound stream compressed (XEP-0138)");
        metrics::counter!("hydrant_s2s_compressed_streams_total", "dir" => "in").increment(1);
        crate::COMPRESSED_IN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(None)
    }

    /// Whether SASL EXTERNAL can be offered now: TLS with a client certificate that
    /// verifies for the domain the peer names in its header, not yet authenticated.
    fn external_eligible(&self) -> bool {
        self.tls
            && self.external.is_none()
            && match (&self.peer_chain, &self.peer_domain) {
                (Some(chain), Some(domain)) => self.shared.trust.verifies(chain, domain),
                _ => false,
            }
    }

    /// SASL EXTERNAL (RFC 6120 6, XEP-0178) for the peer's domain.
    fn sasl(&mut self, el: &Element) -> Result<(), StreamError> {
        let Some(input) = Input::from_element(el) else {
            return Err(StreamError::new(Cond::UnsupportedStanzaType));
        };
        let offered: &[Mechanism] = if self.external_eligible() {
            &[Mechanism::External]
        } else {
            &[]
        };
        let domain = self.peer_domain.clone().unwrap_or_default();
        let ids = [domain.as_str()];
        let ctx = AuthContext {
            offered,
            domain: self.local_domain.as_deref().unwrap_or_default(),
            certificate_ids: if offered.is_empty() { &[] } else { &ids },
        };
        match self.sasl.input(&ctx, input) {
            Step::Success { username, .. } => {
                self.conn
                    .send(&b"<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"[..]);
                debug!(peer = %username, "s2s inbound authenticated with SASL EXTERNAL");
                metrics::counter!("hydrant_s2s_streams_total", "dir" => "in", "auth" => "external")
                    .increment(1);
                self.external = Some(username);
                self.authenticated = true;
                self.guard.authenticated();
                // RFC 6120 6.4.6: the peer restarts the stream on this connection.
                self.conn.reader = StreamReader::new(self.shared.cfg.limits);
            }
            Step::Challenge(_) => {
                self.conn
                    .send(&b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"[..]);
            }
            Step::Failure(f) => self.conn.send(f.to_element().to_bytes(ns::SERVER)),
            // Not reachable with EXTERNAL alone (no keys, no passwords).
            Step::NeedKeys { .. } | Step::Check { .. } | Step::VerifyPassword(_) => {
                self.sasl.reset();
                self.conn.send(
                    hydrant_stream::sasl::Failure::TemporaryAuth
                        .to_element()
                        .to_bytes(ns::SERVER),
                );
            }
        }
        Ok(())
    }

    /// Carries out what a refused dialback element asks (XEP-0220 2.5).
    fn refuse(&self, e: &dialback::DbError) -> Result<(), StreamError> {
        match e.answer() {
            dialback::Answer::Stream(c) => Err(StreamError::new(c)),
            dialback::Answer::Dialback(answer) => {
                self.conn.send(answer.to_bytes());
                Ok(())
            }
            dialback::Answer::Nothing => Ok(()),
        }
    }

    fn dialback(
        &mut self,
        el: &Element,
        tx: &mpsc::UnboundedSender<Verified>,
    ) -> Result<(), StreamError> {
        let parsed = match dialback::parse(el) {
            Ok(p) => p,
            Err(e) => return self.refuse(&e),
        };
        match parsed {
            DbElement::ResultRequest { from, to, .. } if !self.shared.cfg.allow_dialback => {
                // Dialback is off here (`allow_dialback`): only SASL EXTERNAL
                // authenticates (XEP-0220 2.5 `<not-allowed/>`, the stream stays).
                let refusal = DbElement::ResultResponse {
                    from: to,
                    to: from,
                    kind: dialback::DbKind::Error(hydrant_proto::StanzaErrorCondition::NotAllowed),
                };
                self.conn.send(refusal.to_bytes());
            }
            DbElement::ResultRequest { from, to, key } => {
                let backend = &self.shared.backend;
                if let Err(e) = self
                    .dialback
                    .on_result_request(&from, &to, |d| backend.is_local(d))
                {
                    return self.refuse(&e);
                }
                let (shared, tx) = (Arc::clone(self.shared), tx.clone());
                let id = self.id.as_str().to_owned();
                tokio::spawn(async move {
                    let _turn = Arc::clone(&shared.verifications).acquire_owned().await;
                    let valid = crate::verify::verify(&shared, &to, &from, &id, key)
                        .await
                        .map_err(|f| {
                            debug!(originating = %from, failure = ?f, "dialback verification failed");
                        });
                    let _ = tx.send(Verified {
                        originating: from,
                        receiving: to,
                        valid,
                    });
                });
            }
            DbElement::VerifyRequest { from, to, id, key } => {
                // We are the authoritative server for `to`; our outbound stream from `to`
                // to `from` is the one whose key is being checked.
                let ours = self.shared.dialback_id(&to, &from);
                let backend = &self.shared.backend;
                let answer = dialback::answer_verify(
                    &self.shared.secret,
                    |d| backend.is_local(d),
                    &from,
                    &to,
                    &id,
                    &key,
                    ours.as_deref(),
                );
                self.conn.send(answer.to_bytes());
            }
            // Answers belong on the streams we opened; here they mean nothing.
            DbElement::ResultResponse { .. } | DbElement::VerifyResponse { .. } => {}
        }
        Ok(())
    }

    /// Answers the peer once its key is checked; false when the stream must close
    /// (XEP-0220 2.2.1: after `invalid`, the receiving server closes the stream).
    fn verified(&mut self, v: Verified) -> bool {
        let answer = match v.valid {
            Ok(valid) => self
                .dialback
                .on_verified(&v.originating, &v.receiving, valid),
            // XEP-0220 2.5: the authoritative server could not be reached.
            Err(()) => self.dialback.on_verify_failed(
                &v.originating,
                &v.receiving,
                hydrant_proto::StanzaErrorCondition::RemoteServerNotFound,
            ),
        };
        if let Some(answer) = answer {
            self.conn.send(answer.to_bytes());
        }
        match v.valid {
            Ok(true) => {
                metrics::counter!("hydrant_s2s_streams_total", "dir" => "in", "auth" => "dialback")
                    .increment(1);
                self.authenticated = true;
                self.guard.authenticated();
                true
            }
            Ok(false) => {
                close::queue_close(&self.conn.outbox);
                false
            }
            Err(()) => true,
        }
    }

    /// A stanza: its addresses must belong to an authenticated pair (RFC 6120 4.9.3.9
    /// `<invalid-from/>`, 4.9.3.13 `<improper-addressing/>`, 4.9.3.6 `<host-unknown/>`).
    async fn stanza(&mut self, el: Element) -> Result<(), StreamError> {
        if el.attr("from").is_none() || el.attr("to").is_none() {
            return Err(StreamError::new(Cond::ImproperAddressing));
        }
        // The addresses are parsed once, by the stanza parser; only a stanza it refuses has
        // them read again here, to check them before the error is answered.
        let refused = match Stanza::parse(el, ns::SERVER) {
            Ok(stanza) => {
                let (Some(from), Some(to)) = (stanza.from(), stanza.to()) else {
                    return Err(StreamError::new(Cond::ImproperAddressing));
                };
                self.authorize(from, to)?;
                let from = from.clone();
                self.shared.backend.stanza(from, stanza).await;
                return Ok(());
            }
            Err(e) => e,
        };
        let el = match &refused {
            StanzaParseError::Invalid(el, _) | StanzaParseError::NotAStanza(el) => el,
        };
        let addr = |name| el.attr(name).and_then(|a| Jid::new(a).ok());
        let (Some(from), Some(to)) = (addr("from"), addr("to")) else {
            return Err(StreamError::new(Cond::ImproperAddressing));
        };
        self.authorize(&from, &to)?;
        match refused {
            StanzaParseError::Invalid(el, err) => {
                // RFC 6120 8.3.1: never an error for an error.
                if el.attr("type") != Some("error") {
                    let mut reply = error_reply(&el, &err);
                    reply.rename_ns(ns::SERVER, ns::CLIENT);
                    self.shared.send(&reply);
                }
                Ok(())
            }
            StanzaParseError::NotAStanza(_) => Err(StreamError::new(Cond::UnsupportedStanzaType)),
        }
    }

    /// A stanza's addresses must belong to what this stream authenticated (RFC 6120
    /// 4.9.3.6 `<host-unknown/>`, 4.9.3.9 `<invalid-from/>`) and to a domain federated
    /// with (`[s2s] allow`/`deny`).
    fn authorize(&self, from: &Jid, to: &Jid) -> Result<(), StreamError> {
        let (from_d, to_d) = (from.domain().as_str(), to.domain().as_str());
        if !self.shared.backend.is_local(to_d) {
            return Err(StreamError::new(Cond::HostUnknown));
        }
        if !self.shared.cfg.federates_with(from_d) {
            return Err(StreamError::new(Cond::PolicyViolation));
        }
        let by_external =
            self.external.as_deref() == Some(from_d) && self.local_domain.as_deref() == Some(to_d);
        if by_external || self.dialback.is_authorized(from_d, to_d) {
            Ok(())
        } else {
            Err(StreamError::new(Cond::InvalidFrom))
        }
    }
}
