//! Outbound streams: one per (local domain, remote domain) pair, with the stanzas that
//! wait for it.
//!
//! A stanza for a peer with no stream starts one; until it is authenticated, stanzas wait
//! in the peer's pending queue (bounded in bytes with the stream's own queue). Connecting
//! is retried with backoff until `give_up_after`; then, or at once when retrying cannot
//! help (no such domain, policy), everything waiting is returned to the server to bounce.
//! Once up, stanzas go straight into the stream's outbox, whose overflow policy is
//! `Refuse`: a stanza that does not fit is bounced with `<resource-constraint/>` and the
//! stream stays. When the stream ends (idle, error, the peer closed it), what it had not
//! written goes back to pending and, if anything is pending, the peer connects again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hydrant_proto::{StanzaError, StanzaErrorCondition as Cond, StreamEvent, ns};
use hydrant_stream::close;
use hydrant_stream::outbox::PushError;
use hydrant_stream::{Frame, Io};
use tokio::time::{Instant, sleep, sleep_until};
use tracing::{debug, info};

use crate::Shared;
use crate::backend::S2sBackend;
use crate::dialback;
use crate::failure::Failure;
use crate::open::{Opened, next_event, open};

/// First retry delay; doubled per failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// One remote domain as seen from one local domain.
pub(crate) struct Peer {
    pub local: String,
    pub remote: String,
    state: Mutex<State>,
    /// Wakes the stream's task when stanzas wait behind its write queue.
    waiting: tokio::sync::Notify,
    /// Wakes publishers waiting for this peer's backlog to shrink ([`Backlog`]).
    drained: tokio::sync::Notify,
    /// The peer refused our SASL EXTERNAL once: use dialback from now on.
    no_external: std::sync::atomic::AtomicBool,
}

enum State {
    /// No stream yet (or it is being re-established): stanzas wait here.
    Pending {
        frames: VecDeque<Frame>,
        bytes: usize,
    },
    /// Authenticated: stanzas go to the stream's write queue, or, while that is full
    /// or others already wait, behind it (`waiting`, moved in as it drains, in order).
    Up {
        outbox: Arc<hydrant_stream::Outbox>,
        waiting: VecDeque<Frame>,
        waiting_bytes: usize,
    },
    /// The task ended; the peer is out of the table (a new one is made on demand).
    Gone,
}

/// Why [`Peer::push`] did not take a stanza.
pub(crate) enum Rejected {
    /// The peer's task ended meanwhile: look it up again.
    Gone(Frame),
    /// Refused: bounce with this error.
    Refused(Frame, Box<StanzaError>),
}

