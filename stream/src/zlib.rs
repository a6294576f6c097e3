//! XEP-0138 zlib (RFC 1950/1951) for a stream, without per-stream deflate state.
//!
//! Outbound, a compressed stream is a zlib header, then one independent deflate piece
//! per frame part, then (at close) an empty final block and the Adler-32 of everything
//! sent. Independent means compressed with fresh state and ended by a sync flush: the
//! piece refers to nothing before it and ends on a byte boundary, so it is valid at any
//! byte-aligned point of any deflate stream (RFC 1951 3.2.3: back-references may reach
//! into earlier blocks but need not). That lets a notification's shared parts be
//! deflated once per publish ([`crate::Shared::deflated`]) and the same bytes be written
//! into every subscriber's stream, with the recipient's own address between them as a
//! stored block; and it leaves nothing to keep per stream but the running Adler-32 (the
//! per-part checksums are combined, [`adler32_combine`]). No compression context ever
//! mixes data from two senders, which is what the compression side channels (CRIME,
//! BREACH) need.
//!
//! Inbound, the peer's stream is inflated in bounded steps into the stream reader, whose
//! stanza size limit stops a small input that inflates to a large one (a zip bomb) before
//! more than one step past the limit is produced.
//!
//! Written here rather than taken from a crate because no zlib binding splices
//! independently compressed pieces or combines checksums; the deflating and inflating
//! themselves are flate2's.

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use hydrant_proto::{StreamError, StreamErrorCondition as Cond, StreamReader};

use crate::frame::Frame;

/// The zlib header (RFC 1950 2.2): deflate, 32 KiB window, default level, no dictionary.
pub const HEADER: [u8; 2] = [0x78, 0x9c];

/// Parts shorter than this go as stored blocks: deflate would save little and a fresh
/// compressor costs more than the bytes.
const DEFLATE_MIN: usize = 128;

/// Inflated bytes per step handed to the reader.
const INFLATE_STEP: usize = 8192;

const ADLER_BASE: u64 = 65521;

/// Adler-32 (RFC 1950 8.2) of `data`, continuing from `adler` (1 for nothing yet).
pub fn adler32_update(adler: u32, data: &[u8]) -> u32 {
    // NMAX from zlib: the most bytes before the sums must be reduced to stay in 32 bits.
    const NMAX: usize = 5552;
    let (mut a, mut b) = (u64::from(adler & 0xffff), u64::from(adler >> 16));
    for chunk in data.chunks(NMAX) {
        for &byte in chunk {
            a += u64::from(byte);
            b += a;
        }
        a %= ADLER_BASE;
        b %= ADLER_BASE;
    }
    ((b << 16) | a) as u32
}

/// The Adler-32 of `data`.
pub fn adler32(data: &[u8]) -> u32 {
    adler32_update(1, data)
}

/// The Adler-32 of A followed by B, from A's and B's checksums and B's length (zlib's
/// `adler32_combine`): what lets shared parts carry their checksum once.
pub fn adler32_combine(adler1: u32, adler2: u32, len2: usize) -> u32 {
    let rem = (len2 as u64) % ADLER_BASE;
    let a1 = u64::from(adler1 & 0xffff);
    let b1 = u64::from(adler1 >> 16);
    let a2 = u64::from(adler2 & 0xffff);
    let b2 = u64::from(adler2 >> 16);
    // A's sums carried over B's bytes: a = a1 + a2 - 1, b = b1 + b2 + rem * (a1 - 1).
    let a = (a1 + a2 + ADLER_BASE - 1) % ADLER_BASE;
    let b = (b1 + b2 + rem * a1 + ADLER_BASE - rem) % ADLER_BASE;
    ((b << 16) | a) as u32
}

/// `data` as stored (uncompressed) deflate blocks, not final (RFC 1951 3.2.4), each at
/// most 65,535 bytes. Starts and ends on a byte boundary.
pub fn stored(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 5 * (data.len() / 65_535 + 1));
    stored_into(&mut out, data);
    out
}

