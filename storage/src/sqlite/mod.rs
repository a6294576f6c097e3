//! The embedded default store: SQLite (bundled) in WAL mode.
//!
//! **Connections.** One writer connection behind a `Mutex`, plus [`READERS`] reader
//! connections for file databases. SQLite admits one writer at a time whatever we do;
//! serialising writes in-process turns that into a plain mutex wait instead of
//! `SQLITE_BUSY` retries, and lets every write run as an `IMMEDIATE` transaction (write
//! lock taken up front, so a read-then-write such as the offline cap check can neither
//! deadlock nor race). WAL lets readers work on a snapshot while the writer commits, so
//! logins (credentials, roster, pending requests) are not queued behind a commit's
//! fsync. Every call is short and synchronous, so a `Mutex` per connection is all the
//! pool needs. An in-memory database has no readers: separate connections to
//! `:memory:` would be separate databases, so its one connection does everything.
//!
//! These stores see low write rates (registrations, roster edits, offline messages) and
//! write through [`Db::write`], one transaction per call. Pubsub writes follow every
//! publish, so they go through [`Db::group_write`] instead: concurrent calls share one
//! transaction and so one fsync (group commit, see `group.rs`). Both take the same
//! writer mutex, so the two kinds interleave safely.
//!
//! **Durability.** `synchronous = FULL`: in WAL mode SQLite then fsyncs the WAL at every
//! commit, so a call that returned `Ok` survives power loss. With `NORMAL` a commit only
//! reaches the OS and is fsynced at the next checkpoint: nothing is lost if only the
//! process crashes, but a power cut can roll back the last commits. That would be
//! tolerable for rosters, not for what hydrant acknowledges: an account the user was
//! told exists, a password change made because the old one leaked, an offline message
//! whose sender got no error. Writes here are rare enough that one fsync each is cheap.

mod account;
mod blocking;
mod group;
mod offline;
mod private;
mod pubsub;
#[cfg(test)]
mod pubsub_tests;
mod roster;
mod schema;
#[cfg(test)]
mod tests;
mod vcard;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::{Result, StorageError};

pub use pubsub::SqlitePubsubStore;

/// Reader connections for a file database: enough for logins to proceed while one
/// reader is busy with a large roster, few enough that page caches stay small.
const READERS: usize = 2;

/// SQLite's page cache per connection unless configured: small, because the kernel
/// caches the file anyway and SQLite's default (2 MiB per connection) would show up in
/// the server's memory per client at 10,000 idle connections (logins read accounts
/// and rosters through every connection).
pub const DEFAULT_PAGE_CACHE_KIB: u32 = 256;

/// How long a connection waits for another process's lock (a backup tool, the admin
/// CLI) before giving up with an error. In-process writers never contend here.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// SQLite-backed [`Store`](crate::Store). `Send + Sync`; share it behind an `Arc`.
///
/// The pubsub stores it hands out ([`SqliteStore::pubsub`]) share its connections.
pub struct SqliteStore {
    db: Arc<Db>,
}

