//! A conformance suite for [`Store`] implementations: run it on a fresh, empty store
//! (`store_conformance(&mut MyStore::open_temp())`); it panics with a message on the
//! first divergence from [`super::MemoryStore`]'s behaviour.

use std::sync::Arc;

use hydrant_proto::{BareJid, Element, Jid};

use super::{ItemQuery, NodeRecord, Store, SubChange, item_cost};
use crate::config::{AccessModel, NodeConfig};
use crate::types::{
    Affiliation, Item, ItemId, NodeName, SubId, SubOptions, SubState, Subscription,
};

fn jid(s: &str) -> Jid {
    Jid::new(s).expect("test JID")
}

fn bare(s: &str) -> BareJid {
    BareJid::new(s).expect("test JID")
}

fn item(id: &str, seq: u64) -> Arc<Item> {
    Arc::new(Item {
        id: ItemId::from(id),
        publisher: jid("pub@example.com/r"),
        payload: Some(Element::new("entry", "urn:test").with_text(id)),
        published_ms: 1000 + seq,
        seq,
        payload_xml: None,
    })
}

fn ids(items: &[Arc<Item>]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

/// Runs every check on `store`, which must start empty.
pub fn store_conformance(store: &mut dyn Store) {
    assert!(
        store.load_nodes().unwrap().is_empty(),
        "store must start empty"
    );
    let name = NodeName::from("n1");
    let rec = NodeRecord {
        name: name.clone(),
        config: NodeConfig::default(),
        affiliations: vec![(bare("owner@example.com"), Affiliation::Owner)],
        subscriptions: Vec::new(),
        creator: jid("owner@example.com/r"),
        created_ms: 5,
        last_seq: 0,
    };
    store.create_node(&rec).unwrap();
    assert!(
        store.create_node(&rec).is_err(),
        "creating an existing node fails"
    );
    assert_eq!(store.load_nodes().unwrap(), vec![rec.clone()]);

    // Items: put, replace by id (new seq), trim to keep, order, bounds.
    for seq in 1..=5 {
        let evicted = store
            .put_item(&name, &item(&format!("i{seq}"), seq), 4)
            .unwrap();
        let want: Vec<ItemId> = if seq == 5 {
            vec![ItemId::from("i1")]
        } else {
            vec![]
        };
        assert_eq!(evicted, want, "trim after put {seq}");
    }
    let all = ItemQuery {
        newest_first: true,
        ..ItemQuery::default()
    };
    assert_eq!(
        ids(&store.query_items(&name, &all).unwrap()),
        ["i5", "i4", "i3", "i2"]
    );
    // Re-publishing i3 moves it to the newest position.
    store.put_item(&name, &item("i3", 6), 4).unwrap();
    assert_eq!(
        ids(&store.query_items(&name, &all).unwrap()),
        ["i3", "i5", "i4", "i2"]
    );
    assert_eq!(store.get_item(&name, &"i3".into()).unwrap().unwrap().seq, 6);
    assert!(store.get_item(&name, &"i1".into()).unwrap().is_none());
    let q = ItemQuery {
        after_seq: Some(2),
        before_seq: Some(6),
        newest_first: false,
        ..ItemQuery::default()
    };
    assert_eq!(ids(&store.query_items(&name, &q).unwrap()), ["i4", "i5"]);
    assert_eq!(store.count_items(&name, &q).unwrap(), 2);
    let q = ItemQuery {
        newest_first: true,
        skip: 1,
        limit: Some(2),
        ..ItemQuery::default()
    };
    assert_eq!(ids(&store.query_items(&name, &q).unwrap()), ["i5", "i4"]);
    let q = ItemQuery {
        start_ms: Some(1004),
        end_ms: Some(1005),
        ..ItemQuery::default()
    };
    assert_eq!(ids(&store.query_items(&name, &q).unwrap()), ["i4", "i5"]);
    assert_eq!(store.count_items(&name, &ItemQuery::default()).unwrap(), 4);

    // Metadata without payloads: the ids found, with the stored payload length.
    let len = |id: &str| {
        item(id, 0)
            .payload
            .as_ref()
            .map_or(0, |p| p.to_bytes("").len())
    };
    let mut metas = store
        .item_meta(&name, &["i2".into(), "nope".into(), "i3".into()])
        .unwrap();
    metas.sort_by_key(|m| m.seq);
    let got: Vec<_> = metas
        .iter()
        .map(|m| (m.id.as_str(), m.seq, m.published_ms, m.payload_bytes))
        .collect();
    assert_eq!(
        got,
        [("i2", 2, 1002, len("i2")), ("i3", 6, 1006, len("i3"))]
    );
    assert_eq!(metas[0].publisher, jid("pub@example.com/r"));
    // Publisher filter: a bare JID matches its resources, a full JID only itself.
    for (who, n) in [
        ("pub@example.com", 4),
        ("pub@example.com/r", 4),
        ("pub@example.com/x", 0),
        ("pub@example.co", 0),
    ] {
        let q = ItemQuery {
            publisher: Some(jid(who)),
            ..ItemQuery::default()
        };
        assert_eq!(store.query_items(&name, &q).unwrap().len(), n, "{who}");
        assert_eq!(store.count_items(&name, &q).unwrap(), n as u64, "{who}");
    }
    // A byte budget: items while they fit, in the query's order; always the first.
    let cost = item_cost(len("i5"));
    let budget = |max_bytes, newest_first| ItemQuery {
        newest_first,
        max_bytes: Some(max_bytes),
        ..ItemQuery::default()
    };
    assert_eq!(
        ids(&store
            .query_items(&name, &budget(3 * cost - 1, true))
            .unwrap()),
        ["i3", "i5"]
    );
    assert_eq!(
        ids(&store.query_items(&name, &budget(3 * cost, false)).unwrap()),
        ["i2", "i4", "i5"]
    );
    assert_eq!(
        ids(&store.query_items(&name, &budget(0, true)).unwrap()),
        ["i3"]
    );

    // Delete some, then config trims.
    store
        .delete_items(&name, &["i4".into(), "nope".into()])
        .unwrap();
    assert_eq!(
        ids(&store.query_items(&name, &all).unwrap()),
        ["i3", "i5", "i2"]
    );
    let cfg = NodeConfig {
        access_model: AccessModel::Whitelist,
        ..NodeConfig::default()
    };
    let evicted = store.set_config(&name, &cfg, 1).unwrap();
    assert_eq!(evicted, [ItemId::from("i2"), ItemId::from("i5")]);
    let loaded = store.load_nodes().unwrap();
    assert_eq!(loaded[0].config, cfg);
    assert_eq!(loaded[0].last_seq, 6, "last_seq is the highest seq put");

    // Purge keeps last_seq.
    store.purge_items(&name).unwrap();
    assert!(store.query_items(&name, &all).unwrap().is_empty());
    assert_eq!(store.load_nodes().unwrap()[0].last_seq, 6);

    // Affiliations: set, change, remove with None.
    store
        .set_affiliations(
            &name,
            &[
                (bare("a@example.com"), Affiliation::Publisher),
                (bare("b@example.com"), Affiliation::Outcast),
            ],
        )
        .unwrap();
    store
        .set_affiliations(
            &name,
            &[
                (bare("a@example.com"), Affiliation::Member),
                (bare("b@example.com"), Affiliation::None),
            ],
        )
        .unwrap();
    let mut affs = store.load_nodes().unwrap()[0].affiliations.clone();
    affs.sort();
    assert_eq!(
        affs,
        [
            (bare("a@example.com"), Affiliation::Member),
            (bare("owner@example.com"), Affiliation::Owner)
        ]
    );

    // Subscriptions: put, replace by subid, remove.
    let sub = |subid: &str, state| Subscription {
        jid: jid("s@example.com/r"),
        subid: SubId::from(subid),
        state,
        options: SubOptions::default(),
    };
    store
        .update_subscriptions(
            &name,
            &[
                SubChange::Put(sub("s1", SubState::Pending)),
                SubChange::Put(sub("s2", SubState::Subscribed)),
            ],
        )
        .unwrap();
    store
        .update_subscriptions(
            &name,
            &[
                SubChange::Put(sub("s1", SubState::Subscribed)),
                SubChange::Remove(SubId::from("s2")),
            ],
        )
        .unwrap();
    assert_eq!(
        store.load_nodes().unwrap()[0].subscriptions,
        [sub("s1", SubState::Subscribed)]
    );

    // A second node is independent; deleting a node removes everything of it.
    let other = NodeRecord {
        name: NodeName::from("n2"),
        ..rec.clone()
    };
    store.create_node(&other).unwrap();
    store.put_item(&other.name, &item("x", 1), 10).unwrap();
    store.delete_node(&name).unwrap();
    let left = store.load_nodes().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].name, other.name);
    assert_eq!(
        store
            .count_items(&other.name, &ItemQuery::default())
            .unwrap(),
        1
    );
    store.create_node(&rec).unwrap();
    assert_eq!(
        store.count_items(&name, &ItemQuery::default()).unwrap(),
        0,
        "a re-created node starts without items"
    );
}
