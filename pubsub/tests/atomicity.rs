//! Nothing is half-applied: a failing request (validation or store) leaves the state
//! and the store as they were, and emits no effects; state survives a reopen.

mod common;

use std::sync::Arc;

use common::*;
use hydrant_proto::BareJid;
use hydrant_pubsub::{
    Affiliation, Item, ItemId, ItemMeta, ItemQuery, MemoryStore, NodeConfig, NodeName, NodeRecord,
    Service, ServiceConfig, Store, StoreError, SubChange,
};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";

#[test]
fn store_failure_changes_nothing() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.subscribe(BOB, "n").unwrap();
    h.publish(ALICE, "n", "a", "x").unwrap();
    let cfg_before = h.svc.node_config(&NodeName::from("n")).unwrap().clone();
    h.svc.store_mut().set_fail_writes(true);
    let attempts = [
        ps("<create node='m'/>"),
        ps("<publish node='n'><item id='b'><e xmlns='urn:e'/></item></publish>"),
        ps("<retract node='n'><item id='a'/></retract>"),
        ps("<subscribe node='n' jid='carol@example.com'/>"),
        ps(&format!("<unsubscribe node='n' jid='{BOB}'/>")),
        owner("<purge node='n'/>"),
        owner("<delete node='n'/>"),
        owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#title", "x")])
        )),
        owner(
            "<affiliations node='n'><affiliation jid='bob@example.com' affiliation='publisher'/></affiliations>",
        ),
        owner(&format!(
            "<subscriptions node='n'><subscription jid='{BOB}' subscription='none'/></subscriptions>"
        )),
    ];
    for req in &attempts {
        let from = if req.contains("carol") {
            "carol@example.com/x"
        } else if req.contains("unsubscribe") {
            BOB
        } else {
            ALICE
        };
        let e = h.set(from, req).expect_err(req);
        e.is("internal-server-error", None);
        assert!(h.effects.is_empty());
    }
    h.svc.store_mut().set_fail_writes(false);
    assert_eq!(h.svc.node_names().count(), 1);
    assert_eq!(
        h.svc.node_config(&NodeName::from("n")).unwrap(),
        &cfg_before
    );
    assert_eq!(h.stored_ids("n"), ["a"]);
    assert_eq!(h.svc.subscribers(&NodeName::from("n")).unwrap().len(), 1);
    let affs = h
        .ok_get(ALICE, &owner("<affiliations node='n'/>"))
        .unwrap()
        .to_string();
    assert!(!affs.contains("bob"), "{affs}");
    // And the service still works.
    h.publish(ALICE, "n", "b", "x").unwrap();
    assert_eq!(h.stored_ids("n"), ["b", "a"]);
}

/// A store whose item writes fail (node creation succeeds): PEP auto-create must be
/// undone when the item cannot be stored.
#[derive(Debug, Default)]
struct ItemWritesFail(MemoryStore);

impl Store for ItemWritesFail {
    fn load_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        self.0.load_nodes()
    }
    fn create_node(&mut self, node: &NodeRecord) -> Result<(), StoreError> {
        self.0.create_node(node)
    }
    fn delete_node(&mut self, node: &NodeName) -> Result<(), StoreError> {
        self.0.delete_node(node)
    }
    fn set_config(
        &mut self,
        node: &NodeName,
        config: &NodeConfig,
        keep: u32,
    ) -> Result<Vec<ItemId>, StoreError> {
        self.0.set_config(node, config, keep)
    }
    fn set_affiliations(
        &mut self,
        node: &NodeName,
        changes: &[(BareJid, Affiliation)],
    ) -> Result<(), StoreError> {
        self.0.set_affiliations(node, changes)
    }
    fn update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> Result<(), StoreError> {
        self.0.update_subscriptions(node, changes)
    }
    fn put_item(&mut self, _: &NodeName, _: &Arc<Item>, _: u32) -> Result<Vec<ItemId>, StoreError> {
        Err(StoreError("disk full".into()))
    }
    fn delete_items(&mut self, node: &NodeName, ids: &[ItemId]) -> Result<(), StoreError> {
        self.0.delete_items(node, ids)
    }
    fn purge_items(&mut self, node: &NodeName) -> Result<(), StoreError> {
        self.0.purge_items(node)
    }
    fn get_item(&self, node: &NodeName, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError> {
        self.0.get_item(node, id)
    }
    fn item_meta(&self, node: &NodeName, ids: &[ItemId]) -> Result<Vec<ItemMeta>, StoreError> {
        self.0.item_meta(node, ids)
    }
    fn query_items(&self, node: &NodeName, q: &ItemQuery) -> Result<Vec<Arc<Item>>, StoreError> {
        self.0.query_items(node, q)
    }
    fn count_items(&self, node: &NodeName, q: &ItemQuery) -> Result<u64, StoreError> {
        self.0.count_items(node, q)
    }
}

#[test]
fn failed_auto_create_publish_is_rolled_back() {
    let mut svc = Service::open(
        jid("juliet@example.com"),
        ItemWritesFail::default(),
        ServiceConfig::pep(),
    )
    .unwrap();
    let req = hydrant_pubsub::xep0060::parse(
        hydrant_proto::IqType::Set,
        &xml(&ps(
            "<publish node='tune'><item id='t'><tune xmlns='tune'/></item></publish>",
        )),
    )
    .unwrap();
    let e = svc
        .handle(
            &jid("juliet@example.com/r"),
            req,
            &hydrant_pubsub::NoRelations,
            1,
        )
        .unwrap_err();
    assert!(matches!(e, hydrant_pubsub::Error::Store(_)));
    assert_eq!(svc.node_names().count(), 0);
    assert!(
        svc.store().0.clone().load_nodes().unwrap().is_empty(),
        "store rolled back too"
    );
}

#[test]
fn validation_failure_in_a_multi_part_request_changes_nothing() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    // Retract two items, one missing: neither is retracted.
    h.publish(ALICE, "n", "a", "x").unwrap();
    h.err_set(
        ALICE,
        &ps("<retract node='n'><item id='a'/><item id='missing'/></retract>"),
    )
    .is("item-not-found", None);
    assert_eq!(h.stored_ids("n"), ["a"]);
}

#[test]
fn state_survives_reopen() {
    let mut h = Harness::new();
    h.create_with(
        ALICE,
        "n",
        &[("pubsub#title", "T"), ("pubsub#access_model", "authorize")],
    );
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='member'/></affiliations>"));
    h.subscribe(BOB, "n").unwrap();
    h.publish(ALICE, "n", "a", "x").unwrap();
    h.publish(ALICE, "n", "b", "x").unwrap();
    let store = h.svc.store().clone();
    let mut h2 = Harness::new();
    h2.svc = Service::open(jid(SERVICE), store, ServiceConfig::default()).unwrap();
    assert_eq!(
        h2.svc.node_config(&NodeName::from("n")),
        h.svc.node_config(&NodeName::from("n"))
    );
    assert_eq!(
        h2.svc.subscribers(&NodeName::from("n")),
        h.svc.subscribers(&NodeName::from("n"))
    );
    // Sequence numbers continue (no reuse after reopen).
    h2.publish(ALICE, "n", "c", "x").unwrap();
    assert_eq!(h2.stored_ids("n"), ["c", "b", "a"]);
    let seq = |h: &Harness, id: &str| {
        h.svc
            .store()
            .get_item(&NodeName::from("n"), &ItemId::from(id))
            .unwrap()
            .unwrap()
            .seq
    };
    assert!(seq(&h2, "c") > seq(&h2, "b"));
}
