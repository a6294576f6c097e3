//! Retrieve items (XEP-0060 6.5) with RSM paging (XEP-0059).

mod common;

use std::collections::HashSet;
use std::fmt::Write as _;

use common::*;
use hydrant_pubsub::ServiceConfig;

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";

fn with_items(n: usize) -> Harness {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#max_items", "max")]);
    for i in 0..n {
        h.publish(ALICE, "n", &format!("i{i:03}"), &format!("{i}"))
            .unwrap();
    }
    h
}

fn rsm(after: Option<&str>, before: Option<&str>, max: u32) -> String {
    let mut s = format!("<set xmlns='http://jabber.org/protocol/rsm'><max>{max}</max>");
    if let Some(a) = after {
        let _ = write!(s, "<after>{a}</after>");
    }
    if let Some(b) = before {
        let _ = write!(s, "<before>{b}</before>");
    }
    s + "</set>"
}

fn set_field<'a>(
    reply: &'a hydrant_proto::Element,
    name: &str,
) -> Option<&'a hydrant_proto::Element> {
    reply
        .get_child("set", "http://jabber.org/protocol/rsm")?
        .get_child(name, "http://jabber.org/protocol/rsm")
}

#[test]
fn all_items_newest_first_with_payloads() {
    let mut h = with_items(3);
    let reply = h.ok_get(BOB, &ps("<items node='n'/>")).unwrap();
    assert_eq!(Harness::reply_item_ids(&reply), ["i002", "i001", "i000"]);
    assert!(
        reply
            .to_string()
            .contains("<item id='i002'><entry xmlns='urn:test'>2</entry></item>")
    );
    assert!(
        reply
            .get_child("set", "http://jabber.org/protocol/rsm")
            .is_none(),
        "complete: no <set/>"
    );
}

#[test]
fn max_items_returns_most_recent() {
    let mut h = with_items(5);
    let reply = h
        .ok_get(BOB, &ps("<items node='n' max_items='2'/>"))
        .unwrap();
    assert_eq!(Harness::reply_item_ids(&reply), ["i004", "i003"]);
    h.err_get(BOB, &ps("<items node='n' max_items='lots'/>"))
        .is("bad-request", None);
}

#[test]
fn items_by_id() {
    let mut h = with_items(3);
    let reply = h
        .ok_get(
            BOB,
            &ps("<items node='n'><item id='i001'/><item id='gone'/></items>"),
        )
        .unwrap();
    assert_eq!(Harness::reply_item_ids(&reply), ["i001"]);
    // None found: an empty result (6.5.9.11).
    let reply = h
        .ok_get(BOB, &ps("<items node='n'><item id='gone'/></items>"))
        .unwrap();
    assert!(Harness::reply_item_ids(&reply).is_empty());
}

#[test]
fn rsm_forward_paging_walks_everything_once() {
    let mut h = with_items(23);
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let reply = h
            .ok_get(
                BOB,
                &(ps("<items node='n'/>")
                    .replace("</pubsub>", &(rsm(after.as_deref(), None, 5) + "</pubsub>"))),
            )
            .unwrap();
        let ids = Harness::reply_item_ids(&reply);
        assert_eq!(set_field(&reply, "count").unwrap().text(), "23");
        if ids.is_empty() {
            assert!(set_field(&reply, "first").is_none());
            break;
        }
        let first = set_field(&reply, "first").unwrap();
        assert_eq!(first.text(), ids[0]);
        assert_eq!(first.attr("index").unwrap(), seen.len().to_string());
        assert_eq!(
            set_field(&reply, "last").unwrap().text(),
            *ids.last().unwrap()
        );
        assert!(ids.len() <= 5);
        after = Some(ids.last().unwrap().clone());
        seen.extend(ids);
    }
    assert_eq!(seen.len(), 23, "no gaps");
    assert_eq!(
        seen.iter().collect::<HashSet<_>>().len(),
        23,
        "no duplicates"
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(seen, sorted, "newest first throughout");
}

