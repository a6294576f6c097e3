//! The interface through which c2s reaches the rest of the server (accounts, routing).
//!
//! c2s knows nothing of storage, rosters or pubsub: the server crate implements
//! [`Backend`] and hands it to the listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use hydrant_proto::scram::StoredCredentials;
use hydrant_proto::{FullJid, Stanza, StanzaError};
use hydrant_stream::Outbox;

/// A bound client session as the rest of the server sees it.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// Unique for the life of the process; tells two sessions of one full JID apart.
    pub id: u64,
    pub jid: FullJid,
    pub peer: SocketAddr,
    pub secure: bool,
}

/// Why in-band registration was refused (XEP-0077 section 3.1 error cases).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegisterError {
    /// The username is taken: `<conflict/>`.
    Conflict,
    /// Missing or unacceptable fields: `<not-acceptable/>`.
    NotAcceptable,
    /// No account may be created now (e.g. the server's account cap): `<not-allowed/>`.
    NotAllowed,
    /// Anything else: `<internal-server-error/>`.
    Internal,
}

/// What c2s needs from the server.
pub trait Backend: Send + Sync + 'static {
    /// Stored SCRAM keys of a (normalised) username, `None` if there is no such account.
    fn credentials(&self, username: &str)
    -> impl Future<Output = Option<StoredCredentials>> + Send;

    /// Creates an account (XEP-0077 before authentication). Every cheap check (the
    /// name, a conflict, quotas) comes before the expensive key derivation.
    fn register(
        &self,
        username: &str,
        password: &str,
    ) -> impl Future<Output = Result<(), RegisterError>> + Send;

    /// A resource is to be bound; from now on the server reaches the session through
    /// `outbox`. The backend pushes `result` (the bind iq result) onto `outbox` before
    /// the session becomes reachable, so it is the first thing the client reads after
    /// binding. A session already bound to the same full JID must be replaced (it gets
    /// `<conflict/>`). `Err`: the bind is refused with that stanza error and nothing
    /// changed (RFC 6120 7.6.2.1: `<resource-constraint/>` when the account has as many
    /// sessions as it may).
    fn bind(
        &self,
        session: &SessionInfo,
        outbox: Arc<Outbox>,
        result: Bytes,
    ) -> impl Future<Output = Result<(), StanzaError>> + Send;

    /// A stanza from a bound session, already validated and stamped with its `from`.
    fn stanza(&self, session: &SessionInfo, stanza: Stanza) -> impl Future<Output = ()> + Send;

    /// The session ended (stream closed, error, or replaced).
    fn unbind(&self, session: &SessionInfo) -> impl Future<Output = ()> + Send;

    /// After [`Backend::unbind`] of a session with XEP-0198 stream management: stanzas
    /// sent to it that the client never acknowledged, and what was still queued, oldest
    /// first (pubsub notifications left out). The server stores or bounces them as if
    /// they had arrived now for a resource that is gone (RFC 6121 8.5.3.2, 8.5.2).
    fn undelivered(
        &self,
        session: &SessionInfo,
        stanzas: Vec<hydrant_proto::Element>,
    ) -> impl Future<Output = ()> + Send {
        let _ = (session, stanzas);
        async {}
    }
}
