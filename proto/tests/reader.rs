//! Stream reader: split-independence, rejections with their exact conditions, limits,
//! restart and idle memory.

use hydrant_proto::{
    Element, Limits, StreamError, StreamErrorCondition as Cond, StreamEvent, StreamReader, ns,
};
use proptest::prelude::*;
use std::fmt::Write as _;

/// A realistic c2s transcript: XML declaration, header, stanzas with nested payloads,
/// escapes, prefixed children and attributes, CDATA, keepalives, close.
const TRANSCRIPT: &str = concat!(
    "<?xml version='1.0' encoding='UTF-8'?>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' ",
    "to='example.com' version='1.0' xml:lang='en'>",
    "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>",
    "<resource>balcony</resource></bind></iq>\n",
    "  \r\n\t ",
    "<message to='romeo@example.net' id='m&amp;1' type='chat' xml:lang='en'>",
    "<body>Wherefore art thou, &lt;Romeo&gt;? &#x263A; &#9731; caf\u{e9}</body>",
    "<thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>",
    "<x:data xmlns:x='urn:example:x' x:attr='v&apos;1' plain=\"a&quot;b\">",
    "<x:inner>one<![CDATA[ <two> & ]]>three</x:inner></x:data>",
    "</message>",
    " ",
    "<presence><show>away</show><status>multi\nline</status><priority>5</priority></presence>",
    "<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
    "\n\n",
    "</stream:stream>"
);

type Outcome = (Vec<StreamEvent>, Option<StreamError>);

