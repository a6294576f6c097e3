//! A connection's outbound queue: [`Frame`]s, bounded in bytes.
//!
//! Producers (the router, a pubsub fan-out) push frames whose buffers are shared handles;
//! the connection's own task drains them with one vectored write. Nothing here blocks or
//! awaits: a full queue is reported to the producer at once (DESIGN.md: a publisher is never
//! slowed by a slow subscriber) and the stream kind's [`OverflowPolicy`] says what follows.
//!
//! It lives in `stream` because both `c2s` and `s2s` sessions use it and neither may
//! depend on the other, and the server's producers reach it without either. It needs no
//! runtime: waking goes through a plain `std::task::Waker`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use atomic_waker::AtomicWaker;
use bytes::Bytes;

use crate::frame::Frame;

/// What a full queue does to the stream it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// c2s: the client is a slow consumer. The push fails, the queue accepts nothing more
    /// and the connection ends its stream with `<policy-violation/>`; the client catches
    /// up from storage (README, slow consumers).
    Close,
    /// s2s: the peer server is behind. Only this frame is refused and handed back to the
    /// producer, which bounces it with `<resource-constraint/>` (RFC 6120 8.3.3.18); the
    /// stream and everything already queued stay.
    Refuse,
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError {
    /// The queue would exceed its byte limit; the connection is now marked overflowed
    /// ([`OverflowPolicy::Close`]).
    Overflow,
    /// The queue would exceed its byte limit; this frame alone is refused
    /// ([`OverflowPolicy::Refuse`]).
    Full,
    /// The connection is closing or closed; nothing more is accepted.
    Closed,
}

/// A refused push: why, and the frame, so the producer can bounce it.
#[derive(Debug)]
pub struct Refused {
    pub why: PushError,
    pub frame: Frame,
}

/// What the connection task got from [`Outbox::poll_drain`].
#[derive(Debug, PartialEq, Eq)]
pub enum Drained {
    /// Frames were moved into the caller's vector.
    Data,
    /// The queue is empty and the owner asked to close after the flush.
    Close,
    /// A producer overflowed the queue: apply the slow-consumer policy.
    Overflow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Overflowed,
    Closing,
}

#[derive(Debug)]
struct Inner {
    queue: VecDeque<Frame>,
    bytes: usize,
    state: State,
    /// Producers waiting for free space ([`Outbox::poll_room`]); usually empty.
    room_waiters: Vec<Waker>,
}

impl Inner {
    /// Everyone waiting for room, to be woken once the lock is released: the connection
    /// took buffers out, or the queue stopped accepting pushes.
    fn take_room_waiters(&mut self) -> Vec<Waker> {
        if self.room_waiters.is_empty() {
            Vec::new()
        } else {
            std::mem::take(&mut self.room_waiters)
        }
    }
}

fn wake_all(waiters: Vec<Waker>) {
    for w in waiters {
        w.wake();
    }
}

/// A bounded, byte-counted queue of outbound frames for one connection.
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    waker: AtomicWaker,
    limit: usize,
    policy: OverflowPolicy,
}

impl Outbox {
    /// A queue that refuses pushes once `limit` bytes are waiting and then closes its
    /// stream ([`OverflowPolicy::Close`], the c2s policy).
    pub fn new(limit: usize) -> Arc<Self> {
        Self::with_policy(limit, OverflowPolicy::Close)
    }

