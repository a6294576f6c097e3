//! `subscribe-storm`: U clients log in and subscribe to one node, C at a time; the
//! time until all are subscribed, against a baseline of the same number of logins
//! without subscribing, in the same run.
//!
//! Phases: (optional) registration of every account (not timed); the node's owner
//! logs in and creates the node (and stays online); baseline: U logins, held until
//! the last is up, then all closed; settle; storm: U logins + full-JID subscriptions,
//! held until the last is up, then closed. Reported: both phases' wall time, their
//! difference, per-connection latency, failures, server CPU and RSS per phase.
//!
//! The baseline logs in a second set of accounts (numbers U..2U after `--offset`)
//! rather than the storm's accounts again: then every account in both phases logs
//! in for the first time since registration, so neither phase finds the other's
//! traces in the server (an account's stored data already read and cached, or the
//! logout work of the same accounts still pending), and only the subscription
//! differs. The baseline goes first so that a server still busy with it cannot
//! flatter the storm, and it is closed (and the server left to settle) before the
//! storm starts: both sets open at once would also need 2U descriptors in one process.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::pubsub;
use crate::report::{self, AbortOnDrop, Counters, PhaseResult};
use crate::sys;
use crate::target::{AccountArgs, ServerArgs, Sources};
use crate::xmpp::conn::{self, Conn, ConnError, Stage, Target, TlsMode};
use crate::xmpp::pubsub as ps;

/// File descriptors kept free for everything that is not a client connection.
const FD_MARGIN: u64 = 64;

/// The target: subscribing everybody costs at most this much over the logins.
pub const TARGET_EXTRA_SECS: f64 = 2.0;

#[derive(Debug, Args)]
#[command(mut_arg("users", |a| a.required(false).default_value("10000")
    .help("Clients in each phase (the baseline uses as many other accounts)")))]
pub struct StormArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Connections negotiating (and subscribing) at the same time.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Create the accounts first (XEP-0077; existing accounts are fine); not timed.
    #[arg(long)]
    pub register: bool,
    /// Server process to measure (CPU from /proc/PID/stat, RSS from /proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// After closing the baseline's connections, wait this long, then (with
    /// `--server-pid`) until the server is idle (< 10 % of a core for a second, at
    /// most 30 s more), so that the storm does not pay for the baseline's logouts.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// `pubsub#max_items` of the node (default: the server's).
    #[arg(long)]
    pub max_items: Option<u32>,
    /// Node name (default: `hl-` and the time, unique per run, + `-storm`).
    #[arg(long)]
    pub node_prefix: Option<String>,
    /// The pubsub service (default: `pubsub.` + domain).
    #[arg(long)]
    pub pubsub_service: Option<String>,
    /// The node's owner is this prefix + 0 (an admin in Prosody, like the publishers).
    #[arg(long, default_value = "pub")]
    pub publisher_prefix: String,
    /// Exit 0 even if some logins or subscriptions failed.
    #[arg(long)]
    pub allow_failures: bool,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct StormResult {
    scenario: &'static str,
    server: String,
    domain: String,
    service: String,
    node: String,
    tls: TlsMode,
    auth: crate::xmpp::sasl::Mechanism,
    users: u64,
    concurrency: usize,
    /// Account numbers of the storm (first, last) and of the baseline.
    storm_accounts: (u64, u64),
    baseline_accounts: (u64, u64),
    registration: Option<PhaseResult>,
    /// Logins alone (the baseline).
    logins: StormPhase,
    /// Logins + subscribe.
    subscribe: StormPhase,
    summary: Summary,
    generator: Generator,
}

#[derive(Debug, Serialize)]
struct StormPhase {
    #[serde(flatten)]
    phase: PhaseResult,
    server_cpu_secs: Option<f64>,
    server_rss_before_kib: Option<u64>,
    server_rss_after_kib: Option<u64>,
    /// Connections the server ended while they were held (before the phase closed them).
    dropped: u64,
    dropped_reasons: std::collections::BTreeMap<String, u64>,
}

/// The comparison the issue asks for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub logins_secs: f64,
    pub subscribe_secs: f64,
    /// subscribe − logins.
    pub difference_secs: f64,
    pub target_extra_secs: f64,
    /// Every client of both phases is up (and subscribed).
    pub complete: bool,
    /// `complete` and the difference within the target.
    pub target_met: bool,
}

