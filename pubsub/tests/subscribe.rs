//! Subscribe (XEP-0060 6.1), unsubscribe (6.2), options (6.3, 6.4), approval of pending
//! subscriptions (8.6), delivery snapshots and SHIM headers.

mod common;

use common::*;
use hydrant_pubsub::{Effect, Event, NodeName, ServiceConfig, SubState, xep0060};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";
const CAROL: &str = "carol@example.com/desk";

fn setup(fields: &[(&str, &str)]) -> Harness {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", fields);
    h
}

#[test]
fn subscribe_success_bare_and_full_jid() {
    let mut h = setup(&[]);
    let reply = h.subscribe(BOB, "n").unwrap().unwrap();
    let sub = reply.get_child("subscription", PS).unwrap();
    assert_eq!(sub.attr("node"), Some("n"));
    assert_eq!(sub.attr("jid"), Some(BOB));
    assert_eq!(sub.attr("subscription"), Some("subscribed"));
    assert!(sub.attr("subid").is_some_and(|s| !s.is_empty()));
    // The bare JID may be subscribed from any resource.
    h.ok_set(BOB, &ps("<subscribe node='n' jid='bob@example.com'/>"));
    let subs = h.svc.subscribers(&NodeName::from("n")).unwrap();
    let jids: Vec<String> = subs.iter().map(|s| s.jid.to_string()).collect();
    assert_eq!(jids, ["bob@example.com", BOB]);
    // Re-subscribing returns the same subscription.
    let again = h.subscribe(BOB, "n").unwrap().unwrap();
    assert_eq!(
        again.get_child("subscription", PS).unwrap().attr("subid"),
        sub.attr("subid")
    );
    assert_eq!(h.svc.subscribers(&NodeName::from("n")).unwrap().len(), 2);
}

#[test]
fn subscribe_errors() {
    let mut h = setup(&[]);
    let e = h.err_set(BOB, &ps("<subscribe node='n' jid='carol@example.com'/>"));
    assert_eq!(e.kind, "modify");
    e.is("bad-request", Some("invalid-jid"));
    h.subscribe(BOB, "nope")
        .unwrap_err()
        .is("item-not-found", None);
    h.err_set(BOB, &ps("<subscribe node='n'/>"))
        .is("bad-request", Some("jid-required"));
    h.err_set(BOB, &ps("<subscribe jid='bob@example.com'/>"))
        .is("bad-request", Some("nodeid-required"));
    h.err_set(BOB, &ps("<subscribe node='n' jid='@@'/>"))
        .is("jid-malformed", None);
    // Outcast.
    h.ok_set(ALICE, &owner("<affiliations node='n'><affiliation jid='bob@example.com' affiliation='outcast'/></affiliations>"));
    let e = h.subscribe(BOB, "n").unwrap_err();
    assert_eq!(e.kind, "auth");
    e.is("forbidden", None);
    // Subscriptions switched off.
    h.create_with(ALICE, "closed", &[("pubsub#subscribe", "0")]);
    let e = h.subscribe(CAROL, "closed").unwrap_err();
    e.is("feature-not-implemented", Some("unsupported"));
    assert_eq!(e.feature.as_deref(), Some("subscribe"));
    assert!(h.svc.subscribers(&NodeName::from("n")).unwrap().is_empty());
}

#[test]
fn access_model_denials() {
    let mut h = setup(&[("pubsub#access_model", "presence")]);
    let e = h.subscribe(BOB, "n").unwrap_err();
    assert_eq!(e.kind, "auth");
    e.is("not-authorized", Some("presence-subscription-required"));
    h.rel
        .presence
        .insert((bare("alice@example.com"), bare("bob@example.com")));
    h.subscribe(BOB, "n").unwrap();

    h.create_with(ALICE, "r", &[("pubsub#access_model", "roster")]);
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='r'>{}</configure>",
            config_form(&[("pubsub#roster_groups_allowed", "friends")])
        )),
    );
    h.subscribe(BOB, "r")
        .unwrap_err()
        .is("not-authorized", Some("not-in-roster-group"));
    h.rel.groups.insert(
        (bare("alice@example.com"), bare("bob@example.com")),
        vec!["work".into()],
    );
    h.subscribe(BOB, "r")
        .unwrap_err()
        .is("not-authorized", Some("not-in-roster-group"));
    h.rel.groups.insert(
        (bare("alice@example.com"), bare("bob@example.com")),
        vec!["friends".into()],
    );
    h.subscribe(BOB, "r").unwrap();

    h.create_with(ALICE, "w", &[("pubsub#access_model", "whitelist")]);
    let e = h.subscribe(BOB, "w").unwrap_err();
    assert_eq!(e.kind, "cancel");
    e.is("not-allowed", Some("closed-node"));
    h.ok_set(ALICE, &owner("<affiliations node='w'><affiliation jid='bob@example.com' affiliation='member'/></affiliations>"));
    h.subscribe(BOB, "w").unwrap();
}

