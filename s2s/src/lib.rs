//! hydrant-s2s: server-to-server streams (filled by the Federation issue).
//!
//! Owns: outbound and inbound s2s connections, SRV resolution, STARTTLS, SASL EXTERNAL
//! and dialback, per-domain queues.
//!
//! Must not depend on: `c2s`, `storage` or `server`; it reaches the rest only through the
//! router interface handed to it.
