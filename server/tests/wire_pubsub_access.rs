//! Subscriptions follow the access model (XEP-0060 4.5, 6.1.3; XEP-0163): when the owner
//! tightens a node's access model, or its roster relation with a subscriber ends, the
//! subscriber loses the subscription, is told (`subscription='none'`, as in 8.8.4) and
//! receives no further items.

mod common;

use common::pubsub::{PW, assert_result, entry, publish, users};

use std::fmt::Write as _;

use common::{Client, Server, befriend, roster_push};
use hydrant_proto::{Element, ns};

const SVC: &str = "pubsub.localhost";
const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
const TUNE: &str = "http://jabber.org/protocol/tune";

fn config_form(fields: &[(&str, &str)]) -> String {
    let mut x = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>{NODE_CONFIG}</value></field>"
    );
    for (var, v) in fields {
        let _ = write!(x, "<field var='{var}'><value>{v}</value></field>");
    }
    x.push_str("</x>");
    x
}

async fn create_node(c: &mut Client, node: &str, config: &[(&str, &str)]) {
    let res = c
        .iq(
            "set",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{}'><create node='{node}'/><configure>{}</configure></pubsub>",
                ns::PUBSUB,
                config_form(config)
            ),
        )
        .await;
    assert_result(&res, &format!("create {node}"));
}

async fn configure(c: &mut Client, node: &str, config: &[(&str, &str)]) {
    let res = c
        .iq(
            "set",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{}#owner'><configure node='{node}'>{}</configure></pubsub>",
                ns::PUBSUB,
                config_form(config)
            ),
        )
        .await;
    assert_result(&res, &format!("configure {node}"));
}

/// Subscribes `c`'s bare JID to `node` of service `to`.
async fn subscribe(c: &mut Client, to: &str, node: &str) {
    let jid = c.bare();
    common::pubsub::subscribe(c, to, node, &jid, None).await;
}

/// An items event from `from` about `node` carrying item `id`.
fn event(from: &str, node: &str, id: &str) -> impl Fn(&Element) -> bool + use<> {
    let (from, node, id) = (from.to_owned(), node.to_owned(), id.to_owned());
    move |m: &Element| {
        m.name() == "message"
            && m.attr("from") == Some(from.as_str())
            && m.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|e| e.get_child("items", ns::PUBSUB_EVENT))
                .is_some_and(|items| {
                    items.attr("node") == Some(node.as_str())
                        && items.children().any(|i| i.attr("id") == Some(id.as_str()))
                })
    }
}

/// Any items event about `node`.
fn any_items(node: &str) -> impl Fn(&Element) -> bool + use<> {
    let node = node.to_owned();
    move |m: &Element| {
        m.name() == "message"
            && m.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|e| e.get_child("items", ns::PUBSUB_EVENT))
                .is_some_and(|items| items.attr("node") == Some(node.as_str()))
    }
}

/// The subscription-state event from `from`: `jid`'s subscription to `node` is gone.
fn subscription_none(from: &str, node: &str, jid: &str) -> impl Fn(&Element) -> bool + use<> {
    let (from, node, jid) = (from.to_owned(), node.to_owned(), jid.to_owned());
    move |m: &Element| {
        m.name() == "message"
            && m.attr("from") == Some(from.as_str())
            && m.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|e| e.get_child("subscription", ns::PUBSUB_EVENT))
                .is_some_and(|s| {
                    s.attr("node") == Some(node.as_str())
                        && s.attr("jid") == Some(jid.as_str())
                        && s.attr("subscription") == Some("none")
                })
    }
}

