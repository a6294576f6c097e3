//! XEP-0352 client state indication: while a client says it is inactive, what can wait
//! (pubsub notifications, presence, messages without a body) is held and written in
//! batches, so a phone on a firehose wakes its radio a few times a minute instead of
//! sixty times a second.
//!
//! Held frames are the queued frames themselves (shared parts): a notification held for
//! a thousand inactive subscribers is still one copy of its payload. Order is never
//! changed: a frame that must go at once (a message with a body, an iq, a subscription
//! request, anything stream-level) takes everything held before it along.

use std::time::Duration;

use tokio::time::Instant;

use crate::frame::{Frame, StanzaKind};

/// XEP-0352's namespace.
pub const NS: &str = "urn:xmpp:csi:0";

/// When a batch goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CsiLimits {
    /// Held bytes (as written) that release the batch.
    pub max_held_bytes: usize,
    /// The oldest held frame waits at most this long.
    pub max_delay: Duration,
}

/// An inactive client's held frames.
#[derive(Debug)]
pub struct Held {
    limits: CsiLimits,
    frames: Vec<Frame>,
    bytes: usize,
    /// When the oldest held frame was taken.
    since: Option<Instant>,
}

impl Held {
    pub fn new(limits: CsiLimits) -> Self {
        Held {
            limits,
            frames: Vec::new(),
            bytes: 0,
            since: None,
        }
    }

    /// Sorts newly drained frames: returns what goes out now, in order, keeping the rest.
    pub fn filter(&mut self, drained: Vec<Frame>, now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        for f in drained {
            if urgent(&f) {
                out.append(&mut self.take());
                out.push(f);
            } else {
                self.bytes += f.len();
                self.since.get_or_insert(now);
                self.frames.push(f);
            }
        }
        if self.bytes >= self.limits.max_held_bytes {
            out.append(&mut self.take());
        }
        out
    }

    /// Everything held, oldest first (the batch is due, or the client is active again).
    pub fn take(&mut self) -> Vec<Frame> {
        self.bytes = 0;
        self.since = None;
        std::mem::take(&mut self.frames)
    }

    /// When the held batch is due by age.
    pub fn due(&self) -> Option<Instant> {
        self.since.map(|s| s + self.limits.max_delay)
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

/// Whether a frame must be written at once rather than wait for the batch.
fn urgent(f: &Frame) -> bool {
    match f {
        // A notification can wait, unless its subscriber marked the node urgent (the
        // fan-out flags the tail it gives that subscriber).
        Frame::Addressed { tail, .. } => tail.is_urgent(),
        Frame::Stanza(StanzaKind::Iq, _) => true,
        // A message someone wrote to the user; chat states, receipts and PEP
        // notifications (no body) can wait.
        Frame::Stanza(StanzaKind::Message, b) => contains(b, b"<body"),
        // Availability can wait; a subscription request or answer is for the user.
        Frame::Stanza(StanzaKind::Presence, b) => {
            let start = &b[..b.iter().position(|&c| c == b'>').unwrap_or(b.len())];
            contains(start, b"type='sub")
                || contains(start, b"type='unsub")
                || contains(start, b"type=\"sub")
                || contains(start, b"type=\"unsub")
        }
        // Stream-level bytes go at once, except what only keeps the stream alive or
        // asks for an ack: those ride along with the next batch.
        Frame::Raw(b) => {
            !(b.iter().all(u8::is_ascii_whitespace) || &b[..] == b"<r xmlns='urn:xmpp:sm:3'/>")
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Shared;
    use bytes::Bytes;

    fn limits() -> CsiLimits {
        CsiLimits {
            max_held_bytes: 200,
            max_delay: Duration::from_secs(30),
        }
    }

    fn notification(n: u32) -> Frame {
        Frame::Addressed {
            head: Shared::new(Bytes::from(format!("<message n='{n}' to='"))),
            to: Bytes::from_static(b"u@x"),
            tail: Shared::new(Bytes::from_static(b"'><event/></message>")),
        }
    }

    fn stanza(kind: StanzaKind, s: &'static str) -> Frame {
        Frame::Stanza(kind, Bytes::from_static(s.as_bytes()))
    }

    fn texts(fs: &[Frame]) -> Vec<String> {
        fs.iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn notifications_wait_and_a_message_takes_them_along_in_order() {
        let mut h = Held::new(limits());
        let t0 = Instant::now();
        let out = h.filter(
            vec![
                notification(1),
                stanza(StanzaKind::Presence, "<presence from='a@x/r'/>"),
                notification(2),
            ],
            t0,
        );
        assert!(out.is_empty());
        assert_eq!(h.due(), Some(t0 + Duration::from_secs(30)));
        let out = h.filter(
            vec![
                stanza(StanzaKind::Message, "<message><body>hi</body></message>"),
                notification(3),
            ],
            t0,
        );
        assert_eq!(
            texts(&out),
            [
                "<message n='1' to='u@x'><event/></message>",
                "<presence from='a@x/r'/>",
                "<message n='2' to='u@x'><event/></message>",
                "<message><body>hi</body></message>",
            ]
        );
        assert_eq!(
            texts(&h.take()),
            ["<message n='3' to='u@x'><event/></message>"]
        );
        assert_eq!(h.due(), None);
    }

    #[test]
    fn an_urgent_notification_goes_at_once() {
        let f = Frame::Addressed {
            head: Shared::new(Bytes::from_static(b"<message to='")),
            to: Bytes::from_static(b"u@x"),
            tail: Shared::with_urgency(Bytes::from_static(b"'/>"), true),
        };
        assert!(urgent(&f));
        assert!(!urgent(&notification(1)));
    }

    #[test]
    fn what_goes_at_once() {
        assert!(urgent(&stanza(StanzaKind::Iq, "<iq type='get'/>")));
        assert!(urgent(&stanza(
            StanzaKind::Presence,
            "<presence type='subscribe'/>"
        )));
        assert!(urgent(&stanza(
            StanzaKind::Presence,
            "<presence type=\"unsubscribed\"/>"
        )));
        assert!(!urgent(&stanza(
            StanzaKind::Presence,
            "<presence type='unavailable'/>"
        )));
        assert!(!urgent(&stanza(
            StanzaKind::Message,
            "<message><active xmlns='http://jabber.org/protocol/chatstates'/></message>"
        )));
        assert!(urgent(&Frame::Raw(Bytes::from_static(b"</stream:stream>"))));
        assert!(!urgent(&Frame::Raw(Bytes::from_static(b" "))));
        assert!(!urgent(&Frame::Raw(Bytes::from_static(
            b"<r xmlns='urn:xmpp:sm:3'/>"
        ))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_out() {
        let mut h = Held::new(limits());
        let mut out = Vec::new();
        let mut n = 0;
        while out.is_empty() {
            n += 1;
            out = h.filter(vec![notification(n)], Instant::now());
        }
        // 5 notifications of 42 bytes pass 200.
        assert_eq!(n, 5);
        assert_eq!(out.len(), 5);
        assert!(h.is_empty());
    }
}