/// Feeds `chunks` in order, pulling all events after each; stops at the first error.
fn run_chunks<'a>(limits: Limits, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut r = StreamReader::new(limits);
    let mut events = Vec::new();
    for chunk in chunks {
        if let Err(e) = r.feed(chunk) {
            return (events, Some(e));
        }
        loop {
            match r.next_event() {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, None)
}

fn run(input: &[u8]) -> Outcome {
    run_chunks(Limits::default(), [input])
}

fn events(input: &str) -> Vec<StreamEvent> {
    let (events, err) = run(input.as_bytes());
    assert_eq!(err, None, "unexpected error for {input}");
    events
}

fn error_of(input: &[u8]) -> Cond {
    let (_, err) = run(input);
    err.unwrap_or_else(|| panic!("no error for {:?}", String::from_utf8_lossy(input)))
        .condition
}

fn stanza(ev: &StreamEvent) -> &Element {
    match ev {
        StreamEvent::Stanza(el) => el,
        other => panic!("expected a stanza, got {other:?}"),
    }
}

const HEADER: &str = "<stream:stream xmlns='jabber:client' \
                      xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

fn with_header(body: &str) -> Vec<u8> {
    format!("{HEADER}{body}").into_bytes()
}

#[test]
fn transcript_events() {
    let evs = events(TRANSCRIPT);
    assert_eq!(evs.len(), 6, "{evs:#?}");
    let StreamEvent::Open(h) = &evs[0] else {
        panic!("first event must be Open")
    };
    assert_eq!(h.to(), Some("example.com"));
    assert_eq!(h.from(), None);
    assert_eq!(h.version(), Some("1.0"));
    assert_eq!(h.lang(), Some("en"));
    assert_eq!(h.default_ns(), ns::CLIENT);
    assert_eq!(h.ns(), ns::STREAM);

    let iq = stanza(&evs[1]);
    assert!(
        iq.is("iq", ns::CLIENT),
        "stanzas inherit the content namespace"
    );
    let bind = iq.get_child("bind", ns::BIND).unwrap();
    assert_eq!(
        bind.get_child("resource", ns::BIND).unwrap().text(),
        "balcony"
    );

    let msg = stanza(&evs[2]);
    assert_eq!(msg.attr("id"), Some("m&1"));
    assert_eq!(msg.attr("xml:lang"), Some("en"));
    assert_eq!(
        msg.get_child("body", ns::CLIENT).unwrap().text(),
        "Wherefore art thou, <Romeo>? \u{263A} \u{2603} caf\u{e9}"
    );
    let x = msg.get_child("data", "urn:example:x").unwrap();
    assert_eq!(x.attr("x:attr"), Some("v'1"));
    assert_eq!(
        x.attr("xmlns:x"),
        Some("urn:example:x"),
        "declaration kept for x:attr"
    );
    assert_eq!(x.attr("plain"), Some("a\"b"));
    let inner = x.get_child("inner", "urn:example:x").unwrap();
    assert_eq!(
        inner.text(),
        "one <two> & three",
        "text, CDATA and text merge"
    );
    assert_eq!(inner.nodes().len(), 1);

    let pres = stanza(&evs[3]);
    assert_eq!(
        pres.get_child("status", ns::CLIENT).unwrap().text(),
        "multi\nline"
    );
    assert_eq!(pres.get_child("priority", ns::CLIENT).unwrap().text(), "5");

    let ping = stanza(&evs[4]);
    assert!(ping.get_child("ping", ns::PING).is_some());
    assert_eq!(evs[5], StreamEvent::Close);
}

#[test]
fn transcript_every_two_way_split() {
    let whole = run(TRANSCRIPT.as_bytes());
    let bytes = TRANSCRIPT.as_bytes();
    for i in 0..=bytes.len() {
        let (a, b) = bytes.split_at(i);
        assert_eq!(run_chunks(Limits::default(), [a, b]), whole, "split at {i}");
    }
}

#[test]
fn transcript_every_three_way_split_sampled() {
    let whole = run(TRANSCRIPT.as_bytes());
    let bytes = TRANSCRIPT.as_bytes();
    for i in (0..bytes.len()).step_by(7) {
        for j in (i..bytes.len()).step_by(5) {
            let chunks = [&bytes[..i], &bytes[i..j], &bytes[j..]];
            assert_eq!(
                run_chunks(Limits::default(), chunks),
                whole,
                "split at {i}/{j}"
            );
        }
    }
}

#[test]
fn transcript_byte_by_byte() {
    let whole = run(TRANSCRIPT.as_bytes());
    assert_eq!(
        run_chunks(Limits::default(), TRANSCRIPT.as_bytes().chunks(1)),
        whole
    );
}

/// Inputs that end in an error must fail the same way under any split too.
const BAD_INPUTS: &[&str] = &[
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
     <message><body>hi</body></message><!-- c --><message/>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
     <message><body>&bogus;</body></message>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
     <message><a><b></a></b></message>",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
     <message/>text",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
     <message/></stream:strea>",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn transcript_random_chunkings(cuts in proptest::collection::vec(0usize..2000, 0..40)) {
        let bytes = TRANSCRIPT.as_bytes();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for c in cuts {
            chunks.push(&bytes[prev..c]);
            prev = c;
        }
        chunks.push(&bytes[prev..]);
        prop_assert_eq!(run_chunks(Limits::default(), chunks), run(bytes));
    }

    /// Mutated transcripts (bytes replaced, inserted, removed) exercise the error paths:
    /// whatever the outcome, it must not depend on how the bytes were chunked, and the
    /// reader must never panic.
    #[test]
    fn mutated_transcripts_are_split_independent(
        edits in proptest::collection::vec((0usize..2000, 0u8..3, any::<u8>()), 1..4),
        size in 1usize..40,
    ) {
        let mut bytes = TRANSCRIPT.as_bytes().to_vec();
        for (at, op, b) in edits {
            let at = at % bytes.len();
            // Bias towards markup bytes, which is where the boundary scan is subtle.
            const MARKUP: &[u8] = b"<>/'\"&;!?[]- a\xC3";
            let b = MARKUP[usize::from(b) % MARKUP.len()];
            match op {
                0 => bytes[at] = b,
                1 => bytes.insert(at, b),
                _ => {
                    bytes.remove(at);
                }
            }
        }
        let whole = run(&bytes);
        prop_assert_eq!(run_chunks(Limits::default(), bytes.chunks(size)), whole);
    }

    #[test]
    fn errors_are_split_independent(which in 0..BAD_INPUTS.len(), size in 1usize..9) {
        let bytes = BAD_INPUTS[which].as_bytes();
        let whole = run(bytes);
        prop_assert!(whole.1.is_some());
        prop_assert_eq!(run_chunks(Limits::default(), bytes.chunks(size)), whole);
    }

    #[test]
    fn size_limit_split_independent(size in 1usize..64, limit in 40usize..120) {
        let limits = Limits { max_stanza_bytes: limit, ..Limits::default() };
        let input = with_header("<message><body>0123456789012345678901234567890123456789</body>\
                                 <!-- after the limit --></message>");
        let whole = run_chunks(limits, [&input[..]]);
        prop_assert_eq!(run_chunks(limits, input.chunks(size)), whole);
    }
}

