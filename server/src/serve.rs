//! `hydrant serve`: builds everything from the config and runs until a signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hydrant_c2s::{C2sConfig, ListenerKind, PerIpLimits, Shared};
use hydrant_proto::{Element, Limits, ns};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::Config;
use crate::router::{Router, RouterConfig};
use crate::store::Db;

pub fn run(cfg: Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cfg.log_format {
        crate::config::LogFormat::Json => logs.json().init(),
        // Colour codes only for a terminal: a log redirected to a file or to journald
        // must not be full of escape sequences.
        crate::config::LogFormat::Human => {
            use std::io::IsTerminal as _;
            logs.with_ansi(std::io::stderr().is_terminal()).init();
        }
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(serve(cfg, CancellationToken::new(), None))
}

/// Addresses actually bound (ports chosen by the OS when configured as 0), and the router
/// (for embedding, and for tests that stand in for a transport s2s will provide).
#[derive(Clone, Default)]
pub struct Bound {
    pub c2s: Vec<std::net::SocketAddr>,
    pub direct_tls: Vec<std::net::SocketAddr>,
    /// Listeners for peer servers (empty with `[s2s] enabled = false`).
    pub s2s: Vec<std::net::SocketAddr>,
    /// Direct TLS listeners for peer servers (XEP-0368).
    pub s2s_direct_tls: Vec<std::net::SocketAddr>,
    pub router: Option<Arc<Router>>,
}

impl std::fmt::Debug for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bound")
            .field("c2s", &self.c2s)
            .field("direct_tls", &self.direct_tls)
            .field("s2s", &self.s2s)
            .finish_non_exhaustive()
    }
}

