//! hydrant-c2s: client-to-server streams.
//!
//! Owns: the c2s listeners (STARTTLS on 5222, direct TLS per XEP-0368 on 5223), stream
//! negotiation (STARTTLS with rustls, SASL SCRAM-SHA-256/SCRAM-SHA-1/PLAIN, XEP-0077
//! registration, resource binding), the bound session's read/write loop with its timers
//! (authentication timeout, XEP-0199 pings, whitespace keepalives).
//!
//! The machinery every stream shares (connection I/O, TLS upgrade, headers, close and
//! lingering, timers, the outbound queue, the SASL state machine) is `hydrant-stream`;
//! this crate is the c2s policy on top: listeners and admission, login throttling, which
//! features to offer, STARTTLS policy, registration, bind and the bound session.
//!
//! Must not depend on: `s2s`, `storage`, `pubsub` or `server`. Everything beyond the
//! stream (accounts, routing, rosters) is reached through the [`Backend`] trait that the
//! server hands in. Sessions are generic over `AsyncRead + AsyncWrite`, so tests drive
//! them over in-memory pipes.

mod backend;
mod config;
mod listener;
mod negotiate;
mod session;
mod sm;
mod stream;
mod throttle;

pub use backend::{Backend, RegisterError, SessionInfo};
pub use config::{C2sConfig, PerIpLimits};
pub use hydrant_stream::admission::Refused;
pub use listener::{ListenerKind, handle, serve};
pub use stream::Shared;

/// Runs one stream over any byte pipe (tests use `tokio::io::duplex`); `secure` says
/// whether the pipe counts as TLS-protected.
pub async fn run_stream_for_test<S, B>(
    io: S,
    peer: std::net::SocketAddr,
    secure: bool,
    shared: &Shared<B>,
    shutdown: &tokio_util::sync::CancellationToken,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    B: Backend,
{
    let now = tokio::time::Instant::now();
    let _ = stream::Stream::new(io, shared, peer, secure, now, None)
        .run(shutdown)
        .await;
}
