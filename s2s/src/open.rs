//! Opening a stream to a peer: resolve and connect, exchange headers, STARTTLS (or direct
//! TLS, XEP-0368) and the restart, up to the features offered on the encrypted stream.
//! What comes next (dialback, stanzas, a verification) is the caller's.

use std::future::poll_fn;
use std::sync::Arc;

use hydrant_proto::{Element, StreamEvent, StreamReader, ns};
use hydrant_stream::{Conn, Io, Outbox, OverflowPolicy};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::{Instant, timeout_at};
use tracing::debug;

use crate::Shared;
use crate::failure::Failure;

/// The write queue of an outbound stream: what the connection has to write next. A peer's
/// further stanzas wait behind it in the peer's own queue (`outbound.rs`), bounded by
/// `queue_bytes`, and move in as it drains.
pub(crate) const WRITE_QUEUE_BYTES: usize = 1 << 20;

/// A socket, plain or TLS: the stream restarts on another type after STARTTLS.
pub(crate) trait AsyncIo: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> AsyncIo for T {}

pub(crate) type BoxIo = Box<dyn AsyncIo>;

/// An open outbound stream, encrypted unless the configuration allows otherwise.
pub(crate) struct Opened {
    pub conn: Conn<BoxIo>,
    /// The id the peer gave the stream (XEP-0220 keys are bound to it).
    pub stream_id: String,
    pub features: Element,
    /// The peer's certificate verifies for its domain (RFC 6125).
    pub trusted: bool,
}

/// The initiating header of an s2s stream (RFC 6120 4.7; `xmlns:db` declares dialback
/// support, XEP-0220 2.1).
pub(crate) fn initiating_header(from: &str, to: &str) -> Vec<u8> {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='{}' xmlns:stream='{}' xmlns:db='{}' \
         from='{}' to='{}' version='1.0'>",
        ns::SERVER,
        ns::STREAM,
        ns::DIALBACK,
        hydrant_stream::header::escape_attr(from),
        hydrant_stream::header::escape_attr(to),
    )
    .into_bytes()
}

/// The next event, or why there is none by `deadline`.
pub(crate) async fn next_event(
    conn: &mut Conn<BoxIo>,
    deadline: Instant,
) -> Result<StreamEvent, Failure> {
    loop {
        return match timeout_at(deadline, poll_fn(|cx| conn.poll_next(cx))).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Io::Event(ev)) => Ok(ev),
            // s2s streams run no client timers.
            Ok(Io::Rearm) => continue,
            Ok(Io::Malformed(e)) => Err(Failure::Protocol(format!("{e:?}"))),
            Ok(Io::Eof | Io::Closed) => Err(Failure::Closed),
            Ok(Io::Overflow) => Err(Failure::Protocol("outbound queue overflow".into())),
            Ok(Io::Failed(e)) => Err(Failure::Io(e.to_string())),
        };
    }
}

