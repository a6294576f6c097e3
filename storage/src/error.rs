//! The one error type every store returns, whatever the backend.

/// Why a store operation failed.
///
/// Domain outcomes that callers branch on (`AlreadyExists`, `NotFound`) are variants of
/// their own; everything the backend itself reports (I/O, corruption, a lock held too
/// long) is flattened into `Backend`, because no caller can do more with it than log it
/// and answer `internal-server-error`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("already exists")]
    AlreadyExists,
    #[error("not found")]
    NotFound,
    #[error("storage backend: {0}")]
    Backend(String),
    #[error("schema version {found} is newer than this binary supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
}

pub type Result<T> = std::result::Result<T, StorageError>;

impl From<rusqlite::Error> for StorageError {
    fn from(e: rusqlite::Error) -> Self {
        StorageError::Backend(e.to_string())
    }
}
