//! PEP (XEP-0163): the account owns its service, publish auto-creates with presence
//! access, last item to contacts.

mod common;

use common::*;
use hydrant_pubsub::{AccessModel, Effect, NodeName, ServiceConfig};

const JULIET: &str = "juliet@example.com/balcony";
const ROMEO: &str = "romeo@example.net/orchard";
const NURSE: &str = "nurse@example.com/kitchen";
const TUNE: &str = "http://jabber.org/protocol/tune";

fn pep() -> Harness {
    let mut h = Harness::with(ServiceConfig::pep(), "juliet@example.com");
    h.rel
        .presence
        .insert((bare("juliet@example.com"), bare("romeo@example.net")));
    h
}

fn tune(
    h: &mut Harness,
    from: &str,
    id: &str,
) -> Result<Option<hydrant_proto::Element>, WireError> {
    h.set(
        from,
        &ps(&format!(
            "<publish node='{TUNE}'><item id='{id}'><tune xmlns='{TUNE}'/></item></publish>"
        )),
    )
}

#[test]
fn publish_auto_creates_with_presence_access() {
    let mut h = pep();
    tune(&mut h, JULIET, "t1").unwrap();
    let c = h.svc.node_config(&NodeName::from(TUNE)).unwrap();
    assert_eq!(c.access_model, AccessModel::Presence);
    assert_eq!(h.stored_ids(TUNE), ["t1"]);
    tune(&mut h, JULIET, "t2").unwrap();
    assert_eq!(h.stored_ids(TUNE), ["t2"], "PEP default max_items = 1");
    let affs = h
        .ok_get(JULIET, &owner(&format!("<affiliations node='{TUNE}'/>")))
        .unwrap()
        .to_string();
    assert!(
        affs.contains("jid='juliet@example.com' affiliation='owner'"),
        "{affs}"
    );
}

#[test]
fn only_the_account_publishes_and_creates() {
    let mut h = pep();
    tune(&mut h, ROMEO, "x").unwrap_err().is("forbidden", None);
    assert!(
        h.svc.node_names().next().is_none(),
        "no auto-create for others"
    );
    h.err_set(ROMEO, &ps("<create node='mine'/>"))
        .is("forbidden", None);
    tune(&mut h, JULIET, "t").unwrap();
    tune(&mut h, ROMEO, "x").unwrap_err().is("forbidden", None);
    // Another resource of the account is the account.
    tune(&mut h, "juliet@example.com/other", "t3").unwrap();
}

#[test]
fn presence_access_for_contacts() {
    let mut h = pep();
    tune(&mut h, JULIET, "t").unwrap();
    h.ok_get(ROMEO, &ps(&format!("<items node='{TUNE}'/>")));
    h.err_get(NURSE, &ps(&format!("<items node='{TUNE}'/>")))
        .is("not-authorized", Some("presence-subscription-required"));
    h.subscribe(NURSE, TUNE)
        .unwrap_err()
        .is("not-authorized", Some("presence-subscription-required"));
    // A contact subscribing gets the last item (on_sub_and_presence).
    h.subscribe(ROMEO, TUNE).unwrap();
    assert!(matches!(h.effects.as_slice(), [Effect::SendLast { .. }]));
    // Disco#items on PEP lists only what the requester may read.
    let items = h
        .ok_get(
            NURSE,
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .unwrap();
    assert_eq!(items.children().count(), 0);
    let items = h
        .ok_get(
            ROMEO,
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        )
        .unwrap();
    assert_eq!(items.children().count(), 1);
}

#[test]
fn last_items_for_a_contact_coming_online() {
    let mut h = pep();
    tune(&mut h, JULIET, "t").unwrap();
    let node = NodeName::from(TUNE);
    // The server's +notify filtering names the nodes.
    let effects = h
        .svc
        .last_items_for(&jid(ROMEO), Some(std::slice::from_ref(&node)), &h.rel)
        .unwrap();
    let [Effect::SendLast { to, items, .. }] = effects.as_slice() else {
        panic!("{effects:?}")
    };
    assert_eq!(to.to_string(), ROMEO);
    assert_eq!(items[0].id.as_str(), "t");
    // Non-contacts get nothing.
    assert!(
        h.svc
            .last_items_for(&jid(NURSE), Some(&[node]), &h.rel)
            .unwrap()
            .is_empty()
    );
    // Without a node list: the nodes the JID is subscribed to.
    assert!(
        h.svc
            .last_items_for(&jid(ROMEO), None, &h.rel)
            .unwrap()
            .is_empty()
    );
    h.subscribe(ROMEO, TUNE).unwrap();
    assert_eq!(
        h.svc
            .last_items_for(&jid(ROMEO), None, &h.rel)
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn publish_options_on_auto_create() {
    let mut h = pep();
    let req = ps(&format!(
        "<publish node='urn:xmpp:bookmarks:1'><item id='x'><conference xmlns='urn:xmpp:bookmarks:1'/></item></publish>\
         <publish-options>{}</publish-options>",
        form(
            "http://jabber.org/protocol/pubsub#publish-options",
            &[
                ("pubsub#persist_items", "true"),
                ("pubsub#access_model", "whitelist"),
                ("pubsub#max_items", "max")
            ]
        )
    ));
    h.ok_set(JULIET, &req);
    let c = h
        .svc
        .node_config(&NodeName::from("urn:xmpp:bookmarks:1"))
        .unwrap();
    assert_eq!(c.access_model, AccessModel::Whitelist);
    assert_eq!(c.max_items, hydrant_pubsub::MaxItems::Max);
    // Same options again: met.
    h.ok_set(JULIET, &req);
    // A bad precondition on auto-create creates nothing.
    h.err_set(
        JULIET,
        &ps(&format!(
            "<publish node='other'><item id='x'><c xmlns='urn:c'/></item></publish><publish-options>{}</publish-options>",
            form("http://jabber.org/protocol/pubsub#publish-options", &[("pubsub#access_model", "bogus")])
        )),
    )
    .is("conflict", Some("precondition-not-met"));
    assert!(h.svc.node_config(&NodeName::from("other")).is_none());
}