impl Peer {
    pub(crate) fn new(local: String, remote: String) -> Arc<Self> {
        Arc::new(Peer {
            local,
            remote,
            state: Mutex::new(State::Pending {
                frames: VecDeque::new(),
                bytes: 0,
            }),
            no_external: std::sync::atomic::AtomicBool::new(false),
            waiting: tokio::sync::Notify::new(),
            drained: tokio::sync::Notify::new(),
        })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a stanza for this peer. Past `limit` queued bytes a stanza is refused,
    /// except with `over` (a pubsub notification, whose publisher then waits for the
    /// backlog to shrink, [`Backlog::wait`]): up to [`NOTIFICATION_SLACK`] × `limit`.
    pub(crate) fn push(&self, frame: Frame, limit: usize, over: bool) -> Result<(), Rejected> {
        let limit = if over {
            limit.saturating_mul(NOTIFICATION_SLACK)
        } else {
            limit
        };
        let mut st = self.state();
        match &mut *st {
            State::Gone => Err(Rejected::Gone(frame)),
            State::Pending { frames, bytes } => {
                if *bytes + frame.len() > limit {
                    return Err(Rejected::Refused(frame, Box::new(full())));
                }
                *bytes += frame.len();
                frames.push_back(frame);
                Ok(())
            }
            State::Up {
                outbox,
                waiting,
                waiting_bytes,
            } => {
                let frame = if waiting.is_empty() {
                    match outbox.push(frame) {
                        Ok(()) => return Ok(()),
                        Err(r) if r.why == PushError::Full => r.frame,
                        Err(r) => {
                            // The stream is closing: the task takes this back with the
                            // rest of what was not written, and connects again.
                            let len = r.frame.len();
                            *st = State::Pending {
                                frames: VecDeque::from([r.frame]),
                                bytes: len,
                            };
                            return Ok(());
                        }
                    }
                } else {
                    frame
                };
                if *waiting_bytes + frame.len() > limit {
                    return Err(Rejected::Refused(frame, Box::new(full())));
                }
                *waiting_bytes += frame.len();
                waiting.push_back(frame);
                drop(st);
                self.waiting.notify_one();
                Ok(())
            }
        }
    }

    /// Bytes of the first stanza waiting behind the write queue (0: none).
    fn next_waiting(&self) -> usize {
        match &*self.state() {
            State::Up { waiting, .. } => waiting.front().map_or(0, Frame::len),
            State::Pending { .. } | State::Gone => 0,
        }
    }

    /// Bytes queued for this peer: waiting for the stream, in its write queue and behind it.
    pub(crate) fn backlog_bytes(&self) -> usize {
        match &*self.state() {
            State::Pending { bytes, .. } => *bytes,
            State::Up {
                outbox,
                waiting_bytes,
                ..
            } => outbox.queued_bytes() + waiting_bytes,
            State::Gone => 0,
        }
    }

    /// Moves waiting stanzas into the write queue while they fit.
    fn refill(&self) {
        let mut st = self.state();
        let State::Up {
            outbox,
            waiting,
            waiting_bytes,
        } = &mut *st
        else {
            return;
        };
        while let Some(f) = waiting.pop_front() {
            let len = f.len();
            match outbox.push(f) {
                Ok(()) => {
                    *waiting_bytes -= len;
                    self.drained.notify_waiters();
                }
                Err(r) => {
                    waiting.push_front(r.frame);
                    break;
                }
            }
        }
    }
}

/// How far past `queue_bytes` notifications may go: a publish's fan-out to a peer is
/// queued whole (its publisher then waits, [`Backlog::wait`]) rather than cut in two.
pub(crate) const NOTIFICATION_SLACK: usize = 4;

/// A peer's backlog, for the publisher of a notification just queued for it: the
/// publisher waits until the peer's queue is back under its limit, so a firehose to a
/// slower server is paced by it instead of losing notifications.
pub struct Backlog {
    pub(crate) peer: Arc<Peer>,
    pub(crate) limit: usize,
    pub(crate) max_wait: std::time::Duration,
}

impl Backlog {
    /// Waits until the peer's queued bytes are under the limit, the peer is gone, or
    /// `give_up_after` passed (a peer that stopped reading does not hold publishers for
    /// ever: what it cannot take is then refused and bounced to the service).
    pub async fn wait(&self) {
        let deadline = Instant::now() + self.max_wait;
        loop {
            let drained = self.peer.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.peer.backlog_bytes() <= self.limit {
                return;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return;
            }
        }
    }

