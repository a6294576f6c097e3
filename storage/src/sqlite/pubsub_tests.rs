//! Tests of [`SqlitePubsubStore`]: the pubsub crate's conformance suite on both kinds
//! of database, agreement with `MemoryStore` on item queries, persistence across reopen,
//! isolation of services, atomicity inside a group commit, and a benchmark to run by
//! hand.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use hydrant_proto::{BareJid, Element, Jid, ns};
use hydrant_pubsub::store::conformance::store_conformance;
use hydrant_pubsub::{
    AccessModel, Affiliation, Item, ItemId, ItemQuery, MaxItems, MemoryStore, NodeConfig, NodeName,
    NodeRecord, NotificationType, PublishModel, SendLastPublished, Show, Store, SubChange, SubId,
    SubOptions, SubState, Subscription,
};

use super::pubsub::parse_payload;
use super::tests::TempDir;
use super::{SqlitePubsubStore, SqliteStore, lock};

const SVC: &str = "pubsub.example.com";

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

fn bare(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

fn item(id: &str, seq: u64, payload: Option<Element>) -> Arc<Item> {
    Arc::new(Item {
        id: ItemId::from(id),
        publisher: jid("pub@example.com/r"),
        payload,
        published_ms: 1_000 + seq,
        seq,
        payload_xml: None,
    })
}

fn entry(text: &str) -> Element {
    Element::new("entry", "urn:test").with_text(text)
}

fn simple_node(name: &str) -> NodeRecord {
    NodeRecord {
        name: NodeName::from(name),
        config: NodeConfig::default(),
        affiliations: vec![(bare("owner@example.com"), Affiliation::Owner)],
        subscriptions: Vec::new(),
        creator: jid("owner@example.com/r"),
        created_ms: 5,
        last_seq: 0,
    }
}

/// A node using every field with a non-default value.
fn rich_node(name: &str) -> NodeRecord {
    NodeRecord {
        name: NodeName::from(name),
        config: NodeConfig {
            title: "Tïtle <&> 'q'".into(),
            description: "line one\nline two".into(),
            payload_type: Some("urn:xmpp:microblog:0".into()),
            access_model: AccessModel::Roster,
            roster_groups_allowed: vec!["Friends".into(), "Family".into(), "A b".into()],
            publish_model: PublishModel::Subscribers,
            max_items: MaxItems::Max,
            persist_items: false,
            deliver_payloads: false,
            deliver_notifications: false,
            notify_retract: false,
            notify_delete: false,
            notify_config: true,
            subscribe: false,
            send_last_published_item: SendLastPublished::OnSubAndPresence,
            presence_based_delivery: true,
            notification_type: NotificationType::Normal,
        },
        affiliations: vec![
            (bare("a@example.com"), Affiliation::Publisher),
            (bare("b@example.com"), Affiliation::Outcast),
            (bare("owner@example.com"), Affiliation::Owner),
            (bare("p@example.com"), Affiliation::PublishOnly),
            (bare("z@example.com"), Affiliation::Member),
        ],
        subscriptions: vec![
            Subscription {
                jid: jid("z@example.com/phone"),
                subid: SubId::from("s-z"),
                state: SubState::Subscribed,
                options: SubOptions {
                    deliver: false,
                    show_values: vec![Show::Online, Show::Chat],
                    urgent: true,
                },
            },
            Subscription {
                jid: jid("a@example.com"),
                subid: SubId::from("s-a"),
                state: SubState::Pending,
                options: SubOptions::default(),
            },
            Subscription {
                jid: jid("a@example.com"),
                subid: SubId::from("s-a2"),
                state: SubState::Unconfigured,
                options: SubOptions {
                    deliver: true,
                    show_values: vec![Show::Away, Show::Dnd, Show::Xa],
                    urgent: false,
                },
            },
        ],
        creator: jid("owner@example.com/desk"),
        created_ms: 1_700_000_000_123,
        last_seq: 41,
    }
}

/// Payloads that exercise the serialisation: nested namespaces, prefixed attributes,
/// escaping, an element in no namespace, one in the client namespace.
fn tricky_payloads() -> Vec<Element> {
    vec![
        Element::new("entry", "http://www.w3.org/2005/Atom")
            .with_attr("xml:lang", "en")
            .with_child(
                Element::new("title", "http://www.w3.org/2005/Atom").with_text("a < b & 'c' \"d\""),
            )
            .with_child(
                Element::new("geoloc", "http://jabber.org/protocol/geoloc")
                    .with_attr("k", "v'\"<>&")
                    .with_child(
                        Element::new("lat", "http://jabber.org/protocol/geoloc").with_text("1.5"),
                    ),
            )
            .with_child(Element::new("empty", "urn:other")),
        Element::new("bare", "").with_child(Element::new("child", "")),
        Element::new("body", ns::CLIENT).with_text("  spaced\ttext\n"),
        Element::new("x", "urn:x").with_text("ünïcødé ✓ 𝄞"),
    ]
}

fn all_newest_first() -> ItemQuery {
    ItemQuery {
        newest_first: true,
        ..ItemQuery::default()
    }
}

fn sorted(mut r: Vec<NodeRecord>) -> Vec<NodeRecord> {
    for n in &mut r {
        n.affiliations.sort();
    }
    r
}

// ---------------------------------------------------------------------------------------

#[test]
fn pubsub_store_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<SqlitePubsubStore>();
}