#[test]
fn authorize_access_model_approval_flow() {
    let mut h = setup(&[
        ("pubsub#access_model", "authorize"),
        ("pubsub#send_last_published_item", "on_sub"),
    ]);
    h.publish(ALICE, "n", "last", "x").unwrap();
    let reply = h.subscribe(BOB, "n").unwrap().unwrap();
    let sub = reply.get_child("subscription", PS).unwrap();
    assert_eq!(sub.attr("subscription"), Some("pending"));
    let subid = sub.attr("subid").unwrap().to_owned();
    let [
        Effect::ApprovalRequest {
            to,
            node,
            subscriber,
            subid: asked,
        },
    ] = h.effects.as_slice()
    else {
        panic!("{:?}", h.effects)
    };
    assert_eq!(to, &[jid("alice@example.com")]);
    assert_eq!(
        (
            node.as_str(),
            subscriber.to_string().as_str(),
            asked.as_str()
        ),
        ("n", BOB, subid.as_str())
    );
    let form_el = xep0060::forms::authorization_request(node, subscriber, asked);
    // Pending: no notifications, items refused, asking again is an error.
    assert!(h.svc.subscribers(&NodeName::from("n")).unwrap().is_empty());
    h.subscribe(BOB, "n")
        .unwrap_err()
        .is("not-authorized", Some("pending-subscription"));
    h.err_get(BOB, &ps("<items node='n'/>"))
        .is("not-authorized", Some("not-subscribed"));

    // The approval form round-trips through the wire layer.
    let submitted = form_el.to_string()
        .replace("type='form'", "type='submit'")
        .replace("<field var='pubsub#allow' type='boolean' label='Allow this JID to subscribe to this pubsub node?'><value>0</value>", "<field var='pubsub#allow' type='boolean'><value>1</value>");
    let req = xep0060::parse_authorization(&xml(&submitted)).unwrap();
    // Only an owner may answer.
    h.request(CAROL, req.clone())
        .unwrap_err()
        .is("forbidden", None);
    h.request(ALICE, req.clone()).unwrap();
    let state_change = h.notifications()[0];
    assert_eq!(Harness::recipients(state_change), [BOB]);
    assert!(matches!(
        state_change.event,
        Event::Subscription {
            state: Some(SubState::Subscribed),
            ..
        }
    ));
    assert!(rendered(state_change).contains("subscription='subscribed'"));
    assert!(
        h.effects
            .iter()
            .any(|e| matches!(e, Effect::SendLast { to, .. } if to.to_string() == BOB))
    );
    assert_eq!(h.svc.subscribers(&NodeName::from("n")).unwrap().len(), 1);
    h.ok_get(BOB, &ps("<items node='n'/>"));
    // Answering again: nothing pending.
    h.request(ALICE, req)
        .unwrap_err()
        .is("not-acceptable", None);

    // Denial removes the pending subscription and tells the subscriber.
    h.subscribe(CAROL, "n").unwrap();
    let deny = hydrant_pubsub::Request::Authorize {
        node: NodeName::from("n"),
        subscriber: jid(CAROL),
        subid: None,
        allow: false,
    };
    h.request(ALICE, deny).unwrap();
    assert!(rendered(h.notification()).contains("subscription='none'"));
    let own = h.ok_get(CAROL, &ps("<subscriptions node='n'/>")).unwrap();
    assert_eq!(
        own.get_child("subscriptions", PS)
            .unwrap()
            .children()
            .count(),
        0
    );
}

