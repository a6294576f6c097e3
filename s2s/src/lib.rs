//! hydrant-s2s: server-to-server streams (RFC 6120, XEP-0220, XEP-0368).
//!
//! Owns: finding a peer (`resolve.rs`: DNS SRV, XEP-0368, static overrides), opening a
//! stream to it with STARTTLS or direct TLS (`open.rs`, `tls.rs`), authenticating with
//! Server Dialback (`dialback.rs` the keys and elements, `verify.rs` the receiving
//! server's check), one outbound stream per (local, remote) domain pair with the stanzas
//! waiting for it, retries and bounces (`outbound.rs`), and inbound streams with the
//! `from`/`to` check on every stanza (`inbound.rs`).
//!
//! Must not depend on: `c2s`, `storage`, `pubsub` or `server` (only `proto` and
//! `stream`); it reaches the rest only through [`S2sBackend`], which the server
//! implements. `scripts/check-deps.sh` enforces it.

mod backend;
mod config;
pub mod dialback;
mod failure;
mod inbound;
mod open;
mod outbound;
pub mod resolve;
pub mod tls;
mod verify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hydrant_proto::{Element, Jid};
use hydrant_stream::Frame;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

pub use backend::S2sBackend;
pub use config::S2sConfig;
pub use outbound::Backlog;

use outbound::{Peer, Rejected};

/// What every s2s stream of the server shares.
pub(crate) struct Shared<B> {
    pub cfg: S2sConfig,
    pub backend: Arc<B>,
    pub resolver: resolve::Resolver,
    pub trust: tls::Trust,
    pub tls_client: Arc<rustls::ClientConfig>,
    pub tls_server: Arc<rustls::ServerConfig>,
    /// The dialback secret of this process (XEP-0185).
    pub secret: dialback::Secret,
    peers: Mutex<HashMap<(String, String), Arc<Peer>>>,
    /// (local, remote) -> stream id, for outbound streams awaiting `<db:result/>`.
    dialback_ids: Mutex<HashMap<(String, String), String>>,
    inbound: Arc<Semaphore>,
    /// Per-address admission of inbound connections.
    admission: Arc<hydrant_stream::admission::Admission>,
    /// Dialback verifications at once (`max_verifications`).
    pub verifications: Arc<Semaphore>,
}

impl<B> Shared<B> {
    /// Records (or with `None` forgets) the id the peer `remote` gave our outbound stream
    /// from `local` while its `<db:result/>` is outstanding: the authoritative side
    /// vouches only for keys of streams it is waiting on (`dialback::answer_verify`).
    pub(crate) fn awaiting_dialback(&self, local: &str, remote: &str, id: Option<&str>) {
        let mut m = self
            .dialback_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (local.to_owned(), remote.to_owned());
        match id {
            Some(id) => {
                m.insert(key, id.to_owned());
            }
            None => {
                m.remove(&key);
            }
        }
    }

    /// The id of our outbound stream from `local` to `remote` awaiting dialback.
    pub(crate) fn dialback_id(&self, local: &str, remote: &str) -> Option<String> {
        self.dialback_ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(local.to_owned(), remote.to_owned()))
            .cloned()
    }

    pub(crate) fn forget_peer(&self, peer: &Arc<Peer>) {
        let mut peers = self
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (peer.local.clone(), peer.remote.clone());
        if peers.get(&key).is_some_and(|p| Arc::ptr_eq(p, peer)) {
            peers.remove(&key);
        }
    }
}

impl<B: S2sBackend> Shared<B> {
    /// Hands a stanza (in `jabber:client`, from a local domain) to its peer's stream;
    /// what cannot be taken goes back to the backend to bounce.
    pub(crate) fn send(self: &Arc<Self>, el: &Element) {
        let (Some(from), Some(to)) = (
            el.attr("from").and_then(|f| Jid::new(f).ok()),
            el.attr("to").and_then(|t| Jid::new(t).ok()),
        ) else {
            debug!("s2s: a stanza without from or to is not sent");
            return;
        };
        self.send_frame(
            from.domain().as_str(),
            to.domain().as_str(),
            Frame::element(el),
            false,
        );
    }