#[test]
fn conformance_in_memory() {
    let db = SqliteStore::open_in_memory().unwrap();
    store_conformance(&mut db.pubsub(SVC));
}

#[test]
fn conformance_on_file() {
    let dir = TempDir::new();
    let db = SqliteStore::open(&dir.path().join("hydrant.db")).unwrap();
    store_conformance(&mut db.pubsub(SVC));
}

#[test]
fn conformance_through_a_box() {
    // The server may pick the store at run time.
    let db = SqliteStore::open_in_memory().unwrap();
    let mut boxed: Box<dyn Store + Send> = Box::new(db.pubsub(SVC));
    store_conformance(&mut boxed);
}

/// A publish hands the store the payload it already serialised (`Item::payload_xml`):
/// those are the bytes written, and they read back as the element. Also queued.
#[test]
fn serialised_payload_is_what_is_stored() {
    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    s.create_node(&simple_node("n")).unwrap();
    let payload = entry("once");
    let with_xml = |id: &str, seq| {
        Arc::new(Item {
            payload_xml: Some(Arc::from(payload.to_bytes(""))),
            ..(*item(id, seq, Some(payload.clone()))).clone()
        })
    };
    s.put_item(&"n".into(), &with_xml("a", 1), 10).unwrap();
    s.queue_put_item(&"n".into(), &with_xml("b", 2), 10)
        .unwrap()
        .wait()
        .unwrap();
    for id in ["a", "b"] {
        let got = s.get_item(&"n".into(), &ItemId::from(id)).unwrap().unwrap();
        assert_eq!(got.payload.as_ref(), Some(&payload), "{id}");
        assert!(
            got.payload_xml.is_none(),
            "read items carry no cached bytes"
        );
    }
}

#[test]
fn services_in_one_database_are_isolated() {
    let dir = TempDir::new();
    let db = SqliteStore::open(&dir.path().join("hydrant.db")).unwrap();
    // One service with a node of the same name and items, then the full suite on
    // others: each must start empty and never see or touch the first one's rows.
    let mut a = db.pubsub("alice@example.com");
    a.create_node(&simple_node("n1")).unwrap();
    a.create_node(&rich_node("n2")).unwrap();
    a.put_item(&"n1".into(), &item("i1", 1, Some(entry("alice"))), 10)
        .unwrap();
    let before = a.load_nodes().unwrap();
    store_conformance(&mut db.pubsub("bob@example.com"));
    store_conformance(&mut db.pubsub(SVC));
    assert_eq!(a.load_nodes().unwrap(), before);
    let items = a.query_items(&"n1".into(), &ItemQuery::default()).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].payload, Some(entry("alice")));
    // A node of one service is not a node of another.
    let mut c = db.pubsub("carol@example.com");
    assert!(c.get_item(&"n1".into(), &"i1".into()).is_err());
    assert!(c.put_item(&"n1".into(), &item("i2", 2, None), 10).is_err());
    assert!(c.delete_node(&"n1".into()).is_err());
    assert_eq!(a.load_nodes().unwrap(), before);

    // Deleting a service (an account's PEP with it) removes exactly that service.
    db.delete_pubsub_service("alice@example.com").unwrap();
    assert!(a.load_nodes().unwrap().is_empty());
    // The suite leaves two nodes behind.
    assert_eq!(db.pubsub(SVC).load_nodes().unwrap().len(), 2);
    db.delete_pubsub_service("nobody@example.com").unwrap();
}

#[test]
fn node_records_round_trip() {
    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    let rich = rich_node("rich");
    s.create_node(&rich).unwrap();
    s.create_node(&simple_node("plain")).unwrap();
    let mut pep = simple_node("pep");
    pep.config = NodeConfig::pep_default();
    pep.config.max_items = MaxItems::Count(u32::MAX);
    s.create_node(&pep).unwrap();
    // Ordered by node name, as MemoryStore's BTreeMap.
    assert_eq!(
        sorted(s.load_nodes().unwrap()),
        vec![pep, simple_node("plain"), rich.clone()]
    );
    // Configure replaces every field, roster groups included.
    let cfg = NodeConfig {
        roster_groups_allowed: vec!["Only".into()],
        ..NodeConfig::default()
    };
    s.set_config(&"rich".into(), &cfg, 10).unwrap();
    let loaded = s.load_nodes().unwrap();
    let r = loaded.iter().find(|n| n.name.as_str() == "rich").unwrap();
    assert_eq!(r.config, cfg);
    assert_eq!(r.subscriptions, rich.subscriptions);
}