#[test]
fn declaration_is_optional_and_bom_allowed() {
    let plain = events(&format!("{HEADER}<presence/>"));
    assert_eq!(plain.len(), 2);
    let bom = run(format!("\u{FEFF}<?xml version=\"1.0\"?>{HEADER}<presence/>").as_bytes());
    assert_eq!(bom, (plain, None));
}

#[test]
fn header_without_version_and_self_closing_stream() {
    let evs = events(
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' from='a.example' to='b.example'/>",
    );
    let StreamEvent::Open(h) = &evs[0] else {
        panic!()
    };
    assert_eq!(h.version(), None);
    assert_eq!(h.default_ns(), ns::SERVER);
    assert!(h.declares(ns::DIALBACK));
    assert_eq!(h.attr("xmlns:db"), Some(ns::DIALBACK));
    assert_eq!(evs[1], StreamEvent::Close);
}

#[test]
fn header_prefixes_are_in_scope_for_stanzas() {
    let evs = events(
        "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback'><db:result from='a' to='b'>key</db:result>\
         <stream:features/>",
    );
    assert!(stanza(&evs[1]).is("result", ns::DIALBACK));
    assert!(stanza(&evs[2]).is("features", ns::STREAM));
}

#[test]
fn stanza_can_redeclare_namespaces() {
    let evs = events(&format!(
        "{HEADER}<message xmlns='jabber:server'><body>x</body></message>\
         <p:iq xmlns:p='jabber:client' type='get'/><m xmlns=''/>"
    ));
    assert!(stanza(&evs[1]).is("message", ns::SERVER));
    assert!(stanza(&evs[1]).get_child("body", ns::SERVER).is_some());
    assert!(stanza(&evs[2]).is("iq", ns::CLIENT));
    assert!(stanza(&evs[3]).is("m", ""));
}

#[test]
fn attribute_value_normalisation() {
    let evs = events(&format!("{HEADER}<m a='x\ty\r\nz' b='&#9;&#10;&#13;'/>"));
    let m = stanza(&evs[1]);
    assert_eq!(m.attr("a"), Some("x y z"));
    assert_eq!(m.attr("b"), Some("\t\n\r"));
    let evs = events(&format!("{HEADER}<m>a\r\nb\rc</m>"));
    assert_eq!(
        stanza(&evs[1]).text(),
        "a\nb\nc",
        "end-of-line normalisation"
    );
}

// ---- header rejections (RFC 6120 4.8, 4.9.3.2, 4.9.3.10) ----

