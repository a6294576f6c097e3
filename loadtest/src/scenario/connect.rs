//! `connect`: open N authenticated client connections, hold them idle, and measure
//! the server's memory per idle connection.
//!
//! Phases: (optional) in-band registration of the accounts; server RSS before;
//! connect + authenticate + bind all N with bounded concurrency; settle; server RSS
//! after; report; hold for `--hold-secs` (answering pings); close every stream.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::report::{self, AbortOnDrop, Counters, PhaseResult};
use crate::sys::{self, FileLimit};
use crate::target::{AccountArgs, ServerArgs, Sources};
use crate::xmpp::conn::{self, Conn, Registered, Target, TlsMode};
use crate::xmpp::sasl::Mechanism;

/// File descriptors kept free for everything that is not a client connection.
const FD_MARGIN: u64 = 64;

#[derive(Debug, Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    /// Create the accounts first with XEP-0077 in-band registration (existing
    /// accounts are fine).
    #[arg(long)]
    pub register: bool,
    /// Connections negotiating at the same time.
    #[arg(long, default_value_t = 200)]
    pub concurrency: usize,
    /// Send initial presence after binding.
    #[arg(long)]
    pub presence: bool,
    /// Server process to measure (VmRSS from /proc/PID/status).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Wait this long after the last connection is up before measuring.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// Keep the connections open this long after measuring (0: close at once).
    /// Ctrl-C ends the hold early.
    #[arg(long, default_value_t = 0)]
    pub hold_secs: u64,
    /// Also write the result as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The JSON result of a `connect` run.
#[derive(Debug, Serialize)]
struct ConnectResult {
    scenario: &'static str,
    server: String,
    domain: String,
    tls: TlsMode,
    /// XEP-0138 zlib on every connection.
    zlib: bool,
    tls_verification: String,
    auth: Mechanism,
    users: u64,
    offset: u64,
    concurrency: usize,
    source_addresses: usize,
    presence: bool,
    registration: Option<RegistrationResult>,
    connect: PhaseResult,
    server_memory: Option<ServerMemory>,
    generator: Generator,
    hold: Option<HoldResult>,
}

#[derive(Debug, Serialize)]
struct RegistrationResult {
    created: u64,
    existed: u64,
    #[serde(flatten)]
    phase: PhaseResult,
}

