//! Discovery (XEP-0060 5.1–5.5).

mod common;

use common::*;
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