#[test]
fn subscriptions_keep_memory_store_order() {
    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    let mut m = MemoryStore::new();
    let name = NodeName::from("n");
    for st in [&mut s as &mut dyn Store, &mut m] {
        st.create_node(&rich_node("n")).unwrap();
        let mut replaced = rich_node("n").subscriptions[0].clone();
        replaced.state = SubState::Pending;
        replaced.options.show_values = vec![Show::Xa];
        let new = Subscription {
            jid: jid("new@example.com"),
            subid: SubId::from("s-new"),
            state: SubState::Subscribed,
            options: SubOptions::default(),
        };
        st.update_subscriptions(
            &name,
            &[
                SubChange::Put(new.clone()),
                SubChange::Put(replaced),
                SubChange::Remove(SubId::from("s-a")),
                SubChange::Remove(SubId::from("absent")),
            ],
        )
        .unwrap();
        // Replacing it again keeps its (now last) place.
        let mut paused = new;
        paused.options.deliver = false;
        st.update_subscriptions(&name, &[SubChange::Put(paused)])
            .unwrap();
    }
    assert_eq!(
        sorted(s.load_nodes().unwrap()),
        sorted(m.load_nodes().unwrap())
    );
}

#[test]
fn payloads_round_trip() {
    for p in tricky_payloads() {
        assert_eq!(parse_payload(&p.to_bytes("")).unwrap(), p, "{p}");
    }
    assert!(parse_payload(b"").is_err());
    assert!(parse_payload(b"<a><b></a>").is_err());

    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    let name = NodeName::from("n");
    s.create_node(&simple_node("n")).unwrap();
    let mut items: Vec<Arc<Item>> = tricky_payloads()
        .into_iter()
        .zip(1..)
        .map(|(p, seq)| item(&format!("i{seq}"), seq, Some(p)))
        .collect();
    items.push(item("empty", 99, None));
    for i in &items {
        s.put_item(&name, i, 100).unwrap();
    }
    for i in &items {
        assert_eq!(s.get_item(&name, &i.id).unwrap().as_ref(), Some(i));
    }
    assert_eq!(s.query_items(&name, &ItemQuery::default()).unwrap(), items);
}

/// A deterministic pseudo-random sequence (xorshift), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_query(rng: &mut Rng, last_seq: u64) -> ItemQuery {
    let seq_bound = |rng: &mut Rng| match rng.below(6) {
        0 => None,
        1 => Some(0),
        2 => Some(u64::MAX),
        3 => Some(u64::MAX / 2 + 1), // just above i64::MAX
        _ => Some(rng.below(last_seq + 3)),
    };
    let after_seq = seq_bound(rng);
    let before_seq = seq_bound(rng);
    let ms_bound = |rng: &mut Rng| match rng.below(5) {
        0 => None,
        1 => Some(u64::MAX),
        2 => Some(0),
        _ => Some(1_000 + rng.below(60)),
    };
    ItemQuery {
        after_seq,
        before_seq,
        start_ms: ms_bound(rng),
        end_ms: ms_bound(rng),
        newest_first: rng.below(2) == 0,
        skip: [0, 0, 1, 3, usize::MAX][rng.below(5) as usize],
        limit: [None, Some(0), Some(1), Some(3), Some(usize::MAX)][rng.below(5) as usize],
        max_bytes: [None, Some(0), Some(200), Some(400), Some(usize::MAX)][rng.below(5) as usize],
        publisher: [
            None,
            Some("pub@example.com"),
            Some("pub@example.com/r"),
            Some("pub@example.co"),
            Some("other@example.com"),
        ][rng.below(5) as usize]
            .map(jid),
    }
}

