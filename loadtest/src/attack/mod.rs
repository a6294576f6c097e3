//! `hostile`'s attackers: connections that do what issue 8 says an attacker would
//! (namespace bomb, slowloris, registration flood, login guessing, items-by-id
//! amplification) at full speed while the firehose runs, from their own source
//! address(es) so that per-address limits meet them and not the subscribers.
//!
//! Each attack runs `--attack-conns` loops; each loop connects, attacks until the
//! server ends the connection (or a per-connection budget is spent), and connects
//! again, until the publish phase ends. Every loop counts into its attack's `Tally`:
//! attempts, bytes each way, connections open at once and how each attempt or
//! connection ended (the `ConnError` reason: `attack: stream error
//! <policy-violation/>`, `stream: closed by server`, `auth: <not-authorized/>`, ...).

mod bomb;
mod guess;
mod items;
pub mod payload;
mod register;
mod slowloris;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::target::Sources;
use crate::xmpp::conn::{Conn, ConnError, ErrorKind, Stage, Target};

pub use items::ItemsAttacker;

/// The attacks (`--attacks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Attack {
    /// Issue 8's namespace bomb right after the stream header, again and again.
    Bomb,
    /// Connections held open by dripping a header or a stanza one byte at a time.
    Slowloris,
    /// XEP-0077 registrations of random names, as fast as answers come.
    Register,
    /// SASL logins to a subscriber's account with wrong passwords.
    Guess,
    /// Authenticated XEP-0060 retrievals of many (duplicate) item ids.
    Items,
}

impl Attack {
    #[cfg(test)]
    pub const ALL: [Attack; 5] = [
        Attack::Bomb,
        Attack::Slowloris,
        Attack::Register,
        Attack::Guess,
        Attack::Items,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Attack::Bomb => "bomb",
            Attack::Slowloris => "slowloris",
            Attack::Register => "register",
            Attack::Guess => "guess",
            Attack::Items => "items",
        }
    }
}

/// What every attack loop needs.
#[derive(Debug)]
pub struct Env {
    /// The server, plaintext or as configured; its password is not used.
    pub target: Arc<Target>,
    /// The attacker's own source addresses, round-robin per connection.
    pub sources: Sources,
    next_source: AtomicU64,
    /// Ends every loop: the end of the publish phase.
    pub stop: CancellationToken,
    /// The account whose password `guess` tries.
    pub victim: String,
    /// Pubsub service and node of `items`.
    pub service: String,
    pub node: String,
    /// Ids named per `items` request.
    pub item_ids: usize,
    /// Registration attempts per `register` connection before a new one.
    pub register_per_conn: u32,
    /// Time between two bytes of a `slowloris` connection.
    pub drip_every: Duration,
}

impl Env {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        target: Arc<Target>,
        sources: Sources,
        stop: CancellationToken,
        victim: String,
        service: String,
        node: String,
        item_ids: usize,
        register_per_conn: u32,
        drip_every: Duration,
    ) -> Self {
        Self {
            target,
            sources,
            next_source: AtomicU64::new(0),
            stop,
            victim,
            service,
            node,
            item_ids,
            register_per_conn,
            drip_every,
        }
    }

    /// The same, connecting from `sources`.
    fn with_sources(&self, sources: Sources) -> Self {
        Self {
            target: self.target.clone(),
            sources,
            next_source: AtomicU64::new(0),
            stop: self.stop.clone(),
            victim: self.victim.clone(),
            service: self.service.clone(),
            node: self.node.clone(),
            item_ids: self.item_ids,
            register_per_conn: self.register_per_conn,
            drip_every: self.drip_every,
        }
    }

    /// The source address of the next attacker connection.
    pub fn source(&self) -> Option<IpAddr> {
        self.sources
            .pick(self.next_source.fetch_add(1, Ordering::Relaxed))
    }

    /// Open a stream from an attacker address, counted; a failure is an outcome, after
    /// a short pause so a refusing server is not met by a busy loop of the generator
    /// (it shares the machine with the subscribers being measured).
    async fn open(&self, tally: &Tally) -> Option<Conn> {
        tally.connections.fetch_add(1, Ordering::Relaxed);
        match Conn::open(self.target.clone(), self.source()).await {
            Ok(c) => Some(c),
            Err(e) => {
                tally.outcome(refusal(&e));
                self.pause(Duration::from_millis(20)).await;
                None
            }
        }
    }

    /// Sleep unless the attack is over first.
    async fn pause(&self, d: Duration) {
        tokio::select! {
            () = self.stop.cancelled() => {}
            () = tokio::time::sleep(d) => {}
        }
    }
}

