//! The interface through which s2s reaches the rest of the server (the router).
//!
//! s2s knows nothing of accounts, rosters or pubsub: the server crate implements
//! [`S2sBackend`] and hands it to [`crate::S2s`].

use std::future::Future;

use hydrant_proto::{Element, Jid, Stanza, StanzaError};

/// What s2s needs from the server.
pub trait S2sBackend: Send + Sync + 'static {
    /// Whether this server serves `domain` (its own domain, its services' domains).
    fn is_local(&self, domain: &str) -> bool;

    /// A stanza from an authenticated peer: its `from` is in a domain the stream
    /// authenticated and its `to` in one of ours (checked). In `jabber:client`, the
    /// router's namespace.
    fn stanza(&self, from: Jid, stanza: Stanza) -> impl Future<Output = ()> + Send;

    /// A stanza s2s took but could not deliver (the peer is unreachable, refused us, or
    /// its queue is full): the server returns `error` to its sender, unless the stanza is
    /// an error itself or a notification (the server decides).
    fn undeliverable(&self, stanza: Element, error: StanzaError);
}
