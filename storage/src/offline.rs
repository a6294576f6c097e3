//! Offline message storage (RFC 6121 section 8.5.2.2.1, XEP-0160).

use crate::Result;

/// Messages kept for local users who are offline.
///
/// Stanzas are opaque bytes: the caller serialises them, including any `<delay/>`
/// (XEP-0203) stamp, before storing.
pub trait OfflineStore: Send + Sync {
    /// Queues a stanza. `false` (not stored) when the user already has `max_per_user`
    /// queued, so the caller can bounce it with `service-unavailable` rather than drop
    /// it silently. `NotFound` if there is no such account.
    fn store_offline(&self, username: &str, stanza: &[u8], max_per_user: usize) -> Result<bool>;

    /// Removes and returns the queue, oldest first. Removal happens before the caller
    /// delivers, so a crash between the two loses those messages: the same trade-off as
    /// XEP-0160's "flood" delivery.
    fn take_offline(&self, username: &str) -> Result<Vec<Vec<u8>>>;

    fn count_offline(&self, username: &str) -> Result<usize>;
}
