//! One connection's I/O: bytes from the socket into the stream reader, queued frames from
//! the outbox onto the socket with vectored writes (paced, if the stream has a [`Pace`]).
//!
//! Memory is what limits how many idle clients one machine holds, so an idle `Conn` owns no
//! buffers: reads go through a stack buffer inside `poll_next` (never held across an
//! `.await`), the reader keeps only unconsumed bytes, and the outbox is empty.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use crate::csi::{CsiLimits, Held};
use crate::frame::Frame;
use crate::outbox::{Drained, Outbox};
use crate::pace::Pace;
use crate::sm::Sm;
use bytes::Bytes;
use hydrant_proto::{StreamError, StreamEvent, StreamReader};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Read size per syscall: one TLS record's worth of plaintext.
const READ_CHUNK: usize = 8192;
/// Buffers handed to one vectored write.
const MAX_IOV: usize = 64;

/// What the connection has for its session.
#[derive(Debug)]
pub enum Io {
    Event(StreamEvent),
    /// The peer sent something the reader refused.
    Malformed(StreamError),
    /// The peer closed the TCP connection.
    Eof,
    /// A producer overflowed the outbound queue.
    Overflow,
    /// A timer of the stream changed without any I/O event: stream management has
    /// stanzas not yet asked about, or an inactive client's first held frame starts its
    /// batch's age (only on streams with XEP-0198 or XEP-0352 on). The caller recomputes
    /// its deadline and polls again.
    Rearm,
    /// Everything queued was written after `close_after`; the socket's write side is
    /// shut down. Reported once; afterwards input is read and discarded (lingering
    /// close) until `Eof`.
    Closed,
    Failed(io::Error),
}

pub struct Conn<S> {
    io: S,
    pub reader: StreamReader,
    pub outbox: Arc<Outbox>,
    pending: Vec<Frame>,
    /// Bytes of `pending[0]` already written.
    offset: usize,
    /// How fast this stream may write; `None`: as fast as the socket takes it.
    pace: Option<Box<dyn Pace>>,
    needs_flush: bool,
    maybe_event: bool,
    /// The reader failed: its error was reported once; later input is discarded (the
    /// stream is being closed) but still read, to notice the peer's EOF.
    broken: bool,
    /// Our write side is shut down (after `Io::Closed`): only reads remain.
    write_closed: bool,
    pub last_read: Instant,
    pub last_write: Instant,
    /// XEP-0138 zlib in both directions, once negotiated (boxed: most streams never
    /// compress, and an idle connection's size is what limits how many fit).
    zlib: Option<Box<Zlib>>,
    /// XEP-0198 counters and the stanzas awaiting the peer's acknowledgement, once the
    /// stream enabled it (boxed: an idle connection's size is what limits how many fit).
    sm: Option<Box<Sm>>,
    /// The resend queue went past its limit and that was reported once.
    sm_overflowed: bool,
    /// XEP-0352: while the client is inactive, what can wait (boxed, as above).
    csi: Option<Box<Held>>,
    /// A timer changed: report [`Io::Rearm`] before waiting.
    rearm: bool,
}

/// A compressed stream's state: the running checksum of what was written, and the
/// peer's inflater.
#[derive(Debug, Default)]
struct Zlib {
    out: crate::zlib::Deflater,
    inflate: crate::zlib::Inflater,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    pub fn new(io: S, reader: StreamReader, outbox: Arc<Outbox>) -> Self {
        let now = Instant::now();
        Conn {
            io,
            reader,
            outbox,
            pending: Vec::new(),
            offset: 0,
            pace: None,
            needs_flush: false,
            maybe_event: true,
            broken: false,
            write_closed: false,
            last_read: now,
            last_write: now,
            zlib: None,
            sm: None,
            sm_overflowed: false,
            csi: None,
            rearm: false,
        }
    }

    /// Turns XEP-0198 counting on: `enabled` (the `<enabled/>` element) is written after
    /// everything queued so far and before anything queued later, and only stanzas after
    /// it are counted, as the peer counts them (XEP-0198 4).
    pub fn enable_sm(&mut self, sm: Sm, enabled: Bytes) {
        let mut frames = Vec::new();
        self.outbox.drain_now(&mut frames);
        frames.push(Frame::Raw(enabled));
        self.stage(frames);
        self.sm = Some(Box::new(sm));
    }

    /// Continues a session on this connection (XEP-0198 5): what this stream had queued,
    /// then `resumed` (the `<resumed/>` element), then the session's unacknowledged
    /// stanzas again, then whatever the session's `outbox` collected meanwhile.
    ///
    /// `held`: what the old connection held for an inactive client and never wrote; it
    /// is newer than the unacknowledged stanzas and goes after them, counted now.
    pub fn resume(&mut self, outbox: Arc<Outbox>, sm: Box<Sm>, held: Vec<Frame>, resumed: Bytes) {
        let mut frames = Vec::new();
        self.outbox.drain_now(&mut frames);
        frames.push(Frame::Raw(resumed));
        frames.extend(sm.unacked().cloned());
        self.stage(frames);
        self.outbox = outbox;
        self.sm = Some(sm);
        self.sm_overflowed = false;
        self.release(held);
    }

