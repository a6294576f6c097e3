//! Outbound frames: what a connection's queue holds instead of bare bytes.
//!
//! A frame is one unit the stream writes whole: stream-level bytes (headers, features,
//! negotiation, errors), one stanza, or one pubsub notification assembled from parts that
//! every recipient of a publish shares. Keeping that shape until the bytes hit the socket
//! lets
//! - a compressing stream (Compression issue) deflate the shared parts once per publish and
//!   splice the same compressed bytes into every stream ([`Shared`] carries a slot for that
//!   form), instead of compressing each subscriber's copy;
//! - an s2s stream bounce a stanza it refuses ([`Frame::stanza_element`]), because the frame
//!   knows it is a stanza and which kind;
//! - every stream kind write the same bytes: stanzas are serialised with their content
//!   namespace left to the stream's default ([`Frame::element`]), so the frame is valid on
//!   `jabber:client`, `jabber:server` and `jabber:component:accept` streams alike.
//!
//! Size matters here: a firehose keeps up to the queue limit of frames per subscriber, so a
//! frame is at most one `Bytes` and two `Arc`s, and it records a stanza's addresses only in
//! its own start tag (parsed back on the cold bounce path, never copied per recipient).

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use hydrant_proto::{Element, Limits, StreamEvent, StreamReader, ns};

/// Which stanza a frame carries (RFC 6120 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StanzaKind {
    Message,
    Presence,
    Iq,
}

impl StanzaKind {
    /// The kind of a stanza element by its name; `None` for anything else.
    pub fn of(name: &str) -> Option<Self> {
        match name {
            "message" => Some(StanzaKind::Message),
            "presence" => Some(StanzaKind::Presence),
            "iq" => Some(StanzaKind::Iq),
            _ => None,
        }
    }
}

/// A part shared by every recipient of one fan-out, written as is into each stream.
#[derive(Debug)]
pub struct Shared {
    bytes: Bytes,
    /// Told apart from every other part (a compressed stream remembers which
    /// notification it wrote last, [`Chain`]).
    id: u64,
    /// `bytes` as an independent deflate piece and its Adler-32 (`zlib.rs`), computed at
    /// most once by whichever compressed stream writes the part first; the others splice
    /// the same bytes.
    deflated: OnceLock<(Bytes, u32)>,
    /// On a notification's head: how compressed streams may deflate this notification
    /// against the node's previous one (set once, before the first frame is queued).
    chain: OnceLock<Chain>,
    /// On a notification's tail: the subscriber asked for this node's notifications at
    /// once, even while its client is inactive (XEP-0352, `csi.rs`). The fan-out gives
    /// those subscribers a second tail with the same bytes and this flag.
    urgent: bool,
}

static NEXT_SHARED_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Shared {
    pub fn new(bytes: impl Into<Bytes>) -> Arc<Self> {
        Self::with_urgency(bytes, false)
    }

    /// A part like [`Shared::new`], marked urgent when `urgent` is set.
    pub fn with_urgency(bytes: impl Into<Bytes>, urgent: bool) -> Arc<Self> {
        Arc::new(Shared {
            bytes: bytes.into(),
            id: NEXT_SHARED_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            deflated: OnceLock::new(),
            chain: OnceLock::new(),
            urgent,
        })
    }

    /// See [`Shared::with_urgency`].
    pub fn is_urgent(&self) -> bool {
        self.urgent
    }

    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// The deflated form and the Adler-32 of `bytes`, computed the first time it is asked
    /// for (XEP-0138 streams, `zlib.rs`).
    pub fn deflated(&self) -> &(Bytes, u32) {
        self.deflated
            .get_or_init(|| crate::zlib::deflate_piece(&self.bytes))
    }

    /// Makes this notification head part of its node's chain (once; later calls are
    /// ignored).
    pub fn set_chain(&self, chain: Chain) {
        let _ = self.chain.set(chain);
    }

    pub fn chain(&self) -> Option<&Chain> {
        self.chain.get()
    }
}

/// How a compressed stream can write a notification so that it refers back to the node's
/// previous notification (DESIGN.md, Compression: every subscriber received N-1 as the
/// same bytes). The recipient's address region (address, closing quote, spaces) is
/// `width` bytes in every compressed stream, so N-1 sits at the same distance in each
/// subscriber's window, and N is deflated once against it (`zlib::ChainForms`).
#[derive(Debug)]
pub struct Chain {
    /// Bytes of the address region: the longest escaped address of the node's subscribers
    /// plus its closing quote.
    pub width: usize,
    /// The node's previous notification, if one was written with a chain.
    pub prev: Option<Prev>,
    pub(crate) forms: OnceLock<crate::zlib::ChainForms>,
}

