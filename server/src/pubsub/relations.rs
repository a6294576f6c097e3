//! Roster facts for pubsub access models (`presence` and `roster`), read from the store.
//!
//! Called synchronously from inside a pubsub operation, which already runs on the
//! blocking pool, so the store is queried directly.

use std::sync::Arc;

use hydrant_proto::BareJid;
use hydrant_storage::{Store, SubState};

pub struct StoreRelations {
    pub store: Arc<dyn Store>,
    pub domain: String,
    pub admins: Arc<[String]>,
}

impl StoreRelations {
    /// The local owner's roster entry for `who`, if the owner is a local account.
    fn entry(&self, owner: &BareJid, who: &BareJid) -> Option<hydrant_storage::RosterEntry> {
        if owner.domain().as_str() != self.domain {
            return None;
        }
        let user = owner.node()?.as_str();
        self.store.roster_item(user, who.as_str()).ok().flatten()
    }
}

impl hydrant_pubsub::Relations for StoreRelations {
    /// XEP-0060 4.5 `presence` access: `who` is subscribed to the owner's presence, i.e.
    /// the owner's roster item for `who` has subscription `from` or `both`.
    fn has_presence_subscription(&self, owner: &BareJid, who: &BareJid) -> bool {
        owner == who
            || self
                .entry(owner, who)
                .is_some_and(|e| matches!(e.subscription, SubState::From | SubState::Both))
    }

    fn roster_groups(&self, owner: &BareJid, who: &BareJid) -> Vec<String> {
        self.entry(owner, who).map(|e| e.groups).unwrap_or_default()
    }

    fn is_admin(&self, who: &BareJid) -> bool {
        self.admins.iter().any(|a| a == who.as_str())
    }
}
