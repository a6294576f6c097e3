//! The incremental, sans-IO stream reader: bytes in, [`StreamEvent`]s out.
//!
//! Two layers. A resumable boundary scan walks the buffered bytes once, tracking only
//! what it needs to find where the current *unit* ends (the XML declaration, the stream
//! header, one depth-1 element, or the closing tag): whether it is inside a tag, a quoted
//! value, CDATA or text, and the element depth. It remembers where it stopped, so a
//! stanza that arrives in many small reads is scanned once, not once per read. Only a
//! complete unit is handed to [`crate::parse`] (quick-xml plus XMPP rules), so no text
//! run or tag is ever seen cut in half, and every split of the input yields the same
//! events. The scan also enforces the limits as bytes arrive: a unit is never allowed to
//! grow past `max_stanza_bytes`, whether or not it is ever closed.
//!
//! Errors are sticky: after the first one every call returns it again, and the stream
//! must be closed with [`StreamError::to_bytes`].

use std::sync::Arc;

use crate::element::Element;
use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::parse;

pub use crate::limits::{Limits, StreamHeader};

/// What the reader produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamEvent {
    Open(StreamHeader),
    Stanza(Element),
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Before the stream header; the XML declaration is only allowed as first markup.
    Prolog {
        decl_allowed: bool,
    },
    Open,
    Closed,
}

/// Where the boundary scan is inside the current unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Lex {
    /// Not inside a unit: skipping whitespace between units.
    Between,
    /// Just after `<`.
    Lt,
    /// Inside a start tag or (`end`) an end tag; `quote` is the open quote, or 0.
    Tag { quote: u8, end: bool },
    /// Just after an attribute value's closing quote: XML 1.0 [40]/[44] allow only
    /// whitespace, `/` or `>` next. Anything else is refused here, at once: otherwise
    /// the quotes pair up wrongly from there on and the unit may never end before the
    /// size limit (`name='a's …`).
    AfterValue { end: bool },
    /// Just after `<!`: CDATA, or a comment/DTD we refuse.
    Bang,
    /// Inside CDATA whose content starts at offset `from`.
    Cdata { from: usize },
    /// Inside `<?..?>` (only the XML declaration gets this far).
    Pi,
    /// Character data inside a stanza.
    Text,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnitKind {
    Decl,
    Header,
    Stanza,
    Close,
}

/// A complete unit at the front of the buffer: its kind and length.
type Unit = (UnitKind, usize);

/// Above this capacity an emptied input buffer is freed rather than kept: an idle
/// connection must cost a few KB at most (DESIGN.md, Scale), and most connections are
/// idle between stanzas, so an emptied buffer is always freed. A busy connection pays
/// one allocation per read, which is small next to the read itself.
const KEEP_CAPACITY: usize = 0;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const CDATA: &[u8] = b"[CDATA[";

/// Incremental XMPP stream reader. Feed it bytes as they arrive; pull events until
/// `Ok(None)`.
pub struct StreamReader {
    limits: Limits,
    buf: Vec<u8>,
    /// First byte of `buf` not yet consumed; the current unit starts here.
    start: usize,
    scan: Scan,
    phase: Phase,
    /// What the stanzas of the open stream need from its header.
    open: Option<OpenStream>,
    /// A unit found complete by `feed`, not yet turned into an event.
    ready: Option<Unit>,
    /// An empty `<stream:stream/>` was read: its `Close` is owed.
    pending_close: bool,
    failed: Option<StreamError>,
}

/// What the stanzas of a stream need from its header, kept for the stream's whole life:
/// the namespace bindings in scope and the name the closing tag must repeat. Not the
/// header itself (its attributes are the caller's, handed out once with
/// [`StreamEvent::Open`]): an idle connection holds only this, and every byte of it is
/// multiplied by the number of connections.
struct OpenStream {
    bindings: Box<[(String, Arc<str>)]>,
    qname: Box<str>,
}

impl OpenStream {
    fn of(header: &StreamHeader) -> Self {
        OpenStream {
            bindings: header.bindings.clone().into_boxed_slice(),
            qname: header.qname.as_str().into(),
        }
    }
}