#[test]
fn rsm_backward_paging_and_last_page() {
    let mut h = with_items(12);
    // Empty <before/>: the last page (oldest items), still newest-first inside.
    let q = |h: &mut Harness, before: &str| {
        h.ok_get(
            BOB,
            &(ps("<items node='n'/>")
                .replace("</pubsub>", &(rsm(None, Some(before), 5) + "</pubsub>"))),
        )
        .unwrap()
    };
    let reply = q(&mut h, "");
    assert_eq!(
        Harness::reply_item_ids(&reply),
        ["i004", "i003", "i002", "i001", "i000"]
    );
    assert_eq!(set_field(&reply, "first").unwrap().attr("index"), Some("7"));
    let mut seen = Harness::reply_item_ids(&reply);
    let mut before = seen[0].clone();
    loop {
        let reply = q(&mut h, &before);
        let ids = Harness::reply_item_ids(&reply);
        if ids.is_empty() {
            break;
        }
        before = ids[0].clone();
        let mut page = ids;
        page.extend(seen);
        seen = page;
    }
    let expect: Vec<String> = (0..12).rev().map(|i| format!("i{i:03}")).collect();
    assert_eq!(seen, expect);
}

#[test]
fn rsm_index_max_zero_and_unknown_uid() {
    let mut h = with_items(10);
    let reply = h
        .ok_get(BOB, &ps("<items node='n'/><set xmlns='http://jabber.org/protocol/rsm'><max>3</max><index>4</index></set>"))
        .unwrap();
    assert_eq!(Harness::reply_item_ids(&reply), ["i005", "i004", "i003"]);
    assert_eq!(set_field(&reply, "first").unwrap().attr("index"), Some("4"));
    // max 0: just the count.
    let reply = h
        .ok_get(
            BOB,
            &ps("<items node='n'/><set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>"),
        )
        .unwrap();
    assert!(Harness::reply_item_ids(&reply).is_empty());
    assert_eq!(set_field(&reply, "count").unwrap().text(), "10");
    h.err_get(
        BOB,
        &(ps("<items node='n'/>")
            .replace("</pubsub>", &(rsm(Some("nope"), None, 3) + "</pubsub>"))),
    )
    .is("item-not-found", None);
    h.err_get(
        BOB,
        &ps("<items node='n'/><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>"),
    )
    .is("bad-request", None);
}

#[test]
fn large_nodes_are_paged_without_rsm() {
    let cfg = ServiceConfig {
        max_page_items: 4,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create_with(ALICE, "n", &[("pubsub#max_items", "20")]);
    for i in 0..9 {
        h.publish(ALICE, "n", &format!("i{i}"), "x").unwrap();
    }
    let reply = h.ok_get(BOB, &ps("<items node='n'/>")).unwrap();
    assert_eq!(Harness::reply_item_ids(&reply), ["i8", "i7", "i6", "i5"]);
    assert_eq!(set_field(&reply, "count").unwrap().text(), "9");
    assert_eq!(set_field(&reply, "last").unwrap().text(), "i5");
}

#[test]
fn items_errors() {
    let mut h = with_items(2);
    h.err_get(BOB, &ps("<items node='nope'/>"))
        .is("item-not-found", None);
    h.err_get(BOB, &ps("<items/>"))
        .is("bad-request", Some("nodeid-required"));
    h.err_get(BOB, &ps("<items node='n' subid='zz'/>"))
        .is("not-acceptable", Some("invalid-subid"));
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='outcast'/></affiliations>"));
    h.err_get(BOB, &ps("<items node='n'/>"))
        .is("forbidden", None);
    for (model, cond, pubsub) in [
        (
            "presence",
            "not-authorized",
            "presence-subscription-required",
        ),
        ("roster", "not-authorized", "not-in-roster-group"),
        ("whitelist", "not-allowed", "closed-node"),
        ("authorize", "not-authorized", "not-subscribed"),
    ] {
        h.ok_set(
            ALICE,
            &owner(&format!(
                "<configure node='n'>{}</configure>",
                config_form(&[("pubsub#access_model", model)])
            )),
        );
        h.err_get("carol@example.com/x", &ps("<items node='n'/>"))
            .is(cond, Some(pubsub));
        // The owner always may.
        h.ok_get(ALICE, &ps("<items node='n'/>"));
    }
    // publish-only may not retrieve.
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='dave@example.com' affiliation='publish-only'/></affiliations>"));
    h.err_get("dave@example.com/x", &ps("<items node='n'/>"))
        .is("forbidden", None);
}

#[test]
fn authorize_node_subid_rules() {
    let mut h = with_items(1);
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#access_model", "authorize")])
        )),
    );
    // An owner-granted subscription with two subids requires naming one.
    h.ok_set(ALICE, &owner(&format!("<subscriptions node='n'><subscription jid='{BOB}' subscription='subscribed'/></subscriptions>")));
    h.ok_get(BOB, &ps("<items node='n'/>"));
    h.ok_set(ALICE, &owner("<subscriptions node='n'><subscription jid='bob@example.com' subscription='subscribed'/></subscriptions>"));
    h.err_get(BOB, &ps("<items node='n'/>"))
        .is("bad-request", Some("subid-required"));
    let subid = h
        .svc
        .subscribers(&hydrant_pubsub::NodeName::from("n"))
        .unwrap()[0]
        .subids[0]
        .to_string();
    h.ok_get(BOB, &ps(&format!("<items node='n' subid='{subid}'/>")));
}

