//! `hydrant user ...`: account administration straight on the store (SQLite allows it
//! while the server runs). Removal and password changes also concern the running
//! server (sessions to end, state in memory): they are recorded for it and applied
//! there, or here when no server runs (`accounts.rs`).

use std::io::BufRead as _;

use hydrant_proto::scram::{DEFAULT_ITERATIONS, StoredCredentials};
use hydrant_storage::{AccountChange, AccountStore as _, SqliteStore, StorageError};

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Create an account; the password is read from stdin unless --password is given.
    Add {
        /// Username or bare JID (user@domain).
        user: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// Delete an account with its roster and offline messages.
    Remove { user: String },
    /// Set a new password.
    Passwd {
        user: String,
        #[arg(long)]
        password: Option<String>,
    },
    /// List accounts.
    List,
}

pub fn run(cfg: &Config, action: &UserAction) -> Result<(), String> {
    let store = crate::store::open(cfg)?;
    match action {
        UserAction::Add { user, password } => {
            let user = normalize(cfg, user)?;
            let pw = password_or_stdin(password.as_deref())?;
            let creds = StoredCredentials::from_password(&pw, DEFAULT_ITERATIONS);
            store.create_account(&user, &creds).map_err(|e| match e {
                StorageError::AlreadyExists => format!("{user}@{} already exists", cfg.domain.0),
                e => e.to_string(),
            })?;
            println!("created {user}@{}", cfg.domain.0);
        }
        UserAction::Remove { user } => {
            let user = normalize(cfg, user)?;
            // Recorded for the server (`accounts.rs`): the credentials go at once.
            if !store
                .record_change(&user, AccountChange::Removed)
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no such account: {user}@{}", cfg.domain.0));
            }
            match crate::datadir::try_lock(&cfg.data_dir)? {
                Ok(_no_server) => {
                    apply_changes_here(cfg, store)?;
                    println!("removed {user}@{}", cfg.domain.0);
                }
                Err(holder) => println!(
                    "{user}@{} can no longer log in; the running server{holder} removes \
                     the rest (ends its sessions, its roster and presence subscriptions, \
                     pubsub nodes, affiliations and subscriptions) within {} s",
                    cfg.domain.0,
                    crate::accounts::CHANGES_POLL.as_secs()
                ),
            }
        }
        UserAction::Passwd { user, password } => {
            let user = normalize(cfg, user)?;
            let pw = password_or_stdin(password.as_deref())?;
            let creds = StoredCredentials::from_password(&pw, DEFAULT_ITERATIONS);
            if !store
                .set_credentials(&user, &creds)
                .map_err(|e| e.to_string())?
            {
                return Err(format!("no such account: {user}@{}", cfg.domain.0));
            }
            // A running server ends the account's sessions (`accounts.rs`).
            if crate::datadir::try_lock(&cfg.data_dir)?.is_err() {
                store
                    .record_change(&user, AccountChange::PasswordChanged)
                    .map_err(|e| e.to_string())?;
            }
            println!("password changed for {user}@{}", cfg.domain.0);
        }
        UserAction::List => {
            for u in store.list_accounts().map_err(|e| e.to_string())? {
                println!("{u}@{}", cfg.domain.0);
            }
        }
    }
    Ok(())
}

/// No server runs on the data directory (this process holds its lock): apply recorded
/// account changes with the server's own code, on a router without listeners.
fn apply_changes_here(cfg: &Config, store: SqliteStore) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let router = crate::serve::build_router(cfg, std::sync::Arc::new(store))
            .map_err(|e| format!("{e:#}"))?;
        router.apply_account_changes().await;
        Ok(())
    })
}

/// Accepts `user` or `user@domain` (our domain only) and applies RFC 7622 nodeprep.
fn normalize(cfg: &Config, raw: &str) -> Result<String, String> {
    let local = match raw.rsplit_once('@') {
        Some((l, d)) if d.eq_ignore_ascii_case(&cfg.domain.0) => l,
        Some((_, d)) => {
            return Err(format!(
                "{raw}: domain {d} is not served here ({})",
                cfg.domain.0
            ));
        }
        None => raw,
    };
    // The same check as in-band registration: a name whose normalised form is another
    // name (proto/src/address.rs) is refused, not stored under a second spelling.
    hydrant_proto::address::nodepart(local).ok_or_else(|| {
        format!("{raw}: not a valid username (RFC 7622 localpart that normalises stably)")
    })
}

fn password_or_stdin(given: Option<&str>) -> Result<String, String> {
    if let Some(p) = given {
        return non_empty(p.to_owned());
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    non_empty(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn non_empty(p: String) -> Result<String, String> {
    if p.is_empty() {
        Err("empty password".into())
    } else {
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_normalised_stably_or_refused() {
        let cfg = Config::default();
        assert_eq!(normalize(&cfg, "Alice").as_deref(), Ok("alice"));
        let at_home = format!("Bob@{}", cfg.domain.0);
        assert_eq!(normalize(&cfg, &at_home).as_deref(), Ok("bob"));
        assert!(normalize(&cfg, "bob@elsewhere.example").is_err());
        // U+1F130 folds to `A`, which folds again: another user's name.
        assert!(normalize(&cfg, "\u{1F130}lice").is_err());
    }
}
