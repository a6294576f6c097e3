//! Create (XEP-0060 8.1), configure (8.2), default configuration (8.3).

mod common;

use common::*;
use hydrant_pubsub::{CreatePolicy, Event, MaxItems, NodeName, ServiceConfig};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";

#[test]
fn create_named_node_and_conflict() {
    let mut h = Harness::new();
    let reply = h.ok_set(ALICE, &ps("<create node='photos'/>")).unwrap();
    assert_eq!(
        reply.get_child("create", PS).unwrap().attr("node"),
        Some("photos")
    );
    h.err_set(BOB, &ps("<create node='photos'/>"))
        .is("conflict", None);
    // The creator's bare JID owns it.
    let affs = h
        .ok_get(ALICE, &owner("<affiliations node='photos'/>"))
        .unwrap();
    assert!(
        affs.to_string()
            .contains("jid='alice@example.com' affiliation='owner'"),
        "{affs}"
    );
}

#[test]
fn instant_node_gets_a_generated_name() {
    let mut h = Harness::new();
    let reply = h.ok_set(ALICE, &ps("<create/>")).unwrap();
    let name = reply
        .get_child("create", PS)
        .unwrap()
        .attr("node")
        .unwrap()
        .to_owned();
    assert!(!name.is_empty());
    let reply2 = h.ok_set(ALICE, &ps("<create/>")).unwrap();
    assert_ne!(
        reply2.get_child("create", PS).unwrap().attr("node"),
        Some(name.as_str())
    );
    assert!(h.svc.node_config(&NodeName::from(name.as_str())).is_some());
}

#[test]
fn create_and_configure() {
    let mut h = Harness::new();
    h.create_with(
        ALICE,
        "n",
        &[
            ("pubsub#access_model", "whitelist"),
            ("pubsub#max_items", "max"),
            ("pubsub#title", "Photos"),
            ("pubsub#notification_type", "normal"),
            ("pubsub#type", "urn:test"),
        ],
    );
    let c = h.svc.node_config(&NodeName::from("n")).unwrap();
    assert_eq!(c.access_model, hydrant_pubsub::AccessModel::Whitelist);
    assert_eq!(c.max_items, MaxItems::Max);
    assert_eq!(c.title, "Photos");
    assert_eq!(c.payload_type.as_deref(), Some("urn:test"));
}

#[test]
fn create_and_configure_with_bad_form_creates_nothing() {
    let mut h = Harness::new();
    // Invalid value: not-acceptable (8.2.5.2).
    h.err_set(
        ALICE,
        &ps(&format!(
            "<create node='n'/><configure>{}</configure>",
            config_form(&[("pubsub#access_model", "everyone")])
        )),
    )
    .is("not-acceptable", None);
    h.err_set(
        ALICE,
        &ps(&format!(
            "<create node='n'/><configure>{}</configure>",
            config_form(&[("pubsub#max_items", "-3")])
        )),
    )
    .is("not-acceptable", None);
    h.err_set(
        ALICE,
        &ps(&format!(
            "<create node='n'/><configure>{}</configure>",
            config_form(&[("pubsub#persist_items", "yes")])
        )),
    )
    .is("not-acceptable", None);
    // Wrong FORM_TYPE: bad-request.
    h.err_set(
        ALICE,
        &ps(&format!(
            "<create node='n'/><configure>{}</configure>",
            form("urn:other", &[("pubsub#title", "x")])
        )),
    )
    .is("bad-request", None);
    // <configure node=..> after <create/>: bad-request (8.1.3).
    h.err_set(ALICE, &ps("<create node='n'/><configure node='n'/>"))
        .is("bad-request", None);
    assert!(h.svc.node_names().next().is_none(), "nothing created");
}

