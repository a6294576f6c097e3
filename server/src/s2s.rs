//! Federation glue: the router as s2s's backend, and s2s as the router's transport to
//! other domains (`router/remote.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use anyhow::Context as _;
use hydrant_proto::{Element, Jid, Stanza, StanzaError};
use hydrant_s2s::{S2s, S2sBackend, S2sConfig};
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::router::Router;
use crate::router::origin::Origin;
use crate::router::remote::{Backpressure, OnRefusal, Refused, RemoteDomains};

/// The router, as s2s sees it.
pub struct Backend {
    router: Weak<Router>,
    domain: String,
}

impl S2sBackend for Backend {
    fn is_local(&self, domain: &str) -> bool {
        // Called for every stanza a peer sends: no allocation unless the name is not
        // lowercase already (domains from parsed JIDs are).
        let domain = if domain.bytes().any(|b| b.is_ascii_uppercase()) {
            std::borrow::Cow::Owned(domain.to_ascii_lowercase())
        } else {
            std::borrow::Cow::Borrowed(domain)
        };
        *domain == self.domain
            || self
                .router
                .upgrade()
                .is_some_and(|r| r.pubsub.is_component(&domain))
    }

    async fn stanza(&self, from: Jid, stanza: Stanza) {
        if let Some(r) = self.router.upgrade() {
            r.route(Origin::Remote(&from), stanza).await;
        }
    }

    fn undeliverable(&self, stanza: Element, error: StanzaError) {
        let Some(r) = self.router.upgrade() else {
            return;
        };
        metrics::counter!("hydrant_s2s_bounced_total").increment(1);
        r.refused(&stanza, error, on_refusal(&r, &stanza));
    }
}

/// Who learns that s2s gave up on `stanza`, by the same rules as a refusal at once
/// (`router/remote.rs`): broadcast presence is nobody's error (RFC 6121 4.2.2); what a
/// pubsub service or a PEP node sent (a notification, an approval request) goes back to
/// the service, never to the sessions behind a PEP owner's bare JID; anything else to
/// its sender.
fn on_refusal(r: &Router, stanza: &Element) -> OnRefusal {
    if stanza.name() == "presence" && matches!(stanza.attr("type"), None | Some("unavailable")) {
        return OnRefusal::Drop;
    }
    let notification = stanza.name() == "message"
        && stanza
            .get_child("event", hydrant_proto::ns::PUBSUB_EVENT)
            .is_some();
    let from_service = stanza
        .attr("from")
        .and_then(|f| Jid::new(f).ok())
        .is_some_and(|j| r.pubsub.is_component(j.domain().as_str()));
    if notification || from_service {
        OnRefusal::ToService
    } else {
        OnRefusal::Bounce
    }
}

/// s2s as the router's transport to other domains.
pub struct Transport(pub S2s<Backend>);

impl RemoteDomains for Transport {
    fn send(&self, _to: &Jid, stanza: Element) -> Result<(), Box<Refused>> {
        // Never refuses here: what cannot be delivered comes back through
        // `Backend::undeliverable`, possibly much later.
        self.0.send(&stanza);
        Ok(())
    }

    fn send_notification(
        &self,
        service: &Jid,
        to: &Jid,
        frame: hydrant_stream::Frame,
    ) -> Result<Option<Box<dyn Backpressure>>, Box<Refused>> {
        Ok(self
            .0
            .send_notification(service.domain().as_str(), to.domain().as_str(), frame)
            .map(|b| Box::new(PeerBacklog(b)) as Box<dyn Backpressure>))
    }
}

/// An s2s peer's backlog as the router's [`Backpressure`].
struct PeerBacklog(hydrant_s2s::Backlog);

impl std::fmt::Debug for PeerBacklog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerBacklog")
            .field("over", &self.0.over())
            .finish()
    }
}

impl Backpressure for PeerBacklog {
    fn over(&self) -> bool {
        self.0.over()
    }

    fn wait(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.0.wait())
    }
}

