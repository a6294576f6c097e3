//! hydrant-storage: durable implementations of the store traits.
//!
//! Owns what must survive a restart: accounts with their SCRAM credentials
//! ([`AccountStore`]), rosters and pending inbound subscription requests
//! ([`RosterStore`]), offline messages ([`OfflineStore`]), XEP-0191 blocklists
//! ([`BlockStore`]), XEP-0049 private XML ([`PrivateStore`]), XEP-0054 vCards
//! ([`VcardStore`]), and pubsub nodes and items
//! (`hydrant_pubsub::Store`, one [`SqlitePubsubStore`] per service, from
//! [`SqliteStore::pubsub`]). The traits are the contract; [`SqliteStore`] is the embedded default
//! (SQLite in WAL mode, no server to run), and a PostgreSQL backend will implement the
//! same traits over the same SQL schema (`sqlite/migrations/`, written in the subset both
//! accept, with each exception commented) and pass the same `testsuite`.
//!
//! Every call is synchronous and may block on disk: async callers run it through
//! `spawn_blocking`. Names arrive already normalised (usernames nodeprep'd, JIDs as bare
//! JID strings), so stores compare bytes and know nothing of JID syntax.
//!
//! Must not depend on tokio, sockets, or the c2s/s2s/server crates: it is a library of
//! blocking storage calls that those crates wire in, never the other way round.

mod account;
mod blocking;
mod error;
mod offline;
mod private;
mod roster;
mod sqlite;
#[cfg(any(test, feature = "conformance"))]
pub mod testsuite;
mod vcard;

pub use account::{AccountChange, AccountStore};
pub use blocking::BlockStore;
pub use error::{Result, StorageError};
pub use offline::{OfflineMessage, OfflineStore};
pub use private::{PrivateQuota, PrivateStore, PrivateWrite};
pub use roster::{RosterEntry, RosterStore, SubState};
pub use sqlite::{DEFAULT_PAGE_CACHE_KIB, SqlitePubsubStore, SqliteStore};
pub use vcard::{VcardAvatar, VcardStore};

/// Everything the server needs from one backend, usable as `&dyn Store`.
pub trait Store:
    AccountStore + RosterStore + OfflineStore + BlockStore + PrivateStore + VcardStore
{
}

impl<T: AccountStore + RosterStore + OfflineStore + BlockStore + PrivateStore + VcardStore + ?Sized>
    Store for T
{
}
