//! Archive queries (XEP-0313 on pubsub nodes): `Service::may_retrieve` and
//! `Service::archive`, chronological order, forward and backward RSM paging, id and time
//! bounds, `ids`, `with`, the page cap, and errors.

mod common;

use common::*;
use hydrant_pubsub::{
    ArchivePage, ArchiveQuery, Error, ItemId, MAM_FEATURES, NodeName, Request, ServiceConfig,
};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";
const EVE: &str = "eve@example.com/x";

/// A node `n` (max_items = max) with items i000..i{n-1}, published one per millisecond
/// (the harness clock advances 1 ms per request).
fn with_items(n: usize) -> Harness {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#max_items", "max")]);
    for i in 0..n {
        h.publish(ALICE, "n", &format!("i{i:03}"), &format!("{i}"))
            .unwrap();
    }
    h
}

fn archive(h: &Harness, who: &str, q: &ArchiveQuery) -> Result<ArchivePage, Error> {
    h.svc.archive(&jid(who), &NodeName::from("n"), q, &h.rel)
}

fn ok(h: &Harness, q: &ArchiveQuery) -> ArchivePage {
    archive(h, BOB, q).unwrap_or_else(|e| panic!("{q:?}: {e:?}"))
}

fn ids(p: &ArchivePage) -> Vec<String> {
    p.items.iter().map(|i| i.id.to_string()).collect()
}

fn range(a: usize, b: usize) -> Vec<String> {
    (a..b).map(|i| format!("i{i:03}")).collect()
}

fn id(s: &str) -> ItemId {
    ItemId::from(s)
}

