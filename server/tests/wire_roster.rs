//! Wire tests: roster management (RFC 6121 section 2) and roster versioning (2.6).

mod common;

use common::{Server, item, roster_push, stanza_error};
use hydrant_proto::ns;

#[tokio::test]
async fn roster_get_set_push_version_and_remove() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a1 = server.login("alice", "pw-alice", "one").await;
    let mut a2 = server.login("alice", "pw-alice", "two").await;
    // A third resource that never asks for the roster is not "interested" (2.1.6).
    let mut a3 = server.login("alice", "pw-alice", "three").await;

    // 2.1.3 / 2.6.3: an empty roster, with a version.
    let q = a1.roster_get(None).await.expect("a roster query");
    assert_eq!(q.children().count(), 0, "{q}");
    let v0 = q.attr("ver").expect("ver on the result").to_owned();
    let q2 = a2
        .roster_get(Some(""))
        .await
        .expect("ver='' asks for the whole roster");
    assert_eq!(q2.attr("ver"), Some(v0.as_str()));

    // 2.3.2: a set is answered with a result and pushed to every interested resource,
    // the setter included.
    let res = a1
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='Nurse@Localhost' name='Nurse'>\
             <group>Servants</group></item></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    assert!(res.children().next().is_none(), "an empty result: {res}");
    let mut vers = Vec::new();
    for c in [&mut a1, &mut a2] {
        let push = c
            .expect("roster push", roster_push("nurse@localhost"))
            .await;
        assert!(
            push.attr("from").is_none(),
            "a push comes from the account: {push}"
        );
        let it = item(&push);
        assert_eq!(it.attr("name"), Some("Nurse"), "{push}");
        assert_eq!(it.attr("subscription"), Some("none"), "{push}");
        assert!(it.attr("ask").is_none(), "{push}");
        let groups: Vec<_> = it.children().map(hydrant_proto::Element::text).collect();
        assert_eq!(groups, ["Servants"], "{push}");
        let ver = push
            .get_child("query", ns::ROSTER)
            .and_then(|q| q.attr("ver"))
            .expect("push carries ver (2.6.3)")
            .to_owned();
        vers.push(ver);
    }
    assert_eq!(vers[0], vers[1]);
    let v1 = vers.pop().expect("ver");
    assert_ne!(v1, v0, "the version changes with the roster");
    a3.sync().await;
    a3.assert_none(
        "roster push to a resource that never requested the roster",
        |e| e.get_child("query", ns::ROSTER).is_some(),
    );

    // 2.6.3: the current version gives an empty result; an older one the roster.
    assert!(a2.roster_get(Some(&v1)).await.is_none(), "unchanged roster");
    let q = a2.roster_get(Some(&v0)).await.expect("changed since v0");
    assert_eq!(item(&q).attr("jid"), Some("nurse@localhost"), "{q}");
    assert_eq!(q.attr("ver"), Some(v1.as_str()));

    // 2.5.2: remove; pushes with subscription='remove', result to the remover.
    let res = a2
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='nurse@localhost' subscription='remove'/></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    for c in [&mut a1, &mut a2] {
        let push = c
            .expect("removal push", roster_push("nurse@localhost"))
            .await;
        assert_eq!(item(&push).attr("subscription"), Some("remove"), "{push}");
        let ver = push
            .get_child("query", ns::ROSTER)
            .and_then(|q| q.attr("ver"))
            .expect("ver");
        assert_ne!(ver, v1);
    }
    let q = a1.roster_get(None).await.expect("roster");
    assert_eq!(q.children().count(), 0, "{q}");

    // 2.5.3: removing an item that is not there.
    let res = a1
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='nobody@localhost' subscription='remove'/></query>",
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("item-not-found"),
        "{res}"
    );
    for c in [a1, a2, a3] {
        c.close().await;
    }
}

#[tokio::test]
async fn client_cannot_set_subscription_state() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a = server.login("alice", "pw-alice", "r").await;
    a.roster_get(None).await;
    // 2.1.2.5 / 2.3.2: 'subscription' (other than remove) and 'ask' from a client are
    // ignored: the item is created with subscription='none' and no ask.
    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'>\
             <item jid='romeo@example.net' subscription='both' ask='subscribe'/></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let push = a.expect("push", roster_push("romeo@example.net")).await;
    assert_eq!(item(&push).attr("subscription"), Some("none"), "{push}");
    assert!(item(&push).attr("ask").is_none(), "{push}");
    let q = a.roster_get(None).await.expect("roster");
    assert_eq!(item(&q).attr("subscription"), Some("none"), "{q}");
}

#[tokio::test]
async fn malformed_roster_sets_are_refused() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a = server.login("alice", "pw-alice", "r").await;
    // 2.3.3: exactly one item per set.
    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='a@localhost'/><item jid='b@localhost'/></query>",
        )
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");
    // 2.3.3: an empty group is not acceptable; a duplicate group is a bad request.
    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='a@localhost'><group/></item></query>",
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='a@localhost'>\
             <group>x</group><group>x</group></item></query>",
        )
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");
    // Nothing was stored.
    let q = a.roster_get(None).await.expect("roster");
    assert_eq!(q.children().count(), 0, "{q}");
}

#[tokio::test]
async fn roster_of_another_user_is_not_disclosed() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.login("alice", "pw-alice", "r").await;
    // RFC 6121 2.1.5: a roster get addressed to another account is refused; it must
    // never return that account's roster.
    let res = a
        .iq(
            "get",
            Some("bob@localhost"),
            "<query xmlns='jabber:iq:roster'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("error"), "{res}");
    assert!(
        res.get_child("query", ns::ROSTER)
            .is_none_or(|q| q.children().count() == 0)
    );
    // Addressed to one's own bare JID it works like no 'to' at all.
    let res = a
        .iq(
            "get",
            Some("alice@localhost"),
            "<query xmlns='jabber:iq:roster'/>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
}

#[tokio::test]
async fn removing_a_contact_cancels_both_subscriptions() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    let mut b = server.online("bob", "pw-bob", "work").await;
    common::befriend(&mut a, &mut b).await;

    let res = a
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:roster'><item jid='bob@localhost' subscription='remove'/></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let push = a.expect("removal push", roster_push("bob@localhost")).await;
    assert_eq!(item(&push).attr("subscription"), Some("remove"), "{push}");
    // RFC 6121 2.5.2: the server cancels both directions on the user's behalf; the
    // contact gets 'unsubscribe' and 'unsubscribed' and ends up with 'none'.
    b.expect(
        "unsubscribe",
        common::presence("alice@localhost", Some("unsubscribe")),
    )
    .await;
    b.expect(
        "unsubscribed",
        common::presence("alice@localhost", Some("unsubscribed")),
    )
    .await;
    let none = |e: &hydrant_proto::Element| {
        roster_push("alice@localhost")(e) && item(e).attr("subscription") == Some("none")
    };
    b.expect("push none", none).await;
    // Each side stops seeing the other: unavailable both ways (3.2.2, 3.3.3).
    a.expect(
        "bob unavailable for alice",
        common::presence("bob@localhost/work", Some("unavailable")),
    )
    .await;
    b.expect(
        "alice unavailable for bob",
        common::presence("alice@localhost/home", Some("unavailable")),
    )
    .await;
    a.send_presence("<status>after removal</status>").await;
    a.sync().await;
    b.sync().await;
    b.assert_none("alice's presence after removal", |e| {
        e.name() == "presence" && e.attr("from") == Some("alice@localhost/home")
    });
}
