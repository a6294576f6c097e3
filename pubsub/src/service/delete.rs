//! Delete a node (XEP-0060 8.4), with optional redirect.

use crate::access::Action;
use crate::effect::{Effect, Event};
use crate::error::Error;
use crate::request::Reply;
use crate::service::{Ctx, Service};
use crate::store::Store;
use crate::types::NodeName;

impl<S: Store> Service<S> {
    pub(crate) fn delete(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        redirect: Option<String>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::DeleteNode)?;
        self.store.delete_node(name)?;
        let node = self.remove_node(name);
        let mut effects = Vec::new();
        if node.config.notify_delete {
            // Every subscriber, pending and unconfigured included (XEP-0060 8.4.2).
            let all = node.all_subscribers();
            effects.extend(super::notify_to(
                &node,
                Event::Delete { redirect },
                all,
                self.cfg.pep,
            ));
        }
        Ok((Reply::Empty, effects))
    }
}
