//! The in-memory [`Store`]: the reference behaviour, and the store of the unit tests.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hydrant_proto::BareJid;

use super::{ByteBudget, ItemMeta, ItemQuery, NodeRecord, Store, SubChange, publisher_matches};
use crate::config::NodeConfig;
use crate::error::StoreError;
use crate::types::{Affiliation, Item, ItemId, NodeName};

#[derive(Clone, Debug)]
struct MemNode {
    record: NodeRecord,
    /// seq -> item, with the length of its payload as a backend would store it
    items: BTreeMap<u64, (Arc<Item>, usize)>,
    /// id -> seq
    by_id: HashMap<ItemId, u64>,
}

impl MemNode {
    fn trim(&mut self, keep: u32) -> Vec<ItemId> {
        let mut evicted = Vec::new();
        while self.items.len() > keep as usize {
            let (_, (item, _)) = self.items.pop_first().expect("len > keep >= 0");
            self.by_id.remove(&item.id);
            evicted.push(item.id.clone());
        }
        evicted
    }
}

/// Everything in maps. `fail_writes` makes every mutating call fail (without effect),
/// so tests can check that the service applies nothing when the store refuses.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    nodes: BTreeMap<NodeName, MemNode>,
    fail_writes: bool,
}

impl MemoryStore {
    pub fn new() -> Self {
        MemoryStore::default()
    }

    /// While on, every mutating call returns an error and changes nothing.
    pub fn set_fail_writes(&mut self, on: bool) {
        self.fail_writes = on;
    }

    fn write(&mut self, node: &NodeName) -> Result<&mut MemNode, StoreError> {
        if self.fail_writes {
            return Err(StoreError("write refused (fail_writes)".into()));
        }
        self.nodes
            .get_mut(node)
            .ok_or_else(|| StoreError(format!("no node {node}")))
    }

    fn read(&self, node: &NodeName) -> Result<&MemNode, StoreError> {
        self.nodes
            .get(node)
            .ok_or_else(|| StoreError(format!("no node {node}")))
    }
}

fn matches(item: &Item, q: &ItemQuery) -> bool {
    q.after_seq.is_none_or(|a| item.seq > a)
        && q.before_seq.is_none_or(|b| item.seq < b)
        && q.start_ms.is_none_or(|s| item.published_ms >= s)
        && q.end_ms.is_none_or(|e| item.published_ms <= e)
        && publisher_matches(q.publisher.as_ref(), &item.publisher)
}

impl Store for MemoryStore {
    fn load_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        Ok(self.nodes.values().map(|n| n.record.clone()).collect())
    }

    fn create_node(&mut self, node: &NodeRecord) -> Result<(), StoreError> {
        if self.fail_writes {
            return Err(StoreError("write refused (fail_writes)".into()));
        }
        if self.nodes.contains_key(&node.name) {
            return Err(StoreError(format!("node {} exists", node.name)));
        }
        self.nodes.insert(
            node.name.clone(),
            MemNode {
                record: node.clone(),
                items: BTreeMap::new(),
                by_id: HashMap::new(),
            },
        );
        Ok(())
    }

    fn delete_node(&mut self, node: &NodeName) -> Result<(), StoreError> {
        self.write(node)?;
        self.nodes.remove(node);
        Ok(())
    }

    fn set_config(
        &mut self,
        node: &NodeName,
        config: &NodeConfig,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError> {
        let n = self.write(node)?;
        n.record.config = config.clone();
        Ok(n.trim(keep_items))
    }

    fn set_affiliations(
        &mut self,
        node: &NodeName,
        changes: &[(BareJid, Affiliation)],
    ) -> Result<(), StoreError> {
        let n = self.write(node)?;
        for (jid, aff) in changes {
            n.record.affiliations.retain(|(j, _)| j != jid);
            if *aff != Affiliation::None {
                n.record.affiliations.push((jid.clone(), *aff));
            }
        }
        Ok(())
    }

    fn update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> Result<(), StoreError> {
        let n = self.write(node)?;
        for c in changes {
            match c {
                SubChange::Put(s) => {
                    if let Some(slot) = n
                        .record
                        .subscriptions
                        .iter_mut()
                        .find(|x| x.subid == s.subid)
                    {
                        *slot = s.clone();
                    } else {
                        n.record.subscriptions.push(s.clone());
                    }
                }
                SubChange::Remove(id) => n.record.subscriptions.retain(|x| &x.subid != id),
            }
        }
        Ok(())
    }

    fn put_item(
        &mut self,
        node: &NodeName,
        item: &Arc<Item>,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError> {
        let n = self.write(node)?;
        if let Some(old) = n.by_id.remove(&item.id) {
            n.items.remove(&old);
        }
        let bytes = item.payload.as_ref().map_or(0, |p| p.to_bytes("").len());
        n.items.insert(item.seq, (Arc::clone(item), bytes));
        n.by_id.insert(item.id.clone(), item.seq);
        n.record.last_seq = n.record.last_seq.max(item.seq);
        Ok(n.trim(keep_items))
    }

    fn delete_items(&mut self, node: &NodeName, ids: &[ItemId]) -> Result<(), StoreError> {
        let n = self.write(node)?;
        for id in ids {
            if let Some(seq) = n.by_id.remove(id) {
                n.items.remove(&seq);
            }
        }
        Ok(())
    }

    fn purge_items(&mut self, node: &NodeName) -> Result<(), StoreError> {
        let n = self.write(node)?;
        n.items.clear();
        n.by_id.clear();
        Ok(())
    }

    fn get_item(&self, node: &NodeName, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError> {
        let n = self.read(node)?;
        Ok(n.by_id
            .get(id)
            .and_then(|s| n.items.get(s))
            .map(|(i, _)| Arc::clone(i)))
    }

    fn item_meta(&self, node: &NodeName, ids: &[ItemId]) -> Result<Vec<ItemMeta>, StoreError> {
        let n = self.read(node)?;
        Ok(ids
            .iter()
            .filter_map(|id| n.by_id.get(id).and_then(|s| n.items.get(s)))
            .map(|(i, bytes)| ItemMeta {
                id: i.id.clone(),
                seq: i.seq,
                published_ms: i.published_ms,
                publisher: i.publisher.clone(),
                payload_bytes: *bytes,
            })
            .collect())
    }

    fn query_items(&self, node: &NodeName, q: &ItemQuery) -> Result<Vec<Arc<Item>>, StoreError> {
        let n = self.read(node)?;
        let limit = q.limit.unwrap_or(usize::MAX);
        let it = n.items.values().filter(|(i, _)| matches(i, q));
        let it: Box<dyn Iterator<Item = &(Arc<Item>, usize)>> = if q.newest_first {
            Box::new(it.rev())
        } else {
            Box::new(it)
        };
        let mut budget = ByteBudget::new(q.max_bytes);
        Ok(it
            .skip(q.skip)
            .take(limit)
            .take_while(|(_, bytes)| budget.admit(*bytes))
            .map(|(i, _)| Arc::clone(i))
            .collect())
    }

    fn count_items(&self, node: &NodeName, q: &ItemQuery) -> Result<u64, StoreError> {
        let n = self.read(node)?;
        Ok(n.items.values().filter(|(i, _)| matches(i, q)).count() as u64)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_store_passes_conformance() {
        super::super::conformance::store_conformance(&mut super::MemoryStore::new());
    }
}
