//! Stream errors (RFC 6120 4.9) and stanza errors (RFC 6120 8.3).
//!
//! This is the one place that turns error conditions into wire bytes; higher layers hold
//! the typed values and call [`StreamError::to_bytes`], [`StanzaError::to_element`] or
//! [`error_reply`].

use std::fmt;

use crate::element::Element;
use crate::ns;
use crate::writer::escape_text_into;

macro_rules! condition_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($variant,)*
        }

        impl $name {
            /// Every condition, in RFC order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The element name on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $wire,)*
                }
            }

            /// Parses an element name on the wire.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $($wire => Some($name::$variant),)*
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

condition_enum! {
    /// Defined stream error conditions (RFC 6120 4.9.3).
    StreamErrorCondition {
        BadFormat => "bad-format",
        BadNamespacePrefix => "bad-namespace-prefix",
        Conflict => "conflict",
        ConnectionTimeout => "connection-timeout",
        HostGone => "host-gone",
        HostUnknown => "host-unknown",
        ImproperAddressing => "improper-addressing",
        InternalServerError => "internal-server-error",
        InvalidFrom => "invalid-from",
        InvalidNamespace => "invalid-namespace",
        InvalidXml => "invalid-xml",
        NotAuthorized => "not-authorized",
        NotWellFormed => "not-well-formed",
        PolicyViolation => "policy-violation",
        RemoteConnectionFailed => "remote-connection-failed",
        Reset => "reset",
        ResourceConstraint => "resource-constraint",
        RestrictedXml => "restricted-xml",
        SeeOtherHost => "see-other-host",
        SystemShutdown => "system-shutdown",
        UndefinedCondition => "undefined-condition",
        UnsupportedEncoding => "unsupported-encoding",
        UnsupportedFeature => "unsupported-feature",
        UnsupportedStanzaType => "unsupported-stanza-type",
        UnsupportedVersion => "unsupported-version",
    }
}

condition_enum! {
    /// Defined stanza error conditions (RFC 6120 8.3.3).
    StanzaErrorCondition {
        BadRequest => "bad-request",
        Conflict => "conflict",
        FeatureNotImplemented => "feature-not-implemented",
        Forbidden => "forbidden",
        Gone => "gone",
        InternalServerError => "internal-server-error",
        ItemNotFound => "item-not-found",
        JidMalformed => "jid-malformed",
        NotAcceptable => "not-acceptable",
        NotAllowed => "not-allowed",
        NotAuthorized => "not-authorized",
        PolicyViolation => "policy-violation",
        RecipientUnavailable => "recipient-unavailable",
        Redirect => "redirect",
        RegistrationRequired => "registration-required",
        RemoteServerNotFound => "remote-server-not-found",
        RemoteServerTimeout => "remote-server-timeout",
        ResourceConstraint => "resource-constraint",
        ServiceUnavailable => "service-unavailable",
        SubscriptionRequired => "subscription-required",
        UndefinedCondition => "undefined-condition",
        UnexpectedRequest => "unexpected-request",
    }
}

/// A stream-level error: the stream is closed after sending it (RFC 6120 4.9.1.1).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stream error <{condition}/>{}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct StreamError {
    pub condition: StreamErrorCondition,
    /// Human-readable detail for logs and for the peer's `<text/>`; never needed to act.
    pub text: Option<String>,
}

impl StreamError {
    pub fn new(c: StreamErrorCondition) -> Self {
        StreamError {
            condition: c,
            text: None,
        }
    }

    pub fn with_text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }

    /// `<stream:error>` as sent on a stream whose header bound the `stream` prefix
    /// (our own response header always does).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"<stream:error><");
        out.extend_from_slice(self.condition.as_str().as_bytes());
        out.extend_from_slice(b" xmlns='");
        out.extend_from_slice(ns::STREAMS.as_bytes());
        out.extend_from_slice(b"'/>");
        if let Some(text) = &self.text {
            out.extend_from_slice(b"<text xmlns='");
            out.extend_from_slice(ns::STREAMS.as_bytes());
            out.extend_from_slice(b"'>");
            escape_text_into(&mut out, text);
            out.extend_from_slice(b"</text>");
        }
        out.extend_from_slice(b"</stream:error>");
        out
    }
}