#[test]
fn pages_are_capped_in_bytes_and_rsm_walks_on_without_gaps() {
    let cfg = ServiceConfig {
        max_page_bytes: 10_000,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create_with(ALICE, "n", &[("pubsub#max_items", "max")]);
    let big = "x".repeat(3_000);
    for i in 0..10 {
        h.publish(ALICE, "n", &format!("i{i:03}"), &big).unwrap();
    }
    // Without RSM: a byte-capped subset, newest first, flagged incomplete with <set/>.
    let reply = h.ok_get(BOB, &ps("<items node='n'/>")).unwrap();
    let first_page = Harness::reply_item_ids(&reply);
    assert!(
        !first_page.is_empty() && first_page.len() < 10,
        "{first_page:?}"
    );
    assert_eq!(first_page[0], "i009");
    assert!(
        set_field(&reply, "last").is_some(),
        "incomplete page says so"
    );
    // Walking with <after> reaches every item exactly once.
    let mut seen: Vec<String> = first_page.clone();
    let mut last = set_field(&reply, "last").unwrap().text();
    while seen.len() < 10 {
        let reply = h
            .ok_get(
                BOB,
                &ps(&format!("<items node='n'/>{}", rsm(Some(&last), None, 100))),
            )
            .unwrap();
        let ids = Harness::reply_item_ids(&reply);
        assert!(!ids.is_empty(), "a page always holds at least one item");
        seen.extend(ids);
        last = set_field(&reply, "last").unwrap().text();
    }
    let want: Vec<String> = (0..10).rev().map(|i| format!("i{i:03}")).collect();
    assert_eq!(seen, want);
    // max_items is capped the same way, keeping the newest.
    let reply = h
        .ok_get(BOB, &ps("<items node='n' max_items='10'/>"))
        .unwrap();
    let ids = Harness::reply_item_ids(&reply);
    assert!(ids.len() < 10 && ids[0] == "i009", "{ids:?}");
}

#[test]
fn items_by_id_count_once_newest_first_and_at_most_a_page() {
    let mut h = with_items(3);
    let reply = h
        .ok_get(
            BOB,
            &ps("<items node='n'><item id='i001'/><item id='i001'/><item id='i002'/></items>"),
        )
        .unwrap();
    assert_eq!(Harness::reply_item_ids(&reply), ["i002", "i001"]);

    let cfg = ServiceConfig {
        max_page_items: 4,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create(ALICE, "n");
    h.publish(ALICE, "n", "a", "x").unwrap();
    let named = |ids: &[&str]| {
        let items = ids.iter().fold(String::new(), |mut s, i| {
            let _ = write!(s, "<item id='{i}'/>");
            s
        });
        ps(&format!("<items node='n'>{items}</items>"))
    };
    // Repeats do not count against the limit; a fifth distinct id does.
    h.ok_get(BOB, &named(&["a", "a", "b", "c", "a", "d", "d"]));
    let e = h.err_get(BOB, &named(&["a", "b", "c", "d", "e"]));
    e.is("policy-violation", None);
    assert_eq!(e.kind, "modify");
}

/// A request naming many large items reads (parses) only the items of one page: the
/// byte cap is decided on the stored lengths. The same holds for `max_items` and RSM.
#[test]
fn large_items_are_judged_by_stored_length_before_reading() {
    use hydrant_proto::IqType;
    use hydrant_pubsub::{Service, StaticRelations, xep0060};
    let cfg = ServiceConfig {
        max_page_bytes: 10_000,
        ..ServiceConfig::default()
    };
    let mut svc = Service::open(jid(SERVICE), CountingStore::default(), cfg).unwrap();
    let rel = StaticRelations::default();
    let mut now = 1_000;
    let mut run = |svc: &mut Service<CountingStore>, kind, payload: &str| {
        now += 1;
        let req = xep0060::parse(kind, &xml(payload)).unwrap();
        svc.handle(&jid(ALICE), req, &rel, now).unwrap().reply
    };
    run(
        &mut svc,
        IqType::Set,
        &ps(&format!(
            "<create node='n'/><configure>{}</configure>",
            config_form(&[("pubsub#max_items", "max")])
        )),
    );
    let big = "x".repeat(3_000);
    for i in 0..50 {
        run(
            &mut svc,
            IqType::Set,
            &ps(&format!(
                "<publish node='n'><item id='i{i:02}'><entry xmlns='urn:test'>{big}</entry></item></publish>"
            )),
        );
    }
    let all = (0..50).fold(String::new(), |mut s, i| {
        let _ = write!(s, "<item id='i{i:02}'/>");
        s
    });
    for (what, request) in [
        ("by id", ps(&format!("<items node='n'>{all}</items>"))),
        ("max_items", ps("<items node='n' max_items='50'/>")),
        ("all", ps("<items node='n'/>")),
        (
            "rsm",
            ps(&format!("<items node='n'/>{}", rsm(None, None, 50))),
        ),
    ] {
        svc.store().items_read.set(0);
        let reply = run(&mut svc, IqType::Get, &request).unwrap();
        let ids = Harness::reply_item_ids(&reply);
        assert_eq!(ids, ["i49", "i48", "i47"], "{what}");
        assert_eq!(svc.store().items_read.get(), 3, "{what}: payloads read");
        if what == "by id" {
            assert_eq!(set_field(&reply, "count").unwrap().text(), "50");
        }
    }
}

/// An items request is checked with the service at hand and read without it
/// (`Service::items_read`): the reads need only the store, so the server lets go of the
/// service's lock before a page is read and parsed.
#[test]
fn items_are_checked_with_the_service_and_read_without_it() {
    let mut h = Harness::new();
    h.create_with(ALICE, "open", &[]);
    h.create_with(ALICE, "closed", &[("pubsub#access_model", "whitelist")]);
    for (node, id) in [("open", "a"), ("open", "b"), ("closed", "c")] {
        h.publish(ALICE, node, id, id).unwrap();
    }
    let req = |node: &str| {
        hydrant_pubsub::xep0060::parse(
            hydrant_proto::IqType::Get,
            &xml(&ps(&format!("<items node='{node}'/>"))),
        )
        .unwrap()
    };
    // Refused while the service is at hand, as `handle` would.
    let refused = h.svc.items_read(&jid(BOB), &req("closed"), &h.rel, h.now);
    assert!(matches!(refused, Some(Err(_))), "a whitelist node");
    // Not an items request: left to `handle`.
    let other = hydrant_pubsub::xep0060::parse(
        hydrant_proto::IqType::Set,
        &xml(&ps("<subscribe node='open' jid='bob@example.com/laptop'/>")),
    )
    .unwrap();
    assert!(h.svc.items_read(&jid(BOB), &other, &h.rel, h.now).is_none());
    // Allowed: read later, the service free to move on meanwhile (the read holds its
    // own store handle: for SQLite a connection pool, here a copy of the memory store).
    let read = h
        .svc
        .items_read(&jid(BOB), &req("open"), &h.rel, h.now)
        .expect("an items request")
        .expect("open access");
    h.publish(ALICE, "open", "c2", "later").unwrap();
    let reply = read.run().unwrap().reply.expect("items").to_string();
    for id in ["a", "b"] {
        assert!(reply.contains(&format!("id='{id}'")), "{id}: {reply}");
    }
}
