//! The TLS upgrade of a connection: STARTTLS after `<proceed/>` (RFC 6120 5.4.3.3) or TLS
//! from the first byte (XEP-0368), under a deadline the caller chose.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tracing::debug;

/// A server-side TLS stream over `S`.
pub type TlsStream<S> = tokio_rustls::server::TlsStream<S>;

/// Runs the server side of the TLS handshake over `io`; `None` when it failed or did not
/// finish by `deadline` (the caller closes the socket).
pub async fn accept<S>(
    io: S,
    config: Arc<rustls::ServerConfig>,
    deadline: Instant,
) -> Option<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            debug!(error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!("TLS handshake timed out");
            None
        }
    }
}