fn stored_into(out: &mut Vec<u8>, data: &[u8]) {
    for chunk in data.chunks(65_535) {
        let len = chunk.len() as u16;
        out.push(0x00); // BFINAL = 0, BTYPE = 00, then padding to the byte boundary
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
}

/// Raw-deflate compressors, reset before each piece: a piece never sees another's data,
/// and no stream owns a compressor. A small process-wide pool rather than one per thread:
/// a compressor is ~300 KiB, and tokio's `block_in_place` (the pubsub commit) keeps
/// handing the worker role to new threads, each of which would keep its own.
static DEFLATERS: std::sync::Mutex<Vec<Compress>> = std::sync::Mutex::new(Vec::new());
/// Compressors the pool keeps (more may exist while many threads compress at once).
const DEFLATERS_MAX: usize = 4;

/// Runs `f` with a reset compressor from the pool.
fn with_deflater<T>(f: impl FnOnce(&mut Compress) -> T) -> T {
    let pooled = DEFLATERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    let mut c = match pooled {
        Some(mut c) => {
            c.reset();
            c
        }
        None => Compress::new(Compression::default(), false),
    };
    let out = f(&mut c);
    let mut pool = DEFLATERS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pool.len() < DEFLATERS_MAX {
        pool.push(c);
    }
    out
}

/// `data` as an independent deflate piece (fresh state, ended by a sync flush), and its
/// Adler-32. Short data goes stored.
pub fn deflate_piece(data: &[u8]) -> (Bytes, u32) {
    let adler = adler32(data);
    if data.len() < DEFLATE_MIN {
        return (Bytes::from(stored(data)), adler);
    }
    let out = with_deflater(|c| flushed(c, data));
    // A deflate piece can be larger than its input (incompressible data): stored then.
    if out.len() >= data.len() + 5 {
        return (Bytes::from(stored(data)), adler);
    }
    (Bytes::from(out), adler)
}

/// A chained notification's shared parts as compressed streams write them (computed once
/// per publish): the head, and the tail without its leading quote (which the padded
/// address region carries), each deflated alone and against the predecessor.
#[derive(Debug)]
pub struct ChainForms {
    head_after: Option<Bytes>,
    tail_after: Option<Bytes>,
    tail_alone: Bytes,
    head_adler: u32,
    tail_adler: u32,
}

impl ChainForms {
    fn new(head: &[u8], tail: &[u8], chain: &crate::frame::Chain) -> Self {
        let rest = &tail[1..];
        let (tail_alone, tail_adler) = deflate_piece(rest);
        let head_adler = adler32(head);
        let (head_after, tail_after) = match &chain.prev {
            Some(p) if p.tail.first() == Some(&b'\'') => {
                // What every eligible stream holds right before this notification: the
                // predecessor with its address region. The region differs per stream, so
                // it is zeros here: XML has no NUL, so no match can use those bytes, and
                // every match the deflater finds is valid in every stream.
                let mut before = Vec::with_capacity(p.head.len() + p.width + p.tail.len());
                before.extend_from_slice(&p.head);
                before.resize(before.len() + p.width, 0);
                before.extend_from_slice(&p.tail[1..]);
                let region = vec![0u8; chain.width];
                with_deflater(|c| {
                    let _ = flushed(c, &before);
                    let h = flushed(c, head);
                    let _ = flushed(c, &region);
                    let t = flushed(c, rest);
                    (Some(Bytes::from(h)), Some(Bytes::from(t)))
                })
            }
            _ => (None, None),
        };
        ChainForms {
            head_after,
            tail_after,
            tail_alone,
            head_adler,
            tail_adler,
        }
    }
}

/// Deflates `data` with `c`'s history, ending with a sync flush; returns what it wrote.
fn flushed(c: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    let mut input = data;
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(256));
        }
        let before = c.total_in();
        c.compress_vec(input, &mut out, FlushCompress::Sync)
            .expect("deflate into a vector with room cannot fail");
        input = &input[(c.total_in() - before) as usize..];
        if input.is_empty() && out.len() < out.capacity() {
            return out;
        }
    }
}