impl Chain {
    pub fn new(width: usize, prev: Option<Prev>) -> Self {
        Chain {
            width,
            prev,
            forms: OnceLock::new(),
        }
    }
}

/// What a chained notification needs of its predecessor: its bytes (not the parts
/// themselves, so chains do not keep every earlier notification alive), which tail it
/// had, and its address width.
#[derive(Debug, Clone)]
pub struct Prev {
    pub head: Bytes,
    pub tail: Bytes,
    pub tail_id: u64,
    pub width: usize,
}

/// One unit of a stream's output.
#[derive(Debug, Clone)]
pub enum Frame {
    /// Stream-level bytes: a header, features, a negotiation element, a stream error, a
    /// whitespace keepalive. Never bounced.
    Raw(Bytes),
    /// One stanza, serialised without its content namespace ([`Frame::element`]).
    Stanza(StanzaKind, Bytes),
    /// A pubsub notification `<message/>`: the shared start up to the recipient's address,
    /// the escaped address, and the shared rest (DESIGN.md, the hot path). A notification is
    /// never bounced (XEP-0060: a failed notification is the service's business).
    Addressed {
        head: Arc<Shared>,
        to: Bytes,
        tail: Arc<Shared>,
    },
}

impl From<Bytes> for Frame {
    fn from(b: Bytes) -> Self {
        Frame::Raw(b)
    }
}

impl From<&'static [u8]> for Frame {
    fn from(b: &'static [u8]) -> Self {
        Frame::Raw(Bytes::from_static(b))
    }
}

impl From<Vec<u8>> for Frame {
    fn from(b: Vec<u8>) -> Self {
        Frame::Raw(Bytes::from(b))
    }
}

/// Whether `ns` is a stream content namespace, which a stanza inherits from its stream.
fn is_content_ns(n: &str) -> bool {
    n == ns::CLIENT || n == ns::SERVER || n == ns::COMPONENT_ACCEPT
}

impl Frame {
    /// A stanza (or any element) serialised for every stream kind: a stanza in a content
    /// namespace is written without `xmlns`, so it takes the namespace of the stream it is
    /// written to (RFC 6120 4.8.3: a stanza qualified by the content namespace is routed
    /// into a stream with another one by changing that namespace). Descendants that only
    /// inherited it follow; a `<message xmlns='jabber:client'/>` inside a foreign element
    /// (XEP-0297 forwarding) keeps its explicit namespace.
    pub fn element(el: &Element) -> Frame {
        let parent = if is_content_ns(el.ns()) { el.ns() } else { "" };
        let bytes = Bytes::from(el.to_bytes(parent));
        match StanzaKind::of(el.name()) {
            Some(kind) if is_content_ns(el.ns()) => Frame::Stanza(kind, bytes),
            _ => Frame::Raw(bytes),
        }
    }