#[test]
fn unsubscribe_and_errors() {
    let mut h = setup(&[]);
    h.err_set(BOB, &ps(&format!("<unsubscribe node='n' jid='{BOB}'/>")))
        .is("unexpected-request", Some("not-subscribed"));
    h.subscribe(BOB, "n").unwrap();
    h.err_set(CAROL, &ps(&format!("<unsubscribe node='n' jid='{BOB}'/>")))
        .is("forbidden", None);
    h.err_set(BOB, &ps(&format!("<unsubscribe node='nope' jid='{BOB}'/>")))
        .is("item-not-found", None);
    h.err_set(
        BOB,
        &ps(&format!(
            "<unsubscribe node='n' jid='{BOB}' subid='bogus'/>"
        )),
    )
    .is("not-acceptable", Some("invalid-subid"));
    // Two subscriptions (different options): a subid is required.
    h.ok_set(
        BOB,
        &ps(&format!(
            "<subscribe node='n' jid='{BOB}'/><options>{}</options>",
            form(
                "http://jabber.org/protocol/pubsub#subscribe_options",
                &[("pubsub#show-values", "chat")]
            )
        )),
    );
    h.err_set(BOB, &ps(&format!("<unsubscribe node='n' jid='{BOB}'/>")))
        .is("bad-request", Some("subid-required"));
    let subid = h.svc.subscribers(&NodeName::from("n")).unwrap()[0].subids[0].to_string();
    h.ok_set(
        BOB,
        &ps(&format!(
            "<unsubscribe node='n' jid='{BOB}' subid='{subid}'/>"
        )),
    );
    h.ok_set(BOB, &ps(&format!("<unsubscribe node='n' jid='{BOB}'/>")));
    assert!(h.svc.subscribers(&NodeName::from("n")).unwrap().is_empty());
}

#[test]
fn multiple_subscriptions_get_shim_headers() {
    let mut h = setup(&[]);
    h.subscribe(BOB, "n").unwrap();
    h.ok_set(
        BOB,
        &ps(&format!(
            "<subscribe node='n' jid='{BOB}'/><options>{}</options>",
            form(
                "http://jabber.org/protocol/pubsub#subscribe_options",
                &[("pubsub#show-values", "away")]
            )
        )),
    );
    h.subscribe(CAROL, "n").unwrap();
    h.publish(ALICE, "n", "a", "x").unwrap();
    let n = h.notification();
    assert_eq!(Harness::recipients(n), [BOB, CAROL], "one entry per JID");
    let bob = &n.recipients[0];
    assert!(bob.needs_shim());
    assert!(
        bob.show_values.is_empty(),
        "one unfiltered subscription: unfiltered"
    );
    assert!(!n.recipients[1].needs_shim());
    let shim = xep0060::event::render_shim(&bob.subids).to_string();
    assert_eq!(shim.matches("<header name='SubID'>").count(), 2, "{shim}");
    assert!(shim.starts_with("<headers xmlns='http://jabber.org/protocol/shim'>"));
    // The whole message, as the cold path builds it.
    let msg = xep0060::event::message(
        &jid(SERVICE),
        &bob.jid,
        n.notification_type,
        xep0060::event::render(n),
        Some(xep0060::event::render_shim(&bob.subids)),
    );
    assert!(msg.to_string().starts_with(&format!(
        "<message xmlns='jabber:client' from='{SERVICE}' to='{BOB}' type='headline'><event"
    )));
}

