//! Revalidation: subscriptions the access model no longer admits are removed (after a
//! configuration change or a lost roster relation), their holders are told with a
//! `subscription='none'` event, and nothing is half-applied when the store fails.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use hydrant_proto::BareJid;
use hydrant_pubsub::{
    AccessModel, Affiliation, Effect, Event, Item, ItemId, ItemMeta, ItemQuery, MemoryStore,
    NodeConfig, NodeName, NodeRecord, Service, ServiceConfig, Store, StoreError, SubChange,
};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";
const CAROL: &str = "carol@example.com/desk";
const DAVE: &str = "dave@example.com/pad";

/// Node `n` (owner alice, open) with subscriptions of alice, bob (member), carol and
/// dave (strangers).
fn setup() -> Harness {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.ok_set(
        ALICE,
        &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='member'/></affiliations>"),
    );
    for who in [ALICE, BOB, CAROL, DAVE] {
        h.subscribe(who, "n").unwrap();
    }
    h
}

fn configure(h: &mut Harness, fields: &[(&str, &str)]) {
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(fields)
        )),
    );
}

fn subscribers(h: &Harness) -> Vec<String> {
    h.svc
        .subscribers(&NodeName::from("n"))
        .unwrap()
        .iter()
        .map(|s| s.jid.to_string())
        .collect()
}

/// The JIDs told their subscription is gone, among `effects`.
fn removed(effects: &[Effect]) -> Vec<String> {
    let mut out: Vec<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => match &n.event {
                Event::Subscription {
                    jid, state: None, ..
                } => {
                    assert_eq!(Harness::recipients(n), vec![jid.to_string()]);
                    assert!(!n.presence_based);
                    Some(jid.to_string())
                }
                _ => None,
            },
            _ => None,
        })
        .collect();
    out.sort();
    out
}

fn stored_subscribers(h: &mut Harness) -> Vec<String> {
    let recs = h.svc.store_mut().load_nodes().unwrap();
    let mut out: Vec<String> = recs[0]
        .subscriptions
        .iter()
        .map(|s| s.jid.to_string())
        .collect();
    out.sort();
    out
}

#[test]
fn open_to_whitelist_removes_strangers_and_tells_them() {
    let mut h = setup();
    configure(&mut h, &[("pubsub#access_model", "whitelist")]);
    assert_eq!(removed(&h.effects), vec![CAROL, DAVE]);
    assert_eq!(subscribers(&h), vec![ALICE, BOB]);
    assert_eq!(stored_subscribers(&mut h), vec![ALICE, BOB]);
    // The rendered event is the XEP-0060 8.8.4 one.
    let n = h
        .notifications()
        .into_iter()
        .find(|n| matches!(n.event, Event::Subscription { .. }))
        .unwrap();
    let xml = rendered(n);
    assert!(xml.contains("subscription='none'") || xml.contains("subscription=\"none\""));
    // Publishing now reaches only the remaining subscribers.
    h.publish(ALICE, "n", "i", "x").unwrap();
    assert_eq!(Harness::recipients(h.notification()), vec![ALICE, BOB]);
    // A second identical configure changes nothing more.
    configure(&mut h, &[("pubsub#title", "t")]);
    assert!(removed(&h.effects).is_empty());
}

#[test]
fn open_to_presence_keeps_contacts() {
    let mut h = setup();
    h.rel
        .presence
        .insert((bare("alice@example.com"), bare("carol@example.com")));
    configure(&mut h, &[("pubsub#access_model", "presence")]);
    assert_eq!(removed(&h.effects), vec![DAVE]);
    assert_eq!(subscribers(&h), vec![ALICE, BOB, CAROL]);
}

#[test]
fn roster_model_and_group_changes() {
    let mut h = setup();
    h.rel.groups.insert(
        (bare("alice@example.com"), bare("carol@example.com")),
        vec!["friends".into()],
    );
    h.rel.groups.insert(
        (bare("alice@example.com"), bare("dave@example.com")),
        vec!["work".into()],
    );
    configure(
        &mut h,
        &[
            ("pubsub#access_model", "roster"),
            ("pubsub#roster_groups_allowed", "friends"),
        ],
    );
    assert_eq!(removed(&h.effects), vec![DAVE]);
    assert_eq!(subscribers(&h), vec![ALICE, BOB, CAROL]);
    // Only roster_groups_allowed changes: carol's group is no longer allowed.
    configure(&mut h, &[("pubsub#roster_groups_allowed", "work")]);
    assert_eq!(removed(&h.effects), vec![CAROL]);
    assert_eq!(subscribers(&h), vec![ALICE, BOB]);
}

