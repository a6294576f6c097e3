//! Unsubscribe from a node (XEP-0060 6.2).

use hydrant_proto::Jid;

use crate::effect::Effect;
use crate::error::Error;
use crate::request::Reply;
use crate::service::{Ctx, NodeState, Service};
use crate::store::{Store, SubChange};
use crate::types::{NodeName, SubId, Subscription};

impl<S: Store> Service<S> {
    pub(crate) fn unsubscribe(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        jid: &Jid,
        subid: Option<&SubId>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        let sub = own_subscription(node, ctx, jid, subid)?;
        let (owner, sub) = (sub.jid.clone(), sub.subid.clone());
        self.store
            .update_subscriptions(name, &[SubChange::Remove(sub.clone())])?;
        let node = self.node_mut(name);
        node.remove_sub(&owner, &sub);
        Ok((Reply::Empty, Vec::new()))
    }
}

/// The one subscription of `jid` a subscriber-side request (unsubscribe, options)
/// designates: the JID must be the sender's (`forbidden`, XEP-0060 6.2.3.3), subscribed
/// (`not-subscribed`), and a SubID must pick one of several (`subid-required`) and be
/// valid (`invalid-subid`).
pub(crate) fn own_subscription<'n>(
    node: &'n NodeState,
    ctx: &Ctx<'_>,
    jid: &Jid,
    subid: Option<&SubId>,
) -> Result<&'n Subscription, Error> {
    if jid.to_bare() != ctx.actor && !ctx.admin {
        return Err(Error::Forbidden);
    }
    let subs: Vec<&Subscription> = node
        .subs_of_bare(&jid.to_bare())
        .filter(|s| &s.jid == jid)
        .collect();
    match (subs.as_slice(), subid) {
        ([], _) => Err(Error::NotSubscribed),
        (subs, Some(id)) => subs
            .iter()
            .find(|s| &s.subid == id)
            .copied()
            .ok_or(Error::InvalidSubId),
        ([one], None) => Ok(one),
        (_, None) => Err(Error::SubIdRequired),
    }
}
