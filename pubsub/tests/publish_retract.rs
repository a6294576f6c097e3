//! Publish (XEP-0060 7.1) with publish-options (7.1.5), retract (7.2), item history
//! bounds (max_items, the service cap).

mod common;

use common::*;
use hydrant_pubsub::{Event, NodeName, ServiceConfig};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";
const CAROL: &str = "carol@example.com/desk";

fn setup() -> Harness {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h
}

#[test]
fn publish_with_and_without_item_id() {
    let mut h = setup();
    h.subscribe(BOB, "n").unwrap();
    let reply = h.publish(ALICE, "n", "first", "hello").unwrap().unwrap();
    assert_eq!(
        reply.to_string(),
        format!("<pubsub xmlns='{PS}'><publish node='n'><item id='first'/></publish></pubsub>")
    );
    let n = h.notification();
    assert_eq!(Harness::recipients(n), [BOB]);
    assert_eq!(
        rendered(n),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><item id='first'>\
         <entry xmlns='urn:test'>hello</entry></item></items></event>"
    );
    // No id: the service generates one and returns it.
    let reply = h
        .ok_set(
            ALICE,
            &ps("<publish node='n'><item><entry xmlns='urn:test'/></item></publish>"),
        )
        .unwrap();
    let id = reply
        .get_child("publish", PS)
        .unwrap()
        .get_child("item", PS)
        .unwrap()
        .attr("id")
        .unwrap()
        .to_owned();
    assert!(!id.is_empty() && id != "first");
    assert_eq!(h.stored_ids("n"), [id.as_str(), "first"]);
    // Same id again replaces the item (and makes it the newest).
    h.publish(ALICE, "n", "first", "again").unwrap();
    assert_eq!(h.stored_ids("n"), ["first", id.as_str()]);
}

#[test]
fn publish_errors() {
    let mut h = setup();
    // Not a publisher.
    h.publish(BOB, "n", "x", "y")
        .unwrap_err()
        .is("forbidden", None);
    // Node missing (non-PEP: no auto-create).
    h.publish(ALICE, "nope", "x", "y")
        .unwrap_err()
        .is("item-not-found", None);
    // Node id missing.
    h.err_set(ALICE, &ps("<publish><item/></publish>"))
        .is("bad-request", Some("nodeid-required"));
    // Persistent node, no item: item-required.
    h.err_set(ALICE, &ps("<publish node='n'/>"))
        .is("bad-request", Some("item-required"));
    // Payload node, empty item: payload-required.
    h.err_set(ALICE, &ps("<publish node='n'><item id='e'/></publish>"))
        .is("bad-request", Some("payload-required"));
    // Two payloads: invalid-payload.
    h.err_set(
        ALICE,
        &ps("<publish node='n'><item><a xmlns='urn:a'/><b xmlns='urn:b'/></item></publish>"),
    )
    .is("bad-request", Some("invalid-payload"));
    // Wrong payload namespace for pubsub#type.
    h.create_with(ALICE, "typed", &[("pubsub#type", "urn:test")]);
    h.err_set(
        ALICE,
        &ps("<publish node='typed'><item><a xmlns='urn:a'/></item></publish>"),
    )
    .is("bad-request", Some("invalid-payload"));
    h.publish(ALICE, "typed", "ok", "fine").unwrap();
    assert!(
        h.stored_ids("n").is_empty(),
        "nothing stored by failed publishes"
    );
}