    /// The stream-management state, taken away (a session moving to another connection,
    /// or ending).
    pub fn take_sm(&mut self) -> Option<Box<Sm>> {
        self.sm.take()
    }

    /// Puts back state taken with [`Conn::take_sm`] (a handover that did not happen).
    pub fn restore_sm(&mut self, sm: Box<Sm>) {
        self.sm = Some(sm);
    }

    /// Stanzas written since the last `<r/>` (0 without stream management).
    pub fn sm_unrequested(&self) -> u32 {
        self.sm.as_ref().map_or(0, |sm| sm.unrequested())
    }

    /// The stream-management state, if enabled.
    pub fn sm_mut(&mut self) -> Option<&mut Sm> {
        self.sm.as_deref_mut()
    }

    /// Queues an `<r/>` now (a quiet stream with stanzas not yet asked about).
    pub fn request_ack(&mut self) {
        if let Some(sm) = self.sm.as_mut() {
            let _ = self.outbox.push(sm.request());
        }
    }

    /// Frames taken from the queue go to be written: counted for stream management as
    /// they go on the wire (so the count is the peer's), compressed as the stream is.
    /// True when the resend queue just went past its limit (reported once).
    fn release(&mut self, frames: Vec<Frame>) -> bool {
        let mut frames = frames;
        let mut sm_overflow = false;
        if let Some(sm) = self.sm.as_mut() {
            let before = sm.unrequested();
            let mut ask = false;
            for f in &frames {
                ask |= sm.record(f);
            }
            // The quiet-stream <r/> timer starts with the first stanza not asked about.
            self.rearm |= before == 0 && sm.unrequested() > 0;
            if ask {
                frames.push(Frame::Raw(sm.request()));
            }
            // A client that does not acknowledge is a slow consumer.
            sm_overflow = sm.over_limit() && !self.sm_overflowed;
            self.sm_overflowed |= sm_overflow;
        }
        self.stage(frames);
        sm_overflow
    }

    /// XEP-0352: the client is inactive; what can wait is held and written in batches.
    pub fn set_inactive(&mut self, limits: CsiLimits) {
        if self.csi.is_none() {
            self.csi = Some(Box::new(Held::new(limits)));
        }
    }

    /// XEP-0352: the client is active again; what was held goes out now.
    pub fn set_active(&mut self) {
        if let Some(mut held) = self.csi.take() {
            let frames = held.take();
            self.release(frames);
        }
    }

    /// When the held batch is due by age (an inactive client with something held).
    pub fn csi_due(&self) -> Option<Instant> {
        self.csi.as_ref().and_then(|h| h.due())
    }

    /// Writes the held batch now (its age limit passed).
    pub fn release_held(&mut self) {
        if let Some(held) = self.csi.as_mut() {
            let frames = held.take();
            self.release(frames);
        }
    }

    /// What an inactive client's stream held and never wrote (the session moves to
    /// another connection, or ends).
    pub fn take_held(&mut self) -> Vec<Frame> {
        self.csi.take().map(|mut h| h.take()).unwrap_or_default()
    }

    /// Frames a failed handover gave back: written next, in order.
    pub fn restore_held(&mut self, frames: Vec<Frame>) {
        self.release(frames);
    }

    /// Frames to write ahead of the outbox, compressed as the stream is.
    fn stage(&mut self, frames: Vec<Frame>) {
        match self.zlib.as_mut() {
            Some(z) => {
                for f in &frames {
                    z.out.encode(f, &mut self.pending);
                }
            }
            None => self.pending.extend(frames),
        }
    }

    /// Compresses this stream from now on, both ways (XEP-0138, after `<compressed/>`
    /// was written and flushed): what is read next is inflated, what is written next is
    /// the new zlib stream. Input already read belongs to the old stream and is dropped
    /// with the caller's reader restart.
    pub fn start_compression(&mut self) {
        self.zlib = Some(Box::default());
    }

    /// Whether XEP-0138 compression is on.
    pub fn is_compressed(&self) -> bool {
        self.zlib.is_some()
    }

    /// Paces this stream's writes (s2s peers that rate-limit what they read).
    pub fn set_pace(&mut self, pace: Option<Box<dyn Pace>>) {
        self.pace = pace;
    }