/// Random operations on both stores; every result and many queries must agree.
#[test]
fn agrees_with_memory_store() {
    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    let mut m = MemoryStore::new();
    let name = NodeName::from("n");
    s.create_node(&simple_node("n")).unwrap();
    m.create_node(&simple_node("n")).unwrap();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seq = 0;
    for step in 0..600 {
        match rng.below(20) {
            0..=13 => {
                seq += 1;
                let id = format!("i{}", rng.below(25));
                let publisher = ["pub@example.com/r", "pub@example.com/s", "pub@example.com"]
                    [rng.below(3) as usize];
                let it = Arc::new(Item {
                    published_ms: 1_000 + rng.below(50),
                    publisher: jid(publisher),
                    ..(*item(&id, seq, Some(entry(&id)))).clone()
                });
                let keep = [0, 1, 3, 10, 20, 1000][rng.below(6) as usize];
                assert_eq!(
                    s.put_item(&name, &it, keep).unwrap(),
                    m.put_item(&name, &it, keep).unwrap(),
                    "put at step {step}"
                );
            }
            14..=16 => {
                let ids: Vec<ItemId> = (0..rng.below(4))
                    .map(|_| ItemId::from(format!("i{}", rng.below(25))))
                    .collect();
                s.delete_items(&name, &ids).unwrap();
                m.delete_items(&name, &ids).unwrap();
            }
            17 => {
                s.purge_items(&name).unwrap();
                m.purge_items(&name).unwrap();
            }
            _ => {
                let keep = rng.below(15) as u32;
                let cfg = NodeConfig::default();
                assert_eq!(
                    s.set_config(&name, &cfg, keep).unwrap(),
                    m.set_config(&name, &cfg, keep).unwrap(),
                    "set_config at step {step}"
                );
            }
        }
        assert_eq!(s.load_nodes().unwrap(), m.load_nodes().unwrap());
        for _ in 0..8 {
            let q = random_query(&mut rng, seq);
            assert_eq!(
                s.query_items(&name, &q).unwrap(),
                m.query_items(&name, &q).unwrap(),
                "step {step}: {q:?}"
            );
            assert_eq!(
                s.count_items(&name, &q).unwrap(),
                m.count_items(&name, &q).unwrap(),
                "step {step}: {q:?}"
            );
        }
        for i in 0..25 {
            let id = ItemId::from(format!("i{i}"));
            assert_eq!(
                s.get_item(&name, &id).unwrap(),
                m.get_item(&name, &id).unwrap()
            );
        }
        let ids: Vec<ItemId> = (0..25).map(|i| ItemId::from(format!("i{i}"))).collect();
        let sorted = |mut v: Vec<hydrant_pubsub::ItemMeta>| {
            v.sort_by_key(|x| x.seq);
            v
        };
        assert_eq!(
            sorted(s.item_meta(&name, &ids).unwrap()),
            sorted(m.item_meta(&name, &ids).unwrap())
        );
    }
}

#[test]
fn everything_survives_reopen_and_seq_stays_monotonic() {
    let dir = TempDir::new();
    let path = dir.path().join("hydrant.db");
    let rich = NodeName::from("rich");
    let plain = NodeName::from("plain");
    let payloads = tricky_payloads();
    {
        let db = SqliteStore::open(&path).unwrap();
        let mut s = db.pubsub(SVC);
        s.create_node(&rich_node("rich")).unwrap();
        s.create_node(&simple_node("plain")).unwrap();
        for (p, seq) in payloads.iter().zip(42..) {
            s.put_item(&rich, &item(&format!("r{seq}"), seq, Some(p.clone())), 100)
                .unwrap();
        }
        s.put_item(&plain, &item("only", 1, None), 10).unwrap();
        s.set_affiliations(&plain, &[(bare("x@example.com"), Affiliation::Member)])
            .unwrap();
        s.update_subscriptions(
            &plain,
            &[SubChange::Put(rich_node("rich").subscriptions[0].clone())],
        )
        .unwrap();
    }
    let mut want_plain = simple_node("plain");
    want_plain
        .affiliations
        .push((bare("x@example.com"), Affiliation::Member));
    want_plain.subscriptions = vec![rich_node("rich").subscriptions[0].clone()];
    want_plain.last_seq = 1;
    let mut want_rich = rich_node("rich");
    want_rich.last_seq = 42 + payloads.len() as u64 - 1;
    {
        let db = SqliteStore::open(&path).unwrap();
        let mut s = db.pubsub(SVC);
        assert_eq!(
            sorted(s.load_nodes().unwrap()),
            sorted(vec![want_plain.clone(), want_rich.clone()])
        );
        let items = s.query_items(&rich, &ItemQuery::default()).unwrap();
        let got: Vec<&Element> = items.iter().filter_map(|i| i.payload.as_ref()).collect();
        assert_eq!(got, payloads.iter().collect::<Vec<_>>());
        assert_eq!(
            s.get_item(&plain, &"only".into()).unwrap().unwrap().payload,
            None
        );
        // Purge and retract everything: the last seq must not go back.
        s.purge_items(&rich).unwrap();
        s.delete_items(&plain, &["only".into()]).unwrap();
    }
    {
        let db = SqliteStore::open(&path).unwrap();
        let mut s = db.pubsub(SVC);
        let loaded = sorted(s.load_nodes().unwrap());
        assert_eq!(loaded, sorted(vec![want_plain.clone(), want_rich.clone()]));
        assert_eq!(s.count_items(&rich, &ItemQuery::default()).unwrap(), 0);
        let next = want_rich.last_seq + 1;
        s.put_item(&rich, &item("again", next, None), 100).unwrap();
        // An older seq (a buggy caller) never lowers last_seq.
        s.put_item(&plain, &item("old", 0, None), 10).unwrap();
    }
    let db = SqliteStore::open(&path).unwrap();
    let loaded = db.pubsub(SVC).load_nodes().unwrap();
    let seqs: Vec<(&str, u64)> = loaded
        .iter()
        .map(|n| (n.name.as_str(), n.last_seq))
        .collect();
    assert_eq!(seqs, [("plain", 1), ("rich", want_rich.last_seq + 1)]);
}

