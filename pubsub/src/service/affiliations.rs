//! Affiliation lists: the requester's own (XEP-0060 5.7) and the owner's management of
//! a node's affiliations (8.9).

use std::collections::BTreeMap;

use hydrant_proto::BareJid;

use crate::access::Action;
use crate::effect::Effect;
use crate::error::Error;
use crate::request::Reply;
use crate::service::{Ctx, Service};
use crate::store::Store;
use crate::types::{Affiliation, NodeName};

impl<S: Store> Service<S> {
    pub(crate) fn own_affiliations(
        &mut self,
        ctx: &Ctx<'_>,
        node: Option<NodeName>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let names: Vec<NodeName> = match &node {
            Some(n) => vec![self.node(n)?.name.clone()],
            None => self.nodes.keys().cloned().collect(),
        };
        let affs = names
            .into_iter()
            .filter_map(|n| {
                let a = self.explicit_affiliation(&self.nodes[&n], &ctx.actor);
                (a != Affiliation::None).then_some((n, a))
            })
            .collect();
        Ok((Reply::Affiliations { node, affs }, Vec::new()))
    }

    pub(crate) fn owner_affiliations(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::ManageAffiliations)?;
        Ok((
            Reply::OwnerAffiliations {
                node: name.clone(),
                affs: node
                    .affiliations
                    .iter()
                    .map(|(j, a)| (j.clone(), *a))
                    .collect(),
            },
            Vec::new(),
        ))
    }

    /// Applies every change or none. A change that would leave the node without an
    /// owner is `not-acceptable` (XEP-0060 8.9.2.4). Outcasts stop receiving
    /// notifications at once (their subscriptions are kept but leave the snapshot).
    pub(crate) fn modify_affiliations(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        changes: Vec<(BareJid, Affiliation)>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::ManageAffiliations)?;
        let mut next: BTreeMap<BareJid, Affiliation> = node.affiliations.clone();
        for (jid, aff) in &changes {
            if *aff == Affiliation::None {
                next.remove(jid);
            } else {
                next.insert(jid.clone(), *aff);
            }
        }
        if !self.cfg.pep && !next.values().any(|a| *a == Affiliation::Owner) {
            return Err(Error::NotAcceptable("a node must keep an owner"));
        }
        self.store.set_affiliations(name, &changes)?;
        let node = self.node_mut(name);
        node.affiliations = next;
        // An account that became, or stopped being, an outcast enters or leaves the
        // fan-out; nobody else's entries change.
        for (jid, _) in &changes {
            let out = node.is_outcast(jid);
            node.subs.refresh(jid, out);
        }
        Ok((Reply::Empty, Vec::new()))
    }
}
