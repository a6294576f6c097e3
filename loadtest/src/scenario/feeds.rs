//! `feeds`: many small feeds, one node per publishing user; each subscriber follows K
//! of them, chosen with Zipf(s) popularity (feed r is followed in proportion to
//! 1 / (r + 1)^s); publishes go round-robin over the feeds at the total `--rate`.

use clap::Args;
use serde_json::json;

use super::pubsub::{self, LoadArgs, Plan};
use crate::target::{AccountArgs, ServerArgs};

#[derive(Debug, Clone, Args)]
pub struct FeedArgs {
    /// Number of feeds (nodes), each owned by its own publisher account.
    #[arg(long, default_value_t = 100)]
    pub feeds: u32,
    /// Feeds each subscriber follows.
    #[arg(long, default_value_t = 10)]
    pub follow: u32,
    /// Zipf exponent of feed popularity (0 = uniform).
    #[arg(long, default_value_t = 1.0)]
    pub zipf: f64,
    /// Seed of the follow choice (same seed, same graph).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct FeedsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// `--users` is the number of subscribers.
    #[command(flatten)]
    pub accounts: AccountArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub feeds: FeedArgs,
}

pub fn plan(load: &LoadArgs, feeds: &FeedArgs, subscribers: u64) -> Result<Plan, String> {
    let f = feeds.feeds;
    if f == 0 || feeds.follow == 0 || feeds.follow > f {
        return Err("need 1 <= --follow <= --feeds".to_owned());
    }
    if !(feeds.zipf >= 0.0 && feeds.zipf.is_finite()) {
        return Err("--zipf must be >= 0".to_owned());
    }
    let prefix = load.node_prefix();
    let follows = zipf_follows(subscribers, f, feeds.follow, feeds.zipf, feeds.seed);
    let mut followers = vec![0u64; f as usize];
    for list in &follows {
        for &n in list {
            followers[n as usize] += 1;
        }
    }
    Ok(Plan {
        scenario: "feeds",
        nodes: (0..f).map(|i| format!("{prefix}-feed{i}")).collect(),
        follows,
        schedule: (0..load.items).map(|s| (s % u64::from(f)) as u32).collect(),
        extra: json!({
            "feeds": f,
            "follow": feeds.follow,
            "zipf": feeds.zipf,
            "seed": feeds.seed,
            "followers_of_most_popular": followers.iter().max(),
            "followers_of_least_popular": followers.iter().min(),
        }),
        in_flight_per_publisher: false,
    })
}

/// For each subscriber, `k` distinct feeds out of `f`, drawn by Zipf(`s`) weight.
pub fn zipf_follows(
    subscribers: u64,
    feeds: u32,
    follow: u32,
    exponent: f64,
    seed: u64,
) -> Vec<Vec<u32>> {
    let (f, k) = (feeds, follow);
    let mut cumulative = Vec::with_capacity(f as usize);
    let mut total = 0.0;
    for rank in 0..f {
        total += 1.0 / f64::from(rank + 1).powf(exponent);
        cumulative.push(total);
    }
    let mut rng = SplitMix(seed);
    (0..subscribers)
        .map(|_| {
            let mut chosen: Vec<u32> = Vec::with_capacity(k as usize);
            while chosen.len() < k as usize {
                let u = rng.unit() * total;
                let r = cumulative.partition_point(|&c| c <= u).min(f as usize - 1) as u32;
                if !chosen.contains(&r) {
                    chosen.push(r);
                }
            }
            chosen.sort_unstable();
            chosen
        })
        .collect()
}

/// SplitMix64: a small deterministic generator (quality is ample for sampling).
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

pub async fn run(args: FeedsArgs) -> Result<(), String> {
    let plan = plan(&args.load, &args.feeds, args.accounts.users)?;
    pubsub::run(&args.server, &args.accounts, &args.load, plan)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_follows_are_distinct_skewed_and_deterministic() {
        let a = zipf_follows(2000, 100, 10, 1.0, 7);
        assert_eq!(a, zipf_follows(2000, 100, 10, 1.0, 7));
        let mut count = vec![0u32; 100];
        for list in &a {
            assert_eq!(list.len(), 10);
            assert!(list.windows(2).all(|w| w[0] < w[1]));
            for &n in list {
                count[n as usize] += 1;
            }
        }
        // The most popular feed is followed by far more than the tail.
        assert!(count[0] > 5 * count[99], "{count:?}");
        // Uniform: all feeds roughly equal.
        let u = zipf_follows(2000, 10, 1, 0.0, 1);
        let mut c = [0u32; 10];
        for l in &u {
            c[l[0] as usize] += 1;
        }
        assert!(c.iter().all(|&n| (120..280).contains(&n)), "{c:?}");
        // k == f: everybody follows everything.
        assert!(
            zipf_follows(3, 4, 4, 2.0, 1)
                .iter()
                .all(|l| l == &[0, 1, 2, 3])
        );
    }
}
