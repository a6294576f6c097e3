//! XEP-0198 stream management on c2s: enabling it, acknowledgements both ways, and a
//! session that outlives its connection for a while so the client can resume it.
//!
//! The counting itself is `hydrant_stream::sm` inside the connection; this is the
//! policy: when it may be enabled, how long a broken stream waits for its client
//! (`[c2s] sm_resume_timeout`), who may resume it (the same account, nobody else), and
//! what becomes of the stanzas the client never acknowledged when nobody comes back
//! (handed to the backend, which stores or bounces them as RFC 6121 says).
//!
//! A session waiting for its client keeps its place in the router: its outbox goes on
//! collecting what is routed to it, bounded as always by `outbound_queue_bytes`; if it
//! fills up, the slow-consumer policy ends the session as it would a connected one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hydrant_proto::{Element, StreamError, StreamErrorCondition as Cond, ns};
use hydrant_stream::sm::{self, NS, Sm, SmLimits};
use hydrant_stream::{Frame, Outbox};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::backend::{Backend, SessionInfo};
use crate::stream::Stream;

/// How long a stream that resumes waits for the old one to hand the session over.
const HANDOVER_WAIT: Duration = Duration::from_secs(10);

/// Sessions that may be resumed, by resumption id.
#[derive(Default)]
pub struct Registry {
    map: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    /// Only the same account may resume (XEP-0198 5, security: the id alone is not a
    /// credential).
    username: String,
    to_holder: mpsc::Sender<Takeover>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn holder(&self, id: &str, username: &str) -> Option<mpsc::Sender<Takeover>> {
        let map = self.lock();
        let e = map.get(id)?;
        (e.username == username).then(|| e.to_holder.clone())
    }

    fn remove(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// Asks the task holding a session to give it up.
pub(crate) struct Takeover {
    reply: oneshot::Sender<Handover>,
}

/// A session moving to another connection.
pub(crate) struct Handover {
    info: SessionInfo,
    outbox: Arc<Outbox>,
    sm: Box<Sm>,
    /// What the old connection held for an inactive client (XEP-0352) and never wrote.
    held: Vec<Frame>,
    slot: Box<Slot>,
}

/// A resumable session's side of the registry.
pub(crate) struct Slot {
    id: String,
    from_resumer: mpsc::Receiver<Takeover>,
    /// How long the session waits for its client after the connection broke.
    timeout: Duration,
}

impl<S, B> Stream<'_, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    fn sm_limits(&self) -> SmLimits {
        SmLimits {
            max_unacked_bytes: self.cfg().sm_max_unacked_bytes,
            request_every: self.cfg().sm_request_every.max(1),
        }
    }

    /// A stream-management element on a bound stream (never a stanza, never counted).
    pub(crate) fn on_sm_element(&mut self, el: &Element) {
        match el.name() {
            "enable" => self.on_enable(el),
            "r" => {
                if let Some(sm) = self.conn.sm_mut() {
                    let a = sm.answer();
                    self.conn.send(a);
                }
            }
            "a" => {
                let Some(h) = sm::parse_h(el.attr("h")) else {
                    return self.stream_error(
                        StreamError::new(Cond::InvalidXml).with_text("<a/> without a valid 'h'"),
                    );
                };
                if let Some(sm) = self.conn.sm_mut()
                    && let Err(e) = sm.ack(h)
                {
                    // XEP-0198 4: <handled-count-too-high/>.
                    self.stream_error(StreamError::new(Cond::UndefinedCondition).with_text(
                        format!("handled-count-too-high: h={} but {} sent", e.h, e.sent),
                    ));
                }
            }
            // A second resume, or one after binding.
            "resume" => self.sm_failed("unexpected-request", None),
            _ => self.stream_error(StreamError::new(Cond::UnsupportedStanzaType)),
        }
    }

    /// `<failed/>` with a stanza error condition (XEP-0198 3, 5).
    pub(crate) fn sm_failed(&mut self, condition: &str, h: Option<u32>) {
        let mut f = Element::new("failed", NS);
        if let Some(h) = h {
            f.set_attr("h", h.to_string());
        }
        f.append_child(Element::new(condition, ns::STANZAS));
        self.conn.send(f.to_bytes(ns::CLIENT));
    }