#[test]
fn header_rejections() {
    // No xmlns:stream declaration: RFC 6120 4.9.3.2's own example.
    assert_eq!(
        error_of(b"<stream:stream xmlns='jabber:client' to='example.com'>"),
        Cond::BadNamespacePrefix
    );
    // Stream prefix bound to the wrong namespace: RFC 6120 4.9.3.10's example.
    assert_eq!(
        error_of(
            b"<stream:stream xmlns='jabber:client' xmlns:stream='http://wrong.namespace.example.org/'>"
        ),
        Cond::InvalidNamespace
    );
    // Not <stream/>.
    assert_eq!(
        error_of(
            b"<stream:foo xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        ),
        Cond::InvalidNamespace
    );
    // Not in any namespace the stream prefix could give.
    assert_eq!(
        error_of(b"<stream xmlns='jabber:client'>"),
        Cond::InvalidNamespace
    );
    assert_eq!(
        error_of(b"<message xmlns='jabber:client'/>"),
        Cond::InvalidNamespace
    );
    // The stream namespace as default, no prefix.
    assert_eq!(
        error_of(b"<stream xmlns='http://etherx.jabber.org/streams'>"),
        Cond::BadNamespacePrefix
    );
    // Another prefix for the stream namespace (RFC 6120 4.8.5 lets us refuse it).
    assert_eq!(
        error_of(b"<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams'>"),
        Cond::BadNamespacePrefix
    );
    // Content namespace equal to the stream namespace (RFC 6120 4.8.2).
    assert_eq!(
        error_of(
            b"<stream:stream xmlns='http://etherx.jabber.org/streams' \
              xmlns:stream='http://etherx.jabber.org/streams'>"
        ),
        Cond::InvalidNamespace
    );
}

#[test]
fn encoding_rejections() {
    assert_eq!(
        error_of(format!("<?xml version='1.0' encoding='ISO-8859-1'?>{HEADER}").as_bytes()),
        Cond::UnsupportedEncoding
    );
    assert_eq!(
        events(&format!("<?xml version='1.0' encoding='utf-8'?>{HEADER}")).len(),
        1,
        "encoding names are case-insensitive"
    );
    // UTF-16 byte order mark.
    assert_eq!(error_of(b"\xFF\xFE<\x00"), Cond::UnsupportedEncoding);
    // Invalid UTF-8 inside a stanza (RFC 6120 4.9.3.22: improperly encoded).
    let mut bad = with_header("<message><body>");
    bad.extend_from_slice(b"\xC3\x28</body></message>");
    assert_eq!(error_of(&bad), Cond::UnsupportedEncoding);
    let mut bad = with_header("<message to='");
    bad.extend_from_slice(b"\xFF'/>");
    assert_eq!(error_of(&bad), Cond::UnsupportedEncoding);
}

// ---- RFC 6120 11.1 restricted XML ----

#[test]
fn restricted_xml() {
    for input in [
        format!("<!DOCTYPE stream>{HEADER}"),
        format!("<!-- hello -->{HEADER}"),
        format!("<?xml version='1.0'?><?xml-stylesheet href='x'?>{HEADER}"),
        format!("<?php echo 1; ?>{HEADER}"),
        format!("{HEADER}<!-- keepalive? -->"),
        format!("{HEADER}<?pi x?>"),
        format!("{HEADER}<message><!-- c --></message>"),
        format!("{HEADER}<message><?pi?></message>"),
        format!("{HEADER}<message><!ENTITY x 'y'></message>"),
        format!("{HEADER}<message><body>&xxe;</body></message>"),
        format!("{HEADER}<message to='&xxe;'/>"),
        format!("{HEADER}<!DOCTYPE message [<!ENTITY x 'y'>]>"),
    ] {
        assert_eq!(error_of(input.as_bytes()), Cond::RestrictedXml, "{input}");
    }
}

// ---- well-formedness ----

#[test]
fn not_well_formed() {
    for body in [
        "<message><a><b></a></b></message>",
        "<message></presence>",
        "<message><body>a &amp b</body></message>",
        "<message><body>a & b</body></message>",
        "<message><body>&#xD800;</body></message>",
        "<message><body>&#0;</body></message>",
        "<message><body>&#x1;</body></message>",
        "<message a='1' a='2'/>",
        "<message a='1' b=2/>",
        "<message a/>",
        "<message a='<'/>",
        "<x:message/>",
        "<message x:a='1'/>",
        "<message xmlns:p='urn:a' xmlns:q='urn:a' p:x='1' q:x='2'/>",
        "<message xmlns:p=''/>",
        "<1message/>",
        "<message><body>\u{1}</body></message>",
        "<message><body>\u{FFFE}</body></message>",
        "</message>",
        "<message/></stream:streamx>",
    ] {
        assert_eq!(error_of(&with_header(body)), Cond::NotWellFormed, "{body}");
    }
    assert_eq!(error_of(b"hello"), Cond::NotWellFormed);
    assert_eq!(error_of(b"</stream:stream>"), Cond::NotWellFormed);
    assert_eq!(
        error_of(&with_header("</stream:stream><message/>")),
        Cond::NotWellFormed,
        "nothing after the close"
    );
}

#[test]
fn character_data_between_stanzas_is_refused() {
    assert_eq!(
        error_of(&with_header("<message/>hello")),
        Cond::NotWellFormed
    );
    assert_eq!(error_of(&with_header("&amp;")), Cond::NotWellFormed);
    assert_eq!(error_of(&with_header("<![CDATA[ ]]>")), Cond::NotWellFormed);
}

#[test]
fn keepalives_and_trailing_whitespace_are_ignored() {
    let evs = events(&format!("{HEADER} \n \t<presence/>\n\n</stream:stream>\n "));
    assert_eq!(evs.len(), 3);
}

#[test]
fn errors_are_sticky() {
    let mut r = StreamReader::new(Limits::default());
    r.feed(b"garbage").unwrap_err();
    assert_eq!(r.next_event().unwrap_err().condition, Cond::NotWellFormed);
    assert_eq!(
        r.feed(HEADER.as_bytes()).unwrap_err().condition,
        Cond::NotWellFormed
    );
}

// ---- limits ----

#[test]
fn size_limit_complete_stanza() {
    let limits = Limits {
        max_stanza_bytes: 100,
        ..Limits::default()
    };
    let ok = format!("<message><body>{}</body></message>", "a".repeat(100 - 32));
    assert_eq!(ok.len(), 100);
    let (evs, err) = run_chunks(limits, [with_header(&ok).as_slice()]);
    assert_eq!((evs.len(), err), (2, None), "exactly the limit is fine");
    let big = format!("<message><body>{}</body></message>", "a".repeat(101 - 32));
    let (evs, err) = run_chunks(limits, [with_header(&big).as_slice()]);
    assert_eq!(evs.len(), 1);
    assert_eq!(err.unwrap().condition, Cond::PolicyViolation);
}

#[test]
fn size_limit_never_closed_tag() {
    // A client that opens a tag and never closes it, trickling bytes: refused as soon as
    // the unit passes the limit, and the reader never holds much more than the limit.
    let limits = Limits {
        max_stanza_bytes: 4096,
        ..Limits::default()
    };
    let mut r = StreamReader::new(limits);
    r.feed(HEADER.as_bytes()).unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    r.feed(b"<message to='").unwrap();
    let mut fed = 0;
    let err = loop {
        match r.feed(&[b'a'; 16]) {
            Ok(()) => {
                assert!(r.buffered_len() <= 4096 + 16);
                assert_eq!(r.next_event(), Ok(None));
                fed += 16;
            }
            Err(e) => break e,
        }
    };
    assert_eq!(err.condition, Cond::PolicyViolation);
    assert!(fed <= 4096, "refused after {fed} bytes");
    assert_eq!(r.buffered_len(), 0, "a failed reader frees its buffer");
}

#[test]
fn size_limit_never_closed_element_with_children() {
    let limits = Limits {
        max_stanza_bytes: 1000,
        ..Limits::default()
    };
    let mut input = with_header("<message>");
    for _ in 0..200 {
        input.extend_from_slice(b"<b>x</b>");
    }
    let (evs, err) = run_chunks(limits, input.chunks(10));
    assert_eq!(evs.len(), 1);
    assert_eq!(err.unwrap().condition, Cond::PolicyViolation);
}

#[test]
fn size_limit_applies_to_the_header() {
    let limits = Limits {
        max_header_bytes: 200,
        ..Limits::default()
    };
    let header = format!(
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
         to='{}'>",
        "a".repeat(200)
    );
    let (_, err) = run_chunks(limits, [header.as_bytes()]);
    assert_eq!(err.unwrap().condition, Cond::PolicyViolation);
}

#[test]
fn depth_limit() {
    let limits = Limits {
        max_depth: 4,
        ..Limits::default()
    };
    let ok = with_header("<a><b><c><d/></c></b></a>");
    assert_eq!(run_chunks(limits, [ok.as_slice()]).1, None);
    let deep = with_header("<a><b><c><d><e/></d></c></b></a>");
    let (evs, err) = run_chunks(limits, [deep.as_slice()]);
    assert_eq!(evs.len(), 1);
    assert_eq!(err.unwrap().condition, Cond::PolicyViolation);
    // Detected while the stanza is still open, not only once it is complete.
    let open = with_header("<a><b><c><d><e>");
    assert_eq!(
        run_chunks(limits, [open.as_slice()]).1.unwrap().condition,
        Cond::PolicyViolation
    );
}

#[test]
fn attribute_limit() {
    let limits = Limits {
        max_attrs: 3,
        ..Limits::default()
    };
    let ok = with_header("<m a='1' b='2' c='3'><x xmlns='urn:x' d='4' e='5'/></m>");
    assert_eq!(run_chunks(limits, [ok.as_slice()]).1, None);
    let many = with_header("<m><x a='1' b='2' c='3' d='4'/></m>");
    let err = run_chunks(limits, [many.as_slice()]).1.unwrap();
    assert_eq!(err.condition, Cond::PolicyViolation);
    // Namespace declarations count: they cost the same to parse.
    let decls = with_header("<m xmlns:a='urn:a' xmlns:b='urn:b' xmlns:c='urn:c' x='1'/>");
    let err = run_chunks(limits, [decls.as_slice()]).1.unwrap();
    assert_eq!(err.condition, Cond::PolicyViolation);
}

// ---- restart ----

#[test]
fn restart_expects_a_fresh_header() {
    let mut r = StreamReader::new(Limits::default());
    r.feed(
        format!(
            "{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>"
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    let auth = r.next_event().unwrap().unwrap();
    assert!(stanza(&auth).is("auth", ns::SASL));
    assert_eq!(r.next_event(), Ok(None));
    r.restart();
    assert!(!r.is_open());
    // The new stream may start with a declaration again, and binds namespaces afresh.
    r.feed(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
          xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><iq type='get' id='1'/>",
    )
    .unwrap();
    let Ok(Some(StreamEvent::Open(h))) = r.next_event() else {
        panic!("expected a new header")
    };
    assert_eq!(h.default_ns(), ns::SERVER);
    assert!(stanza(&r.next_event().unwrap().unwrap()).is("iq", ns::SERVER));
}

#[test]
fn restart_forgets_the_old_headers_namespaces() {
    let mut r = StreamReader::new(Limits::default());
    r.feed(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback'><db:verify id='1'/>",
    )
    .unwrap();
    r.next_event().unwrap();
    assert!(stanza(&r.next_event().unwrap().unwrap()).is("verify", ns::DIALBACK));
    r.restart();
    r.feed(format!("{HEADER}<db:verify id='2'/>").as_bytes())
        .unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert_eq!(r.next_event().unwrap_err().condition, Cond::NotWellFormed);
}

#[test]
fn restart_keeps_pipelined_bytes() {
    let mut r = StreamReader::new(Limits::default());
    r.feed(
        format!("{HEADER}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>{HEADER}").as_bytes(),
    )
    .unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Stanza(_)))));
    assert!(r.buffered_len() > 0);
    r.restart();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
}