#[test]
fn create_policy() {
    let cfg = ServiceConfig {
        create_policy: CreatePolicy::LocalUsers("example.com".into()),
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create(ALICE, "mine");
    h.err_set("eve@elsewhere.net/x", &ps("<create node='theirs'/>"))
        .is("forbidden", None);

    let cfg = ServiceConfig {
        create_policy: CreatePolicy::Nobody,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.err_set(ALICE, &ps("<create node='x'/>"))
        .is("forbidden", None);
    h.rel.admins.insert(bare("alice@example.com"));
    h.create(ALICE, "x");
}

#[test]
fn configure_get_and_errors() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    let reply = h.ok_get(ALICE, &owner("<configure node='n'/>")).unwrap();
    let s = reply.to_string();
    assert!(s.contains("<configure node='n'>"), "{s}");
    assert!(s.contains("http://jabber.org/protocol/pubsub#node_config"));
    for var in [
        "pubsub#access_model",
        "pubsub#publish_model",
        "pubsub#max_items",
        "pubsub#persist_items",
        "pubsub#deliver_payloads",
        "pubsub#deliver_notifications",
        "pubsub#notify_retract",
        "pubsub#notify_delete",
        "pubsub#notify_config",
        "pubsub#send_last_published_item",
        "pubsub#presence_based_delivery",
        "pubsub#notification_type",
        "pubsub#title",
        "pubsub#type",
    ] {
        assert!(s.contains(&format!("var='{var}'")), "{var} missing in {s}");
    }
    h.err_get(BOB, &owner("<configure node='n'/>"))
        .is("forbidden", None);
    h.err_get(ALICE, &owner("<configure node='nope'/>"))
        .is("item-not-found", None);
    h.err_get(ALICE, &owner("<configure/>"))
        .is("bad-request", Some("nodeid-required"));
}

#[test]
fn configure_submit_validates_everything_first() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    let before = h.svc.node_config(&NodeName::from("n")).unwrap().clone();
    // One good field, one bad: nothing applied.
    h.err_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[
                ("pubsub#title", "New"),
                ("pubsub#send_last_published_item", "sometimes")
            ])
        )),
    )
    .is("not-acceptable", None);
    assert_eq!(h.svc.node_config(&NodeName::from("n")).unwrap(), &before);
    h.err_set(
        BOB,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#title", "x")])
        )),
    )
    .is("forbidden", None);
    // Cancel: fine, nothing changes.
    h.ok_set(
        ALICE,
        &owner("<configure node='n'><x xmlns='jabber:x:data' type='cancel'/></configure>"),
    );
    assert_eq!(h.svc.node_config(&NodeName::from("n")).unwrap(), &before);

    // All the listed fields apply.
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[
                ("pubsub#access_model", "authorize"),
                ("pubsub#publish_model", "open"),
                ("pubsub#max_items", "50"),
                ("pubsub#persist_items", "true"),
                ("pubsub#deliver_payloads", "0"),
                ("pubsub#deliver_notifications", "1"),
                ("pubsub#notify_retract", "false"),
                ("pubsub#notify_delete", "0"),
                ("pubsub#notify_config", "1"),
                ("pubsub#send_last_published_item", "on_sub"),
                ("pubsub#presence_based_delivery", "1"),
                ("pubsub#notification_type", "normal"),
                ("pubsub#title", "T"),
                ("pubsub#type", "urn:x"),
            ])
        )),
    );
    let c = h.svc.node_config(&NodeName::from("n")).unwrap();
    assert_eq!(c.access_model, hydrant_pubsub::AccessModel::Authorize);
    assert_eq!(c.publish_model, hydrant_pubsub::PublishModel::Open);
    assert_eq!(c.max_items, MaxItems::Count(50));
    assert!(!c.deliver_payloads && !c.notify_retract && !c.notify_delete && c.notify_config);
    assert!(c.presence_based_delivery);
    assert_eq!(
        c.send_last_published_item,
        hydrant_pubsub::SendLastPublished::OnSub
    );
    assert_eq!(
        c.notification_type,
        hydrant_pubsub::NotificationType::Normal
    );
}

#[test]
fn max_items_above_cap_is_max() {
    let cfg = ServiceConfig {
        max_items_cap: 100,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create_with(ALICE, "n", &[("pubsub#max_items", "5000")]);
    assert_eq!(
        h.svc.node_config(&NodeName::from("n")).unwrap().max_items,
        MaxItems::Max
    );
    let s = h
        .ok_get(ALICE, &owner("<configure node='n'/>"))
        .unwrap()
        .to_string();
    assert!(s.contains("<field var='pubsub#max_items' type='text-single' label='Max number of items to persist (or max)'><value>max</value>"), "{s}");
}

#[test]
fn notify_config_sends_configuration_event() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#notify_config", "1")]);
    h.subscribe(BOB, "n").unwrap();
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#title", "Hi")])
        )),
    );
    let n = h.notification();
    assert_eq!(Harness::recipients(n), [BOB]);
    let Event::Configuration { form: Some(cfg) } = &n.event else {
        panic!("{:?}", n.event)
    };
    assert_eq!(cfg.title, "Hi");
    let s = rendered(n);
    assert!(s.starts_with("<event xmlns='http://jabber.org/protocol/pubsub#event'><configuration node='n'><x xmlns='jabber:x:data' type='result'>"), "{s}");

    // Notification-only node: an empty <configuration/>.
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#deliver_payloads", "0")])
        )),
    );
    assert_eq!(
        rendered(h.notification()),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><configuration node='n'/></event>"
    );
}