#[test]
fn another_open_sees_an_item_as_soon_as_put_returns() {
    let dir = TempDir::new();
    let path = dir.path().join("hydrant.db");
    let db = SqliteStore::open(&path).unwrap();
    let other = SqliteStore::open(&path).unwrap(); // opened before the writes
    let mut s = db.pubsub(SVC);
    let name = NodeName::from("n");
    s.create_node(&simple_node("n")).unwrap();
    for seq in 1..=20 {
        let id = ItemId::from(format!("i{seq}"));
        s.put_item(&name, &item(id.as_str(), seq, Some(entry("x"))), 5)
            .unwrap();
        assert_eq!(
            other.pubsub(SVC).get_item(&name, &id).unwrap().unwrap().seq,
            seq
        );
        let fresh = SqliteStore::open(&path).unwrap();
        assert_eq!(fresh.pubsub(SVC).load_nodes().unwrap()[0].last_seq, seq);
    }
}

#[test]
fn calls_on_a_missing_node_fail_and_change_nothing() {
    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    s.create_node(&simple_node("n")).unwrap();
    let before = s.load_nodes().unwrap();
    let gone = NodeName::from("gone");
    let e = s.put_item(&gone, &item("i", 1, None), 10).unwrap_err();
    assert!(e.0.contains("no node gone"), "{e}");
    assert!(s.set_config(&gone, &NodeConfig::default(), 1).is_err());
    assert!(
        s.set_affiliations(&gone, &[(bare("a@example.com"), Affiliation::Member)])
            .is_err()
    );
    assert!(
        s.update_subscriptions(&gone, &[SubChange::Remove("x".into())])
            .is_err()
    );
    assert!(s.delete_items(&gone, &["i".into()]).is_err());
    assert!(s.purge_items(&gone).is_err());
    assert!(s.delete_node(&gone).is_err());
    assert!(s.get_item(&gone, &"i".into()).is_err());
    assert!(s.query_items(&gone, &ItemQuery::default()).is_err());
    assert!(s.count_items(&gone, &ItemQuery::default()).is_err());
    let e = s.create_node(&simple_node("n")).unwrap_err();
    assert!(e.0.contains("node n exists"), "{e}");
    assert_eq!(s.load_nodes().unwrap(), before);
}

#[test]
fn values_beyond_bigint_are_refused() {
    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    let name = NodeName::from("n");
    s.create_node(&simple_node("n")).unwrap();
    let mut huge = (*item("i", 1, None)).clone();
    huge.seq = u64::MAX;
    assert!(s.put_item(&name, &Arc::new(huge), 10).is_err());
    let mut late = (*item("i", 1, None)).clone();
    late.published_ms = u64::MAX;
    assert!(s.put_item(&name, &Arc::new(late), 10).is_err());
    let mut rec = simple_node("m");
    rec.created_ms = u64::MAX;
    assert!(s.create_node(&rec).is_err());
    assert_eq!(s.load_nodes().unwrap(), vec![simple_node("n")]);
    assert_eq!(s.count_items(&name, &ItemQuery::default()).unwrap(), 0);
}

/// The byte budget of a query and `item_meta` are decided on the stored length: a
/// payload past the budget is never read, so even a corrupt one goes unnoticed.
#[test]
fn payloads_past_the_byte_budget_are_not_parsed() {
    let db = SqliteStore::open_in_memory().unwrap();
    let mut s = db.pubsub(SVC);
    let name = NodeName::from("n");
    s.create_node(&simple_node("n")).unwrap();
    s.put_item(&name, &item("old", 1, Some(entry(&"x".repeat(1000)))), 10)
        .unwrap();
    s.put_item(&name, &item("new", 2, Some(entry("y"))), 10)
        .unwrap();
    lock(&db.db.writer)
        .execute(
            "UPDATE pubsub_items SET payload = CAST(?1 AS BLOB) WHERE item_id = 'old'",
            [format!("<entry>{}", "x".repeat(1000))],
        )
        .unwrap();
    assert!(
        s.query_items(&name, &all_newest_first()).is_err(),
        "corrupt"
    );
    let q = ItemQuery {
        max_bytes: Some(500),
        ..all_newest_first()
    };
    let got = s.query_items(&name, &q).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id.as_str(), "new");
    let meta = s.item_meta(&name, &["old".into(), "gone".into()]).unwrap();
    assert_eq!(meta.len(), 1);
    assert_eq!((meta[0].seq, meta[0].payload_bytes), (1, 1007));
}

