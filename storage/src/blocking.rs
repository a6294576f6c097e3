//! XEP-0191 blocklists: the JIDs each account blocks.

use crate::Result;

/// Blocklists of local accounts.
///
/// JIDs arrive normalised by the caller, each in the form the user blocked it (full JID,
/// bare JID, `domain/resource` or domain): stores compare bytes and know nothing of JID
/// matching, which is the server's (XEP-0191 6). Reads of an absent account answer empty.
pub trait BlockStore: Send + Sync {
    /// The account's blocked JIDs, sorted bytewise.
    fn blocklist(&self, username: &str) -> Result<Vec<String>>;

    /// Adds `jids` to the account's list. JIDs already in it are not added again and do
    /// not count; if the list would then hold more than `max`, nothing is stored and
    /// `false` is returned. Checked and written in one transaction. `NotFound` if there
    /// is no such account.
    fn block(&self, username: &str, jids: &[String], max: usize) -> Result<bool>;

    /// Removes `jids` from the account's list; those not in it are ignored.
    fn unblock(&self, username: &str, jids: &[String]) -> Result<()>;

    /// Empties the account's list.
    fn unblock_all(&self, username: &str) -> Result<()>;

    /// Those of `usernames` whose list holds any of `jids` (the forms one sender's
    /// address can be blocked under), sorted bytewise.
    fn blocking_any(&self, usernames: &[String], jids: &[String]) -> Result<Vec<String>>;
}
