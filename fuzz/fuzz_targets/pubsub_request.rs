//! The XEP-0060 request parser: the first stanza of the input (normally a `<pubsub/>` or
//! `<pubsub xmlns='..#owner'/>` payload; an `<iq/>` is unwrapped) parsed as a get and
//! as a set, and as an owner's authorization `<message/>` form. Never a panic.
#![no_main]

use hydrant_fuzz::stanza;
use hydrant_proto::{Element, IqType};
use hydrant_pubsub::xep0060;
use libfuzzer_sys::fuzz_target;

fn check(payload: &Element) {
    for kind in [IqType::Get, IqType::Set] {
        if let Err(e) = xep0060::parse(kind, payload) {
            let _ = xep0060::error::to_stanza_error(&e);
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
        if let Err(e) = xep0060::parse_authorization(child) {
            let _ = xep0060::error::to_stanza_error(&e);
        }
    }
});
