//! Accept loops for the STARTTLS and direct-TLS (XEP-0368) ports.
//!
//! Every connection is its own task in a `JoinSet`; a semaphore caps how many exist at
//! once and per-address admission (`admission.rs`) caps each host's connection rate and
//! unauthenticated connections (past either, new sockets are closed at once and
//! counted), and a `CancellationToken` tells every stream to end with
//! `<system-shutdown/>`.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use hydrant_stream::tls::TlsStream;

use crate::backend::Backend;
use crate::stream::{Exit, Shared, Stream};
use hydrant_stream::admission::PreauthGuard;

/// Whether a listener speaks TLS from the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// Plain TCP with STARTTLS offered (port 5222).
    StartTls,
    /// TLS first, then XMPP (XEP-0368, port 5223).
    DirectTls,
}

/// Accepts until `shutdown`, then waits for every connection task to finish.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    kind: ListenerKind,
    shared: Arc<Shared<B>>,
    limit: Arc<Semaphore>,
    shutdown: CancellationToken,
) {
    let mut tasks = JoinSet::new();
    info!(addr = ?listener.local_addr().ok(), ?kind, "c2s listening");
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = shutdown.cancelled() => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let (tcp, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: keep serving the connections we have.
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let accepted = Instant::now();
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            metrics::counter!("hydrant_c2s_connections_refused_total", "reason" => "max_connections")
                .increment(1);
            debug!(%peer, "connection limit reached, closing new connection");
            drop(tcp);
            continue;
        };
        let preauth = match shared.admission.admit(peer.ip()) {
            Ok(guard) => guard,
            Err(why) => {
                metrics::counter!("hydrant_c2s_connections_refused_total", "reason" => why.as_str())
                    .increment(1);
                debug!(%peer, reason = why.as_str(), "per-address limit reached, closing new connection");
                drop(tcp);
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let open = metrics::gauge!("hydrant_c2s_connections");
            open.increment(1);
            let conn = Box::pin(handle_admitted(
                tcp,
                peer,
                kind,
                &shared,
                &shutdown,
                accepted,
                Some(preauth),
            ));
            conn.await;
            open.decrement(1);
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// One connection from accept to close, including the STARTTLS upgrade, without
/// per-address admission (the caller accepted it).
pub async fn handle<B: Backend>(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: &Shared<B>,
    shutdown: &CancellationToken,
) {
    handle_admitted(tcp, peer, kind, shared, shutdown, Instant::now(), None).await;
}

async fn handle_admitted<B: Backend>(
    tcp: TcpStream,
    peer: SocketAddr,
    kind: ListenerKind,
    shared: &Shared<B>,
    shutdown: &CancellationToken,
    accepted: Instant,
    preauth: Option<PreauthGuard>,
) {
    // Every step is boxed in its own `let` so that this task's future stays small: an
    // idle connection pays only for the step it is in (a temporary built in the same
    // statement as an `.await` would stay in the task's state for good).
    let (tcp, preauth) = match kind {
        ListenerKind::DirectTls => (tcp, preauth),
        ListenerKind::StartTls => {
            let mut stream = Box::new(Stream::new(tcp, shared, peer, false, accepted, preauth));
            let plain = Box::pin(stream.run(shutdown));
            let Exit::StartTls = plain.await else { return };
            stream.into_parts()
        }
    };
    // The handshake shares the deadline that started at accept (hardening issue: a
    // fresh timeout per step let one client hold a slot for minutes).
    let deadline = accepted + shared.cfg.auth_timeout;
    let accept = Box::pin(accept_tls(tcp, shared, deadline));
    let Some(tls) = accept.await else { return };
    // A stream that is already secure never offers STARTTLS again (RFC 6120 5.4.3.3).
    let mut stream = Box::new(Stream::new(tls, shared, peer, true, accepted, preauth));
    let secure = Box::pin(stream.run(shutdown));
    let _ = secure.await;
}

async fn accept_tls<S, B>(io: S, shared: &Shared<B>, deadline: Instant) -> Option<TlsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
    B: Backend,
{
    let cfg = shared.cfg.tls.clone()?;
    hydrant_stream::tls::accept(io, cfg, deadline).await
}