#[test]
fn subscription_options() {
    let mut h = setup(&[]);
    h.subscribe(BOB, "n").unwrap();
    let s = h
        .ok_get(BOB, &ps(&format!("<options node='n' jid='{BOB}'/>")))
        .unwrap()
        .to_string();
    assert!(
        s.contains("pubsub#subscribe_options") && s.contains("var='pubsub#deliver'"),
        "{s}"
    );
    // Pause delivery.
    let opts = |fields: &[(&str, &str)]| {
        ps(&format!(
            "<options node='n' jid='{BOB}'>{}</options>",
            form(
                "http://jabber.org/protocol/pubsub#subscribe_options",
                fields
            )
        ))
    };
    h.ok_set(BOB, &opts(&[("pubsub#deliver", "0")]));
    assert!(h.svc.subscribers(&NodeName::from("n")).unwrap().is_empty());
    h.ok_set(
        BOB,
        &opts(&[("pubsub#deliver", "1"), ("pubsub#show-values", "dnd")]),
    );
    assert_eq!(
        h.svc.subscribers(&NodeName::from("n")).unwrap()[0].show_values,
        [hydrant_pubsub::Show::Dnd]
    );
    // Errors.
    h.err_set(BOB, &opts(&[("pubsub#deliver", "maybe")]))
        .is("bad-request", Some("invalid-options"));
    h.err_set(BOB, &opts(&[("pubsub#digest", "1")]))
        .is("bad-request", Some("invalid-options"));
    h.err_set(BOB, &opts(&[("pubsub#show-values", "sleeping")]))
        .is("bad-request", Some("invalid-options"));
    h.err_get(CAROL, &ps(&format!("<options node='n' jid='{BOB}'/>")))
        .is("forbidden", None);
    h.err_get(CAROL, &ps(&format!("<options node='n' jid='{CAROL}'/>")))
        .is("unexpected-request", Some("not-subscribed"));
    h.err_get(BOB, &ps("<options node='n'/>"))
        .is("bad-request", Some("jid-required"));
    h.err_get(
        BOB,
        &ps(&format!("<options node='n' jid='{BOB}' subid='zz'/>")),
    )
    .is("not-acceptable", Some("invalid-subid"));
    h.err_get(BOB, &ps(&format!("<options node='zz' jid='{BOB}'/>")))
        .is("item-not-found", None);
    assert_eq!(
        h.svc.subscribers(&NodeName::from("n")).unwrap()[0].show_values,
        [hydrant_pubsub::Show::Dnd]
    );
    // Subscribe with invalid options: nothing subscribed.
    h.err_set(
        CAROL,
        &ps(&format!(
            "<subscribe node='n' jid='{CAROL}'/><options>{}</options>",
            form(
                "http://jabber.org/protocol/pubsub#subscribe_options",
                &[("pubsub#deliver", "x")]
            )
        )),
    )
    .is("bad-request", Some("invalid-options"));
    assert_eq!(h.svc.subscribers(&NodeName::from("n")).unwrap().len(), 1);
}

#[test]
fn too_many_subscriptions() {
    let cfg = ServiceConfig {
        max_subscriptions_per_jid: 2,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create(ALICE, "n");
    for show in ["chat", "away"] {
        h.ok_set(
            BOB,
            &ps(&format!(
                "<subscribe node='n' jid='{BOB}'/><options>{}</options>",
                form(
                    "http://jabber.org/protocol/pubsub#subscribe_options",
                    &[("pubsub#show-values", show)]
                )
            )),
        );
    }
    let e = h
        .set(
            BOB,
            &ps(&format!(
                "<subscribe node='n' jid='{BOB}'/><options>{}</options>",
                form(
                    "http://jabber.org/protocol/pubsub#subscribe_options",
                    &[("pubsub#show-values", "xa")]
                )
            )),
        )
        .unwrap_err();
    assert_eq!(e.kind, "wait");
    e.is("policy-violation", Some("too-many-subscriptions"));
}

#[test]
fn last_published_item_on_subscription() {
    let mut h = setup(&[("pubsub#send_last_published_item", "on_sub")]);
    h.subscribe(BOB, "n").unwrap();
    assert!(h.effects.is_empty(), "no item yet, nothing to send");
    h.publish(ALICE, "n", "a", "x").unwrap();
    h.publish(ALICE, "n", "b", "y").unwrap();
    h.subscribe(CAROL, "n").unwrap();
    let [
        Effect::SendLast {
            to,
            items,
            payloads: true,
            ..
        },
    ] = h.effects.as_slice()
    else {
        panic!("{:?}", h.effects)
    };
    assert_eq!(to.to_string(), CAROL);
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].id.as_str(), "b");
    // never: nothing.
    let mut h = setup(&[("pubsub#send_last_published_item", "never")]);
    h.publish(ALICE, "n", "a", "x").unwrap();
    h.subscribe(BOB, "n").unwrap();
    assert!(h.effects.is_empty());
}

#[test]
fn presence_based_delivery_flag_and_notification_type() {
    let mut h = setup(&[
        ("pubsub#presence_based_delivery", "1"),
        ("pubsub#notification_type", "normal"),
    ]);
    h.subscribe(BOB, "n").unwrap();
    h.publish(ALICE, "n", "a", "x").unwrap();
    let n = h.notification();
    assert!(n.presence_based);
    assert_eq!(
        n.notification_type,
        hydrant_pubsub::NotificationType::Normal
    );
}