impl Summary {
    pub fn new(logins: &PhaseResult, subscribe: &PhaseResult) -> Self {
        let difference_secs = subscribe.secs - logins.secs;
        let complete = logins.ok == logins.attempted && subscribe.ok == subscribe.attempted;
        Self {
            logins_secs: logins.secs,
            subscribe_secs: subscribe.secs,
            difference_secs,
            target_extra_secs: TARGET_EXTRA_SECS,
            complete,
            target_met: complete && difference_secs <= TARGET_EXTRA_SECS,
        }
    }
}

#[derive(Debug, Serialize)]
struct Generator {
    cpu_secs: f64,
    rss_kib: u64,
    hwm_kib: u64,
}

/// The storm's accounts and the baseline's: `[offset, offset+U)` and `[offset+U, offset+2U)`.
pub fn account_ranges(offset: u64, users: u64) -> (std::ops::Range<u64>, std::ops::Range<u64>) {
    (offset..offset + users, offset + users..offset + 2 * users)
}

pub async fn run(args: StormArgs) -> Result<(), String> {
    let users = args.accounts.users;
    let nofile = sys::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    // One phase's connections at a time, plus the node's owner.
    if users + 1 + FD_MARGIN > nofile.soft {
        return Err(format!(
            "{users} clients need more file descriptors than RLIMIT_NOFILE ({}); use fewer",
            nofile.soft
        ));
    }
    if users == 0 || args.concurrency == 0 {
        return Err("--users and --concurrency must be at least 1".to_owned());
    }
    let target = args.server.target(&args.accounts, false)?;
    let sources = Arc::new(args.server.sources()?);
    let service = args
        .pubsub_service
        .clone()
        .unwrap_or_else(|| format!("pubsub.{}", args.server.domain));
    let node = format!(
        "{}-storm",
        args.node_prefix.clone().unwrap_or_else(|| {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            format!("hl-{secs}")
        })
    );
    let (storm, baseline) = account_ranges(args.accounts.offset, users);
    let name = |i: u64| conn::username(&args.accounts.user_prefix, i);
    let owner = conn::username(&args.publisher_prefix, 0);
    println!(
        "subscribe-storm: {users} clients ({}..{}), {} at a time, subscribe to {node} on {service}; baseline: {users} logins alone ({}..{}); server {} domain {}, tls {}, auth {}",
        name(storm.start),
        name(storm.end - 1),
        args.concurrency,
        name(baseline.start),
        name(baseline.end - 1),
        target.server,
        target.domain,
        target.tls,
        target.mechanism.name(),
    );

    let registration = if args.register {
        let mut names = vec![owner.clone()];
        names.extend(storm.clone().chain(baseline.clone()).map(name));
        let r = pubsub::register_accounts(&target, &sources, names, args.concurrency).await;
        print!("{}", r.describe("registration"));
        Some(r)
    } else {
        None
    };

    // The node's owner stays online through both phases (as a feed's owner would).
    let owner_conn = pubsub::create_node(
        target.clone(),
        sources.pick(0),
        (&owner, 0),
        &service,
        &node,
        args.max_items,
    )
    .await
    .map_err(|e| format!("creating {node} as {owner}: {}", e.reason()))?;
    println!("  node {node} created by {owner}");

    let (u0, s0) = sys::self_cpu_time();
    let logins = phase("logins", &target, &sources, &args, baseline.clone(), None).await;
    print!("{}", logins.phase.describe("logins alone (baseline)"));
    settle(args.server_pid, args.settle_secs).await;
    let subscribe = phase(
        "subscribe",
        &target,
        &sources,
        &args,
        storm.clone(),
        Some((&service, &node)),
    )
    .await;
    print!("{}", subscribe.phase.describe("logins + subscribe (storm)"));
    let (u1, s1) = sys::self_cpu_time();
    let gen_mem = sys::memory(None).unwrap_or_default();
    owner_conn.close().await;

    let summary = Summary::new(&logins.phase, &subscribe.phase);
    let result = StormResult {
        scenario: "subscribe-storm",
        server: args.server.server.clone(),
        domain: args.server.domain.clone(),
        service,
        node,
        tls: args.server.tls,
        auth: args.server.auth,
        users,
        concurrency: args.concurrency,
        storm_accounts: (storm.start, storm.end - 1),
        baseline_accounts: (baseline.start, baseline.end - 1),
        registration,
        logins,
        subscribe,
        summary,
        generator: Generator {
            cpu_secs: (u1 + s1).saturating_sub(u0 + s0).as_secs_f64(),
            rss_kib: gen_mem.rss_kib,
            hwm_kib: gen_mem.hwm_kib,
        },
    };
    print!("{}", result.describe());
    if let Some(path) = &args.json {
        report::write_json(path, &result).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("JSON result written to {}", path.display());
    }
    if !args.allow_failures && !summary.complete {
        return Err("some logins or subscriptions failed".to_owned());
    }
    Ok(())
}

