//! Revalidation (XEP-0060 4.5, 6.1.3; XEP-0163 "Presence access"): subscriptions the
//! node's current access model no longer admits are removed, and their holders told
//! (a subscription-state notification with state `none`, as in 8.8.4).
//!
//! Two things make a subscription go stale: the owner tightens the access model (or
//! changes `roster_groups_allowed`), which [`Service::set_config`] handles, and the
//! owner's relation with the subscriber ends (roster item removed, presence
//! subscription cancelled, groups changed), which the server reports by calling
//! [`Service::revalidate`] for that contact.

use hydrant_proto::BareJid;

use crate::config::AccessModel;
use crate::effect::Effect;
use crate::error::Error;
use crate::relations::Relations;
use crate::service::{NodeState, Service, subscriptions::subscription_event};
use crate::store::{Store, SubChange};
use crate::types::{Affiliation, NodeName, Subscription};

impl<S: Store> Service<S> {
    /// Removes every subscription (of `who`'s bare JID, or of everyone when `None`)
    /// that its node's access model no longer admits, and returns the notifications
    /// telling each removed subscription's JID (state `none`).
    ///
    /// Entities with an explicit affiliation (owners, publishers, members...) and
    /// admins keep theirs; outcasts are left alone (they already receive nothing);
    /// on `authorize` nodes every subscription stays (an approved one is what admits
    /// its holder, a pending one awaits the owner).
    ///
    /// Each node is changed in one store write. On a store error the failing node and
    /// the nodes after it are unchanged, the nodes before it stay revalidated (their
    /// holders are not told); calling again finishes the job.
    pub fn revalidate(
        &mut self,
        who: Option<&BareJid>,
        rel: &dyn Relations,
    ) -> Result<Vec<Effect>, Error> {
        let names: Vec<NodeName> = self
            .nodes
            .values()
            .filter(|n| !self.stale(n, who, rel).is_empty())
            .map(|n| n.name.clone())
            .collect();
        let mut effects = Vec::new();
        for name in names {
            effects.extend(self.revalidate_node(&name, who, rel)?);
        }
        Ok(effects)
    }

    /// `owner`'s relation with `who` ended or narrowed (roster item removed, presence
    /// subscription cancelled, groups changed): revalidates `who`'s subscriptions on
    /// the nodes whose access depends on that relation, the `presence` and `roster`
    /// nodes `owner` owns (on PEP: the account's). Other nodes (an open firehose node
    /// with its many subscribers) are not looked at, so a roster change costs the
    /// owner's access-controlled nodes, not every subscription of the service.
    pub fn revalidate_relation(
        &mut self,
        owner: &BareJid,
        who: &BareJid,
        rel: &dyn Relations,
    ) -> Result<Vec<Effect>, Error> {
        let names: Vec<NodeName> = self
            .nodes
            .values()
            .filter(|n| {
                matches!(
                    n.config.access_model,
                    AccessModel::Presence | AccessModel::Roster
                ) && self.explicit_affiliation(n, owner) == Affiliation::Owner
            })
            .map(|n| n.name.clone())
            .collect();
        let mut effects = Vec::new();
        for name in names {
            effects.extend(self.revalidate_node(&name, Some(who), rel)?);
        }
        Ok(effects)
    }

    /// Revalidates one node (one store write, nothing changed on error).
    pub(crate) fn revalidate_node(
        &mut self,
        name: &NodeName,
        who: Option<&BareJid>,
        rel: &dyn Relations,
    ) -> Result<Vec<Effect>, Error> {
        let node = self.node(name)?;
        let stale = self.stale(node, who, rel);
        if stale.is_empty() {
            return Ok(Vec::new());
        }
        let ops: Vec<SubChange> = stale
            .iter()
            .map(|s| SubChange::Remove(s.subid.clone()))
            .collect();
        self.store.update_subscriptions(name, &ops)?;
        let node = self.node_mut(name);
        for s in &stale {
            node.remove_sub(&s.jid, &s.subid);
        }
        let node = self.node(name)?;
        Ok(stale
            .into_iter()
            .filter_map(|s| subscription_event(node, s.jid, Some(s.subid), None))
            .collect())
    }

    /// The subscriptions of `node` (of `who`, or all) its access model refuses.
    fn stale(
        &self,
        node: &NodeState,
        who: Option<&BareJid>,
        rel: &dyn Relations,
    ) -> Vec<Subscription> {
        if node.config.access_model == AccessModel::Authorize {
            return Vec::new();
        }
        let owners = node.owners();
        let mut verdicts: Vec<(BareJid, bool)> = Vec::new();
        let mut out = Vec::new();
        let subs: Box<dyn Iterator<Item = &Subscription>> = match who {
            Some(w) => Box::new(node.subs_of_bare(w)),
            None => Box::new(node.subs.iter()),
        };
        for s in subs {
            let actor = s.jid.to_bare();
            let refused = if let Some((_, r)) = verdicts.iter().find(|(j, _)| *j == actor) {
                *r
            } else {
                let r = self.refuses(node, &actor, &owners, rel);
                verdicts.push((actor, r));
                r
            };
            if refused {
                out.push(s.clone());
            }
        }
        out
    }

    /// Whether the access model refuses `actor` a subscription it holds.
    fn refuses(
        &self,
        node: &NodeState,
        actor: &BareJid,
        owners: &[BareJid],
        rel: &dyn Relations,
    ) -> bool {
        let st = self.standing(node, actor, owners);
        st.explicit == Affiliation::None
            && !rel.is_admin(actor)
            && crate::access::effective_affiliation(&st, actor, rel) == Affiliation::None
    }
}
