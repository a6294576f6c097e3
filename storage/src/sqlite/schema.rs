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
    (4, include_str!("migrations/0004_items_by_publisher.sql")),
    (
        5,
        include_str!("migrations/0005_subscriptions_by_position.sql"),
    ),
    (6, include_str!("migrations/0006_blocklist.sql")),
    (7, include_str!("migrations/0007_private_vcard.sql")),
    (8, include_str!("migrations/0008_urgent_subscriptions.sql")),
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

    /// Version 4 fills the publisher's bare JID of items stored before it, and the
    /// queries by publisher walk its index rather than every row of the node.
    #[test]
    fn items_by_publisher_backfilled_and_indexed() {
        let conn = Connection::open_in_memory().unwrap();
        for (v, sql) in MIGRATIONS.iter().filter(|(v, _)| *v < 4) {
            conn.execute_batch(sql)
                .unwrap_or_else(|e| panic!("migration {v}: {e}"));
        }
        conn.execute_batch(
            // No node row: foreign keys are off for this connection.
            "PRAGMA foreign_keys = OFF;
             INSERT INTO pubsub_items (service, node, item_id, seq, published_ms, publisher)
                 VALUES ('s', 'n', 'i1', 1, 0, 'a@x/r/s'), ('s', 'n', 'i2', 2, 0, 'b@x');",
        )
        .unwrap_or_else(|e| panic!("version 3 rows: {e}"));
        conn.execute_batch(MIGRATIONS[3].1).unwrap();
        let bare: Vec<String> = conn
            .prepare("SELECT publisher_bare FROM pubsub_items ORDER BY seq")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(bare, ["a@x", "b@x"]);

        use super::super::pubsub::{
            COUNT_BY_PUBLISHER, ITEMS_BY_PUBLISHER_ASC, ITEMS_BY_PUBLISHER_DESC,
        };
        for sql in [
            ITEMS_BY_PUBLISHER_ASC,
            ITEMS_BY_PUBLISHER_DESC,
            COUNT_BY_PUBLISHER,
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(
                    (
                        "s",
                        "n",
                        -1,
                        i64::MAX,
                        0,
                        i64::MAX,
                        10,
                        0,
                        "a@x",
                        None::<&str>,
                    ),
                    |r| r.get(3),
                )
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap();
            assert!(
                plan.iter().any(|p| p.contains("pubsub_items_by_publisher")),
                "{sql}: {plan:?}"
            );
        }
    }

    /// A new subscription's position is one index lookup, not a read of every
    /// subscription of its node.
    #[test]
    fn subscription_position_comes_from_an_index() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let plan: Vec<String> = conn
            .prepare(&format!(
                "EXPLAIN QUERY PLAN {}",
                super::super::pubsub::INSERT_SUBSCRIPTION
            ))
            .unwrap()
            .query_map(
                ("s", "n", "id", "a@x", "subscribed", true, "", false),
                |r| r.get(3),
            )
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter()
                .any(|p| p.contains("pubsub_subscriptions_by_position")),
            "{plan:?}"
        );
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
