//! `hostile`: the firehose (one node, N subscribers, `--rate` items/s) while attackers
//! run issue 8's attacks at full speed from their own source address(es), from the
//! first publish to the last acknowledgement. Reports the firehose figures (loss,
//! latency, the server's RSS and peak RSS) with the attackers' counts, so the same
//! run without attackers (`firehose`, or `--attacks none`) is the baseline.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde::Serialize;
use tokio::task::JoinSet;

use super::firehose;
use super::pubsub::{self, LoadArgs, PublishPhase, PubsubResult};
use crate::attack::{self, Attack, AttackResult, Env, ItemsAttacker};
use crate::report;
use crate::sys;
use crate::target::{AccountArgs, ServerArgs, Sources};
use crate::xmpp::conn::{self, Conn, Registered};

#[derive(Debug, Args)]
pub struct HostileArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// `--users` is the number of subscribers.
    #[command(flatten)]
    pub accounts: AccountArgs,
    #[command(flatten)]
    pub load: LoadArgs,
    #[command(flatten)]
    pub attack: AttackArgs,
}

/// The attackers' options.
#[derive(Debug, Clone, Args)]
pub struct AttackArgs {
    /// The attackers' source addresses (same syntax as `--sources`); keep them apart
    /// from the subscribers' so per-address limits meet the attackers only. With at
    /// least as many addresses as attacks, each attack has its own (every Nth).
    #[arg(long, default_value = "127.0.1.1-127.0.1.5")]
    pub attacker_sources: String,
    /// Attacks to run, comma-separated, or `none` (the baseline).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "bomb,slowloris,register,guess,items"
    )]
    pub attacks: Vec<AttackChoice>,
    /// Parallel loops (connections) per attack.
    #[arg(long, default_value_t = 50)]
    pub attack_conns: usize,
    /// Seconds between two bytes of a slowloris connection.
    #[arg(long, default_value_t = 2.0)]
    pub drip_secs: f64,
    /// Registration attempts per `register` stream before a new one.
    #[arg(long, default_value_t = 10)]
    pub register_per_conn: u32,
    /// Item ids named in one `items` request.
    #[arg(long, default_value_t = 500)]
    pub item_ids: usize,
    /// Accounts of the `items` attackers: this prefix + number (registered with
    /// `--register`, from the subscribers' sources: setup, not attack).
    #[arg(long, default_value = "hostile")]
    pub attacker_prefix: String,
}

/// `--attacks` values: an attack, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AttackChoice {
    Bomb,
    Slowloris,
    Register,
    Guess,
    Items,
    None,
}

