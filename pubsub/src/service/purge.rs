//! Purge all items of a node (XEP-0060 8.5).

use crate::access::Action;
use crate::effect::{Effect, Event};
use crate::error::Error;
use crate::request::Reply;
use crate::service::{Ctx, Service};
use crate::store::Store;
use crate::types::NodeName;

impl<S: Store> Service<S> {
    pub(crate) fn purge(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::Purge)?;
        if !node.config.persist_items {
            return Err(Error::Unsupported {
                feature: "persistent-items",
            });
        }
        self.store.purge_items(name)?;
        let node = self.node(name)?;
        let mut effects = Vec::new();
        if node.config.deliver_notifications {
            effects.extend(super::notify(node, Event::Purge, self.cfg.pep));
        }
        Ok((Reply::Empty, effects))
    }
}
