//! The engine shared by `firehose`, `feeds` and `limit`: publishers that own nodes,
//! subscribers that follow some of them, a publish schedule, and the measurement of
//! every notification that comes back.
//!
//! Phases: (optional) registration; publishers log in and create their nodes;
//! subscribers log in and subscribe (bounded concurrency); server CPU/RSS before;
//! publish the schedule at `--rate` (or as fast as acks allow) with at most
//! `--in-flight` publishes unacknowledged; wait until every live subscriber has what it
//! should have (or nothing arrived for `--drain-secs`); server CPU/RSS after; close.
//!
//! Every item id is `{seq}-{CLOCK_MONOTONIC ns at send}`; a subscriber marks `seq` in
//! its own bitmap (duplicates are counted, not double-counted), records
//! now − sent in a shared histogram, and counts into shared atomics for the progress
//! line. Loss is computed per subscriber at the end: expected (the acknowledged
//! publishes on the nodes it follows) minus distinct items received.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hist::Histogram;
use crate::pubrt::PublisherRuntime;
use crate::report::{self, AbortOnDrop, Counters, Latency, PhaseResult};
use crate::sys;
use crate::target::{AccountArgs, ServerArgs, Sources};
use crate::xmpp::conn::{
    self, Conn, ConnError, ConnWriter, ErrorKind, Registered, Stage, Target, TlsMode,
};
use crate::xmpp::pubsub::{self as ps, ItemTemplate};
use crate::xmpp::scan;

/// File descriptors kept free for everything that is not a client connection.
const FD_MARGIN: u64 = 64;

/// Which address a subscriber subscribes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscribeJid {
    /// The bound full JID: delivered to that resource, no presence needed.
    Full,
    /// The bare JID: servers deliver to available resources, so initial presence is sent.
    Bare,
}

/// Options common to the pubsub scenarios.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Items to publish in total.
    #[arg(long, default_value_t = 600)]
    pub items: u64,
    /// Size of one `<item>` (an Atom entry of a photo upload, padded).
    #[arg(long, default_value_t = 2048)]
    pub item_bytes: usize,
    /// Target publish rate in items per second (all publishers together);
    /// 0 = as fast as acknowledgements allow.
    #[arg(long, default_value_t = 60.0)]
    pub rate: f64,
    /// Publishes sent and not yet acknowledged, at most.
    #[arg(long, default_value_t = 4)]
    pub in_flight: u32,
    /// Subscribe the full JID (no presence needed) or the bare JID (sends presence).
    #[arg(long, value_enum, default_value = "full")]
    pub subscribe_jid: SubscribeJid,
    /// Subscribers read at most this many bytes per second (slow consumers, to
    /// exercise the server's slow-consumer policy).
    #[arg(long)]
    pub throttle_bytes_per_sec: Option<u64>,
    /// With `--throttle-bytes-per-sec`: only the first this many subscribers are
    /// slow (default: all). The run does not wait for slow subscribers, and what they
    /// miss is reported apart from loss.
    #[arg(long)]
    pub throttled: Option<u64>,
    /// The first this many subscribers tell the server they are inactive (XEP-0352
    /// `<inactive/>`) once subscribed, and active again when publishing ends; their
    /// reads (TCP wake-ups) during publishing are counted apart (`mobile`).
    #[arg(long)]
    pub inactive: Option<u64>,
    /// Stop waiting for notifications after this long without one arriving.
    #[arg(long, default_value_t = 10)]
    pub drain_secs: u64,
    /// Connections negotiating at the same time during setup.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Create the accounts first (XEP-0077; existing accounts are fine).
    #[arg(long)]
    pub register: bool,
    /// Server process to measure (CPU from /proc/PID/stat, RSS from /proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// `pubsub#max_items` of the created nodes (default: the server's).
    #[arg(long)]
    pub max_items: Option<u32>,
    /// Node names start with this (default: `hl-` and the time, unique per run).
    #[arg(long)]
    pub node_prefix: Option<String>,
    /// The pubsub service (default: `pubsub.` + domain).
    #[arg(long)]
    pub pubsub_service: Option<String>,
    /// Publishers log in to this server (HOST:PORT) instead of `--server`: the
    /// federated scenario, subscribers on one server following a node of another's
    /// service (`--pubsub-service`) across s2s. Needs `--publisher-domain`.
    #[arg(long, requires = "publisher_domain")]
    pub publisher_server: Option<String>,
    /// The publishers' server's domain (with `--publisher-server`).
    #[arg(long, requires = "publisher_server")]
    pub publisher_domain: Option<String>,
    /// The publishers' server process, measured like `--server-pid`.
    #[arg(long)]
    pub publisher_server_pid: Option<u32>,
    /// Publisher accounts are this prefix + node number.
    #[arg(long, default_value = "pub")]
    pub publisher_prefix: String,
    /// Exit 0 even if notifications were lost or setup failed.
    #[arg(long)]
    pub allow_loss: bool,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl LoadArgs {
    pub fn node_prefix(&self) -> String {
        self.node_prefix.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("hl-{secs}")
        })
    }
}

/// What to run: nodes, who follows what, and which node each publish goes to.
#[derive(Debug)]
pub struct Plan {
    pub scenario: &'static str,
    /// Node names; node `f` is owned (created and published to) by publisher `f`.
    pub nodes: Vec<String>,
    /// Per subscriber: the nodes it follows.
    pub follows: Vec<Vec<u32>>,
    /// Per publish sequence number: its node.
    pub schedule: Vec<u32>,
    /// Scenario-specific facts for the report (e.g. Zipf exponent).
    pub extra: serde_json::Value,
    /// `--in-flight` applies to each publisher on its own (each publishes its own
    /// schedule as fast as its acks allow) rather than to all of them together.
    pub in_flight_per_publisher: bool,
}

/// Figures shared by every task while the run goes on.
#[derive(Debug)]
struct Shared {
    /// Distinct items received, per subscriber.
    received: Vec<AtomicU64>,
    duplicates: AtomicU64,
    /// Items whose id this run did not publish (ignored).
    foreign: AtomicU64,
    delivered: AtomicU64,
    last_delivery_ns: AtomicU64,
    latency: Histogram,
    /// Per publish: the instant it was sent (0: not yet).
    sent_ns: Vec<AtomicU64>,
    acked: Vec<AtomicBool>,
    acks: AtomicU64,
    publish_failures: Counters,
    ack_latency: Histogram,
    /// Subscribers whose stream ended during the run, and why.
    ended: Vec<AtomicBool>,
    /// Reads that returned data during publishing, per subscriber.
    reads: Vec<AtomicU64>,
    /// Of those, reads after at least [`WAKE_GAP`] of silence on that connection: how
    /// often a phone's radio would have to wake up.
    wakeups: Vec<AtomicU64>,
    /// Distinct seconds of the run in which data arrived, per subscriber: how long the
    /// radio would be busy.
    busy_secs: Vec<AtomicU64>,
}