#[test]
fn payload_too_big() {
    let cfg = ServiceConfig {
        max_payload_bytes: 100,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create(ALICE, "n");
    let e = h.publish(ALICE, "n", "big", &"x".repeat(200)).unwrap_err();
    assert_eq!(e.kind, "modify");
    e.is("not-acceptable", Some("payload-too-big"));
    h.publish(ALICE, "n", "small", "x").unwrap();
    assert_eq!(h.stored_ids("n"), ["small"]);
    // Default limit is 256 KiB.
    assert_eq!(ServiceConfig::default().max_payload_bytes, 262_144);
}

#[test]
fn transient_and_notification_only_nodes() {
    let mut h = setup();
    // Transient + notification-only: no item allowed, event with empty <items/>.
    h.create_with(
        ALICE,
        "tn",
        &[
            ("pubsub#persist_items", "0"),
            ("pubsub#deliver_payloads", "0"),
        ],
    );
    h.subscribe(BOB, "tn").unwrap();
    h.err_set(ALICE, &ps("<publish node='tn'><item id='x'/></publish>"))
        .is("bad-request", Some("item-forbidden"));
    h.ok_set(ALICE, &ps("<publish node='tn'/>"));
    assert_eq!(
        rendered(h.notification()),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='tn'/></event>"
    );
    assert!(h.stored_ids("tn").is_empty());

    // Persistent + notification-only: payload stored, not delivered.
    h.create_with(ALICE, "pn", &[("pubsub#deliver_payloads", "0")]);
    h.subscribe(BOB, "pn").unwrap();
    h.ok_set(ALICE, &ps("<publish node='pn'><item id='a'/></publish>"));
    h.publish(ALICE, "pn", "b", "secret").unwrap();
    assert_eq!(
        rendered(h.notification()),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='pn'><item id='b'/></items></event>"
    );
    assert_eq!(h.stored_ids("pn"), ["b", "a"]);

    // Transient payload node: keeps only the last item (for send-last), retract and purge
    // are not available.
    h.create_with(ALICE, "tp", &[("pubsub#persist_items", "0")]);
    h.err_set(ALICE, &ps("<publish node='tp'/>"))
        .is("bad-request", Some("payload-required"));
    h.publish(ALICE, "tp", "1", "x").unwrap();
    h.publish(ALICE, "tp", "2", "y").unwrap();
    assert_eq!(h.stored_ids("tp"), ["2"]);
    let e = h.err_set(ALICE, &ps("<retract node='tp'><item id='2'/></retract>"));
    e.is("feature-not-implemented", Some("unsupported"));
    assert_eq!(e.feature.as_deref(), Some("persistent-items"));
}

#[test]
fn deliver_notifications_off_sends_nothing() {
    let mut h = setup();
    h.create_with(ALICE, "q", &[("pubsub#deliver_notifications", "0")]);
    h.subscribe(BOB, "q").unwrap();
    h.publish(ALICE, "q", "a", "x").unwrap();
    assert!(h.effects.is_empty());
}

#[test]
fn publish_options_preconditions() {
    let mut h = setup();
    let with_opts = |fields: &[(&str, &str)]| {
        ps(&format!(
            "<publish node='n'><item id='p'><e xmlns='urn:t'/></item></publish><publish-options>{}</publish-options>",
            form("http://jabber.org/protocol/pubsub#publish-options", fields)
        ))
    };
    h.ok_set(
        ALICE,
        &with_opts(&[
            ("pubsub#access_model", "open"),
            ("pubsub#persist_items", "true"),
        ]),
    );
    let e = h.err_set(ALICE, &with_opts(&[("pubsub#access_model", "whitelist")]));
    assert_eq!(e.kind, "cancel");
    e.is("conflict", Some("precondition-not-met"));
    // Unknown fields fail the precondition (7.1.5).
    h.err_set(ALICE, &with_opts(&[("pubsub#frobnicate", "1")]))
        .is("conflict", Some("precondition-not-met"));
    // max_items compares by effect: "max" meets a node whose limit is the cap.
    h.create_with(ALICE, "m", &[("pubsub#max_items", "max")]);
    h.ok_set(
        ALICE,
        &ps(&format!(
            "<publish node='m'><item id='p'><e xmlns='urn:t'/></item></publish><publish-options>{}</publish-options>",
            form("http://jabber.org/protocol/pubsub#publish-options", &[("pubsub#max_items", "max")])
        )),
    );
    assert_eq!(
        h.stored_ids("n"),
        ["p"],
        "failed preconditions stored nothing"
    );
}

#[test]
fn publish_model_and_affiliations() {
    let mut h = setup();
    // publish-only and publisher may publish; member may not.
    h.ok_set(
        ALICE,
        &owner(
            "<affiliations node='n'><affiliation jid='bob@example.com' affiliation='publish-only'/>\
                <affiliation jid='carol@example.com' affiliation='member'/></affiliations>",
        ),
    );
    h.publish(BOB, "n", "b1", "x").unwrap();
    h.publish(CAROL, "n", "c1", "x")
        .unwrap_err()
        .is("forbidden", None);
    // publish_model=subscribers: a subscribed member may publish.
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#publish_model", "subscribers")])
        )),
    );
    h.publish(CAROL, "n", "c1", "x")
        .unwrap_err()
        .is("forbidden", None);
    h.subscribe(CAROL, "n").unwrap();
    h.publish(CAROL, "n", "c1", "x").unwrap();
    // publish_model=open: anyone but outcasts.
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#publish_model", "open")])
        )),
    );
    h.publish("dave@example.com/x", "n", "d1", "x").unwrap();
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='dave@example.com' affiliation='outcast'/></affiliations>"));
    h.publish("dave@example.com/x", "n", "d2", "x")
        .unwrap_err()
        .is("forbidden", None);
}