/// Runs the server until SIGINT/SIGTERM or `shutdown`; reports bound addresses on `ready`.
pub async fn serve(
    cfg: Config,
    shutdown: CancellationToken,
    ready: Option<tokio::sync::oneshot::Sender<Bound>>,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    // First of all: a second server on this directory must not even bind a port.
    let _data_dir = crate::datadir::lock(&cfg.data_dir).map_err(anyhow::Error::msg)?;
    raise_fd_limit(cfg.c2s.max_connections.get());
    if let Some(addr) = cfg.metrics.listen {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(addr)
            .install()
            .with_context(|| format!("starting the metrics listener on {addr}"))?;
        info!(%addr, "Prometheus metrics at http://{addr}/metrics");
    }
    let store = Arc::new(crate::store::open(&cfg).map_err(anyhow::Error::msg)?);
    let tls = crate::tls::server_config(&cfg)?;
    let router = build_router(&cfg, store)?;
    // Changes the admin CLI recorded while no server ran, then those it records now.
    let watcher = router.clone();
    let watch_stop = shutdown.clone();
    tokio::spawn(async move { watcher.watch_account_changes(watch_stop).await });
    let c = &cfg.c2s;
    let mut c2s = C2sConfig::new(cfg.domain.0.clone());
    c2s.tls = Some(tls);
    c2s.require_tls = c.require_tls;
    c2s.allow_registration = cfg.registration.enabled;
    c2s.registrations_per_ip_per_hour = cfg.registration.per_ip_per_hour;
    c2s.max_registration_attempts = cfg.registration.max_attempts_per_stream.get();
    c2s.limits = Limits {
        max_stanza_bytes: c.max_stanza_bytes.get(),
        max_header_bytes: c.max_header_bytes.get(),
        max_depth: c.max_depth.get(),
        max_attrs: c.max_attributes.get(),
        max_ns_bytes: c.max_namespace_bytes.get(),
        max_attr_bytes: c.max_attribute_value_bytes.get(),
    };
    c2s.preauth_limits = Limits {
        max_stanza_bytes: c
            .preauth_max_stanza_bytes
            .get()
            .min(c.max_stanza_bytes.get()),
        ..c2s.limits
    };
    c2s.auth_timeout = Duration::from_secs(c.auth_timeout_secs.get());
    c2s.header_timeout = Duration::from_secs(c.header_timeout_secs.get());
    c2s.linger = Duration::from_millis(c.linger_ms);
    c2s.per_ip = PerIpLimits {
        max_unauthenticated: c.max_unauthenticated_per_ip.get(),
        connections_per_sec: c.connections_per_ip_per_sec.get(),
        connection_burst: c.connection_burst_per_ip.get(),
    };
    c2s.ping_interval = Duration::from_secs(c.ping_interval_secs.get());
    c2s.ping_timeout = Duration::from_secs(c.ping_timeout_secs.get());
    c2s.whitespace_keepalive = Duration::from_secs(c.whitespace_keepalive_secs.get());
    c2s.outbound_queue_bytes = c.outbound_queue_bytes.get();
    c2s.compression = c.compression;
    c2s.stream_management = c.stream_management;
    c2s.sm_resume_timeout = Duration::from_secs(c.sm_resume_timeout_secs);
    c2s.sm_max_unacked_bytes = c.sm_max_unacked_bytes.get();
    c2s.sm_request_every = c.sm_request_every.get();
    c2s.sm_request_after = Duration::from_millis(c.sm_request_after_ms.get());
    c2s.csi = c.csi;
    c2s.csi_max_held_bytes = c.csi_max_held_bytes.get();
    c2s.csi_max_delay = Duration::from_secs(c.csi_max_delay_secs.get());
    c2s.max_connections = c.max_connections.get();
    c2s.max_auth_failures = c.max_auth_failures.get();
    c2s.auth_failure_max_delay = Duration::from_secs(c.auth_failure_max_delay_secs);
    c2s.auth_failures_per_ip_per_hour = c.auth_failures_per_ip_per_hour;
    c2s.auth_failures_per_account_per_hour = c.auth_failures_per_account_per_hour;
    // RFC 6121 2.6: roster versioning is implemented by the router.
    // RFC 6121 3.4: subscription pre-approval.
    c2s.extra_features = vec![
        Element::new("ver", ns::ROSTERVER),
        Element::new("sub", ns::PRE_APPROVAL),
    ];
    let limit = Arc::new(Semaphore::new(c2s.max_connections));
    let mut bound = Bound {
        router: Some(router.clone()),
        ..Bound::default()
    };
    let s2s = crate::s2s::start(&cfg, &router)?;
    let shared = Shared::new(c2s, router);

    let mut tasks = tokio::task::JoinSet::new();
    for (addrs, kind) in [
        (&c.listen, ListenerKind::StartTls),
        (&c.direct_tls_listen, ListenerKind::DirectTls),
    ] {
        for addr in addrs {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            let local = l.local_addr()?;
            match kind {
                ListenerKind::StartTls => bound.c2s.push(local),
                ListenerKind::DirectTls => bound.direct_tls.push(local),
            }
            tasks.spawn(hydrant_c2s::serve(
                l,
                kind,
                shared.clone(),
                limit.clone(),
                shutdown.clone(),
            ));
        }
    }
    if let Some(s2s) = &s2s {
        let (s2s_gauges, stop) = (s2s.clone(), shutdown.clone());
        tasks.spawn(async move {
            s2s_gauges
                .report_backlog(Duration::from_secs(2), stop.cancelled_owned())
                .await;
        });
        for (addrs, direct) in [(&cfg.s2s.listen, false), (&cfg.s2s.direct_tls_listen, true)] {
            for addr in addrs {
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the s2s listener {addr}"))?;
                let local = l.local_addr()?;
                if direct {
                    bound.s2s_direct_tls.push(local);
                } else {
                    bound.s2s.push(local);
                }
                let (s2s, stop) = (s2s.clone(), shutdown.clone());
                tasks.spawn(async move { s2s.serve(l, direct, stop.cancelled_owned()).await });
            }
        }
    }
    info!(domain = %cfg.domain.0, c2s = ?bound.c2s, direct_tls = ?bound.direct_tls, s2s = ?bound.s2s, "hydrant ready");
    if let Some(tx) = ready {
        let _ = tx.send(bound);
    }
    let signals = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        signals.cancel();
    });
    while tasks.join_next().await.is_some() {}
    info!("stopped");
    Ok(())
}