    fn on_enable(&mut self, el: &Element) {
        if !self.cfg().stream_management {
            return self.sm_failed("feature-not-implemented", None);
        }
        if self.bound.is_none() {
            // XEP-0198 3: enabling before binding a resource.
            return self.sm_failed("unexpected-request", None);
        }
        if self.conn.sm_mut().is_some() {
            return self.sm_failed("unexpected-request", None);
        }
        let wants_resume = matches!(el.attr("resume"), Some("true" | "1"));
        let mut enabled = Element::new("enabled", NS);
        let timeout = self.cfg().sm_resume_timeout;
        if wants_resume && !timeout.is_zero() {
            // The client may ask for less time than we allow, never more (XEP-0198 3).
            let timeout = el
                .attr("max")
                .and_then(|m| m.parse::<u64>().ok())
                .map_or(timeout, |m| timeout.min(Duration::from_secs(m.max(1))));
            let id = resumption_id();
            let (tx, rx) = mpsc::channel(1);
            let username = self.username.clone().expect("bound, so authenticated");
            self.shared.resumable.lock().insert(
                id.clone(),
                Entry {
                    username,
                    to_holder: tx,
                },
            );
            enabled.set_attr("id", id.clone());
            enabled.set_attr("resume", "true");
            enabled.set_attr("max", timeout.as_secs().to_string());
            self.resume = Some(Box::new(Slot {
                id,
                from_resumer: rx,
                timeout,
            }));
        }
        let limits = self.sm_limits();
        self.conn
            .enable_sm(Sm::new(limits), enabled.to_bytes(ns::CLIENT).into());
        metrics::counter!("hydrant_c2s_sm_enabled_total").increment(1);
    }

    /// `<resume/>` after authentication, before binding (XEP-0198 5).
    pub(crate) async fn on_resume(&mut self, el: &Element) {
        let (Some(h), Some(previd)) = (sm::parse_h(el.attr("h")), el.attr("previd")) else {
            return self.sm_failed("bad-request", None);
        };
        let username = self
            .username
            .clone()
            .expect("resume only after authentication");
        let handover = match self.shared.resumable.holder(previd, &username) {
            Some(holder) => take_over(holder).await,
            None => None,
        };
        let Some(mut h_over) = handover else {
            metrics::counter!("hydrant_c2s_sm_resume_failed_total").increment(1);
            debug!(peer = %self.peer, "nothing to resume");
            return self.sm_failed("item-not-found", None);
        };
        let acked = h_over.sm.ack(h);
        let resumed = Element::new("resumed", NS)
            .with_attr("h", h_over.sm.inbound.to_string())
            .with_attr("previd", previd);
        let mut info = h_over.info;
        info.peer = self.peer;
        info.secure = self.secure;
        info!(peer = %self.peer, jid = %info.jid, "session resumed");
        metrics::counter!("hydrant_c2s_sm_resumed_total").increment(1);
        self.conn.resume(
            h_over.outbox,
            h_over.sm,
            h_over.held,
            Bytes::from(resumed.to_bytes(ns::CLIENT)),
        );
        self.bound = Some(info);
        self.resume = Some(h_over.slot);
        if let Err(e) = acked {
            self.stream_error(
                StreamError::new(Cond::UndefinedCondition).with_text(format!(
                    "handled-count-too-high: h={} but {} sent",
                    e.h, e.sent
                )),
            );
        }
    }

    /// Whether a broken connection leaves this session waiting for its client.
    pub(crate) fn resumable(&self) -> bool {
        self.bound.is_some() && self.resume.is_some()
    }