/// The outbound half of a compressed stream: what each frame becomes on the wire.
#[derive(Debug)]
pub struct Deflater {
    header_sent: bool,
    adler: u32,
    finished: bool,
    /// The last thing written was a chained notification: its tail's id and address
    /// width (what the next notification of its node may refer back to).
    last: Option<(u64, usize)>,
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater {
            header_sent: false,
            adler: 1,
            finished: false,
            last: None,
        }
    }
}

impl Deflater {
    /// Appends `frame`'s compressed form to `out`, as frames of wire bytes.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<Frame>) {
        if self.finished {
            return;
        }
        if !self.header_sent {
            self.header_sent = true;
            out.push(Frame::Raw(Bytes::from_static(&HEADER)));
        }
        match frame {
            Frame::Raw(b) | Frame::Stanza(_, b) => self.piece(b, out),
            Frame::Addressed { head, to, tail } => {
                if let Some(chain) = head.chain()
                    && tail.bytes().first() == Some(&b'\'')
                    && to.len() < chain.width
                {
                    return self.chained(head, to, tail, chain, out);
                }
                self.shared(head, out);
                self.own(to, out);
                self.shared(tail, out);
            }
        }
        self.last = None;
    }

    /// A notification of a chained node: its address region padded to the node's width
    /// (the closing quote moved into it, spaces after it, inside the start tag), and its
    /// shared parts deflated against the node's previous notification when that is what
    /// this stream wrote last, else alone.
    fn chained(
        &mut self,
        head: &crate::frame::Shared,
        to: &[u8],
        tail: &crate::frame::Shared,
        chain: &crate::frame::Chain,
        out: &mut Vec<Frame>,
    ) {
        let forms = chain
            .forms
            .get_or_init(|| ChainForms::new(head.bytes(), tail.bytes(), chain));
        let after = chain
            .prev
            .as_ref()
            .is_some_and(|p| self.last == Some((p.tail_id, p.width)));
        let (h, t) = match (&forms.head_after, &forms.tail_after) {
            (Some(h), Some(t)) if after => (h.clone(), t.clone()),
            _ => (head.deflated().0.clone(), forms.tail_alone.clone()),
        };
        self.adler = adler32_combine(self.adler, forms.head_adler, head.bytes().len());
        out.push(Frame::Raw(h));
        let mut region = Vec::with_capacity(chain.width);
        region.extend_from_slice(to);
        region.push(b'\'');
        region.resize(chain.width, b' ');
        self.own(&region, out);
        self.adler = adler32_combine(self.adler, forms.tail_adler, tail.bytes().len() - 1);
        out.push(Frame::Raw(t));
        self.last = Some((tail.id(), chain.width));
    }

    /// A part every recipient shares: deflated once, by whichever stream wrote it first.
    fn shared(&mut self, part: &crate::frame::Shared, out: &mut Vec<Frame>) {
        if part.bytes().is_empty() {
            return;
        }
        let (bytes, adler) = part.deflated();
        self.adler = adler32_combine(self.adler, *adler, part.bytes().len());
        out.push(Frame::Raw(bytes.clone()));
    }

    /// A part of this stream's own: deflated (or stored) alone.
    fn piece(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        if data.is_empty() {
            return;
        }
        let (bytes, adler) = deflate_piece(data);
        self.adler = adler32_combine(self.adler, adler, data.len());
        out.push(Frame::Raw(bytes));
    }

    /// A recipient's own bytes between shared parts: a stored block.
    fn own(&mut self, data: &[u8], out: &mut Vec<Frame>) {
        if data.is_empty() {
            return;
        }
        self.adler = adler32_update(self.adler, data);
        out.push(Frame::Raw(Bytes::from(stored(data))));
    }

    /// The end of the zlib stream: an empty final block and the Adler-32 (RFC 1950 2.2),
    /// once; `None` after the first call.
    pub fn finish(&mut self) -> Option<Bytes> {
        if self.finished {
            return None;
        }
        self.finished = true;
        let mut out = Vec::with_capacity(11);
        if !self.header_sent {
            out.extend_from_slice(&HEADER);
        }
        // BFINAL = 1, BTYPE = 00 (stored), LEN = 0, NLEN = 0xffff.
        out.extend_from_slice(&[0x01, 0x00, 0x00, 0xff, 0xff]);
        out.extend_from_slice(&self.adler.to_be_bytes());
        Some(Bytes::from(out))
    }
}

