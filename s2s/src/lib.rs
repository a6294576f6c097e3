//! hydrant-s2s: server-to-server streams (filled by the Federation issue).
//!
//! Owns: outbound and inbound s2s connections, SRV resolution, STARTTLS, SASL EXTERNAL
//! and dialback, per-domain queues.
//!
//! Must not depend on: `c2s`, `storage`, `pubsub` or `server` (only `proto` and `stream`:
//! connection I/O, headers with `jabber:server`, the SASL machine's EXTERNAL); it reaches
//! the rest only through the router interface handed to it.

pub mod dialback;
pub mod resolve;
