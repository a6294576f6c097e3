//! Parsing of one complete unit of the stream (XML declaration, stream header, stanza) into
//! our types.
//!
//! [`crate::reader`] finds unit boundaries and only hands over complete units, so nothing
//! here ever sees a tag or a text run cut by a read boundary. quick-xml tokenizes; this
//! module adds what XMPP needs on top: namespace resolution against the stream header's
//! bindings, RFC 6120 11.1 restrictions, XML character and name checks, attribute-value
//! normalisation, and the attribute-count limit.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

use crate::element::Element;
use crate::error::{StreamError, StreamErrorCondition as Cond};
use crate::limits::{Limits, StreamHeader};
use crate::ns;

pub(crate) fn not_well_formed(text: impl Into<String>) -> StreamError {
    StreamError::new(Cond::NotWellFormed).with_text(text)
}

pub(crate) fn restricted(text: impl Into<String>) -> StreamError {
    StreamError::new(Cond::RestrictedXml).with_text(text)
}

fn xml_error(e: &quick_xml::Error) -> StreamError {
    not_well_formed(e.to_string())
}

/// RFC 6120 4.9.3.22: `unsupported-encoding` also covers "improperly encoded the stream
/// (e.g., by violating the rules of the UTF-8 encoding)", which is more precise than
/// `not-well-formed` for invalid UTF-8.
fn utf8(bytes: &[u8]) -> Result<&str, StreamError> {
    std::str::from_utf8(bytes).map_err(|e| {
        StreamError::new(Cond::UnsupportedEncoding).with_text(format!("invalid UTF-8: {e}"))
    })
}