/// The inbound half of a compressed stream. Input waits here, compressed, until the
/// reader has taken the events of what was inflated before: inflating one step at a time
/// between events is what keeps a zip bomb at one step past the stanza limit.
///
/// An inflater holds the peer's 32 KiB window and its tables (about 43 KiB with flate2's
/// default backend) for as long as the stream lives, which is most of an idle
/// subscriber's memory. So when the peer's input ends on a sync flush (`00 00 ff ff`, how
/// clients end each stanza, XEP-0138 8.1) the inflater is dropped ("parked") and only the
/// bytes it produced so far are kept, at most the window: a subscriber sends little. The
/// next input rebuilds a raw inflater and replays that history into it as stored blocks
/// (output discarded), which recreates exactly the window the peer's back-references
/// point into. (Four bytes `00 00 ff ff` ending a read inside a compressed block would
/// park wrongly; the odds are 2^-32 per read, and the cost a stream error.)
pub struct Inflater {
    /// `None` while parked (and before the first input).
    d: Option<Decompress>,
    /// The zlib header is behind us: a rebuilt inflater is raw.
    started: bool,
    /// The last bytes inflated, at most [`WINDOW`].
    history: Vec<u8>,
    /// The last four compressed bytes taken.
    tail: [u8; 4],
    /// Compressed bytes not yet inflated (at most one read's worth).
    input: Vec<u8>,
    /// The last step filled its buffer: more output may be held inside the inflater.
    full: bool,
    /// The peer ended its zlib stream: nothing after it is read.
    ended: bool,
    /// Bytes inflated so far.
    total_out: u64,
}

/// Deflate's largest back-reference distance (RFC 1951 3.2.5).
const WINDOW: usize = 32 * 1024;

/// Parked inflaters' states kept for the next rebuild, process-wide: rebuilding on every
/// stanza of every compressed client would otherwise allocate and free ~43 KiB each
/// time, which fragments the heap until freed memory stays resident.
static POOL: std::sync::Mutex<Vec<Decompress>> = std::sync::Mutex::new(Vec::new());
/// States the pool keeps at most (~2.7 MiB).
const POOL_MAX: usize = 64;

fn pool_take(zlib_header: bool) -> Decompress {
    let pooled = POOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .pop();
    match pooled {
        Some(mut d) => {
            d.reset(zlib_header);
            d
        }
        None => Decompress::new(zlib_header),
    }
}

fn pool_put(d: Decompress) {
    let mut pool = POOL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if pool.len() < POOL_MAX {
        pool.push(d);
    }
}

/// What a sync flush ends with: an empty stored block's LEN and NLEN.
const SYNC_MARK: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("parked", &self.d.is_none())
            .field("started", &self.started)
            .field("history", &self.history.len())
            .field("tail", &self.tail)
            .field("waiting", &self.input.len())
            .field("full", &self.full)
            .field("ended", &self.ended)
            .field("total_out", &self.total_out)
            .finish_non_exhaustive()
    }
}

impl Default for Inflater {
    fn default() -> Self {
        Inflater {
            // Taken from the pool when the first input arrives (`rebuild`).
            d: None,
            started: false,
            history: Vec::new(),
            tail: [0xff; 4],
            input: Vec::new(),
            full: false,
            ended: false,
            total_out: 0,
        }
    }
}