/// Silence after which the next read counts as a wake-up (mobile radios stay up for a
/// few seconds after traffic; a second is a conservative gap).
const WAKE_GAP: Duration = Duration::from_secs(1);

/// How one subscriber's run ended.
#[derive(Debug)]
struct SubEnd {
    index: usize,
    /// `None`: still connected when the run ended.
    error: Option<String>,
    policy_violation: bool,
}

#[derive(Debug, Serialize)]
pub struct PubsubResult {
    scenario: &'static str,
    server: String,
    domain: String,
    service: String,
    tls: TlsMode,
    /// XEP-0138 zlib on every connection.
    zlib: bool,
    auth: crate::xmpp::sasl::Mechanism,
    subscribers: u64,
    nodes: usize,
    follows_per_subscriber: f64,
    items: u64,
    item_bytes: usize,
    rate: f64,
    in_flight: u32,
    /// `in_flight` is per publisher (`publishers`), not for all publishers together.
    in_flight_per_publisher: bool,
    subscribe_jid: SubscribeJid,
    throttle_bytes_per_sec: Option<u64>,
    throttled_subscribers: u64,
    extra: serde_json::Value,
    registration: Option<PhaseResult>,
    publishers_setup: PhaseResult,
    subscribers_setup: PhaseResult,
    publish: PublishResult,
    delivery: DeliveryResult,
    server_process: Option<ServerProcess>,
    generator: GeneratorResult,
    /// `--zlib`: what the compressed streams read during publishing, on the wire and
    /// inflated.
    wire: Option<WireResult>,
    /// `--inactive`: XEP-0352 subscribers' wake-ups during publishing.
    csi: Option<CsiResult>,
}

#[derive(Debug, Serialize)]
struct CsiResult {
    inactive_subscribers: u64,
    inactive: CsiGroup,
    /// The same figures for the run's active subscribers.
    active: CsiGroup,
    /// Server RSS when publishing ended, with everything held for inactive subscribers.
    server_rss_kib_end_of_publishing: Option<u64>,
}

/// Per subscriber per minute of publishing, (mean, max) over the group.
#[derive(Debug, Serialize)]
// The JSON names carry the unit, as the rest of the report's do.
#[allow(clippy::struct_field_names)]
struct CsiGroup {
    /// Reads after at least a second of silence: radio wake-ups.
    wakeups_per_min: (f64, f64),
    /// Seconds in which data arrived: radio busy time.
    busy_secs_per_min: (f64, f64),
    /// Reads that returned data.
    reads_per_min: (f64, f64),
}

#[derive(Debug, Serialize)]
struct WireResult {
    compressed_bytes: u64,
    plain_bytes: u64,
    /// compressed / plain.
    ratio: f64,
    compressed_bytes_per_notification: f64,
    plain_bytes_per_notification: f64,
}

#[derive(Debug, Serialize)]
struct PublishResult {
    sent: u64,
    acked: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    secs: f64,
    per_sec: f64,
    ack_latency: Option<Latency>,
}

#[derive(Debug, Serialize)]
struct DeliveryResult {
    expected: u64,
    received: u64,
    duplicates: u64,
    foreign: u64,
    /// expected − received over subscribers not disconnected by policy.
    loss: u64,
    subscribers_with_loss: u64,
    /// Subscribers the server disconnected with `<policy-violation/>` (slow consumers).
    policy_disconnects: u64,
    /// Items those subscribers did not get (the policy's doing, not loss).
    missed_by_policy_disconnected: u64,
    /// Items throttled subscribers still connected had not read yet when the run ended.
    throttled_behind: u64,
    /// Other subscriber streams that ended during the run, by reason.
    other_disconnects: BTreeMap<String, u64>,
    /// First publish sent → last notification received.
    window_secs: f64,
    per_sec: f64,
    latency: Option<Latency>,
}

#[derive(Debug, Serialize)]
struct ServerProcess {
    pid: u32,
    cpu_secs: f64,
    cpu_secs_per_1000: Option<f64>,
    rss_before_kib: u64,
    rss_after_kib: u64,
    hwm_after_kib: u64,
}

#[derive(Debug, Serialize)]
struct GeneratorResult {
    cpu_secs: f64,
    cpu_secs_per_1000: Option<f64>,
    rss_kib: u64,
    hwm_kib: u64,
}

/// Signals to something that runs alongside the publish phase (`hostile`'s attackers):
/// `started` is cancelled just before the first publish, `ended` once the last
/// publish is acknowledged (or given up on), before the drain.
#[derive(Debug, Clone, Default)]
pub struct PublishPhase {
    pub started: CancellationToken,
    pub ended: CancellationToken,
}

/// Run `plan` against the server; prints the summary, writes JSON, and fails on loss.
pub async fn run(
    server: &ServerArgs,
    accounts: &AccountArgs,
    load: &LoadArgs,
    plan: Plan,
) -> Result<PubsubResult, String> {
    let result = measure(server, accounts, load, plan, &PublishPhase::default()).await?;
    print!("{}", result.describe());
    if let Some(path) = &load.json {
        report::write_json(path, &result).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("JSON result written to {}", path.display());
    }
    check(&result, load)?;
    Ok(result)
}

/// Unless `--allow-loss`: an error for lost notifications, failed setup or publishes.
pub fn check(result: &PubsubResult, load: &LoadArgs) -> Result<(), String> {
    if !load.allow_loss {
        if result.delivery.loss > 0 {
            return Err(format!("{} notifications LOST", result.delivery.loss));
        }
        if result.subscribers_setup.failed > 0 || result.publishers_setup.failed > 0 {
            return Err("some connections failed during setup".to_owned());
        }
        if result.publish.failed > 0 {
            return Err("some publishes failed".to_owned());
        }
    }
    Ok(())
}

