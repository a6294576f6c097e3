//! Wire tests: subscription pre-approval (RFC 6121 3.4, issue 11 item 6).

mod common;

use common::{Server, item, presence, roster_push};
use hydrant_proto::ns;

#[tokio::test]
async fn a_pre_approved_contact_is_subscribed_without_asking_the_user() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    // 3.4: the stream feature.
    let (mut c, _) = server.connect_tls().await;
    c.auth_plain("alice", "pw-alice").await.expect("login");
    let features = c.open_stream().await;
    assert!(
        features.get_child("sub", ns::PRE_APPROVAL).is_some(),
        "pre-approval advertised: {features}"
    );
    drop(c);

    let mut a = server.online("alice", "pw-alice", "desk").await;
    let mut b = server.online("bob", "pw-bob", "phone").await;
    // 3.4.1: nothing was asked, so this pre-approves: a roster push with
    // approved='true', and nothing reaches bob.
    a.send("<presence to='bob@localhost' type='subscribed'/>")
        .await;
    let push = a
        .expect("the pre-approval", roster_push("bob@localhost"))
        .await;
    assert_eq!(item(&push).attr("approved"), Some("true"), "{push}");
    assert_eq!(item(&push).attr("subscription"), Some("none"), "{push}");
    b.sync().await;
    b.assert_none(
        "a subscribed before asking",
        presence("alice@localhost", Some("subscribed")),
    );

    // 3.4.2: bob asks and is approved at once; alice is not asked.
    b.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    b.expect(
        "subscribed",
        presence("alice@localhost", Some("subscribed")),
    )
    .await;
    b.expect(
        "alice's presence after approval",
        presence(&a.jid.clone(), None),
    )
    .await;
    let push = a
        .expect("subscription='from'", |e| {
            roster_push("bob@localhost")(e) && item(e).attr("subscription") == Some("from")
        })
        .await;
    assert_eq!(
        item(&push).attr("approved"),
        None,
        "the approval is used up: {push}"
    );
    a.sync().await;
    a.assert_none(
        "bob's request",
        presence("bob@localhost", Some("subscribe")),
    );
}

#[tokio::test]
async fn unsubscribed_cancels_a_pre_approval() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("carol", "pw-carol");
    let mut a = server.online("alice", "pw-alice", "desk").await;
    let mut c = server.online("carol", "pw-carol", "phone").await;
    a.send("<presence to='carol@localhost' type='subscribed'/>")
        .await;
    a.expect("the pre-approval", |e| {
        roster_push("carol@localhost")(e) && item(e).attr("approved") == Some("true")
    })
    .await;
    a.send("<presence to='carol@localhost' type='unsubscribed'/>")
        .await;
    a.expect("the approval cancelled", |e| {
        roster_push("carol@localhost")(e) && item(e).attr("approved").is_none()
    })
    .await;
    // Now carol's request reaches alice as a request.
    c.send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    a.expect(
        "carol's request",
        presence("carol@localhost", Some("subscribe")),
    )
    .await;
}