#[test]
fn everything_oldest_first_complete_and_counted() {
    let h = with_items(30);
    let p = ok(&h, &ArchiveQuery::default());
    assert_eq!(ids(&p), range(0, 30));
    assert!(p.complete);
    assert_eq!(p.count, Some(30));
    assert_eq!(p.first_index, Some(0));
    let seqs: Vec<u64> = p.items.iter().map(|i| i.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

#[test]
fn forward_pages_with_after_have_no_gaps_or_duplicates() {
    let h = with_items(30);
    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let p = ok(
            &h,
            &ArchiveQuery {
                max: Some(10),
                after: after.clone(),
                ..ArchiveQuery::default()
            },
        );
        pages += 1;
        assert_eq!(p.count, Some(30));
        assert_eq!(p.first_index, Some(seen.len() as u64));
        seen.extend(ids(&p));
        after = p.items.last().map(|i| i.id.clone());
        if p.complete {
            break;
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3, "the third page is complete");
    assert_eq!(seen, range(0, 30));
}

#[test]
fn after_id_gives_what_followed() {
    let h = with_items(30);
    let p = ok(
        &h,
        &ArchiveQuery {
            after_id: Some(id("i011")),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(12, 30));
    assert!(p.complete);
    assert_eq!(p.count, Some(18));
    // Between two known items.
    let p = ok(
        &h,
        &ArchiveQuery {
            after_id: Some(id("i011")),
            before_id: Some(id("i015")),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(12, 15));
    // Paging within an after-id query: the page cut and the count are independent.
    let p = ok(
        &h,
        &ArchiveQuery {
            after_id: Some(id("i011")),
            max: Some(5),
            after: Some(id("i020")),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(21, 26));
    assert_eq!(
        (p.count, p.first_index, p.complete),
        (Some(18), Some(9), false)
    );
}

#[test]
fn last_page_and_backward_paging() {
    let h = with_items(30);
    let p = ok(
        &h,
        &ArchiveQuery {
            max: Some(5),
            before: Some(String::new()),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(25, 30), "still oldest first within the page");
    assert!(!p.complete);
    assert_eq!(p.first_index, Some(25));
    let p = ok(
        &h,
        &ArchiveQuery {
            max: Some(5),
            before: Some("i025".into()),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(20, 25));
    let p = ok(
        &h,
        &ArchiveQuery {
            max: Some(5),
            before: Some("i005".into()),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(0, 5));
    assert!(p.complete, "nothing before the oldest item");
}

#[test]
fn time_range_is_inclusive() {
    let h = with_items(30);
    let all = ok(&h, &ArchiveQuery::default());
    let t = |k: usize| all.items[k].published_ms;
    let p = ok(
        &h,
        &ArchiveQuery {
            start_ms: Some(t(20)),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(20, 30));
    let p = ok(
        &h,
        &ArchiveQuery {
            start_ms: Some(t(3)),
            end_ms: Some(t(6)),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), range(3, 7));
    assert_eq!(p.count, Some(4));
    let p = ok(
        &h,
        &ArchiveQuery {
            start_ms: Some(t(29) + 1),
            ..ArchiveQuery::default()
        },
    );
    assert!(p.items.is_empty() && p.complete);
    assert_eq!((p.count, p.first_index), (Some(0), None));
}

#[test]
fn ids_in_chronological_order_and_all_must_exist() {
    let h = with_items(10);
    let p = ok(
        &h,
        &ArchiveQuery {
            ids: Some(vec![
                "i007".into(),
                "i002".into(),
                "i004".into(),
                "i002".into(),
            ]),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), ["i002", "i004", "i007"]);
    assert_eq!((p.count, p.complete), (Some(3), true));
    let p = ok(
        &h,
        &ArchiveQuery {
            ids: Some(vec!["i007".into(), "i002".into(), "i004".into()]),
            max: Some(2),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), ["i002", "i004"]);
    assert!(!p.complete);
    let p = ok(
        &h,
        &ArchiveQuery {
            ids: Some(vec!["i007".into(), "i002".into(), "i004".into()]),
            after: Some(id("i004")),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), ["i007"]);
    assert_eq!(p.first_index, Some(2));
    let e = archive(
        &h,
        BOB,
        &ArchiveQuery {
            ids: Some(vec!["i001".into(), "nope".into()]),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(e, Err(Error::ItemNotFound));
    let p = ok(
        &h,
        &ArchiveQuery {
            ids: Some(Vec::new()),
            ..ArchiveQuery::default()
        },
    );
    assert!(p.items.is_empty());
}

#[test]
fn unknown_uids_nodes_and_bad_combinations() {
    let h = with_items(3);
    for q in [
        ArchiveQuery {
            after_id: Some(id("nope")),
            ..ArchiveQuery::default()
        },
        ArchiveQuery {
            before_id: Some(id("nope")),
            ..ArchiveQuery::default()
        },
        ArchiveQuery {
            after: Some(id("nope")),
            ..ArchiveQuery::default()
        },
        ArchiveQuery {
            before: Some("nope".into()),
            ..ArchiveQuery::default()
        },
    ] {
        assert_eq!(archive(&h, BOB, &q), Err(Error::ItemNotFound), "{q:?}");
    }
    let both = ArchiveQuery {
        after: Some(id("i000")),
        before: Some("i002".into()),
        ..ArchiveQuery::default()
    };
    assert!(matches!(archive(&h, BOB, &both), Err(Error::BadRequest(_))));
    let e = h.svc.archive(
        &jid(BOB),
        &NodeName::from("missing"),
        &ArchiveQuery::default(),
        &h.rel,
    );
    assert_eq!(e, Err(Error::NodeNotFound));
}

#[test]
fn access_is_the_item_retrieval_rule() {
    let mut h = with_items(3);
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#access_model", "whitelist")])
        )),
    );
    let n = NodeName::from("n");
    assert_eq!(
        h.svc.may_retrieve(&n, &jid(EVE), &h.rel),
        Err(Error::ClosedNode)
    );
    assert_eq!(
        archive(&h, EVE, &ArchiveQuery::default()),
        Err(Error::ClosedNode)
    );
    assert_eq!(h.svc.may_retrieve(&n, &jid(ALICE), &h.rel), Ok(()));
    assert_eq!(
        h.svc
            .may_retrieve(&NodeName::from("missing"), &jid(ALICE), &h.rel),
        Err(Error::NodeNotFound)
    );
    // Whitelisted as a member: allowed.
    h.ok_set(
        ALICE,
        &owner(
            "<affiliations node='n'><affiliation jid='eve@example.com' affiliation='member'/></affiliations>",
        ),
    );
    assert_eq!(
        ids(&archive(&h, EVE, &ArchiveQuery::default()).unwrap()).len(),
        3
    );
}

#[test]
fn with_filters_by_publisher() {
    let mut h = Harness::new();
    h.create_with(
        ALICE,
        "n",
        &[
            ("pubsub#max_items", "max"),
            ("pubsub#publish_model", "open"),
        ],
    );
    for i in 0..600 {
        let who = if i % 3 == 0 { BOB } else { ALICE };
        h.publish(who, "n", &format!("i{i:03}"), "x").unwrap();
    }
    let bob_items: Vec<String> = (0..600).step_by(3).map(|i| format!("i{i:03}")).collect();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let p = ok(
            &h,
            &ArchiveQuery {
                with: Some(jid("bob@example.com")),
                max: Some(150),
                after: after.clone(),
                ..ArchiveQuery::default()
            },
        );
        // Counted by the store on the publisher column, without reading payloads.
        assert_eq!(p.count, Some(200));
        seen.extend(ids(&p));
        after = p.items.last().map(|i| i.id.clone());
        if p.complete {
            break;
        }
    }
    assert_eq!(seen, bob_items);
    let p = ok(
        &h,
        &ArchiveQuery {
            with: Some(jid("bob@example.com/other")),
            ..ArchiveQuery::default()
        },
    );
    assert!(p.items.is_empty(), "a full JID matches that resource only");
    let p = ok(
        &h,
        &ArchiveQuery {
            with: Some(jid(BOB)),
            max: Some(3),
            before: Some(String::new()),
            ..ArchiveQuery::default()
        },
    );
    assert_eq!(ids(&p), ["i591", "i594", "i597"]);
}

#[test]
fn pages_are_capped_by_max_page_items() {
    let cfg = ServiceConfig {
        max_page_items: 7,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create_with(ALICE, "n", &[("pubsub#max_items", "max")]);
    for i in 0..20 {
        h.publish(ALICE, "n", &format!("i{i:03}"), "x").unwrap();
    }
    for max in [None, Some(100)] {
        let p = ok(
            &h,
            &ArchiveQuery {
                max,
                ..ArchiveQuery::default()
            },
        );
        assert_eq!(ids(&p), range(0, 7));
        assert!(!p.complete);
    }
    let p = ok(
        &h,
        &ArchiveQuery {
            max: Some(0),
            ..ArchiveQuery::default()
        },
    );
    assert!(p.items.is_empty() && !p.complete);
    assert_eq!(p.count, Some(20));
}

#[test]
fn republishing_moves_an_item_to_the_end() {
    let mut h = with_items(5);
    h.publish(ALICE, "n", "i001", "again").unwrap();
    let p = ok(&h, &ArchiveQuery::default());
    assert_eq!(ids(&p), ["i000", "i002", "i003", "i004", "i001"]);
}

#[test]
fn disco_advertises_mam_only_when_configured() {
    let info = |h: &mut Harness, node: Option<&str>| match h
        .svc
        .execute(
            &jid(BOB),
            Request::DiscoInfo {
                node: node.map(NodeName::from),
            },
            &h.rel,
            1,
        )
        .unwrap()
        .0
    {
        hydrant_pubsub::Reply::DiscoInfo(d) => d.features,
        other => panic!("{other:?}"),
    };
    let mut h = with_items(1);
    for node in [None, Some("n")] {
        let f = info(&mut h, node);
        assert!(MAM_FEATURES.iter().all(|m| !f.contains(m)), "{f:?}");
    }
    let mut h = Harness::with(
        ServiceConfig {
            mam: true,
            ..ServiceConfig::default()
        },
        SERVICE,
    );
    h.create(ALICE, "n");
    for node in [None, Some("n")] {
        let f = info(&mut h, node);
        assert!(MAM_FEATURES.iter().all(|m| f.contains(m)), "{f:?}");
    }
}

/// The other way to catch up, with plain items retrieval (XEP-0060 6.5): its pages are
/// newest first, so "after the last item I saw" is RSM `<before>LAST</before>` (the
/// page just newer than LAST), then `<before>` the page's `<first>` (its newest item),
/// until a page comes back short. Gap-free, duplicate-free.
#[test]
fn items_retrieval_catches_up_by_paging_with_before() {
    let mut h = with_items(30);
    let mut got: Vec<String> = Vec::new();
    let mut cursor = "i011".to_owned();
    loop {
        let reply = h
            .ok_get(
                BOB,
                &ps(&format!(
                    "<items node='n'/><set xmlns='http://jabber.org/protocol/rsm'>\
                     <max>7</max><before>{cursor}</before></set>"
                )),
            )
            .unwrap();
        let mut page = Harness::reply_item_ids(&reply);
        let n = page.len();
        page.reverse(); // newest first on the wire: make it chronological
        got.extend(page.iter().map(ToString::to_string));
        if n < 7 {
            break;
        }
        let first = reply
            .get_child("set", "http://jabber.org/protocol/rsm")
            .and_then(|s| s.get_child("first", "http://jabber.org/protocol/rsm"))
            .map(hydrant_proto::Element::text)
            .unwrap();
        assert_eq!(
            first,
            *page.last().unwrap(),
            "<first> is the newest of the page"
        );
        cursor = first;
    }
    assert_eq!(got, range(12, 30));
}

#[test]
fn ids_count_once_and_at_most_a_page_of_them() {
    let cfg = ServiceConfig {
        max_page_items: 4,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create_with(ALICE, "n", &[("pubsub#max_items", "max")]);
    for i in 0..10 {
        h.publish(ALICE, "n", &format!("i{i:03}"), "x").unwrap();
    }
    let q = |names: &[&str]| ArchiveQuery {
        ids: Some(names.iter().map(|s| id(s)).collect()),
        ..ArchiveQuery::default()
    };
    let p = ok(&h, &q(&["i002", "i002", "i004", "i001", "i004", "i003"]));
    assert_eq!(ids(&p), ["i001", "i002", "i003", "i004"]);
    assert_eq!(p.count, Some(4));
    assert_eq!(
        archive(&h, BOB, &q(&["i000", "i001", "i002", "i003", "i004"])),
        Err(Error::TooManyIds { limit: 4 })
    );
}

/// An `ids` query naming many large items reads only the payloads of one page: the byte
/// budget is applied to the stored lengths first. Plain pages likewise.
#[test]
fn large_items_are_judged_by_stored_length_before_reading() {
    let mut svc = hydrant_pubsub::Service::open(
        jid(SERVICE),
        CountingStore::default(),
        ServiceConfig::default(),
    )
    .unwrap();
    let rel = hydrant_pubsub::StaticRelations::default();
    let run = |svc: &mut hydrant_pubsub::Service<CountingStore>, payload: String, now| {
        let req =
            hydrant_pubsub::xep0060::parse(hydrant_proto::IqType::Set, &xml(&payload)).unwrap();
        svc.handle(&jid(ALICE), req, &rel, now).unwrap();
    };
    run(
        &mut svc,
        ps(&format!(
            "<create node='n'/><configure>{}</configure>",
            config_form(&[("pubsub#max_items", "max")])
        )),
        1,
    );
    let big = "x".repeat(3_000);
    for i in 0..50 {
        run(
            &mut svc,
            ps(&format!(
                "<publish node='n'><item id='i{i:03}'><entry xmlns='urn:test'>{big}</entry></item></publish>"
            )),
            2 + i,
        );
    }
    let rel = hydrant_pubsub::StaticRelations::default();
    let n = NodeName::from("n");
    for (what, q) in [
        (
            "ids",
            ArchiveQuery {
                ids: Some((0..50).map(|i| id(&format!("i{i:03}"))).collect()),
                max_bytes: Some(10_000),
                ..ArchiveQuery::default()
            },
        ),
        (
            "all",
            ArchiveQuery {
                max_bytes: Some(10_000),
                ..ArchiveQuery::default()
            },
        ),
        (
            "with",
            ArchiveQuery {
                with: Some(jid("alice@example.com")),
                max_bytes: Some(10_000),
                ..ArchiveQuery::default()
            },
        ),
    ] {
        svc.store().items_read.set(0);
        let p = svc.archive(&jid(BOB), &n, &q, &rel).unwrap();
        assert_eq!(ids(&p), range(0, 3), "{what}");
        assert!(!p.complete, "{what}");
        assert_eq!(p.count, Some(50), "{what}");
        assert_eq!(svc.store().items_read.get(), 3, "{what}: payloads read");
    }
}
