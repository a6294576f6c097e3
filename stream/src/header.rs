//! Stream headers (RFC 6120 4.7, 4.8): the receiving entity's response header, and the
//! checks every kind of stream makes on the initiating entity's header.
//!
//! The three XMPP stream kinds share this framing and differ in their content namespace
//! (RFC 6120 4.8.2: `jabber:client`, `jabber:server`; XEP-0114: `jabber:component:accept`).

use hydrant_proto::{StreamError, StreamErrorCondition as Cond, StreamHeader};

/// The content namespace of a stream: the default namespace of its header and of the
/// stanzas it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentNs {
    /// `jabber:client` (RFC 6120 4.8.2): client-to-server.
    Client,
    /// `jabber:server` (RFC 6120 4.8.2): server-to-server.
    Server,
    /// `jabber:component:accept` (XEP-0114): an external component.
    ComponentAccept,
}

impl ContentNs {
    pub const fn as_str(self) -> &'static str {
        match self {
            ContentNs::Client => hydrant_proto::ns::CLIENT,
            ContentNs::Server => hydrant_proto::ns::SERVER,
            ContentNs::ComponentAccept => hydrant_proto::ns::COMPONENT_ACCEPT,
        }
    }
}

/// A stream id (RFC 6120 4.7.3): 96 random bits as 24 hex digits, kept on the stack.
/// XEP-0114 hashes it with the component's secret, so it is kept after the header went out.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StreamId([u8; 24]);

impl StreamId {
    /// A fresh id from the OS random source; unguessable, as RFC 6120 4.7.3 requires.
    pub fn random() -> Self {
        let mut raw = [0u8; 12];
        getrandom::fill(&mut raw).expect("the OS random source is available");
        let mut hex = [0u8; 24];
        for (i, b) in raw.iter().enumerate() {
            hex[2 * i] = HEX[usize::from(b >> 4)];
            hex[2 * i + 1] = HEX[usize::from(b & 0xf)];
        }
        StreamId(hex)
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

impl std::fmt::Debug for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The response stream header (RFC 6120 4.7): our `from`, the peer's `from` echoed as `to`
/// when it is a valid JID (4.7.2), version 1.0 unless `version` is false (XEP-0114
/// components speak the pre-1.0 protocol and send none).
pub fn response_header(
    ns: ContentNs,
    id: &StreamId,
    from: &str,
    peer_from: Option<&str>,
    version: bool,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str("<?xml version='1.0'?><stream:stream xmlns='");
    out.push_str(ns.as_str());
    out.push_str("' xmlns:stream='http://etherx.jabber.org/streams' id='");
    out.push_str(id.as_str());
    out.push_str("' from='");
    out.push_str(&escape_attr(from));
    out.push('\'');
    if let Some(to) = peer_from.filter(|f| hydrant_proto::Jid::new(f).is_ok()) {
        out.push_str(" to='");
        out.push_str(&escape_attr(to));
        out.push('\'');
    }
    if version {
        out.push_str(" version='1.0'");
    }
    out.push_str(" xml:lang='en'>");
    out.into_bytes()
}

/// RFC 6120 4.9.3.10: the header's default namespace must be the stream's content
/// namespace.
pub fn check_namespace(h: &StreamHeader, ns: ContentNs) -> Result<(), StreamError> {
    if h.default_ns() == ns.as_str() {
        Ok(())
    } else {
        Err(StreamError::new(Cond::InvalidNamespace))
    }
}

/// RFC 6120 4.7.2: the initiating entity's `to` names the service it wants; it must be
/// present and be our domain (4.9.3.6 `<host-unknown/>`).
pub fn check_to(h: &StreamHeader, domain: &str) -> Result<(), StreamError> {
    match h.to() {
        None => Err(StreamError::new(Cond::ImproperAddressing)
            .with_text("a 'to' attribute is required on the stream header")),
        Some(to) if !same_domain(to, domain) => Err(StreamError::new(Cond::HostUnknown)),
        Some(_) => Ok(()),
    }
}

/// RFC 6120 4.7.5: we speak 1.0; a peer without version (pre-XMPP 1.0) cannot negotiate
/// SASL, and a higher major version is unsupported.
pub fn check_version(h: &StreamHeader) -> Result<(), StreamError> {
    let major = h
        .version()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse::<u32>().ok());
    if major == Some(1) {
        Ok(())
    } else {
        Err(StreamError::new(Cond::UnsupportedVersion))
    }
}

/// Compares a stream's `to` with our domain after RFC 7622 normalisation.
pub fn same_domain(to: &str, domain: &str) -> bool {
    match (
        hydrant_proto::BareJid::new(to),
        hydrant_proto::BareJid::new(domain),
    ) {
        (Ok(a), Ok(b)) => a.node().is_none() && a == b,
        _ => false,
    }
}

/// Escapes a value for a single-quoted XML attribute.
pub fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_carries_the_content_namespace_and_echoes_a_valid_from() {
        let id = StreamId::random();
        let h = response_header(ContentNs::Server, &id, "a.example", Some("b.example"), true);
        let h = String::from_utf8(h).unwrap();
        assert!(h.contains("xmlns='jabber:server'"), "{h}");
        assert!(h.contains(&format!("id='{}'", id.as_str())), "{h}");
        assert!(h.contains(" to='b.example' version='1.0'"), "{h}");
        let h = response_header(
            ContentNs::ComponentAccept,
            &id,
            "c.example",
            Some("<"),
            false,
        );
        let h = String::from_utf8(h).unwrap();
        assert!(h.contains("xmlns='jabber:component:accept'"), "{h}");
        assert!(
            !h.contains(" to=") && !h.contains("version='1.0' xml:lang"),
            "{h}"
        );
    }

    #[test]
    fn stream_ids_are_hex_and_differ() {
        let (a, b) = (StreamId::random(), StreamId::random());
        assert_ne!(a, b);
        assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(a.as_str().len(), 24);
    }
}