    /// Whether waiting would be needed now.
    pub fn over(&self) -> bool {
        self.peer.backlog_bytes() > self.limit
    }
}

/// RFC 6120 8.3.3.18: the peer's queue is full.
fn full() -> StanzaError {
    StanzaError::new(Cond::ResourceConstraint)
        .with_type(hydrant_proto::ErrorType::Wait)
        .with_text("too much is queued for this server")
}

/// The life of a peer: connect (with retries), run the stream, reconnect while stanzas
/// wait, then leave the table.
pub(crate) async fn run<B: S2sBackend>(shared: Arc<Shared<B>>, peer: Arc<Peer>) {
    loop {
        let Some(opened) = connect(&shared, &peer).await else {
            return;
        };
        let outbox = opened.conn.outbox.clone();
        {
            let mut st = peer.state();
            if let State::Pending { frames, .. } = &mut *st {
                for f in frames.drain(..) {
                    if let Err(r) = outbox.push(f) {
                        // Cannot happen with the same byte limit; bounce rather than lose.
                        bounce(&*shared.backend, r.frame, &full());
                    }
                }
            }
            *st = State::Up {
                outbox: outbox.clone(),
                waiting: VecDeque::new(),
                waiting_bytes: 0,
            };
        }
        info!(local = %peer.local, remote = %peer.remote, "s2s stream up");
        let up_since = Instant::now();
        stream(&shared, &peer, opened).await;
        // What was not written goes back to pending, then what waited behind it, then
        // anything pushed meanwhile (stream-level bytes, such as our closing tag, stay
        // with the old stream).
        let leftover = outbox.take_all();
        let ended = {
            let mut st = peer.state();
            let mut frames: VecDeque<Frame> = leftover
                .into_iter()
                .filter(|f| f.stanza_kind().is_some())
                .collect();
            match &mut *st {
                State::Pending { frames: late, .. } => frames.extend(late.drain(..)),
                State::Up { waiting, .. } => frames.extend(waiting.drain(..)),
                State::Gone => {}
            }
            if frames.is_empty() {
                *st = State::Gone;
                true
            } else {
                let bytes = frames.iter().map(Frame::len).sum();
                *st = State::Pending { frames, bytes };
                false
            }
        };
        peer.drained.notify_waiters();
        if ended {
            shared.forget_peer(&peer);
            debug!(local = %peer.local, remote = %peer.remote, "s2s stream closed");
            return;
        }
        if up_since.elapsed() < FIRST_RETRY {
            // A peer that authenticates us and drops the stream at once must not make
            // this a busy loop of reconnections.
            sleep(FIRST_RETRY).await;
        }
    }
}

/// Connects and authenticates, retrying with backoff; `None` when the peer gave up (its
/// stanzas bounced, out of the table).
async fn connect<B: S2sBackend>(shared: &Arc<Shared<B>>, peer: &Arc<Peer>) -> Option<Opened> {
    let started = Instant::now();
    let mut delay = FIRST_RETRY;
    loop {
        let deadline = Instant::now() + shared.cfg.negotiate_timeout;
        let failure = match authenticate(shared, peer, deadline).await {
            Ok(opened) => return Some(opened),
            Err(f) => f,
        };
        debug!(local = %peer.local, remote = %peer.remote, ?failure, "s2s connect failed");
        metrics::counter!("hydrant_s2s_connect_failures_total").increment(1);
        let give_up = failure.is_final() || started.elapsed() + delay > shared.cfg.give_up_after;
        if give_up {
            let frames = match std::mem::replace(&mut *peer.state(), State::Gone) {
                State::Pending { frames, .. } => frames,
                State::Up { .. } | State::Gone => VecDeque::new(),
            };
            shared.forget_peer(peer);
            peer.drained.notify_waiters();
            info!(local = %peer.local, remote = %peer.remote, ?failure, bounced = frames.len(), "s2s peer unreachable");
            let err = failure.stanza_error();
            metrics::counter!("hydrant_s2s_gave_up_total").increment(1);
            for f in frames {
                bounce(&*shared.backend, f, &err);
            }
            return None;
        }
        sleep(delay).await;
        delay = (delay * 2).min(MAX_RETRY);
    }
}

/// Opens a stream and authenticates it: SASL EXTERNAL (XEP-0178) when the peer's
/// certificate verifies and it offers EXTERNAL (it then accepted ours), else dialback
/// (XEP-0220 2.1: we are the originating server; the peer calls our authoritative side
/// back to check the key).
async fn authenticate<B: S2sBackend>(
    shared: &Shared<B>,
    peer: &Peer,
    deadline: Instant,
) -> Result<Opened, Failure> {
    let mut opened = open(shared, &peer.local, &peer.remote, deadline).await?;
    let offers_external = opened
        .features
        .get_child("mechanisms", ns::SASL)
        .is_some_and(|m| {
            m.children()
                .any(|c| c.is("mechanism", ns::SASL) && c.text().trim() == "EXTERNAL")
        });
    let no_external = peer.no_external.load(std::sync::atomic::Ordering::Relaxed);
    if opened.trusted && offers_external && !no_external {
        return match external(shared, &mut opened, peer, deadline).await {
            Ok(()) => {
                metrics::counter!("hydrant_s2s_streams_total", "dir" => "out", "auth" => "external")
                    .increment(1);
                Ok(opened)
            }
            Err(Failure::NotAuthorized(why)) => {
                // Some servers offer EXTERNAL whatever our certificate; the next
                // attempt uses dialback (ejabberd does the same).
                peer.no_external
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Err(Failure::Protocol(format!(
                    "SASL EXTERNAL refused ({why}); retrying with dialback"
                )))
            }
            Err(e) => Err(e),
        };
    }
    if !opened.trusted && !shared.cfg.allow_dialback {
        return Err(Failure::Policy(
            "the peer's certificate does not verify and dialback is off".into(),
        ));
    }
    if opened
        .features
        .get_child("dialback", ns::DIALBACK_FEATURE)
        .is_none()
    {
        // XEP-0220 2.1: older servers only declare the namespace on their header;
        // dialback is tried anyway, and a peer that does not know it fails it.
        debug!(remote = %peer.remote, "the peer does not advertise dialback");
    }
    let request = dialback::DbElement::result_request(
        &shared.secret,
        &peer.local,
        &peer.remote,
        &opened.stream_id,
    );
    shared.awaiting_dialback(&peer.local, &peer.remote, Some(&opened.stream_id));
    opened.conn.send(request.to_bytes());
    let answer = dialback_answer(&mut opened, peer, deadline).await;
    shared.awaiting_dialback(&peer.local, &peer.remote, None);
    if answer.is_ok() {
        metrics::counter!("hydrant_s2s_streams_total", "dir" => "out", "auth" => "dialback")
            .increment(1);
    }
    answer.map(|()| opened)
}

/// SASL EXTERNAL as the initiating server (RFC 6120 6.4, XEP-0178): our certificate is
/// the credential and our domain the authorization identity; after `<success/>` the
/// stream restarts on the same connection.
async fn external<B>(
    shared: &Shared<B>,
    opened: &mut Opened,
    peer: &Peer,
    deadline: Instant,
) -> Result<(), Failure> {
    use base64::Engine as _;
    let authzid = base64::engine::general_purpose::STANDARD.encode(peer.local.as_bytes());
    opened.conn.send(format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{authzid}</auth>"
    ));
    loop {
        match next_event(&mut opened.conn, deadline).await? {
            StreamEvent::Stanza(el) if el.is("success", ns::SASL) => break,
            StreamEvent::Stanza(el) if el.is("failure", ns::SASL) => {
                return Err(Failure::NotAuthorized(format!("{el}")));
            }
            StreamEvent::Stanza(el) if el.is("challenge", ns::SASL) => {
                // An empty challenge: the authzid again as the response.
                opened.conn.send(format!(
                    "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{authzid}</response>"
                ));
            }
            StreamEvent::Stanza(el) if el.is("error", ns::STREAM) => {
                return Err(Failure::NotAuthorized(format!("stream error: {el}")));
            }
            StreamEvent::Close => return Err(Failure::Closed),
            _ => {}
        }
    }
    // RFC 6120 6.4.6: restart; the new stream's features end negotiation.
    opened.conn.reader = hydrant_proto::StreamReader::new(shared.cfg.limits);
    opened
        .conn
        .send(crate::open::initiating_header(&peer.local, &peer.remote));
    let StreamEvent::Open(header) = next_event(&mut opened.conn, deadline).await? else {
        return Err(Failure::Protocol("no stream header after SASL".into()));
    };
    if let Some(id) = header.id() {
        id.clone_into(&mut opened.stream_id);
    }
    match next_event(&mut opened.conn, deadline).await? {
        StreamEvent::Stanza(el) if el.is("features", ns::STREAM) => {
            opened.features = el;
            // XEP-0170: a peer may offer compression only now, after SASL.
            if shared.cfg.compression {
                crate::open::compress(opened, &peer.local, &peer.remote, deadline).await?;
            }
            Ok(())
        }
        _ => Err(Failure::Protocol("no stream features after SASL".into())),
    }
}

