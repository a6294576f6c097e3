//! Publisher pacing: what keeps a fast publisher from running away from its subscribers
//! when the server's writes, not one subscriber, are what is behind.
//!
//! After a publish the fan-out hands back a sample of the queues the notification went
//! to (`fanout::PACE_SAMPLE`, spread over the subscriber list). While more than half of
//! them hold more than the threshold, the publisher's next stanza waits (its session
//! does not read on, so TCP slows the publisher down). One slow subscriber is at most one
//! sampled queue, so it never holds a publisher back (DESIGN.md); without pacing, a
//! publisher faster than the machine's writes would grow every queue until all of them
//! overflowed and were closed as slow consumers. The wait is bounded: past it the
//! publisher goes on, and queues that still do not drain meet the slow-consumer policy.

use std::sync::Arc;
use std::time::Duration;

use hydrant_stream::outbox::Outbox;
use tokio::time::Instant;

/// How often a paced publisher looks at the sampled queues again.
const POLL: Duration = Duration::from_millis(2);

/// What [`pace`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Paced {
    /// Most sampled queues were under the threshold (or pacing is off).
    NotNeeded,
    /// Waited until most sampled queues drained below the threshold.
    Drained,
    /// Gave up waiting after `max_wait`.
    TimedOut,
}

/// Whether more than half of `sample` holds more than `limit` bytes (closing queues,
/// whose streams are ending, do not count).
pub fn behind(sample: &[Arc<Outbox>], limit: usize) -> bool {
    let over = sample
        .iter()
        .filter(|o| o.queued_bytes() > limit && !o.is_closing())
        .count();
    over * 2 > sample.len()
}

/// Waits while [`behind`], at most `max_wait`. `limit` 0 turns pacing off.
pub async fn pace(sample: &[Arc<Outbox>], limit: usize, max_wait: Duration) -> Paced {
    if limit == 0 || sample.is_empty() {
        return Paced::NotNeeded;
    }
    let deadline = Instant::now() + max_wait;
    let mut paced = Paced::NotNeeded;
    while behind(sample, limit) {
        if Instant::now() >= deadline {
            return Paced::TimedOut;
        }
        paced = Paced::Drained;
        tokio::time::sleep(POLL).await;
    }
    paced
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::task::{Context, Waker};

    const LIMIT: usize = 100;

    /// `n` queues, the first `full` of them holding more than `LIMIT` bytes.
    fn queues(n: usize, full: usize) -> Vec<Arc<Outbox>> {
        (0..n)
            .map(|i| {
                let q = Outbox::new(1 << 20);
                let len = if i < full { LIMIT + 1 } else { LIMIT };
                q.push(Bytes::from(vec![b' '; len])).unwrap();
                q
            })
            .collect()
    }

    fn drain(q: &Outbox) {
        let mut out = Vec::new();
        let _ = q.poll_drain(&mut Context::from_waker(Waker::noop()), &mut out, 64);
    }

    #[tokio::test(start_paused = true)]
    async fn a_minority_of_full_queues_never_holds_the_publisher() {
        let sample = queues(16, 8);
        let t0 = Instant::now();
        let paced = pace(&sample, LIMIT, Duration::from_secs(1)).await;
        assert_eq!(paced, Paced::NotNeeded);
        assert_eq!(t0.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn off_or_empty_sample_is_not_paced() {
        let sample = queues(16, 16);
        assert_eq!(
            pace(&sample, 0, Duration::from_secs(1)).await,
            Paced::NotNeeded
        );
        assert_eq!(
            pace(&[], LIMIT, Duration::from_secs(1)).await,
            Paced::NotNeeded
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waits_until_most_queues_drain() {
        let sample = queues(16, 9);
        let drainer = {
            let sample = sample.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                drain(&sample[0]);
            })
        };
        let t0 = Instant::now();
        let paced = pace(&sample, LIMIT, Duration::from_secs(1)).await;
        assert_eq!(paced, Paced::Drained);
        assert!(
            t0.elapsed() >= Duration::from_millis(50),
            "{:?}",
            t0.elapsed()
        );
        assert!(t0.elapsed() < Duration::from_secs(1));
        drainer.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_max_wait() {
        let sample = queues(16, 12);
        let t0 = Instant::now();
        let paced = pace(&sample, LIMIT, Duration::from_millis(250)).await;
        assert_eq!(paced, Paced::TimedOut);
        assert!(t0.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test(start_paused = true)]
    async fn closing_queues_do_not_count() {
        let sample = queues(16, 12);
        for q in &sample[..6] {
            q.close_after(None);
        }
        assert_eq!(
            pace(&sample, LIMIT, Duration::from_secs(1)).await,
            Paced::NotNeeded
        );
    }
}
