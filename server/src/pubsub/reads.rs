//! A shaper on what pubsub and MAM requests make the server read and send: the bytes of
//! their replies, per client network (an IPv4 address or an IPv6 /64).
//!
//! Why: every request is bounded (a page, `max_page_items`, the byte caps), but nothing
//! bounded how many a client sends. Fifty sessions asking for 500 item ids each, back to
//! back, made the server read and send 27 MB/s of pages: the publishes of the same
//! service waited behind them and a 60/s firehose's p99 went from 14 ms to 330 ms
//! (`hydrant-load hostile --attacks items`, loadtest/HISTORY.md). A reply's bytes are the
//! request's cost (payloads read and parsed, the reply written), so they are what is
//! charged.
//!
//! A shaper, not a refusal: a network over its rate is not answered with an error but
//! waits, before its next request is handled, until its debt is paid at the configured
//! rate (GCRA). Its session handles stanzas one at a time, so it stops reading from its
//! socket meanwhile: TCP pushes back, and a client catching up with MAM just goes at the
//! rate. Every other network is not slowed. Per network rather than per account,
//! because accounts cost an attacker little; per session would multiply with sessions.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Most networks tracked; past it the ones without debt are forgotten (they owe
/// nothing), then, if still full, the table is cleared (a flood of addresses must not
/// grow memory; it forgets debts, the lesser evil).
const MAX_KEYS: usize = 32_768;

/// The network an address counts against (IPv4-mapped IPv6 counts as its IPv4 address).
fn network(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_bits()),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => u128::from(v4.to_bits()),
            // The /64, tagged so it cannot equal an IPv4 key.
            None => (v6.to_bits() >> 64) | (1 << 127),
        },
    }
}

#[derive(Debug)]
pub struct ReadShaper {
    /// Bytes per second per network; 0 = no shaping.
    rate: u64,
    /// Bytes a network may take at once before it waits.
    burst: u64,
    /// Per network: the theoretical arrival time of its next byte (GCRA's TAT).
    tat: Mutex<HashMap<u128, Instant>>,
}

impl ReadShaper {
    pub fn new(rate: u64, burst: u64) -> Self {
        ReadShaper {
            rate,
            burst,
            tat: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip`'s network must wait before its next request (zero when within its
    /// burst).
    pub fn delay(&self, ip: IpAddr) -> Duration {
        if self.rate == 0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let tat = self.table();
        let Some(&t) = tat.get(&network(ip)) else {
            return Duration::ZERO;
        };
        // Allowed while the debt is within the burst: TAT - burst/rate <= now.
        let allowance = self.per_bytes(self.burst);
        t.checked_sub(allowance).map_or(Duration::ZERO, |free_at| {
            free_at.saturating_duration_since(now)
        })
    }

    /// Waits out [`Self::delay`].
    pub async fn wait(&self, ip: IpAddr) {
        let d = self.delay(ip);
        if !d.is_zero() {
            metrics::counter!("hydrant_pubsub_reads_shaped_total").increment(1);
            tokio::time::sleep(d).await;
        }
    }

    /// Charges `bytes` of replies to `ip`'s network.
    pub fn charge(&self, ip: IpAddr, bytes: usize) {
        if self.rate == 0 || bytes == 0 {
            return;
        }
        let now = Instant::now();
        let cost = self.per_bytes(bytes as u64);
        let mut tat = self.table();
        if tat.len() >= MAX_KEYS && !tat.contains_key(&network(ip)) {
            tat.retain(|_, t| *t > now);
            if tat.len() >= MAX_KEYS {
                tat.clear();
            }
        }
        let t = tat.entry(network(ip)).or_insert(now);
        *t = (*t).max(now) + cost;
    }

    fn per_bytes(&self, bytes: u64) -> Duration {
        Duration::from_secs_f64(bytes as f64 / self.rate as f64)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<u128, Instant>> {
        self.tat.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_network_past_its_burst_waits_at_the_rate_others_do_not() {
        let s = ReadShaper::new(1000, 4000);
        let a = ip("192.0.2.1");
        s.charge(a, 3000);
        assert_eq!(s.delay(a), Duration::ZERO, "within the burst");
        s.charge(a, 3000);
        // 6000 owed, 4000 allowed: 2000 bytes at 1000/s.
        assert_eq!(s.delay(a), Duration::from_secs(2));
        // The same network (IPv4-mapped), another one, an IPv6 /64 neighbour.
        assert_eq!(s.delay(ip("::ffff:192.0.2.1")), Duration::from_secs(2));
        assert_eq!(s.delay(ip("192.0.2.2")), Duration::ZERO);
        s.charge(ip("2001:db8::1"), 9000);
        assert_eq!(s.delay(ip("2001:db8::2")), Duration::from_secs(5));
        assert_eq!(s.delay(ip("2001:db8:0:1::2")), Duration::ZERO);

        let started = Instant::now();
        s.wait(a).await;
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(s.delay(a), Duration::ZERO);
        // Debt is paid over time, not forgiven at once.
        tokio::time::advance(Duration::from_secs(1)).await;
        s.charge(a, 5000);
        // 3000 still owed + 5000 - the 4000 burst, at 1000/s.
        assert_eq!(s.delay(a), Duration::from_secs(4));
    }

    #[test]
    fn zero_rate_is_off() {
        let s = ReadShaper::new(0, 0);
        s.charge(ip("192.0.2.1"), usize::MAX);
        assert_eq!(s.delay(ip("192.0.2.1")), Duration::ZERO);
        assert!(s.table().is_empty());
    }
}
