//! Subscription options (XEP-0060 6.3) and default subscription options (6.4).

use hydrant_proto::Jid;

use crate::effect::Effect;
use crate::error::Error;
use crate::request::{OptionsForm, Reply};
use crate::service::unsubscribe::own_subscription;
use crate::service::{Ctx, Service};
use crate::store::{Store, SubChange};
use crate::types::{NodeName, SubId, SubState};
use crate::xep0060::forms;

impl<S: Store> Service<S> {
    pub(crate) fn get_options(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        jid: &Jid,
        subid: Option<&SubId>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        let sub = own_subscription(node, ctx, jid, subid)?;
        Ok((
            Reply::Options {
                node: name.clone(),
                jid: sub.jid.clone(),
                subid: sub.subid.clone(),
                options: sub.options.clone(),
            },
            Vec::new(),
        ))
    }

    /// Applies an options form; an `unconfigured` subscription becomes `subscribed`.
    pub(crate) fn set_options(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        jid: &Jid,
        subid: Option<&SubId>,
        form: &OptionsForm,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        let mut sub = own_subscription(node, ctx, jid, subid)?.clone();
        forms::apply_options(&mut sub.options, form)?;
        if sub.state == SubState::Unconfigured {
            sub.state = SubState::Subscribed;
        }
        self.store
            .update_subscriptions(name, &[SubChange::Put(sub.clone())])?;
        let node = self.node_mut(name);
        node.put_sub(sub);
        Ok((Reply::Empty, Vec::new()))
    }

    pub(crate) fn default_options(
        &self,
        node: Option<NodeName>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        if let Some(n) = &node {
            self.node(n)?;
        }
        Ok((Reply::DefaultOptions { node }, Vec::new()))
    }
}
