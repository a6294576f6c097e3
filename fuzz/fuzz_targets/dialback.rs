//! Server Dialback elements (XEP-0220) from a peer server: the first element of the input
//! on an s2s stream, read as `<db:result/>` / `<db:verify/>`. Never a panic; whatever is
//! accepted, written out and read back is the same element; a refusal always has an
//! answer (a stream error, a dialback error or nothing), never a panic while making it.
#![no_main]

use hydrant_fuzz::{reread, s2s_element};
use hydrant_s2s::dialback;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(el) = s2s_element(data) else {
        return;
    };
    match dialback::parse(&el) {
        Ok(db) => {
            let again = dialback::parse(&reread(&db.to_element()))
                .unwrap_or_else(|e| panic!("a written dialback element is refused: {e:?}"));
            assert_eq!(db, again, "dialback parse, encode, reparse disagree");
        }
        Err(e) => {
            let _ = e.answer();
        }
    }
});
