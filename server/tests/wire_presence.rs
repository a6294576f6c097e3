//! Wire tests: presence subscriptions (RFC 6121 section 3) and presence exchange
//! (section 4): broadcast, probes at login, directed presence, unavailable at logout.

mod common;

use common::{Client, Server, befriend, item, presence, roster_push};
use hydrant_proto::{Element, ns};

fn status(e: &Element) -> Option<String> {
    e.get_child("status", ns::CLIENT).map(Element::text)
}

fn push_with(jid: &str, sub: &'static str, ask: bool) -> impl Fn(&Element) -> bool + use<> {
    let pred = roster_push(jid);
    move |e: &Element| {
        pred(e) && item(e).attr("subscription") == Some(sub) && item(e).attr("ask").is_some() == ask
    }
}

async fn two_users(server: &Server) -> (Client, Client) {
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let a = server.online("alice", "pw-alice", "home").await;
    let b = server.online("bob", "pw-bob", "work").await;
    (a, b)
}

#[tokio::test]
async fn subscription_handshake_as_rfc6121_3_1() {
    let server = Server::start().await;
    let (mut a, mut b) = two_users(&server).await;
    // Without a subscription, presence does not flow (4.2.2 goes to subscribers only).
    b.send_presence("<status>b here</status>").await;
    b.sync().await;
    a.sync().await;
    a.assert_none("presence from a non-contact", |e| {
        e.name() == "presence" && e.attr("from").is_some_and(|f| f.starts_with("bob@"))
    });

    // 3.1.2: the user's server pushes the item with ask='subscribe' and sends the
    // request stamped with the user's bare JID.
    a.send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    let push = a
        .expect("push with ask", push_with("bob@localhost", "none", true))
        .await;
    assert_eq!(item(&push).attr("ask"), Some("subscribe"), "{push}");
    let req = b
        .expect("subscribe", presence("alice@localhost", Some("subscribe")))
        .await;
    assert_eq!(req.attr("to"), Some("bob@localhost"), "{req}");

    // 3.1.5: the contact approves: contact push 'from', user push 'to', the user gets
    // 'subscribed' and then the contact's current presence.
    b.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    b.expect("push from", push_with("alice@localhost", "from", false))
        .await;
    a.expect("push to", push_with("bob@localhost", "to", false))
        .await;
    a.expect("subscribed", presence("bob@localhost", Some("subscribed")))
        .await;
    let p = a
        .expect("bob's presence", presence("bob@localhost/work", None))
        .await;
    assert_eq!(status(&p).as_deref(), Some("b here"), "{p}");

    // Now the other way round: both.
    b.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    b.expect("push from+ask", push_with("alice@localhost", "from", true))
        .await;
    a.expect("subscribe", presence("bob@localhost", Some("subscribe")))
        .await;
    a.send_presence("<status>a here</status>").await;
    a.send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    a.expect("push both", push_with("bob@localhost", "both", false))
        .await;
    b.expect("push both", push_with("alice@localhost", "both", false))
        .await;
    b.expect(
        "subscribed",
        presence("alice@localhost", Some("subscribed")),
    )
    .await;
    let p = b
        .expect("alice's presence", presence("alice@localhost/home", None))
        .await;
    assert_eq!(status(&p).as_deref(), Some("a here"), "{p}");

    // Both now see each other's presence updates (4.4.2).
    a.send_presence("<show>dnd</show><status>busy now</status>")
        .await;
    let p = b
        .expect("alice's update", |e| {
            presence("alice@localhost/home", None)(e) && status(e).as_deref() == Some("busy now")
        })
        .await;
    assert_eq!(
        p.get_child("show", ns::CLIENT)
            .map(Element::text)
            .as_deref(),
        Some("dnd")
    );
    b.send_presence("<status>lunch</status>").await;
    a.expect("bob's update", |e| {
        presence("bob@localhost/work", None)(e) && status(e).as_deref() == Some("lunch")
    })
    .await;

    // The rosters agree after a fresh get.
    let q = a.roster_get(None).await.expect("roster");
    assert_eq!(item(&q).attr("subscription"), Some("both"), "{q}");
    let q = b.roster_get(None).await.expect("roster");
    assert_eq!(item(&q).attr("subscription"), Some("both"), "{q}");
}

#[tokio::test]
async fn subscribe_to_offline_contact_is_delivered_at_initial_presence() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    a.send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    a.expect("push with ask", push_with("bob@localhost", "none", true))
        .await;
    a.sync().await;

    // Bound but not yet available: the request waits (RFC 6121 3.1.3).
    let mut b = server.login("bob", "pw-bob", "work").await;
    b.roster_get(None).await;
    b.sync().await;
    b.assert_none("subscription request before initial presence", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribe")
    });
    b.send_presence("").await;
    b.expect(
        "stored subscribe",
        presence("alice@localhost", Some("subscribe")),
    )
    .await;
    b.send("<presence to='alice@localhost' type='subscribed'/>")
        .await;
    a.expect("push to", push_with("bob@localhost", "to", false))
        .await;
    a.expect("subscribed", presence("bob@localhost", Some("subscribed")))
        .await;
    a.expect("bob's presence", presence("bob@localhost/work", None))
        .await;

    // Once handled, the request is not delivered again at the next login.
    b.close().await;
    let mut b = server.login("bob", "pw-bob", "work").await;
    b.send_presence("").await;
    b.sync().await;
    b.assert_none("a subscription request already answered", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribe")
    });
}

