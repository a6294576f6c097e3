//! XEP-0198 stream management: the counters and the unacknowledged stanzas of one stream,
//! sans IO.
//!
//! The connection ([`crate::Conn`]) records every stanza frame as it takes it from the
//! outbox to write it, so what is counted is exactly what goes on the wire, in order; the
//! stream kind's policy (enable, resume, how long a broken stream may wait for a resume)
//! belongs to the caller.
//!
//! Frames are kept as they were queued: shared `Bytes`/`Arc` parts, so a notification
//! held for a thousand subscribers is one copy of its payload plus a thousand addresses.

use std::collections::VecDeque;

use bytes::Bytes;

use crate::frame::Frame;

/// XEP-0198's namespace (version 3).
pub const NS: &str = "urn:xmpp:sm:3";

/// When to ask the peer for an acknowledgement, and how much may wait for one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmLimits {
    /// Bytes of sent, unacknowledged stanzas held for a resend. Past it the stream is a
    /// slow consumer: its connection's overflow policy applies.
    pub max_unacked_bytes: usize,
    /// An `<r/>` goes out after this many stanzas without one.
    pub request_every: u32,
}

/// The peer's `h` acknowledged more stanzas than were sent (XEP-0198 4: the stream
/// ends with `<undefined-condition/>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandledTooHigh {
    pub h: u32,
    pub sent: u32,
}

/// One stream's stream-management state.
#[derive(Debug)]
pub struct Sm {
    limits: SmLimits,
    /// Stanzas received from the peer and handled (the `h` we report).
    pub inbound: u32,
    /// Stanzas written (or being written) to the peer since enabling, modulo 2^32.
    sent: u32,
    /// Sent stanzas the peer has not acknowledged yet, oldest first: `sent - acked` of them.
    unacked: VecDeque<Frame>,
    unacked_bytes: usize,
    /// Stanzas recorded since the last `<r/>`.
    since_request: u32,
}

impl Sm {
    pub fn new(limits: SmLimits) -> Self {
        Sm {
            limits,
            inbound: 0,
            sent: 0,
            unacked: VecDeque::new(),
            unacked_bytes: 0,
            since_request: 0,
        }
    }

    /// A frame is being written: a stanza is counted and kept until acknowledged;
    /// stream-level bytes (negotiation, `<r/>`, `<a/>`, whitespace) are not stanzas
    /// (XEP-0198 4). Returns true when an `<r/>` should follow.
    pub fn record(&mut self, f: &Frame) -> bool {
        if f.stanza_kind().is_none() {
            return false;
        }
        self.sent = self.sent.wrapping_add(1);
        self.unacked_bytes += f.len();
        self.unacked.push_back(f.clone());
        self.since_request += 1;
        self.since_request >= self.limits.request_every
    }

    /// More is held for a resend than the limit allows.
    pub fn over_limit(&self) -> bool {
        self.unacked_bytes > self.limits.max_unacked_bytes
    }

    /// Stanzas recorded since the last `<r/>` (a quiet stream asks for the rest later).
    pub fn unrequested(&self) -> u32 {
        self.since_request
    }

    /// The `<r/>` element, and the count restarts.
    pub fn request(&mut self) -> Bytes {
        self.since_request = 0;
        Bytes::from_static(b"<r xmlns='urn:xmpp:sm:3'/>")
    }

    /// The peer handled `h` stanzas in all: those are dropped from the resend queue.
    /// An `h` below an earlier one is ignored (a reordered or repeated `<a/>` says
    /// nothing new); one above what was sent is a protocol error.
    pub fn ack(&mut self, h: u32) -> Result<(), HandledTooHigh> {
        let acked = self.sent.wrapping_sub(self.unacked.len() as u32);
        let n = h.wrapping_sub(acked);
        if n as usize > self.unacked.len() {
            // Either behind us (an old h, wrapped) or beyond what was sent.
            if acked.wrapping_sub(h) <= u32::MAX / 2 {
                return Ok(());
            }
            return Err(HandledTooHigh { h, sent: self.sent });
        }
        for f in self.unacked.drain(..n as usize) {
            self.unacked_bytes -= f.len();
        }
        Ok(())
    }