/// Waits for the peer's `<db:result/>` answer (XEP-0220 2.1.2, step 4).
async fn dialback_answer(
    opened: &mut Opened,
    peer: &Peer,
    deadline: Instant,
) -> Result<(), Failure> {
    loop {
        match next_event(&mut opened.conn, deadline).await? {
            StreamEvent::Stanza(el) if el.ns() == ns::DIALBACK => match dialback::parse(&el) {
                Ok(dialback::DbElement::ResultResponse { from, to, kind })
                    if from == peer.remote && to == peer.local =>
                {
                    return match kind {
                        dialback::DbKind::Valid => Ok(()),
                        other => Err(Failure::NotAuthorized(format!(
                            "dialback answered {other:?}"
                        ))),
                    };
                }
                _ => {}
            },
            StreamEvent::Stanza(el) if el.is("error", ns::STREAM) => {
                return Err(Failure::NotAuthorized(format!("stream error: {el}")));
            }
            StreamEvent::Close => return Err(Failure::Closed),
            _ => {}
        }
    }
}

/// Runs an authenticated outbound stream until it ends: writes what is queued (moving
/// what waits behind the write queue in as it drains), reads what the peer sends on it
/// (nothing but errors and the close are expected), closes it after `idle_timeout`
/// without writes.
async fn stream<B>(shared: &Shared<B>, peer: &Peer, opened: Opened) {
    let mut conn = opened.conn;
    let outbox = conn.outbox.clone();
    let idle = shared.cfg.idle_timeout;
    let mut closing = false;
    loop {
        let idle_at = conn.last_write.max(conn.last_read) + idle;
        let next = peer.next_waiting().min(outbox.limit());
        let ev = tokio::select! {
            ev = std::future::poll_fn(|cx| conn.poll_next(cx)) => ev,
            () = peer.waiting.notified(), if next == 0 => continue,
            room = outbox.room(next), if next > 0 => {
                if room {
                    peer.refill();
                }
                continue;
            }
            () = sleep_until(idle_at), if !closing => {
                if conn.outbox.queued_bytes() == 0 {
                    closing = true;
                    close::queue_close(&conn.outbox);
                }
                continue;
            }
        };
        match ev {
            Io::Event(StreamEvent::Close) => {
                if !closing {
                    close::queue_close(&conn.outbox);
                }
                closing = true;
            }
            Io::Event(StreamEvent::Stanza(el)) if el.is("error", ns::STREAM) => {
                debug!(error = %el, "s2s stream error from the peer");
                return;
            }
            Io::Event(_) | Io::Rearm => {}
            Io::Closed | Io::Eof | Io::Failed(_) | Io::Malformed(_) | Io::Overflow => return,
        }
    }
}

/// Returns a stanza s2s could not deliver to the server.
pub(crate) fn bounce<B: S2sBackend>(backend: &B, frame: Frame, err: &StanzaError) {
    if let Some(el) = frame.stanza_element() {
        backend.undeliverable(el, err.clone());
    }
}
