//! [`OfflineStore`] on SQLite: `offline_messages`, ordered per user by `seq`, which is
//! also the id a delivered message is removed by.

use super::{SqliteStore, account_exists, now_unix};
use crate::{OfflineMessage, OfflineStore, Result, StorageError};

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

    fn offline_page(&self, username: &str, max_bytes: usize) -> Result<Vec<OfflineMessage>> {
        // Every login asks, and most users have nothing queued: a reader answers, so a
        // reconnect storm does not queue thousands of logins on the writer. Only the
        // rows that fit are read (lengths first, then the stanzas of those).
        self.read(|tx| {
            let mut fit = Vec::new();
            let mut total = 0usize;
            let mut lengths = tx.prepare_cached(
                "SELECT seq, length(stanza) FROM offline_messages
                 WHERE username = ?1 ORDER BY seq",
            )?;
            for row in lengths.query_map([username], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })? {
                let (seq, len) = row?;
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if !fit.is_empty() && total.saturating_add(len) > max_bytes {
                    break;
                }
                total = total.saturating_add(len);
                fit.push(seq);
            }
            let mut get = tx.prepare_cached(
                "SELECT stanza FROM offline_messages WHERE username = ?1 AND seq = ?2",
            )?;
            fit.into_iter()
                .map(|seq| {
                    let stanza = get.query_row((username, seq), |r| r.get(0))?;
                    Ok(OfflineMessage {
                        id: u64::try_from(seq).map_err(|_| {
                            StorageError::Backend(format!(
                                "offline_messages: negative seq {seq} for {username}"
                            ))
                        })?,
                        stanza,
                    })
                })
                .collect()
        })
    }

    fn remove_offline(&self, username: &str, ids: &[u64]) -> Result<usize> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.write(|tx| {
            let mut del =
                tx.prepare_cached("DELETE FROM offline_messages WHERE username = ?1 AND seq = ?2")?;
            let mut removed = 0;
            for &id in ids {
                // An id past i64 was never handed out, so there is no such row.
                if let Ok(seq) = i64::try_from(id) {
                    removed += del.execute((username, seq))?;
                }
            }
            Ok(removed)
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
