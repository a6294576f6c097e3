//! [`RosterStore`] on SQLite: `roster_items`, `roster_groups`, the version counter on
//! `accounts`, and `pending_subscriptions`.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, Transaction};

use super::{SqliteStore, account_exists, now_unix};
use crate::{Result, RosterEntry, RosterStore, StorageError, SubState};

impl RosterStore for SqliteStore {
    fn roster(&self, username: &str) -> Result<(u64, Vec<RosterEntry>)> {
        // One read transaction, so the version matches the items returned with it.
        self.read(|tx| {
            let version: Option<i64> = tx
                .prepare_cached("SELECT roster_version FROM accounts WHERE username = ?1")?
                .query_row([username], |r| r.get(0))
                .optional()?;
            let Some(version) = version else {
                return Ok((0, Vec::new()));
            };
            let mut items: Vec<RosterEntry> = tx
                .prepare_cached(
                    "SELECT jid, name, subscription, ask_out, approved
                     FROM roster_items WHERE username = ?1 ORDER BY jid",
                )?
                .query_map([username], entry_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = tx.prepare_cached(
                "SELECT jid, group_name FROM roster_groups
                 WHERE username = ?1 ORDER BY jid, group_name",
            )?;
            let mut rows = stmt.query([username])?;
            while let Some(row) = rows.next()? {
                let jid: String = row.get(0)?;
                // Items are sorted by jid in the same bytewise order as Rust's `str`.
                if let Ok(i) = items.binary_search_by(|e| e.jid.as_str().cmp(&jid)) {
                    items[i].groups.push(row.get(1)?);
                }
            }
            Ok((version_from_sql(version)?, items))
        })
    }

    fn roster_item(&self, username: &str, jid: &str) -> Result<Option<RosterEntry>> {
        self.read(|tx| {
            let entry = tx
                .prepare_cached(
                    "SELECT jid, name, subscription, ask_out, approved
                     FROM roster_items WHERE username = ?1 AND jid = ?2",
                )?
                .query_row([username, jid], entry_from_row)
                .optional()?;
            let Some(mut entry) = entry else {
                return Ok(None);
            };
            entry.groups = tx
                .prepare_cached(
                    "SELECT group_name FROM roster_groups
                     WHERE username = ?1 AND jid = ?2 ORDER BY group_name",
                )?
                .query_map([username, jid], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(Some(entry))
        })
    }

    fn set_roster_item(&self, username: &str, entry: &RosterEntry) -> Result<u64> {
        self.write(|tx| {
            let version = bump_version(tx, username)?.ok_or(StorageError::NotFound)?;
            // An upsert, not INSERT OR REPLACE: REPLACE deletes the old row first, which
            // would fire the ON DELETE CASCADE on its groups mid-statement.
            tx.prepare_cached(
                "INSERT INTO roster_items (username, jid, name, subscription, ask_out, approved)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (username, jid) DO UPDATE SET
                     name = excluded.name,
                     subscription = excluded.subscription,
                     ask_out = excluded.ask_out,
                     approved = excluded.approved",
            )?
            .execute((
                username,
                &entry.jid,
                &entry.name,
                entry.subscription.as_str(),
                entry.ask_out,
                entry.approved,
            ))?;
            tx.prepare_cached("DELETE FROM roster_groups WHERE username = ?1 AND jid = ?2")?
                .execute([username, &entry.jid])?;
            // DO NOTHING folds duplicate group names: groups are a set.
            let mut insert = tx.prepare_cached(
                "INSERT INTO roster_groups (username, jid, group_name) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?;
            for group in &entry.groups {
                insert.execute([username, &entry.jid, group])?;
            }
            Ok(version)
        })
    }

    fn remove_roster_item(&self, username: &str, jid: &str) -> Result<Option<u64>> {
        self.write(|tx| {
            // Groups go by ON DELETE CASCADE.
            let removed = tx
                .prepare_cached("DELETE FROM roster_items WHERE username = ?1 AND jid = ?2")?
                .execute([username, jid])?;
            // Removing nothing is no change, so the version stays (XEP-0237 clients
            // would otherwise refetch for nothing).
            if removed == 0 {
                return Ok(None);
            }
            bump_version(tx, username)
        })
    }

    fn remove_contact_everywhere(&self, jid: &str) -> Result<Vec<(String, u64)>> {
        self.write(|tx| {
            // A scan of roster_items (its key starts with the owner): account removal is
            // rare, and an index on jid would cost every roster write.
            let owners: Vec<String> = tx
                .prepare_cached(
                    "SELECT username FROM roster_items WHERE jid = ?1 ORDER BY username",
                )?
                .query_map([jid], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            tx.prepare_cached("DELETE FROM roster_items WHERE jid = ?1")?
                .execute([jid])?;
            tx.prepare_cached("DELETE FROM pending_subscriptions WHERE from_jid = ?1")?
                .execute([jid])?;
            let mut out = Vec::with_capacity(owners.len());
            for owner in owners {
                if let Some(v) = bump_version(tx, &owner)? {
                    out.push((owner, v));
                }
            }
            Ok(out)
        })
    }

    fn add_pending_in(&self, username: &str, from: &str, stanza: &[u8]) -> Result<()> {
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Err(StorageError::NotFound);
            }
            upsert_pending(tx, username, from, stanza)?;
            Ok(())
        })
    }

    fn add_pending_in_capped(
        &self,
        username: &str,
        from: &str,
        stanza: &[u8],
        max: usize,
    ) -> Result<bool> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Err(StorageError::NotFound);
            }
            // How many others are pending, stopping at `max` (no full count needed).
            let others: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM pending_subscriptions
                     WHERE username = ?1 AND from_jid <> ?2 LIMIT ?3)",
                )?
                .query_row((username, from, max), |r| r.get(0))?;
            if others >= max {
                return Ok(false);
            }
            upsert_pending(tx, username, from, stanza)?;
            Ok(true)
        })
    }

    fn remove_pending_in(&self, username: &str, from: &str) -> Result<bool> {
        self.write(|tx| {
            let removed = tx
                .prepare_cached(
                    "DELETE FROM pending_subscriptions WHERE username = ?1 AND from_jid = ?2",
                )?
                .execute([username, from])?;
            Ok(removed > 0)
        })
    }

    fn pending_in(&self, username: &str) -> Result<Vec<(String, Vec<u8>)>> {
        self.read(|tx| {
            let pending = tx
                .prepare_cached(
                    "SELECT from_jid, stanza FROM pending_subscriptions
                     WHERE username = ?1 ORDER BY from_jid",
                )?
                .query_map([username], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            Ok(pending)
        })
    }
}