#[test]
fn authorize_and_loosening_keep_everyone() {
    let mut h = setup();
    configure(&mut h, &[("pubsub#access_model", "authorize")]);
    assert!(removed(&h.effects).is_empty());
    assert_eq!(subscribers(&h), vec![ALICE, BOB, CAROL, DAVE]);
    configure(&mut h, &[("pubsub#access_model", "open")]);
    assert!(removed(&h.effects).is_empty());
    assert_eq!(subscribers(&h), vec![ALICE, BOB, CAROL, DAVE]);
}

#[test]
fn affiliated_entities_keep_their_subscriptions() {
    let mut h = setup();
    h.ok_set(
        ALICE,
        &owner("<affiliations node='n'><affiliation jid='carol@example.com' affiliation='publisher'/></affiliations>"),
    );
    h.rel.admins.insert(bare("dave@example.com"));
    configure(&mut h, &[("pubsub#access_model", "whitelist")]);
    assert!(removed(&h.effects).is_empty());
    assert_eq!(subscribers(&h), vec![ALICE, BOB, CAROL, DAVE]);
}

#[test]
fn lost_relation_removes_only_that_contact() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#access_model", "presence")]);
    for who in ["carol@example.com", "dave@example.com"] {
        h.rel
            .presence
            .insert((bare("alice@example.com"), bare(who)));
    }
    h.subscribe(CAROL, "n").unwrap();
    h.subscribe(DAVE, "n").unwrap();
    // Carol subscribes a second time with another JID of hers.
    h.subscribe("carol@example.com", "n").unwrap();
    // Nothing lost yet: nothing to do.
    assert!(
        h.svc
            .revalidate(Some(&bare("carol@example.com")), &h.rel)
            .unwrap()
            .is_empty()
    );
    h.rel
        .presence
        .remove(&(bare("alice@example.com"), bare("carol@example.com")));
    h.rel
        .presence
        .remove(&(bare("alice@example.com"), bare("dave@example.com")));
    // Only the contact named is revalidated.
    let effects = h
        .svc
        .revalidate(Some(&bare("carol@example.com")), &h.rel)
        .unwrap();
    assert_eq!(removed(&effects), vec!["carol@example.com", CAROL]);
    assert_eq!(subscribers(&h), vec![DAVE]);
    // Everyone.
    let effects = h.svc.revalidate(None, &h.rel).unwrap();
    assert_eq!(removed(&effects), vec![DAVE]);
    assert!(subscribers(&h).is_empty());
    assert!(stored_subscribers(&mut h).is_empty());
}

#[test]
fn lost_roster_group_on_roster_node() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#access_model", "roster")]);
    configure(&mut h, &[("pubsub#roster_groups_allowed", "friends")]);
    h.rel.groups.insert(
        (bare("alice@example.com"), bare("carol@example.com")),
        vec!["friends".into()],
    );
    h.subscribe(CAROL, "n").unwrap();
    h.rel.groups.insert(
        (bare("alice@example.com"), bare("carol@example.com")),
        vec!["work".into()],
    );
    let effects = h
        .svc
        .revalidate(Some(&bare("carol@example.com")), &h.rel)
        .unwrap();
    assert_eq!(removed(&effects), vec![CAROL]);
    assert!(subscribers(&h).is_empty());
}

#[test]
fn pep_owner_keeps_and_former_contact_goes() {
    let mut h = Harness::with(ServiceConfig::pep(), "alice@example.com");
    h.rel
        .presence
        .insert((bare("alice@example.com"), bare("carol@example.com")));
    h.publish(ALICE, "urn:tune", "t1", "x").unwrap();
    assert_eq!(
        h.svc
            .node_config(&NodeName::from("urn:tune"))
            .unwrap()
            .access_model,
        AccessModel::Presence
    );
    h.subscribe(ALICE, "urn:tune").unwrap();
    h.subscribe(CAROL, "urn:tune").unwrap();
    h.rel.presence.clear();
    let effects = h.svc.revalidate(None, &h.rel).unwrap();
    assert_eq!(removed(&effects), vec![CAROL]);
    let subs: Vec<String> = h
        .svc
        .subscribers(&NodeName::from("urn:tune"))
        .unwrap()
        .iter()
        .map(|s| s.jid.to_string())
        .collect();
    assert_eq!(subs, vec![ALICE]);
}