/// The `type` of a stanza error (RFC 6120 8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "auth" => ErrorType::Auth,
            "cancel" => ErrorType::Cancel,
            "continue" => ErrorType::Continue,
            "modify" => ErrorType::Modify,
            "wait" => ErrorType::Wait,
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StanzaErrorCondition {
    /// The error type RFC 6120 8.3.3 gives for each condition (in its text or, where the
    /// text allows two, its example).
    pub fn default_type(self) -> ErrorType {
        use StanzaErrorCondition as C;
        match self {
            C::BadRequest => ErrorType::Modify,
            C::Conflict => ErrorType::Cancel,
            C::FeatureNotImplemented => ErrorType::Cancel,
            C::Forbidden => ErrorType::Auth,
            C::Gone => ErrorType::Cancel,
            C::InternalServerError => ErrorType::Cancel,
            C::ItemNotFound => ErrorType::Cancel,
            C::JidMalformed => ErrorType::Modify,
            C::NotAcceptable => ErrorType::Modify,
            C::NotAllowed => ErrorType::Cancel,
            C::NotAuthorized => ErrorType::Auth,
            C::PolicyViolation => ErrorType::Modify,
            C::RecipientUnavailable => ErrorType::Wait,
            C::Redirect => ErrorType::Modify,
            C::RegistrationRequired => ErrorType::Auth,
            C::RemoteServerNotFound => ErrorType::Cancel,
            C::RemoteServerTimeout => ErrorType::Wait,
            C::ResourceConstraint => ErrorType::Wait,
            C::ServiceUnavailable => ErrorType::Cancel,
            C::SubscriptionRequired => ErrorType::Auth,
            C::UndefinedCondition => ErrorType::Cancel,
            C::UnexpectedRequest => ErrorType::Wait,
        }
    }
}

/// A stanza-level error (RFC 6120 8.3): reported to the sender, the stream stays up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stanza error <{condition}/> ({kind}){}", text.as_deref().map(|t| format!(": {t}")).unwrap_or_default())]
pub struct StanzaError {
    pub kind: ErrorType,
    pub condition: StanzaErrorCondition,
    pub text: Option<String>,
    /// Application-specific condition element (e.g. XEP-0060 `<pubsub#errors/>` children).
    pub app: Option<Element>,
    /// The entity that generated the error, when not the addressee (RFC 6120 8.3.2 `by`).
    pub by: Option<String>,
}

impl StanzaError {
    /// An error with the condition's default type (RFC 6120 8.3.3).
    pub fn new(c: StanzaErrorCondition) -> Self {
        StanzaError {
            kind: c.default_type(),
            condition: c,
            text: None,
            app: None,
            by: None,
        }
    }

    pub fn with_type(mut self, t: ErrorType) -> Self {
        self.kind = t;
        self
    }

    pub fn with_text(mut self, t: impl Into<String>) -> Self {
        self.text = Some(t.into());
        self
    }

    pub fn with_app(mut self, el: Element) -> Self {
        self.app = Some(el);
        self
    }

    pub fn with_by(mut self, by: impl Into<String>) -> Self {
        self.by = Some(by.into());
        self
    }

    /// `<error type='..' [by='..']><condition xmlns=STANZAS/>[<text/>][app]</error>`,
    /// the `<error/>` itself qualified by `ns` (the stream's content namespace).
    pub fn to_element(&self, ns: &str) -> Element {
        let mut el = Element::new("error", ns).with_attr("type", self.kind.as_str());
        if let Some(by) = &self.by {
            el.set_attr("by", by.clone());
        }
        el.append_child(Element::new(self.condition.as_str(), ns::STANZAS));
        if let Some(text) = &self.text {
            el.append_child(Element::new("text", ns::STANZAS).with_text(text.clone()));
        }
        if let Some(app) = &self.app {
            el.append_child(app.clone());
        }
        el
    }

