//! What the reader and the parser share: the limits on a peer's input and the stream
//! header it opened with. Its own module so that `reader` (framing) and `parse` (one
//! unit to a tree) both use them without depending on each other.

use std::sync::Arc;

/// Hard limits applied to everything a peer sends.
///
/// Together they bound what one unit can cost: the reader buffers at most
/// `max_stanza_bytes` (`max_header_bytes` for a stream header), and the parsed
/// [`Element`] is a small multiple of its size on the wire (namespace strings are shared,
/// not copied per element; `proto/tests/parse_memory.rs` asserts the multiple).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest serialized size of one stanza, in bytes.
    pub max_stanza_bytes: usize,
    /// Largest serialized size of the stream header (`<stream:stream ...>`), in bytes.
    pub max_header_bytes: usize,
    /// Deepest element nesting inside a stanza; the stanza itself is depth 1.
    pub max_depth: usize,
    /// Most attributes (namespace declarations included) on one element.
    pub max_attrs: usize,
    /// Longest namespace URI a declaration may bind, in bytes as written.
    pub max_ns_bytes: usize,
    /// Longest attribute value, in bytes as written.
    pub max_attr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_stanza_bytes: 262_144,
            max_header_bytes: 4096,
            max_depth: 32,
            max_attrs: 64,
            // Namespace URIs of real protocols are under 100 bytes.
            max_ns_bytes: 1024,
            // Above the longest JID (3071 bytes, RFC 7622 3.1) with room for escaping.
            max_attr_bytes: 4096,
        }
    }
}

/// The opening `<stream:stream>` tag of a peer's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// Attributes as written, namespace declarations included (`xmlns`, `xmlns:db`).
    pub(crate) attrs: Vec<(String, String)>,
    /// Resolved namespace of the header element (always the stream namespace).
    pub(crate) ns: String,
    /// The default (content) namespace, "" if none was declared.
    pub(crate) default_ns: String,
    /// Namespace declarations of the header; in scope for every stanza of the stream
    /// (the parser looks them up here, never copying them per stanza).
    pub(crate) bindings: Vec<(String, Arc<str>)>,
    /// The header's qualified name, which the closing tag must repeat.
    pub(crate) qname: String,
}

impl StreamHeader {
    /// An attribute by the name it was written with (`to`, `xml:lang`, `xmlns:db`).
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    pub fn to(&self) -> Option<&str> {
        self.attr("to")
    }

    pub fn from(&self) -> Option<&str> {
        self.attr("from")
    }

    pub fn version(&self) -> Option<&str> {
        self.attr("version")
    }

    pub fn id(&self) -> Option<&str> {
        self.attr("id")
    }

    /// `xml:lang`.
    pub fn lang(&self) -> Option<&str> {
        self.attr("xml:lang")
    }

    /// The resolved namespace of the header element.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The content namespace declared as default (e.g. `jabber:client`); "" if none.
    /// The reader accepts any; the session checks it is the one it serves and answers
    /// `invalid-namespace` otherwise (RFC 6120 4.9.3.10).
    pub fn default_ns(&self) -> &str {
        &self.default_ns
    }

    /// Whether the header binds some prefix to `uri` (XEP-0220: dialback support is
    /// announced by declaring `jabber:server:dialback`).
    pub fn declares(&self, uri: &str) -> bool {
        self.bindings
            .iter()
            .any(|(p, u)| !p.is_empty() && &**u == uri)
    }
}
