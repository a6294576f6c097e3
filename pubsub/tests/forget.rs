//! Forgetting a removed account (issue 8, item 14): nodes it owned alone are deleted
//! (their other subscribers told), and elsewhere its affiliations and subscriptions of
//! any resource are gone, in memory and in the store.

mod common;

use common::*;
use hydrant_pubsub::{Affiliation, Effect, Event, NodeName, Store};

const ALICE: &str = "alice@example.com/phone";
const ALICE2: &str = "alice@example.com/laptop";
const BOB: &str = "bob@example.com/laptop";
const CAROL: &str = "carol@example.com/desk";

fn affiliation_of(h: &mut Harness, node: &str, who: &str) -> Option<Affiliation> {
    h.svc
        .store_mut()
        .load_nodes()
        .unwrap()
        .into_iter()
        .find(|n| n.name.as_str() == node)?
        .affiliations
        .into_iter()
        .find(|(j, _)| j.as_str() == who)
        .map(|(_, a)| a)
}

fn stored_subscribers(h: &mut Harness, node: &str) -> Vec<String> {
    let recs = h.svc.store_mut().load_nodes().unwrap();
    let n = recs.iter().find(|n| n.name.as_str() == node).unwrap();
    let mut out: Vec<String> = n.subscriptions.iter().map(|s| s.jid.to_string()).collect();
    out.sort();
    out
}

#[test]
fn forget_deletes_sole_owned_nodes_and_strips_everything_else() {
    let mut h = Harness::new();
    // alice owns "mine" alone; bob and alice own "shared"; bob owns "bobs", where alice
    // is a publisher on one resource's subscription and an outcast elsewhere.
    h.create(ALICE, "mine");
    h.create(BOB, "shared");
    h.ok_set(
        BOB,
        &owner("<affiliations node='shared'><affiliation jid='alice@example.com' affiliation='owner'/></affiliations>"),
    );
    h.create(BOB, "bobs");
    h.ok_set(
        BOB,
        &owner("<affiliations node='bobs'><affiliation jid='alice@example.com' affiliation='publisher'/></affiliations>"),
    );
    h.create(BOB, "banned");
    for (who, node) in [
        (CAROL, "mine"),
        (ALICE, "mine"),
        (ALICE, "shared"),
        (ALICE2, "shared"),
        (CAROL, "shared"),
        (ALICE, "bobs"),
        (ALICE2, "banned"),
    ] {
        h.subscribe(who, node).unwrap();
    }
    h.ok_set(
        BOB,
        &owner("<affiliations node='banned'><affiliation jid='alice@example.com' affiliation='outcast'/></affiliations>"),
    );

    let effects = h.svc.forget(&bare("alice@example.com")).unwrap();

    // "mine" is gone; carol (not alice) hears of it.
    let names: Vec<String> = h.svc.node_names().map(ToString::to_string).collect();
    assert_eq!(names, ["banned", "bobs", "shared"]);
    assert!(
        !h.svc
            .store_mut()
            .load_nodes()
            .unwrap()
            .iter()
            .any(|n| n.name.as_str() == "mine")
    );
    assert_eq!(effects.len(), 1, "{effects:?}");
    let Effect::Notify(n) = &effects[0] else {
        panic!("{effects:?}")
    };
    assert!(matches!(n.event, Event::Delete { .. }), "{n:?}");
    assert_eq!(n.node, NodeName::from("mine"));
    assert_eq!(Harness::recipients(n), vec![CAROL.to_owned()]);

    // Elsewhere: no affiliation (owner, publisher, outcast alike), no subscription of
    // any resource, in the store and in the fan-out snapshot.
    for node in ["shared", "bobs", "banned"] {
        assert_eq!(
            affiliation_of(&mut h, node, "alice@example.com"),
            None,
            "{node}"
        );
        assert!(
            !stored_subscribers(&mut h, node)
                .iter()
                .any(|j| j.starts_with("alice@")),
            "{node}"
        );
        assert!(
            !h.svc
                .subscribers(&NodeName::from(node))
                .unwrap()
                .iter()
                .any(|s| s.jid.to_string().starts_with("alice@")),
            "{node}"
        );
    }
    assert_eq!(
        affiliation_of(&mut h, "shared", "bob@example.com"),
        Some(Affiliation::Owner)
    );
    assert_eq!(stored_subscribers(&mut h, "shared"), [CAROL]);

    // Idempotent.
    assert!(h.svc.forget(&bare("alice@example.com")).unwrap().is_empty());
}
