//! `publishers`: P publishers on one pubsub service, each with its own node, each
//! publishing to it as fast as its acknowledgements allow (`--in-flight` per
//! publisher), N subscribers per node. Measures the publish path under many
//! concurrent publishers: acknowledged publishes/s, publish→ack latency, and the
//! delivery figures of the shared engine (`pubsub.rs`).

use clap::Args;
use serde_json::json;

use super::pubsub::{self, LoadArgs, Plan};
use crate::target::{AccountArgs, ServerArgs};

#[derive(Debug, Clone, Args)]
pub struct PublishersShape {
    /// Publishers, each owning (and publishing to) its own node.
    #[arg(long, default_value_t = 200)]
    pub publishers: u32,
    /// Subscribers per node (each its own account, subscribed with its full JID).
    #[arg(long, default_value_t = 10)]
    pub subscribers_per_node: u32,
}

// The engine's options with this scenario's defaults: `--items` is the total over
// all publishers (round-robin, 20 each by default), `--rate 0` (as fast as acks
// allow), one publish in flight per publisher, and `--users` (the subscribers)
// follows from the shape unless given.
#[derive(Debug, Args)]
#[command(mut_arg("items", |a| a.default_value("4000")
    .help("Items to publish in total, over all publishers (round-robin)")))]
#[command(mut_arg("rate", |a| a.default_value("0")))]
#[command(mut_arg("in_flight", |a| a.default_value("1")
    .help("Publishes sent and not yet acknowledged, at most, per publisher")))]
#[command(mut_arg("users", |a| a.required(false).default_value("0")
    .help("Subscriber accounts: publishers × subscribers per node (0: that product)")))]
pub struct PublishersArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub accounts: AccountArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub shape: PublishersShape,
}

/// The subscriber count the shape needs; `--users`, if given (non-zero), must match.
pub fn subscribers(shape: &PublishersShape, users: u64) -> Result<u64, String> {
    if shape.publishers == 0 || shape.subscribers_per_node == 0 {
        return Err("--publishers and --subscribers-per-node must be at least 1".to_owned());
    }
    let need = u64::from(shape.publishers) * u64::from(shape.subscribers_per_node);
    match users {
        0 => Ok(need),
        n if n == need => Ok(n),
        n => Err(format!(
            "--users {n}: {} publishers × {} subscribers per node need {need}",
            shape.publishers, shape.subscribers_per_node
        )),
    }
}

/// Node `f` is publisher `f`'s; subscriber `i` follows node `i mod P` (so each node
/// has exactly N); publish `seq` goes to node `seq mod P`, and each publisher sends
/// its own share with its own in-flight window.
pub fn plan(load: &LoadArgs, shape: &PublishersShape, subscribers: u64) -> Plan {
    let p = shape.publishers;
    let prefix = load.node_prefix();
    Plan {
        scenario: "publishers",
        nodes: (0..p).map(|f| format!("{prefix}-pub{f}")).collect(),
        follows: (0..subscribers)
            .map(|i| vec![(i % u64::from(p)) as u32])
            .collect(),
        schedule: (0..load.items).map(|s| (s % u64::from(p)) as u32).collect(),
        extra: json!({
            "publishers": p,
            "subscribers_per_node": shape.subscribers_per_node,
            "items_per_publisher": load.items as f64 / f64::from(p),
        }),
        in_flight_per_publisher: true,
    }
}

pub async fn run(mut args: PublishersArgs) -> Result<(), String> {
    args.accounts.users = subscribers(&args.shape, args.accounts.users)?;
    let plan = plan(&args.load, &args.shape, args.accounts.users);
    pubsub::run(&args.server, &args.accounts, &args.load, plan)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: PublishersArgs,
    }

    #[test]
    fn defaults_are_this_scenarios() {
        let cli =
            Cli::try_parse_from(["t", "--server", "127.0.0.1:5222", "--domain", "d.test"]).unwrap();
        let a = cli.args;
        assert_eq!(
            (a.shape.publishers, a.shape.subscribers_per_node),
            (200, 10)
        );
        assert_eq!(
            (a.load.items, a.load.in_flight, a.accounts.users),
            (4000, 1, 0)
        );
        assert!(a.load.rate == 0.0);
        assert_eq!(a.load.item_bytes, 2048);
        assert_eq!(subscribers(&a.shape, a.accounts.users), Ok(2000));
        let cli = Cli::try_parse_from([
            "t",
            "--server",
            "s:1",
            "--domain",
            "d",
            "--publishers",
            "3",
            "--subscribers-per-node",
            "2",
            "--in-flight",
            "4",
            "--users",
            "7",
        ])
        .unwrap();
        assert_eq!(cli.args.load.in_flight, 4);
        assert!(subscribers(&cli.args.shape, 7).is_err());
        assert_eq!(subscribers(&cli.args.shape, 6), Ok(6));
    }

    #[test]
    fn every_node_has_n_subscribers_and_its_share_of_items() {
        let cli = Cli::try_parse_from([
            "t",
            "--server",
            "s:1",
            "--domain",
            "d",
            "--publishers",
            "3",
            "--subscribers-per-node",
            "2",
            "--items",
            "7",
            "--node-prefix",
            "x",
        ])
        .unwrap();
        let a = cli.args;
        let plan = plan(&a.load, &a.shape, subscribers(&a.shape, 0).unwrap());
        assert_eq!(plan.nodes, ["x-pub0", "x-pub1", "x-pub2"]);
        assert_eq!(plan.follows, [[0], [1], [2], [0], [1], [2]]);
        assert_eq!(plan.schedule, [0, 1, 2, 0, 1, 2, 0]);
        assert!(plan.in_flight_per_publisher);
    }
}
