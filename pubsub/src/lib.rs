//! hydrant-pubsub: the XEP-0060 / XEP-0163 state machine (filled by the PubSub issue).
//!
//! Owns: nodes, configuration, affiliations, subscriptions, items and the access
//! capability table, as pure synchronous code that returns effects.
//!
//! Must not depend on: tokio, sockets, a database, or any workspace crate but `proto`.
