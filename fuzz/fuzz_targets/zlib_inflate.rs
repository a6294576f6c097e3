//! XEP-0138 inbound (stream/src/zlib.rs): what a compressed client sends, inflated a step
//! at a time into the stream reader, the inflater parked between stanzas and rebuilt
//! from its history.
//!
//! The first byte picks the mode. Raw: the rest is fed as compressed input as it is
//! (garbage, truncations, zip bombs): never a panic, and never more inflated than one
//! step beyond what the reader took or refused. Round trip: the rest is cut into
//! stanzas that a stock compressor (flate2, one sync flush per stanza, as clients do)
//! turns into one zlib stream, delivered in pieces whose sizes come from the input; the
//! reader must get every stanza back exactly, whatever the parking did.
#![no_main]

use flate2::{Compress, Compression, FlushCompress};
use hydrant_fuzz::HEADER;
use hydrant_proto::{Limits, StreamEvent, StreamReader};
use hydrant_stream::zlib::Inflater;
use libfuzzer_sys::fuzz_target;

const MAX_STANZA: usize = 4096;
const STEP: u64 = 8192;

fn reader() -> StreamReader {
    StreamReader::new(Limits {
        max_stanza_bytes: MAX_STANZA,
        ..Limits::default()
    })
}

/// Drains the reader; the stanzas' texts, or `None` once it refused the input.
fn drain(r: &mut StreamReader, out: &mut Vec<String>) -> Option<()> {
    loop {
        match r.next_event() {
            Ok(Some(StreamEvent::Stanza(el))) => out.push(el.text()),
            Ok(Some(_)) => {}
            Ok(None) => return Some(()),
            Err(_) => return None,
        }
    }
}

fn raw(data: &[u8]) {
    let mut r = reader();
    let mut inf = Inflater::default();
    let mut seen = Vec::new();
    for chunk in data.chunks(512) {
        inf.push(chunk);
        loop {
            match inf.step(&mut r) {
                Err(_) => return,
                Ok(false) => break,
                Ok(true) => {}
            }
            if drain(&mut r, &mut seen).is_none() {
                // Refused: the step that made it so was the last one.
                return;
            }
            // Whatever the reader holds unparsed is under the stanza limit, so the
            // inflater cannot have run far ahead of it.
            let parsed: u64 = seen.iter().map(|t| t.len() as u64).sum();
            assert!(
                inf.total_out() <= parsed * 64 + (MAX_STANZA as u64) * 2 + STEP * 2 + 4096,
                "inflated {} for {} parsed",
                inf.total_out(),
                parsed
            );
        }
    }
}

fn round_trip(data: &[u8]) {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    // Stanzas: the input's pieces between 0xff bytes, as hex in a <m/> each.
    let texts: Vec<String> = rest
        .split(|&b| b == 0xff)
        .map(|p| p.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let mut z = Compress::new(Compression::fast(), true);
    let mut wire = Vec::new();
    let mut docs = vec![HEADER.to_vec()];
    docs.extend(texts.iter().map(|t| format!("<m>{t}</m>").into_bytes()));
    for d in &docs {
        let mut out = Vec::with_capacity(d.len() * 2 + 64);
        let mut input = &d[..];
        loop {
            let before = z.total_in();
            z.compress_vec(input, &mut out, FlushCompress::Sync).unwrap();
            input = &input[(z.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            out.reserve(out.capacity());
        }
        wire.extend(out);
    }
    let mut r = StreamReader::new(Limits::default());
    let mut inf = Inflater::default();
    let mut got = Vec::new();
    let piece = usize::from(cut % 64) + 1;
    for chunk in wire.chunks(piece) {
        inf.push(chunk);
        while inf.step(&mut r).expect("a stock compressor's stream inflates") {
            drain(&mut r, &mut got).expect("well-formed");
        }
        drain(&mut r, &mut got).expect("well-formed");
    }
    assert_eq!(got, texts, "every stanza back, exactly");
}

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((m, rest)) if m % 2 == 0 => raw(rest),
        Some((_, rest)) => round_trip(rest),
        None => {}
    }
});
