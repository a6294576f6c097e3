//! Per-stream write pacing: a hook that lets a stream write no faster than its peer accepts.
//!
//! Some servers rate-limit what they read from each inbound s2s stream (Prosody's
//! `limits.s2sin`, ejabberd's shapers); writing a firehose at them faster only fills their
//! buffers and gets the stream closed. A [`Conn`](crate::Conn) with a [`Pace`] asks it
//! how many bytes it may write before every write; what does not fit waits in the outbox
//! (whose overflow policy then applies). c2s streams have none.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Decides how fast one stream writes.
pub trait Pace: Send + Sync {
    /// How many bytes may be written now (at least 1), or `Pending` with a wake-up
    /// arranged for when some may.
    fn poll_allowance(&mut self, cx: &mut Context<'_>) -> Poll<usize>;
    /// `n` bytes were written.
    fn wrote(&mut self, n: usize);
}

/// A token bucket: `rate` bytes per second on average, bursts of up to `burst` bytes.
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    tokens: u64,
    last: Instant,
    sleep: Option<Pin<Box<Sleep>>>,
}

impl TokenBucket {
    /// A full bucket. `rate` and `burst` are raised to at least 1.
    pub fn new(rate: u64, burst: u64) -> Self {
        let burst = burst.max(1);
        TokenBucket {
            rate: rate.max(1),
            burst,
            tokens: burst,
            last: Instant::now(),
            sleep: None,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        let add = (elapsed.as_nanos() * u128::from(self.rate) / 1_000_000_000) as u64;
        if add > 0 {
            self.tokens = (self.tokens + add).min(self.burst);
            // Advance by what the tokens were worth, not to `now`: the remainder counts
            // towards the next token.
            self.last += Duration::from_nanos(add.saturating_mul(1_000_000_000) / self.rate);
            if self.tokens == self.burst {
                self.last = now;
            }
        }
    }
}

impl Pace for TokenBucket {
    fn poll_allowance(&mut self, cx: &mut Context<'_>) -> Poll<usize> {
        let now = Instant::now();
        self.refill(now);
        if self.tokens > 0 {
            self.sleep = None;
            return Poll::Ready(usize::try_from(self.tokens).unwrap_or(usize::MAX));
        }
        // One token's worth of time from the last refill.
        let at = self.last + Duration::from_nanos(1_000_000_000_u64.div_ceil(self.rate));
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        if sleep.deadline() != at {
            sleep.as_mut().reset(at);
        }
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.sleep = None;
                self.refill(Instant::now());
                Poll::Ready(usize::try_from(self.tokens.max(1)).unwrap_or(usize::MAX))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote(&mut self, n: usize) {
        self.tokens = self.tokens.saturating_sub(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_bucket_allows_its_burst_then_its_rate() {
        let mut b = TokenBucket::new(1000, 500);
        let start = Instant::now();
        let mut sent = 0usize;
        while sent < 2500 {
            let n = std::future::poll_fn(|cx| b.poll_allowance(cx)).await;
            let n = n.min(100);
            b.wrote(n);
            sent += n;
        }
        // 500 at once, the other 2000 at 1000 bytes/s.
        let took = Instant::now() - start;
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2100),
            "{took:?}"
        );
    }
}