impl std::fmt::Debug for StreamReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("buffered", &self.buffered_len())
            .field("phase", &self.phase)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl StreamReader {
    pub fn new(limits: Limits) -> Self {
        StreamReader {
            limits,
            buf: Vec::new(),
            start: 0,
            scan: Scan::default(),
            phase: Phase::Prolog { decl_allowed: true },
            open: None,
            ready: None,
            pending_close: false,
            failed: None,
        }
    }

    /// Appends bytes read from the peer.
    ///
    /// The current unit is scanned right away, so a peer that keeps a tag open is
    /// refused here (`policy-violation`) as soon as it passes the size limit, even if
    /// the caller is not pulling events. Errors found this way are the same ones
    /// [`StreamReader::next_event`] would return next, in the same order.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.compact();
        self.buf.extend_from_slice(bytes);
        if self.ready.is_none() && !self.pending_close {
            match self.scan() {
                Ok(unit) => self.ready = unit,
                Err(e) => return Err(self.fail(e)),
            }
        }
        Ok(())
    }

    /// The next event, or `Ok(None)` when more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<StreamEvent>, StreamError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.next_inner().map_err(|e| self.fail(e))
    }

    /// Starts over for a fresh `<stream:stream>` (after STARTTLS `<proceed/>` or SASL
    /// `<success/>`, RFC 6120 5.4.3.3 / 6.4.6): namespace context and header are
    /// forgotten. Bytes already buffered are kept, as they belong to the new stream.
    ///
    /// For STARTTLS the caller must check [`StreamReader::buffered_len`] is 0 first:
    /// plaintext that arrived after `<starttls/>` must not be treated as if it had come
    /// over TLS (the command-injection attack of CVE-2011-0411).
    pub fn restart(&mut self) {
        self.phase = Phase::Prolog { decl_allowed: true };
        self.open = None;
        self.scan = Scan::default();
        self.ready = None;
        self.pending_close = false;
    }

    /// Replaces the limits, for the units not yet scanned: c2s reads with smaller limits
    /// until the peer authenticated and switches at the stream restart after SASL success.
    pub fn set_limits(&mut self, limits: Limits) {
        self.limits = limits;
    }

    /// Bytes received but not yet consumed by an event.
    pub fn buffered_len(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Allocated size of the input buffer (for memory accounting and tests).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the current stream's header was read (and not forgotten by a restart).
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    fn fail(&mut self, e: StreamError) -> StreamError {
        self.failed = Some(e.clone());
        self.buf = Vec::new();
        self.start = 0;
        e
    }

    fn next_inner(&mut self) -> Result<Option<StreamEvent>, StreamError> {
        if self.pending_close {
            self.pending_close = false;
            return Ok(Some(StreamEvent::Close));
        }
        loop {
            let (kind, len) = match self.ready.take() {
                Some(unit) => unit,
                None => match self.scan()? {
                    Some(unit) => unit,
                    None => return Ok(None),
                },
            };
            let bytes = &self.buf[self.start..self.start + len];
            let event = match kind {
                UnitKind::Decl => {
                    parse::parse_decl(bytes)?;
                    self.phase = Phase::Prolog {
                        decl_allowed: false,
                    };
                    None
                }
                UnitKind::Header => {
                    let (header, empty) = parse::parse_header(bytes, &self.limits)?;
                    self.open = Some(OpenStream::of(&header));
                    if empty {
                        self.phase = Phase::Closed;
                        self.pending_close = true;
                    } else {
                        self.phase = Phase::Open;
                    }
                    Some(StreamEvent::Open(header))
                }
                UnitKind::Stanza => {
                    let bindings = self.open.as_ref().map_or(&[][..], |h| &h.bindings[..]);
                    Some(StreamEvent::Stanza(parse::parse_stanza(
                        bytes,
                        bindings,
                        &self.limits,
                    )?))
                }
                UnitKind::Close => {
                    let qname = self.open.as_ref().map_or("", |h| &*h.qname);
                    parse::check_close(bytes, qname)?;
                    self.phase = Phase::Closed;
                    Some(StreamEvent::Close)
                }
            };
            self.consume(len);
            if event.is_some() {
                return Ok(event);
            }
        }
    }

    fn consume(&mut self, len: usize) {
        self.start += len;
        self.scan = Scan::default();
        self.release_if_empty();
    }

    fn release_if_empty(&mut self) {
        if self.start == self.buf.len() {
            self.start = 0;
            if self.buf.capacity() > KEEP_CAPACITY {
                self.buf = Vec::new();
            } else {
                self.buf.clear();
            }
        }
    }

    /// Moves the unconsumed tail to the front once it is no larger than the consumed
    /// head, so the copying stays linear in the bytes received.
    fn compact(&mut self) {
        if self.start > 0 && self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }

    /// Advances the boundary scan. `Ok(Some)` when the unit at `start` is complete.
    fn scan(&mut self) -> Result<Option<Unit>, StreamError> {
        if self.scan.lex == Lex::Between && !self.skip_between()? {
            return Ok(None);
        }
        // The scan never looks further than one byte past the limit: what lies beyond
        // cannot change the outcome, and so every split of the input meets the same
        // first error.
        let max = match self.phase {
            Phase::Prolog { .. } => self.limits.max_header_bytes,
            Phase::Open | Phase::Closed => self.limits.max_stanza_bytes,
        };
        let avail = (self.buf.len() - self.start).min(max.saturating_add(1));
        let data = &self.buf[self.start..self.start + avail];
        let prolog = matches!(self.phase, Phase::Prolog { .. });
        match self.scan.scan_unit(data, self.phase, &self.limits)? {
            Some((_, len)) if len > max => Err(too_big(max, prolog)),
            Some(unit) => Ok(Some(unit)),
            None if avail > max => Err(too_big(max, prolog)),
            None => Ok(None),
        }
    }

    /// Skips whitespace between units and recognises how the next unit starts.
    /// Returns false when more bytes are needed.
    fn skip_between(&mut self) -> Result<bool, StreamError> {
        loop {
            let data = &self.buf[self.start..];
            let ws = data
                .iter()
                .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                .count();
            self.start += ws;
            let data = &self.buf[self.start..];
            let Some(&b) = data.first() else {
                self.release_if_empty();
                return Ok(false);
            };
            match (b, self.phase) {
                (b'<', Phase::Closed) => {
                    return Err(parse::not_well_formed("data after the end of the stream"));
                }
                (b'<', _) => {
                    self.scan.lex = Lex::Lt;
                    self.scan.off = 1;
                    return Ok(true);
                }
                (0xEF, Phase::Prolog { decl_allowed: true }) => {
                    if data.len() < BOM.len() && BOM.starts_with(data) {
                        return Ok(false);
                    }
                    if !data.starts_with(BOM) {
                        return Err(parse::not_well_formed("text before the stream header"));
                    }
                    // A UTF-8 byte order mark is allowed before the document (XML 1.0 4.3.3).
                    self.start += BOM.len();
                }
                // UTF-16/32 byte order marks or NUL bytes: the peer is not speaking UTF-8.
                (0x00 | 0xFE | 0xFF, Phase::Prolog { .. }) => {
                    return Err(StreamError::new(Cond::UnsupportedEncoding)
                        .with_text("only UTF-8 is supported (RFC 6120 11.6)"));
                }
                (_, Phase::Prolog { .. }) => {
                    return Err(parse::not_well_formed("text before the stream header"));
                }
                // Character data as a child of <stream:stream> is well-formed XML but
                // not XMPP: only whitespace (keepalives) may appear between stanzas. We
                // treat it like any other garbage on the stream, as not-well-formed.
                (_, Phase::Open) => {
                    return Err(parse::not_well_formed("character data between stanzas"));
                }
                (_, Phase::Closed) => {
                    return Err(parse::not_well_formed("data after the end of the stream"));
                }
            }
        }
    }
}

