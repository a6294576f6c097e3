//! Approval of pending subscriptions by an owner (XEP-0060 8.6, access model
//! `authorize`). The owner answers the approval form in a `<message/>`; the server
//! parses it with [`crate::xep0060::parse_authorization`] into
//! [`crate::Request::Authorize`].

use hydrant_proto::Jid;

use crate::access::Action;
use crate::config::SendLastPublished;
use crate::effect::Effect;
use crate::error::Error;
use crate::request::Reply;
use crate::service::subscriptions::subscription_event;
use crate::service::{Ctx, Service};
use crate::store::{Store, SubChange};
use crate::types::{NodeName, SubId, SubState};

impl<S: Store> Service<S> {
    pub(crate) fn authorize(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        subscriber: &Jid,
        subid: Option<&SubId>,
        allow: bool,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::ManageSubscriptions)?;
        let mut sub = node
            .subs_of(subscriber)
            .find(|s| s.state == SubState::Pending && subid.is_none_or(|id| *id == s.subid))
            .ok_or(Error::NotAcceptable("no such pending subscription"))?
            .clone();
        let change = if allow {
            sub.state = SubState::Subscribed;
            SubChange::Put(sub.clone())
        } else {
            SubChange::Remove(sub.subid.clone())
        };
        self.store.update_subscriptions(name, &[change])?;
        let node = self.node_mut(name);
        if allow {
            node.put_sub(sub.clone());
        } else {
            node.remove_sub(&sub.jid, &sub.subid);
        }
        let node = self.node(name)?;
        let state = allow.then_some(SubState::Subscribed);
        let mut effects: Vec<Effect> =
            subscription_event(node, sub.jid.clone(), Some(sub.subid.clone()), state)
                .into_iter()
                .collect();
        if allow && node.config.send_last_published_item != SendLastPublished::Never {
            effects.extend(self.send_last_effect(node, &sub.jid, None)?);
        }
        Ok((Reply::Empty, effects))
    }
}