/// Several writes committed as one batch: the failing ones roll back alone (down to the
/// `last_seq` bump a failed put made before failing), the others commit.
#[test]
fn a_failed_write_in_a_batch_rolls_back_alone() {
    let dir = TempDir::new();
    let db = SqliteStore::open(&dir.path().join("hydrant.db")).unwrap();
    let name = NodeName::from("n");
    db.pubsub(SVC).create_node(&simple_node("n")).unwrap();
    let writer = lock(&db.db.writer);
    // Fails the insert of item "boom", after put_item already raised last_seq.
    writer
        .execute_batch(
            "CREATE TEMP TRIGGER boom BEFORE INSERT ON pubsub_items
             WHEN NEW.item_id = 'boom' BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
    let writes: Vec<(&str, u64, &str)> = vec![
        ("n", 1, "a"),
        ("n", 50, "boom"),
        ("gone", 2, "c"),
        ("n", 3, "b"),
    ];
    // The writer lock is held: the first writer to arrive leads a batch of its own write
    // and blocks on the lock; the three others queue behind it and are committed
    // together, in one transaction, by the next leader.
    let handles: Vec<_> = writes
        .iter()
        .map(|&(node, seq, id)| {
            let mut s = db.pubsub(SVC);
            thread::spawn(move || s.put_item(&NodeName::from(node), &item(id, seq, None), 10))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while db.db.queue.len() < writes.len() - 1 {
        assert!(Instant::now() < deadline, "writes did not queue");
        thread::sleep(Duration::from_millis(1));
    }
    drop(writer);
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results[0], Ok(vec![]));
    assert!(
        results[1].as_ref().unwrap_err().0.contains("injected"),
        "{results:?}"
    );
    assert!(
        results[2].as_ref().unwrap_err().0.contains("no node gone"),
        "{results:?}"
    );
    assert_eq!(results[3], Ok(vec![]));
    let mut s = db.pubsub(SVC);
    assert_eq!(s.load_nodes().unwrap()[0].last_seq, 3);
    let ids: Vec<String> = s
        .query_items(&name, &ItemQuery::default())
        .unwrap()
        .iter()
        .map(|i| i.id.to_string())
        .collect();
    assert_eq!(ids, ["a", "b"]);
}

#[test]
fn concurrent_publishers_to_many_services() {
    let dir = TempDir::new();
    let db = Arc::new(SqliteStore::open(&dir.path().join("hydrant.db")).unwrap());
    let threads = 6;
    let per_thread = 60;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = Arc::clone(&db);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                // Half the threads share a service (different nodes), half have their own.
                let service = if t % 2 == 0 {
                    SVC.to_owned()
                } else {
                    format!("u{t}@example.com")
                };
                let mut s = db.pubsub(&service);
                let name = NodeName::from(format!("node{t}"));
                s.create_node(&simple_node(name.as_str())).unwrap();
                barrier.wait();
                let mut evicted = 0;
                for seq in 1..=per_thread {
                    let id = format!("i{seq}");
                    evicted += s
                        .put_item(&name, &item(&id, seq, Some(entry(&id))), 25)
                        .unwrap()
                        .len();
                }
                assert_eq!(evicted, per_thread as usize - 25);
                (service, name)
            })
        })
        .collect();
    for h in handles {
        let (service, name) = h.join().unwrap();
        let mut s = db.pubsub(&service);
        let node = s
            .load_nodes()
            .unwrap()
            .into_iter()
            .find(|n| n.name == name)
            .unwrap();
        assert_eq!(node.last_seq, per_thread);
        let items = s.query_items(&name, &all_newest_first()).unwrap();
        let seqs: Vec<u64> = items.iter().map(|i| i.seq).collect();
        assert_eq!(
            seqs,
            (per_thread - 24..=per_thread).rev().collect::<Vec<_>>()
        );
    }
}