    /// Reads an `<error/>` element (any namespace; the caller found it as the child of
    /// an error stanza). Unknown conditions become `undefined-condition`, and an unknown
    /// or missing type the condition's default, so a peer's sloppy error still routes.
    pub fn from_element(el: &Element) -> StanzaError {
        let mut condition = None;
        let mut text = None;
        let mut app = None;
        for child in el.children() {
            if child.ns() == ns::STANZAS {
                if child.name() == "text" {
                    text = Some(child.text());
                } else if condition.is_none() {
                    condition = StanzaErrorCondition::from_name(child.name());
                }
            } else if app.is_none() {
                app = Some(child.clone());
            }
        }
        let condition = condition.unwrap_or(StanzaErrorCondition::UndefinedCondition);
        StanzaError {
            kind: el
                .attr("type")
                .and_then(ErrorType::from_name)
                .unwrap_or_else(|| condition.default_type()),
            condition,
            text,
            app,
            by: el.attr("by").map(str::to_owned),
        }
    }
}

/// RFC 6120 8.3.1: an error reply to `original`: same name, same id, to/from swapped,
/// type='error', for message/presence the original children are kept (the RFC's MAY: the
/// sender can then tell which stanza failed), for iq they are not (an iq error carries
/// only the `<error/>`); then the `<error/>` child, in the original's namespace.
///
/// Callers must not answer stanzas of type `error` (and iq `result`) with an error
/// (RFC 6120 8.3.1 / 8.2.3): that is how error loops are avoided.
pub fn error_reply(original: &Element, err: &StanzaError) -> Element {
    let mut reply = Element::new(original.name(), original.ns());
    if let Some(id) = original.attr("id") {
        reply.set_attr("id", id);
    }
    reply.set_attr("type", "error");
    if let Some(from) = original.attr("to") {
        reply.set_attr("from", from);
    }
    if let Some(to) = original.attr("from") {
        reply.set_attr("to", to);
    }
    if let Some(lang) = original.attr("xml:lang") {
        reply.set_attr("xml:lang", lang);
    }
    if original.name() != "iq" {
        for node in original.nodes() {
            match node {
                crate::element::Node::Element(e) => reply.append_child((**e).clone()),
                crate::element::Node::Text(t) => reply.append_text(t.clone()),
            }
        }
    }
    reply.append_child(err.to_element(original.ns()));
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_error_bytes() {
        let e = StreamError::new(StreamErrorCondition::PolicyViolation).with_text("too <big>");
        assert_eq!(
            String::from_utf8(e.to_bytes()).unwrap(),
            "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too &lt;big&gt;</text>\
             </stream:error>"
        );
        assert_eq!(
            StreamError::new(StreamErrorCondition::NotWellFormed).to_bytes(),
            b"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
              </stream:error>"
        );
        assert_eq!(e.to_string(), "stream error <policy-violation/>: too <big>");
    }

    #[test]
    fn condition_names_round_trip() {
        for &c in StreamErrorCondition::ALL {
            assert_eq!(StreamErrorCondition::from_name(c.as_str()), Some(c));
        }
        for &c in StanzaErrorCondition::ALL {
            assert_eq!(StanzaErrorCondition::from_name(c.as_str()), Some(c));
        }
        assert_eq!(StreamErrorCondition::ALL.len(), 25);
        assert_eq!(StanzaErrorCondition::ALL.len(), 22);
    }

    #[test]
    fn default_types_follow_rfc_6120_8_3_3() {
        use StanzaErrorCondition as C;
        assert_eq!(C::BadRequest.default_type(), ErrorType::Modify);
        assert_eq!(C::Forbidden.default_type(), ErrorType::Auth);
        assert_eq!(C::ItemNotFound.default_type(), ErrorType::Cancel);
        assert_eq!(C::ResourceConstraint.default_type(), ErrorType::Wait);
        assert_eq!(C::ServiceUnavailable.default_type(), ErrorType::Cancel);
        assert_eq!(StanzaError::new(C::JidMalformed).kind, ErrorType::Modify);
    }

    #[test]
    fn stanza_error_element_round_trip() {
        let app = Element::new("unsupported", ns::PUBSUB_ERRORS).with_attr("feature", "x");
        let e = StanzaError::new(StanzaErrorCondition::FeatureNotImplemented)
            .with_text("nope")
            .with_app(app)
            .with_by("example.com");
        let el = e.to_element(ns::CLIENT);
        assert_eq!(
            String::from_utf8(el.to_bytes(ns::CLIENT)).unwrap(),
            "<error type='cancel' by='example.com'>\
             <feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>nope</text>\
             <unsupported xmlns='http://jabber.org/protocol/pubsub#errors' feature='x'/></error>"
        );
        assert_eq!(StanzaError::from_element(&el), e);
    }
}