/// Connects to `remote` for `local` and negotiates up to the encrypted stream's features.
pub(crate) async fn open<B>(
    shared: &Shared<B>,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<Opened, Failure> {
    let cfg = &shared.cfg;
    let (tcp, target) = timeout_at(
        deadline,
        shared.resolver.connect(remote, cfg.connect_timeout),
    )
    .await
    .map_err(|_| Failure::Timeout)?
    .map_err(Failure::from)?;
    let mut tls = false;
    let mut trusted = false;
    let mut io: BoxIo = Box::new(tcp);
    if target.direct_tls {
        let (t, ok) = tls_connect(shared, io, remote, deadline).await?;
        io = t;
        tls = true;
        trusted = ok;
    }
    loop {
        let outbox = Outbox::with_policy(WRITE_QUEUE_BYTES, OverflowPolicy::Refuse);
        let mut conn = Conn::new(io, StreamReader::new(cfg.limits), outbox);
        let rate = cfg.write_rate(remote);
        if rate > 0 {
            conn.set_pace(Some(Box::new(hydrant_stream::pace::TokenBucket::new(
                rate, rate,
            ))));
        }
        conn.send(initiating_header(local, remote));
        let StreamEvent::Open(header) = next_event(&mut conn, deadline).await? else {
            return Err(Failure::Protocol("no stream header".into()));
        };
        if header.default_ns() != ns::SERVER {
            return Err(Failure::Protocol("not a jabber:server stream".into()));
        }
        // RFC 6120 4.7.3: the receiving entity MUST give an id; dialback keys need it.
        let Some(stream_id) = header.id().map(str::to_owned) else {
            return Err(Failure::Protocol("no stream id".into()));
        };
        let features = match next_event(&mut conn, deadline).await? {
            StreamEvent::Stanza(el) if el.is("features", ns::STREAM) => el,
            // The peer refuses us outright (policy, host-unknown, ...): retrying will
            // not change its mind.
            StreamEvent::Stanza(el) if el.is("error", ns::STREAM) => {
                return Err(Failure::NotAuthorized(format!("stream error: {el}")));
            }
            _ => return Err(Failure::Protocol("no stream features".into())),
        };
        if tls || (features.get_child("starttls", ns::TLS).is_none() && !cfg.require_tls) {
            let mut opened = Opened {
                conn,
                stream_id,
                features,
                trusted,
            };
            if cfg.compression {
                compress(&mut opened, local, remote, deadline).await?;
            }
            return Ok(opened);
        }
        if features.get_child("starttls", ns::TLS).is_none() {
            return Err(Failure::Policy("the peer offers no STARTTLS".into()));
        }
        // RFC 6120 5.4.2: <starttls/>, then <proceed/>, then the handshake and a restart.
        conn.send(&b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"[..]);
        match next_event(&mut conn, deadline).await? {
            StreamEvent::Stanza(el) if el.is("proceed", ns::TLS) => {}
            _ => return Err(Failure::Policy("STARTTLS refused".into())),
        }
        timeout_at(deadline, conn.flush())
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|e| Failure::Io(e.to_string()))?;
        let (t, ok) = tls_connect(shared, conn.into_io(), remote, deadline).await?;
        io = t;
        tls = true;
        trusted = ok;
    }
}

/// XEP-0138 as the initiating server, when the peer offers zlib: `<compress/>`, then
/// both directions compressed and a new stream whose id and features replace the old
/// ones. A `<failure/>` leaves the stream as it was.
pub(crate) async fn compress(
    opened: &mut Opened,
    local: &str,
    remote: &str,
    deadline: Instant,
) -> Result<(), Failure> {
    let zlib = opened
        .features
        .get_child("compression", ns::COMPRESS_FEATURE)
        .is_some_and(|c| {
            c.children()
                .any(|m| m.name() == "method" && m.text().trim() == "zlib")
        });
    if !zlib || opened.conn.is_compressed() {
        return Ok(());
    }
    let conn = &mut opened.conn;
    conn.send(
        &b"<compress xmlns='http://jabber.org/protocol/compress'><method>zlib</method></compress>"
            [..],
    );
    match next_event(conn, deadline).await? {
        StreamEvent::Stanza(el) if el.is("compressed", ns::COMPRESS) => {}
        StreamEvent::Stanza(el) if el.is("failure", ns::COMPRESS) => {
            debug!(%remote, "the peer refused compression: {el}");
            return Ok(());
        }
        _ => return Err(Failure::Protocol("no answer to <compress/>".into())),
    }
    conn.start_compression();
    conn.reader.restart();
    conn.send(initiating_header(local, remote));
    let StreamEvent::Open(header) = next_event(conn, deadline).await? else {
        return Err(Failure::Protocol(
            "no stream header after compression".into(),
        ));
    };
    let Some(stream_id) = header.id().map(str::to_owned) else {
        return Err(Failure::Protocol("no stream id".into()));
    };
    let features = match next_event(conn, deadline).await? {
        StreamEvent::Stanza(el) if el.is("features", ns::STREAM) => el,
        _ => {
            return Err(Failure::Protocol(
                "no stream features after compression".into(),
            ));
        }
    };
    opened.stream_id = stream_id;
    opened.features = features;
    tracing::info!(%local, %remote, "s2s outbound stream compressed (XEP-0138)");
    metrics::counter!("hydrant_s2s_compressed_streams_total", "dir" => "out").increment(1);
    crate::COMPRESSED_OUT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// The client side of the TLS handshake, then the trust decision for `remote`.
async fn tls_connect<B>(
    shared: &Shared<B>,
    io: BoxIo,
    remote: &str,
    deadline: Instant,
) -> Result<(BoxIo, bool), Failure> {
    let name = ServerName::try_from(remote.to_owned())
        .map_err(|_| Failure::Policy("the domain is not a DNS name".into()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&shared.tls_client));
    let stream = timeout_at(deadline, connector.connect(name, io))
        .await
        .map_err(|_| Failure::Timeout)?
        .map_err(|e| {
            debug!(remote, error = %e, "s2s TLS handshake failed");
            // A certificate refused by the handshake (dialback off, so only a trusted
            // one will do) is a policy outcome: trying again will not change it.
            let bad_cert = e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|re| matches!(re, rustls::Error::InvalidCertificate(_)));
            if bad_cert {
                Failure::Policy(format!("the certificate of {remote} is not trusted: {e}"))
            } else {
                Failure::Tls(e.to_string())
            }
        })?;
    let trusted = stream
        .get_ref()
        .1
        .peer_certificates()
        .is_some_and(|chain| shared.trust.verifies(chain, remote));
    Ok((Box::new(stream), trusted))
}