#[derive(Debug, Serialize)]
struct ServerMemory {
    pid: u32,
    settle_secs: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    hwm_after_kib: u64,
    /// (after − before) / connections up.
    rss_per_connection_kib: Option<f64>,
    /// Server CPU time spent during the connect phase (TLS, SASL, bind).
    cpu_connect_secs: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Generator {
    rss_kib: u64,
    hwm_kib: u64,
    rss_per_connection_kib: Option<f64>,
    cpu_user_secs: f64,
    cpu_system_secs: f64,
    nofile: FileLimit,
}

#[derive(Debug, Serialize)]
struct HoldResult {
    secs: f64,
    /// Connections the server closed (or broke) during the settle and hold time.
    dropped: u64,
    dropped_reasons: std::collections::BTreeMap<String, u64>,
    pings_answered: u64,
}

pub async fn run(args: ConnectArgs) -> Result<(), String> {
    let nofile = sys::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    check_fd_budget(args.accounts.users, nofile)?;
    if args.concurrency == 0 {
        return Err("--concurrency must be at least 1".to_owned());
    }
    let target = args.server.target(&args.accounts, args.presence)?;
    let sources = Arc::new(args.server.sources()?);
    let gen_mem_start = sys::memory(None).map_err(|e| format!("own /proc status: {e}"))?;

    println!(
        "connect: {} users ({}{}..{}{}) to {} domain {}, tls {}{} ({}), auth {}, {} source address(es), concurrency {}",
        args.accounts.users,
        args.accounts.user_prefix,
        args.accounts.offset,
        args.accounts.user_prefix,
        args.accounts.offset + args.accounts.users.saturating_sub(1),
        target.server,
        target.domain,
        target.tls,
        if target.zlib { " + zlib" } else { "" },
        args.server.verification(),
        target.mechanism.name(),
        sources.len().max(1),
        args.concurrency,
    );
    if args.server.insecure && target.tls != TlsMode::None {
        println!("WARNING: --insecure: the server certificate is NOT verified");
    }

    let registration = if args.register {
        Some(register_all(&args, &target, &sources).await)
    } else {
        None
    };
    if let Some(r) = &registration {
        print!("{}", r.phase.describe("registration"));
        println!("    created {}, already existed {}", r.created, r.existed);
    }

    let server_before = match args.server_pid {
        Some(pid) => Some((
            sys::memory(Some(pid)).map_err(|e| format!("server pid {pid}: {e}"))?,
            sys::process_cpu_time(pid).ok(),
        )),
        None => None,
    };

    // Connect phase.
    let cancel = CancellationToken::new();
    let counters = Arc::new(Counters::default());
    let hold_failures = Arc::new(Counters::default());
    let pings = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let progress = AbortOnDrop(report::spawn_progress(
        "connect",
        counters.clone(),
        args.accounts.users,
        start,
    ));
    for i in 0..args.accounts.users {
        let index = args.accounts.offset + i;
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (target, sources, counters) = (target.clone(), sources.clone(), counters.clone());
        let (cancel, pings, hold_failures) = (cancel.clone(), pings.clone(), hold_failures.clone());
        let user = conn::username(&args.accounts.user_prefix, index);
        tasks.spawn(async move {
            let t0 = Instant::now();
            let up = async {
                Conn::open(target, sources.pick(index))
                    .await?
                    .login(&user, index)
                    .await
            }
            .await;
            // Count before giving the permit back: the phase ends when all permits are
            // back, and its counts must be complete then.
            match up {
                Ok(conn) => {
                    counters.success(t0.elapsed());
                    drop(permit);
                    if let Err(e) = conn.hold(cancel, &pings).await {
                        hold_failures.failure(e.reason());
                    }
                }
                Err(e) => {
                    counters.failure(e.reason());
                    drop(permit);
                }
            }
        });
    }
    // Every task gives its permit back once negotiated (or failed): holding all
    // permits means the connect phase is over.
    let all = u32::try_from(args.concurrency).unwrap_or(u32::MAX);
    let _all_done = sem.acquire_many(all).await.expect("semaphore open");
    let took = start.elapsed();
    drop(progress);
    let connect = PhaseResult::from_counters(&counters, args.accounts.users, took);
    let server_cpu_connect = server_before.and_then(|(_, cpu0)| {
        let cpu1 = sys::process_cpu_time(args.server_pid?).ok()?;
        Some(cpu1.saturating_sub(cpu0?).as_secs_f64())
    });

    if args.settle_secs > 0 {
        eprintln!("settling {}s before measuring...", args.settle_secs);
        tokio::time::sleep(Duration::from_secs(args.settle_secs)).await;
    }
    let up = connect.ok;
    let per_conn = |delta: i128| (up > 0).then(|| delta as f64 / up as f64);
    let server_memory = match (args.server_pid, server_before) {
        (Some(pid), Some((before, _))) => {
            let after = sys::memory(Some(pid)).map_err(|e| format!("server pid {pid}: {e}"))?;
            Some(ServerMemory {
                pid,
                settle_secs: args.settle_secs,
                rss_before_kib: before.rss_kib,
                rss_after_kib: after.rss_kib,
                hwm_after_kib: after.hwm_kib,
                rss_per_connection_kib: per_conn(
                    i128::from(after.rss_kib) - i128::from(before.rss_kib),
                ),
                cpu_connect_secs: server_cpu_connect,
            })
        }
        _ => None,
    };
    let gen_mem = sys::memory(None).unwrap_or_default();
    let (cpu_user, cpu_sys) = sys::self_cpu_time();
    let generator = Generator {
        rss_kib: gen_mem.rss_kib,
        hwm_kib: gen_mem.hwm_kib,
        rss_per_connection_kib: per_conn(
            i128::from(gen_mem.rss_kib) - i128::from(gen_mem_start.rss_kib),
        ),
        cpu_user_secs: cpu_user.as_secs_f64(),
        cpu_system_secs: cpu_sys.as_secs_f64(),
        nofile,
    };

    print!("{}", connect.describe("connect+auth"));
    if let Some(m) = &server_memory {
        println!(
            "  server pid {}: RSS {} KiB before, {} KiB after {}s settle (peak {} KiB) => {} KiB per idle connection",
            m.pid,
            m.rss_before_kib,
            m.rss_after_kib,
            m.settle_secs,
            m.hwm_after_kib,
            m.rss_per_connection_kib
                .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}")),
        );
        if let Some(cpu) = m.cpu_connect_secs {
            println!(
                "    server CPU during connect phase {cpu:.2}s ({:.3} ms per connection)",
                if up > 0 {
                    cpu * 1000.0 / up as f64
                } else {
                    0.0
                }
            );
        }
    }
    println!(
        "  generator: RSS {} KiB ({} KiB per connection), CPU {:.2}s user + {:.2}s system",
        generator.rss_kib,
        generator
            .rss_per_connection_kib
            .map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}")),
        generator.cpu_user_secs,
        generator.cpu_system_secs,
    );

    // Hold.
    let hold_start = Instant::now();
    if args.hold_secs > 0 && up > 0 {
        println!(
            "holding {up} connections for {}s (Ctrl-C to stop)...",
            args.hold_secs
        );
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(args.hold_secs)) => {}
            _ = tokio::signal::ctrl_c() => eprintln!("interrupted: closing"),
        }
    }
    let hold_secs = hold_start.elapsed().as_secs_f64() + args.settle_secs as f64;
    cancel.cancel();
    let closing = tokio::time::timeout(Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    });
    if closing.await.is_err() {
        eprintln!("some connections did not close within 10s; abandoning them");
    }
    let hold = HoldResult {
        secs: hold_secs,
        dropped: hold_failures.failed(),
        dropped_reasons: hold_failures.failures(),
        pings_answered: pings.load(Ordering::Relaxed),
    };
    println!(
        "  hold: {:.1}s, {} connection(s) dropped by the server, {} ping(s) answered",
        hold.secs, hold.dropped, hold.pings_answered
    );
    for (reason, n) in &hold.dropped_reasons {
        println!("    dropped {n:>6} × {reason}");
    }

    let result = ConnectResult {
        scenario: "connect",
        server: args.server.server.clone(),
        domain: args.server.domain.clone(),
        tls: args.server.tls,
        zlib: args.server.zlib,
        tls_verification: args.server.verification(),
        auth: args.server.auth,
        users: args.accounts.users,
        offset: args.accounts.offset,
        concurrency: args.concurrency,
        source_addresses: sources.len(),
        presence: args.presence,
        registration,
        connect,
        server_memory,
        generator,
        hold: Some(hold),
    };
    if let Some(path) = &args.json {
        report::write_json(path, &result).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("JSON result written to {}", path.display());
    }
    Ok(())
}

