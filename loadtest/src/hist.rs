//! A latency histogram shared by many tasks: log-linear buckets over microseconds
//! (exact below 64 µs, then 32 buckets per power of two, so ~3 % resolution), each
//! an atomic counter. Recording is one relaxed `fetch_add`; nothing is stored per
//! sample, so ten million deliveries cost the same memory as ten.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::report::Latency;

const LINEAR: u64 = 64;
const SUB_BITS: u32 = 5;
const SUB: u64 = 1 << SUB_BITS;
/// Up to 2^44 µs (~200 days): far beyond any run.
const MAX_EXP: u32 = 44;
const BUCKETS: usize = (LINEAR + (MAX_EXP as u64 - 6 + 1) * SUB) as usize;

#[derive(Debug)]
pub struct Histogram {
    buckets: Box<[AtomicU64]>,
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

fn index(us: u64) -> usize {
    if us < LINEAR {
        return us as usize;
    }
    let exp = us.ilog2().min(MAX_EXP); // >= 6
    let sub = (us >> (exp - SUB_BITS)) & (SUB - 1);
    (LINEAR + u64::from(exp - 6) * SUB + sub) as usize
}

/// The upper end of bucket `i`, in µs.
fn upper(i: usize) -> u64 {
    let i = i as u64;
    if i < LINEAR {
        return i;
    }
    let exp = (i - LINEAR) / SUB + 6;
    let sub = (i - LINEAR) % SUB;
    ((SUB + sub + 1) << (exp - u64::from(SUB_BITS))) - 1
}

impl Histogram {
    pub fn record_us(&self, us: u64) {
        self.buckets[index(us).min(BUCKETS - 1)].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The value at quantile `q` (bucket upper bound, capped at the exact maximum).
    pub fn quantile_us(&self, q: f64) -> u64 {
        let total = self.count();
        let max = self.max_us.load(Ordering::Relaxed);
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64 * q).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return upper(i).min(max);
            }
        }
        max
    }

    pub fn latency(&self) -> Option<Latency> {
        if self.count() == 0 {
            return None;
        }
        let ms = |q| self.quantile_us(q) as f64 / 1000.0;
        Some(Latency {
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            max_ms: self.max_us.load(Ordering::Relaxed) as f64 / 1000.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_tight() {
        for us in [
            0,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            12_345,
            1 << 30,
            (1 << 40) + 7,
        ] {
            let i = index(us);
            assert!(upper(i) >= us, "{us}");
            if i > 0 {
                assert!(upper(i - 1) < us, "{us}");
            }
            assert!(upper(i) - us <= us / 32 + 1, "{us}");
        }
    }

    #[test]
    fn quantiles() {
        let h = Histogram::default();
        assert!(h.latency().is_none());
        for us in 1..=10_000 {
            h.record_us(us);
        }
        let l = h.latency().unwrap();
        assert!((l.p50_ms - 5.0).abs() < 0.2, "{l:?}");
        assert!((l.p99_ms - 9.9).abs() < 0.35, "{l:?}");
        assert!((l.max_ms - 10.0).abs() < 1e-9);
        assert_eq!(h.count(), 10_000);
    }
}
