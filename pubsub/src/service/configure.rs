//! Configure a node (XEP-0060 8.2) and the default configuration (8.3).

use crate::access::Action;
use crate::effect::{Effect, Event};
use crate::error::Error;
use crate::request::{ConfigForm, Reply};
use crate::service::{Ctx, Service};
use crate::store::Store;
use crate::types::NodeName;
use crate::xep0060::forms;

impl<S: Store> Service<S> {
    pub(crate) fn get_config(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::Configure)?;
        Ok((
            Reply::Config {
                node: name.clone(),
                config: node.config.clone(),
            },
            Vec::new(),
        ))
    }

    /// Applies a submitted form. Every field is validated before anything is stored;
    /// lowering `max_items` trims the oldest items in the same store call (no
    /// retraction notifications are sent for them).
    ///
    /// A change of `access_model` or `roster_groups_allowed` then revalidates the
    /// node's subscriptions ([`Service::revalidate`]): those the new model refuses are
    /// removed (a second store write) and their holders told. If that write fails, the
    /// configuration is put back and the request fails (items a lowered `max_items`
    /// trimmed stay trimmed).
    pub(crate) fn set_config(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        form: Option<ConfigForm>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::Configure)?;
        let Some(form) = form else {
            // A cancelled form changes nothing (XEP-0060 8.2.4).
            return Ok((Reply::Empty, Vec::new()));
        };
        let old = node.config.clone();
        let mut config = old.clone();
        forms::apply_config(
            &mut config,
            &form,
            self.cfg.max_items_cap,
            self.cfg.max_config_text_bytes,
        )?;
        let keep = config.keep_items(self.cfg.max_items_cap);
        let access_changed = config.access_model != old.access_model
            || config.roster_groups_allowed != old.roster_groups_allowed;
        self.store.set_config(name, &config, keep)?;
        self.node_mut(name).config = config;
        self.index_node(name);
        let mut effects = Vec::new();
        if access_changed {
            match self.revalidate_node(name, None, ctx.rel) {
                Ok(e) => effects = e,
                Err(e) => {
                    // Put the old configuration back, so the request changed nothing
                    // (if even that fails, memory follows the store: new config).
                    let keep_old = old.keep_items(self.cfg.max_items_cap);
                    if self.store.set_config(name, &old, keep_old).is_ok() {
                        self.node_mut(name).config = old;
                        self.index_node(name);
                    }
                    return Err(e);
                }
            }
        }
        let pep = self.cfg.pep;
        let node = self.node(name)?;
        if node.config.notify_config && node.config.deliver_notifications {
            let form = node
                .config
                .deliver_payloads
                .then(|| Box::new(node.config.clone()));
            effects.extend(super::notify(node, Event::Configuration { form }, pep));
        }
        Ok((Reply::Empty, effects))
    }
}
