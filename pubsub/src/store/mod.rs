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
    /// Only items published by this JID; a bare JID matches it and all of its resources
    /// (XEP-0313 `with`). The store filters on the stored publisher, without reading
    /// payloads.
    pub publisher: Option<Jid>,
    /// Newest (highest seq) first when true, oldest first otherwise.
    pub newest_first: bool,
    /// Skip this many matching items (in the chosen order) first.
    pub skip: usize,
    /// At most this many items; `None` = all.
    pub limit: Option<usize>,
    /// Stop before the item that would take the items returned past this many bytes,
    /// each item counting [`item_cost`] of its stored payload length; the first item
    /// is always returned. The store decides from the stored length, before reading or
    /// parsing a payload, so a page of large items costs no more than the page.
    pub max_bytes: Option<usize>,
}

/// Whether an item's publisher passes [`ItemQuery::publisher`].
pub fn publisher_matches(filter: Option<&Jid>, publisher: &Jid) -> bool {
    match filter {
        None => true,
        Some(w) if w.resource().is_some() => publisher == w,
        Some(w) => publisher.node() == w.node() && publisher.domain() == w.domain(),
    }
}

/// What one item counts against a page's byte budget ([`ItemQuery::max_bytes`]): its
/// payload as stored (`Element::to_bytes("")`), plus a fixed allowance for the
/// `<item/>` around it.
pub fn item_cost(payload_bytes: usize) -> usize {
    ITEM_OVERHEAD_BYTES.saturating_add(payload_bytes)
}

/// The fixed allowance of [`item_cost`].
pub const ITEM_OVERHEAD_BYTES: usize = 128;

/// A running page byte budget: `admit` says whether the next item still fits (the
/// first always does).
#[derive(Clone, Copy, Debug)]
pub struct ByteBudget {
    left: Option<usize>,
    taken: usize,
}

impl ByteBudget {
    pub fn new(max_bytes: Option<usize>) -> Self {
        ByteBudget {
            left: max_bytes,
            taken: 0,
        }
    }

    /// Takes an item of `payload_bytes` if it fits (or is the first); false once the
    /// budget is spent, and the caller stops there.
    pub fn admit(&mut self, payload_bytes: usize) -> bool {
        let cost = item_cost(payload_bytes);
        match self.left {
            None => {}
            Some(left) if cost <= left => self.left = Some(left - cost),
            Some(_) if self.taken == 0 => self.left = Some(0),
            Some(_) => return false,
        }
        self.taken += 1;
        true
    }
}

/// An item without its payload: what choosing a page needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemMeta {
    pub id: ItemId,
    pub seq: u64,
    pub published_ms: u64,
    pub publisher: Jid,
    /// The length of the stored payload (`Element::to_bytes("")`), 0 for none.
    pub payload_bytes: usize,
}

/// One subscription change, applied by [`Store::update_subscriptions`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SubChange {
    /// Insert, or replace the subscription with the same `subid`.
    Put(Subscription),
    Remove(SubId),
}

/// Persistence of one pubsub service. Every method is atomic (all or nothing).
/// A write queued for a commit it may share with other writes
/// ([`Store::queue_put_item`], [`Store::queue_update_subscriptions`]).
pub trait Committing<T>: Send {
    /// Blocks until the write is durable, or failed, with what the unqueued method
    /// returns.
    fn wait(self: Box<Self>) -> Result<T, StoreError>;
}

/// A write that was done when it was queued (stores without a shared commit).
struct Done<T>(Result<T, StoreError>);

impl<T: Send> Committing<T> for Done<T> {
    fn wait(self: Box<Self>) -> Result<T, StoreError> {
        self.0
    }
}

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

    /// As [`Store::put_item`], but only queues the write, so that the caller can let go
    /// of the service while the commit (an fsync) happens, shared with other writes;
    /// [`Committing::wait`] says when it is durable. Writes commit in the order they were
    /// queued, whatever method queued them. The default does the write at once.
    fn queue_put_item(
        &mut self,
        node: &NodeName,
        item: &Arc<Item>,
        keep_items: u32,
    ) -> Result<Box<dyn Committing<Vec<ItemId>>>, StoreError> {
        Ok(Box::new(Done(self.put_item(node, item, keep_items))))
    }

    /// As [`Store::update_subscriptions`], queued like [`Store::queue_put_item`].
    fn queue_update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> Result<Box<dyn Committing<()>>, StoreError> {
        Ok(Box::new(Done(self.update_subscriptions(node, changes))))
    }

    /// Removes these items; all must exist (checked by the caller), ids not found are
    /// ignored.
    fn delete_items(&mut self, node: &NodeName, ids: &[ItemId]) -> Result<(), StoreError>;

    /// Removes every item of the node (its last seq is kept).
    fn purge_items(&mut self, node: &NodeName) -> Result<(), StoreError>;

    fn get_item(&self, node: &NodeName, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError>;

    /// The metadata of those of `ids` that exist (any order), without reading their
    /// payloads: a request naming many large items is judged before any is parsed.
    fn item_meta(&self, node: &NodeName, ids: &[ItemId]) -> Result<Vec<ItemMeta>, StoreError>;

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
    fn item_meta(&self, node: &NodeName, ids: &[ItemId]) -> Result<Vec<ItemMeta>, StoreError> {
        (**self).item_meta(node, ids)
    }
    fn query_items(&self, node: &NodeName, q: &ItemQuery) -> Result<Vec<Arc<Item>>, StoreError> {
        (**self).query_items(node, q)
    }
    fn count_items(&self, node: &NodeName, q: &ItemQuery) -> Result<u64, StoreError> {
        (**self).count_items(node, q)
    }
}
