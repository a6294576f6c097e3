//! Publish an item (XEP-0060 7.1), with publish-options preconditions (7.1.5) and PEP
//! auto-create (XEP-0163 4.3).

use std::sync::Arc;

use crate::access::Action;
use crate::config::NodeConfig;
use crate::effect::{Effect, Event};
use crate::error::Error;
use crate::request::{Preconditions, PublishItem, Reply};
use crate::service::{Ctx, Service};
use crate::store::Store;
use crate::types::{Item, ItemId, NodeName};
use crate::xep0060::forms;

/// A checked payload: the element, and its serialisation (made once, for its size, and
/// kept for the store).
pub(super) struct Payload {
    element: hydrant_proto::Element,
    xml: Arc<[u8]>,
}

impl<S: Store> Service<S> {
    pub(crate) fn publish(
        &mut self,
        ctx: &Ctx<'_>,
        name: NodeName,
        item: Option<PublishItem>,
        options: Option<Preconditions>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        // 1. The node, or the configuration an auto-created node would get.
        let create_with = match self.nodes.get(&name) {
            Some(node) => {
                self.check_ctx(node, ctx, Action::Publish)?;
                if let Some(pre) = &options {
                    forms::check_preconditions(&node.config, pre, self.cfg.max_items_cap)?;
                }
                None
            }
            None if self.cfg.pep => {
                self.may_create(ctx)?;
                let mut config = self.cfg.default_node.clone();
                if let Some(pre) = &options {
                    forms::check_precondition_fields(pre)?;
                    forms::apply_config(
                        &mut config,
                        pre,
                        self.cfg.max_items_cap,
                        self.cfg.max_config_text_bytes,
                    )
                    .map_err(|e| match e {
                        Error::InvalidConfig { field } => Error::PreconditionNotMet { field },
                        other => other,
                    })?;
                }
                Some(config)
            }
            None => return Err(Error::NodeNotFound),
        };
        let config = match &create_with {
            Some(c) => c,
            None => &self.node(&name)?.config,
        };

        // 2. The item against the node's event type (XEP-0060 7.1.3.6) and payload rules.
        let mut item = item;
        let payload = self.validate_item(config, item.as_mut())?;
        let keep = config.keep_items(self.cfg.max_items_cap);
        let (deliver, payloads) = (config.deliver_notifications, config.deliver_payloads);

        // 3. Commit: create (auto-create) then store the item. If storing fails after an
        // auto-create, the new node is removed again so nothing stays half-applied.
        let (published, evicted) = if let Some(config) = create_with {
            self.insert_node(ctx, name.clone(), config)?;
            match self.publish_commit(ctx, &name, item, payload, keep) {
                Ok(p) => p,
                Err(e) => {
                    if self.store.delete_node(&name).is_ok() {
                        self.remove_node(&name);
                    }
                    return Err(e);
                }
            }
        } else {
            self.publish_commit(ctx, &name, item, payload, keep)?
        };
        let id = published.as_ref().map(|i| i.id.clone());

        let node = self.node(&name)?;
        let mut effects = Vec::new();
        if deliver {
            let items = published.into_iter().collect();
            effects.extend(super::notify(
                node,
                Event::Items { items, payloads },
                self.cfg.pep,
            ));
        }
        effects.extend(evicted_retracts(
            node,
            evicted,
            self.cfg.max_items_cap,
            self.cfg.pep,
        ));
        Ok((Reply::Published { node: name, id }, effects))
    }

    /// Checks the item; returns its single payload, if any.
    pub(super) fn validate_item(
        &self,
        config: &NodeConfig,
        item: Option<&mut PublishItem>,
    ) -> Result<Option<Payload>, Error> {
        let Some(item) = item else {
            if config.persist_items {
                return Err(Error::ItemRequired);
            }
            if config.deliver_payloads {
                return Err(Error::PayloadRequired);
            }
            return Ok(None);
        };
        if !config.persist_items && !config.deliver_payloads {
            return Err(Error::ItemForbidden);
        }
        if item.payload.len() > 1 {
            return Err(Error::InvalidPayload);
        }
        let xml = match item.payload.first() {
            None if config.deliver_payloads => return Err(Error::PayloadRequired),
            None => return Ok(None),
            Some(p) => {
                if config.payload_type.as_ref().is_some_and(|ns| p.ns() != ns) {
                    return Err(Error::InvalidPayload);
                }
                // Serialised once: for its size here, and for the store to write.
                let xml = p.to_bytes("");
                if xml.len() > self.cfg.max_payload_bytes {
                    return Err(Error::PayloadTooBig {
                        size: xml.len(),
                        limit: self.cfg.max_payload_bytes,
                    });
                }
                xml
            }
        };
        // Moved out, not copied: the request is consumed by the publish.
        let element = item.payload.pop().expect("checked above");
        Ok(Some(Payload {
            element,
            xml: Arc::from(xml),
        }))
    }

    fn publish_commit(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        item: Option<PublishItem>,
        payload: Option<Payload>,
        keep: u32,
    ) -> Result<(Option<Arc<Item>>, Vec<ItemId>), Error> {
        let Some(item) = item else {
            // Transient notification-only: nothing is stored, the event has no item.
            return Ok((None, Vec::new()));
        };
        let item = self.new_item(ctx, name, item, payload)?;
        let evicted = self.store.put_item(name, &item, keep)?;
        self.node_mut(name).last_seq = item.seq;
        Ok((Some(item), evicted))
    }

    /// The item to store: its id (given, or a fresh one) and the node's next seq.
    pub(super) fn new_item(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        item: PublishItem,
        payload: Option<Payload>,
    ) -> Result<Arc<Item>, Error> {
        let id = match item.id {
            Some(id) => id,
            None => ItemId::new(self.new_id(ctx.now_ms)),
        };
        let seq = self.node(name)?.last_seq + 1;
        let (payload, payload_xml) = match payload {
            Some(p) => (Some(p.element), Some(p.xml)),
            None => (None, None),
        };
        Ok(Arc::new(Item {
            id,
            publisher: ctx.from.clone(),
            payload,
            published_ms: ctx.now_ms,
            seq,
            payload_xml,
        }))
    }
}

/// Retract notifications for the items a publish pushed out of the node's history
/// (`max_items`), when the node notifies retractions (XEP-0060 7.2.2.1 and the
/// `pubsub#notify_retract` option): to a subscriber an evicted item is gone like a
/// retracted one, and a client mirroring the node's items must learn it.
///
/// Not for a node that keeps one item (what XEP-0060's implementation notes call a
/// singleton node, and every PEP node by default): there the new item replaces the old
/// one by definition, and a retract of the old id would reach every contact at every
/// tune, location or avatar change for nothing (or be read as "avatar removed").
pub(super) fn evicted_retracts(
    node: &crate::service::NodeState,
    evicted: Vec<ItemId>,
    cap: u32,
    pep: bool,
) -> Option<Effect> {
    if evicted.is_empty()
        || !node.config.notify_retract
        || !node.config.deliver_notifications
        || node.config.keep_items(cap) <= 1
    {
        return None;
    }
    super::notify(node, Event::Retract { ids: evicted }, pep)
}