#[test]
fn without_restart_a_second_header_is_a_stanza_that_never_ends() {
    let mut r = StreamReader::new(Limits::default());
    r.feed(format!("{HEADER}{HEADER}").as_bytes()).unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    assert_eq!(r.next_event(), Ok(None));
}

/// Hardening issue item 2: a mismatched end tag is refused as soon as it is complete.
/// Before, the boundary scan only counted depth, so `</message>` closing `<body>` left the
/// stanza open (depth 1) and the stream waiting forever.
#[test]
fn mismatched_end_tag_is_refused_at_once() {
    for body in [
        "<message to='me'><body>x</message>",
        "<iq><query xmlns='urn:x'><item/></iq>",
        "<m xmlns:p='urn:p'><p:a></a></m>",
        "<m><a></a ><b></bb></m>",
    ] {
        let input = with_header(body);
        for size in 1..=input.len() {
            let (events, err) = run_chunks(Limits::default(), input.chunks(size));
            assert_eq!(events.len(), 1, "{body}: only the header");
            assert_eq!(
                err.map(|e| e.condition),
                Some(Cond::NotWellFormed),
                "{body} in chunks of {size}"
            );
        }
    }
    // Whitespace before `>` and prefixes that match are fine.
    let ok = events(
        &String::from_utf8(with_header("<m xmlns:p='urn:p'><p:a></p:a ><b/></m >")).unwrap(),
    );
    assert_eq!(ok.len(), 2);
}