/// Progress of the boundary scan through the current unit.
#[derive(Clone, Debug)]
struct Scan {
    /// How far past `start` the scan has looked.
    off: usize,
    lex: Lex,
    /// Element depth inside the current stanza.
    depth: usize,
    /// Where the name of the tag being scanned starts (offset from `start`).
    tag_name: usize,
    /// The qualified names of the open elements of the stanza, as (offset, length) in the
    /// unit. An end tag is checked against the innermost one as soon as it is complete:
    /// a mismatch (`<message><body>x</message>`) is `not-well-formed` at once, not a
    /// stanza that never ends because the depth count never returns to zero. At most
    /// `max_depth` entries; freed with the scan when the unit is consumed.
    open: Vec<(u32, u32)>,
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            off: 0,
            lex: Lex::Between,
            depth: 0,
            tag_name: 0,
            open: Vec::new(),
        }
    }
}

/// The qualified name at the front of a tag: up to whitespace, `/` or `>`.
fn tag_name_len(tag: &[u8]) -> usize {
    tag.iter()
        .position(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>'))
        .unwrap_or(tag.len())
}

impl Scan {
    /// Scans the current unit within `data` from `self.off`. `Ok(Some)` when it ends.
    fn scan_unit(
        &mut self,
        data: &[u8],
        phase: Phase,
        limits: &Limits,
    ) -> Result<Option<Unit>, StreamError> {
        let prolog = matches!(phase, Phase::Prolog { .. });
        while self.off < data.len() {
            let rest = &data[self.off..];
            match self.lex {
                Lex::Between => unreachable!("skip_between runs first"),
                Lex::Lt => match rest[0] {
                    b'/' if prolog => {
                        return Err(parse::not_well_formed("end tag before the stream header"));
                    }
                    b'/' => {
                        self.lex = Lex::Tag {
                            quote: 0,
                            end: true,
                        };
                        self.off += 1;
                        self.tag_name = self.off;
                    }
                    b'?' if phase == (Phase::Prolog { decl_allowed: true }) => {
                        self.lex = Lex::Pi;
                        self.off += 1;
                    }
                    b'?' => {
                        return Err(parse::restricted("processing instruction (RFC 6120 11.1)"));
                    }
                    b'!' => {
                        self.lex = Lex::Bang;
                        self.off += 1;
                    }
                    _ => {
                        if !prolog {
                            self.depth += 1;
                            if self.depth > limits.max_depth {
                                return Err(StreamError::new(Cond::PolicyViolation).with_text(
                                    format!("nesting deeper than {}", limits.max_depth),
                                ));
                            }
                        }
                        self.lex = Lex::Tag {
                            quote: 0,
                            end: false,
                        };
                        self.tag_name = self.off;
                    }
                },
                Lex::Tag { quote: 0, end } => {
                    let Some(p) = rest.iter().position(|&b| matches!(b, b'>' | b'"' | b'\''))
                    else {
                        self.off = data.len();
                        break;
                    };
                    let pos = self.off + p;
                    self.off = pos + 1;
                    if data[pos] != b'>' {
                        self.lex = Lex::Tag {
                            quote: data[pos],
                            end,
                        };
                        continue;
                    }
                    if prolog {
                        return Ok(Some((UnitKind::Header, self.off)));
                    }
                    let name = &data[self.tag_name..pos];
                    let name = &name[..tag_name_len(name)];
                    if end {
                        if self.depth == 0 {
                            return Ok(Some((UnitKind::Close, self.off)));
                        }
                        self.depth -= 1;
                        let (at, len) = self.open.pop().unwrap_or_default();
                        let open = &data[at as usize..(at + len) as usize];
                        if name != open {
                            return Err(parse::not_well_formed(format!(
                                "end tag </{}> does not match <{}>",
                                String::from_utf8_lossy(name),
                                String::from_utf8_lossy(open)
                            )));
                        }
                    } else if data[pos - 1] == b'/' {
                        self.depth -= 1;
                    } else {
                        // Offsets fit: a unit is at most `max_stanza_bytes`, checked
                        // against usize but far below 4 GiB in any sane configuration;
                        // a larger one would only make the comparison fail safe.
                        self.open.push((self.tag_name as u32, name.len() as u32));
                    }
                    if self.depth == 0 {
                        return Ok(Some((UnitKind::Stanza, self.off)));
                    }
                    self.lex = Lex::Text;
                }
                Lex::Tag { quote, end } => match rest.iter().position(|&b| b == quote) {
                    Some(p) => {
                        self.off += p + 1;
                        self.lex = Lex::AfterValue { end };
                    }
                    None => self.off = data.len(),
                },
                Lex::AfterValue { end } => {
                    if !matches!(rest[0], b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>') {
                        return Err(parse::not_well_formed(
                            "no whitespace after an attribute value",
                        ));
                    }
                    self.lex = Lex::Tag { quote: 0, end };
                }
                Lex::Bang => {
                    let head = &rest[..rest.len().min(CDATA.len())];
                    if !CDATA.starts_with(head) {
                        return Err(parse::restricted("comment or DTD (RFC 6120 11.1)"));
                    }
                    if head.len() < CDATA.len() {
                        break;
                    }
                    if self.depth == 0 {
                        return Err(parse::not_well_formed(if prolog {
                            "CDATA before the stream header"
                        } else {
                            "character data between stanzas"
                        }));
                    }
                    self.off += CDATA.len();
                    self.lex = Lex::Cdata { from: self.off };
                }
                Lex::Cdata { from } => match rest.iter().position(|&b| b == b'>') {
                    Some(p) => {
                        let pos = self.off + p;
                        self.off = pos + 1;
                        if pos >= from + 2 && &data[pos - 2..pos] == b"]]" {
                            self.lex = Lex::Text;
                        }
                    }
                    None => self.off = data.len(),
                },
                Lex::Pi => match rest.iter().position(|&b| b == b'>') {
                    Some(p) => {
                        let pos = self.off + p;
                        self.off = pos + 1;
                        // `pos >= 3`: the `?` of `<?` does not also close it.
                        if pos >= 3 && data[pos - 1] == b'?' {
                            return Ok(Some((UnitKind::Decl, self.off)));
                        }
                    }
                    None => self.off = data.len(),
                },
                Lex::Text => match rest.iter().position(|&b| b == b'<') {
                    Some(p) => {
                        self.off += p + 1;
                        self.lex = Lex::Lt;
                    }
                    None => self.off = data.len(),
                },
            }
        }
        Ok(None)
    }
}

/// RFC 6120 4.9.3.14 names this case: "the entity has sent a stanza ... that exceeds
/// a size limit". The text must not depend on whether the unit was seen complete, or
/// the error would depend on how the input was split.
fn too_big(max: usize, header: bool) -> StreamError {
    let what = if header { "stream header" } else { "stanza" };
    StreamError::new(Cond::PolicyViolation).with_text(format!("{what} larger than {max} bytes"))
}
