//! Access control as data: one capability table over affiliations (XEP-0060 4.1,
//! table 1), and the access-model rules that decide a stranger's standing.
//!
//! [`may`] is the table. [`crate::Service`] computes the *effective* affiliation of an
//! actor on a node first (see [`effective_affiliation`]) and then asks the table; the
//! denial reported for a missing capability depends on the access model
//! ([`denial`]), which is how `presence-subscription-required`, `not-in-roster-group`
//! and `closed-node` come out of the same check.

use hydrant_proto::BareJid;

use crate::config::{AccessModel, PublishModel};
use crate::error::Error;
use crate::relations::Relations;
use crate::types::{Affiliation, SubState};

/// Everything an entity can ask to do with a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// See the node in disco#items and read its disco#info / meta-data.
    Discover,
    Subscribe,
    RetrieveItems,
    Publish,
    /// Retract an item the actor itself published.
    RetractOwn,
    /// Retract anybody's item.
    RetractAny,
    Purge,
    Configure,
    DeleteNode,
    /// Read and change the subscription list, approve pending subscriptions.
    ManageSubscriptions,
    /// Read and change the affiliation list.
    ManageAffiliations,
}

/// The capability table (XEP-0060 4.1 table 1).
///
/// `affiliation` is the *effective* one: `None` stands for an entity the node's access
/// model does not admit, and an admitted entity without an explicit affiliation counts as
/// `Member` (open nodes, presence or roster contacts, approved subscribers).
///
/// Where the XEP leaves a choice (its `*` notes) hydrant lets publishers retract and
/// purge any item, and publish-only entities retract only their own.
pub fn may(affiliation: Affiliation, action: Action) -> bool {
    use Action as A;
    use Affiliation as F;
    match (affiliation, action) {
        (F::Owner, _) => true,

        (F::Publisher, A::Discover | A::Subscribe | A::RetrieveItems | A::Publish) => true,
        (F::Publisher, A::RetractOwn | A::RetractAny | A::Purge) => true,
        (F::Publisher, A::Configure | A::DeleteNode) => false,
        (F::Publisher, A::ManageSubscriptions | A::ManageAffiliations) => false,

        (F::PublishOnly, A::Discover | A::Publish | A::RetractOwn) => true,
        (F::PublishOnly, A::Subscribe | A::RetrieveItems | A::RetractAny | A::Purge) => false,
        (F::PublishOnly, A::Configure | A::DeleteNode) => false,
        (F::PublishOnly, A::ManageSubscriptions | A::ManageAffiliations) => false,

        (F::Member, A::Discover | A::Subscribe | A::RetrieveItems) => true,
        (F::Member, A::Publish | A::RetractOwn | A::RetractAny | A::Purge) => false,
        (F::Member, A::Configure | A::DeleteNode) => false,
        (F::Member, A::ManageSubscriptions | A::ManageAffiliations) => false,

        (F::None, A::Discover) => true,
        (F::None, A::Subscribe | A::RetrieveItems) => false,
        (F::None, A::Publish | A::RetractOwn | A::RetractAny | A::Purge) => false,
        (F::None, A::Configure | A::DeleteNode) => false,
        (F::None, A::ManageSubscriptions | A::ManageAffiliations) => false,

        (F::Outcast, _) => false,
    }
}

/// What one node tells the access check about an actor.
pub(crate) struct Standing<'a> {
    pub access_model: AccessModel,
    pub publish_model: PublishModel,
    pub roster_groups_allowed: &'a [String],
    /// The actor's explicit affiliation (`None` if it has none).
    pub explicit: Affiliation,
    /// The best state among the actor's subscriptions (bare-JID match), if any.
    pub subscription: Option<SubState>,
    pub owners: &'a [BareJid],
}

/// The effective affiliation of `actor` (see [`may`]).
pub(crate) fn effective_affiliation(
    st: &Standing<'_>,
    actor: &BareJid,
    rel: &dyn Relations,
) -> Affiliation {
    if st.explicit != Affiliation::None {
        return st.explicit;
    }
    let admitted = match st.access_model {
        AccessModel::Open => true,
        AccessModel::Presence => st
            .owners
            .iter()
            .any(|o| rel.has_presence_subscription(o, actor)),
        AccessModel::Roster => st.owners.iter().any(|o| {
            rel.roster_groups(o, actor)
                .iter()
                .any(|g| st.roster_groups_allowed.contains(g))
        }),
        AccessModel::Whitelist => false,
        AccessModel::Authorize => st.subscription == Some(SubState::Subscribed),
    };
    if admitted {
        Affiliation::Member
    } else {
        Affiliation::None
    }
}

/// Whether the publish model lets `effective` publish beyond the table.
pub(crate) fn publish_model_allows(st: &Standing<'_>, effective: Affiliation) -> bool {
    match st.publish_model {
        PublishModel::Publishers => false,
        PublishModel::Subscribers => {
            effective != Affiliation::Outcast && st.subscription == Some(SubState::Subscribed)
        }
        PublishModel::Open => effective != Affiliation::Outcast,
    }
}

/// The error for a denied action: outcasts are `forbidden`; strangers the access model
/// did not admit get the model's condition for subscribe / retrieve-items
/// (XEP-0060 6.1.3 and 6.5.9); anything else is `forbidden`.
pub(crate) fn denial(st: &Standing<'_>, effective: Affiliation, action: Action) -> Error {
    if effective != Affiliation::None
        || !matches!(action, Action::Subscribe | Action::RetrieveItems)
    {
        return Error::Forbidden;
    }
    match st.access_model {
        AccessModel::Open => Error::Forbidden,
        AccessModel::Presence => Error::PresenceSubscriptionRequired,
        AccessModel::Roster => Error::NotInRosterGroup,
        AccessModel::Whitelist => Error::ClosedNode,
        AccessModel::Authorize => match st.subscription {
            Some(SubState::Pending) if action == Action::Subscribe => Error::PendingSubscription,
            _ if action == Action::RetrieveItems => Error::ItemsRequireSubscription,
            _ => Error::NotSubscribed,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_xep_0060_table_1() {
        use Action as A;
        use Affiliation as F;
        // Subscribe, Retrieve, Publish, Delete own, Purge, Configure, Delete node
        let cols = [
            A::Subscribe,
            A::RetrieveItems,
            A::Publish,
            A::RetractOwn,
            A::Purge,
            A::Configure,
            A::DeleteNode,
        ];
        let rows: [(F, [bool; 7]); 6] = [
            (F::Owner, [true; 7]),
            (F::Publisher, [true, true, true, true, true, false, false]),
            (
                F::PublishOnly,
                [false, false, true, true, false, false, false],
            ),
            (F::Member, [true, true, false, false, false, false, false]),
            // The XEP's "none: subscribe yes" is an admitted stranger, i.e. `Member` here.
            (F::None, [false; 7]),
            (F::Outcast, [false; 7]),
        ];
        for (aff, expect) in rows {
            for (action, want) in cols.iter().zip(expect) {
                assert_eq!(may(aff, *action), want, "{aff:?} {action:?}");
            }
        }
        assert!(!may(F::PublishOnly, A::RetractAny));
        assert!(!may(F::Outcast, A::Discover));
        assert!(may(F::None, A::Discover));
        for aff in F::ALL {
            let owner_only = [A::ManageAffiliations, A::ManageSubscriptions];
            for a in owner_only {
                assert_eq!(may(aff, a), aff == F::Owner);
            }
        }
    }
}
