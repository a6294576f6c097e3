//! Closing a stream (RFC 6120 4.4, 4.9): what is written, how long we wait for the peer,
//! and the lingering close after our side is shut down.
//!
//! The bytes go through the connection's outbox with `close_after`, so everything queued
//! before (a `<failure/>`, a final reply) is written first; the connection reports
//! [`Io::Closed`](crate::Io::Closed) once the write side is shut down.

use std::time::Duration;

use bytes::Bytes;
use hydrant_proto::StreamError;
use tokio::time::Instant;

use crate::outbox::Outbox;

/// How long we wait for the peer's `</stream:stream>` after closing our side (RFC 6120 4.4).
pub const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// The closing tag of a stream.
pub const STREAM_CLOSE: &[u8] = b"</stream:stream>";

/// Queues a stream error and our closing tag as the last bytes of the stream (RFC 6120
/// 4.9.1.1: the error, then the close; the caller has sent its header first).
pub fn queue_error_close(outbox: &Outbox, e: &StreamError) {
    let mut bytes = e.to_bytes();
    bytes.extend_from_slice(STREAM_CLOSE);
    outbox.close_after(Some(bytes.into()));
}

/// Queues our closing tag as the last bytes of the stream (RFC 6120 4.4).
pub fn queue_close(outbox: &Outbox) {
    outbox.close_after(Some(Bytes::from_static(STREAM_CLOSE)));
}

/// Where a stream is in its close: open, closed by us and waiting for the peer's close,
/// or lingering (written and shut down, discarding input until the peer's EOF).
#[derive(Debug, Default)]
pub struct Closing {
    since: Option<Instant>,
    /// Our side is closed and written; input is read and discarded until this instant
    /// or the peer's EOF (lingering close).
    lingering_until: Option<Instant>,
}

impl Closing {
    /// We queued our close (with or without an error).
    pub fn start(&mut self, now: Instant) {
        if self.since.is_none() {
            self.since = Some(now);
        }
    }

    pub fn is_closing(&self) -> bool {
        self.since.is_some()
    }

    /// The instant the close ends the task at the latest; `None` while the stream is open.
    pub fn deadline(&self) -> Option<Instant> {
        if let Some(until) = self.lingering_until {
            return Some(until);
        }
        self.since.map(|since| since + CLOSE_GRACE)
    }

    /// The connection wrote our close and shut down its write side
    /// ([`Io::Closed`](crate::Io::Closed)). Returns true when the task should end now;
    /// otherwise the stream lingers for `linger`.
    ///
    /// Lingering close: a peer still sending would get a TCP reset if we closed now, and a
    /// reset can destroy the error before the peer reads it. Read and discard until the
    /// peer's EOF (the usual end) or the linger time.
    pub fn on_closed(&mut self, linger: Duration) -> bool {
        if self.lingering_until.is_some() || linger.is_zero() {
            return true;
        }
        self.lingering_until = Some(Instant::now() + linger);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_then_linger_then_done() {
        let mut c = Closing::default();
        assert!(!c.is_closing() && c.deadline().is_none());
        let t0 = Instant::now();
        c.start(t0);
        c.start(t0 + Duration::from_secs(1));
        assert_eq!(c.deadline(), Some(t0 + CLOSE_GRACE));
        assert!(!c.on_closed(Duration::from_secs(2)));
        let lingering = c.deadline().unwrap();
        assert!(lingering >= t0 + Duration::from_secs(2) && lingering < t0 + CLOSE_GRACE);
        // The second report (or no linger at all) ends the task.
        assert!(c.on_closed(Duration::from_secs(2)));
        assert!(Closing::default().on_closed(Duration::ZERO));
    }

    #[test]
    fn error_close_is_the_error_then_the_closing_tag() {
        use hydrant_proto::StreamErrorCondition as Cond;
        let outbox = Outbox::new(1 << 16);
        queue_error_close(&outbox, &StreamError::new(Cond::PolicyViolation));
        let mut got = Vec::new();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let _ = outbox.poll_drain(&mut cx, &mut got, 8);
        let bytes: Vec<u8> = got.iter().flat_map(crate::Frame::to_vec).collect();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.contains("policy-violation"), "{text}");
        assert!(text.ends_with("</stream:stream>"), "{text}");
    }
}
