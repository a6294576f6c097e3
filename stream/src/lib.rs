//! hydrant-stream: the machinery every XMPP stream shares, whatever it carries.
//!
//! Owns: one connection's I/O ([`Conn`], [`Io`]: reads into a stack buffer inside `poll`,
//! vectored writes from the [`Outbox`], nothing buffered while idle), the TLS upgrade
//! ([`tls`]), stream headers and their checks parameterised by the content namespace
//! ([`header`]: `jabber:client`, `jabber:server`, `jabber:component:accept`), XEP-0138
//! zlib without per-stream deflate state ([`zlib`]), the close
//! with or without a stream error and the lingering close ([`close`]), the liveness timers
//! (XEP-0199 ping, whitespace keepalive: [`liveness`]), the per-connection outbound queue
//! of [`frame`]s with the stream kind's overflow policy ([`outbox`]), per-stream write
//! pacing ([`pace`]), and sans-IO negotiation steps: a SASL server state machine ([`sasl`]:
//! SCRAM-SHA-256/SCRAM-SHA-1/PLAIN for clients, EXTERNAL for servers) and the XEP-0114
//! component handshake ([`handshake`]).
//!
//! Policy is not here: which features a stream offers, whether TLS is required, login
//! throttling, credential lookup and what happens after authentication belong to the
//! crate running the stream (`c2s`, `s2s`).
//!
//! Must not depend on: `c2s`, `s2s`, `storage`, `pubsub` or `server` (only `proto`);
//! `scripts/check-deps.sh` enforces it.

pub mod admission;
pub mod close;
mod conn;
pub mod csi;
pub mod frame;
pub mod handshake;
pub mod header;
pub mod liveness;
pub mod outbox;
pub mod pace;
pub mod sasl;
pub mod sm;
pub mod tls;
pub mod zlib;

pub use conn::{Conn, Io};
pub use frame::{Chain, Frame, Prev, Shared, StanzaKind};
pub use header::{ContentNs, StreamId};
pub use outbox::{Outbox, OverflowPolicy};