#[test]
fn default_configuration() {
    let mut h = Harness::new();
    let s = h.ok_get(BOB, &owner("<default/>")).unwrap().to_string();
    assert!(
        s.contains("<default><x xmlns='jabber:x:data' type='form'>"),
        "{s}"
    );
    assert!(s.contains("var='pubsub#access_model'"));
    assert!(
        h.ok_get(BOB, &ps("<default/>"))
            .unwrap()
            .to_string()
            .contains("pubsub#subscribe_options")
    );
}

#[test]
fn lowering_max_items_trims_oldest() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#max_items", "10")]);
    for i in 0..6 {
        h.publish(ALICE, "n", &format!("i{i}"), "x").unwrap();
    }
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='n'>{}</configure>",
            config_form(&[("pubsub#max_items", "2")])
        )),
    );
    assert_eq!(h.stored_ids("n"), ["i5", "i4"]);
}

/// Nodes one bare JID created are capped (every resource together; deleting one frees
/// its place; admins are exempt): XEP-0060 8.1.1 lets a service refuse creation by who
/// asks, `not-allowed`.
#[test]
fn nodes_per_creator_are_capped() {
    let cfg = hydrant_pubsub::ServiceConfig {
        max_nodes_per_creator: 2,
        ..hydrant_pubsub::ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create("alice@example.com/a", "n1");
    h.create("alice@example.com/b", "n2");
    let e = h.err_set("alice@example.com/c", &ps("<create node='n3'/>"));
    e.is("not-allowed", None);
    assert_eq!(e.kind, "cancel");
    h.err_set("alice@example.com/c", &ps("<create/>"))
        .is("not-allowed", None);
    h.create("bob@example.com/a", "b1");
    h.ok_set("alice@example.com/a", &owner("<delete node='n1'/>"));
    h.create("alice@example.com/c", "n3");
    h.rel.admins.insert(bare("root@example.com"));
    for k in 0..3 {
        h.create("root@example.com/x", &format!("r{k}"));
    }
}

/// On PEP the quota counts the account's nodes, auto-created ones included.
#[test]
fn pep_auto_create_counts_against_the_node_quota() {
    let cfg = hydrant_pubsub::ServiceConfig {
        max_nodes_per_creator: 2,
        ..hydrant_pubsub::ServiceConfig::pep()
    };
    let mut h = Harness::with(cfg, "juliet@example.com");
    h.publish("juliet@example.com/balcony", "a", "1", "x")
        .unwrap();
    h.publish("juliet@example.com/balcony", "b", "1", "x")
        .unwrap();
    h.publish("juliet@example.com/balcony", "c", "1", "x")
        .unwrap_err()
        .is("not-allowed", None);
    // Publishing to an existing node is not a creation.
    h.publish("juliet@example.com/balcony", "a", "2", "x")
        .unwrap();
}

/// Configuration text fields are bounded (`not-acceptable`, XEP-0060 8.2.5.2): title,
/// description, type, and the allowed roster groups taken together.
#[test]
fn config_text_fields_are_bounded() {
    let cfg = hydrant_pubsub::ServiceConfig {
        max_config_text_bytes: 16,
        ..hydrant_pubsub::ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create_with(ALICE, "n", &[("pubsub#title", "sixteen bytes ok")]);
    let long = "x".repeat(17);
    for field in ["pubsub#title", "pubsub#description", "pubsub#type"] {
        let e = h.err_set(
            ALICE,
            &owner(&format!(
                "<configure node='n'>{}</configure>",
                config_form(&[(field, &long)])
            )),
        );
        e.is("not-acceptable", None);
        let e = h.err_set(
            ALICE,
            &ps(&format!(
                "<create node='m'/><configure>{}</configure>",
                config_form(&[(field, &long)])
            )),
        );
        e.is("not-acceptable", None);
    }
    let groups = "<value>grp0</value><value>grp1</value><value>grp2</value>\
                  <value>grp3</value><value>grp4</value>";
    let form = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'>\
         <value>http://jabber.org/protocol/pubsub#node_config</value></field>\
         <field var='pubsub#roster_groups_allowed'>{groups}</field></x>"
    );
    h.err_set(
        ALICE,
        &owner(&format!("<configure node='n'>{form}</configure>")),
    )
    .is("not-acceptable", None);
}
