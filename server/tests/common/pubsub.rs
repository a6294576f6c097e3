//! Pubsub helpers shared by the pubsub wire tests.

use hydrant_proto::{Element, ns};

use super::{Client, Server};

/// The password of every account the pubsub tests create.
pub const PW: &str = "pubsub-test-password";

pub fn users(server: &Server, names: &[&str]) {
    for n in names {
        server.add_user(n, PW);
    }
}

#[track_caller]
pub fn assert_result(res: &Element, what: &str) {
    assert_eq!(res.attr("type"), Some("result"), "{what}: {res}");
}

/// Publishes one item (`payload` is its XML) to `node` of service `to`.
pub async fn publish(c: &mut Client, to: &str, node: &str, id: &str, payload: &str) {
    let res = c
        .iq(
            "set",
            Some(to),
            &format!(
                "<pubsub xmlns='{}'><publish node='{node}'><item id='{id}'>{payload}</item>\
                 </publish></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, &format!("publish {id} to {node}"));
    // The result is sent before the notifications are queued; the session handles its
    // stanzas in order and queues its own publish's notifications before it reads the
    // next one, so once a ping comes back the fan-out has run, and a "nothing was
    // delivered" check that follows cannot pass merely because it came too early.
    c.sync().await;
}

/// Subscribes `jid` to `node` of service `to` (`options`: the content of
/// `<options/>`), asserts the result says `subscribed` and returns its `<subscription/>`.
pub async fn subscribe(
    c: &mut Client,
    to: &str,
    node: &str,
    jid: &str,
    options: Option<&str>,
) -> Element {
    let options = options
        .map(|o| format!("<options>{o}</options>"))
        .unwrap_or_default();
    let res = c
        .iq(
            "set",
            Some(to),
            &format!(
                "<pubsub xmlns='{}'><subscribe node='{node}' jid='{jid}'/>{options}</pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, &format!("subscribe {jid} to {node}"));
    let sub = res
        .get_child("pubsub", ns::PUBSUB)
        .and_then(|p| p.get_child("subscription", ns::PUBSUB))
        .unwrap_or_else(|| panic!("no <subscription/>: {res}"))
        .clone();
    assert_eq!(sub.attr("subscription"), Some("subscribed"), "{res}");
    sub
}

pub fn entry(text: &str) -> String {
    format!("<entry xmlns='urn:example:news'>{text}</entry>")
}
