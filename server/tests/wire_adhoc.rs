//! Wire tests: XEP-0050 ad-hoc commands with XEP-0133 service administration (issue 11,
//! item 5), as an operator's client runs them: list, form, submit; admins only.

mod common;

use std::fmt::Write as _;

use common::{Client, Server, message_with_body, new_id, stanza_error};
use hydrant_proto::{Element, ns};

const COMMANDS: &str = "http://jabber.org/protocol/commands";
const ADMIN_CONFIG: &str = "[admin]\nadmins = [\"root@localhost\"]\n";

fn add_user(server: &Server, names: &[&str]) {
    for n in names {
        server.add_user(n, &format!("pw-{n}"));
    }
}

async fn online(server: &Server, user: &str) -> Client {
    server.online(user, &format!("pw-{user}"), "desk").await
}

fn field(var: &str, values: &[&str]) -> String {
    let v = values.iter().fold(String::new(), |mut out, v| {
        let _ = write!(out, "<value>{v}</value>");
        out
    });
    format!("<field var='{var}'>{v}</field>")
}

/// Executes `node`: the form first, then the submission with `fields`; returns the
/// final `<command/>`.
async fn run(c: &mut Client, node: &str, fields: &[String]) -> Element {
    let res = c
        .iq(
            "set",
            Some("localhost"),
            &format!("<command xmlns='{COMMANDS}' node='{node}' action='execute'/>"),
        )
        .await;
    let cmd = res
        .get_child("command", COMMANDS)
        .unwrap_or_else(|| panic!("no command: {res}"))
        .clone();
    let sid = cmd.attr("sessionid").expect("sessionid").to_owned();
    if cmd.attr("status") == Some("completed") {
        return cmd;
    }
    assert_eq!(cmd.attr("status"), Some("executing"), "{cmd}");
    let form = cmd.get_child("x", ns::DATA_FORMS).expect("a form");
    assert_eq!(form.attr("type"), Some("form"), "{form}");
    let res = c
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{COMMANDS}' node='{node}' sessionid='{sid}' action='complete'>\
                 <x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>http://jabber.org/protocol/admin</value></field>{}\
                 </x></command>",
                fields.concat()
            ),
        )
        .await;
    let cmd = res
        .get_child("command", COMMANDS)
        .unwrap_or_else(|| panic!("no command: {res}"))
        .clone();
    assert_eq!(cmd.attr("status"), Some("completed"), "{cmd}");
    cmd
}

fn note(cmd: &Element) -> (String, String) {
    let n = cmd.get_child("note", COMMANDS).expect("a note");
    (n.attr("type").unwrap_or("info").to_owned(), n.text())
}

fn values(cmd: &Element, var: &str) -> Vec<String> {
    cmd.get_child("x", ns::DATA_FORMS)
        .and_then(|x| x.children().find(|f| f.attr("var") == Some(var)))
        .map(|f| f.children().map(Element::text).collect())
        .unwrap_or_default()
}

async fn list(c: &mut Client) -> Element {
    let q = format!("<query xmlns='http://jabber.org/protocol/disco#items' node='{COMMANDS}'/>");
    c.iq("get", Some("localhost"), &q).await
}

#[tokio::test]
async fn admins_see_the_commands_and_others_do_not() {
    let server = Server::start_with(ADMIN_CONFIG).await;
    add_user(&server, &["root", "alice"]);
    let mut root = online(&server, "root").await;
    let mut alice = online(&server, "alice").await;

    let info = root
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(
        info.to_string().contains(COMMANDS),
        "commands advertised: {info}"
    );

    let items = list(&mut root).await;
    let nodes: Vec<_> = items
        .get_child("query", ns::DISCO_ITEMS)
        .unwrap()
        .children()
        .filter_map(|i| i.attr("node").map(str::to_owned))
        .collect();
    for n in [
        "add-user",
        "delete-user",
        "change-user-password",
        "get-online-users-list",
        "announce",
    ] {
        assert!(
            nodes.iter().any(|x| x.ends_with(&format!("#{n}"))),
            "{n} listed for an admin: {items}"
        );
    }
    let items = list(&mut alice).await;
    assert_eq!(
        items
            .get_child("query", ns::DISCO_ITEMS)
            .unwrap()
            .children()
            .count(),
        0,
        "nothing for a non-admin: {items}"
    );
    let res = alice
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{COMMANDS}' node='http://jabber.org/protocol/admin#add-user' action='execute'/>"
            ),
        )
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("forbidden"), "{res}");
}

