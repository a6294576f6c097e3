//! SQLite-specific tests: the shared conformance suite on both kinds of database, plus
//! what only a file can show (reopening, WAL, schema refusal, concurrent writers).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::Connection;

use super::SqliteStore;
use crate::testsuite::{self, creds};
use crate::{AccountStore, OfflineStore, StorageError, Store};

/// A directory under the system temp dir, removed on drop (so even on test failure).
pub(super) struct TempDir(PathBuf);

impl TempDir {
    pub(super) fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "hydrant-storage-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub(super) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SqliteStore>();
}

#[test]
fn conformance_in_memory() {
    testsuite::run_conformance(&SqliteStore::open_in_memory().unwrap());
}

#[test]
fn conformance_on_file() {
    // A file database reads through its reader connections, unlike the in-memory one.
    let dir = TempDir::new();
    testsuite::run_conformance(&SqliteStore::open(&dir.path().join("hydrant.db")).unwrap());
}

#[test]
fn persistence_across_reopen() {
    let dir = TempDir::new();
    let path = dir.path().join("hydrant.db");
    testsuite::run_persistence(&|| -> Box<dyn Store> {
        Box::new(SqliteStore::open(&path).unwrap())
    });
}

#[test]
fn open_creates_parent_directories_and_uses_wal() {
    let dir = TempDir::new();
    let path = dir.path().join("a/b/hydrant.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_account("romeo", &creds(1)).unwrap();
    assert!(path.is_file());
    let raw = Connection::open(&path).unwrap();
    let mode: String = raw
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn reopening_does_not_rerun_migrations() {
    let dir = TempDir::new();
    let path = dir.path().join("hydrant.db");
    drop(SqliteStore::open(&path).unwrap());
    drop(SqliteStore::open(&path).unwrap());
    let raw = Connection::open(&path).unwrap();
    let (rows, max): (i64, i64) = raw
        .query_row(
            "SELECT COUNT(*), MAX(version) FROM schema_migrations",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (rows, max),
        (SqliteStore::SCHEMA_VERSION, SqliteStore::SCHEMA_VERSION)
    );
}

#[test]
fn refuses_a_schema_newer_than_the_binary() {
    let dir = TempDir::new();
    let path = dir.path().join("hydrant.db");
    let store = SqliteStore::open(&path).unwrap();
    store.create_account("romeo", &creds(1)).unwrap();
    drop(store);

    // What a later hydrant would leave behind after migrating.
    let newer = SqliteStore::SCHEMA_VERSION + 1;
    Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 0)",
            [newer],
        )
        .unwrap();

    match SqliteStore::open(&path) {
        Err(StorageError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (newer, SqliteStore::SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
    // Refusing touched nothing: the newer version and the data are still there.
    let raw = Connection::open(&path).unwrap();
    let max: i64 = raw
        .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(max, newer);
    let users: i64 = raw
        .query_row("SELECT COUNT(*) FROM accounts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(users, 1);
}

#[test]
fn two_stores_on_one_file_see_each_others_commits() {
    // E.g. the admin CLI adding a user while the server runs.
    let dir = TempDir::new();
    let path = dir.path().join("hydrant.db");
    let server = SqliteStore::open(&path).unwrap();
    let admin = SqliteStore::open(&path).unwrap();
    admin.create_account("romeo", &creds(1)).unwrap();
    assert_eq!(server.credentials("romeo").unwrap(), Some(creds(1)));
    assert!(server.delete_account("romeo").unwrap());
    assert!(!admin.account_exists("romeo").unwrap());
}

#[test]
fn concurrent_senders_never_exceed_the_offline_cap() {
    const CAP: usize = 25;
    let dir = TempDir::new();
    let store = Arc::new(SqliteStore::open(&dir.path().join("hydrant.db")).unwrap());
    store.create_account("romeo", &creds(1)).unwrap();
    let stored: usize = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let store = &store;
                s.spawn(move || {
                    (0..20)
                        .filter(|i| {
                            let stanza = format!("<message>{t}-{i}</message>");
                            // Readers run alongside the writers.
                            store.count_offline("romeo").unwrap();
                            store
                                .store_offline("romeo", stanza.as_bytes(), CAP)
                                .unwrap()
                        })
                        .count()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    assert_eq!(stored, CAP);
    assert_eq!(store.take_offline("romeo").unwrap().len(), CAP);
}

#[test]
fn page_cache_size_applies_to_every_connection() {
    let dir = TempDir::new();
    let store = SqliteStore::open_with_cache(&dir.path().join("hydrant.db"), 100).unwrap();
    let cache =
        |c: &Connection| -> i64 { c.query_row("PRAGMA cache_size", [], |r| r.get(0)).unwrap() };
    assert_eq!(cache(&store.db.writer.lock().unwrap()), -100);
    assert!(!store.db.readers.is_empty());
    for r in &store.db.readers {
        assert_eq!(cache(&r.lock().unwrap()), -100);
    }
}

/// The durability settings the module documents are the ones SQLite actually applies,
/// on every connection the store opened (issue 8, item 15): WAL, `synchronous = FULL`
/// (2) and foreign keys on the writer, which does every write; readers on the same WAL
/// file, unable to write.
#[test]
fn durability_pragmas_are_in_force_on_every_connection() {
    let dir = TempDir::new();
    let store = SqliteStore::open(&dir.path().join("hydrant.db")).unwrap();
    let pragma = |c: &Connection, name: &str| -> String {
        c.query_row(&format!("PRAGMA {name}"), [], |r| {
            r.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(n) => n.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    };
    let writer = store.db.writer.lock().unwrap();
    assert_eq!(pragma(&writer, "journal_mode"), "wal");
    assert_eq!(pragma(&writer, "synchronous"), "2", "FULL");
    assert_eq!(pragma(&writer, "foreign_keys"), "1");
    assert_eq!(pragma(&writer, "busy_timeout"), "5000");
    assert_eq!(pragma(&writer, "query_only"), "0");
    drop(writer);
    assert_eq!(store.db.readers.len(), super::READERS);
    for r in &store.db.readers {
        let r = r.lock().unwrap();
        assert_eq!(pragma(&r, "journal_mode"), "wal");
        assert_eq!(pragma(&r, "query_only"), "1");
        assert_eq!(pragma(&r, "busy_timeout"), "5000");
    }
    // Group commit (pubsub writes) uses the same writer connection, so the same
    // settings; a write through it still finds them.
    store.create_account("romeo", &creds(1)).unwrap();
    assert_eq!(pragma(&store.db.writer.lock().unwrap(), "synchronous"), "2");
}
