//! Counting outcomes while a phase runs, a progress line every second, and the
//! summary figures (human text and JSON) shared by the scenarios.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Outcomes of one phase (registration, connect), updated by every connection task.
#[derive(Debug, Default)]
pub struct Counters {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Phase-specific secondary count (registration: accounts that already existed).
    pub other: AtomicU64,
    // std Mutex: held for one insert, never across an .await.
    failures: Mutex<BTreeMap<String, u64>>,
    latencies_us: Mutex<Vec<u64>>,
}

impl Counters {
    pub fn success(&self, took: Duration) {
        self.latencies_us
            .lock()
            .expect("poisoned")
            .push(took.as_micros() as u64);
        self.ok.fetch_add(1, Ordering::Relaxed);
    }

    pub fn failure(&self, reason: String) {
        *self
            .failures
            .lock()
            .expect("poisoned")
            .entry(reason)
            .or_default() += 1;
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> BTreeMap<String, u64> {
        self.failures.lock().expect("poisoned").clone()
    }

    pub fn latency(&self) -> Option<Latency> {
        let mut v = self.latencies_us.lock().expect("poisoned").clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0;
        Some(Latency {
            p50_ms: at(0.5),
            p90_ms: at(0.9),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        })
    }
}

/// Time from TCP connect to the last step of a successful connection.
#[allow(clippy::struct_field_names)] // the unit is part of the JSON key
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// Print `[  3.0s] label: done/total ok, failed, rate` every second until aborted.
pub fn spawn_progress(
    label: &'static str,
    counters: std::sync::Arc<Counters>,
    total: u64,
    start: Instant,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick =
            tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
        let mut last = 0;
        loop {
            tick.tick().await;
            let (ok, failed) = (counters.ok(), counters.failed());
            let secs = start.elapsed().as_secs_f64();
            eprintln!(
                "[{secs:6.1}s] {label}: {ok}/{total} ok, {failed} failed, {:.0}/s (last second {}/s)",
                ok as f64 / secs,
                ok - last
            );
            last = ok;
        }
    })
}

/// Aborts a progress printer when the phase ends (also on early return).
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Summary of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    pub secs: f64,
    /// Successful connections per second of the phase's wall time.
    pub rate_per_sec: f64,
    pub latency: Option<Latency>,
    pub failures: BTreeMap<String, u64>,
}

impl PhaseResult {
    pub fn from_counters(c: &Counters, attempted: u64, took: Duration) -> Self {
        let secs = took.as_secs_f64();
        Self {
            attempted,
            ok: c.ok(),
            failed: c.failed(),
            secs,
            rate_per_sec: if secs > 0.0 {
                c.ok() as f64 / secs
            } else {
                0.0
            },
            latency: c.latency(),
            failures: c.failures(),
        }
    }

    /// Multi-line human summary, indented.
    pub fn describe(&self, what: &str) -> String {
        let mut s = format!(
            "  {what}: {}/{} ok, {} failed in {:.2}s = {:.1}/s\n",
            self.ok, self.attempted, self.failed, self.secs, self.rate_per_sec
        );
        if let Some(l) = self.latency {
            let _ = writeln!(
                s,
                "    latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        for (reason, n) in &self.failures {
            let _ = writeln!(s, "    failed {n:>6} × {reason}");
        }
        s
    }
}

/// Write `value` as pretty JSON to `path`.
pub fn write_json(path: &std::path::Path, value: &impl Serialize) -> std::io::Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_summarise_latency_and_failures() {
        let c = Counters::default();
        for ms in 1..=100 {
            c.success(Duration::from_millis(ms));
        }
        c.failure("auth: <not-authorized/>".into());
        c.failure("auth: <not-authorized/>".into());
        c.failure("connect: timeout".into());
        let r = PhaseResult::from_counters(&c, 103, Duration::from_secs(2));
        assert_eq!((r.ok, r.failed), (100, 3));
        assert!((r.rate_per_sec - 50.0).abs() < 1e-9);
        let l = r.latency.unwrap();
        assert!((l.p50_ms - 51.0).abs() < 1e-9 || (l.p50_ms - 50.0).abs() < 1e-9);
        assert!((l.max_ms - 100.0).abs() < 1e-9);
        assert_eq!(r.failures["auth: <not-authorized/>"], 2);
        assert!(
            r.describe("connect")
                .contains("2 × auth: <not-authorized/>")
        );
    }
}
