//! Writer: escaping, and element → bytes → reader → the same element.

use hydrant_proto::{Element, Limits, StreamEvent, StreamReader, ns};
use proptest::prelude::*;

const HEADER: &[u8] = b"<stream:stream xmlns='jabber:client' \
                        xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/// Writes `el` as a stanza of a jabber:client stream and reads it back.
fn round_trip(el: &Element) -> Element {
    let mut r = StreamReader::new(Limits::default());
    r.feed(HEADER).unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    let bytes = el.to_bytes(ns::CLIENT);
    r.feed(&bytes).unwrap();
    match r.next_event() {
        Ok(Some(StreamEvent::Stanza(back))) => back,
        other => panic!("{other:?} for {}", String::from_utf8_lossy(&bytes)),
    }
}

#[test]
fn escaping_round_trip() {
    let el = Element::new("message", ns::CLIENT)
        .with_attr("to", "a&b<c>d\"e'f")
        .with_attr("ws", " \t\n\r\n x")
        .with_attr("xml:lang", "en")
        .with_child(
            Element::new("body", ns::CLIENT).with_text("<tag> & ]]> \"q\" 'a' \r\n\u{263A}"),
        );
    let bytes = String::from_utf8(el.to_bytes(ns::CLIENT)).unwrap();
    assert_eq!(
        bytes,
        "<message to='a&amp;b&lt;c&gt;d&quot;e&apos;f' ws=' &#9;&#10;&#13;&#10; x' \
         xml:lang='en'><body>&lt;tag&gt; &amp; ]]&gt; \"q\" 'a' &#13;\n\u{263A}</body></message>"
    );
    assert_eq!(round_trip(&el), el);
}

#[test]
fn prefixed_attributes_keep_their_namespace() {
    // Parsed from the wire: the prefix declaration lives on an ancestor.
    let mut r = StreamReader::new(Limits::default());
    r.feed(HEADER).unwrap();
    r.next_event().unwrap();
    r.feed(b"<message xmlns:p='urn:p'><x xmlns='urn:x' p:a='1'><p:y/></x></message>")
        .unwrap();
    let Ok(Some(StreamEvent::Stanza(el))) = r.next_event() else {
        panic!()
    };
    let x = el.get_child("x", "urn:x").unwrap();
    assert_eq!(x.attr("p:a"), Some("1"));
    assert_eq!(x.attr("xmlns:p"), Some("urn:p"));
    assert!(
        x.get_child("y", "urn:p").is_some(),
        "element prefixes are resolved"
    );
    let bytes = String::from_utf8(el.to_bytes(ns::CLIENT)).unwrap();
    assert_eq!(
        bytes,
        "<message><x xmlns='urn:x' xmlns:p='urn:p' p:a='1'><y xmlns='urn:p'/></x></message>"
    );
    assert_eq!(round_trip(&el), el);
}

#[test]
fn namespaces_round_trip() {
    let el = Element::new("iq", ns::CLIENT)
        .with_attr("type", "result")
        .with_attr("id", "1")
        .with_child(
            Element::new("query", ns::ROSTER)
                .with_child(Element::new("item", ns::ROSTER).with_attr("jid", "a@b"))
                .with_child(Element::new("x", "").with_child(Element::new("y", ns::ROSTER))),
        );
    assert_eq!(round_trip(&el), el);
}

fn xml_string() -> impl Strategy<Value = String> {
    // Any sequence of characters XML 1.0 allows (2.2), weighted towards the ones that
    // need escaping or normalisation.
    prop_oneof![
        "[\t\n\r &<>\"'a\\]]{0,12}",
        "[\t\n\r\u{20}-\u{D7FF}\u{E000}-\u{FFFD}\u{10000}-\u{10FFFF}]{0,24}",
    ]
}

fn name() -> impl Strategy<Value = String> {
    "[a-wyz_][a-z0-9._-]{0,6}"
}

fn namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(ns::CLIENT.to_owned()),
        Just("urn:a".to_owned()),
        Just("urn:b?x=1&y='2'".to_owned()),
        Just(String::new()),
    ]
}

fn element() -> impl Strategy<Value = Element> {
    let leaf = (
        name(),
        namespace(),
        proptest::collection::btree_map(name(), xml_string(), 0..4),
        proptest::option::of(xml_string()),
    )
        .prop_map(|(n, ns, attrs, text)| {
            let mut el = Element::new(n, ns);
            for (k, v) in attrs {
                el.set_attr(k, v);
            }
            if let Some(t) = text {
                el.append_text(t);
            }
            el
        });
    leaf.prop_recursive(6, 64, 6, |inner| {
        (
            name(),
            namespace(),
            proptest::collection::btree_map(name(), xml_string(), 0..4),
            proptest::collection::vec(
                prop_oneof![inner.prop_map(Ok), xml_string().prop_map(Err)],
                0..6,
            ),
        )
            .prop_map(|(n, ns, attrs, kids)| {
                let mut el = Element::new(n, ns);
                for (k, v) in attrs {
                    el.set_attr(k, v);
                }
                for kid in kids {
                    match kid {
                        Ok(child) => el.append_child(child),
                        Err(text) => el.append_text(text),
                    }
                }
                el
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_and_attributes_round_trip(text in xml_string(), value in xml_string()) {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("a", value)
            .with_child(Element::new("body", ns::CLIENT).with_text(text));
        prop_assert_eq!(round_trip(&el), el);
    }

    #[test]
    fn trees_round_trip(el in element()) {
        prop_assert_eq!(round_trip(&el), el);
    }
}
