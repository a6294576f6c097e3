//! Slows down repeated failed logins from one address (brute-force protection).
//!
//! Each failure doubles the delay before the next `<failure/>` answer from that address,
//! up to a cap; a success or ten quiet minutes forget the address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const FORGET_AFTER: Duration = Duration::from_mins(10);
const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Above this many tracked addresses, stale entries are swept on the next failure.
const SWEEP_ABOVE: usize = 4096;

#[derive(Debug, Default)]
pub struct AuthThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl AuthThrottle {
    /// Records a failure and returns how long to wait before answering it.
    pub fn failed(&self, ip: IpAddr, max_delay: Duration) -> Duration {
        let now = Instant::now();
        let mut map = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > SWEEP_ABOVE {
            map.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
        }
        let entry = map.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let exp = (entry.0 - 1).min(16);
        FIRST_DELAY.saturating_mul(1 << exp).min(max_delay)
    }

    /// A successful login clears the address's record.
    pub fn succeeded(&self, ip: IpAddr) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn delay_doubles_caps_and_resets() {
        let t = AuthThrottle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let cap = Duration::from_secs(2);
        assert_eq!(t.failed(ip, cap), Duration::from_millis(250));
        assert_eq!(t.failed(ip, cap), Duration::from_millis(500));
        assert_eq!(t.failed(ip, cap), Duration::from_secs(1));
        assert_eq!(t.failed(ip, cap), Duration::from_secs(2));
        assert_eq!(t.failed(ip, cap), Duration::from_secs(2));
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            t.failed(other, cap),
            Duration::from_millis(250),
            "per address"
        );
        t.succeeded(ip);
        assert_eq!(t.failed(ip, cap), Duration::from_millis(250));
        tokio::time::advance(FORGET_AFTER).await;
        assert_eq!(
            t.failed(other, cap),
            Duration::from_millis(250),
            "forgotten after quiet"
        );
    }
}
