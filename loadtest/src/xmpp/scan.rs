//! A small incremental scanner over an XMPP stream: bytes in, top-level events out.
//!
//! This is deliberately not an XML parser. The load generator only needs to know
//! where each top-level element (a child of `<stream:stream>`) begins and ends, and
//! then to look at a few tags inside it (`<proceed`, `<success`, `<mechanism>`,
//! `<jid>`, `<ping xmlns='urn:xmpp:ping'/>`). The scanner keeps the bytes of the
//! element in progress and a cursor, so a read that splits anything (a tag, an
//! attribute value, the stream header, `</stream:stream>`) simply means "need more
//! data", and resuming costs no rescan of what was already seen.
//!
//! Limits: an element larger than [`Scanner::max_element`] is a protocol error, so a
//! misbehaving server cannot make one connection grow without bound.

use std::fmt;

/// One top-level event of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The `<stream:stream ...>` start tag (the whole tag, `<` to `>`).
    StreamOpen(&'a [u8]),
    /// A complete child of the stream (`<features>...</features>`, a stanza...).
    Element(&'a [u8]),
    /// `</stream:stream>`.
    StreamClose,
}

/// The peer sent bytes that cannot be an XMPP stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScanError {
    /// A top-level element grew past the configured limit.
    TooLarge(usize),
    /// Something that is not well-formed at the level the scanner checks.
    Malformed(&'static str),
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScanError::TooLarge(n) => write!(f, "element larger than {n} bytes"),
            ScanError::Malformed(what) => write!(f, "malformed stream: {what}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Incremental scanner state for one stream (reset it on every stream restart).
#[derive(Debug)]
pub struct Scanner {
    buf: Vec<u8>,
    /// Next byte to examine.
    pos: usize,
    /// Start of the top-level element in progress (valid while `depth > 0`).
    elem_start: usize,
    /// Element nesting below the stream element: 0 = between stanzas.
    depth: u32,
    /// Whether the stream header has been seen.
    open: bool,
    /// Bytes to drop from the front before the next scan (the event just returned).
    consumed: usize,
    max_element: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_ELEMENT)
    }
}

/// What kind of markup starts at a `<`.
enum Tag {
    Start {
        empty: bool,
    },
    End,
    /// `<?...?>`, `<!--...-->`, `<!...>`: skipped.
    Other,
}

impl Scanner {
    /// Default bound on one top-level element.
    pub const DEFAULT_MAX_ELEMENT: usize = 1 << 20;

    pub fn new(max_element: usize) -> Self {
        Self {
            buf: Vec::new(),
            pos: 0,
            elem_start: 0,
            depth: 0,
            open: false,
            consumed: 0,
            max_element,
        }
    }

    /// Forget everything: for the stream restart after STARTTLS or SASL success.
    pub fn reset(&mut self) {
        self.buf.clear();
        self.pos = 0;
        self.elem_start = 0;
        self.depth = 0;
        self.open = false;
        self.consumed = 0;
    }

    /// Give back memory held from a large element (for long idle periods).
    pub fn shrink(&mut self) {
        self.compact();
        self.buf.shrink_to_fit();
    }

    /// Bytes buffered and not yet returned as an event.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.consumed
    }

    /// Append bytes read from the socket.
    pub fn feed(&mut self, data: &[u8]) {
        self.compact();
        self.buf.extend_from_slice(data);
    }

    /// Drop what earlier events used, and inter-stanza whitespace already passed.
    fn compact(&mut self) {
        let keep_from = if self.depth > 0 {
            self.elem_start
        } else {
            self.pos.max(self.consumed)
        };
        if keep_from > 0 {
            self.buf.drain(..keep_from);
            self.pos -= keep_from;
            if self.depth > 0 {
                self.elem_start = 0;
            }
        }
        self.consumed = 0;
    }

    /// The next complete event, `Ok(None)` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, ScanError> {
        if self.consumed > 0 {
            self.compact();
        }
        loop {
            // Text: skip to the next '<' (character data never contains a raw '<').
            let Some(lt) = memchr(b'<', &self.buf[self.pos..]) else {
                if self.depth == 0 {
                    // Whitespace keepalives between stanzas: nothing to keep.
                    if self.buf[self.pos..]
                        .iter()
                        .any(|b| !b.is_ascii_whitespace())
                    {
                        return Err(ScanError::Malformed("text outside an element"));
                    }
                    self.pos = self.buf.len();
                    self.consumed = self.pos;
                } else {
                    self.pos = self.buf.len();
                }
                return self.need_more();
            };
            let start = self.pos + lt;
            if self.depth == 0
                && self.buf[self.pos..start]
                    .iter()
                    .any(|b| !b.is_ascii_whitespace())
            {
                return Err(ScanError::Malformed("text outside an element"));
            }
            self.pos = start;
            let Some((tag, end)) = scan_tag(&self.buf, start)? else {
                return self.need_more();
            };
            self.pos = end;
            match tag {
                Tag::Other => {}
                Tag::Start { empty } if !self.open => {
                    if empty {
                        return Err(ScanError::Malformed("empty stream header"));
                    }
                    if local_name(tag_name(&self.buf[start..end])) != b"stream" {
                        return Err(ScanError::Malformed("first element is not a stream"));
                    }
                    self.open = true;
                    self.consumed = end;
                    return Ok(Some(Event::StreamOpen(&self.buf[start..end])));
                }
                Tag::Start { empty } => {
                    if self.depth == 0 {
                        self.elem_start = start;
                        if empty {
                            self.consumed = end;
                            return Ok(Some(Event::Element(&self.buf[start..end])));
                        }
                    }
                    if !empty {
                        self.depth += 1;
                    }
                }
                Tag::End => {
                    if self.depth == 0 {
                        if !self.open {
                            return Err(ScanError::Malformed("end tag before stream header"));
                        }
                        // Only the stream element itself can close at this level.
                        self.open = false;
                        self.consumed = end;
                        return Ok(Some(Event::StreamClose));
                    }
                    self.depth -= 1;
                    if self.depth == 0 {
                        self.consumed = end;
                        return Ok(Some(Event::Element(&self.buf[self.elem_start..end])));
                    }
                }
            }
        }
    }
}

