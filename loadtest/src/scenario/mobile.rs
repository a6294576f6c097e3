//! `mobile`: a firehose whose subscribers are partly phones in the background — the
//! first `--inactive` (default: half) tell the server they are inactive (XEP-0352) and
//! wake up when publishing ends. Reports their TCP wake-ups per minute beside the
//! active ones', and the server's memory while it holds their batches. Same options as
//! `firehose`.

use super::firehose::{self, FirehoseArgs};
use super::pubsub;

pub async fn run(mut args: FirehoseArgs) -> Result<(), String> {
    let users = args.accounts.users;
    args.load.inactive.get_or_insert(users / 2);
    let mut plan = firehose::plan(&args.load, users);
    plan.scenario = "mobile";
    pubsub::run(&args.server, &args.accounts, &args.load, plan)
        .await
        .map(|_| ())
}