/// One attack's counts, updated by all its loops.
#[derive(Debug, Default)]
pub struct Tally {
    /// TCP connections attempted.
    connections: AtomicU64,
    /// Attack units: bombs sent, registrations and logins tried, requests sent,
    /// slowloris connections started.
    attempts: AtomicU64,
    /// Attempts the server answered (a reply, an error, or ending the connection).
    answered: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    open: AtomicU64,
    peak_open: AtomicU64,
    /// Connections that ended, and their total and longest lifetime.
    closed: AtomicU64,
    held_ms_total: AtomicU64,
    held_ms_max: AtomicU64,
    // std Mutex: held for one insert, never across an .await.
    outcomes: Mutex<BTreeMap<String, u64>>,
}

/// Counts a connection as open until dropped.
#[derive(Debug)]
pub struct OpenGuard<'a> {
    tally: &'a Tally,
    since: Instant,
}

impl Drop for OpenGuard<'_> {
    fn drop(&mut self) {
        let t = self.tally;
        t.open.fetch_sub(1, Ordering::Relaxed);
        t.closed.fetch_add(1, Ordering::Relaxed);
        let ms = self.since.elapsed().as_millis() as u64;
        t.held_ms_total.fetch_add(ms, Ordering::Relaxed);
        t.held_ms_max.fetch_max(ms, Ordering::Relaxed);
    }
}

impl Tally {
    pub fn attempt(&self, bytes: usize) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        self.sent(bytes);
    }

    pub fn sent(&self, bytes: usize) {
        self.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    pub fn received(&self, bytes: usize) {
        self.bytes_received
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// The answer to an attempt, by kind.
    pub fn answer(&self, kind: impl Into<String>) {
        self.answered.fetch_add(1, Ordering::Relaxed);
        self.outcome(kind);
    }

    /// How a connection ended (or failed to start), by kind.
    pub fn outcome(&self, kind: impl Into<String>) {
        *self
            .outcomes
            .lock()
            .expect("poisoned")
            .entry(kind.into())
            .or_default() += 1;
    }

    /// A connection is up: counted as open until the guard is dropped.
    pub fn opened(&self) -> OpenGuard<'_> {
        let now = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_open.fetch_max(now, Ordering::Relaxed);
        OpenGuard {
            tally: self,
            since: Instant::now(),
        }
    }

    pub fn result(&self, attack: Attack, loops: usize, secs: f64) -> AttackResult {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (attempts, closed) = (load(&self.attempts), load(&self.closed));
        let answered = load(&self.answered);
        AttackResult {
            attack,
            loops,
            connections: load(&self.connections),
            attempts,
            unanswered: attempts.saturating_sub(answered),
            attempts_per_sec: if secs > 0.0 {
                attempts as f64 / secs
            } else {
                0.0
            },
            bytes_sent: load(&self.bytes_sent),
            bytes_received: load(&self.bytes_received),
            peak_open: load(&self.peak_open),
            mean_connection_secs: (closed > 0)
                .then(|| load(&self.held_ms_total) as f64 / closed as f64 / 1000.0),
            max_connection_secs: load(&self.held_ms_max) as f64 / 1000.0,
            outcomes: self.outcomes.lock().expect("poisoned").clone(),
        }
    }
}

/// One attack's figures in the report.
#[derive(Debug, Clone, Serialize)]
pub struct AttackResult {
    pub attack: Attack,
    /// Loops run in parallel (`--attack-conns`).
    pub loops: usize,
    /// TCP connections attempted.
    pub connections: u64,
    pub attempts: u64,
    /// Attempts still waiting for an answer when the attack stopped (a server that
    /// delays its answers, e.g. to failed logins, shows here).
    pub unanswered: u64,
    pub attempts_per_sec: f64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Most attacker connections of this kind open at once.
    pub peak_open: u64,
    /// How long the server let a connection live, on average and at most.
    pub mean_connection_secs: Option<f64>,
    pub max_connection_secs: f64,
    /// How attempts and connections ended, by reason.
    pub outcomes: BTreeMap<String, u64>,
}