    /// Hands a serialised stanza from `local` to `remote` to its peer's stream (the
    /// fan-out's path: a notification's shared parts are not copied per recipient).
    /// With `notification`, the stanza may go past the peer's limit and the peer's
    /// [`Backlog`] comes back, for the publisher to wait on.
    pub(crate) fn send_frame(
        self: &Arc<Self>,
        local: &str,
        remote: &str,
        frame: Frame,
        notification: bool,
    ) -> Option<Backlog> {
        let (local, remote) = (local.to_owned(), remote.to_owned());
        if !self.cfg.federates_with(&remote) {
            // RFC 6120 8.3.3.12: not-allowed, the operator's policy.
            let err =
                hydrant_proto::StanzaError::new(hydrant_proto::StanzaErrorCondition::NotAllowed)
                    .with_text("this server does not federate with that domain");
            outbound::bounce(&*self.backend, frame, &err);
            return None;
        }
        let mut frame = frame;
        for _ in 0..3 {
            let peer = {
                let mut peers = self
                    .peers
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let key = (local.clone(), remote.clone());
                if let Some(p) = peers.get(&key) {
                    p.clone()
                } else if peers.len() >= self.cfg.max_peers {
                    drop(peers);
                    warn!(%remote, max = self.cfg.max_peers, "s2s: too many peers at once; stanza refused");
                    let err = hydrant_proto::StanzaError::new(
                        hydrant_proto::StanzaErrorCondition::ResourceConstraint,
                    )
                    .with_type(hydrant_proto::ErrorType::Wait);
                    outbound::bounce(&*self.backend, frame, &err);
                    return None;
                } else {
                    let p = Peer::new(local.clone(), remote.clone());
                    peers.insert(key, p.clone());
                    tokio::spawn(outbound::run(Arc::clone(self), p.clone()));
                    p
                }
            };
            match peer.push(frame, self.cfg.queue_bytes, notification) {
                Ok(()) => {
                    return notification.then(|| Backlog {
                        peer,
                        limit: self.cfg.queue_bytes,
                        max_wait: self.cfg.give_up_after,
                    });
                }
                Err(Rejected::Refused(f, err)) => {
                    outbound::bounce(&*self.backend, f, &err);
                    return None;
                }
                // Its task ended between the lookup and the push: look it up again.
                Err(Rejected::Gone(back)) => frame = back,
            }
        }
        warn!(%remote, "s2s: the peer kept going away; stanza bounced");
        let err = hydrant_proto::StanzaError::new(
            hydrant_proto::StanzaErrorCondition::RemoteServerTimeout,
        );
        outbound::bounce(&*self.backend, frame, &err);
        None
    }
}

/// Streams compressed with XEP-0138 since the process started, (inbound, outbound):
/// process-wide, as the `hydrant_s2s_compressed_streams_total` counter (which tests in
/// the same process cannot read).
pub fn compressed_streams() -> (u64, u64) {
    (
        COMPRESSED_IN.load(std::sync::atomic::Ordering::Relaxed),
        COMPRESSED_OUT.load(std::sync::atomic::Ordering::Relaxed),
    )
}

pub(crate) static COMPRESSED_IN: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);
pub(crate) static COMPRESSED_OUT: std::sync::atomic::AtomicU64 =
    std::sync::atomic::AtomicU64::new(0);

/// The s2s service of one server.
pub struct S2s<B> {
    shared: Arc<Shared<B>>,
}

