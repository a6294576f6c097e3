//! Brute-force and flood protection shared by every c2s stream of a server.
//!
//! - Logins are a budget per client network ([`Net`]: an IPv4 address or an IPv6 /64, the
//!   block one subscriber usually gets) and one per account. An attempt is taken from
//!   both before the credential is verified and given back if it succeeds, so only
//!   failures use them up, and guesses sent over many connections at once draw on the
//!   same budgets as guesses sent one after the other.
//! - Failed logins also slow the network down: each failure doubles the delay before the
//!   next `<failure/>` answer to it, up to a cap; a success or ten quiet minutes forget it.
//! - In-band registrations are a budget per client network, taken before the server
//!   derives any keys.
//!
//! Budgets are GCRA token buckets: `n` per hour means a burst of `n`, then one more every
//! hour/`n`. Every table is keyed by what the client chooses (addresses), so each is
//! bounded: past [`MAX_KEYS`] entries the idle ones are dropped, then the least used.
//! Usernames are kept as keyed 64-bit hashes, never as the strings a client sent.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

const FORGET_AFTER: Duration = Duration::from_mins(10);
const FIRST_DELAY: Duration = Duration::from_millis(250);
const HOUR: Duration = Duration::from_hours(1);
/// Most entries one table keeps (a few MiB at most).
const MAX_KEYS: usize = 32_768;

/// The network a client address counts against: an IPv4 address, or the /64 of an IPv6
/// address (IPv4-mapped IPv6 addresses count as their IPv4 address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Net {
    V4(u32),
    V6(u64),
}