impl AttackResult {
    pub fn describe(&self) -> String {
        let mut s = format!(
            "  attack {}: {} loops, {} connections, {} attempts ({:.1}/s, {} unanswered at the end), {} KiB sent, {} KiB received, peak {} open, connection lifetime mean {} s / max {:.1} s\n",
            self.attack.name(),
            self.loops,
            self.connections,
            self.attempts,
            self.attempts_per_sec,
            self.unanswered,
            self.bytes_sent / 1024,
            self.bytes_received / 1024,
            self.peak_open,
            self.mean_connection_secs
                .map_or_else(|| "n/a".to_owned(), |m| format!("{m:.2}")),
            self.max_connection_secs,
        );
        for (reason, n) in &self.outcomes {
            let _ = writeln!(s, "    {n:>8} × {reason}");
        }
        s
    }
}

/// Run `attacks`, `loops` each, until `env.stop`; `items` are the logged-in
/// connections of the items attack (set up beforehand).
pub async fn run(
    env: Arc<Env>,
    attacks: &[Attack],
    loops: usize,
    items: Vec<ItemsAttacker>,
) -> Vec<AttackResult> {
    let start = Instant::now();
    let bomb = Arc::new(payload::namespace_bomb());
    let mut tallies = Vec::new();
    let mut set = JoinSet::new();
    let mut items = Some(items);
    for (k, &attack) in attacks.iter().enumerate() {
        let tally = Arc::new(Tally::default());
        // Each attack from its own address(es) when there are enough: one attack
        // using up an address's connection budget does not hide the others.
        let env = Arc::new(env.with_sources(env.sources.share(k, attacks.len())));
        if attack == Attack::Items {
            let attackers = items.take().unwrap_or_default();
            let n = attackers.len();
            tallies.push((attack, tally.clone(), n));
            // Logged in during setup: their connections count here too.
            tally.connections.fetch_add(n as u64, Ordering::Relaxed);
            for a in attackers {
                set.spawn(items::run(env.clone(), tally.clone(), a));
            }
            if n == 0 {
                tally.outcome("no items attacker could log in");
            }
            continue;
        }
        tallies.push((attack, tally.clone(), loops));
        for i in 0..loops {
            let (env, tally) = (env.clone(), tally.clone());
            match attack {
                Attack::Bomb => set.spawn(bomb::run(env, tally, bomb.clone())),
                Attack::Slowloris => set.spawn(slowloris::run(env, tally, i % 2 == 0)),
                Attack::Register => set.spawn(register::run(env, tally)),
                Attack::Guess => set.spawn(guess::run(env, tally)),
                Attack::Items => unreachable!("handled above"),
            };
        }
    }
    env.stop.cancelled().await;
    let secs = start.elapsed().as_secs_f64();
    // Every loop returns at `stop`; one stuck in a write gets a moment, then is dropped.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while set.join_next().await.is_some() {}
    })
    .await;
    set.abort_all();
    tallies
        .into_iter()
        .map(|(attack, tally, n)| tally.result(attack, n, secs))
        .collect()
}

/// How opening a stream failed: refused at connect (nothing listening, or the
/// server closed the connection before the stream opened, as per-address admission
/// limits do) or later.
fn refusal(e: &ConnError) -> String {
    match (&e.stage, &e.kind) {
        (Stage::Connect, _) => format!("refused at connect: {}", e.reason()),
        (Stage::Stream, ErrorKind::Closed | ErrorKind::Io(_)) => {
            format!("closed before the stream opened: {}", e.reason())
        }
        _ => e.reason(),
    }
}

/// The reason of an error in the attack stage.
fn attack_error(kind: ErrorKind) -> String {
    ConnError::new(Stage::Attack, kind).reason()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_attempts_answers_and_open_connections() {
        let t = Tally::default();
        {
            let _a = t.opened();
            let _b = t.opened();
            t.attempt(100);
            t.attempt(50);
            t.answer("register: created");
            t.received(30);
        }
        let _c = t.opened();
        t.outcome("refused at connect: connect: connection refused");
        let r = t.result(Attack::Register, 2, 2.0);
        assert_eq!((r.attempts, r.unanswered, r.attempts_per_sec), (2, 1, 1.0));
        assert_eq!((r.bytes_sent, r.bytes_received), (150, 30));
        assert_eq!(r.peak_open, 2);
        assert!(r.mean_connection_secs.is_some());
        assert_eq!(r.outcomes.len(), 2);
        assert!(r.describe().contains("1 × register: created"));
        let e = ConnError::new(Stage::Stream, ErrorKind::Closed);
        assert_eq!(
            refusal(&e),
            "closed before the stream opened: stream: closed by server"
        );
        let e = ConnError::new(Stage::Stream, ErrorKind::StreamError("host-unknown".into()));
        assert_eq!(refusal(&e), "stream: stream error <host-unknown/>");
    }
}
