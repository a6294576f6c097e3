//! [`AccountStore`] on SQLite: `accounts` plus one `account_scram` row per hash.

use hydrant_proto::scram::{ScramKeys, StoredCredentials};
use rusqlite::Connection;

use super::{SqliteStore, account_exists, now_unix};
use crate::{AccountChange, AccountStore, Result, StorageError};

/// The `account_scram.hash` values, named as in the SASL mechanism names.
const SHA1: &str = "SHA-1";
const SHA256: &str = "SHA-256";

impl AccountStore for SqliteStore {
    fn create_account(&self, username: &str, creds: &StoredCredentials) -> Result<()> {
        self.write(|tx| {
            // DO NOTHING plus a row count, rather than matching a constraint error code:
            // the same statement means the same thing on PostgreSQL.
            let inserted = tx
                .prepare_cached(
                    "INSERT INTO accounts (username, created_at) VALUES (?1, ?2)
                     ON CONFLICT (username) DO NOTHING",
                )?
                .execute((username, now_unix()))?;
            if inserted == 0 {
                return Err(StorageError::AlreadyExists);
            }
            put_credentials(tx, username, creds)
        })
    }

    fn delete_account(&self, username: &str) -> Result<bool> {
        // Roster, groups, pending requests, offline messages, the blocklist, private XML
        // and the vCard go by ON DELETE CASCADE.
        self.write(|tx| {
            let deleted = tx
                .prepare_cached("DELETE FROM accounts WHERE username = ?1")?
                .execute([username])?;
            Ok(deleted > 0)
        })
    }

    fn credentials(&self, username: &str) -> Result<Option<StoredCredentials>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT hash, salt, iterations, stored_key, server_key
                 FROM account_scram WHERE username = ?1",
            )?;
            let mut rows = stmt.query([username])?;
            let (mut sha1, mut sha256) = (None, None);
            while let Some(row) = rows.next()? {
                let hash: String = row.get(0)?;
                let iterations: i64 = row.get(2)?;
                let keys = ScramKeys {
                    salt: row.get(1)?,
                    iterations: u32::try_from(iterations).map_err(|_| {
                        StorageError::Backend(format!(
                            "account {username}: iteration count {iterations} out of range"
                        ))
                    })?,
                    stored_key: row.get(3)?,
                    server_key: row.get(4)?,
                };
                match hash.as_str() {
                    SHA1 => sha1 = Some(keys),
                    SHA256 => sha256 = Some(keys),
                    // A hash this binary cannot use; schema versioning keeps older
                    // binaries off databases that could hold one, but skipping is safe.
                    _ => {}
                }
            }
            match (sha1, sha256) {
                (Some(sha1), Some(sha256)) => Ok(Some(StoredCredentials { sha1, sha256 })),
                (None, None) => Ok(None),
                // Both rows are always written in one transaction; a half is corruption,
                // and guessing would let one mechanism log in where the other cannot.
                _ => Err(StorageError::Backend(format!(
                    "account {username}: incomplete SCRAM credentials"
                ))),
            }
        })
    }

    fn set_credentials(&self, username: &str, creds: &StoredCredentials) -> Result<bool> {
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Ok(false);
            }
            put_credentials(tx, username, creds)?;
            Ok(true)
        })
    }

    fn list_accounts(&self) -> Result<Vec<String>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached("SELECT username FROM accounts ORDER BY username")?;
            let names = stmt.query_map([], |r| r.get(0))?;
            Ok(names.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn account_exists(&self, username: &str) -> Result<bool> {
        self.read(|tx| account_exists(tx, username))
    }

    fn count_accounts(&self) -> Result<u64> {
        self.read(|tx| {
            let n: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM accounts")?
                .query_row([], |r| r.get(0))?;
            Ok(n.try_into().unwrap_or(0))
        })
    }

    fn record_change(&self, username: &str, change: AccountChange) -> Result<bool> {
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Ok(false);
            }
            if change == AccountChange::Removed {
                tx.prepare_cached("DELETE FROM account_scram WHERE username = ?1")?
                    .execute([username])?;
            }
            tx.prepare_cached(
                "INSERT INTO account_changes (username, kind, requested_at)
                 VALUES (?1, ?2, ?3)
                 ON CONFLICT (username) DO UPDATE SET
                     kind = CASE WHEN account_changes.kind = 'removed' THEN 'removed'
                                 ELSE excluded.kind END,
                     requested_at = excluded.requested_at",
            )?
            .execute((username, change.as_str(), now_unix()))?;
            Ok(true)
        })
    }

    fn account_changes(&self) -> Result<Vec<(String, AccountChange)>> {
        self.read(|tx| {
            let mut stmt =
                tx.prepare_cached("SELECT username, kind FROM account_changes ORDER BY username")?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let (user, kind): (String, String) = (r.get(0)?, r.get(1)?);
                let change = AccountChange::parse(&kind).ok_or_else(|| {
                    StorageError::Backend(format!(
                        "corrupt row in account_changes (username={user:?}): kind {kind:?}"
                    ))
                })?;
                out.push((user, change));
            }
            Ok(out)
        })
    }

    fn clear_change(&self, username: &str, change: AccountChange) -> Result<()> {
        self.write(|tx| {
            tx.prepare_cached("DELETE FROM account_changes WHERE username = ?1 AND kind = ?2")?
                .execute((username, change.as_str()))?;
            Ok(())
        })
    }
}

/// Inserts or replaces both hashes' keys.
fn put_credentials(conn: &Connection, username: &str, creds: &StoredCredentials) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO account_scram (username, hash, salt, iterations, stored_key, server_key)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (username, hash) DO UPDATE SET
             salt = excluded.salt,
             iterations = excluded.iterations,
             stored_key = excluded.stored_key,
             server_key = excluded.server_key",
    )?;
    for (hash, keys) in [(SHA1, &creds.sha1), (SHA256, &creds.sha256)] {
        stmt.execute((
            username,
            hash,
            &keys.salt,
            i64::from(keys.iterations),
            &keys.stored_key,
            &keys.server_key,
        ))?;
    }
    Ok(())
}