fn bad(e: impl std::fmt::Display) -> StreamError {
    StreamError::new(Cond::BadFormat).with_text(format!("zlib: {e}"))
}

impl Inflater {
    /// Takes compressed bytes read from the peer.
    pub fn push(&mut self, data: &[u8]) {
        if !self.ended {
            self.input.extend_from_slice(data);
        }
    }

    /// Whether a [`Inflater::step`] may produce more (else: read the socket).
    pub fn has_more(&self) -> bool {
        !self.ended && (!self.input.is_empty() || self.full)
    }

    /// Bytes inflated so far.
    pub fn total_out(&self) -> u64 {
        self.total_out
    }

    /// Whether the inflater is parked (dropped, history kept).
    pub fn is_parked(&self) -> bool {
        self.d.is_none()
    }

    /// A raw inflater whose window is `history` again.
    fn rebuild(&self) -> Result<Decompress, StreamError> {
        let mut d = pool_take(!self.started);
        if self.started {
            let replay = stored(&self.history);
            let mut sink = [0u8; INFLATE_STEP];
            let mut at = 0;
            while at < replay.len() {
                let before = d.total_in();
                d.decompress(&replay[at..], &mut sink, FlushDecompress::None)
                    .map_err(bad)?;
                at += (d.total_in() - before) as usize;
            }
            // Output still held back is history too: drain it.
            loop {
                let before = d.total_out();
                d.decompress(&[], &mut sink, FlushDecompress::None)
                    .map_err(bad)?;
                if d.total_out() == before {
                    break;
                }
            }
        }
        Ok(d)
    }

    /// Inflates at most one step (8 KiB) into `reader`; false when nothing came of it.
    pub fn step(&mut self, reader: &mut StreamReader) -> Result<bool, StreamError> {
        if !self.has_more() {
            return Ok(false);
        }
        if self.d.is_none() {
            self.d = Some(self.rebuild()?);
        }
        let d = self.d.as_mut().expect("rebuilt above");
        let mut buf = [0u8; INFLATE_STEP];
        let (in0, out0) = (d.total_in(), d.total_out());
        let status = d
            .decompress(&self.input, &mut buf, FlushDecompress::None)
            .map_err(bad)?;
        let used = (d.total_in() - in0) as usize;
        let made = (d.total_out() - out0) as usize;
        if d.total_in() >= 2 {
            self.started = true;
        }
        for &b in &self.input[used.saturating_sub(4)..used] {
            self.tail = [self.tail[1], self.tail[2], self.tail[3], b];
        }
        self.input.drain(..used);
        if self.input.is_empty() {
            // An idle stream keeps no input buffer.
            self.input = Vec::new();
        }
        self.full = made == INFLATE_STEP;
        if status == Status::StreamEnd {
            self.ended = true;
            self.input = Vec::new();
            self.d = None;
            self.history = Vec::new();
        }
        self.total_out += made as u64;
        if made > 0 {
            self.history.extend_from_slice(&buf[..made]);
            if self.history.len() > WINDOW {
                self.history.drain(..self.history.len() - WINDOW);
            }
            reader.feed(&buf[..made])?;
        }
        if !self.ended && !self.has_more() && self.tail == SYNC_MARK {
            // On a flush boundary with nothing waiting: park.
            if let Some(d) = self.d.take() {
                pool_put(d);
            }
            self.history.shrink_to_fit();
        }
        if used == 0 && made == 0 {
            // Needs more input than is here (a piece split across reads).
            self.full = false;
            return Ok(false);
        }
        Ok(true)
    }