    /// A queue with the given overflow policy.
    pub fn with_policy(limit: usize, policy: OverflowPolicy) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                bytes: 0,
                state: State::Open,
                room_waiters: Vec::new(),
            }),
            waker: AtomicWaker::new(),
            limit,
            policy,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue inconsistent (every
        // mutation is a single push/pop plus a counter), so poisoning is ignored.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues one frame, or hands it back with the reason it was refused.
    pub fn push(&self, frame: impl Into<Frame>) -> Result<(), Refused> {
        let frame = frame.into();
        let len = frame.len();
        {
            let mut inner = self.lock();
            match inner.state {
                State::Open => {}
                State::Overflowed | State::Closing => {
                    return Err(Refused {
                        why: PushError::Closed,
                        frame,
                    });
                }
            }
            if inner.bytes + len > self.limit {
                if self.policy == OverflowPolicy::Refuse {
                    return Err(Refused {
                        why: PushError::Full,
                        frame,
                    });
                }
                inner.state = State::Overflowed;
                let waiters = inner.take_room_waiters();
                drop(inner);
                self.waker.wake();
                wake_all(waiters);
                return Err(Refused {
                    why: PushError::Overflow,
                    frame,
                });
            }
            inner.bytes += len;
            inner.queue.push_back(frame);
        }
        self.waker.wake();
        Ok(())
    }

    /// Queues `last` (a closing tag or stream error, beyond the limit if need be) and asks
    /// the connection to close once everything queued is written.
    pub fn close_after(&self, last: Option<Bytes>) {
        let waiters = {
            let mut inner = self.lock();
            if inner.state == State::Closing {
                return;
            }
            if let Some(b) = last {
                inner.bytes += b.len();
                inner.queue.push_back(Frame::Raw(b));
            }
            inner.state = State::Closing;
            inner.take_room_waiters()
        };
        self.waker.wake();
        wake_all(waiters);
    }

    /// Takes every queued frame out and stops accepting more: what a stream that ended
    /// had not written, for its owner to requeue or bounce (s2s).
    pub fn take_all(&self) -> Vec<Frame> {
        let (frames, waiters) = {
            let mut inner = self.lock();
            inner.state = State::Closing;
            inner.bytes = 0;
            let frames: Vec<Frame> = std::mem::take(&mut inner.queue).into();
            (frames, inner.take_room_waiters())
        };
        wake_all(waiters);
        frames
    }

    /// Moves every queued frame into `out` without changing the queue's state: the
    /// connection's own task writing them ahead of something it must order after them
    /// (XEP-0198 `<enabled/>`: stanzas queued before it are not counted).
    pub fn drain_now(&self, out: &mut Vec<Frame>) {
        let waiters = {
            let mut inner = self.lock();
            inner.bytes = 0;
            out.extend(inner.queue.drain(..));
            inner.take_room_waiters()
        };
        wake_all(waiters);
    }

    /// Ready once the queue accepts nothing more (overflowed or told to close): what a
    /// session waiting for its client to come back (XEP-0198 resumption) watches while
    /// nobody drains the queue. Registers `cx` like [`Outbox::poll_drain`] (the one task
    /// that owns the queue's consuming side).
    pub fn poll_stopped(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.waker.register(cx.waker());
        if self.lock().state == State::Open {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    }

    /// For a producer that would rather wait than overflow the queue (a backlog handed
    /// over at login, paced by what the client reads): `Ready(true)` once `need` more
    /// bytes fit under the limit, `Ready(false)` once the queue accepts nothing more.
    /// Otherwise `cx` is woken when the connection takes buffers out or the queue closes.
    /// A `need` above the limit never fits: check against [`Outbox::limit`] first.
    pub fn poll_room(&self, cx: &mut Context<'_>, need: usize) -> Poll<bool> {
        let mut inner = self.lock();
        if inner.state != State::Open {
            return Poll::Ready(false);
        }
        if inner.bytes + need <= self.limit {
            return Poll::Ready(true);
        }
        if !inner.room_waiters.iter().any(|w| w.will_wake(cx.waker())) {
            inner.room_waiters.push(cx.waker().clone());
        }
        Poll::Pending
    }

    /// [`Outbox::poll_room`] as a future.
    pub async fn room(&self, need: usize) -> bool {
        std::future::poll_fn(|cx| self.poll_room(cx, need)).await
    }

    /// True once the connection was told to close (by overflow or [`Outbox::close_after`]).
    pub fn is_closing(&self) -> bool {
        self.lock().state != State::Open
    }

    /// The byte limit this queue was created with.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes waiting to be written.
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Moves queued frames into `out`, together at most `max_parts` buffers (but at least
    /// one frame), or registers the task to be woken.
    ///
    /// On overflow, whatever is queued is discarded: the connection is about to be closed
    /// with a stream error and the client catches up from storage (DESIGN.md, slow
    /// consumers), so writing more to a peer that does not read would only waste memory.
    pub fn poll_drain(
        &self,
        cx: &mut Context<'_>,
        out: &mut Vec<Frame>,
        max_parts: usize,
    ) -> Poll<Drained> {
        self.waker.register(cx.waker());
        let mut inner = self.lock();
        if inner.state == State::Overflowed {
            inner.queue.clear();
            inner.bytes = 0;
            let waiters = inner.take_room_waiters();
            drop(inner);
            wake_all(waiters);
            return Poll::Ready(Drained::Overflow);
        }
        if inner.queue.is_empty() {
            return if inner.state == State::Closing {
                Poll::Ready(Drained::Close)
            } else {
                Poll::Pending
            };
        }
        let mut parts = 0;
        let mut taken = 0;
        let first = out.len();
        while let Some(f) = inner.queue.front() {
            parts += f.part_count();
            if parts > max_parts && out.len() > first {
                break;
            }
            let f = inner.queue.pop_front().expect("front exists");
            taken += f.len();
            out.push(f);
        }
        inner.bytes = inner.bytes.saturating_sub(taken);
        if inner.queue.capacity() > 64 && inner.queue.is_empty() {
            // An idle connection should not keep a burst's worth of slots.
            inner.queue = VecDeque::new();
        }
        let waiters = inner.take_room_waiters();
        drop(inner);
        wake_all(waiters);
        Poll::Ready(Drained::Data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn push_and_drain_in_order() {
        let ob = Outbox::new(100);
        ob.push(Bytes::from_static(b"ab")).unwrap();
        ob.push(Bytes::from_static(b"cd")).unwrap();
        assert_eq!(ob.queued_bytes(), 4);
        let mut out = Vec::new();
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut out, 16),
            Poll::Ready(Drained::Data)
        );
        let all: Vec<u8> = out.iter().flat_map(Frame::to_vec).collect();
        assert_eq!(all, b"abcd");
        assert_eq!(ob.queued_bytes(), 0);
        assert_eq!(ob.poll_drain(&mut cx(), &mut Vec::new(), 16), Poll::Pending);
    }

    #[test]
    fn overflow_refuses_and_reports_once_drained() {
        let ob = Outbox::new(5);
        ob.push(Bytes::from_static(b"abc")).unwrap();
        assert_eq!(
            ob.push(Bytes::from_static(b"def")).unwrap_err().why,
            PushError::Overflow
        );
        assert_eq!(
            ob.push(Bytes::from_static(b"g")).unwrap_err().why,
            PushError::Closed
        );
        assert!(ob.is_closing());
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut Vec::new(), 16),
            Poll::Ready(Drained::Overflow)
        );
    }

    /// Counts its wakes.
    struct Count(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Count>, Waker) {
        let c = Arc::new(Count(std::sync::atomic::AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn wakes(c: &Count) -> usize {
        c.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn room_waiters_are_woken_by_a_drain_and_by_closing() {
        let ob = Outbox::new(10);
        ob.push(Bytes::from_static(b"abcdefgh")).unwrap();
        assert_eq!(ob.poll_room(&mut cx(), 2), Poll::Ready(true));
        let (count, waker) = counting();
        assert_eq!(
            ob.poll_room(&mut Context::from_waker(&waker), 3),
            Poll::Pending
        );
        // Registering twice keeps one entry.
        assert_eq!(
            ob.poll_room(&mut Context::from_waker(&waker), 3),
            Poll::Pending
        );
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut Vec::new(), 16),
            Poll::Ready(Drained::Data)
        );
        assert_eq!(wakes(&count), 1);
        assert_eq!(ob.poll_room(&mut cx(), 3), Poll::Ready(true));

        ob.push(Bytes::from_static(b"abcdefgh")).unwrap();
        let (count, waker) = counting();
        assert_eq!(
            ob.poll_room(&mut Context::from_waker(&waker), 3),
            Poll::Pending
        );
        ob.close_after(None);
        assert_eq!(wakes(&count), 1);
        assert_eq!(ob.poll_room(&mut cx(), 0), Poll::Ready(false));
    }

    #[test]
    fn close_after_flushes_then_closes() {
        let ob = Outbox::new(5);
        ob.push(Bytes::from_static(b"abc")).unwrap();
        ob.close_after(Some(Bytes::from_static(b"</stream:stream>")));
        assert_eq!(
            ob.push(Bytes::from_static(b"x")).unwrap_err().why,
            PushError::Closed
        );
        let mut out = Vec::new();
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut out, 16),
            Poll::Ready(Drained::Data)
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut Vec::new(), 16),
            Poll::Ready(Drained::Close)
        );
    }

    #[test]
    fn the_refuse_policy_hands_back_only_the_frame_that_does_not_fit() {
        let ob = Outbox::with_policy(5, OverflowPolicy::Refuse);
        ob.push(Bytes::from_static(b"abc")).unwrap();
        let r = ob.push(Bytes::from_static(b"def")).unwrap_err();
        assert_eq!(r.why, PushError::Full);
        assert_eq!(r.frame.to_vec(), b"def");
        assert!(!ob.is_closing(), "the stream stays");
        ob.push(Bytes::from_static(b"gh")).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut out, 16),
            Poll::Ready(Drained::Data)
        );
        let all: Vec<u8> = out.iter().flat_map(Frame::to_vec).collect();
        assert_eq!(all, b"abcgh");
    }

    #[test]
    fn a_drain_takes_whole_frames_up_to_the_part_budget() {
        use crate::frame::Shared;
        let ob = Outbox::new(1000);
        let head = Shared::new(Bytes::from_static(b"<a to='"));
        let tail = Shared::new(Bytes::from_static(b"'/>"));
        for _ in 0..3 {
            ob.push(Frame::Addressed {
                head: head.clone(),
                to: Bytes::from_static(b"x"),
                tail: tail.clone(),
            })
            .unwrap();
        }
        let mut out = Vec::new();
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut out, 7),
            Poll::Ready(Drained::Data)
        );
        assert_eq!(out.len(), 2, "two frames of three parts fit in seven");
        assert_eq!(ob.queued_bytes(), 11);
        // A frame larger than the budget still goes alone.
        let mut out = Vec::new();
        assert_eq!(
            ob.poll_drain(&mut cx(), &mut out, 1),
            Poll::Ready(Drained::Data)
        );
        assert_eq!(out.len(), 1);
    }
}