/// Any subscription-state event.
fn any_subscription_event(m: &Element) -> bool {
    m.name() == "message"
        && m.get_child("event", ns::PUBSUB_EVENT)
            .and_then(|e| e.get_child("subscription", ns::PUBSUB_EVENT))
            .is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_to_whitelist_drops_unaffiliated_subscribers() {
    let server = Server::start().await;
    users(&server, &["owner", "member", "stranger"]);
    let mut owner = server.online("owner", PW, "desk").await;
    let mut member = server.online("member", PW, "m").await;
    let mut stranger = server.online("stranger", PW, "s").await;

    create_node(&mut owner, "news", &[("pubsub#access_model", "open")]).await;
    let member_bare = member.bare();
    let res = owner
        .iq(
            "set",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{}#owner'><affiliations node='news'>\
                 <affiliation jid='{member_bare}' affiliation='member'/></affiliations></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "member affiliation");
    subscribe(&mut member, SVC, "news").await;
    subscribe(&mut stranger, SVC, "news").await;
    publish(&mut owner, SVC, "news", "n1", &entry("first")).await;
    for c in [&mut member, &mut stranger] {
        c.expect("n1", event(SVC, "news", "n1")).await;
    }

    configure(&mut owner, "news", &[("pubsub#access_model", "whitelist")]).await;
    let stranger_bare = stranger.bare();
    let m = stranger
        .expect(
            "subscription='none'",
            subscription_none(SVC, "news", &stranger_bare),
        )
        .await;
    assert_eq!(m.attr("to"), Some(stranger_bare.as_str()), "{m}");

    publish(&mut owner, SVC, "news", "n2", &entry("second")).await;
    member.expect("n2", event(SVC, "news", "n2")).await;
    for c in [&mut owner, &mut member, &mut stranger] {
        c.sync().await;
    }
    stranger.assert_none("an item after losing access", any_items("news"));
    member.assert_none("a subscription change", any_subscription_event);
    owner.assert_none("a subscription change", any_subscription_event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_node_contact_removed_from_roster_stops_receiving() {
    let server = Server::start().await;
    users(&server, &["owner", "carol", "dave"]);
    let mut owner = server.online("owner", PW, "desk").await;
    let mut carol = server.online("carol", PW, "c").await;
    let mut dave = server.online("dave", PW, "d").await;
    for c in [&mut owner, &mut carol, &mut dave] {
        c.roster_get(None).await;
    }
    befriend(&mut owner, &mut carol).await;
    befriend(&mut owner, &mut dave).await;

    create_node(&mut owner, "status", &[("pubsub#access_model", "presence")]).await;
    subscribe(&mut carol, SVC, "status").await;
    subscribe(&mut dave, SVC, "status").await;
    publish(&mut owner, SVC, "status", "s1", &entry("one")).await;
    for c in [&mut carol, &mut dave] {
        c.expect("s1", event(SVC, "status", "s1")).await;
    }

    let carol_bare = carol.bare();
    let res = owner
        .iq(
            "set",
            None,
            &format!(
                "<query xmlns='jabber:iq:roster'><item jid='{carol_bare}' subscription='remove'/></query>"
            ),
        )
        .await;
    assert_result(&res, "roster remove");
    owner
        .expect("the remove push", roster_push(&carol_bare))
        .await;
    carol
        .expect(
            "subscription='none'",
            subscription_none(SVC, "status", &carol_bare),
        )
        .await;

    publish(&mut owner, SVC, "status", "s2", &entry("two")).await;
    dave.expect("s2", event(SVC, "status", "s2")).await;
    for c in [&mut owner, &mut carol, &mut dave] {
        c.sync().await;
    }
    carol.assert_none("an item after removal", any_items("status"));
    dave.assert_none("a subscription change", any_subscription_event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pep_subscriber_losing_presence_subscription_is_dropped() {
    let server = Server::start().await;
    users(&server, &["amy", "ben", "cal"]);
    let mut amy = server.online("amy", PW, "phone").await;
    let mut ben = server.online("ben", PW, "b").await;
    let mut cal = server.online("cal", PW, "c").await;
    for c in [&mut amy, &mut ben, &mut cal] {
        c.roster_get(None).await;
    }
    befriend(&mut amy, &mut ben).await;
    befriend(&mut amy, &mut cal).await;
    let amy_bare = amy.bare();
    let tune = |t: &str| format!("<tune xmlns='{TUNE}'><title>{t}</title></tune>");

    // Auto-created with presence access (XEP-0163).
    publish(&mut amy, &amy_bare, TUNE, "t1", &tune("one")).await;
    for c in [&mut ben, &mut cal] {
        subscribe(c, &amy_bare, TUNE).await;
        // PEP sends the last item on subscription.
        c.expect("t1", event(&amy_bare, TUNE, "t1")).await;
    }
    publish(&mut amy, &amy_bare, TUNE, "t2", &tune("two")).await;
    for c in [&mut ben, &mut cal] {
        c.expect("t2", event(&amy_bare, TUNE, "t2")).await;
    }

    // Amy cancels Ben's subscription to her presence (RFC 6121 3.2).
    let ben_bare = ben.bare();
    amy.send(&format!("<presence to='{ben_bare}' type='unsubscribed'/>"))
        .await;
    ben.expect(
        "subscription='none'",
        subscription_none(&amy_bare, TUNE, &ben_bare),
    )
    .await;

    publish(&mut amy, &amy_bare, TUNE, "t3", &tune("three")).await;
    cal.expect("t3", event(&amy_bare, TUNE, "t3")).await;
    for c in [&mut amy, &mut ben, &mut cal] {
        c.sync().await;
    }
    ben.assert_none("a tune after losing presence access", any_items(TUNE));
    cal.assert_none("a subscription change", any_subscription_event);
    amy.assert_none("a subscription change", any_subscription_event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roster_node_contact_moved_out_of_allowed_group_stops_receiving() {
    let server = Server::start().await;
    users(&server, &["owner", "carol"]);
    let mut owner = server.online("owner", PW, "desk").await;
    let mut carol = server.online("carol", PW, "c").await;
    owner.roster_get(None).await;
    let carol_bare = carol.bare();
    let set_group = |g: &str| {
        format!(
            "<query xmlns='jabber:iq:roster'><item jid='{carol_bare}'><group>{g}</group></item></query>"
        )
    };
    let res = owner.iq("set", None, &set_group("friends")).await;
    assert_result(&res, "roster set friends");

    create_node(
        &mut owner,
        "circle",
        &[
            ("pubsub#access_model", "roster"),
            ("pubsub#roster_groups_allowed", "friends"),
        ],
    )
    .await;
    subscribe(&mut carol, SVC, "circle").await;
    publish(&mut owner, SVC, "circle", "c1", &entry("one")).await;
    carol.expect("c1", event(SVC, "circle", "c1")).await;

    let res = owner.iq("set", None, &set_group("work")).await;
    assert_result(&res, "roster set work");
    carol
        .expect(
            "subscription='none'",
            subscription_none(SVC, "circle", &carol_bare),
        )
        .await;
    publish(&mut owner, SVC, "circle", "c2", &entry("two")).await;
    for c in [&mut owner, &mut carol] {
        c.sync().await;
    }
    carol.assert_none("an item after leaving the group", any_items("circle"));
}