/// An attribute value must be followed by whitespace, `/` or `>` (XML 1.0 [40], [44]).
/// Before, the boundary scan went on pairing quotes after `name='a's …`, and an
/// apostrophe later in the stanza kept it open until the size limit: the error comes
/// at the byte that makes it wrong, whatever the chunking. (The header's `'1.0'>` and
/// values followed by `/>` are fine.)
#[test]
fn no_whitespace_after_an_attribute_value_is_refused_at_once() {
    for body in [
        "<item name='a's room' jid='x@y'/><more/>",
        "<m a=\"1\"b='2'/>",
        "<m><x a='1'z/></m>",
    ] {
        let input = with_header(body);
        for size in 1..=input.len() {
            let (events, err) = run_chunks(Limits::default(), input.chunks(size));
            assert_eq!(events.len(), 1, "{body}: only the header");
            assert_eq!(
                err.map(|e| e.condition),
                Some(Cond::NotWellFormed),
                "{body} in chunks of {size}"
            );
        }
    }
    let ok = events(
        &String::from_utf8(with_header("<m a='1' b=\"2\"\t/><n c='3'\n><o d='4'/></n>")).unwrap(),
    );
    assert_eq!(ok.len(), 3, "{ok:?}");
}

#[test]
fn namespace_and_attribute_value_lengths_are_capped() {
    // The header's own stream namespace is 32 bytes.
    let limits = Limits {
        max_ns_bytes: 40,
        max_attr_bytes: 20,
        ..Limits::default()
    };
    let ns40 = format!("urn:{}", "n".repeat(36));
    let ns41 = format!("urn:{}", "n".repeat(37));
    let ok = with_header(&format!("<m xmlns:p='{ns40}' to='twenty-bytes-exactly'/>"));
    assert_eq!(run_chunks(limits, [ok.as_slice()]).1, None);
    for body in [
        format!("<m><x xmlns='{ns41}'/></m>"),
        format!("<m xmlns:p='{ns41}'/>"),
        "<m to='twenty-one-bytes-long'/>".to_owned(),
    ] {
        let (_, err) = run_chunks(limits, [with_header(&body).as_slice()]);
        assert_eq!(
            err.map(|e| e.condition),
            Some(Cond::PolicyViolation),
            "{body}"
        );
    }
}

