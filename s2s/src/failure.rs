//! Why an outbound stream could not be had, and what the stanzas waiting for it are told.

use hydrant_proto::{StanzaError, StanzaErrorCondition as Cond};

use crate::resolve::ResolveError;

/// Why opening or authenticating a stream to a peer failed.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    /// DNS says there is no such domain or no XMPP service at it: retrying will not help.
    NotFound(String),
    /// No target accepted a connection.
    Unreachable(String),
    /// The deadline passed (connect, TLS, negotiation, or the peer's dialback callback).
    Timeout,
    /// The peer closed the connection.
    Closed,
    Io(String),
    /// The peer spoke something else than XMPP s2s as we expect it.
    Protocol(String),
    Tls(String),
    /// Our policy and the peer's offer do not meet (no STARTTLS where it is required, an
    /// untrusted certificate where dialback is off).
    Policy(String),
    /// The peer refused to authenticate us (dialback `invalid` or `error`).
    NotAuthorized(String),
}

impl Failure {
    /// Whether trying again later cannot help (the stanzas are bounced at once).
    pub(crate) fn is_final(&self) -> bool {
        matches!(
            self,
            Failure::NotFound(_) | Failure::Policy(_) | Failure::NotAuthorized(_)
        )
    }

    /// The error for the stanzas that waited (RFC 6120 8.3.3.16 and 8.3.3.17).
    pub(crate) fn stanza_error(&self) -> StanzaError {
        match self {
            Failure::NotFound(why) | Failure::Policy(why) | Failure::NotAuthorized(why) => {
                StanzaError::new(Cond::RemoteServerNotFound).with_text(why.clone())
            }
            Failure::Timeout => StanzaError::new(Cond::RemoteServerTimeout),
            Failure::Unreachable(why)
            | Failure::Io(why)
            | Failure::Protocol(why)
            | Failure::Tls(why) => {
                StanzaError::new(Cond::RemoteServerTimeout).with_text(why.clone())
            }
            Failure::Closed => StanzaError::new(Cond::RemoteServerTimeout)
                .with_text("the peer closed the connection"),
        }
    }
}

impl From<ResolveError> for Failure {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NoService => {
                Failure::NotFound("the domain offers no XMPP service".into())
            }
            ResolveError::Dns(why) => Failure::Unreachable(format!("DNS: {why}")),
            ResolveError::Unreachable(why) => Failure::Unreachable(why),
        }
    }
}
