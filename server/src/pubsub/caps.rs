//! The server-wide cache of verified entity capabilities (XEP-0115): `ver` -> the
//! nodes its disco#info lists with `+notify`. Bounded in bytes, not entries: one
//! verified result can list thousands of features (anyone can compute a valid `ver`
//! for a disco#info of their own making), so a count limit bounds nothing. Past the
//! budget the least recently used entries go; a result larger than the whole budget
//! is not cached (it still applies to its own session).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

/// What an entry is charged besides its strings: the map and order entries, the `Arc`
/// header, a slice element per node.
const ENTRY_OVERHEAD: usize = 128;
const PER_NODE_OVERHEAD: usize = std::mem::size_of::<String>();

/// A byte-bounded LRU map of `ver` -> `+notify` nodes. Short critical sections under a
/// std mutex (never held across an await).
#[derive(Debug)]
pub struct CapsCache {
    max_bytes: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// ver -> (nodes, last use, charged bytes)
    entries: HashMap<String, (Arc<[String]>, u64, usize)>,
    /// last use -> ver: the eviction order (oldest first).
    by_use: BTreeMap<u64, String>,
    clock: u64,
    bytes: usize,
}

/// The bytes an entry is charged.
fn cost(ver: &str, notify: &[String]) -> usize {
    ENTRY_OVERHEAD
        + 2 * ver.len()
        + notify
            .iter()
            .map(|n| n.len() + PER_NODE_OVERHEAD)
            .sum::<usize>()
}

impl CapsCache {
    pub fn new(max_bytes: usize) -> Self {
        CapsCache {
            max_bytes,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The nodes of a cached `ver`, marking it used.
    pub fn get(&self, ver: &str) -> Option<Arc<[String]>> {
        let mut g = self.lock();
        let inner = &mut *g;
        inner.clock += 1;
        let now = inner.clock;
        let (notify, used, _) = inner.entries.get_mut(ver)?;
        let old = std::mem::replace(used, now);
        let notify = Arc::clone(notify);
        let key = inner
            .by_use
            .remove(&old)
            .expect("order entry of a cached ver");
        inner.by_use.insert(now, key);
        Some(notify)
    }

    /// Caches a verified result, evicting the least recently used entries to stay
    /// within the byte budget. A result larger than the budget is not cached.
    pub fn insert(&self, ver: &str, notify: Arc<[String]>) {
        let size = cost(ver, &notify);
        if size > self.max_bytes {
            return;
        }
        let mut g = self.lock();
        let inner = &mut *g;
        if let Some((_, used, old_size)) = inner.entries.remove(ver) {
            inner.by_use.remove(&used);
            inner.bytes -= old_size;
        }
        while inner.bytes + size > self.max_bytes {
            let (_, oldest) = inner
                .by_use
                .pop_first()
                .expect("bytes > 0 means an entry is cached");
            let (_, _, freed) = inner
                .entries
                .remove(&oldest)
                .expect("order and entries agree");
            inner.bytes -= freed;
        }
        inner.clock += 1;
        let now = inner.clock;
        inner.by_use.insert(now, ver.to_owned());
        inner.entries.insert(ver.to_owned(), (notify, now, size));
        inner.bytes += size;
    }

    /// Bytes charged by the cached entries (at most the budget).
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(n: usize, len: usize) -> Arc<[String]> {
        (0..n).map(|k| format!("{k:0len$}")).collect()
    }

    /// Filled with large disco#info results, the cache never holds more than its byte
    /// budget, whatever the number of entries.
    #[test]
    fn large_results_stay_within_the_byte_budget() {
        let budget = 256 * 1024;
        let cache = CapsCache::new(budget);
        let big = nodes(1_000, 60); // ~84 KiB charged each
        for k in 0..500 {
            cache.insert(&format!("ver-{k}"), Arc::clone(&big));
            assert!(cache.bytes() <= budget, "{} > {budget}", cache.bytes());
        }
        assert!(cache.len() <= 3, "{}", cache.len());
        assert!(cache.get("ver-499").is_some(), "the newest stays");
        assert!(cache.get("ver-0").is_none(), "the oldest went");
        // Too large for the whole budget: not cached, nothing evicted.
        let before = cache.len();
        cache.insert("huge", nodes(5_000, 60));
        assert!(cache.get("huge").is_none());
        assert_eq!(cache.len(), before);
    }

    /// Least recently used goes first: a lookup keeps an entry.
    #[test]
    fn least_recently_used_is_evicted_first() {
        let one = cost("a", &nodes(10, 10));
        let cache = CapsCache::new(3 * one);
        for v in ["a", "b", "c"] {
            cache.insert(v, nodes(10, 10));
        }
        assert!(cache.get("a").is_some());
        cache.insert("d", nodes(10, 10));
        assert!(cache.get("b").is_none(), "b was least recently used");
        for v in ["a", "c", "d"] {
            assert!(cache.get(v).is_some(), "{v}");
        }
        // Replacing an entry re-charges it, not twice.
        cache.insert("a", nodes(10, 10));
        assert_eq!(cache.bytes(), 3 * one);
    }
}
