//! hydrant-proto: the XMPP wire.
//!
//! Owns: JIDs (re-exported from the `jid` crate), namespaces, the incremental sans-IO
//! stream reader (bytes in, [`StreamEvent`]s out, with hard limits), the element type and
//! its writer, typed stanzas, stream and stanza error enums, and the per-connection
//! outbound byte queue.
//!
//! Must not depend on: tokio, rustls, sockets, clocks, or any other workspace crate.

pub mod outbox;
pub mod scram;