#[test]
fn retract_with_and_without_notify() {
    let mut h = setup();
    h.subscribe(BOB, "n").unwrap();
    h.publish(ALICE, "n", "a", "x").unwrap();
    h.publish(ALICE, "n", "b", "x").unwrap();
    // Node default notify_retract = true.
    h.ok_set(ALICE, &ps("<retract node='n'><item id='a'/></retract>"));
    assert_eq!(
        rendered(h.notification()),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'><retract id='a'/></items></event>"
    );
    // notify='false' overrides.
    h.ok_set(
        ALICE,
        &ps("<retract node='n' notify='false'><item id='b'/></retract>"),
    );
    assert!(h.effects.is_empty());
    assert!(h.stored_ids("n").is_empty());
    // notify='true' forces a notification on a node with notify_retract off.
    h.create_with(ALICE, "q", &[("pubsub#notify_retract", "0")]);
    h.subscribe(BOB, "q").unwrap();
    h.publish(ALICE, "q", "a", "x").unwrap();
    h.publish(ALICE, "q", "b", "x").unwrap();
    h.ok_set(ALICE, &ps("<retract node='q'><item id='a'/></retract>"));
    assert!(h.effects.is_empty());
    h.ok_set(
        ALICE,
        &ps("<retract node='q' notify='1'><item id='b'/></retract>"),
    );
    assert!(matches!(h.notification().event, Event::Retract { .. }));
}

#[test]
fn retract_errors() {
    let mut h = setup();
    h.publish(ALICE, "n", "a", "x").unwrap();
    h.err_set(ALICE, &ps("<retract node='n'/>"))
        .is("bad-request", Some("item-required"));
    h.err_set(ALICE, &ps("<retract node='n'><item/></retract>"))
        .is("bad-request", Some("item-required"));
    h.err_set(ALICE, &ps("<retract><item id='a'/></retract>"))
        .is("bad-request", Some("nodeid-required"));
    h.err_set(ALICE, &ps("<retract node='n'><item id='zz'/></retract>"))
        .is("item-not-found", None);
    h.err_set(ALICE, &ps("<retract node='nope'><item id='a'/></retract>"))
        .is("item-not-found", None);
    h.err_set(BOB, &ps("<retract node='n'><item id='a'/></retract>"))
        .is("forbidden", None);
    // publish-only may retract only its own items.
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='publish-only'/></affiliations>"));
    h.publish(BOB, "n", "b", "x").unwrap();
    h.err_set(BOB, &ps("<retract node='n'><item id='a'/></retract>"))
        .is("forbidden", None);
    h.ok_set(BOB, &ps("<retract node='n'><item id='b'/></retract>"));
    // A publisher may retract anybody's.
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='publisher'/></affiliations>"));
    h.ok_set(BOB, &ps("<retract node='n'><item id='a'/></retract>"));
    assert!(h.stored_ids("n").is_empty());
}

#[test]
fn max_items_trims_history() {
    let mut h = setup();
    h.create_with(ALICE, "three", &[("pubsub#max_items", "3")]);
    for i in 0..10 {
        h.publish(ALICE, "three", &format!("i{i}"), "x").unwrap();
    }
    assert_eq!(h.stored_ids("three"), ["i9", "i8", "i7"]);
}

#[test]
fn max_means_the_service_cap() {
    let cfg = ServiceConfig {
        max_items_cap: 25,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create_with(ALICE, "n", &[("pubsub#max_items", "max")]);
    for i in 0..40 {
        h.publish(ALICE, "n", &format!("i{i:02}"), "x").unwrap();
    }
    let ids = h.stored_ids("n");
    assert_eq!(ids.len(), 25);
    assert_eq!(ids[0], "i39");
    assert_eq!(ids[24], "i15");
    assert_eq!(ServiceConfig::default().max_items_cap, 10_000);
    assert!(h.svc.node_config(&NodeName::from("n")).is_some());
}

/// One item per publish (XEP-0060 7.1: batches are not offered): a second item is
/// refused and nothing is stored. A retract names each item once and at most a page of
/// them, judged without reading payloads.
#[test]
fn items_per_publish_and_retract_are_bounded() {
    let cfg = hydrant_pubsub::ServiceConfig {
        max_page_items: 3,
        ..hydrant_pubsub::ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create(ALICE, "n");
    h.subscribe(BOB, "n").unwrap();
    h.err_set(
        ALICE,
        &ps("<publish node='n'><item id='a'><e xmlns='urn:t'/></item>\
             <item id='b'><e xmlns='urn:t'/></item></publish>"),
    )
    .is("bad-request", None);
    assert!(h.stored_ids("n").is_empty());
    for id in ["a", "b", "c", "d"] {
        h.publish(ALICE, "n", id, "x").unwrap();
    }
    h.err_set(
        ALICE,
        &ps("<retract node='n'><item id='a'/><item id='b'/><item id='c'/><item id='d'/></retract>"),
    )
    .is("policy-violation", None);
    assert_eq!(h.stored_ids("n").len(), 4, "nothing retracted");
    h.ok_set(
        ALICE,
        &ps("<retract node='n'><item id='a'/><item id='a'/><item id='b'/></retract>"),
    );
    assert_eq!(
        rendered(h.notification()),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'>\
         <retract id='a'/><retract id='b'/></items></event>"
    );
}
