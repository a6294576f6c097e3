//! Owner use cases: delete (XEP-0060 8.4), purge (8.5), manage subscriptions (8.8) and
//! affiliations (8.9); and the entity's own lists (5.6, 5.7).

mod common;

use common::*;
use hydrant_pubsub::NodeName;

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";
const CAROL: &str = "carol@example.com/desk";

#[test]
fn delete_with_redirect_notifies_every_subscriber() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#access_model", "authorize")]);
    h.ok_set(ALICE, &owner(&format!("<subscriptions node='n'><subscription jid='{BOB}' subscription='subscribed'/></subscriptions>")));
    h.subscribe(CAROL, "n").unwrap(); // pending
    h.err_set(BOB, &owner("<delete node='n'/>"))
        .is("forbidden", None);
    h.err_set(ALICE, &owner("<delete node='nope'/>"))
        .is("item-not-found", None);
    h.ok_set(
        ALICE,
        &owner("<delete node='n'><redirect uri='xmpp:pubsub.example.com?;node=new'/></delete>"),
    );
    let n = h.notification();
    assert_eq!(
        Harness::recipients(n),
        [BOB, CAROL],
        "pending subscribers too"
    );
    assert_eq!(
        rendered(n),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><delete node='n'>\
         <redirect uri='xmpp:pubsub.example.com?;node=new'/></delete></event>"
    );
    assert!(h.svc.subscribers(&NodeName::from("n")).is_none());
    h.create(BOB, "n"); // the name is free again, and starts empty
    assert!(h.stored_ids("n").is_empty());
}

#[test]
fn delete_without_notify_delete() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#notify_delete", "0")]);
    h.subscribe(BOB, "n").unwrap();
    h.ok_set(ALICE, &owner("<delete node='n'/>"));
    assert!(h.effects.is_empty());
}

#[test]
fn purge() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.subscribe(BOB, "n").unwrap();
    h.publish(ALICE, "n", "a", "x").unwrap();
    h.err_set(BOB, &owner("<purge node='n'/>"))
        .is("forbidden", None);
    h.err_set(ALICE, &owner("<purge node='zz'/>"))
        .is("item-not-found", None);
    h.ok_set(ALICE, &owner("<purge node='n'/>"));
    assert_eq!(
        rendered(h.notification()),
        "<event xmlns='http://jabber.org/protocol/pubsub#event'><purge node='n'/></event>"
    );
    assert!(h.stored_ids("n").is_empty());
    // Items published after a purge continue the node's sequence.
    h.publish(ALICE, "n", "b", "x").unwrap();
    assert_eq!(h.stored_ids("n"), ["b"]);
    // Persistence off: feature-not-implemented persistent-items.
    h.create_with(ALICE, "t", &[("pubsub#persist_items", "0")]);
    let e = h.err_set(ALICE, &owner("<purge node='t'/>"));
    e.is("feature-not-implemented", Some("unsupported"));
    assert_eq!(e.feature.as_deref(), Some("persistent-items"));
}

#[test]
fn manage_subscriptions() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.subscribe(BOB, "n").unwrap();
    let list = h
        .ok_get(ALICE, &owner("<subscriptions node='n'/>"))
        .unwrap()
        .to_string();
    assert!(
        list.contains(&format!(
            "<subscription jid='{BOB}' subscription='subscribed'"
        )),
        "{list}"
    );
    h.err_get(BOB, &owner("<subscriptions node='n'/>"))
        .is("forbidden", None);
    h.err_get(ALICE, &owner("<subscriptions node='zz'/>"))
        .is("item-not-found", None);
    // Add Carol, remove Bob, in one request; each is told.
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<subscriptions node='n'><subscription jid='{CAROL}' subscription='subscribed'/>\
             <subscription jid='{BOB}' subscription='none'/></subscriptions>"
        )),
    );
    let told: Vec<String> = h.notifications().iter().map(|n| rendered(n)).collect();
    assert_eq!(told.len(), 2);
    assert!(told[0].contains(&format!("jid='{CAROL}' subscription='subscribed'")));
    assert!(told[1].contains(&format!("jid='{BOB}' subscription='none'")));
    let jids: Vec<String> = h
        .svc
        .subscribers(&NodeName::from("n"))
        .unwrap()
        .iter()
        .map(|s| s.jid.to_string())
        .collect();
    assert_eq!(jids, [CAROL]);
    // A bad entry fails the whole request: nothing changes.
    let e = h.err_set(
        ALICE,
        &owner(&format!(
            "<subscriptions node='n'><subscription jid='{CAROL}' subscription='none'/>\
             <subscription jid='{BOB}' subid='nope' subscription='subscribed'/></subscriptions>"
        )),
    );
    e.is("not-acceptable", None);
    assert_eq!(h.svc.subscribers(&NodeName::from("n")).unwrap().len(), 1);
    h.err_set(BOB, &owner(&format!("<subscriptions node='n'><subscription jid='{BOB}' subscription='subscribed'/></subscriptions>")))
        .is("forbidden", None);
    // An entry without 'subscription' changes nothing.
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<subscriptions node='n'><subscription jid='{CAROL}'/></subscriptions>"
        )),
    );
    assert_eq!(h.svc.subscribers(&NodeName::from("n")).unwrap().len(), 1);
}

