//! Roster items (RFC 6121 2): the first stanza of the input, and each of its children,
//! read as a roster `<query/>` and as an `<item/>`. Never a panic; an accepted query
//! written out and read back is the same query.
#![no_main]

use hydrant_fuzz::{reread, stanza};
use hydrant_proto::{Element, RosterItem, RosterQuery};
use libfuzzer_sys::fuzz_target;

fn check(el: &Element) {
    let _ = RosterItem::from_element(el);
    if let Ok(q) = RosterQuery::from_element(el) {
        let again = RosterQuery::from_element(&reread(&q.to_element()))
            .unwrap_or_else(|e| panic!("a written roster query is refused: {e:?}"));
        assert_eq!(q, again, "roster parse, encode, reparse disagree");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(el) = stanza(data) else {
        return;
    };
    check(&el);
    for child in el.children() {
        check(child);
        for grandchild in child.children() {
            check(grandchild);
        }
    }
});
