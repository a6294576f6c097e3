//! hydrant-server: the composition root.
//!
//! Owns: the configuration file, the router (local sessions, the server's own services,
//! RFC 6121 rosters, presence and messages), TLS setup, startup and graceful shutdown,
//! and the admin CLI. It is the only crate that depends on all the others; nothing
//! depends on it.

pub mod accounts;
pub mod cli;
pub mod config;
pub mod datadir;
pub mod im;
pub mod malloc;
pub mod pubsub;
pub mod router;
pub mod s2s;
pub mod serve;
pub mod store;
pub mod tls;
pub mod users;
