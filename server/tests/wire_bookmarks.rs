//! Wire tests: bookmarks as stock clients store them (issue 11 item 4).
//!
//! - XEP-0402 (Conversations, Dino, Gajim, Movim): one PEP item per room in
//!   `urn:xmpp:bookmarks:1`, published with publish-options that auto-create a private
//!   node (XEP-0223: `whitelist`, persistent, `max_items = max`); the account's other
//!   resources with `+notify` get each change, contacts get nothing and cannot read it.
//! - XEP-0048 on PEP (XEP-0223): one `storage:bookmarks` item, same privacy.
//! - XEP-0048 in private XML (XEP-0049): `storage:bookmarks` in `jabber:iq:private`.
//! - Publish-options that the existing node does not meet: `<conflict/>` +
//!   `<precondition-not-met/>` and nothing published (XEP-0060 7.1.5).
//! - The account's disco#info shows PEP and publish-options, as clients check before they
//!   store bookmarks there (XEP-0223 4, XEP-0402 security considerations).

mod common;

use std::fmt::Write as _;

use common::caps::{announce_caps, answer_caps_query, caps_ver};
use common::pubsub::{PW, assert_result, users};
use common::{Client, DOMAIN, Server, befriend, stanza_error};
use hydrant_proto::{Element, ns};

const BOOKMARKS2: &str = "urn:xmpp:bookmarks:1";
const BOOKMARKS: &str = "storage:bookmarks";
const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// A publish-options form with these fields (XEP-0060 7.1.5).
fn publish_options(fields: &[(&str, &str)]) -> String {
    let mut form = format!(
        "<publish-options><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>{PUBLISH_OPTIONS}</value></field>"
    );
    for (var, value) in fields {
        let _ = write!(form, "<field var='{var}'><value>{value}</value></field>");
    }
    form.push_str("</x></publish-options>");
    form
}

/// What XEP-0402 ("Adding a bookmark") asks for.
const BOOKMARKS2_OPTIONS: &[(&str, &str)] = &[
    ("pubsub#persist_items", "true"),
    ("pubsub#max_items", "max"),
    ("pubsub#send_last_published_item", "never"),
    ("pubsub#access_model", "whitelist"),
];

/// What XEP-0223 (1.2, 3) and XEP-0048 on PEP ask for.
const PIP_OPTIONS: &[(&str, &str)] = &[
    ("pubsub#persist_items", "true"),
    ("pubsub#access_model", "whitelist"),
];

fn conference(name: &str, autojoin: bool) -> String {
    format!(
        "<conference xmlns='{BOOKMARKS2}' name='{name}' autojoin='{autojoin}'><nick>JC</nick></conference>"
    )
}

/// Publishes one item to the account's own PEP (no `to`) with publish-options.
async fn publish(
    c: &mut Client,
    node: &str,
    id: &str,
    payload: &str,
    options: &[(&str, &str)],
) -> Element {
    let id = if id.is_empty() {
        String::new()
    } else {
        format!(" id='{id}'")
    };
    c.iq(
        "set",
        None,
        &format!(
            "<pubsub xmlns='{}'><publish node='{node}'><item{id}>{payload}</item></publish>{}</pubsub>",
            ns::PUBSUB,
            publish_options(options)
        ),
    )
    .await
}