    /// The unacknowledged stanzas, oldest first, to write again on a resumed stream.
    /// They stay unacknowledged until the peer says otherwise.
    pub fn unacked(&self) -> impl Iterator<Item = &Frame> {
        self.unacked.iter()
    }

    /// How many stanzas wait for an acknowledgement.
    pub fn unacked_len(&self) -> usize {
        self.unacked.len()
    }

    /// The unacknowledged stanzas, taken out (the session ended: the caller bounces or
    /// stores them).
    pub fn take_unacked(&mut self) -> Vec<Frame> {
        self.unacked_bytes = 0;
        std::mem::take(&mut self.unacked).into()
    }

    /// `<a h='..'/>`: what we handled.
    pub fn answer(&self) -> Bytes {
        Bytes::from(format!("<a xmlns='{NS}' h='{}'/>", self.inbound))
    }

    /// A stanza from the peer was handled.
    pub fn handled(&mut self) {
        self.inbound = self.inbound.wrapping_add(1);
    }
}

/// Parses an `h` attribute (xs:unsignedInt).
pub fn parse_h(v: Option<&str>) -> Option<u32> {
    v?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::StanzaKind;

    fn limits() -> SmLimits {
        SmLimits {
            max_unacked_bytes: 100,
            request_every: 3,
        }
    }

    fn stanza(n: u32) -> Frame {
        Frame::Stanza(
            StanzaKind::Message,
            Bytes::from(format!("<message id='{n}'/>")),
        )
    }

    #[test]
    fn only_stanzas_are_counted_and_kept() {
        let mut sm = Sm::new(limits());
        assert!(!sm.record(&Frame::Raw(Bytes::from_static(b"<a/>"))));
        assert!(!sm.record(&stanza(1)));
        assert!(!sm.record(&stanza(2)));
        assert!(sm.record(&stanza(3)), "the third asks for an ack");
        assert_eq!(sm.unacked_len(), 3);
        sm.request();
        assert_eq!(sm.unrequested(), 0);
        sm.ack(2).unwrap();
        let left: Vec<_> = sm.unacked().map(Frame::to_vec).collect();
        assert_eq!(left, vec![b"<message id='3'/>".to_vec()]);
        // An older h changes nothing; a repeated one neither.
        sm.ack(1).unwrap();
        sm.ack(2).unwrap();
        assert_eq!(sm.unacked_len(), 1);
        assert_eq!(sm.ack(4), Err(HandledTooHigh { h: 4, sent: 3 }));
        sm.ack(3).unwrap();
        assert_eq!(sm.unacked_len(), 0);
    }

    #[test]
    fn counters_wrap_at_two_to_the_32() {
        let mut sm = Sm::new(limits());
        sm.sent = u32::MAX - 1;
        sm.record(&stanza(1)); // sent = MAX
        sm.record(&stanza(2)); // sent = 0
        sm.record(&stanza(3)); // sent = 1
        assert_eq!(sm.sent, 1);
        sm.ack(u32::MAX).unwrap();
        assert_eq!(sm.unacked_len(), 2);
        sm.ack(1).unwrap();
        assert_eq!(sm.unacked_len(), 0);
        assert!(sm.ack(2).is_err());
        sm.inbound = u32::MAX;
        sm.handled();
        assert_eq!(&sm.answer()[..], b"<a xmlns='urn:xmpp:sm:3' h='0'/>");
    }

    #[test]
    fn the_resend_queue_is_bounded_in_bytes() {
        let mut sm = Sm::new(limits());
        for i in 0..5 {
            sm.record(&stanza(i));
            assert!(!sm.over_limit());
        }
        sm.record(&stanza(6));
        assert!(sm.over_limit(), "six 19-byte stanzas exceed 100 bytes");
        sm.ack(6).unwrap();
        assert!(!sm.over_limit());
        assert_eq!(sm.take_unacked().len(), 0);
    }

    #[test]
    fn h_parses_as_an_unsigned_int() {
        assert_eq!(parse_h(Some("42")), Some(42));
        assert_eq!(parse_h(Some("4294967295")), Some(u32::MAX));
        assert_eq!(parse_h(Some("4294967296")), None);
        assert_eq!(parse_h(Some("-1")), None);
        assert_eq!(parse_h(None), None);
    }
}
