//! Roster and presence facts the access models need, injected by the server.

use std::collections::{BTreeMap, BTreeSet};

use hydrant_proto::BareJid;

/// What the server knows about relations between accounts. Called synchronously from
/// inside a request, so implementations answer from memory (the server's roster cache).
pub trait Relations {
    /// Access model `presence`: is `who` subscribed to `owner`'s presence, i.e. does
    /// `owner`'s roster hold `who` with subscription `from` or `both`? An owner is
    /// always admitted on its own node without asking.
    fn has_presence_subscription(&self, owner: &BareJid, who: &BareJid) -> bool;
    /// Access model `roster`: the groups of `owner`'s roster item for `who` (empty if
    /// `who` is not in the roster).
    fn roster_groups(&self, owner: &BareJid, who: &BareJid) -> Vec<String>;
    /// A service-wide administrator: may create nodes whatever the create policy, and
    /// act as owner of every node.
    fn is_admin(&self, who: &BareJid) -> bool {
        let _ = who;
        false
    }
}

/// No relations at all: nobody is anybody's contact, nobody is an admin.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoRelations;

impl Relations for NoRelations {
    fn has_presence_subscription(&self, _: &BareJid, _: &BareJid) -> bool {
        false
    }

    fn roster_groups(&self, _: &BareJid, _: &BareJid) -> Vec<String> {
        Vec::new()
    }
}

/// Relations held in maps; for tests and for tools.
#[derive(Clone, Debug, Default)]
pub struct StaticRelations {
    /// (owner, who) pairs where `who` has a presence subscription to `owner`.
    pub presence: BTreeSet<(BareJid, BareJid)>,
    /// (owner, who) -> groups of owner's roster item for who.
    pub groups: BTreeMap<(BareJid, BareJid), Vec<String>>,
    pub admins: BTreeSet<BareJid>,
}

impl Relations for StaticRelations {
    fn has_presence_subscription(&self, owner: &BareJid, who: &BareJid) -> bool {
        self.presence.contains(&(owner.clone(), who.clone()))
    }

    fn roster_groups(&self, owner: &BareJid, who: &BareJid) -> Vec<String> {
        self.groups
            .get(&(owner.clone(), who.clone()))
            .cloned()
            .unwrap_or_default()
    }

    fn is_admin(&self, who: &BareJid) -> bool {
        self.admins.contains(who)
    }
}