/// `accounts` log in (and subscribe the full JID to `node`), `--concurrency` at a
/// time; each stays connected until the last is up; then all are closed.
async fn phase(
    label: &'static str,
    target: &Arc<Target>,
    sources: &Arc<Sources>,
    args: &StormArgs,
    accounts: std::ops::Range<u64>,
    node: Option<(&str, &str)>,
) -> StormPhase {
    let total = accounts.end - accounts.start;
    let memory = |pid: Option<u32>| pid.and_then(|p| sys::memory(Some(p)).ok());
    let rss_before = memory(args.server_pid).map(|m| m.rss_kib);
    let cpu_before = args.server_pid.and_then(|p| sys::process_cpu_time(p).ok());
    let counters = Arc::new(Counters::default());
    let dropped = Arc::new(Counters::default());
    let pings = Arc::new(AtomicU64::new(0));
    let cancel = CancellationToken::new();
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let progress = AbortOnDrop(report::spawn_progress(
        label,
        counters.clone(),
        total,
        start,
    ));
    let node = node.map(|(s, n)| Arc::new((s.to_owned(), n.to_owned())));
    for index in accounts {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (target, sources, counters) = (target.clone(), sources.clone(), counters.clone());
        let (cancel, pings, dropped, node) =
            (cancel.clone(), pings.clone(), dropped.clone(), node.clone());
        let user = conn::username(&args.accounts.user_prefix, index);
        tasks.spawn(async move {
            let t0 = Instant::now();
            let up = async {
                let mut c = Conn::open(target, sources.pick(index))
                    .await?
                    .login(&user, index)
                    .await?;
                if let Some(node) = &node {
                    let jid = c.jid().to_owned();
                    c.iq(
                        Stage::Pubsub,
                        "set",
                        &node.0,
                        &ps::subscribe_payload(&node.1, &jid),
                    )
                    .await?;
                }
                Ok::<_, ConnError>(c)
            }
            .await;
            // Counted before the permit goes back: holding every permit ends the phase.
            match up {
                Ok(c) => {
                    counters.success(t0.elapsed());
                    drop(permit);
                    if let Err(e) = c.hold(cancel, &pings).await {
                        dropped.failure(e.reason());
                    }
                }
                Err(e) => {
                    counters.failure(e.reason());
                    drop(permit);
                }
            }
        });
    }
    let all = u32::try_from(args.concurrency).unwrap_or(u32::MAX);
    let all_done = sem.acquire_many(all).await.expect("semaphore open");
    let took = start.elapsed();
    drop(all_done);
    drop(progress);
    let server_cpu_secs = args.server_pid.and_then(|p| {
        let c1 = sys::process_cpu_time(p).ok()?;
        Some(c1.saturating_sub(cpu_before?).as_secs_f64())
    });
    let rss_after = memory(args.server_pid).map(|m| m.rss_kib);
    let phase = PhaseResult::from_counters(&counters, total, took);
    // Close them all: the descriptors must be free before the next phase.
    cancel.cancel();
    let closing = tokio::time::timeout(Duration::from_mins(1), async {
        while tasks.join_next().await.is_some() {}
    });
    if closing.await.is_err() {
        eprintln!("{label}: some connections did not close within 60s; aborting them");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    StormPhase {
        phase,
        server_cpu_secs,
        server_rss_before_kib: rss_before,
        server_rss_after_kib: rss_after,
        dropped: dropped.failed(),
        dropped_reasons: dropped.failures(),
    }
}

/// Wait `secs`, then until the server used less than a tenth of a core over a second
/// (at most 30 s more).
async fn settle(server_pid: Option<u32>, secs: u64) {
    eprintln!("settling {secs}s (then until the server is idle)...");
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let Some(pid) = server_pid else { return };
    let until = Instant::now() + Duration::from_secs(30);
    while Instant::now() < until {
        let Ok(c0) = sys::process_cpu_time(pid) else {
            return;
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Ok(c1) = sys::process_cpu_time(pid) else {
            return;
        };
        if c1.saturating_sub(c0) < Duration::from_millis(100) {
            return;
        }
    }
    eprintln!("the server was still busy after 30s; starting anyway");
}

impl StormResult {
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for (what, p) in [
            ("logins alone", &self.logins),
            ("logins + subscribe", &self.subscribe),
        ] {
            if let Some(cpu) = p.server_cpu_secs {
                let _ = writeln!(
                    s,
                    "  {what}: server CPU {cpu:.2}s ({:.2} ms per client), RSS {} → {} KiB",
                    cpu * 1000.0 / p.phase.ok.max(1) as f64,
                    p.server_rss_before_kib.unwrap_or(0),
                    p.server_rss_after_kib.unwrap_or(0),
                );
            }
            for (reason, n) in &p.dropped_reasons {
                let _ = writeln!(s, "  {what}: DROPPED while held {n:>6} × {reason}");
            }
        }
        let m = &self.summary;
        let _ = writeln!(
            s,
            "  time to subscribe all {:.2}s vs logins alone {:.2}s: difference {:+.2}s (target ≤ {:.0}s{}): {}",
            m.subscribe_secs,
            m.logins_secs,
            m.difference_secs,
            m.target_extra_secs,
            if m.complete {
                ""
            } else {
                "; NOT every client got there"
            },
            if m.target_met { "met" } else { "NOT met" },
        );
        let _ = writeln!(
            s,
            "  generator: CPU {:.2}s; RSS {} KiB (peak {} KiB)",
            self.generator.cpu_secs, self.generator.rss_kib, self.generator.hwm_kib
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: StormArgs,
    }

    fn phase(ok: u64, attempted: u64, secs: f64) -> PhaseResult {
        PhaseResult {
            attempted,
            ok,
            failed: attempted - ok,
            secs,
            rate_per_sec: ok as f64 / secs,
            latency: None,
            failures: std::collections::BTreeMap::new(),
        }
    }

    #[test]
    fn summary_compares_against_logins_plus_two_seconds() {
        let s = Summary::new(&phase(10, 10, 50.0), &phase(10, 10, 51.5));
        assert!((s.difference_secs - 1.5).abs() < 1e-9);
        assert!(s.complete && s.target_met);
        let s = Summary::new(&phase(10, 10, 50.0), &phase(10, 10, 52.5));
        assert!(s.complete && !s.target_met);
        // Faster than the baseline is fine (noise), a negative difference.
        let s = Summary::new(&phase(10, 10, 50.0), &phase(10, 10, 49.0));
        assert!(s.difference_secs < 0.0 && s.target_met);
        // A storm that did not subscribe everybody cannot meet the target.
        let s = Summary::new(&phase(10, 10, 50.0), &phase(9, 10, 40.0));
        assert!(!s.complete && !s.target_met);
        let s = Summary::new(&phase(9, 10, 50.0), &phase(10, 10, 40.0));
        assert!(!s.target_met);
    }

    #[test]
    fn baseline_accounts_follow_the_storms() {
        let (a, b) = account_ranges(5, 10);
        assert_eq!((a, b), (5..15, 15..25));
    }

    #[test]
    fn defaults() {
        let cli = Cli::try_parse_from(["t", "--server", "s:1", "--domain", "d"]).unwrap();
        assert_eq!(
            (cli.args.accounts.users, cli.args.concurrency),
            (10_000, 200)
        );
        let cli =
            Cli::try_parse_from(["t", "--server", "s:1", "--domain", "d", "--users", "5"]).unwrap();
        assert_eq!(cli.args.accounts.users, 5);
    }
}