/// The router with its pubsub services over `store` (also what the admin CLI uses to
/// apply an account removal when no server runs).
pub fn build_router(
    cfg: &Config,
    store: Arc<hydrant_storage::SqliteStore>,
) -> anyhow::Result<Arc<Router>> {
    let hub = crate::pubsub::Hub::open(
        store.clone(),
        &pubsub_services(cfg),
        pubsub_service_config(cfg, true),
        crate::pubsub::relations::StoreRelations {
            store: store.clone(),
            domain: cfg.domain.0.clone(),
            admins: cfg.pubsub.admins.clone().into(),
        },
    )?;
    Ok(Router::new(
        cfg.domain.0.clone(),
        Db::new(store),
        RouterConfig {
            offline_max: cfg.offline.max_messages_per_user,
            registration_enabled: cfg.registration.enabled,
            min_password_length: cfg.registration.min_password_length,
            max_accounts: cfg.registration.max_accounts,
            scram_iterations: hydrant_proto::scram::DEFAULT_ITERATIONS,
            max_roster_items: cfg.roster.max_items,
            max_directed_presence: cfg.presence.max_directed_per_session,
            pace_queued_bytes: cfg.pubsub.pace_queued_bytes,
            pace_max_wait: Duration::from_millis(cfg.pubsub.pace_max_wait_ms),
            read_bytes_per_ip_per_sec: cfg.pubsub.read_bytes_per_ip_per_sec,
            read_burst_bytes_per_ip: cfg.pubsub.read_burst_bytes_per_ip,
            // Half the cores by default: reads run beside the fan-out (they no longer
            // wait for the service lock), and must leave it most of the machine.
            max_concurrent_reads: match cfg.pubsub.max_concurrent_reads {
                0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
                n => n,
            },
            max_roster_groups: cfg.roster.max_groups_per_item.get(),
            max_roster_name_bytes: cfg.roster.max_name_bytes.get(),
            max_pending_subscriptions: cfg.roster.max_pending_subscriptions,
            max_sessions_per_account: cfg.c2s.max_sessions_per_account.get(),
            caps_cache_bytes: cfg.pubsub.caps_cache_bytes,
            max_remote_notify_resources: cfg.pubsub.max_remote_notify_resources,
            chain_notifications: cfg.c2s.compression,
            pep: cfg.pubsub.pep,
            admin: crate::im::adhoc::AdminConfig {
                admins: cfg.admin.admins.clone().into(),
                max_accounts_per_command: cfg.admin.max_accounts_per_command.get(),
                max_listed: cfg.admin.max_listed.get(),
                max_announcement_bytes: cfg.admin.max_announcement_bytes.get(),
            },
            max_blocklist_items: cfg.blocking.max_items,
            private_quota: hydrant_storage::PrivateQuota {
                max_bytes: cfg.private.max_bytes_per_account.get(),
                max_namespaces: cfg.private.max_namespaces_per_account.get(),
            },
            max_vcard_bytes: cfg.vcard.max_bytes.get(),
            multicast: crate::im::multicast::MulticastConfig {
                enabled: cfg.multicast.enabled,
                max_addresses: cfg.multicast.max_addresses.get(),
                chunk: cfg.multicast.chunk.get(),
                cache: Duration::from_secs(cfg.multicast.cache_secs.get()),
            },
        },
        hub,
    ))
}

/// The configured pubsub components, `pubsub.<domain>` by default.
fn pubsub_services(cfg: &Config) -> Vec<(String, hydrant_pubsub::ServiceConfig)> {
    let mut addrs: Vec<String> = cfg.pubsub.services.iter().map(|d| d.0.clone()).collect();
    if addrs.is_empty() {
        addrs.push(format!("pubsub.{}", cfg.domain.0));
    }
    addrs
        .into_iter()
        .map(|a| (a, pubsub_service_config(cfg, false)))
        .collect()
}

fn pubsub_service_config(cfg: &Config, pep: bool) -> hydrant_pubsub::ServiceConfig {
    use crate::config::CreateWho;
    use hydrant_pubsub::CreatePolicy;
    let p = &cfg.pubsub;
    let mut sc = if pep {
        hydrant_pubsub::ServiceConfig::pep()
    } else {
        hydrant_pubsub::ServiceConfig::default()
    };
    sc.max_items_cap = p.max_items_cap.get();
    sc.max_payload_bytes = p.max_payload_bytes.get();
    sc.max_page_items = p.max_page_items.get();
    sc.max_nodes_per_creator = p.max_nodes_per_account;
    sc.max_subscriptions_per_jid = p.max_subscriptions_per_account.get();
    sc.max_config_text_bytes = p.max_config_text_bytes.get();
    // A page must fit comfortably in the requester's outbound queue.
    sc.max_page_bytes = (cfg.c2s.outbound_queue_bytes.get() / 4).clamp(4096, 256 * 1024);
    if !pep {
        sc.create_policy = match p.create {
            CreateWho::Local => CreatePolicy::LocalUsers(cfg.domain.0.clone()),
            CreateWho::Anyone => CreatePolicy::Anyone,
            CreateWho::Admins => CreatePolicy::Nobody,
        };
    }
    sc
}

/// Every connection is a file descriptor: lift the soft limit to the hard one (often 1024
/// vs much more) and warn when even that cannot hold `max_connections`.
fn raise_fd_limit(max_connections: usize) {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) if (n as usize) < max_connections + 64 => {
            tracing::warn!(
                limit = n,
                max_connections,
                "the open-file limit is below [c2s] max_connections"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
