//! [`OfflineStore`] on SQLite: `offline_messages`, ordered per user by `seq`.

use super::{SqliteStore, account_exists, now_unix};
use crate::{OfflineStore, Result, StorageError};

impl OfflineStore for SqliteStore {
    fn store_offline(&self, username: &str, stanza: &[u8], max_per_user: usize) -> Result<bool> {
        // Count and insert in one IMMEDIATE transaction, so concurrent senders cannot
        // both see room for the last slot. (PostgreSQL will need the account row locked,
        // SELECT ... FOR UPDATE, for the same guarantee.)
        self.write(|tx| {
            if !account_exists(tx, username)? {
                return Err(StorageError::NotFound);
            }
            let (queued, last_seq): (i64, i64) = tx
                .prepare_cached(
                    "SELECT COUNT(*), COALESCE(MAX(seq), 0)
                     FROM offline_messages WHERE username = ?1",
                )?
                .query_row([username], |r| Ok((r.get(0)?, r.get(1)?)))?;
            if usize::try_from(queued).unwrap_or(usize::MAX) >= max_per_user {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO offline_messages (username, seq, stanza, stored_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute((username, last_seq + 1, stanza, now_unix()))?;
            Ok(true)
        })
    }

    fn take_offline(&self, username: &str) -> Result<Vec<Vec<u8>>> {
        // Every login asks, and most users have nothing queued: answer those from a
        // reader so a reconnect storm does not queue thousands of logins on the writer.
        // A message stored just after this check arrives while the user is online, so
        // the router delivers it directly or it waits for the next login.
        if self.count_offline(username)? == 0 {
            return Ok(Vec::new());
        }
        self.write(|tx| {
            let stanzas = tx
                .prepare_cached(
                    "SELECT stanza FROM offline_messages WHERE username = ?1 ORDER BY seq",
                )?
                .query_map([username], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            tx.prepare_cached("DELETE FROM offline_messages WHERE username = ?1")?
                .execute([username])?;
            Ok(stanzas)
        })
    }

    fn count_offline(&self, username: &str) -> Result<usize> {
        self.read(|tx| {
            let queued: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM offline_messages WHERE username = ?1")?
                .query_row([username], |r| r.get(0))?;
            Ok(usize::try_from(queued).unwrap_or(usize::MAX))
        })
    }
}
