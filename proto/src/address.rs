//! Addresses that read back as themselves.
//!
//! The `jid` crate's stringprep does not refuse code points unassigned in Unicode 3.2, as
//! RFC 3454 section 7 requires of stored strings, and its NFKC (today's Unicode) expands
//! some of them after case folding (table B.2) ran: U+337A SQUARE IU becomes `IU` and
//! U+1F130 SQUARED LATIN CAPITAL LETTER A becomes `A`. So `\u{1F130}lice` normalised to
//! `Alice`, which normalises to `alice`: one address with two spellings, and a username
//! that becomes another user's address once a peer re-reads it. Everything that
//! normalises a name from the wire checks the result is a fixed point and refuses it
//! otherwise. (Resourceprep does not case-fold, so resources are always stable.)

use jid::{Jid, NodePart};

/// Whether `normalised`, the `jid` crate's reading of `input`, reads back as itself.
///
/// ASCII input is always stable (and the common case: no second parse).
pub fn normalises_stably(input: &str, normalised: &str) -> bool {
    input.is_ascii() || Jid::new(normalised).is_ok_and(|again| again.as_str() == normalised)
}

/// `raw` as a JID, or `None` if it is not one or its normalised form does not read back
/// as itself (what every address a request names must pass, as stanza addresses do).
pub fn jid(raw: &str) -> Option<Jid> {
    Jid::new(raw)
        .ok()
        .filter(|j| normalises_stably(raw, j.as_str()))
}

/// A localpart (username) normalised with nodeprep (RFC 6122 appendix A), or `None` if it
/// is not one or its normalised form does not read back as itself.
pub fn nodepart(raw: &str) -> Option<String> {
    let node = NodePart::new(raw).ok()?.as_str().to_owned();
    (raw.is_ascii() || NodePart::new(&node).is_ok_and(|again| again.as_str() == node))
        .then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unstable_names_are_refused() {
        assert_eq!(nodepart("Alice").as_deref(), Some("alice"));
        assert_eq!(nodepart("J\u{fc}liet").as_deref(), Some("j\u{fc}liet"));
        assert_eq!(nodepart("\u{1F130}lice"), None);
        assert_eq!(nodepart("ju\u{337A}liet"), None);
        assert_eq!(jid("\u{1F130}lice@example.com"), None);
        assert_eq!(
            jid("Alice@example.com/r").map(|j| j.to_string()).as_deref(),
            Some("alice@example.com/r")
        );
        assert!(normalises_stably("a@b", "a@b"));
        assert!(!normalises_stably("a@b\u{337A}", "a@bIU"));
        assert!(normalises_stably(
            "a@b/caf\u{e9}\u{337A}",
            "a@b/caf\u{e9}IU"
        ));
    }
}
