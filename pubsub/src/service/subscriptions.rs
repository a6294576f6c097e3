//! Subscription lists: the requester's own (XEP-0060 5.6) and the owner's management
//! of a node's subscriptions (8.8).

use std::collections::BTreeMap;
use std::sync::Arc;

use hydrant_proto::BareJid;

use crate::access::Action;
use crate::effect::{Effect, Event};
use crate::error::Error;
use crate::request::{Reply, SubscriptionChange};
use crate::service::{Ctx, NodeState, Service};
use crate::store::{Store, SubChange};
use crate::types::{NodeName, SubId, SubOptions, Subscriber, Subscribers, Subscription};

impl<S: Store> Service<S> {
    pub(crate) fn own_subscriptions(
        &mut self,
        ctx: &Ctx<'_>,
        node: Option<NodeName>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let nodes: Vec<&NodeState> = match &node {
            Some(n) => vec![self.node(n)?],
            None => self.nodes.values().collect(),
        };
        let subs = nodes
            .into_iter()
            .flat_map(|n| {
                n.subs_of_bare(&ctx.actor)
                    .map(|s| (n.name.clone(), s.clone()))
            })
            .collect();
        Ok((Reply::Subscriptions { node, subs }, Vec::new()))
    }

    pub(crate) fn owner_subscriptions(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::ManageSubscriptions)?;
        Ok((
            Reply::OwnerSubscriptions {
                node: name.clone(),
                subs: node.subs.iter().cloned().collect(),
            },
            Vec::new(),
        ))
    }

    /// Applies every change or none (XEP-0060 8.8.2.4: an invalid entry fails the
    /// request with `not-acceptable`). A change naming a SubID acts on that
    /// subscription; one without acts on all of the JID's subscriptions, or (for a
    /// state other than none) creates one. Each affected subscriber is told its new
    /// state (8.8.4).
    pub(crate) fn modify_subscriptions(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        changes: Vec<SubscriptionChange>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::ManageSubscriptions)?;
        // The accounts the changes touch, copied and changed here, stored only when
        // every change is valid: the work follows the request, not the node's size.
        let mut touched: BTreeMap<BareJid, Vec<Subscription>> = BTreeMap::new();
        let mut ops = Vec::new();
        let mut told = Vec::new();
        for c in &changes {
            let bare = c.jid.to_bare();
            if !touched.contains_key(&bare) {
                let now = self.node(name)?.subs.of_bare(&bare).to_vec();
                touched.insert(bare.clone(), now);
            }
            let next = touched.get_mut(&bare).expect("inserted above");
            let targets: Vec<usize> = next
                .iter()
                .enumerate()
                .filter(|(_, s)| s.jid == c.jid && c.subid.as_ref().is_none_or(|id| *id == s.subid))
                .map(|(i, _)| i)
                .collect();
            if targets.is_empty() && (c.subid.is_some() || c.state.is_none()) {
                return Err(Error::NotAcceptable("no such subscription"));
            }
            match c.state {
                None => {
                    for &i in targets.iter().rev() {
                        let s = next.remove(i);
                        told.push((s.jid.clone(), Some(s.subid.clone()), None));
                        ops.push(SubChange::Remove(s.subid));
                    }
                }
                Some(state) if targets.is_empty() => {
                    let s = Subscription {
                        jid: c.jid.clone(),
                        subid: SubId::new(self.new_id(ctx.now_ms)),
                        state,
                        options: SubOptions::default(),
                    };
                    told.push((s.jid.clone(), Some(s.subid.clone()), Some(state)));
                    ops.push(SubChange::Put(s.clone()));
                    next.push(s);
                }
                Some(state) => {
                    for &i in &targets {
                        next[i].state = state;
                        told.push((
                            next[i].jid.clone(),
                            Some(next[i].subid.clone()),
                            Some(state),
                        ));
                        ops.push(SubChange::Put(next[i].clone()));
                    }
                }
            }
        }
        self.store.update_subscriptions(name, &ops)?;
        let node = self.node_mut(name);
        for (bare, subs) in touched {
            let out = node.is_outcast(&bare);
            node.subs.replace_account(&bare, subs, out);
        }
        let node = self.node(name)?;
        let effects = told
            .into_iter()
            .filter_map(|(jid, subid, state)| subscription_event(node, jid, subid, state))
            .collect();
        Ok((Reply::Empty, effects))
    }
}

/// A subscription-state notification to the one subscriber concerned.
pub(crate) fn subscription_event(
    node: &NodeState,
    jid: hydrant_proto::Jid,
    subid: Option<SubId>,
    state: Option<crate::types::SubState>,
) -> Option<Effect> {
    let to: Subscribers = Arc::from(vec![Arc::new(Subscriber {
        jid: jid.clone(),
        subids: Vec::new(),
        show_values: Vec::new(),
        urgent: false,
    })]);
    let mut effect = super::notify_to(node, Event::Subscription { jid, subid, state }, to, false)?;
    // State changes reach the subscriber whatever the node's presence-based setting.
    if let Effect::Notify(n) = &mut effect {
        n.presence_based = false;
    }
    Some(effect)
}