impl Scanner {
    /// `Ok(None)`, unless what is buffered for the current item is over the limit.
    fn need_more(&self) -> Result<Option<Event<'_>>, ScanError> {
        let from = if self.depth > 0 {
            self.elem_start
        } else {
            self.pos
        };
        if self.buf.len() - from > self.max_element {
            Err(ScanError::TooLarge(self.max_element))
        } else {
            Ok(None)
        }
    }
}

/// Scan one markup construct starting at `buf[start] == b'<'`: its kind and the index
/// just past its end, or `None` if it is not complete yet.
fn scan_tag(buf: &[u8], start: usize) -> Result<Option<(Tag, usize)>, ScanError> {
    let rest = &buf[start..];
    let Some(&second) = rest.get(1) else {
        return Ok(None);
    };
    match second {
        b'?' => Ok(find(rest, b"?>").map(|i| (Tag::Other, start + i + 2))),
        b'!' => {
            if rest.len() < 4 {
                return Ok(None);
            }
            if rest.starts_with(b"<!--") {
                Ok(find(&rest[4..], b"-->").map(|i| (Tag::Other, start + 4 + i + 3)))
            } else if rest.len() < 9 && b"<![CDATA[".starts_with(rest) {
                Ok(None)
            } else if rest.starts_with(b"<![CDATA[") {
                // Character data: for the scanner it is text, like anything else.
                Ok(find(&rest[9..], b"]]>").map(|i| (Tag::Other, start + 9 + i + 3)))
            } else {
                Err(ScanError::Malformed("DTD or unknown markup declaration"))
            }
        }
        b'/' => Ok(memchr(b'>', rest).map(|i| (Tag::End, start + i + 1))),
        _ => {
            // A start tag: '>' may appear inside quoted attribute values.
            let mut quote = None;
            for (i, &b) in rest.iter().enumerate().skip(1) {
                match (quote, b) {
                    (None, b'"' | b'\'') => quote = Some(b),
                    (Some(q), _) if b == q => quote = None,
                    (None, b'<') => return Err(ScanError::Malformed("'<' inside a tag")),
                    (None, b'>') => {
                        let empty = rest[i - 1] == b'/';
                        return Ok(Some((Tag::Start { empty }, start + i + 1)));
                    }
                    _ => {}
                }
            }
            Ok(None)
        }
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_name_end(b: u8) -> bool {
    b.is_ascii_whitespace() || b == b'>' || b == b'/'
}

/// The qualified name of a tag given from its `<` (start or end tag).
pub fn tag_name(tag: &[u8]) -> &[u8] {
    let body = tag.strip_prefix(b"</").or_else(|| tag.strip_prefix(b"<"));
    let body = body.unwrap_or(tag);
    let end = body
        .iter()
        .position(|&b| is_name_end(b))
        .unwrap_or(body.len());
    &body[..end]
}

/// `stream:features` → `features`.
pub fn local_name(qname: &[u8]) -> &[u8] {
    match memchr(b':', qname) {
        Some(i) => &qname[i + 1..],
        None => qname,
    }
}

/// The root element's start tag (`<` to `>`) of a complete element.
fn root_tag(elem: &[u8]) -> &[u8] {
    let mut quote = None;
    for (i, &b) in elem.iter().enumerate() {
        match (quote, b) {
            (None, b'"' | b'\'') => quote = Some(b),
            (Some(q), _) if b == q => quote = None,
            (None, b'>') => return &elem[..=i],
            _ => {}
        }
    }
    elem
}

/// Local name of a top-level element's root (`stream:features` → `features`).
pub fn root_name(elem: &[u8]) -> &[u8] {
    local_name(tag_name(elem))
}

/// An attribute of the root start tag of `elem` (or of a lone tag), unescaped.
pub fn attr(elem: &[u8], name: &str) -> Option<String> {
    let tag = root_tag(elem);
    let name = name.as_bytes();
    let mut i = tag_name(tag).len() + 1;
    while i < tag.len() {
        // Skip whitespace, read a name up to '=', then a quoted value.
        while i < tag.len() && tag[i].is_ascii_whitespace() {
            i += 1;
        }
        let n0 = i;
        while i < tag.len() && tag[i] != b'=' && !is_name_end(tag[i]) {
            i += 1;
        }
        let n1 = i;
        while i < tag.len() && (tag[i] == b'=' || tag[i].is_ascii_whitespace()) {
            i += 1;
        }
        let q = *tag.get(i)?;
        if q != b'"' && q != b'\'' {
            return None;
        }
        let v0 = i + 1;
        let v1 = v0 + memchr(q, &tag[v0..])?;
        if &tag[n0..n1] == name {
            return Some(unescape(&tag[v0..v1]));
        }
        i = v1 + 1;
    }
    None
}

/// Iterate over the start (and empty) tags strictly inside `elem`, outermost first,
/// each as `(local name, tag bytes from '<' to '>', index just past the tag)`.
fn inner_start_tags(elem: &[u8]) -> impl Iterator<Item = (&[u8], &[u8], usize)> {
    let mut pos = root_tag(elem).len();
    std::iter::from_fn(move || {
        loop {
            let lt = pos + memchr(b'<', &elem[pos..])?;
            let Ok(Some((tag, end))) = scan_tag(elem, lt) else {
                return None;
            };
            pos = end;
            if let Tag::Start { .. } = tag {
                let raw = &elem[lt..end];
                return Some((local_name(tag_name(raw)), raw, end));
            }
        }
    })
}

/// Whether `elem` contains a descendant element with this local name (and, if given,
/// this `xmlns`).
pub fn has_child(elem: &[u8], local: &str, xmlns: Option<&str>) -> bool {
    inner_start_tags(elem).any(|(name, raw, _)| {
        name == local.as_bytes() && xmlns.is_none_or(|ns| attr(raw, "xmlns").as_deref() == Some(ns))
    })
}

/// The start tag of the first descendant with this local name.
pub fn child_tag<'a>(elem: &'a [u8], local: &str) -> Option<&'a [u8]> {
    inner_start_tags(elem)
        .find(|(name, _, _)| *name == local.as_bytes())
        .map(|(_, raw, _)| raw)
}