/// Run `plan` against the server and return the figures (nothing printed but progress;
/// no JSON, no loss check). `phase` is signalled when publishing starts and ends.
pub async fn measure(
    server: &ServerArgs,
    accounts: &AccountArgs,
    load: &LoadArgs,
    plan: Plan,
    phase: &PublishPhase,
) -> Result<PubsubResult, String> {
    let users = accounts.users;
    let publishers = plan.nodes.len() as u64;
    let nofile = sys::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    if users + publishers + FD_MARGIN > nofile.soft {
        return Err(format!(
            "{users} subscribers + {publishers} publishers need more file descriptors than \
             RLIMIT_NOFILE ({}); run fewer per process",
            nofile.soft
        ));
    }
    if load.concurrency == 0 || load.in_flight == 0 {
        return Err("--concurrency and --in-flight must be at least 1".to_owned());
    }
    if !(load.rate >= 0.0 && load.rate.is_finite()) {
        return Err("--rate must be 0 (as fast as acks allow) or positive".to_owned());
    }
    let target = server.target(accounts, load.subscribe_jid == SubscribeJid::Bare)?;
    let sources = Arc::new(server.sources()?);
    let service = load
        .pubsub_service
        .clone()
        .unwrap_or_else(|| format!("pubsub.{}", server.domain));
    let follows_total: u64 = plan.follows.iter().map(|f| f.len() as u64).sum();
    let rate_text = if load.rate > 0.0 {
        format!("{}/s", load.rate)
    } else {
        "as fast as acks allow".to_owned()
    };
    println!(
        "{}: {users} subscribers ({} JID), {} node(s), {:.1} follows per subscriber, {} items of ~{} bytes at {rate_text} ({} in flight){}; server {} domain {} service {service}, tls {}{}, auth {}",
        plan.scenario,
        match load.subscribe_jid {
            SubscribeJid::Full => "full",
            SubscribeJid::Bare => "bare",
        },
        plan.nodes.len(),
        follows_total as f64 / users.max(1) as f64,
        load.items,
        load.item_bytes,
        load.in_flight,
        load.throttle_bytes_per_sec
            .map(|b| format!(", subscribers throttled to {b} B/s"))
            .unwrap_or_default(),
        target.server,
        target.domain,
        target.tls,
        if target.zlib { " + zlib" } else { "" },
        target.mechanism.name(),
    );

    let sub_name = |i: u64| conn::username(&accounts.user_prefix, accounts.offset + i);
    let pub_name = |f: u64| conn::username(&load.publisher_prefix, f);

    // Publishers on their own server in the federated scenario, else beside the
    // subscribers.
    let pub_target = match (&load.publisher_server, &load.publisher_domain) {
        (Some(addr), Some(domain)) => {
            let mut s = server.clone();
            s.server.clone_from(addr);
            s.domain.clone_from(domain);
            s.target(accounts, false)?
        }
        _ => target.clone(),
    };
    let registration = if load.register {
        let pub_names: Vec<String> = (0..publishers).map(pub_name).collect();
        let p = register_accounts(&pub_target, &sources, pub_names, load.concurrency).await;
        print!("{}", p.describe("registration (publishers)"));
        let names: Vec<String> = (0..users).map(sub_name).collect();
        let r = register_accounts(&target, &sources, names, load.concurrency).await;
        print!("{}", r.describe("registration"));
        Some(r)
    } else {
        None
    };

    // Publishers: log in, create the node. One at a time: ejabberd's Mnesia aborts
    // concurrent node creations (`cyclic` lock) with <internal-server-error/>. Their
    // connections live on a runtime of their own (see `pubrt.rs`).
    let pub_rt = PublisherRuntime::start().map_err(|e| format!("publisher runtime: {e}"))?;
    let start = Instant::now();
    let pub_counters = Arc::new(Counters::default());
    let mut set = JoinSet::new();
    let one = Arc::new(Semaphore::new(1));
    for (f, node) in plan.nodes.iter().enumerate() {
        let permit = one.clone().acquire_owned().await.expect("semaphore open");
        let (target, sources, counters) =
            (pub_target.clone(), sources.clone(), pub_counters.clone());
        let (user, node, service) = (pub_name(f as u64), node.clone(), service.clone());
        let max_items = load.max_items;
        set.spawn_on(
            async move {
                let t0 = Instant::now();
                let r = create_node(
                    target,
                    sources.pick(f as u64),
                    (&user, f as u64),
                    &service,
                    &node,
                    max_items,
                )
                .await;
                drop(permit);
                match r {
                    Ok(c) => {
                        counters.success(t0.elapsed());
                        Some((f, c))
                    }
                    Err(e) => {
                        counters.failure(format!("{node}: {}", e.reason()));
                        None
                    }
                }
            },
            pub_rt.handle(),
        );
    }
    let mut pub_conns: Vec<Option<Conn>> = (0..plan.nodes.len()).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        if let Ok(Some((f, c))) = r {
            pub_conns[f] = Some(c);
        }
    }
    let publishers_setup = PhaseResult::from_counters(&pub_counters, publishers, start.elapsed());
    print!(
        "{}",
        publishers_setup.describe("publishers (login + create node)")
    );
    if publishers_setup.ok == 0 {
        return Err("no publisher could create its node".to_owned());
    }

    // Subscribers: log in, subscribe, then receive until cancelled.
    let sem = Arc::new(Semaphore::new(load.concurrency));
    let items = load.items;
    let shared = Arc::new(Shared {
        received: (0..users).map(|_| AtomicU64::new(0)).collect(),
        duplicates: AtomicU64::new(0),
        foreign: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        last_delivery_ns: AtomicU64::new(0),
        latency: Histogram::default(),
        sent_ns: (0..items).map(|_| AtomicU64::new(0)).collect(),
        acked: (0..items).map(|_| AtomicBool::new(false)).collect(),
        acks: AtomicU64::new(0),
        publish_failures: Counters::default(),
        ack_latency: Histogram::default(),
        ended: (0..users).map(|_| AtomicBool::new(false)).collect(),
        reads: (0..users).map(|_| AtomicU64::new(0)).collect(),
        wakeups: (0..users).map(|_| AtomicU64::new(0)).collect(),
        busy_secs: (0..users).map(|_| AtomicU64::new(0)).collect(),
    });
    // Inactive subscribers are told to be active again when publishing ends.
    let wake = CancellationToken::new();
    let cancel = CancellationToken::new();
    let sub_counters = Arc::new(Counters::default());
    let ready: Arc<Vec<AtomicBool>> =
        Arc::new((0..users).map(|_| AtomicBool::new(false)).collect());
    let mut subs = JoinSet::new();
    let start = Instant::now();
    let progress = AbortOnDrop(report::spawn_progress(
        "subscribe",
        sub_counters.clone(),
        users,
        start,
    ));
    let plan = Arc::new(plan);
    for i in 0..users {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (target, sources, counters) = (target.clone(), sources.clone(), sub_counters.clone());
        let (shared, cancel, ready, plan) =
            (shared.clone(), cancel.clone(), ready.clone(), plan.clone());
        let inactive = is_inactive(load, i);
        let wake = wake.clone();
        let (user, service, mode) = (sub_name(i), service.clone(), load.subscribe_jid);
        let throttle = load
            .throttle_bytes_per_sec
            .filter(|_| is_throttled(load, i));
        let index = accounts.offset + i;
        subs.spawn(async move {
            let t0 = Instant::now();
            let up = async {
                let mut c = Conn::open(target.clone(), sources.pick(index))
                    .await?
                    .login(&user, index)
                    .await?;
                let jid = match mode {
                    SubscribeJid::Full => c.jid().to_owned(),
                    SubscribeJid::Bare => format!("{user}@{}", target.domain),
                };
                for &n in &plan.follows[i as usize] {
                    let node = &plan.nodes[n as usize];
                    c.iq(
                        Stage::Pubsub,
                        "set",
                        &service,
                        &ps::subscribe_payload(node, &jid),
                    )
                    .await?;
                }
                if inactive {
                    c.send_raw(Stage::Pubsub, b"<inactive xmlns='urn:xmpp:csi:0'/>")
                        .await?;
                }
                Ok::<_, ConnError>(c)
            }
            .await;
            let conn = match up {
                Ok(c) => {
                    counters.success(t0.elapsed());
                    ready[i as usize].store(true, Ordering::Relaxed);
                    drop(permit);
                    c
                }
                Err(e) => {
                    counters.failure(e.reason());
                    drop(permit);
                    return None;
                }
            };
            let wake = inactive.then_some(wake);
            Some(receive(conn, i as usize, items, throttle, &shared, cancel, wake).await)
        });
    }
    let all = u32::try_from(load.concurrency).unwrap_or(u32::MAX);
    let all_permits = sem.acquire_many(all).await.expect("semaphore open");
    drop(all_permits);
    drop(progress);
    let subscribers_setup = PhaseResult::from_counters(&sub_counters, users, start.elapsed());
    print!(
        "{}",
        subscribers_setup.describe("subscribers (login + subscribe)")
    );

    // Before.
    let server_before = match load.server_pid {
        Some(pid) => Some((
            sys::process_cpu_time(pid).map_err(|e| format!("server pid {pid}: {e}"))?,
            sys::memory(Some(pid)).map_err(|e| format!("server pid {pid}: {e}"))?,
        )),
        None => None,
    };
    let pub_server_before = match load.publisher_server_pid {
        Some(pid) => Some(
            sys::process_cpu_time(pid).map_err(|e| format!("publisher server pid {pid}: {e}"))?,
        ),
        None => None,
    };
    let (u0, s0) = sys::self_cpu_time();

    // Publish.
    let template = Arc::new(ItemTemplate::new(load.item_bytes));
    // `--in-flight` permits for all publishers together, or for each one on its own.
    let shared_in_flight = Arc::new(Semaphore::new(load.in_flight as usize));
    let in_flight_of: Vec<Arc<Semaphore>> = (0..plan.nodes.len())
        .map(|_| {
            if plan.in_flight_per_publisher {
                Arc::new(Semaphore::new(load.in_flight as usize))
            } else {
                shared_in_flight.clone()
            }
        })
        .collect();
    let mut writers = Vec::new();
    let mut readers = JoinSet::new();
    let pub_cancel = CancellationToken::new();
    for (f, c) in pub_conns.iter_mut().enumerate() {
        if let Some(conn) = c.take() {
            let (mut reader, writer) = conn.split();
            writers.push(Some(writer));
            let (shared, in_flight, cancel) =
                (shared.clone(), in_flight_of[f].clone(), pub_cancel.clone());
            readers.spawn_on(async move {
                loop {
                    // Biased: once the run is over, the generator closes these streams
                    // itself; the server's answering close must not count as a failure
                    // just because this task ran late and both branches were ready.
                    let r = tokio::select! {
                        biased;
                        () = cancel.cancelled() => return,
                        r = reader.receive(|elem| on_publisher_element(elem, &shared, &in_flight)) => r,
                    };
                    if let Err(e) = r {
                        shared.publish_failures.failure(format!("publisher stream: {}", e.reason()));
                        return;
                    }
                }
            }, pub_rt.handle());
        } else {
            writers.push(None);
        }
    }
    phase.started.cancel();
    let wire0 = (
        crate::xmpp::zlib::WIRE_IN.load(Ordering::Relaxed),
        crate::xmpp::zlib::PLAIN_IN.load(Ordering::Relaxed),
    );
    let publish_start = Instant::now();
    let first_ns = sys::monotonic_ns();
    let progress = AbortOnDrop(spawn_run_progress(shared.clone(), items, publish_start));
    // One publishing task per lane: the whole schedule in one lane, or (per-publisher
    // in-flight) one lane per publisher, so that a slow ack holds back only its own
    // publisher. Each lane takes the writers of its nodes and gives them back at the end.
    let mut publishing = Vec::new();
    for seqs in lanes(&plan.schedule, plan.in_flight_per_publisher) {
        let mut lane_writers: Vec<Option<ConnWriter>> = (0..writers.len()).map(|_| None).collect();
        for &seq in &seqs {
            let f = plan.schedule[seq as usize] as usize;
            if lane_writers[f].is_none() {
                lane_writers[f] = writers[f].take();
            }
        }
        let in_flight = in_flight_of[plan.schedule[seqs[0] as usize] as usize].clone();
        let (rate, plan, shared) = (load.rate, plan.clone(), shared.clone());
        let (template, service) = (template.clone(), service.clone());
        publishing.push(pub_rt.handle().spawn(async move {
            let mut writers = lane_writers;
            let (mut sent, mut skipped) = (0u64, 0u64);
            for seq in seqs {
                if rate > 0.0 {
                    tokio::time::sleep_until(
                        publish_start + Duration::from_secs_f64(seq as f64 / rate),
                    )
                    .await;
                }
                let permit = in_flight.acquire().await.expect("semaphore open");
                let node_idx = plan.schedule[seq as usize] as usize;
                let Some(writer) = writers[node_idx].as_mut() else {
                    skipped += 1;
                    continue; // its publisher failed setup: not expected by anyone
                };
                permit.forget();
                let now = sys::monotonic_ns();
                shared.sent_ns[seq as usize].store(now, Ordering::Relaxed);
                let iq = template.publish(&service, &plan.nodes[node_idx], seq, now);
                if let Err(e) = writer.send(iq.as_bytes()).await {
                    shared
                        .publish_failures
                        .failure(format!("send: {}", e.reason()));
                    writers[node_idx] = None;
                    in_flight.add_permits(1);
                    continue;
                }
                sent += 1;
            }
            (sent, skipped, writers)
        }));
    }
    let (mut sent, mut skipped) = (0u64, 0u64);
    for lane in publishing {
        let (s, k, lane_writers) = lane.await.map_err(|e| format!("publisher task: {e}"))?;
        sent += s;
        skipped += k;
        for (f, w) in lane_writers.into_iter().enumerate() {
            if w.is_some() {
                writers[f] = w;
            }
        }
    }
    // Wait for the last acknowledgements.
    let ack_deadline = Duration::from_secs(load.drain_secs.max(1));
    let mut last = (shared.acks.load(Ordering::Relaxed), Instant::now());
    loop {
        let acks = shared.acks.load(Ordering::Relaxed) + shared.publish_failures.failed();
        if acks >= sent {
            break;
        }
        if acks != last.0 {
            last = (acks, Instant::now());
        } else if last.1.elapsed() > ack_deadline {
            shared
                .publish_failures
                .failure("no acknowledgement (timeout)".to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let publish_secs = publish_start.elapsed().as_secs_f64();
    pub_cancel.cancel();
    phase.ended.cancel();
    // What the inactive subscribers cost while inactive, then they wake up.
    let csi = load.inactive.map(|n| {
        let rss_kib = load
            .server_pid
            .and_then(|pid| sys::memory(Some(pid)).ok())
            .map(|m| m.rss_kib);
        // Per minute of publishing, mean and max over a group of subscribers.
        let per_min = |range: std::ops::Range<u64>, of: &[AtomicU64]| -> (f64, f64) {
            let v: Vec<u64> = range
                .filter(|&i| ready[i as usize].load(Ordering::Relaxed))
                .map(|i| of[i as usize].load(Ordering::Relaxed))
                .collect();
            let scale = 60.0 / publish_secs.max(1e-9);
            let mean = v.iter().sum::<u64>() as f64 / v.len().max(1) as f64;
            (
                mean * scale,
                v.iter().copied().max().unwrap_or(0) as f64 * scale,
            )
        };
        let n = n.min(users);
        let group = |range: std::ops::Range<u64>| CsiGroup {
            wakeups_per_min: per_min(range.clone(), &shared.wakeups),
            busy_secs_per_min: per_min(range.clone(), &shared.busy_secs),
            reads_per_min: per_min(range, &shared.reads),
        };
        CsiResult {
            inactive_subscribers: n,
            inactive: group(0..n),
            active: group(n..users),
            server_rss_kib_end_of_publishing: rss_kib,
        }
    });
    wake.cancel();

    // What each subscriber should get: acknowledged publishes on the nodes it follows.
    let mut per_node = vec![0u64; plan.nodes.len()];
    for seq in 0..items as usize {
        if shared.acked[seq].load(Ordering::Relaxed) {
            per_node[plan.schedule[seq] as usize] += 1;
        }
    }
    let expected_of =
        |i: usize| -> u64 { plan.follows[i].iter().map(|&n| per_node[n as usize]).sum() };

    // Drain: until every live subscriber has all it should, or nothing came for a while.
    let drain = Duration::from_secs(load.drain_secs);
    let mut last = (shared.delivered.load(Ordering::Relaxed), Instant::now());
    loop {
        let outstanding = (0..users as usize)
            .filter(|&i| {
                ready[i].load(Ordering::Relaxed)
                    && !shared.ended[i].load(Ordering::Relaxed)
                    && !is_throttled(load, i as u64)
            })
            .any(|i| shared.received[i].load(Ordering::Relaxed) < expected_of(i));
        if !outstanding {
            break;
        }
        let d = shared.delivered.load(Ordering::Relaxed);
        if d != last.0 {
            last = (d, Instant::now());
        } else if last.1.elapsed() > drain {
            eprintln!("nothing delivered for {}s: ending the run", load.drain_secs);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(progress);

    // After.
    let (u1, s1) = sys::self_cpu_time();
    let server_after = load
        .server_pid
        .map(|pid| (sys::process_cpu_time(pid).ok(), sys::memory(Some(pid)).ok()));
    let gen_mem = sys::memory(None).unwrap_or_default();
    let pub_server_cpu = match (load.publisher_server_pid, pub_server_before) {
        (Some(pid), Some(cpu0)) => sys::process_cpu_time(pid)
            .ok()
            .map(|c| (pid, c.saturating_sub(cpu0).as_secs_f64())),
        _ => None,
    };

    cancel.cancel();
    for w in writers.into_iter().flatten() {
        w.close().await;
    }
    let mut ends = Vec::new();
    let closing = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(r) = subs.join_next().await {
            if let Ok(Some(end)) = r {
                ends.push(end);
            }
        }
    });
    if closing.await.is_err() {
        eprintln!("some subscribers did not close within 30s; abandoning them");
    }
    readers.abort_all();

    // Figures.
    let mut policy = vec![false; users as usize];
    let mut other_disconnects: BTreeMap<String, u64> = BTreeMap::new();
    for e in &ends {
        if e.policy_violation {
            policy[e.index] = true;
        } else if let Some(reason) = &e.error {
            *other_disconnects.entry(reason.clone()).or_default() += 1;
        }
    }
    let (mut expected, mut received, mut loss, mut loss_subs) = (0u64, 0u64, 0u64, 0u64);
    let mut missed_by_policy = 0u64;
    let mut policy_disconnects = 0u64;
    let mut throttled_behind = 0u64;
    for i in 0..users as usize {
        if !ready[i].load(Ordering::Relaxed) {
            continue;
        }
        let (e, r) = (expected_of(i), shared.received[i].load(Ordering::Relaxed));
        expected += e;
        received += r;
        if policy[i] {
            policy_disconnects += 1;
            missed_by_policy += e.saturating_sub(r);
        } else if is_throttled(load, i as u64) {
            throttled_behind += e.saturating_sub(r);
        } else if r < e {
            loss += e - r;
            loss_subs += 1;
        }
    }
    let delivered = shared.delivered.load(Ordering::Relaxed);
    let last_ns = shared.last_delivery_ns.load(Ordering::Relaxed);
    let window_secs = if last_ns > first_ns {
        (last_ns - first_ns) as f64 / 1e9
    } else {
        0.0
    };
    let per_1000 = |cpu: f64| (delivered > 0).then(|| cpu * 1000.0 / delivered as f64);
    let server_process = match (load.server_pid, server_before, server_after) {
        (Some(pid), Some((cpu0, mem0)), Some((cpu1, mem1))) => {
            let cpu = cpu1.map_or(0.0, |c| c.saturating_sub(cpu0).as_secs_f64());
            let mem1 = mem1.unwrap_or_default();
            Some(ServerProcess {
                pid,
                cpu_secs: cpu,
                cpu_secs_per_1000: per_1000(cpu),
                rss_before_kib: mem0.rss_kib,
                rss_after_kib: mem1.rss_kib,
                hwm_after_kib: mem1.hwm_kib,
            })
        }
        _ => None,
    };
    if let Some((pid, cpu)) = pub_server_cpu {
        println!(
            "  publisher server pid {pid}: CPU {cpu:.2}s = {} s per 1000 notifications",
            per_1000(cpu).map_or_else(|| "-".to_owned(), |c| format!("{c:.4}"))
        );
    }
    let gen_cpu = (u1 + s1).saturating_sub(u0 + s0).as_secs_f64();
    let generator = GeneratorResult {
        cpu_secs: gen_cpu,
        cpu_secs_per_1000: per_1000(gen_cpu),
        rss_kib: gen_mem.rss_kib,
        hwm_kib: gen_mem.hwm_kib,
    };
    let acked = shared.acks.load(Ordering::Relaxed);
    let publish = PublishResult {
        sent,
        acked,
        failed: shared.publish_failures.failed() + skipped,
        failures: shared.publish_failures.failures(),
        secs: publish_secs,
        per_sec: if publish_secs > 0.0 {
            acked as f64 / publish_secs
        } else {
            0.0
        },
        ack_latency: shared.ack_latency.latency(),
    };
    let wire = server.zlib.then(|| {
        let c = crate::xmpp::zlib::WIRE_IN.load(Ordering::Relaxed) - wire0.0;
        let p = crate::xmpp::zlib::PLAIN_IN.load(Ordering::Relaxed) - wire0.1;
        let n = shared.delivered.load(Ordering::Relaxed).max(1) as f64;
        WireResult {
            compressed_bytes: c,
            plain_bytes: p,
            ratio: c as f64 / p.max(1) as f64,
            compressed_bytes_per_notification: c as f64 / n,
            plain_bytes_per_notification: p as f64 / n,
        }
    });
    let delivery = DeliveryResult {
        expected,
        received,
        duplicates: shared.duplicates.load(Ordering::Relaxed),
        foreign: shared.foreign.load(Ordering::Relaxed),
        loss,
        subscribers_with_loss: loss_subs,
        policy_disconnects,
        missed_by_policy_disconnected: missed_by_policy,
        throttled_behind,
        other_disconnects,
        window_secs,
        per_sec: if window_secs > 0.0 {
            delivered as f64 / window_secs
        } else {
            0.0
        },
        latency: shared.latency.latency(),
    };
    let plan = Arc::try_unwrap(plan).unwrap_or_else(|p| Plan {
        scenario: p.scenario,
        nodes: p.nodes.clone(),
        follows: Vec::new(),
        schedule: Vec::new(),
        extra: p.extra.clone(),
        in_flight_per_publisher: p.in_flight_per_publisher,
    });
    let result = PubsubResult {
        scenario: plan.scenario,
        server: server.server.clone(),
        domain: server.domain.clone(),
        service,
        tls: server.tls,
        zlib: server.zlib,
        auth: server.auth,
        subscribers: users,
        nodes: plan.nodes.len(),
        follows_per_subscriber: follows_total as f64 / users.max(1) as f64,
        items,
        item_bytes: load.item_bytes,
        rate: load.rate,
        in_flight: load.in_flight,
        in_flight_per_publisher: plan.in_flight_per_publisher,
        subscribe_jid: load.subscribe_jid,
        throttle_bytes_per_sec: load.throttle_bytes_per_sec,
        throttled_subscribers: (0..users).filter(|&i| is_throttled(load, i)).count() as u64,
        extra: plan.extra,
        registration,
        publishers_setup,
        subscribers_setup,
        publish,
        delivery,
        server_process,
        generator,
        wire,
        csi,
    };
    Ok(result)
}

/// The publish sequence numbers of each publishing task: all of them in one lane, or
/// (`per_publisher`) one lane per node that has any, each in sequence order.
fn lanes(schedule: &[u32], per_publisher: bool) -> Vec<Vec<u64>> {
    if !per_publisher {
        return if schedule.is_empty() {
            Vec::new()
        } else {
            vec![(0..schedule.len() as u64).collect()]
        };
    }
    let mut by_node: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    for (seq, &node) in schedule.iter().enumerate() {
        by_node.entry(node).or_default().push(seq as u64);
    }
    by_node.into_values().collect()
}

/// Whether subscriber `i` says it is inactive (XEP-0352).
fn is_inactive(load: &LoadArgs, i: u64) -> bool {
    load.inactive.is_some_and(|n| i < n)
}

/// Whether subscriber `i` reads slowly.
fn is_throttled(load: &LoadArgs, i: u64) -> bool {
    load.throttle_bytes_per_sec.is_some() && load.throttled.is_none_or(|n| i < n)
}

/// A subscriber's receive loop until `cancel`: mark items, record latency, throttle.
async fn receive(
    mut conn: Conn,
    index: usize,
    items: u64,
    throttle: Option<u64>,
    shared: &Shared,
    cancel: CancellationToken,
    mut wake: Option<CancellationToken>,
) -> SubEnd {
    let mut seen = vec![0u64; items.div_ceil(64) as usize];
    // Throttled: about ten reads per second, so the pace is smooth.
    let max_read = if let Some(rate) = throttle {
        (rate / 10).clamp(64, 4096) as usize
    } else {
        conn.set_read_buffer(8192);
        8192
    };
    let slow = throttle.is_some();
    let mut throttle = throttle;
    let start = Instant::now();
    let (mut last_read, mut last_sec): (Option<Instant>, Option<u64>) = (None, None);
    let mut total = 0u64;
    loop {
        let mut now = 0u64;
        let (mut fresh, mut dups, mut foreign) = (0u64, 0u64, 0u64);
        let mut on_element = |elem: &[u8]| {
            if scan::root_name(elem) != b"message" {
                return;
            }
            if now == 0 {
                now = sys::monotonic_ns();
            }
            ps::for_each_item(elem, |seq, sent| {
                if seq >= items {
                    foreign += 1;
                    return;
                }
                let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
                if seen[w] & bit != 0 {
                    dups += 1;
                    return;
                }
                seen[w] |= bit;
                fresh += 1;
                if !slow {
                    // A slow reader's latency is its own, not the server's.
                    shared.latency.record_us(now.saturating_sub(sent) / 1000);
                }
            });
        };
        let r = if cancel.is_cancelled() {
            // A slow reader at the end: read what the server had sent at full speed,
            // to learn whether it ended the stream (the error sits behind that data).
            let read = conn.receive(64 * 1024, &mut on_element);
            let Ok(r) = tokio::time::timeout(Duration::from_secs(2), read).await else {
                conn.close().await;
                return SubEnd {
                    index,
                    error: None,
                    policy_violation: false,
                };
            };
            r
        } else {
            tokio::select! {
                () = cancel.cancelled() => {
                    if slow {
                        conn.set_read_buffer(64 * 1024);
                        throttle = None;
                        continue;
                    }
                    conn.close().await;
                    return SubEnd { index, error: None, policy_violation: false };
                }
                () = async { wake.as_ref().expect("guarded").cancelled().await }, if wake.is_some() => {
                    wake = None;
                    if let Err(e) = conn.send_raw(Stage::Hold, b"<active xmlns='urn:xmpp:csi:0'/>").await {
                        shared.ended[index].store(true, Ordering::Relaxed);
                        return SubEnd { index, error: Some(e.reason()), policy_violation: false };
                    }
                    continue;
                }
                r = conn.receive(max_read, &mut on_element) => r,
            }
        };
        if matches!(r, Ok(n) if n > 0) && !cancel.is_cancelled() {
            let t = Instant::now();
            shared.reads[index].fetch_add(1, Ordering::Relaxed);
            if last_read.is_none_or(|l| t - l >= WAKE_GAP) {
                shared.wakeups[index].fetch_add(1, Ordering::Relaxed);
            }
            let sec = (t - start).as_secs();
            if last_sec != Some(sec) {
                shared.busy_secs[index].fetch_add(1, Ordering::Relaxed);
                last_sec = Some(sec);
            }
            last_read = Some(t);
        }
        if fresh > 0 {
            shared.received[index].fetch_add(fresh, Ordering::Relaxed);
            shared.delivered.fetch_add(fresh, Ordering::Relaxed);
            if !slow {
                // Slow readers would stretch the window past what the server did.
                shared.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
            }
        }
        if dups > 0 {
            shared.duplicates.fetch_add(dups, Ordering::Relaxed);
        }
        if foreign > 0 {
            shared.foreign.fetch_add(foreign, Ordering::Relaxed);
        }
        match r {
            Ok(n) => {
                if let Some(rate) = throttle {
                    total += n as u64;
                    let due = start + Duration::from_secs_f64(total as f64 / rate.max(1) as f64);
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
            }
            Err(e) => {
                shared.ended[index].store(true, Ordering::Relaxed);
                let policy_violation =
                    matches!(&e.kind, ErrorKind::StreamError(c) if c == "policy-violation");
                return SubEnd {
                    index,
                    error: Some(e.reason()),
                    policy_violation,
                };
            }
        }
    }
}

/// A publisher's incoming stanza: publish results and errors.
fn on_publisher_element(elem: &[u8], shared: &Shared, in_flight: &Semaphore) {
    if scan::root_name(elem) != b"iq" {
        return;
    }
    let Some(seq) = scan::attr(elem, "id").as_deref().and_then(ps::publish_seq) else {
        return;
    };
    let Some(sent) = shared.sent_ns.get(seq as usize) else {
        return;
    };
    match scan::attr(elem, "type").as_deref() {
        Some("result") if !shared.acked[seq as usize].swap(true, Ordering::Relaxed) => {
            let now = sys::monotonic_ns();
            shared
                .ack_latency
                .record_us(now.saturating_sub(sent.load(Ordering::Relaxed)) / 1000);
            shared.acks.fetch_add(1, Ordering::Relaxed);
            in_flight.add_permits(1);
        }
        Some("error") => {
            let cond = conn::error_condition(elem).unwrap_or_else(|| "error".into());
            shared
                .publish_failures
                .failure(format!("publish: <{cond}/>"));
            in_flight.add_permits(1);
        }
        _ => {}
    }
}

fn spawn_run_progress(
    shared: Arc<Shared>,
    items: u64,
    start: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        let mut last = 0;
        loop {
            tick.tick().await;
            let d = shared.delivered.load(Ordering::Relaxed);
            let acks = shared.acks.load(Ordering::Relaxed);
            let ended = shared
                .ended
                .iter()
                .filter(|e| e.load(Ordering::Relaxed))
                .count();
            eprintln!(
                "[{:6.1}s] published {acks}/{items} acked, {} failed; delivered {d} ({}/s last second){}",
                start.elapsed().as_secs_f64(),
                shared.publish_failures.failed(),
                d - last,
                if ended > 0 {
                    format!("; {ended} subscriber stream(s) ENDED")
                } else {
                    String::new()
                }
            );
            last = d;
        }
    })
}

/// Log in as `user` (name, account index) and create `node` on `service` (a node left
/// over from an earlier run with the same `--node-prefix` is fine); the connection
/// stays logged in, to publish or to keep the owner online.
pub async fn create_node(
    target: Arc<Target>,
    source: Option<std::net::IpAddr>,
    (user, index): (&str, u64),
    service: &str,
    node: &str,
    max_items: Option<u32>,
) -> Result<Conn, ConnError> {
    let mut c = Conn::open(target, source).await?.login(user, index).await?;
    match c
        .iq(
            Stage::Pubsub,
            "set",
            service,
            &ps::create_payload(node, max_items),
        )
        .await
    {
        Ok(_) => {}
        Err(ConnError {
            kind: ErrorKind::Refused(cond),
            ..
        }) if cond == "conflict" => {}
        Err(e) => return Err(e),
    }
    Ok(c)
}

/// Passes over the accounts whose registration failed. Registration is not measured,
/// only needed: a server that registers slowly (Prosody here: ~30/s with 200 at once,
/// so some wait past the 30 s connection timeout or the listen backlog) gets the
/// failed ones again (a shorter queue, so less waiting); an account that already
/// exists counts as done.
const REGISTER_PASSES: usize = 3;

/// XEP-0077 registration of `names` (existing accounts are fine), failures retried.
pub async fn register_accounts(
    target: &Arc<Target>,
    sources: &Arc<Sources>,
    names: Vec<String>,
    concurrency: usize,
) -> PhaseResult {
    let counters = Arc::new(Counters::default());
    let start = Instant::now();
    let total = names.len() as u64;
    let progress = AbortOnDrop(report::spawn_progress(
        "register",
        counters.clone(),
        total,
        start,
    ));
    let mut pending: Vec<(usize, String)> = names.into_iter().enumerate().collect();
    for pass in 0..REGISTER_PASSES {
        let last = pass + 1 == REGISTER_PASSES;
        let sem = Arc::new(Semaphore::new(concurrency));
        let mut tasks = JoinSet::new();
        for (i, user) in pending {
            let permit = sem.clone().acquire_owned().await.expect("semaphore open");
            let (target, sources, counters) = (target.clone(), sources.clone(), counters.clone());
            tasks.spawn(async move {
                let t0 = Instant::now();
                let r = async {
                    Conn::open(target, sources.pick(i as u64))
                        .await?
                        .register(&user)
                        .await
                }
                .await;
                drop(permit);
                match r {
                    Ok(Registered::Created | Registered::Existed) => {
                        counters.success(t0.elapsed());
                        None
                    }
                    Err(e) if last => {
                        counters.failure(e.reason());
                        None
                    }
                    Err(_) => Some((i, user)),
                }
            });
        }
        pending = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Ok(Some(again)) = r {
                pending.push(again);
            }
        }
        if pending.is_empty() {
            break;
        }
        eprintln!("register: {} failed, trying them again", pending.len());
    }
    drop(progress);
    PhaseResult::from_counters(&counters, total, start.elapsed())
}

