//! Offline message storage (RFC 6121 section 8.5.2.2.1, XEP-0160).

use crate::Result;

/// One queued stanza and the key that removes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OfflineMessage {
    /// Orders the user's queue (arrival order) and names the row for
    /// [`OfflineStore::remove_offline`]. Unique among the user's queued messages only.
    pub id: u64,
    pub stanza: Vec<u8>,
}

/// Messages kept for local users who are offline.
///
/// Stanzas are opaque bytes: the caller serialises them, including any `<delay/>`
/// (XEP-0203) stamp, before storing.
///
/// Delivery reads before it deletes: the server asks for a page that fits what the
/// client's connection can take ([`OfflineStore::offline_page`]), hands it over, and only
/// then removes exactly those rows ([`OfflineStore::remove_offline`]). A connection that
/// ends half-way leaves the rest stored for the next login.
pub trait OfflineStore: Send + Sync {
    /// Queues a stanza. `false` (not stored) when the user already has `max_per_user`
    /// queued, so the caller can bounce it with `service-unavailable` rather than drop
    /// it silently. `NotFound` if there is no such account.
    fn store_offline(&self, username: &str, stanza: &[u8], max_per_user: usize) -> Result<bool>;

    /// The oldest queued messages, oldest first, as many as fit in `max_bytes` of
    /// stanza, but always the oldest one when the queue is not empty (however large it
    /// is: the caller decides what to do with a stanza that never fits). Removes nothing.
    fn offline_page(&self, username: &str, max_bytes: usize) -> Result<Vec<OfflineMessage>>;

    /// Removes these messages (ids from [`OfflineStore::offline_page`]); ids no longer
    /// queued are ignored. Returns how many were removed.
    fn remove_offline(&self, username: &str, ids: &[u64]) -> Result<usize>;

    fn count_offline(&self, username: &str) -> Result<usize>;

    /// Removes and returns the whole queue, oldest first (tools and tests). Removal
    /// happens before the caller does anything with them, so the server's delivery path
    /// uses `offline_page` and `remove_offline` instead.
    fn take_offline(&self, username: &str) -> Result<Vec<Vec<u8>>> {
        let page = self.offline_page(username, usize::MAX)?;
        let ids: Vec<u64> = page.iter().map(|m| m.id).collect();
        self.remove_offline(username, &ids)?;
        Ok(page.into_iter().map(|m| m.stanza).collect())
    }
}