    /// Queues bytes for the peer (negotiation traffic; routed stanzas come via the outbox
    /// from elsewhere). A full queue here means the peer stopped reading during
    /// negotiation; the next `poll_next` reports the overflow.
    pub fn send(&self, bytes: impl Into<Bytes>) {
        let _ = self.outbox.push(bytes.into());
    }

    /// The next thing that happened on this connection. Cancel-safe: all state is in `self`.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Io> {
        loop {
            if self.maybe_event {
                match self.reader.next_event() {
                    Ok(Some(ev)) => return Poll::Ready(Io::Event(ev)),
                    Ok(None) => {
                        self.maybe_event = false;
                        // A compressed stream: the next step of what was read, before
                        // reading more (and only after the reader took what the last step
                        // made, so the stanza limit stops a zip bomb early).
                        if let Some(z) = self.zlib.as_mut().filter(|z| z.inflate.has_more()) {
                            match z.inflate.step(&mut self.reader) {
                                Ok(progress) => self.maybe_event = progress,
                                Err(e) => {
                                    self.broken = true;
                                    return Poll::Ready(Io::Malformed(e));
                                }
                            }
                            if self.maybe_event {
                                continue;
                            }
                        }
                    }
                    Err(e) => {
                        // Report once: a reader that failed keeps failing, and asking it
                        // again on every poll would spin this task forever.
                        self.maybe_event = false;
                        self.broken = true;
                        return Poll::Ready(Io::Malformed(e));
                    }
                }
            }
            let written = if self.write_closed {
                Poll::Pending
            } else {
                self.poll_write_out(cx)
            };
            match written {
                Poll::Ready(Ok(WriteState::Closed)) => {
                    self.write_closed = true;
                    // Whatever arrives from now on is discarded: the stream is over.
                    self.broken = true;
                    self.maybe_event = false;
                    return Poll::Ready(Io::Closed);
                }
                Poll::Ready(Ok(WriteState::Overflow)) => return Poll::Ready(Io::Overflow),
                Poll::Ready(Err(e)) => return Poll::Ready(Io::Failed(e)),
                Poll::Pending => {}
            }
            if std::mem::take(&mut self.rearm) {
                return Poll::Ready(Io::Rearm);
            }
            let mut stack = [0u8; READ_CHUNK];
            let mut buf = ReadBuf::new(&mut stack);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Io::Failed(e)),
                Poll::Ready(Ok(())) => {
                    if buf.filled().is_empty() {
                        return Poll::Ready(Io::Eof);
                    }
                    self.last_read = Instant::now();
                    if self.broken {
                        continue;
                    }
                    match self.zlib.as_mut() {
                        // Inflated a step at a time, between events (below).
                        Some(z) => z.inflate.push(buf.filled()),
                        None => {
                            if let Err(e) = self.reader.feed(buf.filled()) {
                                self.broken = true;
                                return Poll::Ready(Io::Malformed(e));
                            }
                        }
                    }
                    self.maybe_event = true;
                }
            }
        }
    }

    /// Writes until the outbox is empty (Pending: waiting for the socket or for more data).
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<WriteState>> {
        loop {
            if self.pending.is_empty() {
                if self.pending.capacity() > MAX_IOV {
                    self.pending = Vec::new();
                }
                match self.outbox.poll_drain(cx, &mut self.pending, MAX_IOV) {
                    Poll::Ready(Drained::Data) => {
                        let mut drained = std::mem::take(&mut self.pending);
                        if let Some(held) = self.csi.as_mut() {
                            let was_empty = held.is_empty();
                            drained = held.filter(drained, Instant::now());
                            self.rearm |= was_empty && !held.is_empty();
                        }
                        if self.release(drained) {
                            // Reported once; what was taken is still written.
                            return Poll::Ready(Ok(WriteState::Overflow));
                        }
                    }
                    Poll::Ready(Drained::Overflow) => return Poll::Ready(Ok(WriteState::Overflow)),
                    Poll::Ready(Drained::Close) => {
                        // An inactive client's batch goes before the end of the stream.
                        if let Some(held) = self.csi.as_mut().filter(|h| !h.is_empty()) {
                            let frames = held.take();
                            self.release(frames);
                            continue;
                        }
                        // A compressed stream ends its zlib stream first (final block and
                        // checksum), then the socket.
                        if let Some(end) = self.zlib.as_mut().and_then(|z| z.out.finish()) {
                            self.pending.push(Frame::Raw(end));
                            continue;
                        }
                        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                        // A failed shutdown only means the peer is gone already.
                        let _ = ready!(Pin::new(&mut self.io).poll_shutdown(cx));
                        return Poll::Ready(Ok(WriteState::Closed));
                    }
                    Poll::Pending => {
                        if self.needs_flush {
                            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                            self.needs_flush = false;
                        }
                        return Poll::Pending;
                    }
                }
            }
            let mut allowance = match self.pace.as_mut() {
                None => usize::MAX,
                Some(p) => match p.poll_allowance(cx) {
                    Poll::Ready(n) => n,
                    Poll::Pending => {
                        if self.needs_flush {
                            ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                            self.needs_flush = false;
                        }
                        return Poll::Pending;
                    }
                },
            };
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            let mut skip = self.offset;
            'frames: for f in &self.pending {
                for i in 0..f.part_count() {
                    let part = f.part(i);
                    if skip >= part.len() {
                        skip -= part.len();
                        continue;
                    }
                    let rest = &part[skip..];
                    skip = 0;
                    let rest = &rest[..rest.len().min(allowance)];
                    allowance -= rest.len();
                    slices[n] = IoSlice::new(rest);
                    n += 1;
                    if n == MAX_IOV || allowance == 0 {
                        break 'frames;
                    }
                }
            }
            if n == 0 {
                // Only empty frames were left: nothing to write for them.
                self.pending.clear();
                self.offset = 0;
                continue;
            }
            let written = ready!(Pin::new(&mut self.io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            if let Some(p) = self.pace.as_mut() {
                p.wrote(written);
            }
            self.needs_flush = true;
            self.last_write = Instant::now();
            self.advance(written);
        }
    }

    fn advance(&mut self, mut written: usize) {
        let mut done = 0;
        for f in &self.pending {
            let left = f.len() - if done == 0 { self.offset } else { 0 };
            if written >= left {
                written -= left;
                done += 1;
                self.offset = 0;
            } else {
                self.offset += written;
                break;
            }
        }
        self.pending.drain(..done);
    }

    /// Waits until everything queued so far is written and flushed.
    pub async fn flush(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| {
            loop {
                if self.pending.is_empty() && self.outbox.queued_bytes() == 0 {
                    if self.needs_flush {
                        ready!(Pin::new(&mut self.io).poll_flush(cx))?;
                        self.needs_flush = false;
                    }
                    return Poll::Ready(Ok(()));
                }
                match self.poll_write_out(cx) {
                    Poll::Ready(Ok(WriteState::Closed | WriteState::Overflow)) => {
                        return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    // Pending with nothing left means all was written: loop to flush.
                    // Otherwise the socket is full and will wake us.
                    Poll::Pending => {
                        if !self.pending.is_empty() || self.outbox.queued_bytes() != 0 {
                            return Poll::Pending;
                        }
                    }
                }
            }
        })
        .await
    }

    /// The socket, for the STARTTLS upgrade (call after `flush`).
    pub fn into_io(self) -> S {
        self.io
    }
}