    /// Gives the session to the stream that resumes it. `live`: this connection still
    /// works and is closed with `<conflict/>`; otherwise it is already gone.
    pub(crate) fn hand_over(&mut self, t: Takeover, live: bool) -> bool {
        let (Some(info), Some(slot)) = (self.bound.take(), self.resume.take()) else {
            return false;
        };
        let sm = self
            .conn
            .take_sm()
            .expect("resumable only with stream management");
        let held = self.conn.take_held();
        // From here on this connection writes to a queue of its own: the session's
        // queue belongs to the new stream.
        let outbox = std::mem::replace(&mut self.conn.outbox, Outbox::new(4096));
        let handover = Handover {
            info,
            outbox,
            sm,
            held,
            slot,
        };
        if let Err(back) = t.reply.send(handover) {
            // The resuming stream gave up waiting: keep the session.
            self.conn.outbox = back.outbox;
            self.bound = Some(back.info);
            self.resume = Some(back.slot);
            self.conn.restore_sm(back.sm);
            if !back.held.is_empty() {
                // Written now rather than held again: rare, and never lost.
                self.conn.restore_held(back.held);
            }
            return false;
        }
        if live {
            self.ended("the session was resumed on another connection");
            self.stream_error(
                StreamError::new(Cond::Conflict).with_text("the session was resumed elsewhere"),
            );
        }
        true
    }

    /// The connection broke: waits for the client to resume, for the resumption time
    /// to run out, for the session's queue to stop accepting (overflow, replaced,
    /// account removed) or for shutdown. True when another stream took the session.
    pub(crate) async fn hibernate(&mut self, shutdown: &CancellationToken) -> bool {
        let Some(slot) = self.resume.as_ref() else {
            return false;
        };
        let until = Instant::now() + slot.timeout;
        debug!(peer = %self.peer, "connection lost; waiting for the client to resume");
        metrics::gauge!("hydrant_c2s_sm_waiting").increment(1.0);
        let taken = loop {
            let outbox = self.conn.outbox.clone();
            let Some(slot) = self.resume.as_mut() else {
                break false;
            };
            let t = tokio::select! {
                t = slot.from_resumer.recv() => t,
                () = sleep_until(until) => None,
                () = std::future::poll_fn(|cx| outbox.poll_stopped(cx)) => None,
                () = shutdown.cancelled() => None,
            };
            match t {
                Some(t) => {
                    if self.hand_over(t, false) {
                        break true;
                    }
                }
                None => break false,
            }
        };
        metrics::gauge!("hydrant_c2s_sm_waiting").decrement(1.0);
        taken
    }

    /// The session ends for good: no resumption from now on, and the stanzas the client
    /// did not acknowledge, with what was queued for it, go back to the backend.
    pub(crate) async fn sm_end(&mut self, info: &SessionInfo) {
        if let Some(slot) = self.resume.take() {
            self.shared.resumable.remove(&slot.id);
        }
        let Some(mut sm) = self.conn.take_sm() else {
            return;
        };
        let mut frames = sm.take_unacked();
        frames.extend(self.conn.take_held());
        frames.extend(self.conn.outbox.take_all());
        let stanzas: Vec<Element> = frames
            .iter()
            // A pubsub notification is the service's business (XEP-0060): the
            // subscriber catches up from the node, as after the slow-consumer policy.
            .filter(|f| matches!(f, Frame::Stanza(..)))
            .filter_map(Frame::stanza_element)
            .collect();
        if !stanzas.is_empty() {
            debug!(jid = %info.jid, count = stanzas.len(), "unacknowledged stanzas returned");
            let back = Box::pin(self.shared.backend.undelivered(info, stanzas));
            back.await;
        }
    }
}

/// The next takeover request for a resumable session (pending forever without one).
pub(crate) async fn next_takeover(slot: &mut Option<Box<Slot>>) -> Option<Takeover> {
    match slot {
        Some(s) => s.from_resumer.recv().await,
        None => std::future::pending().await,
    }
}

/// Asks the holder for the session and waits for it (bounded: a holder busy for longer
/// than [`HANDOVER_WAIT`] counts as gone).
async fn take_over(holder: mpsc::Sender<Takeover>) -> Option<Handover> {
    let (reply, rx) = oneshot::channel();
    tokio::time::timeout(HANDOVER_WAIT, async {
        holder.send(Takeover { reply }).await.ok()?;
        rx.await.ok()
    })
    .await
    .ok()
    .flatten()
}

/// An unguessable resumption id (XEP-0198 3: the id must not be predictable).
fn resumption_id() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 18];
    getrandom::fill(&mut b).expect("the OS random source is available");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}
