//! glibc malloc tuning for a long-running server.
//!
//! glibc gives threads their own malloc arenas, up to 8 per core. hydrant's request work
//! runs on tokio's blocking threads (`block_in_place`, `spawn_blocking`), which come and
//! go, so pages freed on one thread's arena are not reused by another: under a flood of
//! item and archive reads the RSS grew from 30 to 85 MB while live memory stayed small
//! (`hydrant-load hostile --attacks items`; with one arena per core, 60 MB, and the
//! firehose's throughput unchanged: loadtest/HISTORY.md). One arena per core keeps freed
//! memory where the next request finds it. An operator's `MALLOC_ARENA_MAX` wins.

/// Caps glibc's malloc arenas at the number of cores, unless `MALLOC_ARENA_MAX` is set.
/// Call before other threads start.
pub fn limit_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let n = libc::c_int::try_from(cores.max(2)).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets a tuning parameter of the allocator; called at
        // start-up, before any other thread exists.
        #[allow(unsafe_code)]
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, n);
        }
    }
}