/// The attacks selected by `choices` (`none` drops everything), sorted, once each.
pub fn selected(choices: &[AttackChoice]) -> Vec<Attack> {
    if choices.contains(&AttackChoice::None) {
        return Vec::new();
    }
    let mut out: Vec<Attack> = choices
        .iter()
        .map(|c| match c {
            AttackChoice::Bomb => Attack::Bomb,
            AttackChoice::Slowloris => Attack::Slowloris,
            AttackChoice::Register => Attack::Register,
            AttackChoice::Guess => Attack::Guess,
            AttackChoice::Items | AttackChoice::None => Attack::Items,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[derive(Debug, Serialize)]
struct HostileResult {
    #[serde(flatten)]
    firehose: PubsubResult,
    attacker_sources: String,
    attacks: Vec<AttackResult>,
}

pub async fn run(args: HostileArgs) -> Result<(), String> {
    let HostileArgs {
        server,
        accounts,
        mut load,
        attack: opts,
    } = args;
    let attacks = selected(&opts.attacks);
    let attacker_sources = Sources::parse(&opts.attacker_sources)?;
    if opts.attack_conns == 0 || opts.item_ids == 0 {
        return Err("--attack-conns and --item-ids must be at least 1".to_owned());
    }
    if !(opts.drip_secs > 0.0 && opts.drip_secs.is_finite()) {
        return Err("--drip-secs must be positive".to_owned());
    }
    let nofile = sys::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let attackers = (opts.attack_conns * attacks.len()) as u64;
    if accounts.users + attackers + 128 > nofile.soft {
        return Err(format!(
            "{} subscribers + {attackers} attacker connections need more file descriptors \
             than RLIMIT_NOFILE ({})",
            accounts.users, nofile.soft
        ));
    }
    // One node name, known to the plan and to the items attackers.
    load.node_prefix = Some(load.node_prefix());
    let mut plan = firehose::plan(&load, accounts.users);
    plan.scenario = "hostile";
    let node = plan.nodes[0].clone();
    let service = load
        .pubsub_service
        .clone()
        .unwrap_or_else(|| format!("pubsub.{}", server.domain));
    let target = server.target(&accounts, false)?;
    let victim = conn::username(&accounts.user_prefix, accounts.offset);
    println!(
        "hostile: attacks {} with {} loops each from {}; guessing {victim}'s password; items on {node}",
        if attacks.is_empty() {
            "none".to_owned()
        } else {
            attacks
                .iter()
                .map(|a| a.name())
                .collect::<Vec<_>>()
                .join(",")
        },
        opts.attack_conns,
        opts.attacker_sources,
    );

    // The items attackers log in now, before the publish phase (and the guessing).
    // From the addresses `attack::run` gives the items attack.
    let items = if let Some(k) = attacks.iter().position(|&a| a == Attack::Items) {
        let own = attacker_sources.share(k, attacks.len());
        let a = items_setup(&server, &accounts, &load, &opts, &own).await?;
        println!(
            "  items attackers logged in: {} of {}",
            a.len(),
            opts.attack_conns
        );
        a
    } else {
        Vec::new()
    };

    let phase = PublishPhase::default();
    let env = Arc::new(Env::new(
        target,
        attacker_sources,
        phase.ended.clone(),
        victim,
        service,
        node,
        opts.item_ids,
        opts.register_per_conn,
        Duration::from_secs_f64(opts.drip_secs),
    ));
    let attackers = {
        let (env, started, loops) = (env.clone(), phase.started.clone(), opts.attack_conns);
        tokio::spawn(async move {
            tokio::select! {
                () = started.cancelled() => {}
                () = env.stop.cancelled() => return Vec::new(),
            }
            attack::run(env, &attacks, loops, items).await
        })
    };
    let json = load.json.take();
    let measured = pubsub::measure(&server, &accounts, &load, plan, &phase).await;
    // Whatever happened: the attackers stop.
    phase.ended.cancel();
    let attacks = attackers.await.map_err(|e| format!("attackers: {e}"))?;
    let result = HostileResult {
        firehose: measured?,
        attacker_sources: opts.attacker_sources.clone(),
        attacks,
    };
    print!("{}", result.firehose.describe());
    for a in &result.attacks {
        print!("{}", a.describe());
    }
    if let Some(path) = &json {
        report::write_json(path, &result).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("JSON result written to {}", path.display());
    }
    pubsub::check(&result.firehose, &load)
}

/// Register (with `--register`, from the subscribers' sources) and log in (from the
/// attacker's) the items attackers' accounts.
async fn items_setup(
    server: &ServerArgs,
    accounts: &AccountArgs,
    load: &LoadArgs,
    opts: &AttackArgs,
    attacker_sources: &Sources,
) -> Result<Vec<ItemsAttacker>, String> {
    let target = server.target(accounts, false)?;
    let sources = Arc::new(server.sources()?);
    let mut set = JoinSet::new();
    for i in 0..opts.attack_conns as u64 {
        let user = conn::username(&opts.attacker_prefix, i);
        let (target, sources) = (target.clone(), sources.clone());
        let source = attacker_sources.pick(i);
        let register = load.register;
        // After the subscribers in the sources' rotation: spread like their accounts.
        let spread = accounts.offset + accounts.users + i;
        set.spawn(async move {
            if register {
                match Conn::open(target.clone(), sources.pick(spread))
                    .await?
                    .register(&user)
                    .await?
                {
                    Registered::Created | Registered::Existed => {}
                }
            }
            let c = Conn::open(target, source).await?.login(&user, i).await?;
            Ok::<_, conn::ConnError>(ItemsAttacker {
                user,
                index: i,
                conn: Some(c),
            })
        });
    }
    let mut out = Vec::new();
    let mut failures = std::collections::BTreeMap::<String, u64>::new();
    while let Some(r) = set.join_next().await {
        match r.map_err(|e| format!("items setup: {e}"))? {
            Ok(a) => out.push(a),
            Err(e) => *failures.entry(e.reason()).or_default() += 1,
        }
    }
    for (reason, n) in failures {
        println!("  items attacker setup failed {n:>4} × {reason}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attack_selection() {
        use AttackChoice as C;
        assert_eq!(
            selected(&[C::Items, C::Bomb, C::Items]),
            [Attack::Bomb, Attack::Items]
        );
        assert!(selected(&[C::Bomb, C::None]).is_empty());
        let all = [C::Bomb, C::Slowloris, C::Register, C::Guess, C::Items];
        assert_eq!(selected(&all), Attack::ALL);
    }
}
