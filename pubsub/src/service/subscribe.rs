//! Subscribe to a node (XEP-0060 6.1), including approval-required subscriptions
//! (6.1.4, access model `authorize`), multiple subscriptions (6.1.6) and the last
//! published item on subscription (6.1.7).

use crate::access::Action;
use crate::config::{AccessModel, SendLastPublished};
use crate::effect::Effect;
use crate::error::Error;
use crate::request::{OptionsForm, Reply};
use crate::service::{Ctx, Service};
use crate::store::{Store, SubChange};
use crate::types::{Affiliation, NodeName, SubId, SubOptions, SubState, Subscription};
use crate::xep0060::forms;
use hydrant_proto::Jid;

/// What a subscribe request comes to before anything is written.
pub(crate) enum Subscribing {
    /// Already subscribed with these options: the existing subscription, nothing to do.
    Existing(Reply),
    /// A new subscription to store.
    New(Subscription),
}

impl<S: Store> Service<S> {
    /// The checks of XEP-0060 6.1.3 and the new subscription, without writing it.
    pub(crate) fn subscribe_prepare(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        jid: Jid,
        form: Option<OptionsForm>,
    ) -> Result<Subscribing, Error> {
        // The subscribed JID must be the sender's (bare JID compared, 6.1.3.1).
        if jid.to_bare() != ctx.actor && !ctx.admin {
            return Err(Error::InvalidJid);
        }
        let node = self.node(name)?;
        if !node.config.subscribe {
            return Err(Error::Unsupported {
                feature: "subscribe",
            });
        }
        let mut options = SubOptions::default();
        if let Some(f) = &form {
            forms::apply_options(&mut options, f)?;
        }

        // Access: an authorize node turns a stranger's request into a pending
        // subscription instead of a denial.
        let explicit = self.explicit_affiliation(node, &ctx.actor);
        let state = match self.check_ctx(node, ctx, Action::Subscribe) {
            Ok(_) => SubState::Subscribed,
            Err(Error::NotSubscribed)
                if node.config.access_model == AccessModel::Authorize
                    && explicit == Affiliation::None =>
            {
                SubState::Pending
            }
            Err(e) => return Err(e),
        };

        let existing: Vec<&Subscription> = node.subs_of(&jid).collect();
        // Re-subscribing without new options returns the existing subscription, so
        // clients that subscribe at every login do not pile up subscriptions.
        if let Some(same) = existing
            .iter()
            .find(|s| s.state == SubState::Subscribed && (form.is_none() || s.options == options))
        {
            let sub = (*same).clone();
            return Ok(Subscribing::Existing(Reply::Subscription {
                node: name.clone(),
                sub,
            }));
        }
        // Counted per account, every resource together: per full JID one account could
        // add subscriptions without end by varying the resource (XEP-0060 6.1.3.9 lets
        // the service match on the bare JID).
        let account = jid.to_bare();
        let held = node.subs_of_bare(&account).count();
        if held >= self.cfg.max_subscriptions_per_jid {
            return Err(Error::TooManySubscriptions);
        }
        let sub = Subscription {
            jid,
            subid: SubId::new(self.new_id(ctx.now_ms)),
            state,
            options,
        };
        Ok(Subscribing::New(sub))
    }

    pub(crate) fn subscribe(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        jid: Jid,
        form: Option<OptionsForm>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let sub = match self.subscribe_prepare(ctx, name, jid, form)? {
            Subscribing::Existing(reply) => return Ok((reply, Vec::new())),
            Subscribing::New(sub) => sub,
        };
        self.store
            .update_subscriptions(name, &[SubChange::Put(sub.clone())])?;
        self.node_mut(name).put_sub(sub.clone());
        self.subscribed(name, sub)
    }

    /// After the subscription is stored and in the node: the reply, and the approval
    /// request or the last item (6.1.7).
    pub(crate) fn subscribed(
        &self,
        name: &NodeName,
        sub: Subscription,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let mut effects = Vec::new();
        let node = self.node(name)?;
        match sub.state {
            SubState::Pending => effects.push(Effect::ApprovalRequest {
                to: node.owners().into_iter().map(Jid::from).collect(),
                node: name.clone(),
                subscriber: sub.jid.clone(),
                subid: sub.subid.clone(),
            }),
            SubState::Subscribed => {
                if node.config.send_last_published_item != SendLastPublished::Never {
                    let shim = (node.subs_of(&sub.jid).count() > 1).then(|| sub.subid.clone());
                    effects.extend(self.send_last_effect(node, &sub.jid, shim)?);
                }
            }
            SubState::Unconfigured => {}
        }
        Ok((
            Reply::Subscription {
                node: name.clone(),
                sub,
            },
            effects,
        ))
    }
}