    /// Bytes on the wire.
    pub fn len(&self) -> usize {
        match self {
            Frame::Raw(b) | Frame::Stanza(_, b) => b.len(),
            Frame::Addressed { head, to, tail } => head.bytes.len() + to.len() + tail.bytes.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many buffers [`Frame::part`] yields (1 or 3): what one vectored write needs.
    pub fn part_count(&self) -> usize {
        match self {
            Frame::Raw(_) | Frame::Stanza(..) => 1,
            Frame::Addressed { .. } => 3,
        }
    }

    /// Buffer `i` of this frame, in write order (`i < part_count()`).
    pub fn part(&self, i: usize) -> &[u8] {
        match (self, i) {
            (Frame::Raw(b) | Frame::Stanza(_, b), 0) => b,
            (Frame::Addressed { head, .. }, 0) => &head.bytes,
            (Frame::Addressed { to, .. }, 1) => to,
            (Frame::Addressed { tail, .. }, 2) => &tail.bytes,
            _ => &[],
        }
    }

    /// The stanza kind; `None` for stream-level bytes. A notification is a message.
    pub fn stanza_kind(&self) -> Option<StanzaKind> {
        match self {
            Frame::Raw(_) => None,
            Frame::Stanza(kind, _) => Some(*kind),
            Frame::Addressed { .. } => Some(StanzaKind::Message),
        }
    }

    /// Whether a stream that refuses this frame should bounce it to its sender: only a
    /// stanza that is not itself an error (RFC 6120 8.3.1: an error is never answered with
    /// an error) and not a pubsub notification.
    pub fn is_bounceable(&self) -> bool {
        matches!(self, Frame::Stanza(..))
            && self
                .stanza_element()
                .is_some_and(|el| el.attr("type") != Some("error"))
    }

    /// The stanza this frame carries, parsed back from its bytes (cold: a refused stanza
    /// being bounced). Its namespace is `jabber:client`, the router's own.
    pub fn stanza_element(&self) -> Option<Element> {
        self.stanza_kind()?;
        // Our own bytes, already checked when they came in: limits only as wide as them.
        let len = self.len() + 1;
        let mut r = StreamReader::new(Limits {
            max_stanza_bytes: len,
            max_depth: len,
            max_attrs: len,
            max_ns_bytes: len,
            max_attr_bytes: len,
            ..Limits::default()
        });
        r.feed(b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>")
            .ok()?;
        for i in 0..self.part_count() {
            r.feed(self.part(i)).ok()?;
        }
        loop {
            match r.next_event().ok()?? {
                StreamEvent::Open(_) => {}
                StreamEvent::Stanza(el) => return Some(el),
                StreamEvent::Close => return None,
            }
        }
    }

    /// All bytes in one buffer (tests, logs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for i in 0..self.part_count() {
            v.extend_from_slice(self.part(i));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Element {
        Element::new("message", ns::CLIENT)
            .with_attr("from", "a@x.example/r")
            .with_attr("to", "b@y.example")
            .with_attr("id", "m1")
            .with_child(Element::new("body", ns::CLIENT).with_text("hi"))
    }

    #[test]
    fn a_stanza_is_written_without_its_content_namespace() {
        let f = Frame::element(&msg());
        assert_eq!(f.stanza_kind(), Some(StanzaKind::Message));
        assert_eq!(
            f.to_vec(),
            b"<message from='a@x.example/r' to='b@y.example' id='m1'><body>hi</body></message>"
        );
        // The same bytes from a jabber:server stanza.
        let mut s2s = msg();
        s2s.rename_ns(ns::CLIENT, ns::SERVER);
        assert_eq!(Frame::element(&s2s).to_vec(), f.to_vec());
    }

    #[test]
    fn a_forwarded_client_message_keeps_its_namespace() {
        let fwd = Element::new("forwarded", "urn:xmpp:forward:0").with_child(msg());
        let outer = Element::new("message", ns::SERVER).with_child(fwd);
        let bytes = Frame::element(&outer).to_vec();
        let s = String::from_utf8(bytes).unwrap();
        assert!(
            s.contains("<forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'"),
            "{s}"
        );
    }

    #[test]
    fn a_refused_stanza_is_recovered_for_its_bounce() {
        let f = Frame::element(&msg());
        assert!(f.is_bounceable());
        let el = f.stanza_element().unwrap();
        assert!(el.is("message", ns::CLIENT));
        assert_eq!(el.attr("from"), Some("a@x.example/r"));
        assert_eq!(el.attr("to"), Some("b@y.example"));
        assert_eq!(el.attr("id"), Some("m1"));

        let err = Frame::element(&msg().with_attr("type", "error"));
        assert!(!err.is_bounceable(), "an error is never bounced");
        assert!(!Frame::Raw(Bytes::from_static(b"<features/>")).is_bounceable());
    }

    #[test]
    fn a_notification_is_three_parts_and_never_bounced() {
        let head = Shared::new(Bytes::from_static(b"<message from='ps.example' to='"));
        let tail = Shared::new(Bytes::from_static(b"'><event xmlns='e'/></message>"));
        let f = Frame::Addressed {
            head: head.clone(),
            to: Bytes::from_static(b"u@x.example"),
            tail,
        };
        assert_eq!(f.part_count(), 3);
        assert_eq!(f.len(), f.to_vec().len());
        assert_eq!(f.stanza_kind(), Some(StanzaKind::Message));
        assert!(!f.is_bounceable());
        assert_eq!(f.stanza_element().unwrap().attr("to"), Some("u@x.example"));
        // The deflated form is computed once and shared.
        let a = head.deflated().0.clone();
        let b = head.deflated().0.clone();
        assert_eq!(a.as_ptr(), b.as_ptr());
    }
}
