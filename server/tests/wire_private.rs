//! Wire tests: XEP-0049 private XML storage (issue 11 item 4). An account's clients
//! store XML by namespace and get it back, across a restart; nobody else reaches it;
//! reserved namespaces, empty and multi-namespace requests are refused; the per-account
//! quota (`[private]`) is enforced; the data goes with the account.

mod common;

use common::{Client, Server, is_reply, new_id, stanza_error};
use hydrant_proto::{Element, ns};

const PW: &str = "private-test-password";

fn query(inner: &str) -> String {
    format!("<query xmlns='jabber:iq:private'>{inner}</query>")
}

/// The `<query/>` of a successful reply.
#[track_caller]
fn result_query(res: &Element) -> &Element {
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    res.get_child("query", ns::PRIVATE)
        .unwrap_or_else(|| panic!("no private query: {res}"))
}

async fn set(c: &mut Client, to: Option<&str>, inner: &str) -> Element {
    c.iq("set", to, &query(inner)).await
}

async fn get(c: &mut Client, to: Option<&str>, inner: &str) -> Element {
    c.iq("get", to, &query(inner)).await
}

const PREFS: &str = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick>\
     <nested xmlns='urn:other' a='1 &amp; 2'>&lt;x&gt;</nested></exodus>";

/// The `<exodus/>` of a query, with its `defaultnick` and nested element checked.
#[track_caller]
fn assert_prefs(q: &Element, nick: &str) {
    let exodus = q
        .get_child("exodus", "exodus:prefs")
        .unwrap_or_else(|| panic!("no exodus prefs: {q}"));
    assert_eq!(
        exodus
            .get_child("defaultnick", "exodus:prefs")
            .map(Element::text)
            .as_deref(),
        Some(nick),
        "{q}"
    );
    let nested = exodus
        .get_child("nested", "urn:other")
        .unwrap_or_else(|| panic!("nested element lost: {q}"));
    assert_eq!(nested.attr("a"), Some("1 & 2"), "{q}");
    assert_eq!(nested.text(), "<x>", "{q}");
}

#[tokio::test]
async fn stored_by_namespace_and_kept_across_a_restart() {
    let server = Server::start().await;
    server.add_user("hamlet", PW);
    let mut c = server.login("hamlet", PW, "denmark").await;

    // XEP-0049 2.3, example 2 before anything is stored: the query comes back as asked.
    let res = get(&mut c, None, "<exodus xmlns='exodus:prefs'/>").await;
    let q = result_query(&res);
    let exodus = q.get_child("exodus", "exodus:prefs").expect("echoed");
    assert_eq!(exodus.children().count(), 0, "{res}");

    // Examples 1 and 2.
    let res = set(&mut c, None, PREFS).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    assert!(res.children().next().is_none(), "an empty result: {res}");
    let res = get(&mut c, None, "<exodus xmlns='exodus:prefs'/>").await;
    assert_prefs(result_query(&res), "Hamlet");

    // The account's bare JID is the same storage; another namespace is separate, and
    // one set may carry several namespaces and several elements of one namespace.
    let bare = c.bare();
    let res = set(
        &mut c,
        Some(&bare),
        "<storage xmlns='storage:bookmarks'><conference jid='a@muc' autojoin='true'/></storage>\
         <storage xmlns='storage:bookmarks'><url url='https://x/'/></storage>\
         <prefs xmlns='gajim:prefs'>1</prefs>",
    )
    .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let res = get(&mut c, Some(&bare), "<storage xmlns='storage:bookmarks'/>").await;
    let q = result_query(&res);
    let storages: Vec<_> = q
        .children()
        .filter(|e| e.is("storage", "storage:bookmarks"))
        .collect();
    assert_eq!(storages.len(), 2, "both elements of the namespace: {res}");
    assert!(
        storages[0]
            .get_child("conference", "storage:bookmarks")
            .is_some()
    );
    assert!(storages[1].get_child("url", "storage:bookmarks").is_some());
    assert!(q.get_child("prefs", "gajim:prefs").is_none(), "{res}");
    let res = get(&mut c, None, "<prefs xmlns='gajim:prefs'/>").await;
    assert_eq!(
        result_query(&res)
            .get_child("prefs", "gajim:prefs")
            .map(Element::text)
            .as_deref(),
        Some("1")
    );

    // A set replaces what the namespace held, whole.
    let res = set(
        &mut c,
        None,
        "<storage xmlns='storage:bookmarks'><conference jid='b@muc'/></storage>",
    )
    .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let res = get(&mut c, None, "<storage xmlns='storage:bookmarks'/>").await;
    let q = result_query(&res);
    assert_eq!(q.children().count(), 1, "{res}");
    assert_eq!(
        q.get_child("storage", "storage:bookmarks")
            .and_then(|s| s.get_child("conference", "storage:bookmarks"))
            .and_then(|c| c.attr("jid")),
        Some("b@muc"),
        "{res}"
    );

    // Persisted: a restarted server has it all.
    drop(c);
    let server = server.restart().await;
    let mut c = server.login("hamlet", PW, "elsinore").await;
    let res = get(&mut c, None, "<exodus xmlns='exodus:prefs'/>").await;
    assert_prefs(result_query(&res), "Hamlet");
    let res = get(&mut c, None, "<storage xmlns='storage:bookmarks'/>").await;
    assert!(
        result_query(&res).to_string().contains("b@muc"),
        "after restart: {res}"
    );
}

