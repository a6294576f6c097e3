//! The memory bound of issue 8, item 1, on arbitrary input: after a client stream
//! header, feeding the input and reading its first stanza must never have more heap
//! live than K × the input's length + a fixed slack, at the peak or in what the parsed
//! stanza keeps. The same bound and the same accounting as `proto/tests/parse_memory.rs`
//! (which explains K); here the fuzzer looks for the input that breaks it.
//!
//! Counted: this thread's allocations through Rust's global allocator, each charged what
//! glibc's malloc takes for it. libFuzzer's own allocations do not go through it.
#![no_main]
// A global allocator implements the unsafe `GlobalAlloc` trait; this one only forwards
// to `System` and counts.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use hydrant_fuzz::HEADER;
use hydrant_proto::{Limits, StreamEvent, StreamReader};
use libfuzzer_sys::fuzz_target;

/// As in `proto/tests/parse_memory.rs`.
const K: isize = 56;
const SLACK: isize = 4096;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn chunk(size: usize) -> isize {
    ((size + 8 + 15) & !15).max(32).cast_signed()
}

fn charge(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

struct Counting;

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            charge(chunk(layout.size()));
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        charge(-chunk(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            charge(chunk(new_size) - chunk(layout.size()));
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fuzz_target!(|data: &[u8]| {
    let mut r = StreamReader::new(Limits::default());
    r.feed(HEADER).expect("the header is well-formed");
    if !matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))) {
        panic!("the header did not open the stream");
    }
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let event = r.feed(data).and_then(|()| r.next_event());
    let peak = PEAK.with(Cell::get) - base;
    let kept = LIVE.with(Cell::get) - base;
    drop(event);
    let bound = K * data.len().cast_signed() + SLACK;
    assert!(
        peak <= bound && kept <= bound,
        "{} bytes: peak {peak}, kept {kept}, bound {bound}",
        data.len()
    );
});
