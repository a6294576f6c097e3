//! The stream reader on arbitrary bytes, fed whole and fed in pieces cut at points the
//! fuzzer chooses: it must never panic, and every split must give the same events, the
//! same error and the same unconsumed byte count (the reader's contract, reader.rs).
//!
//! Input: `[flags][n][n little-endian u16 cut offsets][stream bytes]`. Flag bit 0 picks
//! small limits (so the size, depth and attribute limits are reached by short inputs);
//! bits 1-2, when not 0, restart the reader after that many stanzas, as c2s does after
//! SASL `<success/>` (the bytes already buffered belong to the new stream).
#![no_main]

use hydrant_proto::{Limits, StreamError, StreamEvent, StreamReader};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<StreamEvent>,
    error: Option<StreamError>,
    buffered: usize,
}

fn run(limits: Limits, restart_after: usize, chunks: &[&[u8]]) -> Outcome {
    let mut reader = StreamReader::new(limits);
    let mut stanzas = 0;
    let mut events = Vec::new();
    let mut error = None;
    'feed: for chunk in chunks {
        if let Err(e) = reader.feed(chunk) {
            error = Some(e);
            break;
        }
        loop {
            match reader.next_event() {
                Ok(Some(ev)) => {
                    if matches!(ev, StreamEvent::Stanza(_)) {
                        stanzas += 1;
                        if stanzas == restart_after {
                            reader.restart();
                        }
                    }
                    events.push(ev);
                }
                Ok(None) => break,
                Err(e) => {
                    error = Some(e);
                    break 'feed;
                }
            }
        }
    }
    if let Some(e) = &error {
        // Errors are sticky.
        assert_eq!(reader.next_event().as_ref().err(), Some(e));
        assert_eq!(reader.feed(b"<a/>").as_ref().err(), Some(e));
    }
    Outcome {
        events,
        error,
        buffered: reader.buffered_len(),
    }
}

fuzz_target!(|data: &[u8]| {
    let [flags, n, rest @ ..] = data else {
        return;
    };
    let n = usize::from(*n % 32);
    let Some((cuts, stream)) = rest.split_at_checked(2 * n) else {
        return;
    };
    let limits = if flags & 1 == 1 {
        Limits {
            max_stanza_bytes: 512,
            max_header_bytes: 256,
            max_depth: 4,
            max_attrs: 4,
            max_ns_bytes: 64,
            max_attr_bytes: 64,
        }
    } else {
        Limits::default()
    };
    let restart_after = usize::from((flags >> 1) & 3);
    let mut offsets: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    offsets.sort_unstable();
    let mut pieces = Vec::with_capacity(n + 1);
    let mut from = 0;
    for at in offsets {
        pieces.push(&stream[from..at]);
        from = at;
    }
    pieces.push(&stream[from..]);

    let whole = run(limits, restart_after, &[stream]);
    let split = run(limits, restart_after, &pieces);
    assert_eq!(
        whole, split,
        "the result depends on how the input was split"
    );
    // One byte at a time: the worst case of the resumable scan.
    if stream.len() <= 4096 {
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(
            whole,
            run(limits, restart_after, &bytes),
            "byte-at-a-time differs"
        );
    }
});
