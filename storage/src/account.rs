//! Accounts and their SCRAM credentials.

use hydrant_proto::scram::StoredCredentials;

use crate::Result;

/// What the admin CLI changed about an account for a running server to act on
/// ([`AccountStore::record_change`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountChange {
    /// Removal requested: the credentials are gone already, the server finishes the
    /// removal (sessions, contacts, pubsub) and deletes the account.
    Removed,
    /// The password was changed: the server ends the account's sessions.
    PasswordChanged,
}

impl AccountChange {
    /// How SQL backends store it.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountChange::Removed => "removed",
            AccountChange::PasswordChanged => "password",
        }
    }

    pub fn parse(s: &str) -> Option<AccountChange> {
        match s {
            "removed" => Some(AccountChange::Removed),
            "password" => Some(AccountChange::PasswordChanged),
            _ => None,
        }
    }
}

/// Local user accounts.
///
/// `username` is the localpart, already nodeprep'd by the caller; stores compare it
/// byte for byte. Credentials are SCRAM keys only: no store ever sees a password.
pub trait AccountStore: Send + Sync {
    /// Creates an account; `AlreadyExists` if the username is taken.
    fn create_account(&self, username: &str, creds: &StoredCredentials) -> Result<()>;

    /// Deletes an account together with its roster, pending subscription requests,
    /// offline messages and blocklist. `false` if there was no such account.
    fn delete_account(&self, username: &str) -> Result<bool>;

    /// The account's credentials, `None` if there is no such account.
    fn credentials(&self, username: &str) -> Result<Option<StoredCredentials>>;

    /// Replaces the credentials (password change). `false` if there is no such account.
    fn set_credentials(&self, username: &str, creds: &StoredCredentials) -> Result<bool>;

    /// Every username, sorted bytewise (the order of Rust's `str`).
    fn list_accounts(&self) -> Result<Vec<String>>;

    fn account_exists(&self, username: &str) -> Result<bool>;

    /// How many accounts there are.
    fn count_accounts(&self) -> Result<u64>;

    /// Records a change for the running server (one per account; a removal is never
    /// replaced by a password change). `Removed` also deletes the credentials in the
    /// same transaction, so the account can no longer log in. `false` if there is no
    /// such account.
    fn record_change(&self, username: &str, change: AccountChange) -> Result<bool>;

    /// Every recorded change, sorted by username.
    fn account_changes(&self) -> Result<Vec<(String, AccountChange)>>;

    /// Deletes the record of `change` for the account (not a different one recorded
    /// since).
    fn clear_change(&self, username: &str, change: AccountChange) -> Result<()>;
}
