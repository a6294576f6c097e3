//! The XEP-0313 request parser on pubsub nodes (`hydrant_pubsub::xep0313::parse`): the
//! first stanza of the input and each of its children (a `<query/>` inside an `<iq/>`)
//! parsed as a get and as a set. Never a panic, and what it accepts holds what the
//! archive relies on: a named node, no empty item id, an RSM `after` that names an item.
#![no_main]

use hydrant_fuzz::stanza;
use hydrant_proto::{Element, IqType, ns};
use hydrant_pubsub::xep0313::{self, MamRequest};
use libfuzzer_sys::fuzz_target;

fn check(payload: &Element) {
    for kind in [IqType::Get, IqType::Set] {
        match xep0313::parse(kind, payload) {
            Ok(MamRequest::Query { node, query, .. }) => {
                assert!(!node.as_str().is_empty());
                assert!(query.after.as_ref().is_none_or(|a| !a.as_str().is_empty()));
                for id in query.ids.iter().flatten() {
                    assert!(!id.as_str().is_empty(), "an empty id in ids");
                }
            }
            Ok(MamRequest::Metadata { node }) => assert!(!node.as_str().is_empty()),
            Ok(MamRequest::Form) => {}
            // Every refusal is a stanza error a client can read.
            Err(e) => {
                let _ = e.to_element(ns::CLIENT);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(el) = stanza(data) else {
        return;
    };
    check(&el);
    for child in el.children() {
        check(child);
    }
    // The DateTime parser alone, on the raw bytes: never a panic.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = xep0313::parse_datetime(text);
    }
});
