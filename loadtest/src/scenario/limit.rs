//! `limit`: the `firehose` client against this tool's own null server (see
//! `nullserver.rs`), started as a child process on 127.0.0.1: what this machine can
//! deliver at all with this client, so a server's figure can be given as a fraction.

use std::io::BufRead as _;
use std::process::{Command, Stdio};

use clap::Args;

use super::firehose;
use super::pubsub::{self, LoadArgs};
use crate::target::{AccountArgs, ServerArgs};
use crate::xmpp::conn::TlsMode;
use crate::xmpp::sasl::Mechanism;

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// `--users` is the number of subscribers.
    #[command(flatten)]
    pub accounts: AccountArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    /// Local source addresses for the client connections (as for the other scenarios).
    #[arg(long)]
    pub sources: Option<String>,
    /// `SO_RCVBUF` of every client socket.
    #[arg(long)]
    pub recv_buffer_bytes: Option<u32>,
    /// Notifications queued per connection in the null server.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
}

/// Stops the child on every way out.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn run(mut args: LimitArgs) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let mut child = Child(
        Command::new(exe)
            .args(["null-server", "--listen", "127.0.0.1:0", "--queue"])
            .arg(args.queue.to_string())
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting the null server: {e}"))?,
    );
    let stdout = child.0.stdout.take().expect("piped");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("null server: {e}"))?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .ok_or_else(|| format!("null server said {line:?}"))?
        .to_owned();
    let server = ServerArgs {
        server: addr,
        domain: "limit.test".to_owned(),
        tls: TlsMode::None,
        ca: None,
        insecure: false,
        auth: Mechanism::Plain,
        sources: args.sources.clone(),
        timeout_secs: 30,
        recv_buffer_bytes: args.recv_buffer_bytes,
        // The null server speaks no compression.
        zlib: false,
    };
    args.load.server_pid = Some(child.0.id());
    args.load.register = false;
    let mut plan = firehose::plan(&args.load, args.accounts.users);
    plan.scenario = "limit";
    let r = pubsub::run(&server, &args.accounts, &args.load, plan).await;
    drop(child);
    r.map(|_| ())
}
