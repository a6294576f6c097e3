//! XEP-0115 entity capabilities as a test client announces and answers them.

use std::fmt::Write as _;

use base64::Engine as _;
use hydrant_proto::{Element, ns};
use sha1::{Digest as _, Sha1};

use super::Client;

pub const CAPS_NODE: &str = "https://hydrant.example/wire-test-client";
const IDENTITY: (&str, &str, &str) = ("client", "pc", "hydrant wire test");

/// XEP-0115 section 5.1: the verification string, SHA-1, base64.
pub fn caps_ver(features: &[String]) -> String {
    let (category, kind, name) = IDENTITY;
    let mut s = format!("{category}/{kind}//{name}<");
    let mut sorted = features.to_vec();
    sorted.sort();
    for f in sorted {
        s.push_str(&f);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

/// A disco#info query for `CAPS_NODE#ver` from `from`.
pub fn caps_query(from: &str, ver: &str) -> impl Fn(&Element) -> bool + use<> {
    let node = format!("{CAPS_NODE}#{ver}");
    let from = from.to_owned();
    move |e: &Element| {
        e.name() == "iq"
            && e.attr("type") == Some("get")
            && e.attr("from") == Some(from.as_str())
            && e.get_child("query", ns::DISCO_INFO)
                .is_some_and(|q| q.attr("node") == Some(node.as_str()))
    }
}

/// Sends available presence with caps `ver`.
pub async fn announce_caps(c: &mut Client, ver: &str) {
    c.send_presence(&format!(
        "<c xmlns='{}' hash='sha-1' node='{CAPS_NODE}' ver='{ver}'/>",
        ns::CAPS
    ))
    .await;
}

/// Waits for `from`'s caps query and answers it with `features`.
pub async fn answer_caps_query(c: &mut Client, from: &str, ver: &str, features: &[String]) {
    let q = c.expect("a caps query", caps_query(from, ver)).await;
    let id = q.attr("id").expect("query id").to_owned();
    let (category, kind, name) = IDENTITY;
    let mut body = format!("<identity category='{category}' type='{kind}' name='{name}'/>");
    for f in features {
        let _ = write!(body, "<feature var='{f}'/>");
    }
    c.send(&format!(
        "<iq type='result' id='{id}' to='{from}'><query xmlns='{}' node='{CAPS_NODE}#{ver}'>\
         {body}</query></iq>",
        ns::DISCO_INFO
    ))
    .await;
}
