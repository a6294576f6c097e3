//! Catch-up without a flood, on the wire: XEP-0313 (MAM) on the nodes of
//! `pubsub.localhost` and of PEP services (XEP-0442), with RSM paging, `after-id`, time
//! ranges, errors, disco, and a subscriber that misses items while offline and gets
//! exactly those back.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::*;
use hydrant_proto::{Element, ns};

const PS: &str = "http://jabber.org/protocol/pubsub";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const MAM: &str = "urn:xmpp:mam:2";
const SVC: &str = "pubsub.localhost";

fn xform(form_type: &str, fields: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>{form_type}</value></field>"
    );
    for (var, val) in fields {
        let _ = write!(s, "<field var='{var}'><value>{val}</value></field>");
    }
    s + "</x>"
}

async fn create(c: &mut Client, to: &str, node: &str, config: &[(&str, &str)]) {
    let res = c
        .iq(
            "set",
            Some(to),
            &format!(
                "<pubsub xmlns='{PS}'><create node='{node}'/><configure>{}</configure></pubsub>",
                xform("http://jabber.org/protocol/pubsub#node_config", config)
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
}

async fn publish(c: &mut Client, to: &str, node: &str, id: &str, body: &str) {
    let res = c
        .iq(
            "set",
            Some(to),
            &format!(
                "<pubsub xmlns='{PS}'><publish node='{node}'><item id='{id}'>\
                 <entry xmlns='urn:test'>{body}</entry></item></publish></pubsub>"
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
}

fn item_id(k: usize) -> String {
    format!("i{k:02}")
}

fn ids(a: usize, b: usize) -> Vec<String> {
    (a..=b).map(item_id).collect()
}

/// One archived item as received.
#[derive(Debug)]
struct Hit {
    uid: String,
    item: String,
    stamp: String,
    payload: String,
}

/// The answer to one MAM query.
#[derive(Debug)]
struct Answer {
    hits: Vec<Hit>,
    reply: Element,
}

impl Answer {
    fn uids(&self) -> Vec<String> {
        self.hits.iter().map(|h| h.uid.clone()).collect()
    }

    fn fin(&self) -> &Element {
        self.reply
            .get_child("fin", MAM)
            .unwrap_or_else(|| panic!("no <fin/>: {}", self.reply))
    }

    fn complete(&self) -> bool {
        self.fin().attr("complete") == Some("true")
    }

    fn rsm(&self, name: &str) -> Option<String> {
        self.fin()
            .get_child("set", ns::RSM)?
            .get_child(name, ns::RSM)
            .map(Element::text)
    }
}

/// Sends a MAM query (iq set) to `to` for `node` and collects the result messages that
/// arrived before the iq result; checks the shape of each (XEP-0313 4.2, XEP-0442).
async fn mam_raw(c: &mut Client, to: &str, node: &str, inner: &str) -> Element {
    c.iq(
        "set",
        Some(to),
        &format!("<query xmlns='{MAM}' queryid='qq' node='{node}'>{inner}</query>"),
    )
    .await
}

async fn mam(c: &mut Client, to: &str, node: &str, inner: &str) -> Answer {
    let reply = mam_raw(c, to, node, inner).await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply}");
    let msgs = c.take_buffered(|e| e.name() == "message" && e.get_child("result", MAM).is_some());
    let me = c.jid.clone();
    let hits = msgs
        .iter()
        .map(|m| {
            assert_eq!(
                m.attr("from"),
                Some(to),
                "results come from the archive: {m}"
            );
            assert_eq!(m.attr("to"), Some(me.as_str()), "{m}");
            let r = m.get_child("result", MAM).unwrap();
            assert_eq!(r.attr("queryid"), Some("qq"), "{m}");
            let fwd = r
                .get_child("forwarded", ns::FORWARD)
                .unwrap_or_else(|| panic!("no <forwarded/>: {m}"));
            let stamp = fwd
                .get_child("delay", ns::DELAY)
                .and_then(|d| d.attr("stamp"))
                .unwrap_or_else(|| panic!("no delay stamp: {m}"))
                .to_owned();
            let inner = fwd
                .get_child("message", ns::CLIENT)
                .unwrap_or_else(|| panic!("no forwarded message: {m}"));
            assert_eq!(inner.attr("from"), Some(to), "{m}");
            let items = inner
                .get_child("event", EVENT)
                .and_then(|e| e.get_child("items", EVENT))
                .unwrap_or_else(|| panic!("no event items: {m}"));
            assert_eq!(items.attr("node"), Some(node), "{m}");
            let list: Vec<&Element> = items.children().filter(|i| i.is("item", EVENT)).collect();
            assert_eq!(list.len(), 1, "one item per message: {m}");
            Hit {
                uid: r.attr("id").unwrap_or_default().to_owned(),
                item: list[0].attr("id").unwrap_or_default().to_owned(),
                stamp,
                payload: list[0].children().map(Element::text).collect(),
            }
        })
        .collect::<Vec<_>>();
    for h in &hits {
        assert_eq!(h.uid, h.item, "archive UIDs are ItemIDs");
    }
    Answer { hits, reply }
}

fn rsm(max: usize, after: Option<&str>) -> String {
    let after = after
        .map(|a| format!("<after>{a}</after>"))
        .unwrap_or_default();
    format!("<set xmlns='http://jabber.org/protocol/rsm'><max>{max}</max>{after}</set>")
}

fn filter(fields: &[(&str, &str)]) -> String {
    xform(MAM, fields)
}

/// A server with alice (publisher) and bob (reader), both logged in with presence.
async fn setup() -> (Server, Client, Client) {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    server.add_user("bob", "pw-bob");
    let alice = server.online("alice", "pw-alice", "desk").await;
    let bob = server.online("bob", "pw-bob", "phone").await;
    (server, alice, bob)
}

#[tokio::test]
async fn archive_queries_on_a_component_node() {
    let (_server, mut alice, mut bob) = setup().await;
    create(&mut alice, SVC, "feed", &[("pubsub#max_items", "max")]).await;
    for k in 1..=30 {
        if k == 16 {
            // A clear gap in time before item 16, for the time-range query.
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        publish(&mut alice, SVC, "feed", &item_id(k), &format!("body {k}")).await;
    }

    // Everything, oldest first, complete, counted.
    let all = mam(&mut bob, SVC, "feed", "").await;
    assert_eq!(all.uids(), ids(1, 30));
    assert!(all.complete(), "{}", all.reply);
    assert_eq!(all.rsm("count").as_deref(), Some("30"));
    assert_eq!(all.rsm("first").as_deref(), Some("i01"));
    assert_eq!(all.rsm("last").as_deref(), Some("i30"));
    assert_eq!(all.hits[4].payload, "body 5");
    let stamps: Vec<&str> = all.hits.iter().map(|h| h.stamp.as_str()).collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    assert!(
        stamps[0].ends_with('Z') && stamps[0].contains('T'),
        "{stamps:?}"
    );

    // Pages of 10 walked with RSM after: no gaps, no duplicates.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = Vec::new();
    loop {
        let page = mam(&mut bob, SVC, "feed", &rsm(10, after.as_deref())).await;
        assert_eq!(page.hits.len(), 10, "{}", page.reply);
        seen.extend(page.uids());
        after = page.rsm("last");
        pages.push(page.complete());
        if page.complete() {
            break;
        }
        assert!(pages.len() < 5, "paging does not end");
    }
    assert_eq!(pages, [false, false, true]);
    assert_eq!(seen, ids(1, 30));

    // after-id: what followed item 12.
    let rest = mam(&mut bob, SVC, "feed", &filter(&[("after-id", "i12")])).await;
    assert_eq!(rest.uids(), ids(13, 30));
    assert!(rest.complete());

    // A time range: start at item 16's stamp (inclusive), and an end.
    let stamp16 = all.hits[15].stamp.clone();
    let late = mam(&mut bob, SVC, "feed", &filter(&[("start", &stamp16)])).await;
    assert_eq!(late.uids(), ids(16, 30));
    let early = mam(
        &mut bob,
        SVC,
        "feed",
        &filter(&[("end", &all.hits[14].stamp)]),
    )
    .await;
    assert_eq!(early.uids(), ids(1, 15));

    // ids, the last page and a flipped page (urn:xmpp:mam:2#extended).
    let some = mam(
        &mut bob,
        SVC,
        "feed",
        &format!(
            "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{MAM}</value>\
             </field><field var='ids'><value>i20</value><value>i03</value></field></x>"
        ),
    )
    .await;
    assert_eq!(some.uids(), ["i03", "i20"]);
    let last = mam(
        &mut bob,
        SVC,
        "feed",
        "<set xmlns='http://jabber.org/protocol/rsm'><max>5</max><before/></set>",
    )
    .await;
    assert_eq!(last.uids(), ids(26, 30));
    let flipped = mam(
        &mut bob,
        SVC,
        "feed",
        &(rsm(3, Some("i10")) + "<flip-page/>"),
    )
    .await;
    assert_eq!(flipped.uids(), ["i13", "i12", "i11"]);
    assert_eq!(flipped.rsm("first").as_deref(), Some("i11"));

    // Errors: unknown node, unknown after-id, unknown RSM UID, bad form, unknown field,
    // more distinct ids than a page holds (default 500).
    let too_many = (0..501).fold(String::new(), |mut s, k| {
        let _ = write!(s, "<value>x{k}</value>");
        s
    });
    let too_many = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{MAM}</value>\
         </field><field var='ids'>{too_many}</field></x>"
    );
    for (node, inner, want) in [
        ("feed", too_many, "policy-violation"),
        ("nope", String::new(), "item-not-found"),
        ("feed", filter(&[("after-id", "nope")]), "item-not-found"),
        ("feed", rsm(5, Some("nope")), "item-not-found"),
        ("feed", filter(&[("start", "yesterday")]), "bad-request"),
        (
            "feed",
            filter(&[("{urn:x}fulltext", "a")]),
            "feature-not-implemented",
        ),
    ] {
        let res = mam_raw(&mut bob, SVC, node, &inner).await;
        assert_eq!(stanza_error(&res).as_deref(), Some(want), "{inner}: {res}");
    }
    bob.sync().await;
    bob.assert_none("result messages of a failed query", |e| {
        e.get_child("result", MAM).is_some()
    });
}

#[tokio::test]
async fn discovery_form_metadata_and_access() {
    let (_server, mut alice, mut bob) = setup().await;
    create(&mut alice, SVC, "feed", &[]).await;
    create(
        &mut alice,
        SVC,
        "secret",
        &[("pubsub#access_model", "whitelist")],
    )
    .await;
    for k in 1..=3 {
        publish(&mut alice, SVC, "feed", &item_id(k), "x").await;
        publish(&mut alice, SVC, "secret", &item_id(k), "x").await;
    }

    let features = |res: &Element| -> Vec<String> {
        res.get_child("query", ns::DISCO_INFO)
            .map(|q| {
                q.children()
                    .filter_map(|f| f.attr("var").map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    for node in ["", " node='feed'"] {
        let res = bob
            .iq(
                "get",
                Some(SVC),
                &format!("<query xmlns='{}'{node}/>", ns::DISCO_INFO),
            )
            .await;
        let f = features(&res);
        for want in [MAM, "urn:xmpp:mam:2#extended"] {
            assert!(f.iter().any(|x| x == want), "{want} in {res}");
        }
        assert!(!f.iter().any(|x| x == "urn:xmpp:mam:1"), "{res}");
    }

    // The query form (XEP-0313 4.1.5).
    let res = bob
        .iq("get", Some(SVC), &format!("<query xmlns='{MAM}'/>"))
        .await;
    let vars: Vec<&str> = res
        .get_child("query", MAM)
        .and_then(|q| q.get_child("x", ns::DATA_FORMS))
        .map(|x| x.children().filter_map(|f| f.attr("var")).collect())
        .unwrap_or_default();
    assert_eq!(
        vars,
        [
            "FORM_TYPE",
            "with",
            "start",
            "end",
            "before-id",
            "after-id",
            "ids"
        ],
        "{res}"
    );

    // Metadata: the first and last item.
    let res = bob
        .iq(
            "get",
            Some(SVC),
            &format!("<metadata xmlns='{MAM}' node='feed'/>"),
        )
        .await;
    let m = res
        .get_child("metadata", MAM)
        .unwrap_or_else(|| panic!("{res}"));
    assert_eq!(
        m.get_child("start", MAM).and_then(|s| s.attr("id")),
        Some("i01")
    );
    assert_eq!(
        m.get_child("end", MAM).and_then(|s| s.attr("id")),
        Some("i03")
    );
    assert!(
        m.get_child("end", MAM)
            .and_then(|s| s.attr("timestamp"))
            .is_some()
    );

    // A whitelist node: forbidden to bob, readable by its owner.
    let res = mam_raw(&mut bob, SVC, "secret", "").await;
    assert_eq!(stanza_error(&res).as_deref(), Some("forbidden"), "{res}");
    let res = bob
        .iq(
            "get",
            Some(SVC),
            &format!("<metadata xmlns='{MAM}' node='secret'/>"),
        )
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("forbidden"), "{res}");
    let own = mam(&mut alice, SVC, "secret", "").await;
    assert_eq!(own.uids(), ids(1, 3));

    // A query without a node: the service has no archive of its own.
    let res = bob
        .iq("set", Some(SVC), &format!("<query xmlns='{MAM}'/>"))
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("bad-request"), "{res}");
}

#[tokio::test]
async fn pep_node_archive() {
    let (_server, mut alice, mut bob) = setup().await;
    let alice_bare = alice.bare();
    let res = alice
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{PS}'><create node='urn:test:log'/><configure>{}</configure></pubsub>",
                xform(
                    "http://jabber.org/protocol/pubsub#node_config",
                    &[("pubsub#max_items", "max")]
                )
            ),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    for k in 1..=5 {
        publish(&mut alice, &alice_bare, "urn:test:log", &item_id(k), "x").await;
    }
    let a = mam(&mut alice, &alice_bare, "urn:test:log", "").await;
    assert_eq!(a.uids(), ids(1, 5));
    assert!(a.complete());
    let a = mam(
        &mut alice,
        &alice_bare,
        "urn:test:log",
        &filter(&[("after-id", "i03")]),
    )
    .await;
    assert_eq!(a.uids(), ids(4, 5));

    // The node's disco#info says MAM; the account's own does not (no user archive).
    let res = alice
        .iq(
            "get",
            Some(&alice_bare),
            &format!("<query xmlns='{}' node='urn:test:log'/>", ns::DISCO_INFO),
        )
        .await;
    assert!(res.to_string().contains(MAM), "{res}");
    let res = alice
        .iq(
            "get",
            Some(&alice_bare),
            &format!("<query xmlns='{}'/>", ns::DISCO_INFO),
        )
        .await;
    assert!(!res.to_string().contains(MAM), "{res}");

    // Presence access model: bob is not a contact.
    let res = mam_raw(&mut bob, &alice_bare, "urn:test:log", "").await;
    assert_eq!(stanza_error(&res).as_deref(), Some("forbidden"), "{res}");
}

#[tokio::test]
async fn offline_subscriber_catches_up_with_exactly_what_it_missed() {
    let (server, mut alice, mut bob) = setup().await;
    create(&mut alice, SVC, "news", &[("pubsub#max_items", "max")]).await;
    let bob_bare = bob.bare();
    let res = bob
        .iq(
            "set",
            Some(SVC),
            &format!("<pubsub xmlns='{PS}'><subscribe node='news' jid='{bob_bare}'/></pubsub>"),
        )
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    // Items 1..10 arrive live.
    for k in 1..=10 {
        publish(&mut alice, SVC, "news", &item_id(k), "live").await;
    }
    let mut live = Vec::new();
    for _ in 1..=10 {
        let m = bob
            .expect("a live notification", |e| {
                e.name() == "message" && e.get_child("event", EVENT).is_some()
            })
            .await;
        let id = m
            .get_child("event", EVENT)
            .and_then(|e| e.get_child("items", EVENT))
            .and_then(|i| i.get_child("item", EVENT))
            .and_then(|i| i.attr("id"))
            .unwrap_or_else(|| panic!("{m}"))
            .to_owned();
        live.push(id);
    }
    assert_eq!(live, ids(1, 10));
    let last_seen = live.last().cloned().unwrap();

    // Bob goes away; 11..25 are published meanwhile.
    bob.close().await;
    for k in 11..=25 {
        publish(&mut alice, SVC, "news", &item_id(k), "missed").await;
    }

    // Back: exactly what was missed, in order, in one complete answer.
    let mut bob = server.online("bob", "pw-bob", "phone").await;
    let missed = mam(&mut bob, SVC, "news", &filter(&[("after-id", &last_seen)])).await;
    assert_eq!(missed.uids(), ids(11, 25));
    assert!(missed.complete());
    assert_eq!(missed.rsm("count").as_deref(), Some("15"));
    assert!(missed.hits.iter().all(|h| h.payload == "missed"));

    // The same through items retrieval (newest first): RSM <before> the last seen item
    // is the page just newer than it.
    let res = bob
        .iq(
            "get",
            Some(SVC),
            &format!(
                "<pubsub xmlns='{PS}'><items node='news'/><set xmlns='{}'><max>100</max>\
                 <before>{last_seen}</before></set></pubsub>",
                ns::RSM
            ),
        )
        .await;
    let mut got: Vec<String> = res
        .get_child("pubsub", PS)
        .and_then(|p| p.get_child("items", PS))
        .map(|i| {
            i.children()
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    got.reverse();
    assert_eq!(got, ids(11, 25), "{res}");

    // And live delivery goes on from there.
    publish(&mut alice, SVC, "news", &item_id(26), "live").await;
    bob.expect("item 26 live", |e| {
        e.get_child("event", EVENT)
            .and_then(|e| e.get_child("items", EVENT))
            .and_then(|i| i.get_child("item", EVENT))
            .is_some_and(|i| i.attr("id") == Some("i26"))
    })
    .await;
}

#[tokio::test]
async fn big_pages_are_cut_by_bytes_not_by_the_stream() {
    let (_server, mut alice, mut bob) = setup().await;
    create(&mut alice, SVC, "big", &[("pubsub#max_items", "max")]).await;
    let body = "y".repeat(20 * 1024);
    for k in 1..=40 {
        publish(&mut alice, SVC, "big", &item_id(k), &body).await;
    }
    // 40 x 20 KiB = 800 KiB would come close to the 1 MiB outbound queue: pages are
    // cut at 256 KiB, and the client pages on with RSM after.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = mam(&mut bob, SVC, "big", &rsm(100, after.as_deref())).await;
        pages += 1;
        assert!(!page.hits.is_empty(), "{}", page.reply);
        assert!(
            page.hits.len() < 14,
            "at most ~256 KiB per page: {}",
            page.hits.len()
        );
        seen.extend(page.uids());
        after = page.rsm("last");
        if page.complete() {
            break;
        }
        assert!(pages < 20, "paging does not end");
    }
    assert!(pages >= 4, "{pages}");
    assert_eq!(seen, ids(1, 40));
    bob.sync().await;
}