/// Builds s2s from `[s2s]` and installs it as the router's transport; returns it, to serve
/// its listeners. `None` when federation is off.
pub fn start(cfg: &Config, router: &Arc<Router>) -> anyhow::Result<Option<S2s<Backend>>> {
    let c = &cfg.s2s;
    if !c.enabled {
        info!("federation is off ([s2s] enabled = false)");
        return Ok(None);
    }
    let mut overrides: HashMap<String, Vec<(String, u16)>> = HashMap::new();
    for (domain, targets) in &c.overrides {
        for t in targets {
            let (host, port) = t
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
                .with_context(|| format!("[s2s] overrides: {domain}: {t:?} is not host:port"))?;
            overrides
                .entry(domain.to_ascii_lowercase())
                .or_default()
                .push((host, port));
        }
    }
    let resolver = hydrant_s2s::resolve::Resolver::new(hydrant_s2s::resolve::ResolverConfig {
        nameserver: c.resolver,
        overrides,
        timeout: Duration::from_secs(c.connect_timeout_secs.get()),
    })
    .map_err(|e| anyhow::anyhow!("[s2s] resolver: {e}"))?;
    let trust = hydrant_s2s::tls::Trust::new(roots(c.ca_file.as_deref())?)
        .map_err(|e| anyhow::anyhow!("[s2s] trust: {e}"))?;
    let s2s_cfg = S2sConfig {
        require_tls: c.require_tls,
        allow_dialback: c.allow_dialback,
        connect_timeout: Duration::from_secs(c.connect_timeout_secs.get()),
        negotiate_timeout: Duration::from_secs(c.negotiate_timeout_secs.get()),
        give_up_after: Duration::from_secs(c.give_up_after_secs.get()),
        idle_timeout: Duration::from_secs(c.idle_timeout_secs.get()),
        queue_bytes: c.queue_bytes.get(),
        limits: hydrant_proto::Limits {
            max_stanza_bytes: c.max_stanza_bytes.get(),
            ..hydrant_proto::Limits::default()
        },
        max_inbound: c.max_inbound.get(),
        max_peers: c.max_peers.get(),
        max_verifications: c.max_verifications.get(),
        per_ip: hydrant_stream::admission::PerIpLimits {
            max_unauthenticated: c.max_unauthenticated_per_ip.get(),
            connections_per_sec: c.connections_per_ip_per_sec.get(),
            connection_burst: c.connection_burst_per_ip.get(),
        },
        allow: c.allow.iter().map(|d| d.0.clone()).collect(),
        deny: c.deny.iter().map(|d| d.0.clone()).collect(),
        write_bytes_per_sec: c.write_bytes_per_sec,
        compression: c.compression,
        write_rate_by_domain: c
            .write_rate
            .iter()
            .map(|(d, r)| (d.to_ascii_lowercase(), *r))
            .collect(),
    };
    let backend = Arc::new(Backend {
        router: Arc::downgrade(router),
        domain: cfg.domain.0.clone(),
    });
    let (chain, key) = crate::tls::identity(cfg)?;
    let identity = hydrant_s2s::tls::Identity { chain, key };
    let s2s = S2s::new(s2s_cfg, backend, resolver, trust, &identity)
        .map_err(|e| anyhow::anyhow!("[s2s]: {e}"))?;
    if router.set_remote(Box::new(Transport(s2s.clone()))).is_err() {
        warn!("a transport to other domains was installed already");
    }
    Ok(Some(s2s))
}

/// The system's certificate authorities and the operator's `ca_file`.
fn roots(ca_file: Option<&std::path::Path>) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for e in &native.errors {
        debug!(error = %e, "a system certificate could not be loaded");
    }
    let (added, ignored) = roots.add_parsable_certificates(native.certs);
    debug!(added, ignored, "system certificate authorities");
    if let Some(path) = ca_file {
        let data =
            std::fs::read(path).with_context(|| format!("[s2s] ca_file {}", path.display()))?;
        for cert in rustls_pemfile::certs(&mut data.as_slice()) {
            let cert = cert.with_context(|| format!("[s2s] ca_file {}", path.display()))?;
            roots
                .add(cert)
                .with_context(|| format!("[s2s] ca_file {}", path.display()))?;
        }
    }
    Ok(roots)
}