#[test]
fn failing_store_applies_nothing() {
    let mut h = setup();
    h.rel.presence.clear();
    h.svc.store_mut().set_fail_writes(true);
    // The configure fails at its first write.
    h.err_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#access_model", "whitelist")])
        )),
    )
    .is("internal-server-error", None);
    assert_eq!(
        h.svc
            .node_config(&NodeName::from("n"))
            .unwrap()
            .access_model,
        AccessModel::Open
    );
    assert_eq!(subscribers(&h), vec![ALICE, BOB, CAROL, DAVE]);
    h.svc.store_mut().set_fail_writes(false);

    // A lost relation whose removal the store refuses: nothing changes.
    h.create_with(ALICE, "p", &[("pubsub#access_model", "presence")]);
    h.rel
        .presence
        .insert((bare("alice@example.com"), bare("carol@example.com")));
    h.subscribe(CAROL, "p").unwrap();
    h.rel.presence.clear();
    h.svc.store_mut().set_fail_writes(true);
    assert!(
        h.svc
            .revalidate(Some(&bare("carol@example.com")), &h.rel)
            .is_err()
    );
    let p = |h: &Harness| {
        h.svc
            .subscribers(&NodeName::from("p"))
            .unwrap()
            .iter()
            .map(|s| s.jid.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(p(&h), vec![CAROL]);
    h.svc.store_mut().set_fail_writes(false);
    let recs = h.svc.store_mut().load_nodes().unwrap();
    let rec = recs.iter().find(|r| r.name.as_str() == "p").unwrap();
    assert_eq!(rec.subscriptions.len(), 1);
    // Once the store works again, calling again finishes the job.
    let effects = h
        .svc
        .revalidate(Some(&bare("carol@example.com")), &h.rel)
        .unwrap();
    assert_eq!(removed(&effects), vec![CAROL]);
    assert!(p(&h).is_empty());
}

/// A store whose subscription writes fail on demand (the configuration write passes).
#[derive(Debug, Default)]
struct FailSubs {
    inner: MemoryStore,
    fail: Arc<AtomicBool>,
}

impl Store for FailSubs {
    fn load_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
        self.inner.load_nodes()
    }
    fn create_node(&mut self, node: &NodeRecord) -> Result<(), StoreError> {
        self.inner.create_node(node)
    }
    fn delete_node(&mut self, node: &NodeName) -> Result<(), StoreError> {
        self.inner.delete_node(node)
    }
    fn set_config(
        &mut self,
        node: &NodeName,
        config: &NodeConfig,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError> {
        self.inner.set_config(node, config, keep_items)
    }
    fn set_affiliations(
        &mut self,
        node: &NodeName,
        changes: &[(BareJid, Affiliation)],
    ) -> Result<(), StoreError> {
        self.inner.set_affiliations(node, changes)
    }
    fn update_subscriptions(
        &mut self,
        node: &NodeName,
        changes: &[SubChange],
    ) -> Result<(), StoreError> {
        if self.fail.load(Ordering::Relaxed) {
            return Err(StoreError("subscriptions refused".into()));
        }
        self.inner.update_subscriptions(node, changes)
    }
    fn put_item(
        &mut self,
        node: &NodeName,
        item: &Arc<Item>,
        keep_items: u32,
    ) -> Result<Vec<ItemId>, StoreError> {
        self.inner.put_item(node, item, keep_items)
    }
    fn delete_items(&mut self, node: &NodeName, ids: &[ItemId]) -> Result<(), StoreError> {
        self.inner.delete_items(node, ids)
    }
    fn purge_items(&mut self, node: &NodeName) -> Result<(), StoreError> {
        self.inner.purge_items(node)
    }
    fn get_item(&self, node: &NodeName, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError> {
        self.inner.get_item(node, id)
    }
    fn item_meta(&self, node: &NodeName, ids: &[ItemId]) -> Result<Vec<ItemMeta>, StoreError> {
        self.inner.item_meta(node, ids)
    }
    fn query_items(&self, node: &NodeName, q: &ItemQuery) -> Result<Vec<Arc<Item>>, StoreError> {
        self.inner.query_items(node, q)
    }
    fn count_items(&self, node: &NodeName, q: &ItemQuery) -> Result<u64, StoreError> {
        self.inner.count_items(node, q)
    }
}

#[test]
fn configure_whose_revalidation_fails_is_rolled_back() {
    use hydrant_proto::IqType;
    use hydrant_pubsub::xep0060;
    let fail = Arc::new(AtomicBool::new(false));
    let store = FailSubs {
        inner: MemoryStore::new(),
        fail: Arc::clone(&fail),
    };
    let mut svc = Service::open(jid(SERVICE), store, ServiceConfig::default()).unwrap();
    let rel = hydrant_pubsub::StaticRelations::default();
    let run = |svc: &mut Service<FailSubs>, from: &str, payload: &str| {
        let req = xep0060::parse(IqType::Set, &xml(payload)).unwrap();
        svc.handle(&jid(from), req, &rel, 1)
    };
    run(&mut svc, ALICE, &ps("<create node='n'/>")).unwrap();
    run(
        &mut svc,
        CAROL,
        &ps(&format!("<subscribe node='n' jid='{CAROL}'/>")),
    )
    .unwrap();
    fail.store(true, Ordering::Relaxed);
    let cfg = owner(&format!(
        "<configure node='n'>{}</configure>",
        config_form(&[("pubsub#access_model", "whitelist")])
    ));
    assert!(run(&mut svc, ALICE, &cfg).is_err());
    let name = NodeName::from("n");
    assert_eq!(
        svc.node_config(&name).unwrap().access_model,
        AccessModel::Open
    );
    assert_eq!(svc.subscribers(&name).unwrap().len(), 1);
    let recs = svc.store_mut().load_nodes().unwrap();
    assert_eq!(recs[0].config.access_model, AccessModel::Open);
    assert_eq!(recs[0].subscriptions.len(), 1);
    // With a working store the same request goes through.
    fail.store(false, Ordering::Relaxed);
    let out = run(&mut svc, ALICE, &cfg).unwrap();
    assert_eq!(removed(&out.effects), vec![CAROL]);
    assert!(svc.subscribers(&name).unwrap().is_empty());
}

/// Relations that count lookups; carol has lost every relation.
#[derive(Default)]
struct Counting {
    lookups: std::cell::Cell<usize>,
}

impl hydrant_pubsub::Relations for Counting {
    fn has_presence_subscription(&self, _: &BareJid, _: &BareJid) -> bool {
        self.lookups.set(self.lookups.get() + 1);
        false
    }
    fn roster_groups(&self, _: &BareJid, _: &BareJid) -> Vec<String> {
        self.lookups.set(self.lookups.get() + 1);
        Vec::new()
    }
    fn is_admin(&self, _: &BareJid) -> bool {
        self.lookups.set(self.lookups.get() + 1);
        false
    }
}

/// After alice's relation with carol ends, only alice's presence/roster nodes are
/// revalidated: the open node with many subscribers and bob's presence node are not
/// looked at (no relation lookup for them), and carol loses exactly alice's node.
#[test]
fn a_lost_relation_revalidates_only_the_owners_access_controlled_nodes() {
    let mut h = Harness::new();
    h.create_with(ALICE, "mine", &[("pubsub#access_model", "presence")]);
    h.create_with(BOB, "bobs", &[("pubsub#access_model", "presence")]);
    h.create(ALICE, "open");
    for k in 0..200 {
        h.subscribe(&format!("s{k}@example.com/r"), "open").unwrap();
    }
    for (who, node) in [(CAROL, "open"), (ALICE, "mine"), (BOB, "bobs")] {
        h.subscribe(who, node).unwrap();
    }
    // Carol was admitted to the presence nodes while the relations allowed it.
    h.rel
        .presence
        .insert((bare("alice@example.com"), bare("carol@example.com")));
    h.rel
        .presence
        .insert((bare("bob@example.com"), bare("carol@example.com")));
    h.subscribe(CAROL, "mine").unwrap();
    h.subscribe(CAROL, "bobs").unwrap();

    let rel = Counting::default();
    let effects = h
        .svc
        .revalidate_relation(&bare("alice@example.com"), &bare("carol@example.com"), &rel)
        .unwrap();
    assert_eq!(removed(&effects), vec![CAROL]);
    assert!(rel.lookups.get() <= 2, "lookups: {}", rel.lookups.get());
    let subs = |node: &str| -> Vec<String> {
        h.svc
            .subscribers(&NodeName::from(node))
            .unwrap()
            .iter()
            .map(|s| s.jid.to_string())
            .collect()
    };
    assert!(!subs("mine").contains(&CAROL.to_owned()));
    assert!(
        subs("bobs").contains(&CAROL.to_owned()),
        "bob's node is not alice's"
    );
    assert!(
        subs("open").contains(&CAROL.to_owned()),
        "open nodes do not depend on it"
    );
}