#[test]
fn snapshot_is_immutable_and_rebuilt() {
    let mut h = setup(&[]);
    h.subscribe(BOB, "n").unwrap();
    let before = h.svc.subscribers(&NodeName::from("n")).unwrap();
    h.subscribe(CAROL, "n").unwrap();
    let after = h.svc.subscribers(&NodeName::from("n")).unwrap();
    assert_eq!(before.len(), 1, "an old snapshot does not change");
    assert_eq!(after.len(), 2);
    h.publish(ALICE, "n", "a", "x").unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&h.notification().recipients, &after),
        "notifications share the snapshot"
    );
}

/// A subscribe or unsubscribe changes one account's fan-out entry and shares every
/// other one with the previous snapshot: the work of a change does not grow with the
/// node's subscribers (issue 8, item 11; it used to rebuild every entry, under the
/// service lock, at each change).
#[test]
fn a_change_leaves_other_subscribers_entries_alone() {
    let mut h = setup(&[]);
    let node = NodeName::from("n");
    for k in 0..200 {
        h.subscribe(&format!("u{k}@example.com/r"), "n").unwrap();
    }
    let before = h.svc.subscribers(&node).unwrap();
    h.subscribe("zed@example.com/r", "n").unwrap();
    h.ok_set(
        "u7@example.com/r",
        &ps("<unsubscribe node='n' jid='u7@example.com/r'/>"),
    );
    let after = h.svc.subscribers(&node).unwrap();
    assert_eq!((before.len(), after.len()), (200, 200));
    let shared = after
        .iter()
        .filter(|e| before.iter().any(|b| std::sync::Arc::ptr_eq(b, e)))
        .count();
    assert_eq!(shared, 199, "every entry but the new one is shared");
    assert!(after.iter().all(|e| e.jid.as_str() != "u7@example.com/r"));
}

/// The limit counts every resource of an account together: varying the resource does
/// not add subscriptions without end.
#[test]
fn too_many_subscriptions_counts_the_account_not_the_resource() {
    let cfg = ServiceConfig {
        max_subscriptions_per_jid: 3,
        ..ServiceConfig::default()
    };
    let mut h = Harness::with(cfg, SERVICE);
    h.create(ALICE, "n");
    for k in 0..3 {
        h.subscribe(&format!("bob@example.com/r{k}"), "n").unwrap();
    }
    let e = h.subscribe("bob@example.com/r3", "n").unwrap_err();
    e.is("policy-violation", Some("too-many-subscriptions"));
    // Bare JID too.
    let e = h.subscribe("bob@example.com", "n").unwrap_err();
    e.is("policy-violation", Some("too-many-subscriptions"));
    // Another account is not affected; a resubscribe of an existing one still answers.
    h.subscribe("carol@example.com/x", "n").unwrap();
    h.subscribe("bob@example.com/r0", "n").unwrap();
}

/// A subscriber coming online gets the last item of the nodes that send it on presence,
/// and only those: the service keeps them apart (a login does not walk every node), in
/// step with creation, configuration and deletion.
#[test]
fn last_items_on_presence_follow_the_node_configuration() {
    let mut h = Harness::new();
    let on_presence = [("pubsub#send_last_published_item", "on_sub_and_presence")];
    h.create_with(ALICE, "a", &on_presence);
    h.create(ALICE, "b");
    for n in ["a", "b"] {
        h.subscribe(BOB, n).unwrap();
        h.publish(ALICE, n, "x", "x").unwrap();
    }
    let last_nodes = |h: &Harness| -> Vec<String> {
        h.svc
            .last_items_for(&jid(BOB), None, &h.rel)
            .unwrap()
            .iter()
            .map(|e| match e {
                Effect::SendLast { node, .. } => node.as_str().to_owned(),
                other => panic!("{other:?}"),
            })
            .collect()
    };
    assert_eq!(last_nodes(&h), ["a"]);
    h.ok_set(
        ALICE,
        &owner(&format!(
            "<configure node='b'>{}</configure>",
            config_form(&on_presence)
        )),
    );
    assert_eq!(last_nodes(&h), ["a", "b"]);
    h.ok_set(ALICE, &owner("<delete node='a'/>"));
    assert_eq!(last_nodes(&h), ["b"]);
}
