//! Per-address admission of new connections: a token bucket on the connection rate and a
//! cap on connections that have not authenticated yet, per IPv4 address or IPv6 /64
//! (one host usually owns a whole /64, so per-address limits there would be no limit).
//!
//! Without it one host could open `max_connections` sockets and hold each until the
//! authentication deadline, locking every real client out.
//!
//! Memory: one small entry per address that has an unauthenticated connection or a
//! bucket not yet refilled; idle entries are swept when the table grows, so an attacker
//! with many addresses costs entries only for as long as its connections (bounded by
//! `max_connections`) plus one refill period.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

/// Caps per client address (IPv4 address, IPv6 /64 prefix), so that one host cannot take
/// every connection slot.
#[derive(Debug, Clone, Copy)]
pub struct PerIpLimits {
    /// Connections from one address that have not authenticated yet.
    pub max_unauthenticated: u32,
    /// New connections per second from one address, sustained (token bucket rate).
    pub connections_per_sec: u32,
    /// New connections from one address in a burst (token bucket size).
    pub connection_burst: u32,
}

impl Default for PerIpLimits {
    fn default() -> Self {
        PerIpLimits {
            max_unauthenticated: 64,
            connections_per_sec: 20,
            connection_burst: 100,
        }
    }
}

/// Addresses are grouped: IPv4 by address, IPv6 by /64 (IPv4-mapped IPv6 as IPv4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum AddrKey {
    V4(u32),
    V6Prefix(u64),
}

impl AddrKey {
    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => AddrKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(u32::from(v4)),
                None => AddrKey::V6Prefix((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

#[derive(Debug)]
struct Entry {
    unauthenticated: u32,
    tokens: f64,
    refilled: Instant,
}

/// Why a connection was refused (a metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Rate,
    Unauthenticated,
}

impl Refused {
    pub fn as_str(self) -> &'static str {
        match self {
            Refused::Rate => "ip_rate",
            Refused::Unauthenticated => "ip_unauthenticated",
        }
    }
}

/// Sweep idle entries when the table is larger than this.
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug)]
pub struct Admission {
    limits: PerIpLimits,
    table: Mutex<HashMap<AddrKey, Entry>>,
}

impl Admission {
    pub fn new(limits: PerIpLimits) -> Arc<Self> {
        Arc::new(Admission {
            limits,
            table: Mutex::new(HashMap::new()),
        })
    }

    /// Admits a new connection from `ip`, or says why not. The guard counts the
    /// connection as unauthenticated until [`PreauthGuard::authenticated`] or drop.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<PreauthGuard, Refused> {
        let key = AddrKey::of(ip);
        let now = Instant::now();
        let l = self.limits;
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if table.len() > SWEEP_ABOVE {
            table.retain(|_, e| e.unauthenticated > 0 || !full(e, &l, now));
        }
        let e = table.entry(key).or_insert(Entry {
            unauthenticated: 0,
            tokens: f64::from(l.connection_burst),
            refilled: now,
        });
        refill(e, &l, now);
        if e.tokens < 1.0 {
            return Err(Refused::Rate);
        }
        if e.unauthenticated >= l.max_unauthenticated {
            return Err(Refused::Unauthenticated);
        }
        e.tokens -= 1.0;
        e.unauthenticated += 1;
        Ok(PreauthGuard {
            admission: Some(self.clone()),
            key,
        })
    }

    fn release(&self, key: AddrKey) {
        let mut table = self.table.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = table.get_mut(&key) {
            e.unauthenticated = e.unauthenticated.saturating_sub(1);
        }
    }

    /// Entries held (for tests).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.table
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

fn refill(e: &mut Entry, l: &PerIpLimits, now: Instant) {
    let secs = now.duration_since(e.refilled).as_secs_f64();
    e.tokens =
        (e.tokens + secs * f64::from(l.connections_per_sec)).min(f64::from(l.connection_burst));
    e.refilled = now;
}

fn full(e: &Entry, l: &PerIpLimits, now: Instant) -> bool {
    let secs = now.duration_since(e.refilled).as_secs_f64();
    e.tokens + secs * f64::from(l.connections_per_sec) >= f64::from(l.connection_burst)
}

/// Counts one connection as unauthenticated for its address while it lives.
#[derive(Debug)]
pub struct PreauthGuard {
    admission: Option<Arc<Admission>>,
    key: AddrKey,
}

impl PreauthGuard {
    /// The connection authenticated: it no longer counts against its address.
    pub fn authenticated(&mut self) {
        if let Some(a) = self.admission.take() {
            a.release(self.key);
        }
    }
}

impl Drop for PreauthGuard {
    fn drop(&mut self) {
        self.authenticated();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn limits(unauth: u32, rate: u32, burst: u32) -> PerIpLimits {
        PerIpLimits {
            max_unauthenticated: unauth,
            connections_per_sec: rate,
            connection_burst: burst,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unauthenticated_cap_per_address() {
        let a = Admission::new(limits(2, 1000, 1000));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut g1 = a.admit(ip).unwrap();
        let _g2 = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip).unwrap_err(), Refused::Unauthenticated);
        assert!(a.admit("192.0.2.2".parse().unwrap()).is_ok(), "other hosts");
        g1.authenticated();
        let g3 = a.admit(ip).unwrap();
        drop(g3);
        assert!(a.admit(ip).is_ok(), "a dropped guard frees its slot");
    }

    #[tokio::test(start_paused = true)]
    async fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a = Admission::new(limits(1, 1000, 1000));
        let _g = a.admit("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(a.admit("2001:db8:1:2:ffff::9".parse().unwrap()).is_err());
        assert!(a.admit("2001:db8:1:3::1".parse().unwrap()).is_ok());
        let _v4 = a.admit("192.0.2.7".parse().unwrap()).unwrap();
        assert!(a.admit("::ffff:192.0.2.7".parse().unwrap()).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn connection_rate_is_a_token_bucket() {
        let a = Admission::new(limits(1000, 2, 3));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut held = Vec::new();
        for _ in 0..3 {
            held.push(a.admit(ip).unwrap());
        }
        assert_eq!(a.admit(ip).unwrap_err(), Refused::Rate);
        tokio::time::advance(Duration::from_millis(500)).await;
        held.push(a.admit(ip).unwrap());
        assert_eq!(a.admit(ip).unwrap_err(), Refused::Rate);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_entries_are_swept() {
        let a = Admission::new(limits(10, 1, 1));
        for i in 0..=SWEEP_ABOVE as u32 {
            let ip = IpAddr::V4((0x0a00_0000 + i).into());
            drop(a.admit(ip).unwrap());
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        drop(a.admit("192.0.2.1".parse().unwrap()).unwrap());
        assert_eq!(
            a.tracked(),
            1,
            "refilled entries without connections are gone"
        );
    }
}