#[tokio::test]
async fn an_admin_adds_changes_and_deletes_accounts() {
    let server = Server::start_with(ADMIN_CONFIG).await;
    add_user(&server, &["root"]);
    let mut root = online(&server, "root").await;
    let cmd = run(
        &mut root,
        "http://jabber.org/protocol/admin#add-user",
        &[
            field("accountjid", &["bob@localhost"]),
            field("password", &["first-pw"]),
            field("password-verify", &["first-pw"]),
        ],
    )
    .await;
    assert_eq!(note(&cmd).0, "info", "{cmd}");
    let mut bob = server.login("bob", "first-pw", "phone").await;
    bob.sync().await;

    // Adding it again, or mismatched passwords: an error note, nothing changed.
    let cmd = run(
        &mut root,
        "http://jabber.org/protocol/admin#add-user",
        &[
            field("accountjid", &["bob@localhost"]),
            field("password", &["x-pw-1"]),
            field("password-verify", &["x-pw-2"]),
        ],
    )
    .await;
    assert_eq!(note(&cmd).0, "error", "{cmd}");

    // A new password: bob's session ends with <reset/>, the new one works.
    let cmd = run(
        &mut root,
        "http://jabber.org/protocol/admin#change-user-password",
        &[
            field("accountjid", &["bob@localhost"]),
            field("password", &["second-pw"]),
        ],
    )
    .await;
    assert_eq!(note(&cmd).0, "info", "{cmd}");
    assert_eq!(bob.expect_stream_error().await, "reset");
    let bob = server.login("bob", "second-pw", "phone").await;

    // Deleted: the session ends, the login fails; another domain's JID is refused.
    let cmd = run(
        &mut root,
        "http://jabber.org/protocol/admin#delete-user",
        &[field(
            "accountjids",
            &["bob@localhost", "eve@elsewhere.example"],
        )],
    )
    .await;
    let (kind, text) = note(&cmd);
    assert_eq!(kind, "error", "one of two failed: {cmd}");
    assert!(text.contains("bob@localhost"), "{text}");
    assert!(text.contains("elsewhere.example"), "{text}");
    let mut bob = bob;
    assert_eq!(bob.expect_stream_error().await, "not-authorized");
    let (mut c, _) = server.connect_tls().await;
    assert!(
        c.auth_plain("bob", "second-pw").await.is_err(),
        "bob is gone"
    );
}

#[tokio::test]
async fn online_users_and_announcements() {
    let server = Server::start_with(ADMIN_CONFIG).await;
    add_user(&server, &["root", "alice", "carol"]);
    let mut root = online(&server, "root").await;
    let mut alice = online(&server, "alice").await;
    let mut carol = online(&server, "carol").await;
    let cmd = run(
        &mut root,
        "http://jabber.org/protocol/admin#get-online-users-list",
        &[field("max_items", &["none"])],
    )
    .await;
    assert_eq!(
        values(&cmd, "onlineuserjids"),
        ["alice@localhost", "carol@localhost", "root@localhost"]
    );
    let cmd = run(
        &mut root,
        "http://jabber.org/protocol/admin#get-online-users-num",
        &[],
    )
    .await;
    assert_eq!(values(&cmd, "onlineusersnum"), ["3"]);

    let text = format!("maintenance at noon {}", new_id());
    run(
        &mut root,
        "http://jabber.org/protocol/admin#announce",
        &[
            field("subject", &["Notice"]),
            field("announcement", &[&text]),
        ],
    )
    .await;
    for c in [&mut alice, &mut carol, &mut root] {
        let m = c.expect("the announcement", message_with_body(&text)).await;
        assert_eq!(m.attr("from"), Some("localhost"), "{m}");
        assert_eq!(m.attr("type"), Some("headline"), "{m}");
    }
    // Canceling is answered with status='canceled'.
    let res = root
        .iq(
            "set",
            Some("localhost"),
            &format!(
                "<command xmlns='{COMMANDS}' node='http://jabber.org/protocol/admin#announce' sessionid='s1' action='cancel'/>"
            ),
        )
        .await;
    assert_eq!(
        res.get_child("command", COMMANDS)
            .and_then(|c| c.attr("status")),
        Some("canceled"),
        "{res}"
    );
}