#[test]
fn header_limit_is_separate_from_the_stanza_limit() {
    let limits = Limits {
        max_header_bytes: HEADER.len(),
        max_stanza_bytes: 10_000,
        ..Limits::default()
    };
    let stanza = format!("<message><body>{}</body></message>", "a".repeat(5000));
    let (events, err) = run_chunks(limits, [with_header(&stanza).as_slice()]);
    assert_eq!((events.len(), err), (2, None));
    let long = HEADER.replace("version=", "id='x' version=");
    let (_, err) = run_chunks(limits, [long.as_bytes()]);
    assert_eq!(err.unwrap().condition, Cond::PolicyViolation);
}

#[test]
fn set_limits_applies_to_later_units() {
    let mut r = StreamReader::new(Limits {
        max_stanza_bytes: 100,
        ..Limits::default()
    });
    r.feed(HEADER.as_bytes()).unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    r.set_limits(Limits::default());
    let big = format!("<message><body>{}</body></message>", "a".repeat(500));
    r.feed(big.as_bytes()).unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Stanza(_)))));
}

// ---- memory ----

#[test]
fn idle_reader_releases_its_buffer() {
    let mut r = StreamReader::new(Limits::default());
    r.feed(HEADER.as_bytes()).unwrap();
    r.next_event().unwrap();
    let big = format!("<message><body>{}</body></message>", "x".repeat(100_000));
    for chunk in big.as_bytes().chunks(1000) {
        r.feed(chunk).unwrap();
    }
    assert!(r.capacity() >= 100_000);
    let ev = r.next_event().unwrap().unwrap();
    assert_eq!(
        stanza(&ev)
            .get_child("body", ns::CLIENT)
            .unwrap()
            .text()
            .len(),
        100_000
    );
    assert_eq!(r.buffered_len(), 0);
    assert_eq!(r.capacity(), 0, "large buffer released once drained");
    // Small buffers are kept for reuse; whitespace keepalives do not accumulate.
    r.feed(b"<presence/>").unwrap();
    r.next_event().unwrap().unwrap();
    assert!(r.capacity() <= 4096);
    for _ in 0..10_000 {
        r.feed(b" ").unwrap();
    }
    assert_eq!(r.buffered_len(), 0);
    assert!(r.capacity() <= 4096);
}