#[test]
fn unconfigured_subscription_becomes_subscribed_after_options() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.ok_set(ALICE, &owner(&format!("<subscriptions node='n'><subscription jid='{BOB}' subscription='unconfigured'/></subscriptions>")));
    assert!(h.svc.subscribers(&NodeName::from("n")).unwrap().is_empty());
    let own = h.ok_get(BOB, &ps("<subscriptions/>")).unwrap().to_string();
    assert!(own.contains("subscription='unconfigured'"), "{own}");
    h.ok_set(
        BOB,
        &ps(&format!(
            "<options node='n' jid='{BOB}'>{}</options>",
            form(
                "http://jabber.org/protocol/pubsub#subscribe_options",
                &[("pubsub#deliver", "1")]
            )
        )),
    );
    assert_eq!(h.svc.subscribers(&NodeName::from("n")).unwrap().len(), 1);
}

#[test]
fn manage_affiliations() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.ok_set(
        ALICE,
        &owner(
            "<affiliations node='n'><affiliation jid='bob@example.com' affiliation='publisher'/>\
                <affiliation jid='carol@example.com/any' affiliation='owner'/></affiliations>",
        ),
    );
    let list = h
        .ok_get(ALICE, &owner("<affiliations node='n'/>"))
        .unwrap()
        .to_string();
    assert!(
        list.contains("jid='bob@example.com' affiliation='publisher'"),
        "{list}"
    );
    assert!(
        list.contains("jid='carol@example.com' affiliation='owner'"),
        "bare JIDs only: {list}"
    );
    h.err_get(BOB, &owner("<affiliations node='n'/>"))
        .is("forbidden", None);
    h.err_set(BOB, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='owner'/></affiliations>"))
        .is("forbidden", None);
    h.err_get(ALICE, &owner("<affiliations node='zz'/>"))
        .is("item-not-found", None);
    h.err_set(ALICE, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='king'/></affiliations>"))
        .is("bad-request", None);
    // Owners may resign while another owner remains...
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='alice@example.com' affiliation='none'/></affiliations>"));
    // ...but the last owner may not (8.9.2.4), and nothing of the request applies.
    let e = h.err_set(
        CAROL,
        &owner(
            "<affiliations node='n'><affiliation jid='bob@example.com' affiliation='member'/>\
                <affiliation jid='carol@example.com' affiliation='publisher'/></affiliations>",
        ),
    );
    e.is("not-acceptable", None);
    let list = h
        .ok_get(CAROL, &owner("<affiliations node='n'/>"))
        .unwrap()
        .to_string();
    assert!(
        list.contains("jid='bob@example.com' affiliation='publisher'"),
        "unchanged: {list}"
    );
}

#[test]
fn outcast_leaves_the_snapshot() {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.subscribe(BOB, "n").unwrap();
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='outcast'/></affiliations>"));
    assert!(h.svc.subscribers(&NodeName::from("n")).unwrap().is_empty());
    h.publish(ALICE, "n", "a", "x").unwrap();
    assert!(h.effects.is_empty());
}

#[test]
fn own_subscriptions_and_affiliations() {
    let mut h = Harness::new();
    h.create(ALICE, "a");
    h.create(ALICE, "b");
    h.subscribe(BOB, "a").unwrap();
    h.ok_set(BOB, &ps("<subscribe node='b' jid='bob@example.com'/>"));
    let s = h.ok_get(BOB, &ps("<subscriptions/>")).unwrap();
    let subs = s.get_child("subscriptions", PS).unwrap();
    let got: Vec<(String, String)> = subs
        .children()
        .map(|c| {
            (
                c.attr("node").unwrap().to_owned(),
                c.attr("jid").unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("a".into(), BOB.into()),
            ("b".into(), "bob@example.com".into())
        ]
    );
    let s = h.ok_get(BOB, &ps("<subscriptions node='b'/>")).unwrap();
    assert_eq!(
        s.get_child("subscriptions", PS).unwrap().children().count(),
        1
    );
    h.err_get(BOB, &ps("<subscriptions node='zz'/>"))
        .is("item-not-found", None);
    let a = h.ok_get(ALICE, &ps("<affiliations/>")).unwrap().to_string();
    assert_eq!(
        a,
        format!(
            "<pubsub xmlns='{PS}'><affiliations><affiliation node='a' affiliation='owner'/><affiliation node='b' affiliation='owner'/></affiliations></pubsub>"
        )
    );
    let a = h.ok_get(BOB, &ps("<affiliations/>")).unwrap().to_string();
    assert_eq!(a, format!("<pubsub xmlns='{PS}'><affiliations/></pubsub>"));
}