/// The pubsub service itself on this store: what it publishes survives a restart, and
/// the seqs it hands out after the restart continue from where they were.
#[test]
fn a_service_reopened_on_the_same_file_continues() {
    use hydrant_proto::IqType;
    use hydrant_pubsub::{NoRelations, Service, ServiceConfig, xep0060};

    let dir = TempDir::new();
    let path = dir.path().join("hydrant.db");
    let alice = jid("alice@example.com/phone");
    let publish = |svc: &mut Service<SqlitePubsubStore>, id: &str| {
        let payload = Element::new("pubsub", ns::PUBSUB).with_child(
            Element::new("publish", ns::PUBSUB)
                .with_attr("node", "news")
                .with_child(
                    Element::new("item", ns::PUBSUB)
                        .with_attr("id", id)
                        .with_child(Element::new("entry", "urn:test").with_text(id)),
                ),
        );
        let req = xep0060::parse(IqType::Set, &payload).unwrap();
        svc.handle(&alice, req, &NoRelations, 1_000).unwrap();
    };
    let open = || {
        let db = SqliteStore::open(&path).unwrap();
        Service::open(jid(SVC), db.pubsub(SVC), ServiceConfig::default()).unwrap()
    };
    {
        let mut svc = open();
        let create = Element::new("pubsub", ns::PUBSUB)
            .with_child(Element::new("create", ns::PUBSUB).with_attr("node", "news"));
        let req = xep0060::parse(IqType::Set, &create).unwrap();
        svc.handle(&alice, req, &NoRelations, 1_000).unwrap();
        publish(&mut svc, "one");
        publish(&mut svc, "two");
        svc.store_mut()
            .purge_items(&NodeName::from("news"))
            .unwrap();
    }
    let mut svc = open();
    publish(&mut svc, "three");
    let items = svc
        .store()
        .query_items(&NodeName::from("news"), &ItemQuery::default())
        .unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id.as_str(), "three");
    assert_eq!(items[0].seq, 3);
}

/// put_item/s with 1, 4 and 16 publishing threads (each its own PEP-like service), with
/// group commit and without it (every put its own transaction and fsync). By hand:
/// `cargo test -p hydrant-storage --release -- --ignored --nocapture bench_put_item`
/// (HYDRANT_BENCH_DIR picks the filesystem; the default is the system temp dir). Each
/// configuration runs twice, as numbers on a shared machine vary. Results: `group.rs`.
#[test]
#[ignore = "benchmark; run by hand"]
fn bench_put_item() {
    let base = std::env::var_os("HYDRANT_BENCH_DIR").map(std::path::PathBuf::from);
    for batching in [true, false, true, false] {
        super::group::set_batching(batching);
        for threads in [1, 4, 16] {
            let dir = TempDir::new();
            let root = base.clone().unwrap_or_else(|| dir.path().to_owned());
            let path = root.join(format!(
                "bench-{}-{batching}-{threads}.db",
                std::process::id()
            ));
            let db = Arc::new(SqliteStore::open(&path).unwrap());
            let per_thread = 4000 / threads;
            let barrier = Arc::new(Barrier::new(threads + 1));
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let db = Arc::clone(&db);
                    let barrier = Arc::clone(&barrier);
                    thread::spawn(move || {
                        let mut s = db.pubsub(&format!("user{t}@example.com"));
                        let name = NodeName::from("urn:xmpp:microblog:0");
                        s.create_node(&simple_node(name.as_str())).unwrap();
                        barrier.wait();
                        for seq in 1..=per_thread as u64 {
                            let p = Element::new("entry", "http://www.w3.org/2005/Atom")
                                .with_child(
                                    Element::new("title", "http://www.w3.org/2005/Atom")
                                        .with_text("x".repeat(200)),
                                );
                            s.put_item(&name, &item(&format!("i{seq}"), seq, Some(p)), 10)
                                .unwrap();
                        }
                    })
                })
                .collect();
            barrier.wait();
            let batches_before = super::group::BATCHES.load(Ordering::Relaxed);
            let start = Instant::now();
            for h in handles {
                h.join().unwrap();
            }
            let secs = start.elapsed().as_secs_f64();
            let total = per_thread * threads;
            let batches = super::group::BATCHES.load(Ordering::Relaxed) - batches_before;
            println!(
                "group commit {}: {threads:>2} threads, {total} put_item in {secs:.2}s = \
                 {:.0}/s, {:.1} per commit",
                if batching { "on " } else { "off" },
                total as f64 / secs,
                total as f64 / batches as f64,
            );
            drop(db);
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
    super::group::set_batching(true);
}

