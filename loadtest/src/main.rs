//! hydrant-load: a load generator that speaks XMPP over real sockets.
//!
//! It owns the client side of load tests against any XMPP server (hydrant, Prosody,
//! ejabberd): opening many client connections from spread source addresses,
//! negotiating TLS and SASL itself, and measuring what the server pays for them
//! (RSS from /proc, CPU time, connection rates). It must not depend on any hydrant
//! crate: the server under test is reached through its sockets only, so the same
//! figures can be compared across servers.
//!
//! Scenarios (subcommands): `connect` (N authenticated idle connections; memory per
//! connection), `firehose` (one node, N subscribers), `feeds` (many nodes, Zipf
//! followers), `publishers` (P publishers with a node each, N subscribers per node),
//! `subscribe-storm` (U logins + subscriptions to one node against U logins alone),
//! `hostile` (the firehose while attackers run issue 8's attacks), `mobile` (the
//! firehose with half the subscribers inactive by XEP-0352: their wake-ups per minute),
//! `limit` (the firehose client against the tool's own null server: this
//! machine's ceiling). `main` only parses options and dispatches.

mod attack;
mod hist;
mod nullserver;
mod pubrt;
mod report;
mod scenario;
mod sys;
mod target;
mod xmpp;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "hydrant-load", version, about = "XMPP load generator")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Give up after this many seconds, whatever the scenario is doing (0: never). A
    /// server that stops answering mid-run (a peer under attack, say) must not hang a
    /// whole benchmark: the run fails with a message instead.
    #[arg(long, global = true, default_value_t = 0)]
    deadline_secs: u64,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Open N authenticated client connections, hold them idle, measure server memory.
    Connect(scenario::connect::ConnectArgs),
    /// One publisher, one node, N subscribers: notifications/s, latency, loss, CPU.
    Firehose(scenario::firehose::FirehoseArgs),
    /// The firehose while attackers run namespace bombs, slowloris, registration
    /// floods, login guessing and items-by-id amplification from their own addresses.
    Hostile(scenario::hostile::HostileArgs),
    /// The firehose with half the subscribers (`--inactive`) inactive by XEP-0352:
    /// their TCP wake-ups per minute and the server memory holding their batches.
    Mobile(scenario::firehose::FirehoseArgs),
    /// F feeds (one node per publishing user), each subscriber follows K (Zipf).
    Feeds(scenario::feeds::FeedsArgs),
    /// P publishers, a node each, each publishing as fast as its acks allow; N
    /// subscribers per node: publishes/s, publish→ack latency, delivery, CPU.
    Publishers(scenario::publishers::PublishersArgs),
    /// U clients log in and subscribe to one node, C at a time: time until all are
    /// subscribed, against U logins alone in the same run.
    SubscribeStorm(scenario::storm::StormArgs),
    /// The firehose client against the tool's own null server: the machine's ceiling.
    Limit(scenario::limit::LimitArgs),
    /// The null server itself (started by `limit`).
    #[command(hide = true)]
    NullServer(nullserver::NullServerArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hydrant-load: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let deadline = cli.deadline_secs;
    let result = runtime.block_on(async {
        let run = async {
            match cli.scenario {
                Scenario::Connect(args) => scenario::connect::run(args).await,
                Scenario::Firehose(args) => scenario::firehose::run(args).await,
                Scenario::Hostile(args) => scenario::hostile::run(args).await,
                Scenario::Feeds(args) => scenario::feeds::run(args).await,
                Scenario::Mobile(args) => scenario::mobile::run(args).await,
                Scenario::Limit(args) => scenario::limit::run(args).await,
                Scenario::Publishers(args) => scenario::publishers::run(args).await,
                Scenario::SubscribeStorm(args) => scenario::storm::run(args).await,
                Scenario::NullServer(args) => nullserver::run(args).await,
            }
        };
        if deadline == 0 {
            return run.await;
        }
        tokio::time::timeout(std::time::Duration::from_secs(deadline), run)
            .await
            .unwrap_or_else(|_| Err(format!("gave up after --deadline-secs {deadline}")))
    });
    // Do not wait for abandoned connection tasks.
    runtime.shutdown_background();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hydrant-load: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