/// Text content (up to the next tag) of every descendant with this local name.
pub fn child_texts(elem: &[u8], local: &str) -> Vec<String> {
    inner_start_tags(elem)
        .filter(|(name, raw, _)| *name == local.as_bytes() && !raw.ends_with(b"/>"))
        .map(|(_, _, end)| {
            let len = memchr(b'<', &elem[end..]).unwrap_or(elem.len() - end);
            unescape(&elem[end..end + len]).trim().to_owned()
        })
        .collect()
}

/// Text content of the root element itself (e.g. the base64 of `<challenge>`).
pub fn root_text(elem: &[u8]) -> String {
    let tag = root_tag(elem);
    if tag.ends_with(b"/>") {
        return String::new();
    }
    let rest = &elem[tag.len()..];
    let len = memchr(b'<', rest).unwrap_or(rest.len());
    unescape(&rest[..len]).trim().to_owned()
}

/// The first child element's local name: a stanza or stream error's condition.
pub fn first_child_name(elem: &[u8]) -> Option<String> {
    inner_start_tags(elem)
        .next()
        .map(|(name, _, _)| String::from_utf8_lossy(name).into_owned())
}

/// Replace the five predefined entities and numeric character references.
pub fn unescape(raw: &[u8]) -> String {
    let s = String::from_utf8_lossy(raw);
    if !s.contains('&') {
        return s.into_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = &*s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let ent = &rest[1..semi];
        let ch = match ent {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => ent
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| ent.strip_prefix('#').map(str::parse))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        if let Some(c) = ch {
            out.push(c);
            rest = &rest[semi + 1..];
        } else {
            out.push('&');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Escape text for an XML attribute value or character data.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned copy of an event, to compare runs with different splits.
    #[derive(Debug, PartialEq, Eq)]
    enum Owned {
        Open(String),
        Elem(String),
        Close,
    }

    fn drain(s: &mut Scanner, out: &mut Vec<Owned>) -> Result<(), ScanError> {
        while let Some(ev) = s.next_event()? {
            out.push(match ev {
                Event::StreamOpen(b) => Owned::Open(String::from_utf8(b.to_vec()).unwrap()),
                Event::Element(b) => Owned::Elem(String::from_utf8(b.to_vec()).unwrap()),
                Event::StreamClose => Owned::Close,
            });
        }
        Ok(())
    }

    fn scan_chunks(chunks: &[&[u8]]) -> Result<Vec<Owned>, ScanError> {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c);
            drain(&mut s, &mut out)?;
        }
        Ok(out)
    }

    const TRANSCRIPT: &str = concat!(
        "<?xml version='1.0'?>",
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'",
        " id='a>b' from='example.com' version='1.0'>",
        "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/>",
        "</starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>",
        "<mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms>",
        "</stream:features>",
        " \n ",
        "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        "<!-- a comment with <tags> -->",
        "<iq type='result' id=\"b/1\"><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>",
        "<jid>u&amp;1@example.com/r</jid></bind></iq>",
        "<message><body><![CDATA[<not a tag>]]></body></message>",
        "  ",
        "</stream:stream>",
    );

    fn expected() -> Vec<Owned> {
        vec![
            Owned::Open(
                "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='a>b' from='example.com' version='1.0'>".into(),
            ),
            Owned::Elem(
                "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms></stream:features>".into(),
            ),
            Owned::Elem("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".into()),
            Owned::Elem(
                "<iq type='result' id=\"b/1\"><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u&amp;1@example.com/r</jid></bind></iq>".into(),
            ),
            Owned::Elem("<message><body><![CDATA[<not a tag>]]></body></message>".into()),
            Owned::Close,
        ]
    }

    #[test]
    fn whole_transcript_in_one_read() {
        assert_eq!(scan_chunks(&[TRANSCRIPT.as_bytes()]).unwrap(), expected());
    }

    #[test]
    fn every_single_split_point() {
        let t = TRANSCRIPT.as_bytes();
        for i in 0..=t.len() {
            assert_eq!(
                scan_chunks(&[&t[..i], &t[i..]]).unwrap(),
                expected(),
                "split at {i}"
            );
        }
    }

    #[test]
    fn every_pair_of_split_points() {
        let t = TRANSCRIPT.as_bytes();
        for i in 0..=t.len() {
            for j in i..=t.len() {
                let got = scan_chunks(&[&t[..i], &t[i..j], &t[j..]]).unwrap();
                assert_eq!(got, expected(), "split at {i},{j}");
            }
        }
    }

    #[test]
    fn byte_at_a_time() {
        let chunks: Vec<&[u8]> = TRANSCRIPT.as_bytes().chunks(1).collect();
        assert_eq!(scan_chunks(&chunks).unwrap(), expected());
    }

    #[test]
    fn whitespace_keepalives_are_not_buffered() {
        let mut s = Scanner::default();
        let mut out = Vec::new();
        s.feed(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>");
        drain(&mut s, &mut out).unwrap();
        for _ in 0..1000 {
            s.feed(b" \n");
            drain(&mut s, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn element_size_is_bounded() {
        let mut s = Scanner::new(64);
        s.feed(b"<stream:stream><message><body>");
        assert!(matches!(s.next_event(), Ok(Some(Event::StreamOpen(_)))));
        assert!(matches!(s.next_event(), Ok(None)));
        s.feed(&[b'x'; 100]);
        assert_eq!(s.next_event(), Err(ScanError::TooLarge(64)));
    }

    #[test]
    fn rejects_non_streams_and_dtds() {
        assert!(scan_chunks(&[b"<html>"]).is_err());
        assert!(scan_chunks(&[b"<!DOCTYPE x>"]).is_err());
        assert!(scan_chunks(&[b"<stream:stream>hello"]).is_err());
    }

    #[test]
    fn reset_starts_a_new_stream() {
        let mut s = Scanner::default();
        s.feed(b"<stream:stream><proceed/><stream:fea");
        assert!(matches!(s.next_event(), Ok(Some(Event::StreamOpen(_)))));
        assert!(matches!(s.next_event(), Ok(Some(Event::Element(_)))));
        s.reset();
        s.feed(b"<stream:stream id='2'>");
        assert_eq!(
            s.next_event().unwrap(),
            Some(Event::StreamOpen(b"<stream:stream id='2'>"))
        );
    }

    #[test]
    fn helpers_read_tags_attributes_and_text() {
        let f = b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session></stream:features>";
        assert_eq!(root_name(f), b"features");
        assert_eq!(child_texts(f, "mechanism"), ["SCRAM-SHA-1", "PLAIN"]);
        assert!(has_child(
            f,
            "session",
            Some("urn:ietf:params:xml:ns:xmpp-session")
        ));
        assert!(!has_child(f, "session", Some("urn:other")));
        let session = child_tag(f, "session").unwrap();
        assert_eq!(
            attr(session, "xmlns").unwrap(),
            "urn:ietf:params:xml:ns:xmpp-session"
        );

        let iq = b"<iq from='example.com' type = \"get\" id='p&apos;1'><ping xmlns='urn:xmpp:ping'/></iq>";
        assert_eq!(attr(iq, "type").as_deref(), Some("get"));
        assert_eq!(attr(iq, "id").as_deref(), Some("p'1"));
        assert_eq!(attr(iq, "to"), None);
        assert!(has_child(iq, "ping", Some("urn:xmpp:ping")));

        let ch = b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'> cj1meWtv </challenge>";
        assert_eq!(root_text(ch), "cj1meWtv");
        assert_eq!(root_text(b"<success xmlns='x'/>"), "");
        let fail = b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/><text>no</text></failure>";
        assert_eq!(first_child_name(fail).as_deref(), Some("not-authorized"));
        assert_eq!(unescape(b"a&lt;&#65;&#x42;&bogus;"), "a<AB&bogus;");
        assert_eq!(escape("a'<&"), "a&apos;&lt;&amp;");
    }
}