#[tokio::test]
async fn refusals() {
    let server = Server::start().await;
    server.add_user("hamlet", PW);
    server.add_user("macbeth", PW);
    let mut hamlet = server.login("hamlet", PW, "denmark").await;
    let mut macbeth = server.login("macbeth", PW, "scotland").await;
    let res = set(&mut hamlet, None, PREFS).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    // XEP-0049 2.3: another user's data is "Forbidden" (example 3), get and set alike.
    let set_other = set(&mut macbeth, Some("hamlet@localhost"), PREFS).await;
    assert_eq!(
        stanza_error(&set_other).as_deref(),
        Some("forbidden"),
        "{set_other}"
    );
    let get_other = get(
        &mut macbeth,
        Some("hamlet@localhost"),
        "<exodus xmlns='exodus:prefs'/>",
    )
    .await;
    assert_eq!(
        stanza_error(&get_other).as_deref(),
        Some("forbidden"),
        "{get_other}"
    );
    assert!(!get_other.to_string().contains("Hamlet"), "{get_other}");
    // Nothing was overwritten.
    let res = get(&mut hamlet, None, "<exodus xmlns='exodus:prefs'/>").await;
    assert_prefs(result_query(&res), "Hamlet");
    // An account that does not exist, and the server's own address: nobody's storage.
    let res = get(&mut macbeth, Some("nobody@localhost"), "<x xmlns='a:b'/>").await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );
    let res = get(&mut macbeth, Some("localhost"), "<x xmlns='a:b'/>").await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );

    // "At least one child element with a proper namespace MUST be included; otherwise
    // the server MUST respond with a 'Not Acceptable' error" (example 4).
    for kind in ["get", "set"] {
        let res = hamlet.iq(kind, None, &query("")).await;
        assert_eq!(
            stanza_error(&res).as_deref(),
            Some("not-acceptable"),
            "{kind}: {res}"
        );
    }
    // Reserved namespaces (example 5): the stream content namespace, this protocol's
    // own (a child that declares nothing inherits it), and vcard-temp.
    for child in [
        "<x xmlns='jabber:client'/>",
        "<x xmlns='jabber:server'/>",
        "<x/>",
        "<vCard xmlns='vcard-temp'><FN>Hamlet</FN></vCard>",
    ] {
        for kind in ["get", "set"] {
            let res = hamlet.iq(kind, None, &query(child)).await;
            assert_eq!(
                stanza_error(&res).as_deref(),
                Some("not-acceptable"),
                "{kind} {child}: {res}"
            );
        }
    }
    // A reserved element among others refuses the whole set.
    let res = set(
        &mut hamlet,
        None,
        "<storage xmlns='storage:bookmarks'/><x xmlns='jabber:client'/>",
    )
    .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    let res = get(&mut hamlet, None, "<storage xmlns='storage:bookmarks'/>").await;
    assert_eq!(
        result_query(&res)
            .get_child("storage", "storage:bookmarks")
            .map(|s| s.children().count()),
        Some(0),
        "nothing stored: {res}"
    );
    // "A client MUST NOT query for more than one namespace in a single IQ get".
    let res = get(
        &mut hamlet,
        None,
        "<exodus xmlns='exodus:prefs'/><storage xmlns='storage:bookmarks'/>",
    )
    .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");

    // Results and errors addressed to the server are not answered.
    let id = new_id();
    hamlet
        .send(&format!(
            "<iq type='result' id='{id}'>{}</iq>",
            query(PREFS)
        ))
        .await;
    hamlet.sync().await;
    hamlet.assert_none("a reply to a result", is_reply(&id));
}