impl Net {
    pub(crate) fn of(ip: IpAddr) -> Net {
        match ip {
            IpAddr::V4(v4) => Net::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Net::V4(v4.to_bits()),
                // The upper 64 bits: truncation is the point.
                #[allow(clippy::cast_possible_truncation)]
                None => Net::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

#[derive(Debug, Default)]
pub struct AuthThrottle {
    state: Mutex<State>,
    /// Keys the username hashes (random per process, so names cannot be chosen to collide).
    usernames: RandomState,
}

#[derive(Debug, Default)]
struct State {
    /// Failed logins per network: how many, and when the last one was.
    failures: HashMap<Net, (u32, Instant)>,
    logins_by_net: Budget<Net>,
    logins_by_account: Budget<u64>,
    registrations: Budget<Net>,
}

/// Login attempts allowed per hour (0: unlimited).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginBudgets {
    pub per_net: u32,
    pub per_account: u32,
}

/// A login attempt taken from the budgets, to give back if the credential is right.
#[derive(Debug)]
pub(crate) struct LoginAttempt {
    net: Net,
    account: Option<u64>,
    budgets: LoginBudgets,
}

impl AuthThrottle {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records a failure and returns how long to wait before answering it.
    pub fn failed(&self, ip: IpAddr, max_delay: Duration) -> Duration {
        let now = Instant::now();
        let mut state = self.state();
        let map = &mut state.failures;
        if map.len() >= MAX_KEYS {
            map.retain(|_, (_, at)| now.duration_since(*at) < FORGET_AFTER);
            evict_smallest(map, |(_, at)| *at);
        }
        let entry = map.entry(Net::of(ip)).or_insert((0, now));
        if now.duration_since(entry.1) >= FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let exp = (entry.0 - 1).min(16);
        FIRST_DELAY.saturating_mul(1 << exp).min(max_delay)
    }

    /// Takes one login attempt from the budgets of `ip`'s network and of `account` (if
    /// the name is valid at all), before the credential is verified. `Err`: one of them
    /// is used up, with the time until it allows another; nothing was taken.
    pub(crate) fn login_attempt(
        &self,
        ip: IpAddr,
        account: Option<&str>,
        budgets: LoginBudgets,
    ) -> Result<LoginAttempt, Duration> {
        let now = Instant::now();
        let net = Net::of(ip);
        let account = account.map(|a| self.usernames.hash_one(a));
        let mut state = self.state();
        state.logins_by_net.take(net, budgets.per_net, now)?;
        if let Some(key) = account
            && let Err(wait) = state.logins_by_account.take(key, budgets.per_account, now)
        {
            state.logins_by_net.give_back(net, budgets.per_net, now);
            return Err(wait);
        }
        Ok(LoginAttempt {
            net,
            account,
            budgets,
        })
    }

    /// The attempt succeeded: it is given back, and the network's delay is cleared. Only
    /// this attempt: logging in to one's own account does not buy more guesses.
    pub(crate) fn login_succeeded(&self, attempt: LoginAttempt) {
        let now = Instant::now();
        let mut state = self.state();
        state.failures.remove(&attempt.net);
        let budgets = attempt.budgets;
        state
            .logins_by_net
            .give_back(attempt.net, budgets.per_net, now);
        if let Some(key) = attempt.account {
            state
                .logins_by_account
                .give_back(key, budgets.per_account, now);
        }
    }

    /// Takes one registration attempt from the budget of `ip`'s network
    /// (`per_hour == 0`: unlimited). `Err` carries how long until the next one is allowed.
    pub(crate) fn registration_attempt(&self, ip: IpAddr, per_hour: u32) -> Result<(), Duration> {
        self.state()
            .registrations
            .take(Net::of(ip), per_hour, Instant::now())
    }

    /// Gives an attempt back: the registration was refused before any work was done.
    pub(crate) fn registration_refund(&self, ip: IpAddr, per_hour: u32) {
        self.state()
            .registrations
            .give_back(Net::of(ip), per_hour, Instant::now());
    }
}

/// Token buckets by key, kept as GCRA "theoretical arrival times": a key's entry is the
/// instant at which its bucket is full again (absent: full now).
#[derive(Debug)]
struct Budget<K> {
    full_at: HashMap<K, Instant>,
}

impl<K> Default for Budget<K> {
    fn default() -> Self {
        Budget {
            full_at: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq + Copy> Budget<K> {
    /// Takes one token of `per_hour` (a burst of `per_hour`, refilled evenly over an
    /// hour). `Err`: none left, with the time until there is one.
    fn take(&mut self, key: K, per_hour: u32, now: Instant) -> Result<(), Duration> {
        if per_hour == 0 {
            return Ok(());
        }
        let interval = HOUR / per_hour;
        let full_at = self.full_at.get(&key).copied().unwrap_or(now).max(now);
        let next = full_at + interval;
        let debt = next.duration_since(now);
        if let Some(wait) = debt.checked_sub(HOUR).filter(|w| !w.is_zero()) {
            return Err(wait);
        }
        if !self.full_at.contains_key(&key) && self.full_at.len() >= MAX_KEYS {
            self.make_room(now);
        }
        self.full_at.insert(key, next);
        Ok(())
    }

    /// Returns a token taken by [`Budget::take`].
    fn give_back(&mut self, key: K, per_hour: u32, now: Instant) {
        if per_hour == 0 {
            return;
        }
        let interval = HOUR / per_hour;
        if let Some(full_at) = self.full_at.get_mut(&key) {
            match full_at.checked_sub(interval) {
                Some(earlier) if earlier > now => *full_at = earlier,
                _ => {
                    self.full_at.remove(&key);
                }
            }
        }
    }

    /// Drops the keys whose bucket is full again (they carry no information), then, if
    /// that is not enough, (at least) the eighth that used the least.
    fn make_room(&mut self, now: Instant) {
        self.full_at.retain(|_, full_at| *full_at > now);
        evict_smallest(&mut self.full_at, |full_at| *full_at);
    }
}

/// When `map` is full, removes (at least) its eighth with the smallest `rank`.
fn evict_smallest<K: Hash + Eq + Copy, V, R: Ord + Copy>(
    map: &mut HashMap<K, V>,
    rank: impl Fn(&V) -> R,
) {
    if map.len() < MAX_KEYS {
        return;
    }
    let mut ranks: Vec<R> = map.values().map(&rank).collect();
    let cut = MAX_KEYS / 8;
    let (_, threshold, _) = ranks.select_nth_unstable(cut);
    let threshold = *threshold;
    map.retain(|_, v| rank(v) > threshold);
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
        let budgets = LoginBudgets {
            per_net: 0,
            per_account: 0,
        };
        t.login_succeeded(t.login_attempt(ip, None, budgets).unwrap());
        assert_eq!(t.failed(ip, cap), Duration::from_millis(250));
        tokio::time::advance(FORGET_AFTER).await;
        assert_eq!(
            t.failed(other, cap),
            Duration::from_millis(250),
            "forgotten after quiet"
        );
    }

    #[test]
    fn networks_are_ipv4_addresses_and_ipv6_slash_64s() {
        let net = |s: &str| Net::of(s.parse().unwrap());
        assert_eq!(net("2001:db8:1:2::1"), net("2001:db8:1:2:ffff::9"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_ne!(net("192.0.2.1"), net("192.0.2.2"));
        assert_eq!(net("::ffff:192.0.2.1"), net("192.0.2.1"));
    }

    #[tokio::test(start_paused = true)]
    async fn registrations_are_a_budget_per_network_refilled_over_the_hour() {
        let t = AuthThrottle::default();
        let a: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        let same_64: IpAddr = "2001:db8:0:1::2".parse().unwrap();
        let other: IpAddr = "2001:db8:0:2::1".parse().unwrap();
        assert_eq!(t.registration_attempt(a, 2), Ok(()));
        assert_eq!(t.registration_attempt(same_64, 2), Ok(()));
        // The third in the hour waits for a token: one comes every 30 minutes.
        assert_eq!(
            t.registration_attempt(a, 2),
            Err(Duration::from_mins(30)),
            "the /64 shares one budget"
        );
        assert_eq!(t.registration_attempt(other, 2), Ok(()), "per network");
        // A refused registration gives its attempt back.
        t.registration_refund(a, 2);
        assert_eq!(t.registration_attempt(a, 2), Ok(()));
        tokio::time::advance(Duration::from_mins(30)).await;
        assert_eq!(t.registration_attempt(a, 2), Ok(()));
        assert!(t.registration_attempt(a, 2).is_err());
        // 0: unlimited.
        for _ in 0..100 {
            assert_eq!(t.registration_attempt(a, 0), Ok(()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn logins_draw_on_the_network_and_the_account_budget() {
        let t = AuthThrottle::default();
        let budgets = LoginBudgets {
            per_net: 3,
            per_account: 2,
        };
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        // Two failures on alice from a: her budget is used up, from any network.
        t.login_attempt(a, Some("alice"), budgets).unwrap();
        t.login_attempt(a, Some("alice"), budgets).unwrap();
        assert_eq!(
            t.login_attempt(b, Some("alice"), budgets).unwrap_err(),
            Duration::from_mins(30)
        );
        // A refusal takes nothing: b still has its three.
        for user in ["bob", "carol", "dave"] {
            t.login_attempt(b, Some(user), budgets).unwrap();
        }
        assert!(t.login_attempt(b, Some("erin"), budgets).is_err());
        // a has one left; a success gives back only its own attempt.
        let ok = t.login_attempt(a, Some("mallory"), budgets).unwrap();
        t.login_succeeded(ok);
        t.login_attempt(a, None, budgets).unwrap();
        assert!(t.login_attempt(a, None, budgets).is_err());
        // Refilled over the hour.
        tokio::time::advance(Duration::from_mins(20)).await;
        t.login_attempt(a, None, budgets).unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn tables_stay_bounded_and_keep_the_most_punished() {
        let mut b: Budget<u64> = Budget::default();
        let now = Instant::now();
        // Key 0 has used its whole budget.
        for _ in 0..3 {
            b.take(0, 3, now).unwrap();
        }
        for key in 1..(MAX_KEYS as u64 * 3) {
            b.take(key, 3, now).unwrap();
        }
        assert!(b.full_at.len() <= MAX_KEYS, "{}", b.full_at.len());
        assert!(
            b.take(0, 3, now).is_err(),
            "an exhausted key is not forgotten"
        );
        // Idle keys go first.
        tokio::time::advance(HOUR).await;
        b.make_room(Instant::now());
        assert!(b.full_at.is_empty());
    }
}