impl<B> Clone for S2s<B> {
    fn clone(&self) -> Self {
        S2s {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: S2sBackend> S2s<B> {
    /// Sets up federation; nothing connects until a stanza is sent or [`S2s::serve`]
    /// accepts a peer.
    pub fn new(
        cfg: S2sConfig,
        backend: Arc<B>,
        resolver: resolve::Resolver,
        trust: tls::Trust,
        identity: &tls::Identity,
    ) -> Result<Self, String> {
        let tls_client = trust.client_config(cfg.allow_dialback, Some(identity))?;
        let tls_server = tls::server_config(identity)?;
        let inbound = Arc::new(Semaphore::new(cfg.max_inbound.max(1)));
        let cfg_per_ip = cfg.per_ip;
        let verifications = Arc::new(Semaphore::new(cfg.max_verifications.max(1)));
        Ok(S2s {
            shared: Arc::new(Shared {
                cfg,
                backend,
                resolver,
                trust,
                tls_client,
                tls_server,
                secret: dialback::Secret::random(),
                peers: Mutex::new(HashMap::new()),
                dialback_ids: Mutex::new(HashMap::new()),
                inbound,
                admission: hydrant_stream::admission::Admission::new(cfg_per_ip),
                verifications,
            }),
        })
    }

    /// Domain pairs with a stream or stanzas waiting, and the bytes queued for them all
    /// (waiting for a stream, in write queues and behind them): the queue-depth gauges.
    pub fn backlog(&self) -> (usize, usize) {
        let peers: Vec<Arc<outbound::Peer>> = self
            .shared
            .peers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let bytes = peers.iter().map(|p| p.backlog_bytes()).sum();
        (peers.len(), bytes)
    }

    /// Publishes [`S2s::backlog`] as the gauges `hydrant_s2s_peers` and
    /// `hydrant_s2s_queued_bytes` every `every` until `stop` resolves (a sample, not a
    /// running sum: nothing on the send path pays for it).
    pub async fn report_backlog(
        &self,
        every: std::time::Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = &mut stop => return,
            }
            let (peers, bytes) = self.backlog();
            metrics::gauge!("hydrant_s2s_peers").set(peers as f64);
            metrics::gauge!("hydrant_s2s_queued_bytes").set(bytes as f64);
        }
    }

    /// Sends a stanza (in `jabber:client`, `from` in a local domain, `to` in a remote
    /// one). Never blocks: a stanza that cannot be queued, or later cannot be delivered,
    /// comes back through [`S2sBackend::undeliverable`].
    pub fn send(&self, el: &Element) {
        self.shared.send(el);
    }

    /// Sends a stanza serialised already (without its content namespace, as
    /// [`Frame`]s are) from `local` to `remote`: the fan-out's path, which shares a
    /// notification's parts among all its recipients, remote ones included.
    /// Sends a pubsub notification (see [`S2s::send_frame`]): it is queued even past the
    /// peer's limit (up to a few times it), and the peer's [`Backlog`] comes back: the
    /// publisher waits on it before its next publish, so a slower peer paces the
    /// firehose instead of losing notifications.
    pub fn send_notification(&self, local: &str, remote: &str, frame: Frame) -> Option<Backlog> {
        self.shared.send_frame(local, remote, frame, true)
    }

    /// Sends a stanza serialised already (without its content namespace, as [`Frame`]s
    /// are) from `local` to `remote`.
    pub fn send_frame(&self, local: &str, remote: &str, frame: Frame) {
        self.shared.send_frame(local, remote, frame, false);
    }

    /// Accepts inbound s2s connections on `listener` until `stop` resolves; with
    /// `direct_tls`, TLS from the first byte (XEP-0368), else STARTTLS.
    pub async fn serve(
        &self,
        listener: TcpListener,
        direct_tls: bool,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        loop {
            let accepted = tokio::select! {
                a = listener.accept() => a,
                () = &mut stop => return,
            };
            let (tcp, addr) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e, "s2s accept failed");
                    continue;
                }
            };
            let guard = match self.shared.admission.admit(addr.ip()) {
                Ok(g) => g,
                Err(why) => {
                    metrics::counter!("hydrant_s2s_refused_at_accept_total", "reason" => why.as_str())
                        .increment(1);
                    debug!(%addr, reason = why.as_str(), "s2s: connection refused at accept");
                    continue;
                }
            };
            let Ok(permit) = Arc::clone(&self.shared.inbound).try_acquire_owned() else {
                metrics::counter!("hydrant_s2s_refused_at_accept_total", "reason" => "max_inbound")
                    .increment(1);
                debug!(%addr, "s2s: too many inbound connections; closed at accept");
                continue;
            };
            let shared = Arc::clone(&self.shared);
            tokio::spawn(async move {
                inbound::serve(shared, tcp, guard, direct_tls).await;
                drop(permit);
            });
        }
    }
}