/// A large stanza trickling in byte by byte is scanned once, not once per read: were
/// the scan quadratic, this would take minutes instead of milliseconds.
#[test]
fn byte_by_byte_large_stanza_is_linear() {
    let mut r = StreamReader::new(Limits::default());
    r.feed(HEADER.as_bytes()).unwrap();
    r.next_event().unwrap();
    let mut big = String::from("<message><body>");
    for i in 0..15_000 {
        write!(big, "<b i='{}'>x</b>", i % 10).unwrap();
    }
    big.push_str("</body></message>");
    assert!(big.len() < 262_144);
    let started = std::time::Instant::now();
    for b in big.as_bytes() {
        r.feed(std::slice::from_ref(b)).unwrap();
    }
    let ev = r.next_event().unwrap().unwrap();
    assert_eq!(
        stanza(&ev).children().next().unwrap().children().count(),
        15_000
    );
    assert!(
        started.elapsed().as_secs() < 20,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn partial_stanza_keeps_only_its_own_bytes() {
    let mut r = StreamReader::new(Limits::default());
    let mut input = with_header("");
    for i in 0..1000 {
        input.extend_from_slice(format!("<presence id='{i}'/>").as_bytes());
    }
    input.extend_from_slice(b"<message><body>partial");
    let mut n = 0;
    for chunk in input.chunks(97) {
        r.feed(chunk).unwrap();
        while let Some(_ev) = r.next_event().unwrap() {
            n += 1;
        }
    }
    assert_eq!(n, 1001);
    assert_eq!(r.buffered_len(), "<message><body>partial".len());
}
