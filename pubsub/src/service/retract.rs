//! Delete (retract) items from a node (XEP-0060 7.2), with notification.

use crate::access::{self, Action};
use crate::effect::{Effect, Event};
use crate::error::Error;
use crate::request::Reply;
use crate::service::items::distinct_ids;
use crate::service::{Ctx, Service, same_bare};
use crate::store::Store;
use crate::types::{ItemId, NodeName};

impl<S: Store> Service<S> {
    /// Retracts every listed item, or none: all must exist and be retractable by the
    /// actor. `notify` (the request's attribute) overrides the node's `notify_retract`.
    pub(crate) fn retract(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        ids: Vec<ItemId>,
        notify: Option<bool>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        let aff = self.check_ctx(node, ctx, Action::RetractOwn)?;
        if !node.config.persist_items {
            return Err(Error::Unsupported {
                feature: "persistent-items",
            });
        }
        if ids.is_empty() {
            return Err(Error::ItemRequired);
        }
        // Each id once, at most a page of them, judged by metadata (no payload read).
        let ids = distinct_ids(&ids, self.cfg.max_page_items)?;
        let metas = self.store.item_meta(name, &ids)?;
        if metas.len() < ids.len() {
            return Err(Error::ItemNotFound);
        }
        for m in &metas {
            if !same_bare(&m.publisher, &ctx.actor) && !access::may(aff, Action::RetractAny) {
                return Err(Error::Forbidden);
            }
        }
        self.store.delete_items(name, &ids)?;
        let node = self.node(name)?;
        let mut effects = Vec::new();
        if notify.unwrap_or(node.config.notify_retract) && node.config.deliver_notifications {
            effects.extend(super::notify(node, Event::Retract { ids }, self.cfg.pep));
        }
        Ok((Reply::Empty, effects))
    }
}