/// A row that does not decode fails the load with an error naming its table and key,
/// never a panic and never a bare "invalid column type" (issue 8, item 15).
#[test]
fn a_corrupt_row_is_reported_with_its_table_and_key() {
    let dir = super::tests::TempDir::new();
    let path = dir.path().join("hydrant.db");
    let sqlite = SqliteStore::open(&path).unwrap();
    let mut node = simple_node("photos");
    node.subscriptions.push(Subscription {
        jid: jid("sub@example.com/r"),
        state: SubState::Subscribed,
        options: SubOptions::default(),
        subid: SubId::from("s1"),
    });
    let mut store = sqlite.pubsub(SVC);
    store.create_node(&node).unwrap();
    store
        .put_item(
            &NodeName::from("photos"),
            &item("i1", 1, Some(entry("x"))),
            10,
        )
        .unwrap();
    assert_eq!(store.load_nodes().unwrap().len(), 1);

    let raw = rusqlite::Connection::open(&path).unwrap();
    let load_error = |store: &mut SqlitePubsubStore| store.load_nodes().unwrap_err().0;
    let corrupt = |sql: &str| {
        raw.execute_batch(&format!("PRAGMA ignore_check_constraints = ON; {sql}"))
            .unwrap();
    };
    let check = |err: &str, table: &str, key: &str, what: &str| {
        assert!(err.contains(&format!("corrupt row in {table} (")), "{err}");
        assert!(err.contains(key), "{err}");
        assert!(err.contains(&format!("service={SVC:?}")), "{err}");
        assert!(err.contains(what), "{err}");
    };

    // A value of the wrong type (SQLite stores it: column types are affinities).
    corrupt("UPDATE pubsub_nodes SET persist_items = 'maybe'");
    let err = load_error(&mut store);
    check(&err, "pubsub_nodes", "node=\"photos\"", "persist_items");
    corrupt("UPDATE pubsub_nodes SET persist_items = 1");

    // A value the CHECK constraints should have kept out.
    corrupt("UPDATE pubsub_nodes SET access_model = 'bogus'");
    check(
        &load_error(&mut store),
        "pubsub_nodes",
        "node=\"photos\"",
        "bogus",
    );
    corrupt("UPDATE pubsub_nodes SET access_model = 'open'");

    corrupt("UPDATE pubsub_subscriptions SET jid = '@@'");
    check(
        &load_error(&mut store),
        "pubsub_subscriptions",
        "subid=\"s1\"",
        "jid",
    );
    corrupt("UPDATE pubsub_subscriptions SET jid = 'sub@example.com/r'");

    corrupt("UPDATE pubsub_affiliations SET affiliation = 'emperor'");
    check(
        &load_error(&mut store),
        "pubsub_affiliations",
        "jid=\"owner@example.com\"",
        "emperor",
    );
    corrupt("UPDATE pubsub_affiliations SET affiliation = 'owner'");
    assert_eq!(store.load_nodes().unwrap().len(), 1);

    // Items are read on demand; a bad one names its node and id.
    corrupt("UPDATE pubsub_items SET payload = CAST('<unclosed' AS BLOB)");
    let err = store
        .get_item(&NodeName::from("photos"), &ItemId::from("i1"))
        .unwrap_err()
        .0;
    check(&err, "pubsub_items", "item_id=\"i1\"", "payload");
}

/// A removed account's affiliations and subscriptions leave every PEP service's rows
/// (open or not); components' rows are left to the service (issue 8, item 14).
#[test]
fn delete_pep_entity_cleans_pep_rows_only() {
    let sqlite = SqliteStore::open_in_memory().unwrap();
    let sub = |j: &str, id: &str| Subscription {
        jid: jid(j),
        state: SubState::Subscribed,
        options: SubOptions::default(),
        subid: SubId::from(id),
    };
    for service in ["bob@example.com", SVC] {
        let mut node = simple_node("n");
        node.affiliations
            .push((bare("alice@example.com"), Affiliation::Publisher));
        node.affiliations
            .push((bare("alice@example.comx"), Affiliation::Publisher));
        node.subscriptions = vec![
            sub("alice@example.com", "1"),
            sub("alice@example.com/phone", "2"),
            sub("alice@example.comx/r", "3"),
            sub("carol@example.com/r", "4"),
        ];
        sqlite.pubsub(service).create_node(&node).unwrap();
    }
    sqlite.delete_pep_entity("alice@example.com").unwrap();
    let load = |service: &str| sqlite.pubsub(service).load_nodes().unwrap().remove(0);
    let pep = load("bob@example.com");
    let subs: Vec<String> = pep
        .subscriptions
        .iter()
        .map(|s| s.jid.to_string())
        .collect();
    assert_eq!(subs, ["alice@example.comx/r", "carol@example.com/r"]);
    let affs: Vec<String> = pep
        .affiliations
        .iter()
        .map(|(j, _)| j.to_string())
        .collect();
    assert_eq!(affs, ["alice@example.comx", "owner@example.com"]);
    let component = load(SVC);
    assert_eq!(component.subscriptions.len(), 4);
    assert_eq!(component.affiliations.len(), 3);
}