#[tokio::test]
async fn the_quota_is_per_account_and_replacements_count_once() {
    let server = Server::start_with(
        "[private]\nmax_bytes_per_account = 400\nmax_namespaces_per_account = 2\n",
    )
    .await;
    server.add_user("hamlet", PW);
    server.add_user("horatio", PW);
    let mut hamlet = server.login("hamlet", PW, "denmark").await;
    let mut horatio = server.login("horatio", PW, "wittenberg").await;

    let small = |ns: &str, text: &str| format!("<p xmlns='{ns}'>{text}</p>");
    for ns in ["urn:a", "urn:b"] {
        let res = set(&mut hamlet, None, &small(ns, "x")).await;
        assert_eq!(res.attr("type"), Some("result"), "{res}");
    }
    // A third namespace is one too many.
    let res = set(&mut hamlet, None, &small("urn:c", "x")).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("resource-constraint"),
        "{res}"
    );
    // Replacing one of the two is not a new namespace.
    let res = set(&mut hamlet, None, &small("urn:a", "y")).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    // Bytes: what the account holds plus the new fragment, less the one it replaces.
    let big = small("urn:a", &"z".repeat(400));
    let res = set(&mut hamlet, None, &big).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("resource-constraint"),
        "{res}"
    );
    let res = get(&mut hamlet, None, "<p xmlns='urn:a'/>").await;
    assert_eq!(
        result_query(&res)
            .get_child("p", "urn:a")
            .map(Element::text)
            .as_deref(),
        Some("y"),
        "a refused set changes nothing: {res}"
    );
    // Another account has a quota of its own; one set with more namespaces than the
    // quota is refused whole.
    let three = ["urn:a", "urn:b", "urn:c"].map(|n| small(n, "x")).concat();
    let res = set(&mut horatio, None, &three).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("resource-constraint"),
        "{res}"
    );
    let res = get(&mut horatio, None, "<p xmlns='urn:a'/>").await;
    assert_eq!(
        result_query(&res)
            .get_child("p", "urn:a")
            .map(Element::text)
            .as_deref(),
        Some(""),
        "nothing stored: {res}"
    );
    for ns in ["urn:a", "urn:b"] {
        let res = set(&mut horatio, None, &small(ns, "x")).await;
        assert_eq!(res.attr("type"), Some("result"), "{res}");
    }
}

#[tokio::test]
async fn goes_with_the_account() {
    let server = Server::start().await;
    server.add_user("hamlet", PW);
    let mut c = server.login("hamlet", PW, "denmark").await;
    let res = set(&mut c, None, PREFS).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    // XEP-0077 3.2 in-band removal.
    let id = new_id();
    c.send(&format!(
        "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'><remove/></query></iq>"
    ))
    .await;
    let res = c.expect("removal result", is_reply(&id)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    c.expect_closed().await;

    // A new account of the same name starts with nothing stored.
    server.add_user("hamlet", PW);
    let mut c = server.login("hamlet", PW, "denmark").await;
    let res = get(&mut c, None, "<exodus xmlns='exodus:prefs'/>").await;
    let q = result_query(&res);
    assert_eq!(
        q.get_child("exodus", "exodus:prefs")
            .map(|e| e.children().count()),
        Some(0),
        "{res}"
    );
}
