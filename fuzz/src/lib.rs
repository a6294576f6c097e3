//! Shared helpers of the fuzz targets: every element-based target builds its element the
//! way the server does, by running the input through [`StreamReader`] after a fixed
//! stream header, so the parsers under test only ever see what the reader lets through.

use hydrant_proto::{Element, Limits, StreamEvent, StreamReader};

/// The content namespace of the stream the inputs arrive on.
pub const STREAM_NS: &str = "jabber:client";

/// A client's stream header, as c2s receives it.
pub const HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>";

/// A peer server's stream header, as s2s receives it (dialback's `db:` prefix declared).
pub const S2S_HEADER: &[u8] = b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='peer.example' to='example.com' version='1.0'>";

/// The first stanza of `data` sent after [`HEADER`], or `None` when the reader refuses it
/// or needs more bytes.
pub fn stanza(data: &[u8]) -> Option<Element> {
    stanza_with(data, Limits::default())
}

/// The first top-level element of `data` on an s2s stream (after [`S2S_HEADER`]).
pub fn s2s_element(data: &[u8]) -> Option<Element> {
    stanza_after(S2S_HEADER, data, Limits::default())
}

fn stanza_with(data: &[u8], limits: Limits) -> Option<Element> {
    stanza_after(HEADER, data, limits)
}

fn stanza_after(header: &[u8], data: &[u8], limits: Limits) -> Option<Element> {
    let mut reader = StreamReader::new(limits);
    reader.feed(header).ok()?;
    reader.feed(data).ok()?;
    loop {
        match reader.next_event() {
            Ok(Some(StreamEvent::Stanza(el))) => return Some(el),
            Ok(Some(StreamEvent::Open(_))) => {}
            Ok(Some(StreamEvent::Close) | None) | Err(_) => return None,
        }
    }
}

/// `el` written as bytes and read back, as a peer would receive it.
pub fn reread(el: &Element) -> Element {
    let bytes = el.to_bytes(STREAM_NS);
    // The limits count bytes as written, and escaping can make a value six times longer
    // than it was read (`"` inside '..' becomes `&quot;`): what passed the caps once may
    // be over them when re-read, which is the peer's limit to set, not a bug.
    let d = Limits::default();
    let grown = Limits {
        max_stanza_bytes: d.max_stanza_bytes * 6,
        max_ns_bytes: d.max_ns_bytes * 6,
        max_attr_bytes: d.max_attr_bytes * 6,
        ..d
    };
    stanza_with(&bytes, grown).unwrap_or_else(|| {
        panic!(
            "the reader refused what the writer wrote: {}",
            String::from_utf8_lossy(&bytes)
        )
    })
}
