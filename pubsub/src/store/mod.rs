//! Persistence of one service: the [`Store`] trait, its in-memory implementation
//! ([`MemoryStore`]), and a conformance suite any implementation can run
//! ([`conformance::store_conformance`]).
//!
//! The contract: write-through and atomic per call. The service validates a request
//! completely, then makes at most one mutating call, and changes its in-memory state only
//! after that call returned `Ok`. So a failed call must leave the store as it was, and a
//! successful one must be durable (an acknowledged publish survives a crash, DESIGN.md).
//!
//! Nodes, affiliations and subscriptions are small and loaded whole at
//! [`crate::Service::open`]; items are not: they are read through [`Store::query_items`]
//! and [`Store::get_item`], which is also what MAM (XEP-0313) will use (by seq or time
//! range, with a limit).

pub mod conformance;
mod memory;

use std::sync::Arc;

use hydrant_proto::{BareJid, Jid};

pub use memory::MemoryStore;

use crate::config::NodeConfig;
use crate::error::StoreError;
use crate::types::{Affiliation, Item, ItemId, NodeName, SubId, Subscription};

/// A node as persisted, without its items.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRecord {
    pub name: NodeName,
    pub config: NodeConfig,
    /// Explicit affiliations; `Affiliation::None` is never stored.
    pub affiliations: Vec<(BareJid, Affiliation)>,
    pub subscriptions: Vec<Subscription>,
    pub creator: Jid,
    pub created_ms: u64,
    /// The highest item `seq` ever assigned in this node (kept across purges and
    /// retractions, so seqs are never reused).
    pub last_seq: u64,
}

/// Which items, in which order. All bounds are exclusive; a `None` bound is open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ItemQuery {
    /// Only items with `seq > after_seq`.
    pub after_seq: Option<u64>,
    /// Only items with `seq < before_seq`.
    pub before_seq: Option<u64>,
    /// Only items with `published_ms >= start_ms`.
    pub start_ms: Option<u64>,
    /// Only items with `published_ms <= end_ms`.
    pub end_ms: Option<u64>,
    /// Newest (highest seq) first when true, oldest first otherwise.
    pub newest_first: bool,
    /// Skip this many matching items (in the chosen order) first.
    pub skip: usize,
    /// At most this many items; `None` = all.
    pub limit: Option<usize>,
}

/// One subscription change, applied by [`Store::update_subscriptions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubChange {
    /// Insert, or replace the subscription with the same `subid`.
    Put(Subscription),
    Remove(SubId),
}

/// Persistence of one pubsub service. Every method is atomic (all or nothing).
pub trait Store {
    /// Every node with its configuration, affiliations and subscriptions.
    fn load_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError>;

    /// Creates a node (its record says everything: config, owner affiliation...).
    fn create_node(&mut self, node: &NodeRecord) -> Result<(), StoreError>;

    /// Deletes a node with its items, affiliations and subscriptions.
    fn delete_node(&mut self, node: &NodeName) -> Result<(), StoreError>;

    /// Replaces the configuration, then keeps only the newest `keep_items` items.
    /// Returns the ids of the items removed, oldest first.
    fn set_config(
        &mut self,
        node: &NodeName,
        config: &NodeConfig,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError>;

    /// Applies affiliation changes; `Affiliation::None` removes the entry.
    fn set_affiliations(
        &mut self,
        node: &NodeName,
        changes: &[(BareJid, Affiliation)],
    ) -> Result<(), StoreError>;

    /// Applies subscription changes in order.
    fn update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> Result<(), StoreError>;

    /// Stores an item, replacing any item with the same id, records `item.seq` as the
    /// node's last seq, then keeps only the newest `keep_items` items. Returns the ids
    /// evicted by that trim, oldest first.
    fn put_item(
        &mut self,
        node: &NodeName,
        item: &Arc<Item>,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError>;

    /// Removes these items; all must exist (checked by the caller), ids not found are
    /// ignored.
    fn delete_items(&mut self, node: &NodeName, ids: &[ItemId]) -> Result<(), StoreError>;

    /// Removes every item of the node (its last seq is kept).
    fn purge_items(&mut self, node: &NodeName) -> Result<(), StoreError>;

    fn get_item(&self, node: &NodeName, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError>;

    fn query_items(&self, node: &NodeName, q: &ItemQuery) -> Result<Vec<Arc<Item>>, StoreError>;

    /// How many items match `q`'s bounds (its order, skip and limit are ignored).
    fn count_items(&self, node: &NodeName, q: &ItemQuery) -> Result<u64, StoreError>;
}

/// Boxed stores work too (the server picks one at run time).
impl<S: Store + ?Sized> Store for Box<S> {
    fn load_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        (**self).load_nodes()
    }
    fn create_node(&mut self, node: &NodeRecord) -> Result<(), StoreError> {
        (**self).create_node(node)
    }
    fn delete_node(&mut self, node: &NodeName) -> Result<(), StoreError> {
        (**self).delete_node(node)
    }
    fn set_config(
        &mut self,
        node: &NodeName,
        config: &NodeConfig,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError> {
        (**self).set_config(node, config, keep_items)
    }
    fn set_affiliations(
        &mut self,
        node: &NodeName,
        changes: &[(BareJid, Affiliation)],
    ) -> Result<(), StoreError> {
        (**self).set_affiliations(node, changes)
    }
    fn update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> Result<(), StoreError> {
        (**self).update_subscriptions(node, changes)
    }
    fn put_item(
        &mut self,
        node: &NodeName,
        item: &Arc<Item>,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError> {
        (**self).put_item(node, item, keep_items)
    }
    fn delete_items(&mut self, node: &NodeName, ids: &[ItemId]) -> Result<(), StoreError> {
        (**self).delete_items(node, ids)
    }
    fn purge_items(&mut self, node: &NodeName) -> Result<(), StoreError> {
        (**self).purge_items(node)
    }
    fn get_item(&self, node: &NodeName, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError> {
        (**self).get_item(node, id)
    }
    fn query_items(&self, node: &NodeName, q: &ItemQuery) -> Result<Vec<Arc<Item>>, StoreError> {
        (**self).query_items(node, q)
    }
    fn count_items(&self, node: &NodeName, q: &ItemQuery) -> Result<u64, StoreError> {
        (**self).count_items(node, q)
    }
}