#[tokio::test]
async fn subscribe_to_nonexistent_account_is_refused() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut a = server.online("alice", "pw-alice", "home").await;
    a.send("<presence to='ghost@localhost' type='subscribe'/>")
        .await;
    a.expect("push with ask", push_with("ghost@localhost", "none", true))
        .await;
    // RFC 6121 3.1.3: no such contact, so the contact's server answers 'unsubscribed',
    // which clears the pending request (3.1.6).
    a.expect(
        "unsubscribed",
        presence("ghost@localhost", Some("unsubscribed")),
    )
    .await;
    a.expect(
        "push without ask",
        push_with("ghost@localhost", "none", false),
    )
    .await;
}

#[tokio::test]
async fn unsubscribe_and_unsubscribed_transitions() {
    let server = Server::start().await;
    let (mut a, mut b) = two_users(&server).await;
    befriend(&mut a, &mut b).await;

    // 3.3: alice unsubscribes from bob's presence: alice 'from', bob 'to'; bob's
    // resources go unavailable for alice (3.3.3).
    a.send("<presence to='bob@localhost' type='unsubscribe'/>")
        .await;
    a.expect("push from", push_with("bob@localhost", "from", false))
        .await;
    b.expect("push to", push_with("alice@localhost", "to", false))
        .await;
    b.expect(
        "unsubscribe",
        presence("alice@localhost", Some("unsubscribe")),
    )
    .await;
    a.expect(
        "bob unavailable",
        presence("bob@localhost/work", Some("unavailable")),
    )
    .await;

    // Alice still sends presence to bob (bob is subscribed to her); bob's updates no
    // longer reach alice.
    a.send_presence("<status>still here</status>").await;
    b.expect("alice's update", |e| {
        presence("alice@localhost/home", None)(e) && status(e).as_deref() == Some("still here")
    })
    .await;
    b.send_presence("<status>unseen</status>").await;
    b.sync().await;
    a.sync().await;
    a.assert_none("bob's presence after unsubscribing", |e| {
        e.name() == "presence" && e.attr("from") == Some("bob@localhost/work")
    });

    // 3.2: alice cancels bob's subscription: both 'none'; bob gets 'unsubscribed' and
    // alice's resources go unavailable for him (3.2.2).
    a.send("<presence to='bob@localhost' type='unsubscribed'/>")
        .await;
    a.expect("push none", push_with("bob@localhost", "none", false))
        .await;
    b.expect("push none", push_with("alice@localhost", "none", false))
        .await;
    b.expect(
        "unsubscribed",
        presence("alice@localhost", Some("unsubscribed")),
    )
    .await;
    b.expect(
        "alice unavailable",
        presence("alice@localhost/home", Some("unavailable")),
    )
    .await;
    a.send_presence("<status>private</status>").await;
    a.sync().await;
    b.sync().await;
    b.assert_none("alice's presence after cancelling", |e| {
        e.name() == "presence" && e.attr("from") == Some("alice@localhost/home")
    });
}

#[tokio::test]
async fn unavailable_on_logout_and_on_abrupt_disconnect_and_probe_at_login() {
    let server = Server::start().await;
    let (mut a, mut b) = two_users(&server).await;
    befriend(&mut a, &mut b).await;

    // An orderly close: alice hears bob leave (4.5.2 via the server).
    b.close().await;
    a.expect(
        "unavailable after close",
        presence("bob@localhost/work", Some("unavailable")),
    )
    .await;

    // Bob comes back: alice sees him, and bob's server probes alice for him (4.3).
    let mut b = server.login("bob", "pw-bob", "work").await;
    b.send_presence("<status>back</status>").await;
    b.expect(
        "probe answer: alice's presence",
        presence("alice@localhost/home", None),
    )
    .await;
    a.expect("bob back", |e| {
        presence("bob@localhost/work", None)(e) && status(e).as_deref() == Some("back")
    })
    .await;

    // Abrupt TCP close, no </stream:stream>: the server still says unavailable (4.5.3).
    drop(b);
    a.expect(
        "unavailable after TCP close",
        presence("bob@localhost/work", Some("unavailable")),
    )
    .await;

    // An explicit unavailable presence is broadcast too (4.5.2).
    let mut b = server.online("bob", "pw-bob", "work").await;
    a.expect("bob back again", presence("bob@localhost/work", None))
        .await;
    b.send("<presence type='unavailable'><status>gone fishing</status></presence>")
        .await;
    let p = a
        .expect(
            "explicit unavailable",
            presence("bob@localhost/work", Some("unavailable")),
        )
        .await;
    assert_eq!(status(&p).as_deref(), Some("gone fishing"), "{p}");
}

