//! Discovery (XEP-0060 5.1–5.5).

mod common;

use common::*;
use hydrant_proto::BareJid;
use hydrant_pubsub::{FEATURES, ServiceConfig};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";

#[test]
fn service_features_are_exactly_the_implemented_ones() {
    let mut h = Harness::new();
    let q = h
        .ok_get(
            BOB,
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .unwrap();
    let id = q
        .get_child("identity", "http://jabber.org/protocol/disco#info")
        .unwrap();
    assert_eq!(
        (id.attr("category"), id.attr("type")),
        (Some("pubsub"), Some("service"))
    );
    let features: Vec<&str> = q
        .children()
        .filter(|c| c.name() == "feature")
        .map(|c| c.attr("var").unwrap())
        .collect();
    let mut want: Vec<&str> = FEATURES.to_vec();
    want.extend([
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "http://jabber.org/protocol/pubsub",
        "http://jabber.org/protocol/rsm",
    ]);
    want.sort_unstable();
    assert_eq!(features, want);
    assert!(
        !features.iter().any(|f| f.ends_with("#auto-create")),
        "no auto-create on a component"
    );
    for must in [
        "#publish",
        "#subscribe",
        "#retrieve-items",
        "#access-authorize",
        "#config-node-max",
        "#multi-subscribe",
    ] {
        assert!(features.iter().any(|f| f.ends_with(must)), "{must}");
    }
    let mut pep = Harness::with(ServiceConfig::pep(), "alice@example.com");
    let q = pep
        .ok_get(
            BOB,
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .unwrap()
        .to_string();
    assert!(
        q.contains("type='pep'") && q.contains("pubsub#auto-create"),
        "{q}"
    );
}

#[test]
fn nodes_node_info_and_items() {
    let mut h = Harness::new();
    h.create_with(
        ALICE,
        "photos",
        &[("pubsub#title", "Photos"), ("pubsub#type", "urn:test")],
    );
    h.create(ALICE, "other");
    let q = h
        .ok_get(
            BOB,
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .unwrap()
        .to_string();
    assert_eq!(
        q,
        "<query xmlns='http://jabber.org/protocol/disco#items'><item jid='pubsub.example.com' node='other'/>\
         <item jid='pubsub.example.com' node='photos' name='Photos'/></query>"
    );
    let info = h
        .ok_get(
            BOB,
            "<query xmlns='http://jabber.org/protocol/disco#info' node='photos'/>",
        )
        .unwrap()
        .to_string();
    assert!(
        info.contains("<identity category='pubsub' type='leaf'/>"),
        "{info}"
    );
    assert!(info.contains("http://jabber.org/protocol/pubsub#meta-data"));
    assert!(
        info.contains(
            "<field var='pubsub#owner' type='jid-multi'><value>alice@example.com</value></field>"
        ),
        "{info}"
    );
    assert!(
        info.contains(
            "<field var='pubsub#type' type='text-single'><value>urn:test</value></field>"
        )
    );
    h.err_get(
        BOB,
        "<query xmlns='http://jabber.org/protocol/disco#info' node='nope'/>",
    )
    .is("item-not-found", None);
    h.publish(ALICE, "photos", "p1", "x").unwrap();
    h.publish(ALICE, "photos", "p2", "x").unwrap();
    let items = h
        .ok_get(
            BOB,
            "<query xmlns='http://jabber.org/protocol/disco#items' node='photos'/>",
        )
        .unwrap()
        .to_string();
    assert_eq!(
        items,
        "<query xmlns='http://jabber.org/protocol/disco#items' node='photos'><item jid='pubsub.example.com' name='p2'/>\
         <item jid='pubsub.example.com' name='p1'/></query>"
    );
    // Item listing follows item retrieval rights.
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='photos'>{}</configure>",
            config_form(&[("pubsub#access_model", "whitelist")])
        )),
    );
    h.err_get(
        BOB,
        "<query xmlns='http://jabber.org/protocol/disco#items' node='photos'/>",
    )
    .is("not-allowed", Some("closed-node"));
    // Outcasts do not see the node.
    h.ok_set(ALICE, &owner("<affiliations node='photos'><affiliation jid='bob@example.com' affiliation='outcast'/></affiliations>"));
    let q = h
        .ok_get(
            BOB,
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .unwrap()
        .to_string();
    assert!(!q.contains("photos"), "{q}");
}

/// Relations that must not be consulted: listing a component's nodes is decided in
/// memory (only an explicit outcast affiliation hides a node).
struct NoLookups;

impl hydrant_pubsub::Relations for NoLookups {
    fn has_presence_subscription(&self, _: &BareJid, _: &BareJid) -> bool {
        panic!("disco#items read a roster (presence)")
    }
    fn roster_groups(&self, _: &BareJid, _: &BareJid) -> Vec<String> {
        panic!("disco#items read a roster (groups)")
    }
}

/// The nodes of a service are paged with RSM (XEP-0059): at most a page per reply, a
/// `<set/>` when there is more, `<after/>` walks every node once; from memory.
#[test]
fn node_listing_is_paged_with_rsm_from_memory() {
    let cfg = hydrant_pubsub::ServiceConfig {
        max_page_items: 5,
        ..hydrant_pubsub::ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    for k in 0..12 {
        let access = if k % 2 == 0 { "presence" } else { "roster" };
        h.create_with(
            "alice@example.com/x",
            &format!("n{k:02}"),
            &[("pubsub#access_model", access)],
        );
    }
    h.ok_set(
        "alice@example.com/x",
        &owner(
            "<affiliations node='n03'><affiliation jid='eve@example.com' affiliation='outcast'/></affiliations>",
        ),
    );
    let rel = NoLookups;
    let mut ask = |rsm: &str| {
        let q = format!("<query xmlns='http://jabber.org/protocol/disco#items'>{rsm}</query>");
        let req = hydrant_pubsub::xep0060::parse(hydrant_proto::IqType::Get, &xml(&q)).unwrap();
        h.svc
            .handle(&jid("eve@example.com/e"), req, &rel, 1)
            .unwrap()
            .reply
            .unwrap()
    };
    let nodes = |q: &hydrant_proto::Element| -> Vec<String> {
        q.children()
            .filter(|c| c.name() == "item")
            .map(|c| c.attr("node").unwrap().to_owned())
            .collect()
    };
    let rsm_text = |q: &hydrant_proto::Element, name: &str| {
        q.get_child("set", "http://jabber.org/protocol/rsm")
            .and_then(|s| s.get_child(name, "http://jabber.org/protocol/rsm"))
            .map(hydrant_proto::Element::text)
    };
    let first = ask("");
    assert_eq!(nodes(&first), ["n00", "n01", "n02", "n04", "n05"]);
    assert_eq!(rsm_text(&first, "count").as_deref(), Some("11"));
    let mut seen = nodes(&first);
    let mut last = rsm_text(&first, "last").unwrap();
    loop {
        let page = ask(&format!(
            "<set xmlns='http://jabber.org/protocol/rsm'><max>4</max><after>{last}</after></set>"
        ));
        let got = nodes(&page);
        if got.is_empty() {
            break;
        }
        assert!(got.len() <= 4);
        seen.extend(got);
        last = rsm_text(&page, "last").unwrap();
    }
    let want: Vec<String> = (0..12)
        .filter(|k| *k != 3)
        .map(|k| format!("n{k:02}"))
        .collect();
    assert_eq!(seen, want);
}