/// Rejects characters XML 1.0 2.2 does not allow anywhere in a document: C0 controls
/// other than tab/LF/CR, and U+FFFE/U+FFFF (surrogates are already excluded by UTF-8
/// validation). Forwarding them would break every conforming parser downstream.
fn check_chars(bytes: &[u8]) -> Result<(), StreamError> {
    for (i, &b) in bytes.iter().enumerate() {
        let bad = (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r'))
            || (b == 0xEF
                && bytes.get(i + 1) == Some(&0xBF)
                && matches!(bytes.get(i + 2), Some(0xBE | 0xBF)));
        if bad {
            return Err(not_well_formed("character not allowed in XML"));
        }
    }
    Ok(())
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn is_name_start(c: char) -> bool {
    matches!(c,
        'A'..='Z' | '_' | 'a'..='z' | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}'
        | '\u{F8}'..='\u{2FF}' | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}'
        | '\u{200C}'..='\u{200D}' | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}'
        | '\u{3001}'..='\u{D7FF}' | '\u{F900}'..='\u{FDCF}' | '\u{FDF0}'..='\u{FFFD}'
        | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start(c)
        || matches!(c, '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// A name without colon (Namespaces in XML 1.0, NCName).
fn is_ncname(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(is_name_start) && chars.all(is_name_char)
}

/// Splits a qualified name into (prefix, local); the prefix is "" when absent.
fn split_qname(qname: &str) -> Result<(&str, &str), StreamError> {
    let (prefix, local) = match qname.split_once(':') {
        Some((p, l)) => (p, l),
        None => ("", qname),
    };
    let has_prefix = qname.contains(':');
    if (has_prefix && !is_ncname(prefix)) || !is_ncname(local) {
        return Err(not_well_formed(format!("invalid name '{qname}'")));
    }
    Ok((prefix, local))
}

/// Resolves `&name;` / `&#..;` (the text between `&` and `;`).
///
/// RFC 6120 11.1 forbids entity references other than the five predefined ones; a DTD
/// is forbidden too, so no other entity can have been declared: a well-formed `&name;`
/// is `restricted-xml`, anything that is not even a reference is `not-well-formed`.
fn resolve_reference(name: &str, out: &mut String) -> Result<(), StreamError> {
    if let Some(num) = name.strip_prefix('#') {
        let (digits, radix) = match num.strip_prefix('x') {
            Some(hex) => (hex, 16),
            None => (num, 10),
        };
        let valid_digits =
            !digits.is_empty() && digits.chars().all(|c| c.is_digit(radix)) && digits.len() <= 8;
        let c = valid_digits
            .then(|| u32::from_str_radix(digits, radix).ok())
            .flatten()
            .and_then(char::from_u32)
            .filter(|&c| is_xml_char(c))
            .ok_or_else(|| not_well_formed(format!("invalid character reference &{name};")))?;
        out.push(c);
        return Ok(());
    }
    out.push(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ if is_ncname(name) => {
            return Err(restricted(format!(
                "entity reference &{name}; (RFC 6120 11.1)"
            )));
        }
        _ => return Err(not_well_formed(format!("invalid reference &{name};"))),
    });
    Ok(())
}

/// Unescapes an attribute value and applies attribute-value normalisation (XML 1.0
/// 3.3.3 for CDATA attributes): literal tab, CR, LF and CR LF each become one space,
/// while character references to them survive (the writer relies on that).
fn attr_value(raw: &[u8]) -> Result<String, StreamError> {
    let s = utf8(raw)?;
    let bytes = s.as_bytes();
    if !bytes
        .iter()
        .any(|b| matches!(b, b'&' | b'<' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'<' => return Err(not_well_formed("'<' in attribute value")),
            b'&' => {
                out.push_str(&s[run..i]);
                let end = s[i..]
                    .find(';')
                    .ok_or_else(|| not_well_formed("unterminated reference in attribute"))?;
                resolve_reference(&s[i + 1..i + end], &mut out)?;
                i += end + 1;
                run = i;
                continue;
            }
            b'\t' | b'\n' | b'\r' => {
                out.push_str(&s[run..i]);
                out.push(' ');
                if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                run = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&s[run..]);
    Ok(out)
}

static NO_NAMESPACE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
static XML_NAMESPACE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(ns::XML));

/// In-scope namespace bindings: the stream header's (borrowed, never copied per stanza)
/// under a flat stack of the stanza's own (prefix, uri), "" being the default namespace,
/// with one mark per open element. URIs are shared `Arc<str>`s: an element inherits its
/// namespace by reference count, not by copy.
struct Scope<'h> {
    base: &'h [(String, Arc<str>)],
    bindings: Vec<(String, Arc<str>)>,
    marks: Vec<usize>,
    /// The empty namespace, shared by every element in no namespace.
    none: Arc<str>,
    xml: Arc<str>,
}

impl<'h> Scope<'h> {
    fn new(base: &'h [(String, Arc<str>)]) -> Self {
        Scope {
            base,
            bindings: Vec::new(),
            marks: Vec::new(),
            // Shared process-wide: two allocations per stanza otherwise.
            none: NO_NAMESPACE.clone(),
            xml: XML_NAMESPACE.clone(),
        }
    }

    fn lookup(&self, prefix: &str) -> Option<&Arc<str>> {
        if prefix == "xml" {
            return Some(&self.xml);
        }
        let found = self.bindings.iter().rev().find(|(p, _)| p == prefix);
        let found = found.or_else(|| self.base.iter().rev().find(|(p, _)| p == prefix));
        match found {
            Some((_, uri)) => Some(uri),
            // The default namespace is "no namespace" until declared.
            None if prefix.is_empty() => Some(&self.none),
            None => None,
        }
    }

    fn pop(&mut self) {
        if let Some(mark) = self.marks.pop() {
            self.bindings.truncate(mark);
        }
    }
}

/// A start tag with namespaces resolved.
struct Start {
    prefix: String,
    local: String,
    /// `None`: the element's prefix is not bound.
    ns: Option<Arc<str>>,
    /// Attributes as kept on an [`Element`] (namespace declarations dropped, except those
    /// a prefixed attribute needs).
    attrs: Vec<(String, String)>,
    /// Every attribute as written, declarations included (only filled for the header).
    raw: Vec<(String, String)>,
}

/// Reads a start tag and pushes its namespace declarations onto `scope` (the caller pops
/// them when the element ends).
fn read_start(
    e: &BytesStart<'_>,
    scope: &mut Scope<'_>,
    limits: &Limits,
    keep_raw: bool,
    copy_budget: &mut usize,
) -> Result<Start, StreamError> {
    let qname = utf8(e.name().into_inner())?;
    let (prefix, local) = split_qname(qname)?;
    let mark = scope.bindings.len();
    scope.marks.push(mark);
    let mut plain: Vec<(&str, String)> = Vec::new();
    let mut raw = Vec::new();
    let mut count = 0;
    for attr in e.attributes() {
        let attr = attr.map_err(|err| not_well_formed(err.to_string()))?;
        count += 1;
        if count > limits.max_attrs {
            return Err(StreamError::new(Cond::PolicyViolation)
                .with_text(format!("more than {} attributes", limits.max_attrs)));
        }
        let key = utf8(attr.key.into_inner())?;
        let is_decl = key == "xmlns" || key.starts_with("xmlns:");
        let (cap, what) = if is_decl {
            (limits.max_ns_bytes, "namespace URI")
        } else {
            (limits.max_attr_bytes, "attribute value")
        };
        if attr.value.len() > cap {
            return Err(StreamError::new(Cond::PolicyViolation)
                .with_text(format!("{what} longer than {cap} bytes")));
        }
        let value = attr_value(&attr.value)?;
        if keep_raw {
            raw.push((key.to_owned(), value.clone()));
        }
        if key == "xmlns" {
            scope.bindings.push((String::new(), Arc::from(value)));
        } else if let Some(p) = key.strip_prefix("xmlns:") {
            // Namespaces in XML 1.0 section 3 / errata NE05: `xmlns` cannot be declared,
            // `xml` only to its own URI, and prefixes cannot be undeclared in 1.0.
            let reserved_ok = (p == "xml") == (value == ns::XML) && p != "xmlns";
            if !is_ncname(p) || value.is_empty() || !reserved_ok {
                return Err(not_well_formed(format!(
                    "invalid namespace declaration {key}"
                )));
            }
            scope.bindings.push((p.to_owned(), Arc::from(value)));
        } else {
            split_qname(key)?;
            plain.push((key, value));
        }
    }
    let ns = scope.lookup(prefix).cloned();
    let mut attrs: Vec<(String, String)> = Vec::with_capacity(plain.len());
    let mut qualified: Vec<(&str, &str)> = Vec::new();
    for (key, value) in plain {
        if let Some((p, l)) = key.split_once(':')
            && p != "xml"
        {
            let uri = scope
                .lookup(p)
                .ok_or_else(|| not_well_formed(format!("undeclared prefix in attribute {key}")))?;
            // Namespaces in XML 1.0 6.3: no two attributes with the same expanded name.
            if qualified.contains(&(&**uri, l)) {
                return Err(not_well_formed(format!("duplicate attribute {{{uri}}}{l}")));
            }
            qualified.push((uri, l));
            let decl = format!("xmlns:{p}");
            if !attrs.iter().any(|(k, _)| *k == decl) {
                // The one place a URI is copied rather than shared: the declaration a
                // prefixed attribute needs travels with its element. Real stanzas
                // almost never carry prefixed attributes (xml:lang is not one), so the
                // copies are charged against the stanza's own length on the wire
                // (`copy_budget`): a declaration reused by thousands of children cannot
                // multiply its length, and a small stanza cannot copy more than it is
                // long (the fuzz target `parse_memory` found a 3 KB stanza that copied
                // 80 times its size when the budget was `max_stanza_bytes`).
                *copy_budget = copy_budget.checked_sub(uri.len()).ok_or_else(|| {
                    StreamError::new(Cond::PolicyViolation)
                        .with_text("too many namespace-qualified attributes")
                })?;
                attrs.push((decl, uri.to_string()));
            }
        }
        attrs.push((key.to_owned(), value));
    }
    Ok(Start {
        prefix: prefix.to_owned(),
        local: local.to_owned(),
        ns,
        attrs,
        raw,
    })
}

fn open_element(
    e: &BytesStart<'_>,
    scope: &mut Scope<'_>,
    limits: &Limits,
    copy_budget: &mut usize,
) -> Result<Element, StreamError> {
    let start = read_start(e, scope, limits, false, copy_budget)?;
    let ns = start.ns.ok_or_else(|| {
        not_well_formed(format!("undeclared namespace prefix '{}'", start.prefix))
    })?;
    let mut el = Element::new(start.local, ns);
    el.set_attrs(start.attrs);
    Ok(el)
}

/// Parses one complete depth-1 element of the stream. `bindings` are the namespace
/// declarations of the stream header, which are in scope for every stanza.
pub(crate) fn parse_stanza(
    bytes: &[u8],
    bindings: &[(String, Arc<str>)],
    limits: &Limits,
) -> Result<Element, StreamError> {
    let text = utf8(bytes)?;
    check_chars(bytes)?;
    let mut reader = Reader::from_str(text);
    let mut scope = Scope::new(bindings);
    let mut stack: Vec<Element> = Vec::new();
    let mut copy_budget = bytes.len();
    loop {
        let done = match reader.read_event().map_err(|e| xml_error(&e))? {
            Event::Start(e) => {
                if stack.len() >= limits.max_depth {
                    return Err(StreamError::new(Cond::PolicyViolation)
                        .with_text(format!("nesting deeper than {}", limits.max_depth)));
                }
                stack.push(open_element(&e, &mut scope, limits, &mut copy_budget)?);
                None
            }
            Event::Empty(e) => {
                let el = open_element(&e, &mut scope, limits, &mut copy_budget)?;
                scope.pop();
                attach(&mut stack, el)
            }
            Event::End(_) => {
                scope.pop();
                let mut el = stack
                    .pop()
                    .ok_or_else(|| not_well_formed("unexpected end tag"))?;
                el.shrink();
                attach(&mut stack, el)
            }
            Event::Text(t) => {
                let content = t
                    .xml10_content()
                    .map_err(|e| not_well_formed(e.to_string()))?;
                top(&mut stack)?.append_text(content);
                None
            }
            Event::GeneralRef(r) => {
                let mut s = String::new();
                resolve_reference(&ref_name(&r)?, &mut s)?;
                top(&mut stack)?.append_text(s);
                None
            }
            Event::CData(c) => {
                let content = c
                    .xml10_content()
                    .map_err(|e| not_well_formed(e.to_string()))?;
                top(&mut stack)?.append_text(content);
                None
            }
            Event::Comment(_) => return Err(restricted("comment (RFC 6120 11.1)")),
            Event::PI(_) | Event::Decl(_) => {
                return Err(restricted("processing instruction (RFC 6120 11.1)"));
            }
            Event::DocType(_) => return Err(restricted("DTD (RFC 6120 11.1)")),
            Event::Eof => return Err(not_well_formed("unclosed element")),
        };
        if let Some(root) = done {
            // The unit was cut where the boundary scan saw the root close; quick-xml must
            // agree, or the markup was malformed in a way the scan could not see.
            return match reader.read_event() {
                Ok(Event::Eof) => Ok(root),
                Ok(_) => Err(not_well_formed("content after element end")),
                Err(e) => Err(xml_error(&e)),
            };
        }
    }
}

fn ref_name<'a>(r: &'a BytesRef<'_>) -> Result<Cow<'a, str>, StreamError> {
    r.decode().map_err(|e| not_well_formed(e.to_string()))
}

fn top(stack: &mut [Element]) -> Result<&mut Element, StreamError> {
    stack
        .last_mut()
        .ok_or_else(|| not_well_formed("character data outside an element"))
}

/// Attaches a finished element to its parent; returns it when it was the root.
fn attach(stack: &mut [Element], el: Element) -> Option<Element> {
    match stack.last_mut() {
        Some(parent) => {
            parent.append_child(el);
            None
        }
        None => Some(el),
    }
}

/// Checks the XML declaration (`<?xml version='1.0' encoding='UTF-8'?>`).
///
/// RFC 6120 11.6: all XMPP data is UTF-8; an encoding declaration naming anything else is
/// answered with `unsupported-encoding` (4.9.3.22).
pub(crate) fn parse_decl(bytes: &[u8]) -> Result<(), StreamError> {
    let text = utf8(bytes)?;
    check_chars(bytes)?;
    let is_decl = text
        .strip_prefix("<?xml")
        .is_some_and(|rest| rest.starts_with([' ', '\t', '\r', '\n']));
    if !is_decl {
        return Err(restricted("processing instruction (RFC 6120 11.1)"));
    }
    let mut reader = Reader::from_str(text);
    let Event::Decl(decl) = reader.read_event().map_err(|e| xml_error(&e))? else {
        return Err(not_well_formed("malformed XML declaration"));
    };
    let version = decl.version().map_err(|e| xml_error(&e))?;
    if !version.starts_with(b"1.") {
        return Err(not_well_formed("unsupported XML version"));
    }
    if let Some(enc) = decl.encoding() {
        let enc = enc.map_err(|e| not_well_formed(e.to_string()))?;
        if !enc.eq_ignore_ascii_case(b"UTF-8") {
            return Err(StreamError::new(Cond::UnsupportedEncoding)
                .with_text("only UTF-8 is supported (RFC 6120 11.6)"));
        }
    }
    Ok(())
}

/// Parses the stream header start tag. Returns the header and whether the tag was
/// self-closing (an empty stream).
pub(crate) fn parse_header(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(StreamHeader, bool), StreamError> {
    let text = utf8(bytes)?;
    check_chars(bytes)?;
    let mut reader = Reader::from_str(text);
    let (e, empty) = match reader.read_event().map_err(|e| xml_error(&e))? {
        Event::Start(e) => (e, false),
        Event::Empty(e) => (e, true),
        _ => return Err(not_well_formed("expected the stream header")),
    };
    let mut scope = Scope::new(&[]);
    let mut copy_budget = bytes.len();
    let start = read_start(&e, &mut scope, limits, true, &mut copy_budget)?;
    let bad_prefix = |t: &str| StreamError::new(Cond::BadNamespacePrefix).with_text(t);
    let invalid_ns = |t: &str| StreamError::new(Cond::InvalidNamespace).with_text(t);
    // RFC 6120 4.9.3.2 example: `<stream:stream xmlns='jabber:client'>` without an
    // `xmlns:stream` declaration is answered with <bad-namespace-prefix/>.
    let Some(element_ns) = start.ns else {
        return Err(bad_prefix("stream namespace prefix not declared"));
    };
    // RFC 6120 4.8.1 / 4.9.3.10: the root must be <stream/> in the stream namespace.
    if &*element_ns != ns::STREAM || start.local != "stream" {
        return Err(invalid_ns(
            "the root element must be stream in the stream namespace",
        ));
    }
    // RFC 6120 4.8.5: the stream namespace needs a prefix (the content namespace is the
    // default one), and an implementation MAY accept only the prefix "stream"; we do, as
    // every deployed client and server uses it and our own replies assume it.
    if start.prefix != "stream" {
        return Err(bad_prefix("the stream namespace prefix must be 'stream'"));
    }
    let default_ns = scope
        .lookup("")
        .map(ToString::to_string)
        .unwrap_or_default();
    // RFC 6120 4.8.2: the content namespace MUST be other than the stream namespace.
    if default_ns == ns::STREAM {
        return Err(invalid_ns("content namespace equals the stream namespace"));
    }
    let header = StreamHeader {
        attrs: start.raw,
        ns: element_ns.to_string(),
        default_ns,
        bindings: scope.bindings,
        qname: format!("{}:{}", start.prefix, start.local),
    };
    Ok((header, empty))
}

/// Checks an end tag `</qname>` (the whole unit) against the stream header's name.
pub(crate) fn check_close(bytes: &[u8], qname: &str) -> Result<(), StreamError> {
    let inner = bytes
        .strip_prefix(b"</")
        .and_then(|b| b.strip_suffix(b">"))
        .unwrap_or_default();
    let name = utf8(inner)?.trim_end_matches([' ', '\t', '\r', '\n']);
    if name == qname {
        Ok(())
    } else {
        Err(not_well_formed(format!(
            "end tag </{name}> does not close <{qname}>"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_normalisation() {
        assert_eq!(attr_value(b"a\tb\r\nc\rd\ne").unwrap(), "a b c d e");
        assert_eq!(
            attr_value(b"&#9;&#10;&#13;&amp;&#x263A;").unwrap(),
            "\t\n\r&\u{263A}"
        );
        assert_eq!(
            attr_value(b"&foo;").unwrap_err().condition,
            Cond::RestrictedXml
        );
        for bad in [
            &b"&#0;"[..],
            b"&#xD800;",
            b"&#x110000;",
            b"& x",
            b"&#xZ;",
            b"&#+5;",
            b"a<b",
        ] {
            assert_eq!(
                attr_value(bad).unwrap_err().condition,
                Cond::NotWellFormed,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names() {
        assert!(split_qname("a").is_ok());
        assert!(split_qname("p:a-b.c").is_ok());
        assert!(split_qname("\u{263A}").is_err());
        for bad in ["", "1a", "a:", ":a", "a:b:c", "-a", "a b"] {
            assert!(split_qname(bad).is_err(), "{bad}");
        }
    }
}