#[tokio::test]
async fn own_resources_see_each_other() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let mut one = server.login("alice", "pw-alice", "one").await;
    one.send_presence("<status>first</status>").await;
    let mut two = server.login("alice", "pw-alice", "two").await;
    two.send_presence("<priority>5</priority><status>second</status>")
        .await;
    // 4.2.2: the new resource's presence goes to the user's other available resources,
    // and the new resource learns theirs.
    let p = one
        .expect(
            "presence of the other resource",
            presence("alice@localhost/two", None),
        )
        .await;
    assert_eq!(status(&p).as_deref(), Some("second"), "{p}");
    let p = two
        .expect(
            "presence of the other resource",
            presence("alice@localhost/one", None),
        )
        .await;
    assert_eq!(status(&p).as_deref(), Some("first"), "{p}");
    drop(two);
    one.expect(
        "the other resource leaves",
        presence("alice@localhost/two", Some("unavailable")),
    )
    .await;
}

#[tokio::test]
async fn directed_presence_to_non_contact_and_unavailable_owed_at_logout() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("carol", "pw-carol");
    server.add_user("dave", "pw-dave");
    let mut a = server.online("alice", "pw-alice", "home").await;
    let mut c = server.online("carol", "pw-carol", "desk").await;
    let mut d = server.online("dave", "pw-dave", "desk").await;

    // 4.6.2: directed presence reaches a non-contact as is, from the full JID.
    a.send("<presence to='carol@localhost'><status>psst</status></presence>")
        .await;
    let p = c
        .expect("directed presence", presence("alice@localhost/home", None))
        .await;
    assert_eq!(status(&p).as_deref(), Some("psst"), "{p}");
    assert_eq!(p.attr("to"), Some("carol@localhost"), "{p}");
    // A broadcast update does not go to carol: she is not a subscriber (4.6.1).
    a.send_presence("<status>broadcast</status>").await;
    a.sync().await;
    c.sync().await;
    c.assert_none("broadcast presence to a non-subscriber", |e| {
        e.name() == "presence" && status(e).as_deref() == Some("broadcast")
    });

    // 4.6.3: at logout the server sends unavailable presence to her as well, and
    // not to dave who got nothing from alice.
    a.close().await;
    c.expect(
        "owed unavailable",
        presence("alice@localhost/home", Some("unavailable")),
    )
    .await;
    d.sync().await;
    d.assert_none("presence from alice", |e| {
        e.name() == "presence" && e.attr("from") == Some("alice@localhost/home")
    });
}

#[tokio::test]
async fn one_way_subscription_and_probes_at_login() {
    let server = Server::start().await;
    let (mut a, mut b) = two_users(&server).await;
    common::subscribe_and_approve(&mut a, &mut b).await;
    // alice is subscribed to bob ('to'); bob is not subscribed to alice ('from').
    b.close().await;
    a.expect(
        "bob leaves",
        presence("bob@localhost/work", Some("unavailable")),
    )
    .await;
    a.close().await;

    // bob first, then alice: alice's server probes bob for her (4.3.2) ...
    let mut b = server.online("bob", "pw-bob", "work").await;
    let mut a = server.online("alice", "pw-alice", "home").await;
    a.expect(
        "bob's presence via probe",
        presence("bob@localhost/work", None),
    )
    .await;
    // ... while bob gets nothing from alice, in either order (4.2.2: only subscribers).
    a.send_presence("<status>alice update</status>").await;
    a.sync().await;
    b.sync().await;
    b.assert_none("presence from alice", |e| {
        e.name() == "presence" && e.attr("from") == Some("alice@localhost/home")
    });
    // bob's updates do reach alice.
    b.send_presence("<status>bob update</status>").await;
    a.expect("bob's update", |e| {
        presence("bob@localhost/work", None)(e) && status(e).as_deref() == Some("bob update")
    })
    .await;
}

#[tokio::test]
async fn subscription_request_withdrawn_while_contact_offline() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let mut a = server.online("alice", "pw-alice", "home").await;
    a.send("<presence to='bob@localhost' type='subscribe'/>")
        .await;
    a.expect("push with ask", push_with("bob@localhost", "none", true))
        .await;
    // RFC 6121 3.3.2: unsubscribe clears the pending request ('ask') ...
    a.send("<presence to='bob@localhost' type='unsubscribe'/>")
        .await;
    a.expect(
        "push without ask",
        push_with("bob@localhost", "none", false),
    )
    .await;
    a.sync().await;
    // ... and 3.3.3: the contact's server forgets the stored request.
    let mut b = server.online("bob", "pw-bob", "work").await;
    b.sync().await;
    b.assert_none("a withdrawn subscription request", |e| {
        e.name() == "presence" && e.attr("type") == Some("subscribe")
    });
}