/// One process can hold only as many connections as its open-file limit allows.
fn check_fd_budget(users: u64, limit: FileLimit) -> Result<(), String> {
    let needed = users + FD_MARGIN;
    if needed <= limit.soft {
        return Ok(());
    }
    let per_process = limit.hard.saturating_sub(FD_MARGIN).max(1);
    let processes = users.div_ceil(per_process);
    Err(format!(
        "{users} connections need about {needed} file descriptors, but RLIMIT_NOFILE is {} \
         (hard limit {}, which this process cannot raise). Run {processes} generator processes \
         instead, each with --users {} and its own --offset (0, {}, ...), so they use disjoint \
         accounts.",
        limit.soft,
        limit.hard,
        users.div_ceil(processes),
        users.div_ceil(processes),
    ))
}

/// XEP-0077 registration of every account, with bounded concurrency.
async fn register_all(
    args: &ConnectArgs,
    target: &Arc<Target>,
    sources: &Arc<Sources>,
) -> RegistrationResult {
    let counters = Arc::new(Counters::default());
    let sem = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = JoinSet::new();
    let start = Instant::now();
    let progress = AbortOnDrop(report::spawn_progress(
        "register",
        counters.clone(),
        args.accounts.users,
        start,
    ));
    for i in 0..args.accounts.users {
        let index = args.accounts.offset + i;
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (target, sources, counters) = (target.clone(), sources.clone(), counters.clone());
        let user = conn::username(&args.accounts.user_prefix, index);
        tasks.spawn(async move {
            let t0 = Instant::now();
            let outcome = async {
                Conn::open(target, sources.pick(index))
                    .await?
                    .register(&user)
                    .await
            }
            .await;
            drop(permit);
            match outcome {
                Ok(Registered::Created) => counters.success(t0.elapsed()),
                Ok(Registered::Existed) => {
                    counters.other.fetch_add(1, Ordering::Relaxed);
                    counters.success(t0.elapsed());
                }
                Err(e) => counters.failure(e.reason()),
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    drop(progress);
    let phase = PhaseResult::from_counters(&counters, args.accounts.users, start.elapsed());
    let existed = counters.other.load(Ordering::Relaxed);
    RegistrationResult {
        created: phase.ok - existed,
        existed,
        phase,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_budget_suggests_several_processes() {
        let lim = FileLimit {
            soft: 20_000,
            hard: 20_000,
        };
        assert!(check_fd_budget(19_000, lim).is_ok());
        let msg = check_fd_budget(50_000, lim).unwrap_err();
        assert!(msg.contains("Run 3 generator processes"), "{msg}");
        assert!(msg.contains("--users 16667"), "{msg}");
    }
}
