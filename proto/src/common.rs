//! What every stanza kind shares: its addressing attributes and its content namespace
//! (RFC 6120 8.1, 4.8.2). Its own module so that `stanza` (all kinds) and `iq` (one
//! kind) both use it without depending on each other.

use jid::Jid;

use crate::element::Element;
use crate::error::{StanzaError, StanzaErrorCondition};
use crate::ns;

/// Reads an addressing attribute; a present but invalid JID is `jid-malformed`
/// (RFC 6120 8.3.3.8).
pub(crate) fn jid_attr(el: &Element, name: &str) -> Result<Option<Jid>, StanzaError> {
    let malformed = |why: &dyn std::fmt::Display| {
        StanzaError::new(StanzaErrorCondition::JidMalformed)
            .with_text(format!("invalid '{name}' address: {why}"))
    };
    el.attr(name)
        .map(|s| {
            let jid = Jid::new(s).map_err(|e| malformed(&e))?;
            if crate::address::normalises_stably(s, jid.as_str()) {
                Ok(jid)
            } else {
                Err(malformed(&"its normalised form normalises differently"))
            }
        })
        .transpose()
}

/// Moves a stanza element (and the children that inherited its namespace, like `<body/>`)
/// into the content namespace of the stream it is written to.
pub(crate) fn in_content_ns(mut el: Element, ns: &str) -> Element {
    if el.ns() != ns {
        let old = el.ns().to_owned();
        el.rename_ns(&old, ns);
    }
    el
}

/// Content namespaces a stanza can be qualified by.
pub(crate) fn is_content_ns(uri: &str) -> bool {
    uri == ns::CLIENT || uri == ns::SERVER
}
