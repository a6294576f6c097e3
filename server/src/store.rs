//! The async face of the blocking store: every call runs on tokio's blocking pool, so a
//! disk flush never stalls the reactor threads that carry everyone's traffic.

use std::sync::Arc;

use hydrant_storage::{StorageError, Store};

#[derive(Clone)]
pub struct Db(Arc<dyn Store>);

impl Db {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Db(store)
    }

    /// Runs `f` against the store on the blocking pool.
    pub async fn run<T, F>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(&dyn Store) -> Result<T, StorageError> + Send + 'static,
    {
        let store = self.0.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(|e| StorageError::Backend(format!("storage task failed: {e}")))?
    }
}

/// Opens the database under `data_dir` (`hydrant serve` and the admin CLI).
pub fn open(cfg: &crate::config::Config) -> Result<hydrant_storage::SqliteStore, String> {
    let path = cfg.data_dir.join("hydrant.sqlite3");
    hydrant_storage::SqliteStore::open_with_cache(&path, cfg.storage.page_cache_kib)
        .map_err(|e| format!("{}: {e}", path.display()))
}