/// The connections, shared by the [`SqliteStore`] and every [`SqlitePubsubStore`] made
/// from it.
pub(crate) struct Db {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
    path: Option<PathBuf>,
    /// Pubsub writes waiting for the next group commit (see `group.rs`).
    queue: group::Queue,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.db.path)
            .field("readers", &self.db.readers.len())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The newest schema version this binary can use.
    pub const SCHEMA_VERSION: i64 = schema::SCHEMA_VERSION;

    /// Opens (creating the file and its parent directories if needed) a database file,
    /// switches it to WAL and brings its schema up to date. Fails with `SchemaTooNew` if
    /// a newer hydrant has already migrated it.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        Self::open_with_cache(path, DEFAULT_PAGE_CACHE_KIB)
    }

    /// [`open`](Self::open) with SQLite's page cache set to `cache_kib` KiB per
    /// connection.
    pub fn open_with_cache(path: &Path, cache_kib: u32) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StorageError::Backend(format!("creating directory {}: {e}", dir.display()))
            })?;
        }
        let mut writer = Connection::open(path)?;
        configure(&writer, cache_kib)?;
        // journal_mode=WAL is persistent in the file; it answers the mode it ended up
        // in, which is not WAL on filesystems without shared memory support.
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StorageError::Backend(format!(
                "{}: WAL mode unavailable (journal_mode is {mode})",
                path.display()
            )));
        }
        writer.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut writer)?;
        let readers = (0..READERS)
            .map(|_| open_reader(path, cache_kib).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore::from_db(Db {
            writer: Mutex::new(writer),
            readers,
            next_reader: AtomicUsize::new(0),
            path: Some(path.to_owned()),
            queue: group::Queue::default(),
        }))
    }

    /// A private, empty database that vanishes with the store (tests, throwaway
    /// servers).
    pub fn open_in_memory() -> Result<SqliteStore> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn, DEFAULT_PAGE_CACHE_KIB)?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore::from_db(Db {
            writer: Mutex::new(conn),
            readers: Vec::new(),
            next_reader: AtomicUsize::new(0),
            path: None,
            queue: group::Queue::default(),
        }))
    }

    fn from_db(db: Db) -> SqliteStore {
        SqliteStore { db: Arc::new(db) }
    }

    /// The pubsub store of one service, sharing this store's connections (and its
    /// group commit with every other service's). `service` is the service's address as
    /// a string: a component's domain (`pubsub.example.com`) or, for PEP, the account's
    /// bare JID (`alice@example.com`), normalised by the caller like every name here.
    ///
    /// Cheap: make one per [`hydrant_pubsub::Service`] and hand it over by value. Two
    /// stores for the same service see the same rows, but the service keeps its nodes
    /// in memory, so only one `Service` per address may be open at a time.
    pub fn pubsub(&self, service: &str) -> SqlitePubsubStore {
        SqlitePubsubStore::new(Arc::clone(&self.db), service)
    }

    /// Deletes every node (with its items, affiliations and subscriptions) of a pubsub
    /// service, e.g. an account's PEP service when the account is deleted. Deleting a
    /// service that has no nodes is not an error. The service must not be open.
    pub fn delete_pubsub_service(&self, service: &str) -> Result<()> {
        self.db.write(|tx| {
            tx.prepare_cached("DELETE FROM pubsub_nodes WHERE service = ?1")?
                .execute([service])?;
            Ok(())
        })
    }

    /// Deletes the affiliations and subscriptions (of the bare JID and of any full JID
    /// under it) that `bare`, a removed account, holds on PEP services (addresses with
    /// a localpart), whether or not they are loaded: the PEP services of the account's
    /// former contacts are opened only on use, so their rows are cleaned here. Services
    /// already open must also forget it in memory (`hydrant_pubsub::Service::forget`),
    /// after this call so that a service opened meanwhile loads the cleaned rows.
    /// Components' nodes are left to `Service::forget`, which also deletes the nodes
    /// the account owned alone.
    pub fn delete_pep_entity(&self, bare: &str) -> Result<()> {
        // `/` sorts just before `0`: every full JID of `bare` is in [bare/, bare0).
        let (lo, hi) = (format!("{bare}/"), format!("{bare}0"));
        self.db.write(|tx| {
            tx.prepare_cached(
                "DELETE FROM pubsub_subscriptions WHERE service LIKE '%@%'
                   AND (jid = ?1 OR (jid >= ?2 AND jid < ?3))",
            )?
            .execute((bare, &lo, &hi))?;
            tx.prepare_cached(
                "DELETE FROM pubsub_affiliations WHERE service LIKE '%@%' AND jid = ?1",
            )?
            .execute([bare])?;
            Ok(())
        })
    }

    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.db.write(f)
    }

    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.db.read(f)
    }
}

impl Db {
    /// Runs `f` in an `IMMEDIATE` transaction on the writer and commits if it returns
    /// `Ok`; an `Err` (including domain errors such as `AlreadyExists`) rolls back.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` in a read transaction, so multi-statement reads (a roster's version and
    /// its items) see one snapshot. Prefers an idle reader, else queues on the next one
    /// in turn.
    fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = if self.readers.is_empty() {
            lock(&self.writer)
        } else {
            self.readers
                .iter()
                .find_map(|r| match r.try_lock() {
                    Ok(guard) => Some(guard),
                    Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                    Err(TryLockError::WouldBlock) => None,
                })
                .unwrap_or_else(|| {
                    let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
                    lock(&self.readers[i])
                })
        };
        // Dropping the transaction ends it (a rollback, which for a reader is just the
        // release of its snapshot).
        let tx = conn.transaction()?;
        f(&tx)
    }
}

/// A panic while a connection was locked unwound through its `Transaction`, whose drop
/// rolled back: the connection is consistent, so poisoning is no reason to stop.
fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Settings every writer-capable connection needs; SQLite keeps them per connection.
fn configure(conn: &Connection, cache_kib: u32) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // Off by default in SQLite for backward compatibility; the schema's ON DELETE
    // CASCADE (account deletion) depends on it.
    conn.pragma_update(None, "foreign_keys", "ON")?;
    set_cache(conn, cache_kib)
}

fn set_cache(conn: &Connection, cache_kib: u32) -> Result<()> {
    // A negative cache_size is a size in KiB (a positive one would count pages).
    conn.pragma_update(None, "cache_size", -i64::from(cache_kib.max(1)))?;
    Ok(())
}

fn open_reader(path: &Path, cache_kib: u32) -> Result<Connection> {
    // Read-write flags plus query_only rather than SQLITE_OPEN_READ_ONLY: a read-only
    // connection cannot recreate a missing -shm file or recover a WAL after a crash.
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "query_only", "ON")?;
    set_cache(&conn, cache_kib)?;
    Ok(conn)
}

/// Whether `username` has an account, inside the caller's transaction.
fn account_exists(conn: &Connection, username: &str) -> Result<bool> {
    let exists = conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM accounts WHERE username = ?1)")?
        .query_row([username], |r| r.get(0))?;
    Ok(exists)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
