//! Forget an entity whose account was removed (XEP-0077 3.2 on the account's server):
//! nothing of it may outlive the account, or a new account registered under the same
//! name would inherit it (ownership, publish rights, an outcast ban, subscriptions).
//!
//! XEP-0060 has no protocol for this, so the rule is ours, as other servers do it
//! (ejabberd's `remove_user`): a node the entity owned alone is deleted (with the usual
//! delete notification, XEP-0060 8.4.2, to its other subscribers); on every other node
//! its affiliation, whatever it is, and every subscription of its bare or full JIDs
//! are removed. The entity is not told (it is gone).

use hydrant_proto::BareJid;

use crate::effect::{Effect, Event};
use crate::error::Error;
use crate::service::{Service, same_bare};
use crate::store::{Store, SubChange};
use crate::types::{Affiliation, NodeName};

impl<S: Store> Service<S> {
    /// Removes every trace of `who` from this service (see the module doc) and returns
    /// the delete notifications of the nodes it owned alone.
    ///
    /// Each node is changed by its own store writes; on a store error the nodes before
    /// it stay done and the call can be repeated to finish (every step is idempotent).
    pub fn forget(&mut self, who: &BareJid) -> Result<Vec<Effect>, Error> {
        let owned_alone: Vec<NodeName> = self
            .nodes
            .values()
            .filter(|n| {
                n.affiliations.get(who) == Some(&Affiliation::Owner) && n.owners().len() == 1
            })
            .map(|n| n.name.clone())
            .collect();
        let mut effects = Vec::new();
        for name in owned_alone {
            self.store.delete_node(&name)?;
            let node = self.nodes.remove(&name).expect("listed above");
            self.last_on_presence.remove(&name);
            if node.config.notify_delete {
                let others: Vec<_> = node
                    .all_subscribers()
                    .iter()
                    .filter(|s| !same_bare(&s.jid, who))
                    .cloned()
                    .collect();
                effects.extend(super::notify_to(
                    &node,
                    Event::Delete { redirect: None },
                    others.into(),
                    self.cfg.pep,
                ));
            }
        }
        let touched: Vec<NodeName> = self
            .nodes
            .values()
            .filter(|n| n.affiliations.contains_key(who) || !n.subs.of_bare(who).is_empty())
            .map(|n| n.name.clone())
            .collect();
        for name in touched {
            let node = self.node(&name)?;
            if node.affiliations.contains_key(who) {
                self.store
                    .set_affiliations(&name, &[(who.clone(), Affiliation::None)])?;
                self.node_mut(&name).affiliations.remove(who);
            }
            let node = self.node(&name)?;
            let ops: Vec<SubChange> = node
                .subs
                .of_bare(who)
                .iter()
                .map(|s| SubChange::Remove(s.subid.clone()))
                .collect();
            if !ops.is_empty() {
                self.store.update_subscriptions(&name, &ops)?;
            }
            let node = self.node_mut(&name);
            node.subs.remove_account(who);
        }
        Ok(effects)
    }
}
