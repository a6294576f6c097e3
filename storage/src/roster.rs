//! Rosters (RFC 6121 section 2) and pending inbound subscription requests (section 3.1.3).

use crate::Result;

/// The `subscription` attribute of a roster item (RFC 6121 section 2.1.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubState {
    None,
    To,
    From,
    Both,
}

impl SubState {
    /// The attribute value, which is also how SQL backends store it.
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::None => "none",
            SubState::To => "to",
            SubState::From => "from",
            SubState::Both => "both",
        }
    }

    /// Parses an attribute value; `None` for anything else.
    pub fn parse(s: &str) -> Option<SubState> {
        match s {
            "none" => Some(SubState::None),
            "to" => Some(SubState::To),
            "from" => Some(SubState::From),
            "both" => Some(SubState::Both),
            _ => None,
        }
    }
}

/// One roster item, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterEntry {
    /// The contact's bare JID, normalised by the caller.
    pub jid: String,
    pub name: Option<String>,
    pub subscription: SubState,
    /// An outbound subscription request is pending (`ask='subscribe'`).
    pub ask_out: bool,
    /// Subscription pre-approved by the user (RFC 6121 section 3.4).
    pub approved: bool,
    /// Groups are a set (RFC 6121 section 2.1.2.1): stores return them sorted bytewise
    /// and without duplicates, whatever order they were given in.
    pub groups: Vec<String>,
}

/// Rosters and pending inbound subscription requests of local users.
///
/// Operations that would create state under an account fail with `NotFound` when the
/// account does not exist; reads of an absent account answer empty, since "no such
/// user" and "nothing stored" lead the caller to the same reply.
pub trait RosterStore: Send + Sync {
    /// The roster version and every item sorted bytewise by JID. The version is 0 for a
    /// new account and strictly increases with every change (XEP-0237 roster
    /// versioning).
    fn roster(&self, username: &str) -> Result<(u64, Vec<RosterEntry>)>;

    fn roster_item(&self, username: &str, jid: &str) -> Result<Option<RosterEntry>>;

    /// Inserts or replaces the item keyed by `entry.jid`; returns the new roster version.
    fn set_roster_item(&self, username: &str, entry: &RosterEntry) -> Result<u64>;

    /// Removes an item; the new roster version, or `None` if there was no such item (the
    /// version is then unchanged).
    fn remove_roster_item(&self, username: &str, jid: &str) -> Result<Option<u64>>;

    /// RFC 6121 3.1.3: an inbound subscription request is stored (with the stanza, to be
    /// redelivered at each login) until the user answers it, even if the contact is not
    /// in the roster. Replaces an earlier request from the same JID.
    fn add_pending_in(&self, username: &str, from: &str, stanza: &[u8]) -> Result<()>;

    /// As [`RosterStore::add_pending_in`], unless the user already has `max` pending
    /// requests and none from `from` (a repeated request replaces its earlier one and
    /// is always stored): then nothing is stored and `false` returned. Checked and
    /// written in one transaction.
    fn add_pending_in_capped(
        &self,
        username: &str,
        from: &str,
        stanza: &[u8],
        max: usize,
    ) -> Result<bool>;

    /// `false` if there was no request from that JID.
    fn remove_pending_in(&self, username: &str, from: &str) -> Result<bool>;

    /// Every pending request as `(from, stanza)`, sorted bytewise by `from`.
    fn pending_in(&self, username: &str) -> Result<Vec<(String, Vec<u8>)>>;

    /// Removes `jid` (a removed account's bare JID) from every account's roster, and
    /// every pending request from it, in one transaction. Returns the accounts whose
    /// roster changed with their new roster versions, sorted by username.
    fn remove_contact_everywhere(&self, jid: &str) -> Result<Vec<(String, u64)>>;
}
