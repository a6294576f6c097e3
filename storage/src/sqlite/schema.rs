//! Forward-only schema migrations.
//!
//! Applied versions are recorded as rows of `schema_migrations` rather than in SQLite's
//! `PRAGMA user_version`, so the PostgreSQL backend can keep the same bookkeeping.
//! Migrations are never edited once released: a change is a new numbered file.

use rusqlite::{Connection, TransactionBehavior};

use crate::{Result, StorageError};

/// `(version, SQL)`, in order, numbered from 1 without gaps.
pub(super) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_initial.sql")),
    (2, include_str!("migrations/0002_pubsub.sql")),
    (3, include_str!("migrations/0003_account_changes.sql")),
];

/// The newest schema this binary knows.
pub(super) const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// Brings the database up to [`SCHEMA_VERSION`], refusing one that is newer: an older
/// binary writing to a newer schema could break invariants it does not know about.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    // IMMEDIATE takes the write lock up front, so two processes opening the same new
    // file cannot both decide to run migration 1; the loser waits (busy_timeout) and
    // then sees the rows the winner committed. DDL is transactional in both SQLite and
    // PostgreSQL, so a failed migration leaves the previous version intact.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    BIGINT NOT NULL PRIMARY KEY,
             applied_at BIGINT NOT NULL
         );",
    )?;
    // MAX over no rows is NULL: a fresh database is at version 0.
    let current: Option<i64> =
        tx.query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })?;
    let current = current.unwrap_or(0);
    if current > SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            (version, super::now_unix()),
        )?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_from_one_without_gaps() {
        let versions: Vec<i64> = MIGRATIONS.iter().map(|(v, _)| *v).collect();
        let expected: Vec<i64> = (1..=SCHEMA_VERSION).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn migrating_twice_applies_each_migration_once() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let rows: i64 = conn
            .query_row("SELECT COUNT(*) FROM schema_migrations", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, SCHEMA_VERSION);
    }
}