impl PubsubResult {
    pub fn describe(&self) -> String {
        let mut s = String::new();
        let p = &self.publish;
        let _ = writeln!(
            s,
            "  publish: {}/{} acknowledged in {:.2}s = {:.1}/s, {} failed",
            p.acked, self.items, p.secs, p.per_sec, p.failed
        );
        if let Some(l) = p.ack_latency {
            let _ = writeln!(
                s,
                "    ack latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        for (reason, n) in &p.failures {
            let _ = writeln!(s, "    failed {n:>6} × {reason}");
        }
        let d = &self.delivery;
        let _ = writeln!(
            s,
            "  delivery: {} of {} expected notifications in {:.2}s = {:.0} notifications/s",
            d.received, d.expected, d.window_secs, d.per_sec
        );
        if let Some(l) = d.latency {
            let _ = writeln!(
                s,
                "    publish→delivery latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        if d.duplicates > 0 || d.foreign > 0 {
            let _ = writeln!(
                s,
                "    {} duplicate(s), {} item(s) not from this run",
                d.duplicates, d.foreign
            );
        }
        if d.policy_disconnects > 0 {
            let _ = writeln!(
                s,
                "  slow consumers: {} subscriber(s) disconnected with <policy-violation/>, missing {} notification(s) by policy",
                d.policy_disconnects, d.missed_by_policy_disconnected
            );
        }
        if self.throttled_subscribers > 0 {
            let _ = writeln!(
                s,
                "  throttled subscribers: {} ({} B/s), {} notification(s) not yet read by those still connected",
                self.throttled_subscribers,
                self.throttle_bytes_per_sec.unwrap_or(0),
                d.throttled_behind
            );
        }
        for (reason, n) in &d.other_disconnects {
            let _ = writeln!(s, "  DISCONNECTED {n:>6} × {reason}");
        }
        if d.loss > 0 {
            let bar = "!".repeat(72);
            let _ = writeln!(
                s,
                "{bar}\n!!! LOSS: {} notification(s) missing at {} subscriber(s) (expected {}, received {})\n{bar}",
                d.loss, d.subscribers_with_loss, d.expected, d.received
            );
        } else {
            let _ = writeln!(s, "  loss: 0");
        }
        if let Some(w) = &self.wire {
            let _ = writeln!(
                s,
                "  wire (zlib): {:.0} bytes per notification compressed, {:.0} inflated = {:.2}×",
                w.compressed_bytes_per_notification, w.plain_bytes_per_notification, w.ratio
            );
        }
        if let Some(c) = &self.csi {
            for (name, g) in [("inactive", &c.inactive), ("active", &c.active)] {
                let _ = writeln!(
                    s,
                    "  CSI {name} subscribers: per minute, {:.1} wake-ups (max {:.0}), {:.1} s busy (max {:.0}), {:.0} reads (max {:.0})",
                    g.wakeups_per_min.0,
                    g.wakeups_per_min.1,
                    g.busy_secs_per_min.0,
                    g.busy_secs_per_min.1,
                    g.reads_per_min.0,
                    g.reads_per_min.1
                );
            }
            let _ = writeln!(
                s,
                "  CSI: {} inactive subscriber(s)",
                c.inactive_subscribers
            );
            if let Some(rss) = c.server_rss_kib_end_of_publishing {
                let _ = writeln!(
                    s,
                    "  server RSS at the end of publishing (held batches in it): {rss} KiB"
                );
            }
        }
        if let Some(m) = &self.server_process {
            let _ = writeln!(
                s,
                "  server pid {}: CPU {:.2}s = {} s per 1000 notifications; RSS {} KiB before, {} KiB after (peak {} KiB)",
                m.pid,
                m.cpu_secs,
                m.cpu_secs_per_1000
                    .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}")),
                m.rss_before_kib,
                m.rss_after_kib,
                m.hwm_after_kib
            );
        }
        let g = &self.generator;
        let _ = writeln!(
            s,
            "  generator: CPU {:.2}s = {} s per 1000 notifications; RSS {} KiB (peak {} KiB)",
            g.cpu_secs,
            g.cpu_secs_per_1000
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.4}")),
            g.rss_kib,
            g.hwm_kib
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_split_the_schedule_per_publisher_or_not_at_all() {
        let schedule = [0, 1, 2, 0, 1, 2, 0];
        assert_eq!(lanes(&schedule, false), vec![vec![0, 1, 2, 3, 4, 5, 6]]);
        assert_eq!(
            lanes(&schedule, true),
            vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]
        );
        // A node without publishes has no lane (its publisher waits for nothing).
        assert_eq!(lanes(&[2, 2], true), vec![vec![0, 1]]);
        assert!(lanes(&[], true).is_empty());
        assert!(lanes(&[], false).is_empty());
    }
}
