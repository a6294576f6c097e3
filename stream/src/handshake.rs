//! The XEP-0114 component handshake, sans-IO: after the stream headers the component sends
//! `<handshake>` with the lowercase hex SHA-1 of the stream id (from our header)
//! concatenated with the shared secret (XEP-0114 section 3); we answer an empty
//! `<handshake/>` or end the stream with `<not-authorized/>`.

use sha1::{Digest, Sha1};

/// The handshake value a component with `secret` must send on the stream with this id
/// (ours: [`StreamId::as_str`](crate::StreamId::as_str)).
pub fn expected(stream_id: &str, secret: &str) -> [u8; 20] {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().into()
}

/// Checks the text of the component's `<handshake/>`. The comparison takes the same time
/// wherever the first differing byte is, so timing does not reveal a prefix of the
/// answer. Hex digits are accepted in either case (XEP-0114 says lowercase; being lenient
/// costs nothing).
pub fn verify(stream_id: &str, secret: &str, text: &str) -> bool {
    let Some(got) = decode_hex20(text.trim()) else {
        return false;
    };
    let want = expected(stream_id, secret);
    got.iter()
        .zip(want.iter())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

/// The lowercase hex form, for a component-side implementation and for tests.
pub fn to_hex(digest: &[u8; 20]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(40);
    for b in digest {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn decode_hex20(s: &str) -> Option<[u8; 20]> {
    let s = s.as_bytes();
    if s.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, pair) in s.chunks_exact(2).enumerate() {
        out[i] = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_xep_0114_example_verifies() {
        // The XEP-0114 examples' stream id, with a secret of our own.
        let id = "3BF96D32";
        let want = expected(id, "secret");
        let hex = to_hex(&want);
        assert_eq!(hex, sha1_hex(b"3BF96D32secret"));
        assert!(verify(id, "secret", &hex));
        assert!(verify(id, "secret", &hex.to_uppercase()));
        assert!(verify(id, "secret", &format!(" {hex}\n")));
    }

    #[test]
    fn a_wrong_secret_or_garbage_fails() {
        let id = crate::StreamId::random();
        let id = id.as_str();
        let hex = to_hex(&expected(id, "secret"));
        assert!(!verify(id, "other", &hex));
        assert!(!verify(crate::StreamId::random().as_str(), "secret", &hex));
        assert!(!verify(id, "secret", &hex[..38]));
        assert!(!verify(id, "secret", &format!("{}zz", &hex[..38])));
        assert!(!verify(id, "secret", ""));
    }

    fn sha1_hex(input: &[u8]) -> String {
        to_hex(&Sha1::digest(input).into())
    }
}
