//! [`BlockStore`] on SQLite: `blocklist`, one row per blocked JID of an account.

use super::{SqliteStore, account_exists, now_unix};
use crate::{BlockStore, Result, StorageError};

impl BlockStore for SqliteStore {
    fn blocklist(&self, username: &str) -> Result<Vec<String>> {
        self.read(|tx| {
            let jids = tx
                .prepare_cached("SELECT jid FROM blocklist WHERE username = ?1 ORDER BY jid")?
                .query_map([username], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(jids)
        })
    }

    fn block(&self, username: &str, jids: &[String], max: usize) -> Result<bool> {
        // Count and insert in one IMMEDIATE transaction, so two sessions blocking at once
        // cannot both see room for the last slot.
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Err(StorageError::NotFound);
            }
            let held: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM blocklist WHERE username = ?1")?
                .query_row([username], |r| r.get(0))?;
            let mut exists = tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM blocklist WHERE username = ?1 AND jid = ?2)",
            )?;
            let mut new = std::collections::BTreeSet::new();
            for jid in jids {
                if !new.contains(jid.as_str())
                    && !exists.query_row((username, jid), |r| r.get::<_, bool>(0))?
                {
                    new.insert(jid.as_str());
                }
            }
            if usize::try_from(held)
                .unwrap_or(usize::MAX)
                .saturating_add(new.len())
                > max
            {
                return Ok(false);
            }
            let mut insert = tx.prepare_cached(
                "INSERT INTO blocklist (username, jid, blocked_at) VALUES (?1, ?2, ?3)",
            )?;
            let now = now_unix();
            for jid in new {
                insert.execute((username, jid, now))?;
            }
            Ok(true)
        })
    }

    fn unblock(&self, username: &str, jids: &[String]) -> Result<()> {
        self.write(|tx| {
            let mut delete =
                tx.prepare_cached("DELETE FROM blocklist WHERE username = ?1 AND jid = ?2")?;
            for jid in jids {
                delete.execute((username, jid))?;
            }
            Ok(())
        })
    }

    fn unblock_all(&self, username: &str) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM blocklist WHERE username = ?1")?
                .execute([username])?;
            Ok(())
        })
    }

    fn blocking_any(&self, usernames: &[String], jids: &[String]) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut exists = tx.prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM blocklist WHERE username = ?1 AND jid = ?2)",
            )?;
            let mut out = Vec::new();
            for user in usernames {
                for jid in jids {
                    if exists.query_row((user, jid), |r| r.get::<_, bool>(0))? {
                        out.push(user.clone());
                        break;
                    }
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        })
    }
}
