//! Wire tests: what ends with an account and what a new password ends (issue 8, item
//! 14). A removed account's sessions end with `<not-authorized/>` (XEP-0077 3.2), its
//! contacts lose it (subscriptions cancelled, roster entries gone), its pubsub state is
//! gone everywhere, so a new account with the same name inherits nothing; a password
//! change ends the account's other sessions with `<reset/>`; the admin CLI does both
//! while the server runs.

mod common;

use std::path::Path;

use common::pubsub::{PW, assert_result, entry, publish, subscribe, users};
use common::{
    Client, Server, befriend, config_text, is_reply, item, new_id, presence, roster_push,
    stanza_error,
};
use hydrant_proto::{Element, ns};
use hydrant_server::config::Config;
use hydrant_server::users::UserAction;

const PUBSUB: &str = "pubsub.localhost";

async fn create_node(c: &mut Client, node: &str) {
    let res = c
        .iq(
            "set",
            Some(PUBSUB),
            &format!(
                "<pubsub xmlns='{}'><create node='{node}'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, &format!("create {node}"));
}

/// A roster push removing `jid`.
fn removal_push(jid: &str) -> impl Fn(&Element) -> bool + use<> {
    let push = roster_push(jid);
    move |e: &Element| push(e) && item(e).attr("subscription") == Some("remove")
}

/// The `<pubsub/>` child of a successful iq to a pubsub service.
async fn pubsub_get(c: &mut Client, to: &str, inner: &str, ns: &str) -> Element {
    let res = c
        .iq(
            "get",
            Some(to),
            &format!("<pubsub xmlns='{ns}'>{inner}</pubsub>"),
        )
        .await;
    assert_result(&res, inner);
    res.get_child("pubsub", ns)
        .unwrap_or_else(|| panic!("{res}"))
        .clone()
}

async fn remove_in_band(c: &mut Client) {
    let id = new_id();
    c.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'><remove/></query></iq>"
    ))
    .await;
    let res = c.expect("removal result", is_reply(&id)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
}

async fn register(server: &Server, user: &str, password: &str) -> Client {
    let (mut c, _) = server.connect_tls().await;
    let res = c
        .iq(
            "set",
            None,
            &format!(
                "<query xmlns='jabber:iq:register'><username>{user}</username>\
                 <password>{password}</password></query>"
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "re-registration: {res}");
    c.auth_plain(user, password).await.unwrap();
    let features = c.open_stream().await;
    c.bind(&features, "new").await;
    c
}

/// Runs `hydrant user ...` as the admin would, on the server's data directory.
async fn cli(server_dir: &Path, action: UserAction) {
    let cfg = Config::parse(&config_text(server_dir, "", ""), Path::new("test")).expect("config");
    tokio::task::spawn_blocking(move || hydrant_server::users::run(&cfg, &action))
        .await
        .expect("CLI thread")
        .expect("CLI command succeeds");
}

#[tokio::test]
async fn in_band_removal_leaves_nothing_for_a_new_account_of_that_name() {
    let server = Server::start().await;
    users(&server, &["alice", "bob", "carol"]);
    let mut alice = server.online("alice", PW, "one").await;
    let mut a2 = server.online("alice", PW, "two").await;
    let mut bob = server.online("bob", PW, "r").await;
    let mut carol = server.online("carol", PW, "r").await;
    befriend(&mut alice, &mut bob).await;
    // Bob files alice under a group (roster-group access would hand it on).
    bob.iq(
        "set",
        None,
        "<query xmlns='jabber:iq:roster'><item jid='alice@localhost'><group>Friends</group></item></query>",
    )
    .await;
    // Carol asks alice for a subscription, unanswered.
    carol
        .send("<presence to='alice@localhost' type='subscribe'/>")
        .await;
    alice
        .expect(
            "carol's request",
            presence("carol@localhost", Some("subscribe")),
        )
        .await;
    // Pubsub: alice owns `a-node` alone (carol subscribes), subscribes to carol's
    // `c-node` and to bob's PEP node, and publishes on her own PEP.
    create_node(&mut alice, "a-node").await;
    subscribe(&mut carol, PUBSUB, "a-node", "carol@localhost/r", None).await;
    create_node(&mut carol, "c-node").await;
    subscribe(&mut alice, PUBSUB, "c-node", "alice@localhost/one", None).await;
    subscribe(&mut a2, PUBSUB, "c-node", "alice@localhost", None).await;
    publish(&mut bob, "bob@localhost", "bob-news", "1", &entry("b")).await;
    subscribe(
        &mut alice,
        "bob@localhost",
        "bob-news",
        "alice@localhost/one",
        None,
    )
    .await;
    publish(
        &mut alice,
        "alice@localhost",
        "alice-news",
        "1",
        &entry("a"),
    )
    .await;
    // An offline message: no session of alice is available.
    for s in [&mut alice, &mut a2] {
        s.send("<presence type='unavailable'/>").await;
        s.sync().await;
    }
    bob.send("<message to='alice@localhost' type='chat'><body>stored</body></message>")
        .await;
    bob.sync().await;
    for x in [&mut bob, &mut carol] {
        x.sync().await;
        x.clear();
    }

    remove_in_band(&mut alice).await;
    for s in [&mut alice, &mut a2] {
        assert_eq!(s.expect_stream_error().await, "not-authorized");
        s.expect_closed().await;
    }
    // Bob: both subscriptions cancelled (XEP-0077 3.2), then the entry removed.
    bob.expect(
        "unsubscribe",
        presence("alice@localhost", Some("unsubscribe")),
    )
    .await;
    bob.expect(
        "unsubscribed",
        presence("alice@localhost", Some("unsubscribed")),
    )
    .await;
    bob.expect("roster entry removed", removal_push("alice@localhost"))
        .await;
    // Carol: her pending request is refused, her entry removed, and the node alice
    // owned alone is deleted (XEP-0060 8.4.2 notification).
    carol
        .expect(
            "request refused",
            presence("alice@localhost", Some("unsubscribed")),
        )
        .await;
    carol
        .expect("roster entry removed", removal_push("alice@localhost"))
        .await;
    carol
        .expect("a-node deleted", |e| {
            e.name() == "message"
                && e.get_child("event", ns::PUBSUB_EVENT)
                    .and_then(|ev| ev.get_child("delete", ns::PUBSUB_EVENT))
                    .is_some_and(|d| d.attr("node") == Some("a-node"))
        })
        .await;

    // A new alice inherits nothing.
    let mut fresh = register(&server, "alice", "a-new-password").await;
    let q = fresh.roster_get(None).await.expect("roster");
    assert_eq!(q.children().count(), 0, "fresh roster: {q}");
    fresh.send_presence("").await;
    fresh.sync().await;
    fresh.assert_none("the old account's offline message or requests", |e| {
        e.name() == "message" || e.attr("type") == Some("subscribe")
    });
    let subs = pubsub_get(&mut fresh, PUBSUB, "<subscriptions/>", ns::PUBSUB).await;
    let affs = pubsub_get(&mut fresh, PUBSUB, "<affiliations/>", ns::PUBSUB).await;
    for (what, el) in [("subscriptions", &subs), ("affiliations", &affs)] {
        let list = el.children().next().expect(what);
        assert_eq!(list.children().count(), 0, "{what}: {el}");
    }
    let res = fresh
        .iq(
            "get",
            Some(PUBSUB),
            &format!(
                "<pubsub xmlns='{}'><items node='a-node'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("item-not-found"),
        "{res}"
    );
    let res = fresh
        .iq(
            "get",
            Some("alice@localhost"),
            &format!("<query xmlns='{}'/>", ns::DISCO_ITEMS),
        )
        .await;
    let nodes = res
        .get_child("query", ns::DISCO_ITEMS)
        .map_or(0, |q| q.children().count());
    assert_eq!(nodes, 0, "no PEP nodes: {res}");
    // Bob's PEP node and carol's node no longer list alice.
    let owner_subs = "<subscriptions node='bob-news'/>";
    let s = pubsub_get(&mut bob, "bob@localhost", owner_subs, ns::PUBSUB_OWNER).await;
    assert!(!s.to_string().contains("alice@"), "{s}");
    let owner_subs = "<subscriptions node='c-node'/>";
    let s = pubsub_get(&mut carol, PUBSUB, owner_subs, ns::PUBSUB_OWNER).await;
    assert!(!s.to_string().contains("alice@"), "{s}");
    // And bob's roster has no alice.
    let q = bob.roster_get(None).await.expect("roster");
    assert!(!q.to_string().contains("alice@"), "{q}");
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_with_reset() {
    let server = Server::start().await;
    server.add_user("alice", "old-password");
    let mut a1 = server.online("alice", "old-password", "one").await;
    let mut a2 = server.online("alice", "old-password", "two").await;
    let res = a1
        .iq(
            "set",
            None,
            "<query xmlns='jabber:iq:register'><username>alice</username><password>new-password</password></query>",
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    // RFC 6120 4.9.3.16: the credentials the other stream rests on are revoked.
    assert_eq!(a2.expect_stream_error().await, "reset");
    a2.expect_closed().await;
    // The session that changed it stays.
    a1.sync().await;
    assert!(!a1.closed);
}

#[tokio::test]
async fn the_admin_cli_ends_sessions_of_a_running_server() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut alice = server.online("alice", PW, "r").await;
    let mut bob = server.online("bob", PW, "r").await;
    befriend(&mut alice, &mut bob).await;

    // `hydrant user passwd`: the running server ends the sessions with <reset/>.
    cli(
        server.data_dir(),
        UserAction::Passwd {
            user: "alice".into(),
            password: Some("changed-by-admin".into()),
        },
    )
    .await;
    assert_eq!(alice.expect_stream_error().await, "reset");
    alice.expect_closed().await;

    // `hydrant user remove`: no login from now on, and the running server finishes the
    // removal: sessions end with <not-authorized/>, contacts lose it.
    let mut alice = server.online("alice", "changed-by-admin", "r").await;
    cli(
        server.data_dir(),
        UserAction::Remove {
            user: "alice".into(),
        },
    )
    .await;
    let (mut probe, _) = server.connect_tls().await;
    assert_eq!(
        probe.auth_plain("alice", "changed-by-admin").await,
        Err("not-authorized".into())
    );
    assert_eq!(alice.expect_stream_error().await, "not-authorized");
    bob.expect("roster entry removed", removal_push("alice@localhost"))
        .await;
    let mut fresh = register(&server, "alice", "a-new-password").await;
    let q = fresh.roster_get(None).await.expect("roster");
    assert_eq!(q.children().count(), 0, "fresh roster: {q}");
}

#[tokio::test]
async fn the_admin_cli_removes_completely_without_a_server() {
    let server = Server::start().await;
    users(&server, &["alice", "bob"]);
    let mut alice = server.online("alice", PW, "r").await;
    let mut bob = server.online("bob", PW, "r").await;
    befriend(&mut alice, &mut bob).await;
    publish(&mut bob, "bob@localhost", "bob-news", "1", &entry("b")).await;
    subscribe(
        &mut alice,
        "bob@localhost",
        "bob-news",
        "alice@localhost",
        None,
    )
    .await;
    alice.close().await;
    bob.close().await;
    let dir = server.stop().await;
    cli(
        dir.path(),
        UserAction::Remove {
            user: "alice".into(),
        },
    )
    .await;
    let server = Server::start_in(dir, "").await;
    let mut fresh = register(&server, "alice", "a-new-password").await;
    let q = fresh.roster_get(None).await.expect("roster");
    assert_eq!(q.children().count(), 0, "fresh roster: {q}");
    let mut bob = server.online("bob", PW, "r").await;
    let q = bob.roster_get(None).await.expect("roster");
    assert!(!q.to_string().contains("alice@"), "{q}");
    let s = pubsub_get(
        &mut bob,
        "bob@localhost",
        "<subscriptions node='bob-news'/>",
        ns::PUBSUB_OWNER,
    )
    .await;
    assert!(!s.to_string().contains("alice@"), "{s}");
}
