//! Create a node (XEP-0060 8.1), with default configuration, as an instant node, or
//! created and configured at once; and PEP auto-create (XEP-0163 / XEP-0060 7.1.4).

use std::collections::BTreeMap;

use crate::config::{CreatePolicy, NodeConfig};
use crate::effect::Effect;
use crate::error::Error;
use crate::request::{ConfigForm, Reply};
use crate::service::{Ctx, NodeState, Service};
use crate::store::Store;
use crate::types::{Affiliation, NodeName};
use crate::xep0060::forms;

impl<S: Store> Service<S> {
    pub(crate) fn create(
        &mut self,
        ctx: &Ctx<'_>,
        node: Option<NodeName>,
        form: Option<ConfigForm>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        self.may_create(ctx)?;
        if node.as_ref().is_some_and(|n| self.nodes.contains_key(n)) {
            return Err(Error::NodeExists);
        }
        let mut config = self.cfg.default_node.clone();
        if let Some(f) = &form {
            forms::apply_config(
                &mut config,
                f,
                self.cfg.max_items_cap,
                self.cfg.max_config_text_bytes,
            )?;
        }
        let name = match node {
            Some(n) => n,
            None => NodeName::new(self.new_id(ctx.now_ms)),
        };
        self.insert_node(ctx, name.clone(), config)?;
        Ok((Reply::Created { node: name }, Vec::new()))
    }

    /// Who may create: admins always; on PEP only the account; else the create policy.
    pub(crate) fn may_create(&self, ctx: &Ctx<'_>) -> Result<(), Error> {
        if ctx.admin {
            return Ok(());
        }
        if self.cfg.pep {
            return if ctx.actor == self.address.to_bare() {
                Ok(())
            } else {
                Err(Error::Forbidden)
            };
        }
        match &self.cfg.create_policy {
            CreatePolicy::Anyone => Ok(()),
            CreatePolicy::LocalUsers(domain) if ctx.actor.domain().as_str() == domain => Ok(()),
            CreatePolicy::LocalUsers(_) | CreatePolicy::Nobody => Err(Error::Forbidden),
        }
    }

    /// Persists a new node owned by the requester (on PEP: the account), then adds it
    /// to memory. Refused with [`Error::TooManyNodes`] when the requester (not an admin)
    /// already created [`crate::ServiceConfig::max_nodes_per_creator`] nodes here.
    pub(crate) fn insert_node(
        &mut self,
        ctx: &Ctx<'_>,
        name: NodeName,
        config: NodeConfig,
    ) -> Result<(), Error> {
        let limit = self.cfg.max_nodes_per_creator;
        if !ctx.admin && self.created_by.get(&ctx.actor).copied().unwrap_or(0) >= limit {
            return Err(Error::TooManyNodes { limit });
        }
        let owner = if self.cfg.pep {
            self.address.to_bare()
        } else {
            ctx.actor.clone()
        };
        let mut affiliations = BTreeMap::new();
        affiliations.insert(owner, Affiliation::Owner);
        let node = NodeState::new(
            name.clone(),
            config,
            affiliations,
            ctx.from.clone(),
            ctx.now_ms,
        );
        self.store.create_node(&node.to_record())?;
        *self.created_by.entry(ctx.actor.clone()).or_default() += 1;
        self.nodes.insert(name.clone(), node);
        self.index_node(&name);
        Ok(())
    }
}
