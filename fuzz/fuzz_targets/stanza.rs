//! Stanza typing: the first stanza of the input (read by the stream reader after a fixed
//! header) through `Stanza::parse`, each typed constructor and the iq payload
//! classification. Never a panic; a typed stanza written out and read back types the same
//! and writes the same bytes (parse, encode, reparse agree); an invalid one's error reply
//! is something the reader accepts, as the peer must.
#![no_main]

use hydrant_fuzz::{STREAM_NS, reread, stanza};
use hydrant_proto::stanza::StanzaParseError;
use hydrant_proto::{Iq, IqPayload, Message, Presence, Stanza, error_reply};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(el) = stanza(data) else {
        return;
    };
    let _ = Iq::try_from_element(el.clone());
    let _ = Message::from_element(el.clone());
    let _ = Presence::from_element(el.clone());
    let _ = IqPayload::parse(&el);
    for child in el.children() {
        let _ = IqPayload::parse(child);
    }
    match Stanza::parse(el, STREAM_NS) {
        Ok(typed) => {
            if let Stanza::Iq(iq) = &typed {
                if let Some(p) = &iq.payload {
                    let _ = IqPayload::parse(p);
                }
                let _ = iq.stanza_error();
                if iq.kind.is_request() {
                    let _ = iq.result(None).to_element(STREAM_NS);
                }
            }
            let out = typed.to_element(STREAM_NS);
            let bytes = out.to_bytes(STREAM_NS);
            let again = Stanza::parse(reread(&out), STREAM_NS)
                .unwrap_or_else(|e| panic!("a written stanza no longer types: {e:?}"));
            assert_eq!(
                String::from_utf8_lossy(&again.to_element(STREAM_NS).to_bytes(STREAM_NS)),
                String::from_utf8_lossy(&bytes),
                "parse, encode, reparse disagree",
            );
        }
        Err(StanzaParseError::Invalid(el, err)) => {
            let _ = reread(&error_reply(&el, &err));
        }
        Err(StanzaParseError::NotAStanza(_)) => {}
    }
});
