//! XEP-0077 registration abuse limits: a budget per client network, a cap per stream.

mod common;

use std::time::Duration;

use common::{Client, Harness, assert_stanza_error, config};
use hydrant_proto::{Element, ns};

fn harness(per_hour: u32, per_stream: u32) -> Harness {
    let mut cfg = config();
    cfg.allow_registration = true;
    cfg.registrations_per_ip_per_hour = per_hour;
    cfg.max_registration_attempts = per_stream;
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    h
}

async fn register(c: &mut Client, user: &str) -> Element {
    c.send(&format!(
        "<iq type='set' id='r-{user}'><query xmlns='{}'>\
         <username>{user}</username><password>pw-{user}</password></query></iq>",
        ns::REGISTER
    ))
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("id"), Some(format!("r-{user}").as_str()));
    reply
}

/// One registration on a fresh stream from `from`.
async fn register_from(h: &Harness, from: &str, user: &str) -> Element {
    let mut c = h.connect_from(from, true);
    c.open().await;
    register(&mut c, user).await
}

#[tokio::test(start_paused = true)]
async fn registrations_are_a_budget_per_network_refilled_over_the_hour() {
    let h = harness(2, 5);
    // Two from one address, each on its own connection.
    for (port, user) in [(1, "u1"), (2, "u2")] {
        let reply = register_from(&h, &format!("192.0.2.7:{port}"), user).await;
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    }
    // The third in the hour is refused before the account is created.
    let reply = register_from(&h, "192.0.2.7:3", "u3").await;
    assert_stanza_error(&reply, "wait", "resource-constraint");
    assert!(!h.backend.has_user("u3"));
    // Another network has its own budget; an IPv6 /64 is one network.
    for (port, user) in [(1, "v1"), (2, "v2")] {
        let reply = register_from(&h, &format!("[2001:db8:0:1::{port}]:5"), user).await;
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    }
    let reply = register_from(&h, "[2001:db8:0:1::3]:5", "v3").await;
    assert_stanza_error(&reply, "wait", "resource-constraint");
    // Half an hour later the first network may register one more.
    tokio::time::advance(Duration::from_mins(30)).await;
    let reply = register_from(&h, "192.0.2.7:4", "u3").await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert!(h.backend.has_user("u3"));
}

#[tokio::test(start_paused = true)]
async fn a_taken_name_does_not_use_up_the_budget() {
    let h = harness(1, 5);
    let mut c = h.connect_from("198.51.100.1:1", true);
    c.open().await;
    for _ in 0..3 {
        assert_stanza_error(&register(&mut c, "alice").await, "cancel", "conflict");
    }
    let reply = register(&mut c, "bob").await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    // The one registration of the hour was bob's.
    let reply = register(&mut c, "carol").await;
    assert_stanza_error(&reply, "wait", "resource-constraint");
}

#[tokio::test(start_paused = true)]
async fn too_many_registration_attempts_on_one_stream_end_it() {
    let h = harness(0, 2);
    let mut c = h.connect(true);
    c.open().await;
    for _ in 0..2 {
        assert_stanza_error(&register(&mut c, "alice").await, "cancel", "conflict");
    }
    // XEP-0077 3.1.1: "too many times before authenticating" is <not-acceptable/>; the
    // stream is then closed.
    let reply = register(&mut c, "carol").await;
    assert_stanza_error(&reply, "modify", "not-acceptable");
    c.expect_stream_error("policy-violation").await;
    assert!(!h.backend.has_user("carol"));
}

#[tokio::test(start_paused = true)]
async fn the_registration_form_is_not_an_attempt() {
    let h = harness(0, 1);
    let mut c = h.connect(true);
    c.open().await;
    for _ in 0..3 {
        c.send("<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>")
            .await;
        assert_eq!(c.expect_element().await.attr("type"), Some("result"));
    }
    let reply = register(&mut c, "bob").await;
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    // The one attempt of this stream was the set, not the gets.
    assert_stanza_error(&register(&mut c, "carol").await, "modify", "not-acceptable");
    c.expect_stream_error("policy-violation").await;
}
