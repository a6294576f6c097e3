//! XEP-0033 multicast: the server as its domain's multicast service (a local client's
//! request, another server's request), and pubsub notifications for many subscribers on
//! another hydrant crossing s2s as multicast once that server said it is a multicast
//! service.

mod common;

use common::federation::{free_port, message_from, online, s2s};
use common::pubsub::{assert_result, entry, publish};
use common::{Client, Server, stanza_error};
use hydrant_proto::{Element, ns};

const ADDRESS: &str = "http://jabber.org/protocol/address";

/// The `(type, jid, delivered)` of every address in a stanza's block, sorted.
fn addresses(el: &Element) -> Vec<(String, String, bool)> {
    let mut v: Vec<_> = el
        .get_child("addresses", ADDRESS)
        .map(|b| {
            b.children()
                .map(|a| {
                    (
                        a.attr("type").unwrap_or_default().to_owned(),
                        a.attr("jid").unwrap_or_default().to_owned(),
                        a.attr("delivered") == Some("true"),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn addr(kind: &str, jid: &str) -> (String, String, bool) {
    (kind.to_owned(), jid.to_owned(), true)
}

/// The error stanza answering the stanza with `id`.
fn error_for(id: &'static str) -> impl Fn(&Element) -> bool {
    move |e| e.attr("id") == Some(id) && e.attr("type") == Some("error")
}

fn has_body(text: &'static str) -> impl Fn(&Element) -> bool {
    move |e| {
        e.name() == "message"
            && e.get_child("body", ns::CLIENT)
                .is_some_and(|b| b.text() == text)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_a_multicast_service_for_its_users() {
    let s = Server::start().await;
    let mut alice = online(&s, "alice").await;
    let mut bob = online(&s, "bob").await;
    let mut carol = online(&s, "carol").await;
    let mut dave = online(&s, "dave").await;

    // XEP-0033 2.1: advertised on the server's disco#info.
    let info = alice
        .iq(
            "get",
            Some("localhost"),
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        )
        .await;
    assert!(
        info.to_string()
            .contains("var='http://jabber.org/protocol/address'"),
        "{info}"
    );

    // A chat message (copies as elements: offline storage applies) and a headline
    // (copies from one shared serialisation) must look the same to their recipients.
    for (kind, body) in [("chat", "to three"), ("headline", "headline to three")] {
        alice
            .send(&format!(
                "<message to='localhost' type='{kind}' id='mc-{kind}'>\
                 <body>{body}</body>\
                 <addresses xmlns='{ADDRESS}'>\
                 <address type='to' jid='bob@localhost'/>\
                 <address type='cc' jid='carol@localhost/phone'/>\
                 <address type='bcc' jid='dave@localhost'/>\
                 <address type='replyto' jid='alice@localhost'/>\
                 </addresses></message>"
            ))
            .await;
        let shown = vec![
            addr("cc", "carol@localhost/phone"),
            addr("replyto", "alice@localhost"),
            addr("to", "bob@localhost"),
        ];
        for (c, to) in [
            (&mut bob, "bob@localhost"),
            (&mut carol, "carol@localhost/phone"),
        ] {
            let m = c.expect("the multicast copy", has_body(body)).await;
            assert_eq!(m.attr("from"), Some("alice@localhost/phone"), "{m}");
            assert_eq!(m.attr("to"), Some(to), "{m}");
            assert_eq!(m.attr("type"), Some(kind), "{m}");
            assert_eq!(m.attr("id"), Some(format!("mc-{kind}").as_str()), "{m}");
            // XEP-0033 5 steps 6-7: everything delivered, the bcc address hidden.
            assert_eq!(addresses(&m), shown, "{m}");
        }
        let m = dave.expect("the bcc copy", has_body(body)).await;
        assert_eq!(m.attr("to"), Some("dave@localhost"), "{m}");
        // Step 8: a bcc recipient sees its own address, no other bcc.
        let mut with_own = shown.clone();
        with_own.push(addr("bcc", "dave@localhost"));
        with_own.sort();
        assert_eq!(addresses(&m), with_own, "{m}");
    }
    // Exactly one copy each, and none for the sender.
    for c in [&mut alice, &mut bob, &mut carol, &mut dave] {
        c.sync().await;
    }
    for (c, n) in [(&mut bob, 0), (&mut carol, 0), (&mut dave, 0)] {
        let extra = c.take_buffered(|e| e.name() == "message");
        assert_eq!(extra.len(), n, "{extra:?}");
    }
    alice.assert_none("a copy for the sender", |e| e.name() == "message");

    // An address already delivered is not delivered again (the loop guard, 4.5).
    alice
        .send(&format!(
            "<message to='localhost' id='mc-done'><body>once</body>\
             <addresses xmlns='{ADDRESS}'>\
             <address type='to' jid='bob@localhost' delivered='true'/>\
             <address type='to' jid='carol@localhost'/>\
             </addresses></message>"
        ))
        .await;
    carol.expect("carol's copy", has_body("once")).await;
    bob.sync().await;
    bob.assert_none("a second delivery", has_body("once"));
}

/// Sends `xml` (a multicast request) and returns the error condition alice gets back.
async fn refused(alice: &mut Client, id: &str, xml: &str) -> String {
    alice.send(xml).await;
    let e = alice
        .expect("the error", |e| {
            e.attr("id") == Some(id) && e.attr("type") == Some("error")
        })
        .await;
    stanza_error(&e).unwrap_or_else(|| panic!("not an error: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multicast_request_it_cannot_serve_whole_is_refused_whole() {
    let s = Server::start_with("[multicast]\nmax_addresses = 3\n").await;
    let mut alice = online(&s, "alice").await;
    let mut bob = online(&s, "bob").await;
    let to_bob = "<address type='to' jid='bob@localhost'/>";

    // 5 step 5: an address that is not an account here (the pubsub service) refuses
    // the whole stanza, bob's copy included.
    let cond = refused(
        &mut alice,
        "f1",
        &format!(
            "<message to='localhost' id='f1'><body>x</body><addresses xmlns='{ADDRESS}'>\
             {to_bob}<address type='to' jid='pubsub.localhost'/></addresses></message>"
        ),
    )
    .await;
    assert_eq!(cond, "forbidden");
    // More addresses than `[multicast] max_addresses`.
    let cond = refused(
        &mut alice,
        "f2",
        &format!(
            "<message to='localhost' id='f2'><body>x</body><addresses xmlns='{ADDRESS}'>\
             {to_bob}{to_bob}{to_bob}{to_bob}</addresses></message>"
        ),
    )
    .await;
    assert_eq!(cond, "policy-violation");
    // 4.2: a URI address is not delivered here.
    let cond = refused(
        &mut alice,
        "f3",
        &format!(
            "<message to='localhost' id='f3'><body>x</body><addresses xmlns='{ADDRESS}'>\
             {to_bob}<address type='to' uri='sip:bob@example.org'/></addresses></message>"
        ),
    )
    .await;
    assert_eq!(cond, "jid-malformed");
    // Presence multicast is not offered to local users (XEP-0033 1.2 would make the
    // server track the directed presence).
    let cond = refused(
        &mut alice,
        "f4",
        &format!(
            "<presence to='localhost' id='f4'><addresses xmlns='{ADDRESS}'>{to_bob}\
             </addresses></presence>"
        ),
    )
    .await;
    assert_eq!(cond, "feature-not-implemented");
    bob.sync().await;
    bob.assert_none("a copy of a refused request", |e| {
        e.name() == "message" || (e.name() == "presence" && e.attr("id") == Some("f4"))
    });

    // A message to the server without a block is what it always was: refused.
    let cond = refused(
        &mut alice,
        "f5",
        "<message to='localhost' id='f5' type='chat'><body>x</body></message>",
    )
    .await;
    assert_eq!(cond, "service-unavailable");
}

/// The item id of a pubsub notification, if it is one.
fn item_id(e: &Element) -> Option<String> {
    let item = e
        .get_child("event", ns::PUBSUB_EVENT)?
        .get_child("items", ns::PUBSUB_EVENT)?
        .get_child("item", ns::PUBSUB_EVENT)?;
    item.attr("id").map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_for_many_remote_subscribers_cross_as_multicast() {
    let (pa, pb) = (free_port(), free_port());
    let sa = Server::start_domain("a.test", &s2s(pa, "b.test", pb)).await;
    let sb = Server::start_domain("b.test", &s2s(pb, "a.test", pa)).await;
    let mut alice = online(&sa, "alice").await;
    let mut subs = Vec::new();
    for user in ["bob", "carol", "dave"] {
        subs.push(online(&sb, user).await);
    }
    let res = alice
        .iq(
            "set",
            Some("pubsub.a.test"),
            &format!(
                "<pubsub xmlns='{}'><create node='feed'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "create feed");
    // bob by full JID, the others by bare JID.
    for (c, jid) in subs
        .iter_mut()
        .zip(["bob@b.test/phone", "carol@b.test", "dave@b.test"])
    {
        let res = c
            .iq(
                "set",
                Some("pubsub.a.test"),
                &format!(
                    "<pubsub xmlns='{}'><subscribe node='feed' jid='{jid}'/></pubsub>",
                    ns::PUBSUB
                ),
            )
            .await;
        assert_result(&res, "subscribe across servers");
    }

    // The first notifications go one per subscriber while a.test asks b.test whether it
    // is a multicast service; once it knows, they come as copies of one multicast
    // stanza, each with the subscriber's own bcc address. Publish until one does (an
    // event, not a timer: every publish is awaited at every subscriber).
    let mut count = 0;
    let mut switched = false;
    while !switched {
        count += 1;
        assert!(count <= 50, "no multicast copy after {count} publishes");
        publish(
            &mut alice,
            "pubsub.a.test",
            "feed",
            &format!("i{count}"),
            &entry("x"),
        )
        .await;
        for c in &mut subs {
            let id = format!("i{count}");
            let m = c
                .expect("the notification", |e| {
                    message_from("pubsub.a.test")(e) && item_id(e).as_deref() == Some(&id)
                })
                .await;
            let to = m.attr("to").unwrap_or_default().to_owned();
            match addresses(&m).as_slice() {
                [] => {}
                [(kind, jid, true)] if kind == "bcc" && *jid == to => switched = true,
                other => panic!("unexpected addresses {other:?}: {m}"),
            }
        }
    }
    // From then on every item reaches everyone, once, in order.
    for k in count + 1..=count + 5 {
        publish(
            &mut alice,
            "pubsub.a.test",
            "feed",
            &format!("i{k}"),
            &entry("y"),
        )
        .await;
    }
    for (c, to) in subs
        .iter_mut()
        .zip(["bob@b.test/phone", "carol@b.test", "dave@b.test"])
    {
        let last = format!("i{}", count + 5);
        c.expect("the last notification", |e| {
            item_id(e).as_deref() == Some(&last)
        })
        .await;
        c.sync().await;
        let rest = c.take_buffered(|e| item_id(e).is_some());
        let ids: Vec<_> = rest.iter().filter_map(item_id).collect();
        let want: Vec<_> = (count + 1..count + 5).map(|k| format!("i{k}")).collect();
        assert_eq!(ids, want, "{to}");
        for m in &rest {
            assert_eq!(m.attr("to"), Some(to), "{m}");
            assert_eq!(addresses(m), vec![addr("bcc", to)], "{m}");
        }
    }

    // Another server may ask for local delivery only: an address elsewhere refuses the
    // whole request (XEP-0033 2.2), and nobody on b.test gets a copy.
    alice
        .send(&format!(
            "<message to='b.test' type='headline' id='relay'><body>relay</body>\
             <addresses xmlns='{ADDRESS}'>\
             <address type='bcc' jid='bob@b.test'/>\
             <address type='bcc' jid='mallory@c.test'/>\
             </addresses></message>"
        ))
        .await;
    let e = alice.expect("the refusal", error_for("relay")).await;
    assert_eq!(stanza_error(&e).as_deref(), Some("forbidden"), "{e}");
    assert_eq!(e.attr("from"), Some("b.test"), "{e}");
    // And a request b.test can serve is served: a remote user's headline to two of its
    // accounts.
    alice
        .send(&format!(
            "<message to='b.test' type='headline' id='ok'><body>to two</body>\
             <addresses xmlns='{ADDRESS}'>\
             <address type='bcc' jid='carol@b.test'/>\
             <address type='bcc' jid='dave@b.test'/>\
             </addresses></message>"
        ))
        .await;
    for (i, who) in [(1, "carol@b.test"), (2, "dave@b.test")] {
        let m = subs[i].expect("the copy", has_body("to two")).await;
        assert_eq!(m.attr("from"), Some("alice@a.test/phone"), "{m}");
        assert_eq!(addresses(&m), vec![addr("bcc", who)], "{m}");
    }
    subs[0].sync().await;
    subs[0].assert_none("a copy of something not for bob", |e| {
        has_body("relay")(e) || has_body("to two")(e)
    });
}
