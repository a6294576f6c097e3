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
}

pub fn entry(text: &str) -> String {
    format!("<entry xmlns='urn:example:news'>{text}</entry>")
}
