//! Accounts and their SCRAM credentials.

use hydrant_proto::scram::StoredCredentials;

use crate::Result;

/// Local user accounts.
///
/// `username` is the localpart, already nodeprep'd by the caller; stores compare it
/// byte for byte. Credentials are SCRAM keys only: no store ever sees a password.
pub trait AccountStore: Send + Sync {
    /// Creates an account; `AlreadyExists` if the username is taken.
    fn create_account(&self, username: &str, creds: &StoredCredentials) -> Result<()>;

    /// Deletes an account together with its roster, pending subscription requests and
    /// offline messages. `false` if there was no such account.
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
}
