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

use tokio::sync::Notify;
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
    /// Woken whenever a login attempt is settled, for the attempts waiting on one.
    settled: Notify,
}

#[derive(Debug, Default)]
struct State {
    /// Failed logins per network: how many, and when the last one was.
    failures: HashMap<Net, (u32, Instant)>,
    logins_by_net: Budget<Net>,
    logins_by_account: Budget<u64>,
    /// Attempts taken and not settled yet, per network and per account (entries at zero
    /// are removed: bounded by the connections).
    in_flight: HashMap<Net, u32>,
    in_flight_accounts: HashMap<u64, u32>,
    registrations: Budget<Net>,
}

/// Login attempts allowed per hour (0: unlimited).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoginBudgets {
    pub per_net: u32,
    pub per_account: u32,
}

/// A login attempt taken from the budgets while its credential is checked: given back by
/// [`LoginAttempt::succeeded`], kept (a failure) when dropped otherwise.
#[derive(Debug)]
pub(crate) struct LoginAttempt<'a> {
    throttle: &'a AuthThrottle,
    net: Net,
    account: Option<u64>,
    budgets: LoginBudgets,
}

impl LoginAttempt<'_> {
    /// The credential was right: the attempt is given back and the network's delay is
    /// cleared. Only this attempt: logging in to one's own account buys no guesses.
    pub(crate) fn succeeded(self) {
        let now = Instant::now();
        let mut state = self.throttle.state();
        state.failures.remove(&self.net);
        let budgets = self.budgets;
        state
            .logins_by_net
            .give_back(self.net, budgets.per_net, now);
        if let Some(key) = self.account {
            state
                .logins_by_account
                .give_back(key, budgets.per_account, now);
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        {
            let mut state = self.throttle.state();
            release(&mut state.in_flight, self.net);
            if let Some(key) = self.account {
                release(&mut state.in_flight_accounts, key);
            }
        }
        self.throttle.settled.notify_waiters();
    }
}

fn release<K: Hash + Eq>(map: &mut HashMap<K, u32>, key: K) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
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
    /// the name is valid at all), before the credential is checked. When a budget is used
    /// up by attempts still being checked, this waits for them: if they succeed, their
    /// attempts come back (a burst of right passwords from one big NAT is not refused);
    /// if they fail, this one is refused. `Err`: refused, with the time until the budget
    /// allows another; nothing was taken.
    pub(crate) async fn login_attempt(
        &self,
        ip: IpAddr,
        account: Option<&str>,
        budgets: LoginBudgets,
    ) -> Result<LoginAttempt<'_>, Duration> {
        let net = Net::of(ip);
        let account = account.map(|a| self.usernames.hash_one(a));
        loop {
            // Registered before the check, so a settlement in between is not missed.
            let settled = self.settled.notified();
            {
                let mut state = self.state();
                match state.take_login(net, account, budgets, Instant::now()) {
                    Ok(()) => {
                        *state.in_flight.entry(net).or_default() += 1;
                        if let Some(key) = account {
                            *state.in_flight_accounts.entry(key).or_default() += 1;
                        }
                        return Ok(LoginAttempt {
                            throttle: self,
                            net,
                            account,
                            budgets,
                        });
                    }
                    Err(wait) => {
                        let pending = state.in_flight.contains_key(&net)
                            || account.is_some_and(|a| state.in_flight_accounts.contains_key(&a));
                        if !pending {
                            return Err(wait);
                        }
                    }
                }
            }
            settled.await;
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

impl State {
    /// One attempt from both budgets, or from neither.
    fn take_login(
        &mut self,
        net: Net,
        account: Option<u64>,
        budgets: LoginBudgets,
        now: Instant,
    ) -> Result<(), Duration> {
        self.logins_by_net.take(net, budgets.per_net, now)?;
        if let Some(key) = account
            && let Err(wait) = self.logins_by_account.take(key, budgets.per_account, now)
        {
            self.logins_by_net.give_back(net, budgets.per_net, now);
            return Err(wait);
        }
        Ok(())
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
        t.login_attempt(ip, None, budgets)
            .await
            .unwrap()
            .succeeded();
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
        let failure = |ip, user| {
            let t = &t;
            async move { t.login_attempt(ip, user, budgets).await.map(drop) }
        };
        // Two failures on alice from a: her budget is used up, from any network.
        failure(a, Some("alice")).await.unwrap();
        failure(a, Some("alice")).await.unwrap();
        assert_eq!(
            failure(b, Some("alice")).await.unwrap_err(),
            Duration::from_mins(30)
        );
        // A refusal takes nothing: b still has its three.
        for user in ["bob", "carol", "dave"] {
            failure(b, Some(user)).await.unwrap();
        }
        assert!(failure(b, Some("erin")).await.is_err());
        // a has one left; a success gives back only its own attempt.
        t.login_attempt(a, Some("mallory"), budgets)
            .await
            .unwrap()
            .succeeded();
        failure(a, None).await.unwrap();
        assert!(failure(a, None).await.is_err());
        // Refilled over the hour.
        tokio::time::advance(Duration::from_mins(20)).await;
        failure(a, None).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn an_exhausted_budget_waits_for_the_attempts_being_checked() {
        let t = AuthThrottle::default();
        let budgets = LoginBudgets {
            per_net: 2,
            per_account: 0,
        };
        let ip: IpAddr = "192.0.2.3".parse().unwrap();
        let first = t.login_attempt(ip, None, budgets).await.unwrap();
        let second = t.login_attempt(ip, None, budgets).await.unwrap();
        let mut third = std::pin::pin!(t.login_attempt(ip, None, budgets));
        assert!(
            futures_poll(third.as_mut()).is_none(),
            "waits while two are checked"
        );
        // The first was right: its attempt comes back, and the third gets it.
        first.succeeded();
        let third = futures_poll(third.as_mut())
            .expect("settled")
            .expect("taken");
        // The second and third fail: the fourth is refused at once.
        drop(second);
        drop(third);
        assert!(t.login_attempt(ip, None, budgets).await.is_err());
    }

    /// Polls a future once.
    fn futures_poll<F: Future>(f: std::pin::Pin<&mut F>) -> Option<F::Output> {
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match f.poll(&mut cx) {
            std::task::Poll::Ready(v) => Some(v),
            std::task::Poll::Pending => None,
        }
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
