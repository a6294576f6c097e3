//! `firehose`: one publisher, one node, N subscribers.

use clap::Args;

use super::pubsub::{self, LoadArgs, Plan};
use crate::target::{AccountArgs, ServerArgs};

#[derive(Debug, Args)]
pub struct FirehoseArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// `--users` is the number of subscribers.
    #[command(flatten)]
    pub accounts: AccountArgs,
    #[command(flatten)]
    pub load: LoadArgs,
}

/// One node followed by every subscriber; every publish goes to it.
pub fn plan(load: &LoadArgs, subscribers: u64) -> Plan {
    Plan {
        scenario: "firehose",
        nodes: vec![format!("{}-firehose", load.node_prefix())],
        follows: vec![vec![0]; subscribers as usize],
        schedule: vec![0; load.items as usize],
        extra: serde_json::Value::Null,
        in_flight_per_publisher: false,
    }
}

pub async fn run(args: FirehoseArgs) -> Result<(), String> {
    let plan = plan(&args.load, args.accounts.users);
    pubsub::run(&args.server, &args.accounts, &args.load, plan)
        .await
        .map(|_| ())
}
