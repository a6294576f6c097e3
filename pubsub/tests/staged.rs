//! Staged publishes (`service/staged.rs`): a publish is queued with the store while the
//! service is held and finished after its commit; notifications leave in seq order per
//! node whatever order the commits come back in, through one drainer at a time.

mod common;

use common::*;
use hydrant_proto::IqType;
use hydrant_pubsub::{Effect, Event, Handled, NodeName, Staged, xep0060};

const ALICE: &str = "alice@example.com/phone";
const BOB: &str = "bob@example.com/laptop";

fn stage(h: &mut Harness, id: &str) -> Staged {
    let payload = xml(&ps(&format!(
        "<publish node='n'><item id='{id}'><entry xmlns='urn:test'>{id}</entry></item></publish>"
    )));
    let req = xep0060::parse(IqType::Set, &payload).unwrap();
    h.now += 1;
    match h
        .svc
        .handle_staged(&jid(ALICE), req, &h.rel, h.now)
        .unwrap()
    {
        Handled::Staged(s) => s,
        Handled::Done(_) => panic!("a publish to an existing node is staged"),
    }
}

/// The item ids of notification effects, in order.
fn ids(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => match &n.event {
                Event::Items { items, .. } => Some(items[0].id.as_str().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `finish` as the old pair: the reply and the first drain, if this caller drains.
fn finish_publish(
    h: &mut Harness,
    c: hydrant_pubsub::Commit,
) -> (
    Result<Option<hydrant_proto::Element>, hydrant_pubsub::Error>,
    Option<Vec<Effect>>,
) {
    let f = h.svc.finish(c);
    let first = f.drain.map(|_| f.effects);
    (f.reply, first)
}

/// Finishes a publish as its only caller and drains its node: every effect sent.
fn finish(h: &mut Harness, c: hydrant_pubsub::Commit) -> Vec<Effect> {
    let node = c.node().clone();
    let (reply, first) = finish_publish(h, c);
    assert!(reply.is_ok(), "{:?}", reply.err());
    let mut all = first.expect("the only caller drains");
    while let Some(more) = h.svc.drain_published(&node) {
        all.extend(more);
    }
    all
}

fn setup() -> Harness {
    let mut h = Harness::new();
    h.create(ALICE, "n");
    h.subscribe(BOB, "n").unwrap();
    h
}

#[test]
fn commits_finishing_out_of_order_are_fanned_out_in_seq_order() {
    let mut h = setup();
    let (a, b) = (stage(&mut h, "a"), stage(&mut h, "b"));
    let (a, b) = (a.wait(), b.wait());
    // b's commit is reported first: a is still ahead of it, so nothing goes yet and b's
    // caller is not left draining.
    let (reply, first) = finish_publish(&mut h, b);
    assert!(reply.unwrap().is_some(), "b's iq result");
    assert!(first.is_none(), "{first:?}");
    // a's caller drains both, a first.
    let (reply, first) = finish_publish(&mut h, a);
    assert!(reply.unwrap().is_some(), "a's iq result");
    assert_eq!(ids(&first.expect("a's caller drains")), ["a", "b"]);
    assert!(
        h.svc
            .drain_published(&NodeName::new("n".to_owned()))
            .is_none()
    );
    assert_eq!(h.stored_ids("n"), ["b", "a"]);
}

#[test]
fn a_commit_during_a_drain_is_left_to_the_drainer() {
    let mut h = setup();
    let a = stage(&mut h, "a").wait();
    let (_, first) = finish_publish(&mut h, a);
    assert_eq!(ids(&first.expect("drainer")), ["a"]);
    // While a's caller sends a's notifications, b commits: its caller leaves them.
    let b = stage(&mut h, "b").wait();
    let (reply, first) = finish_publish(&mut h, b);
    assert!(reply.unwrap().is_some());
    assert!(first.is_none(), "a drain is under way");
    // The drainer asks for more and gets b; then nothing, and it stops draining.
    assert_eq!(
        ids(&h
            .svc
            .drain_published(&NodeName::new("n".to_owned()))
            .unwrap()),
        ["b"]
    );
    assert!(
        h.svc
            .drain_published(&NodeName::new("n".to_owned()))
            .is_none()
    );
    // The next commit finds no drainer and drains itself.
    let c = stage(&mut h, "c").wait();
    let (_, first) = finish_publish(&mut h, c);
    assert_eq!(ids(&first.expect("drainer again")), ["c"]);
}

#[test]
fn staged_publishes_take_consecutive_seqs_and_a_deleted_node_sends_nothing() {
    let mut h = setup();
    let a = stage(&mut h, "a").wait();
    h.ok_set(ALICE, &owner("<delete node='n'/>"));
    let (reply, first) = finish_publish(&mut h, a);
    assert!(reply.is_ok(), "the item was committed before the delete");
    assert!(first.is_none());
}

#[test]
fn evicted_items_are_retracted_after_the_new_one_except_on_singleton_nodes() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#max_items", "2")]);
    h.subscribe(BOB, "n").unwrap();
    for id in ["a", "b"] {
        let st = stage(&mut h, id).wait();
        assert_eq!(finish(&mut h, st).len(), 1, "no eviction yet");
    }
    let st = stage(&mut h, "c").wait();
    let effects = finish(&mut h, st);
    assert_eq!(ids(&effects), ["c"]);
    let retracted: Vec<_> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(n) => match &n.event {
                Event::Retract { ids } => Some(
                    ids.iter()
                        .map(|i| i.as_str().to_owned())
                        .collect::<Vec<_>>(),
                ),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(retracted, [vec!["a".to_owned()]], "{effects:?}");
    // The unstaged path does the same.
    h.publish(ALICE, "n", "d", "d").unwrap();
    assert_eq!(h.notifications().len(), 2, "{:?}", h.effects);

    // A node that keeps one item: the new item replaces the old, no retract.
    h.create_with(ALICE, "one", &[("pubsub#max_items", "1")]);
    h.subscribe(BOB, "one").unwrap();
    h.publish(ALICE, "one", "x", "x").unwrap();
    h.publish(ALICE, "one", "y", "y").unwrap();
    assert_eq!(h.notifications().len(), 1, "{:?}", h.effects);
}

#[test]
fn a_staged_subscribe_counts_at_once_and_gets_the_last_item_after_its_commit() {
    let mut h = Harness::new();
    h.create_with(ALICE, "n", &[("pubsub#send_last_published_item", "on_sub")]);
    h.subscribe(BOB, "n").unwrap();
    h.publish(ALICE, "n", "last", "the last one").unwrap();
    let carol = "carol@example.com/desk";
    let payload = xml(&ps(&format!("<subscribe node='n' jid='{carol}'/>")));
    let req = xep0060::parse(IqType::Set, &payload).unwrap();
    let staged = match h
        .svc
        .handle_staged(&jid(carol), req, &h.rel, h.now)
        .unwrap()
    {
        Handled::Staged(s) => s,
        Handled::Done(_) => panic!("a new subscription is staged"),
    };
    // Already in the node: a publish now reaches carol too.
    h.publish(ALICE, "n", "next", "next").unwrap();
    assert_eq!(Harness::recipients(h.notification()), [BOB, carol]);
    let f = h.svc.finish(staged.wait());
    let reply = f.reply.unwrap().expect("a subscription reply");
    assert!(
        reply.to_string().contains("subscription='subscribed'"),
        "{reply}"
    );
    assert!(f.drain.is_none());
    assert!(
        matches!(f.effects.as_slice(), [Effect::SendLast { to, .. }] if to.to_string() == carol),
        "{:?}",
        f.effects
    );
}

#[test]
fn a_staged_unsubscribe_leaves_the_node_at_once_and_answers_after_its_commit() {
    let mut h = setup();
    let payload = xml(&ps(&format!("<unsubscribe node='n' jid='{BOB}'/>")));
    let req = xep0060::parse(IqType::Set, &payload).unwrap();
    let staged = match h.svc.handle_staged(&jid(BOB), req, &h.rel, h.now).unwrap() {
        Handled::Staged(s) => s,
        Handled::Done(_) => panic!("an unsubscribe is staged"),
    };
    // Out of the node before its commit: a publish now has nobody to notify.
    h.publish(ALICE, "n", "after", "after").unwrap();
    assert!(
        !h.effects.iter().any(|e| matches!(e, Effect::Notify(_))),
        "{:?}",
        h.effects
    );
    let f = h.svc.finish(staged.wait());
    assert!(matches!(f.reply, Ok(None)), "{:?}", f.reply.err());
    assert!(f.effects.is_empty() && f.drain.is_none());
    // Gone for good: a second unsubscribe finds no subscription.
    let again = xml(&ps(&format!("<unsubscribe node='n' jid='{BOB}'/>")));
    let req = xep0060::parse(IqType::Set, &again).unwrap();
    let Err(err) = h.svc.handle_staged(&jid(BOB), req, &h.rel, h.now) else {
        panic!("a second unsubscribe is refused");
    };
    assert_eq!(err, hydrant_pubsub::Error::NotSubscribed);
}