/// Increments the user's roster version; `None` if there is no such account.
fn bump_version(conn: &Connection, username: &str) -> Result<Option<u64>> {
    let version: Option<i64> = conn
        .prepare_cached(
            "UPDATE accounts SET roster_version = roster_version + 1
             WHERE username = ?1 RETURNING roster_version",
        )?
        .query_row([username], |r| r.get(0))
        .optional()?;
    version.map(version_from_sql).transpose()
}

fn version_from_sql(version: i64) -> Result<u64> {
    u64::try_from(version)
        .map_err(|_| StorageError::Backend(format!("negative roster version {version}")))
}

/// Maps `jid, name, subscription, ask_out, approved`; groups are filled in by the caller.
fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<RosterEntry> {
    let subscription: String = row.get(2)?;
    let subscription = SubState::parse(&subscription).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            2,
            Type::Text,
            format!("unknown subscription state {subscription:?}").into(),
        )
    })?;
    Ok(RosterEntry {
        jid: row.get(0)?,
        name: row.get(1)?,
        subscription,
        ask_out: row.get(3)?,
        approved: row.get(4)?,
        groups: Vec::new(),
    })
}

/// Stores (or replaces) the pending request from `from` to `username`.
fn upsert_pending(tx: &Transaction<'_>, username: &str, from: &str, stanza: &[u8]) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO pending_subscriptions (username, from_jid, stanza, received_at)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (username, from_jid) DO UPDATE SET
             stanza = excluded.stanza,
             received_at = excluded.received_at",
    )?
    .execute((username, from, stanza, now_unix()))?;
    Ok(())
}