/// The `<item/>`s of an items request, in order.
async fn items(c: &mut Client, to: Option<&str>, node: &str) -> Result<Vec<Element>, Element> {
    let res = c
        .iq(
            "get",
            to,
            &format!(
                "<pubsub xmlns='{}'><items node='{node}'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    if res.attr("type") != Some("result") {
        return Err(res);
    }
    Ok(res
        .get_child("pubsub", ns::PUBSUB)
        .and_then(|p| p.get_child("items", ns::PUBSUB))
        .map(|i| {
            i.children()
                .filter(|c| c.is("item", ns::PUBSUB))
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// A PEP event for `node` from `from` whose `<items/>` has a child named `what`
/// (`item` or `retract`) with this id.
fn event(
    from: &str,
    node: &str,
    what: &'static str,
    id: &str,
) -> impl Fn(&Element) -> bool + use<> {
    let (from, node, id) = (from.to_owned(), node.to_owned(), id.to_owned());
    move |e: &Element| {
        e.name() == "message"
            && e.attr("from") == Some(from.as_str())
            && e.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
                .is_some_and(|i| {
                    i.attr("node") == Some(node.as_str())
                        && i.children()
                            .any(|c| c.name() == what && c.attr("id") == Some(id.as_str()))
                })
    }
}

fn any_event(node: &str) -> impl Fn(&Element) -> bool + use<> {
    let node = node.to_owned();
    move |e: &Element| {
        e.name() == "message"
            && e.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
                .is_some_and(|i| i.attr("node") == Some(node.as_str()))
    }
}

/// A session that asks for `nodes` with +notify (XEP-0115 caps, verified).
async fn wants(c: &mut Client, nodes: &[&str]) {
    // A feature of its own, so that its `ver` is not cached already and the server asks.
    let mut features = vec![
        "http://jabber.org/protocol/caps".to_owned(),
        ns::DISCO_INFO.to_owned(),
        format!("urn:test:client:{}", c.jid),
    ];
    features.extend(nodes.iter().map(|n| format!("{n}+notify")));
    let ver = caps_ver(&features);
    announce_caps(c, &ver).await;
    answer_caps_query(c, DOMAIN, &ver, &features).await;
    // The answer is handled before the ping that follows it: the interest is known.
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bookmarks2_live_in_a_private_node_pushed_to_the_accounts_resources() {
    let server = Server::start().await;
    users(&server, &["juliet", "romeo"]);
    let mut laptop = server.online("juliet", PW, "laptop").await;
    let mut phone = server.online("juliet", PW, "phone").await;
    let mut romeo = server.online("romeo", PW, "orchard").await;
    befriend(&mut laptop, &mut romeo).await;
    phone.sync().await;
    phone.clear();
    wants(&mut phone, &[BOOKMARKS2]).await;
    // Romeo is a contact (presence subscription both ways) who would take any
    // bookmarks node the access model let him have.
    wants(&mut romeo, &[BOOKMARKS2]).await;
    let juliet = laptop.bare();

    // XEP-0402 "Adding a bookmark": the first publish creates the node with the options.
    let res = publish(
        &mut laptop,
        BOOKMARKS2,
        "theplay@conference.shakespeare.lit",
        &conference("The Play&apos;s the Thing", true),
        BOOKMARKS2_OPTIONS,
    )
    .await;
    assert_result(&res, "publish the first bookmark");
    let m = phone
        .expect(
            "the new bookmark on the other resource",
            event(
                &juliet,
                BOOKMARKS2,
                "item",
                "theplay@conference.shakespeare.lit",
            ),
        )
        .await;
    assert!(m.to_string().contains("The Play"), "{m}");
    // The same options again are met by the node it created.
    let res = publish(
        &mut laptop,
        BOOKMARKS2,
        "orchard@conference.shakespeare.lit",
        &conference("The Orchard", false),
        BOOKMARKS2_OPTIONS,
    )
    .await;
    assert_result(&res, "publish the second bookmark");
    phone
        .expect(
            "the second bookmark",
            event(
                &juliet,
                BOOKMARKS2,
                "item",
                "orchard@conference.shakespeare.lit",
            ),
        )
        .await;

    // XEP-0402 "Retrieving all bookmarks": every bookmark is kept (max_items = max),
    // for the account only.
    let all = items(&mut phone, None, BOOKMARKS2)
        .await
        .expect("own items");
    let mut ids: Vec<_> = all.iter().filter_map(|i| i.attr("id")).collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        [
            "orchard@conference.shakespeare.lit",
            "theplay@conference.shakespeare.lit"
        ]
    );
    let err = items(&mut romeo, Some(&juliet), BOOKMARKS2)
        .await
        .expect_err("a contact cannot read them");
    assert_eq!(stanza_error(&err).as_deref(), Some("not-allowed"), "{err}");
    assert!(err.to_string().contains("closed-node"), "{err}");
    assert!(!err.to_string().contains("Orchard"), "{err}");
    laptop.sync().await;
    romeo.sync().await;
    romeo.assert_none("a bookmark notification", any_event(BOOKMARKS2));

    // The node is configured as asked (XEP-0060 8.2 configuration form).
    let res = laptop
        .iq(
            "get",
            None,
            &format!(
                "<pubsub xmlns='{}'><configure node='{BOOKMARKS2}'/></pubsub>",
                ns::PUBSUB_OWNER
            ),
        )
        .await;
    assert_result(&res, "configuration form");
    let form = res.to_string();
    for (var, value) in [
        ("pubsub#access_model", "whitelist"),
        ("pubsub#max_items", "max"),
        ("pubsub#persist_items", "1"),
        ("pubsub#send_last_published_item", "never"),
    ] {
        let field = res
            .get_child("pubsub", ns::PUBSUB_OWNER)
            .and_then(|p| p.get_child("configure", ns::PUBSUB_OWNER))
            .and_then(|c| c.get_child("x", ns::DATA_FORMS))
            .and_then(|x| x.children().find(|f| f.attr("var") == Some(var)).cloned())
            .unwrap_or_else(|| panic!("no {var}: {form}"));
        assert_eq!(
            field
                .get_child("value", ns::DATA_FORMS)
                .map(Element::text)
                .as_deref(),
            Some(value),
            "{var}: {form}"
        );
    }

    // XEP-0402 "Removing a bookmark": a retract with notify, pushed to the other
    // resources.
    let res = laptop
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><retract node='{BOOKMARKS2}' notify='true'>\
                 <item id='orchard@conference.shakespeare.lit'/></retract></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "retract");
    phone
        .expect(
            "the retraction",
            event(
                &juliet,
                BOOKMARKS2,
                "retract",
                "orchard@conference.shakespeare.lit",
            ),
        )
        .await;
    romeo.sync().await;
    romeo.assert_none("a retraction", any_event(BOOKMARKS2));

    // A session whose interest becomes known later gets no last item: the node says
    // never (XEP-0402 asks for that, so a login is not flooded).
    let mut tablet = server.online("juliet", PW, "tablet").await;
    wants(&mut tablet, &[BOOKMARKS2]).await;
    laptop.sync().await;
    tablet.sync().await;
    tablet.assert_none("a bookmark on login", any_event(BOOKMARKS2));

    // Persisted.
    drop((laptop, phone, romeo, tablet));
    let server = server.restart().await;
    let mut c = server.login("juliet", PW, "again").await;
    let all = items(&mut c, None, BOOKMARKS2).await.expect("own items");
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        all[0].attr("id"),
        Some("theplay@conference.shakespeare.lit")
    );
    assert!(all[0].to_string().contains("The Play"), "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_options_the_node_does_not_meet_are_refused() {
    let server = Server::start().await;
    users(&server, &["juliet"]);
    let mut c = server.online("juliet", PW, "laptop").await;

    // A node that exists with the PEP defaults (presence access, one item).
    let res = publish(&mut c, BOOKMARKS2, "a@muc", &conference("A", false), &[]).await;
    assert_result(&res, "publish without options");
    for (options, what) in [
        (BOOKMARKS2_OPTIONS, "whitelist on a presence node"),
        (
            &[("pubsub#max_items", "max")][..],
            "max items on a one-item node",
        ),
        (&[("pubsub#no_such_option", "1")][..], "an unknown field"),
    ] {
        let res = publish(
            &mut c,
            BOOKMARKS2,
            "b@muc",
            &conference("B", false),
            options,
        )
        .await;
        assert_eq!(
            stanza_error(&res).as_deref(),
            Some("conflict"),
            "{what}: {res}"
        );
        assert!(
            res.to_string().contains("precondition-not-met"),
            "{what}: {res}"
        );
    }
    // Nothing was published, and the first bookmark is still there.
    let all = items(&mut c, None, BOOKMARKS2).await.expect("own items");
    let ids: Vec<_> = all.iter().filter_map(|i| i.attr("id")).collect();
    assert_eq!(ids, ["a@muc"]);
    // The client can then fix the node (XEP-0402 security considerations: configure
    // it first) and publish with the options.
    let res = c
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><configure node='{BOOKMARKS2}'>\
                 <x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>\
                 <field var='pubsub#access_model'><value>whitelist</value></field>\
                 <field var='pubsub#max_items'><value>max</value></field>\
                 <field var='pubsub#send_last_published_item'><value>never</value></field>\
                 </x></configure></pubsub>",
                ns::PUBSUB_OWNER
            ),
        )
        .await;
    assert_result(&res, "configure");
    let res = publish(
        &mut c,
        BOOKMARKS2,
        "b@muc",
        &conference("B", false),
        BOOKMARKS2_OPTIONS,
    )
    .await;
    assert_result(&res, "publish after configuring");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0048_bookmarks_on_pep_and_in_private_xml() {
    let server = Server::start().await;
    users(&server, &["juliet", "romeo"]);
    let mut laptop = server.online("juliet", PW, "laptop").await;
    let mut phone = server.online("juliet", PW, "phone").await;
    let mut romeo = server.online("romeo", PW, "orchard").await;
    befriend(&mut laptop, &mut romeo).await;
    phone.sync().await;
    phone.clear();
    wants(&mut phone, &[BOOKMARKS]).await;
    wants(&mut romeo, &[BOOKMARKS]).await;
    let juliet = laptop.bare();

    // XEP-0223 1.2: one item holding the whole list.
    let storage = "<storage xmlns='storage:bookmarks'>\
         <conference name='The Play' autojoin='true' jid='theplay@conference.shakespeare.lit'>\
         <nick>JC</nick></conference></storage>";
    let res = publish(&mut laptop, BOOKMARKS, "current", storage, PIP_OPTIONS).await;
    assert_result(&res, "XEP-0048 publish");
    phone
        .expect(
            "pushed to the other resource",
            event(&juliet, BOOKMARKS, "item", "current"),
        )
        .await;
    let err = items(&mut romeo, Some(&juliet), BOOKMARKS)
        .await
        .expect_err("private to the account");
    assert_eq!(stanza_error(&err).as_deref(), Some("not-allowed"), "{err}");
    laptop.sync().await;
    romeo.sync().await;
    romeo.assert_none("a bookmark notification", any_event(BOOKMARKS));
    // A replacement list replaces the one item (the PEP default of one item kept).
    let res = publish(
        &mut laptop,
        BOOKMARKS,
        "current",
        "<storage xmlns='storage:bookmarks'/>",
        PIP_OPTIONS,
    )
    .await;
    assert_result(&res, "XEP-0048 replacement");
    let all = items(&mut phone, None, BOOKMARKS).await.expect("own items");
    assert_eq!(all.len(), 1, "{all:?}");
    assert!(!all[0].to_string().contains("The Play"), "{all:?}");

    // XEP-0048 in private XML (XEP-0049), what most clients use without XEP-0402.
    let res = laptop
        .iq(
            "set",
            None,
            &format!("<query xmlns='jabber:iq:private'>{storage}</query>"),
        )
        .await;
    assert_result(&res, "private bookmarks");
    let res = phone
        .iq(
            "get",
            None,
            "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>",
        )
        .await;
    assert_result(&res, "private bookmarks get");
    assert!(
        res.to_string()
            .contains("theplay@conference.shakespeare.lit"),
        "{res}"
    );
}

#[tokio::test]
async fn the_account_advertises_pep_and_publish_options() {
    let server = Server::start().await;
    users(&server, &["juliet"]);
    let mut c = server.login("juliet", PW, "laptop").await;
    let bare = c.bare();
    for to in [bare.as_str(), DOMAIN] {
        let res = c
            .iq(
                "get",
                Some(to),
                &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
            )
            .await;
        assert_result(&res, to);
        let q = res.get_child("query", ns::DISCO_INFO).expect("query");
        assert!(
            q.children().any(|i| i.is("identity", ns::DISCO_INFO)
                && i.attr("category") == Some("pubsub")
                && i.attr("type") == Some("pep")),
            "{to}: {res}"
        );
        let features: Vec<&str> = q
            .children()
            .filter(|f| f.is("feature", ns::DISCO_INFO))
            .filter_map(|f| f.attr("var"))
            .collect();
        assert!(features.contains(&PUBLISH_OPTIONS), "{to}: {res}");
        // No XEP-0402 compatibility with XEP-0049 is claimed: it is not implemented.
        assert!(
            !features.iter().any(|f| f.starts_with(BOOKMARKS2)),
            "{to}: {res}"
        );
    }
    // The account's bare JID lists what PEP does (XEP-0163, XEP-0060 features).
    let res = c
        .iq(
            "get",
            Some(&bare),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    for f in [
        "http://jabber.org/protocol/pubsub#auto-create",
        "http://jabber.org/protocol/pubsub#persistent-items",
        "http://jabber.org/protocol/pubsub#access-whitelist",
        "http://jabber.org/protocol/pubsub#config-node-max",
        "http://jabber.org/protocol/pubsub#delete-items",
        "http://jabber.org/protocol/pubsub#item-ids",
    ] {
        assert!(res.to_string().contains(f), "{f}: {res}");
    }
}