enum WriteState {
    Closed,
    Overflow,
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydrant_proto::Limits;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn vectored_writes_deliver_every_byte_in_order() {
        let (a, mut b) = tokio::io::duplex(64);
        let outbox = Outbox::new(1 << 20);
        let mut conn = Conn::new(a, StreamReader::new(Limits::default()), outbox.clone());
        let mut expected = Vec::new();
        for i in 0..500u32 {
            let s = format!("<m n='{i}'/>");
            expected.extend_from_slice(s.as_bytes());
            outbox.push(Bytes::from(s)).unwrap();
        }
        outbox.close_after(None);
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        let ev = std::future::poll_fn(|cx| conn.poll_next(cx)).await;
        assert!(matches!(ev, Io::Closed), "{ev:?}");
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test(start_paused = true)]
    async fn a_paced_stream_writes_frames_whole_at_its_rate() {
        use crate::frame::Shared;
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let outbox = Outbox::new(1 << 20);
        let mut conn = Conn::new(a, StreamReader::new(Limits::default()), outbox.clone());
        conn.set_pace(Some(Box::new(crate::pace::TokenBucket::new(1000, 1000))));
        let head = Shared::new(Bytes::from(vec![b'<'; 40]));
        let tail = Shared::new(Bytes::from(vec![b'>'; 50]));
        let mut expected = Vec::new();
        for i in 0..30u32 {
            let f = Frame::Addressed {
                head: head.clone(),
                to: Bytes::from(format!("{i:010}")),
                tail: tail.clone(),
            };
            expected.extend(f.to_vec());
            outbox.push(f).unwrap();
        }
        outbox.close_after(None);
        let start = Instant::now();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        let ev = std::future::poll_fn(|cx| conn.poll_next(cx)).await;
        assert!(matches!(ev, Io::Closed), "{ev:?}");
        // 3,000 bytes: a 1,000-byte burst, then 2,000 at 1,000 bytes/s.
        let took = Instant::now() - start;
        assert!(
            took >= std::time::Duration::from_secs(2)
                && took < std::time::Duration::from_millis(2100),
            "{took:?}"
        );
        assert_eq!(reader.await.unwrap(), expected);
    }
}