    /// [`Inflater::push`], then every step (tests, and callers that drain events only
    /// afterwards: no bound on what one push inflates to).
    #[cfg(test)]
    fn inflate_all_into(
        &mut self,
        data: &[u8],
        reader: &mut StreamReader,
    ) -> Result<(), StreamError> {
        self.push(data);
        while self.step(reader)? {}
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Shared;
    use std::io::Read;

    fn inflate_all(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(z)
            .read_to_end(&mut out)
            .expect("a valid zlib stream with a matching checksum");
        out
    }

    fn atom(n: usize) -> String {
        format!(
            "<entry xmlns='http://www.w3.org/2005/Atom'><title>photo {n}</title>\
             <link rel='enclosure' href='https://photos.example/{n}.jpg'/>{}</entry>",
            "description words repeat ".repeat(40)
        )
    }

    #[test]
    fn adler_matches_a_reference_and_combines() {
        // RFC 1950's checksum of "Wikipedia" (the well-known example value).
        assert_eq!(adler32(b"Wikipedia"), 0x11e6_0398);
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cut in [0, 1, 5551, 5552, 5553, 12_345, 20_000] {
            let (a, b) = data.split_at(cut);
            assert_eq!(
                adler32_combine(adler32(a), adler32(b), b.len()),
                adler32(&data),
                "cut at {cut}"
            );
        }
        assert_eq!(
            adler32_update(adler32(b"Wiki"), b"pedia"),
            adler32(b"Wikipedia")
        );
    }

    #[test]
    fn stored_blocks_split_at_65535() {
        let data = vec![b'x'; 140_000];
        let mut z = HEADER.to_vec();
        z.extend(stored(&data));
        let mut d = Deflater {
            header_sent: true,
            adler: adler32(&data),
            ..Deflater::default()
        };
        z.extend_from_slice(&d.finish().unwrap());
        assert_eq!(inflate_all(&z), data);
    }

    /// Frames of every kind, shared parts reused across two streams, decode byte-exactly
    /// with a standard inflater, checksum included.
    #[test]
    fn spliced_streams_decode_with_a_standard_inflater() {
        let event = atom(1);
        let head = Shared::new(Bytes::from_static(b"<message from='pubsub.example' to='"));
        let tail = Shared::new(Bytes::from(format!(
            "' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'>{event}</event></message>"
        )));
        let mut streams = Vec::new();
        for who in ["a@example/r", "someone-else@example"] {
            let frames = vec![
                Frame::Raw(Bytes::from_static(b"<stream:stream xmlns='jabber:client'>")),
                Frame::Addressed {
                    head: head.clone(),
                    to: Bytes::copy_from_slice(who.as_bytes()),
                    tail: tail.clone(),
                },
                Frame::Raw(Bytes::from(atom(2))),
                Frame::Raw(Bytes::from_static(b" ")),
                Frame::Addressed {
                    head: head.clone(),
                    to: Bytes::copy_from_slice(who.as_bytes()),
                    tail: tail.clone(),
                },
            ];
            let mut d = Deflater::default();
            let mut out = Vec::new();
            for f in &frames {
                d.encode(f, &mut out);
            }
            let mut wire: Vec<u8> = out.iter().flat_map(Frame::to_vec).collect();
            wire.extend_from_slice(&d.finish().unwrap());
            let plain: Vec<u8> = frames.iter().flat_map(Frame::to_vec).collect();
            assert_eq!(inflate_all(&wire), plain, "{who}");
            assert!(
                wire.len() < plain.len() * 3 / 4,
                "{} vs {}",
                wire.len(),
                plain.len()
            );
            streams.push(out);
        }
        // The shared parts are the same bytes in both streams (deflated once).
        let shared_in = |out: &Vec<Frame>| match &out[2] {
            Frame::Raw(b) => b.as_ptr(),
            _ => unreachable!(),
        };
        assert_eq!(shared_in(&streams[0]), shared_in(&streams[1]));
    }

    /// A node's notifications chained: streams that wrote N-1 last get N deflated
    /// against it (far smaller), one that wrote something in between gets N alone, and
    /// every stream decodes with a stock inflater to the notifications with the address
    /// region padded inside the start tag.
    #[test]
    fn chained_notifications_refer_back_to_the_previous_one() {
        use crate::frame::{Chain, Prev};
        let addrs = [
            "a@example/phone",
            "someone.with.a.longer.name@example",
            "c@x",
        ];
        let width = addrs.iter().map(|a| a.len()).max().unwrap() + 1;
        let mut prev: Option<Prev> = None;
        let mut outs: Vec<(Deflater, Vec<Frame>, Vec<u8>)> = addrs
            .iter()
            .map(|_| (Deflater::default(), Vec::new(), Vec::new()))
            .collect();
        let mut sizes = vec![Vec::new(); addrs.len()];
        for n in 0..12 {
            let head = Shared::new(Bytes::from(format!(
                "<message from='pubsub.example' id='ps-{n}' to='"
            )));
            let tail = Shared::new(Bytes::from(format!(
                "' type='headline'><event xmlns='http://jabber.org/protocol/pubsub#event'>\
                 <items node='photos'><item id='i{n}'>{}</item></items></event></message>",
                atom(n)
            )));
            head.set_chain(Chain::new(width, prev.take()));
            prev = Some(Prev {
                head: head.bytes().clone(),
                tail: tail.bytes().clone(),
                tail_id: tail.id(),
                width,
            });
            for (i, (d, out, plain)) in outs.iter_mut().enumerate() {
                if i == 2 && n % 3 == 1 {
                    // Something else between two notifications of the node.
                    let ping = b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>";
                    d.encode(&Frame::Raw(Bytes::from_static(ping)), out);
                    plain.extend_from_slice(ping);
                }
                let before: usize = out.iter().map(Frame::len).sum();
                d.encode(
                    &Frame::Addressed {
                        head: head.clone(),
                        to: Bytes::copy_from_slice(addrs[i].as_bytes()),
                        tail: tail.clone(),
                    },
                    out,
                );
                sizes[i].push(out.iter().map(Frame::len).sum::<usize>() - before);
                plain.extend_from_slice(head.bytes());
                plain.extend_from_slice(addrs[i].as_bytes());
                plain.push(b'\'');
                plain.resize(plain.len() + width - addrs[i].len() - 1, b' ');
                plain.extend_from_slice(&tail.bytes()[1..]);
            }
        }
        for (i, (d, out, plain)) in outs.iter_mut().enumerate() {
            let mut wire: Vec<u8> = out.iter().flat_map(Frame::to_vec).collect();
            wire.extend_from_slice(&d.finish().unwrap());
            assert_eq!(inflate_all(&wire), *plain, "stream {i}");
        }
        // Referring back pays: the later notifications are a fraction of the first.
        let (first, later) = (sizes[0][0], sizes[0][5]);
        assert!(later * 3 < first, "{later} vs {first}");
        // The interrupted stream got its notification after the ping alone.
        assert!(sizes[2][4] * 2 > first, "{:?}", sizes[2]);
    }

    #[test]
    fn a_stream_can_be_read_before_it_is_finished() {
        // A client reads each flushed piece as it comes, long before the trailer.
        let mut d = Deflater::default();
        let mut out = Vec::new();
        d.encode(&Frame::Raw(Bytes::from(atom(3))), &mut out);
        let wire: Vec<u8> = out.iter().flat_map(Frame::to_vec).collect();
        let mut inf = Decompress::new(true);
        let mut buf = vec![0u8; 10_000];
        inf.decompress(&wire, &mut buf, FlushDecompress::Sync)
            .unwrap();
        assert_eq!(&buf[..inf.total_out() as usize], atom(3).as_bytes());
    }

    fn reader() -> StreamReader {
        StreamReader::new(hydrant_proto::Limits {
            max_stanza_bytes: 4096,
            ..hydrant_proto::Limits::default()
        })
    }

    #[test]
    fn inbound_is_inflated_into_the_reader_byte_by_byte() {
        let doc = format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'>\
             <message to='a@x'><body>{}</body></message>",
            "hello ".repeat(50)
        );
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, doc.as_bytes()).unwrap();
        let z = z.flush_finish().unwrap();
        let mut r = reader();
        let mut inf = Inflater::default();
        for b in &z {
            inf.inflate_all_into(std::slice::from_ref(b), &mut r)
                .unwrap();
        }
        let mut events = Vec::new();
        while let Some(ev) = r.next_event().unwrap() {
            events.push(ev);
        }
        assert_eq!(events.len(), 2, "{events:?}");
    }

    #[test]
    fn a_zip_bomb_stops_at_the_stanza_limit() {
        // 10 MB of one character compresses to ~10 KB; the reader's 4 KiB stanza limit
        // must stop it after about one inflate step, not after 10 MB.
        let mut doc = b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'><message><body>".to_vec();
        doc.extend(std::iter::repeat_n(b'a', 10_000_000));
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut z, &doc).unwrap();
        let z = z.finish().unwrap();
        let mut r = reader();
        let mut inf = Inflater::default();
        let mut err = None;
        // As the connection does it: events drained after every step.
        'read: for chunk in z.chunks(8192) {
            inf.push(chunk);
            loop {
                match inf.step(&mut r) {
                    Err(e) => {
                        err = Some(e);
                        break 'read;
                    }
                    Ok(false) => break,
                    Ok(true) => {}
                }
                loop {
                    match r.next_event() {
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            err = Some(e);
                            break 'read;
                        }
                    }
                }
            }
        }
        assert!(err.is_some(), "the bomb was not stopped");
        assert!(inf.total_out() < 64 * 1024, "inflated {}", inf.total_out());
    }

    /// A client's zlib stream, one sync flush per stanza, with back-references reaching
    /// across stanzas: the inflater parks after each and rebuilds from its history, and
    /// what the reader gets is exactly what was sent, also past 32 KiB of history.
    #[test]
    fn a_parked_inflater_rebuilds_its_window() {
        let mut z = flate2::Compress::new(flate2::Compression::default(), true);
        let mut r = StreamReader::new(hydrant_proto::Limits::default());
        let mut inf = Inflater::default();
        let mut sent = String::new();
        let mut parked = 0;
        let head = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='x' version='1.0'>";
        let stanzas: Vec<String> = std::iter::once(head.to_owned())
            .chain((0..500).map(|i| {
                format!(
                    "<message to='friend@example.org' id='m{i}'><body>status {i}: {}</body></message>",
                    "the same words again and again ".repeat(i % 7 + 1)
                )
            }))
            .collect();
        let mut events = 0;
        for st in &stanzas {
            sent.push_str(st);
            let mut out = Vec::with_capacity(st.len() + 64);
            z.compress_vec(st.as_bytes(), &mut out, flate2::FlushCompress::Sync)
                .unwrap();
            // Delivered in two reads, the second ending on the flush.
            let (a, b) = out.split_at(out.len() / 2);
            for part in [a, b] {
                inf.push(part);
                while inf.step(&mut r).unwrap() {
                    while r.next_event().unwrap().is_some() {
                        events += 1;
                    }
                }
                while r.next_event().unwrap().is_some() {
                    events += 1;
                }
            }
            if inf.is_parked() {
                parked += 1;
            }
        }
        assert_eq!(events, stanzas.len(), "every stanza came out whole");
        assert_eq!(inf.total_out() as usize, sent.len());
        assert_eq!(parked, stanzas.len(), "parked after every flushed stanza");
        assert!(inf.history.len() <= WINDOW);
        assert!(sent.len() > 2 * WINDOW, "the history wrapped");
    }

    #[test]
    fn garbage_is_a_stream_error() {
        let mut r = reader();
        let e = Inflater::default()
            .inflate_all_into(b"\x78\x9c\xff\xff\xff\xff", &mut r)
            .unwrap_err();
        assert_eq!(e.condition, Cond::BadFormat);
    }
}
