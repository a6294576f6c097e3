//! Escaping for serialized XML.
//!
//! Public because the fan-out hot path (DESIGN.md) splices a per-recipient `to` address
//! between pre-serialized buffers and must escape it exactly as [`crate::Element`] would.

/// Appends `s` escaped for use as character data.
///
/// `&` and `<` must be escaped; `>` is escaped too so `]]>` can never appear in text.
/// A literal `\r` would be turned into `\n` by the receiver's end-of-line normalisation
/// (XML 1.0 2.11), so it is written as a character reference to survive the round trip.
pub fn escape_text_into(out: &mut Vec<u8>, s: &str) {
    escape_into(out, s, |b| match b {
        b'&' => Some(&b"&amp;"[..]),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'\r' => Some(b"&#13;"),
        _ => None,
    });
}

/// Appends `s` escaped for use inside a quoted attribute value (either quote style).
///
/// Besides the markup characters, `\t`, `\n` and `\r` are written as character references:
/// literal whitespace in an attribute value is replaced by a space during attribute-value
/// normalisation (XML 1.0 3.3.3), references are not.
pub fn escape_attr_into(out: &mut Vec<u8>, s: &str) {
    escape_into(out, s, |b| match b {
        b'&' => Some(&b"&amp;"[..]),
        b'<' => Some(b"&lt;"),
        b'>' => Some(b"&gt;"),
        b'"' => Some(b"&quot;"),
        b'\'' => Some(b"&apos;"),
        b'\t' => Some(b"&#9;"),
        b'\n' => Some(b"&#10;"),
        b'\r' => Some(b"&#13;"),
        _ => None,
    });
}

/// Copies runs of bytes that need no escaping in one go; every byte that does is ASCII,
/// so splitting there never cuts a UTF-8 sequence.
fn escape_into(out: &mut Vec<u8>, s: &str, esc: impl Fn(u8) -> Option<&'static [u8]>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len());
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if let Some(rep) = esc(b) {
            out.extend_from_slice(&bytes[run..i]);
            out.extend_from_slice(rep);
            run = i + 1;
        }
    }
    out.extend_from_slice(&bytes[run..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_escaping() {
        let mut out = Vec::new();
        escape_text_into(&mut out, "a&b<c>d\"e'f\r\n]]>");
        assert_eq!(out, b"a&amp;b&lt;c&gt;d\"e'f&#13;\n]]&gt;");
    }

    #[test]
    fn attr_escaping() {
        let mut out = Vec::new();
        escape_attr_into(&mut out, "a&b<c>d\"e'f\t\r\n\u{263A}");
        assert_eq!(
            out,
            "a&amp;b&lt;c&gt;d&quot;e&apos;f&#9;&#13;&#10;\u{263A}".as_bytes()
        );
    }
}
