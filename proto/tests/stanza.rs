//! Typed stanzas: parse/serialize iq, message, presence; error replies; iq payloads.

// The crate's error types are large by API design (see lib.rs); so are these helpers'.
#![allow(clippy::result_large_err)]

use hydrant_proto::{
    BareJid, Element, ErrorType, Iq, IqPayload, IqType, Jid, Limits, MessageType, PresenceType,
    RosterItem, RosterQuery, Stanza, StanzaError, StanzaErrorCondition as Cond, StanzaParseError,
    StreamEvent, StreamReader, Subscription, error_reply, ns,
};

/// Parses one stanza from the wire, as a c2s session would.
fn wire(xml: &str) -> Element {
    let mut r = StreamReader::new(Limits::default());
    r.feed(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .unwrap();
    r.feed(xml.as_bytes()).unwrap();
    assert!(matches!(r.next_event(), Ok(Some(StreamEvent::Open(_)))));
    match r.next_event() {
        Ok(Some(StreamEvent::Stanza(el))) => el,
        other => panic!("{other:?}"),
    }
}

fn parse(xml: &str) -> Result<Stanza, StanzaParseError> {
    Stanza::parse(wire(xml), ns::CLIENT)
}

fn invalid(xml: &str) -> (Element, StanzaError) {
    match parse(xml) {
        Err(StanzaParseError::Invalid(el, e)) => (el, e),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

fn xml(el: &Element, ns: &str) -> String {
    String::from_utf8(el.to_bytes(ns)).unwrap()
}

#[test]
fn iq_parse_and_serialize() {
    let Ok(Stanza::Iq(iq)) = parse(
        "<iq type='get' id='r1' to='example.com' xml:lang='de'><query xmlns='jabber:iq:roster'/></iq>",
    ) else {
        panic!()
    };
    assert_eq!(iq.kind, IqType::Get);
    assert_eq!(iq.id, "r1");
    assert_eq!(iq.to, Some(jid("example.com")));
    assert_eq!(iq.from, None);
    assert_eq!(iq.lang.as_deref(), Some("de"));
    let payload = iq.payload.as_ref().unwrap();
    assert!(payload.is("query", ns::ROSTER));
    assert_eq!(
        IqPayload::parse(payload).unwrap(),
        IqPayload::Roster(RosterQuery::default())
    );
    assert_eq!(
        xml(&iq.to_element(ns::CLIENT), ns::CLIENT),
        "<iq type='get' id='r1' to='example.com' xml:lang='de'><query xmlns='jabber:iq:roster'/></iq>"
    );

    let mut from_client = iq.clone();
    from_client.from = Some(jid("juliet@example.com/balcony"));
    let reply = from_client.result(Some(
        Element::new("query", ns::ROSTER).with_attr("ver", "1"),
    ));
    assert_eq!(reply.kind, IqType::Result);
    assert_eq!(reply.id, "r1");
    assert_eq!(reply.to, Some(jid("juliet@example.com/balcony")));
    assert_eq!(reply.from, Some(jid("example.com")));
    assert_eq!(
        xml(&reply.to_element(ns::CLIENT), ns::CLIENT),
        "<iq type='result' id='r1' to='juliet@example.com/balcony' from='example.com'>\
         <query xmlns='jabber:iq:roster' ver='1'/></iq>"
    );
    // Through Stanza, from/to can be rewritten by the router.
    let mut st = Stanza::Iq(iq);
    st.set_from(Some(jid("juliet@example.com/balcony")));
    assert_eq!(st.from(), Some(&jid("juliet@example.com/balcony")));
    assert_eq!(st.to(), Some(&jid("example.com")));
    assert_eq!(
        st.to_element(ns::CLIENT).attr("from"),
        Some("juliet@example.com/balcony")
    );
}

#[test]
fn iq_result_may_be_empty_and_whitespace_is_ignored() {
    let Ok(Stanza::Iq(iq)) = parse("<iq type='result' id='x'>\n  </iq>") else {
        panic!()
    };
    assert_eq!(iq.payload, None);
    let iq = Iq::try_from_element(wire(
        "<iq type='set' id='s'>\n <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>\n</iq>",
    ))
    .unwrap();
    assert_eq!(
        IqPayload::parse(iq.payload.as_ref().unwrap()).unwrap(),
        IqPayload::Session
    );
}

#[test]
fn iq_rejections_rfc_6120_8_2_3() {
    for (input, cond) in [
        (
            "<iq type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
            Cond::BadRequest,
        ),
        (
            "<iq id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
            Cond::BadRequest,
        ),
        (
            "<iq id='1' type='fetch'><ping xmlns='urn:xmpp:ping'/></iq>",
            Cond::BadRequest,
        ),
        ("<iq id='1' type='get'/>", Cond::BadRequest),
        (
            "<iq id='1' type='set'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
            Cond::BadRequest,
        ),
        (
            "<iq id='1' type='result'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
            Cond::BadRequest,
        ),
        (
            "<iq id='1' type='error'><a xmlns='urn:a'/></iq>",
            Cond::BadRequest,
        ),
        (
            "<iq id='1' type='get' to='@example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
            Cond::JidMalformed,
        ),
        (
            "<iq id='1' type='get' from='a@b/'><ping xmlns='urn:xmpp:ping'/></iq>",
            Cond::JidMalformed,
        ),
    ] {
        let (el, err) = invalid(input);
        assert_eq!(err.condition, cond, "{input}");
        assert_eq!(el, wire(input), "the original element is handed back");
    }
}

#[test]
fn iq_error_keeps_the_error_element() {
    let input = "<iq type='error' id='e1' from='example.com'><ping xmlns='urn:xmpp:ping'/>\
                 <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
                 </error></iq>";
    let Ok(Stanza::Iq(iq)) = parse(input) else {
        panic!()
    };
    assert!(iq.payload.as_ref().unwrap().is("error", ns::CLIENT));
    let err = iq.stanza_error().unwrap();
    assert_eq!(err.condition, Cond::ServiceUnavailable);
    assert_eq!(err.kind, ErrorType::Cancel);
    // Routed to a server stream, the <error/> moves to jabber:server with the stanza.
    let out = iq.to_element(ns::SERVER);
    assert!(out.get_child("error", ns::SERVER).is_some());
    assert!(
        xml(&out, ns::SERVER)
            .starts_with("<iq type='error' id='e1' from='example.com'><error type='cancel'>")
    );
}

#[test]
fn message_parse_and_serialize() {
    let Ok(Stanza::Message(m)) = parse(
        "<message to='romeo@example.net' id='m1' type='chat'><body>hi</body>\
         <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'/></forwarded></message>",
    ) else {
        panic!()
    };
    assert_eq!(m.kind, MessageType::Chat);
    assert_eq!(m.to, Some(jid("romeo@example.net")));
    assert_eq!(m.id.as_deref(), Some("m1"));
    assert_eq!(m.body().as_deref(), Some("hi"));
    let mut st = Stanza::Message(m);
    st.set_from(Some(jid("juliet@example.com/balcony")));
    // To a server stream: the stanza and <body/> follow the content namespace, the
    // forwarded message stays jabber:client (XEP-0297).
    let out = st.to_element(ns::SERVER);
    assert_eq!(
        xml(&out, ns::SERVER),
        "<message to='romeo@example.net' id='m1' type='chat' from='juliet@example.com/balcony'>\
         <body>hi</body><forwarded xmlns='urn:xmpp:forward:0'>\
         <message xmlns='jabber:client'/></forwarded></message>"
    );
    assert!(out.get_child("body", ns::SERVER).is_some());
}

#[test]
fn message_type_defaults_to_normal_rfc_6121_5_2_2() {
    for input in [
        "<message/>",
        "<message type='normal'/>",
        "<message type='bogus'/>",
    ] {
        let Ok(Stanza::Message(m)) = parse(input) else {
            panic!()
        };
        assert_eq!(m.kind, MessageType::Normal, "{input}");
        // An unknown type is forwarded as it came.
        assert_eq!(
            m.to_element(ns::CLIENT).attr("type"),
            wire(input).attr("type")
        );
    }
    let Ok(Stanza::Message(mut m)) = parse("<message type='chat'/>") else {
        panic!()
    };
    m.kind = MessageType::Normal;
    assert_eq!(m.to_element(ns::CLIENT).attr("type"), None);
    m.kind = MessageType::Headline;
    assert_eq!(m.to_element(ns::CLIENT).attr("type"), Some("headline"));
    let (_, err) = invalid("<message to='a@b@c'/>");
    assert_eq!(err.condition, Cond::JidMalformed);
}

#[test]
fn presence_parse_and_serialize() {
    let Ok(Stanza::Presence(p)) =
        parse("<presence><show>away</show><priority>1</priority></presence>")
    else {
        panic!()
    };
    assert_eq!(p.kind, PresenceType::Available);
    let Ok(Stanza::Presence(mut p)) =
        parse("<presence to='romeo@example.net' type='subscribe' id='s1'/>")
    else {
        panic!()
    };
    assert_eq!(p.kind, PresenceType::Subscribe);
    p.kind = PresenceType::Subscribed;
    p.from = Some(jid("juliet@example.com"));
    assert_eq!(
        xml(&p.to_element(ns::CLIENT), ns::CLIENT),
        "<presence to='romeo@example.net' type='subscribed' id='s1' from='juliet@example.com'/>"
    );
    p.kind = PresenceType::Available;
    assert_eq!(p.to_element(ns::CLIENT).attr("type"), None);
    let (el, err) = invalid("<presence type='available'/>");
    assert_eq!(err.condition, Cond::BadRequest);
    assert_eq!(el.attr("type"), Some("available"));
}

#[test]
fn not_a_stanza() {
    for input in [
        "<stream:features/>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'/>",
        "<message xmlns='jabber:server'/>",
        "<foo/>",
    ] {
        match parse(input) {
            Err(StanzaParseError::NotAStanza(el)) => assert_eq!(el, wire(input)),
            other => panic!("{input}: {other:?}"),
        }
    }
}

#[test]
fn error_reply_rfc_6120_8_3_1() {
    let msg = wire(
        "<message from='juliet@example.com/balcony' to='romeo@example.net' id='m1' type='chat' \
         xml:lang='en'><body>hi</body></message>",
    );
    let reply = error_reply(
        &msg,
        &StanzaError::new(Cond::ServiceUnavailable).with_text("gone"),
    );
    assert_eq!(
        xml(&reply, ns::CLIENT),
        "<message id='m1' type='error' from='romeo@example.net' to='juliet@example.com/balcony' \
         xml:lang='en'><body>hi</body><error type='cancel'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>gone</text></error></message>"
    );
    let iq = wire("<iq type='set' id='i1' to='example.com'><query xmlns='jabber:iq:roster'/></iq>");
    let reply = error_reply(&iq, &StanzaError::new(Cond::BadRequest));
    assert_eq!(
        xml(&reply, ns::CLIENT),
        "<iq id='i1' type='error' from='example.com'><error type='modify'>\
         <bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
    );
    // The error reply is itself a valid error stanza.
    let Ok(Stanza::Iq(parsed)) = Stanza::parse(reply, ns::CLIENT) else {
        panic!()
    };
    assert_eq!(parsed.stanza_error().unwrap().condition, Cond::BadRequest);
    let err = StanzaError::new(Cond::NotAllowed).with_type(ErrorType::Auth);
    let reply = error_reply(&wire("<presence to='a@b' type='subscribe'/>"), &err);
    assert_eq!(
        reply.get_child("error", ns::CLIENT).unwrap().attr("type"),
        Some("auth")
    );
}

#[test]
fn iq_payloads() {
    let p = |s: &str| {
        IqPayload::parse(
            &wire(&format!("<iq type='get' id='1'>{s}</iq>"))
                .children()
                .next()
                .unwrap()
                .clone(),
        )
    };
    assert_eq!(
        p("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind>"),
        Ok(IqPayload::Bind {
            resource: Some("balcony".into())
        })
    );
    assert_eq!(
        p("<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"),
        Ok(IqPayload::Bind { resource: None })
    );
    assert_eq!(p("<ping xmlns='urn:xmpp:ping'/>"), Ok(IqPayload::Ping));
    assert_eq!(
        p("<query xmlns='jabber:iq:version'/>"),
        Ok(IqPayload::Version)
    );
    assert_eq!(
        p("<query xmlns='http://jabber.org/protocol/disco#info' node='n'/>"),
        Ok(IqPayload::DiscoInfo {
            node: Some("n".into())
        })
    );
    assert_eq!(
        p("<query xmlns='http://jabber.org/protocol/disco#items'/>"),
        Ok(IqPayload::DiscoItems { node: None })
    );
    assert!(matches!(
        p("<query xmlns='jabber:iq:register'/>"),
        Ok(IqPayload::Register(_))
    ));
    assert!(matches!(
        p("<pubsub xmlns='http://jabber.org/protocol/pubsub'/>"),
        Ok(IqPayload::Unknown(_))
    ));
    // Same name, other namespace: not the known payload.
    assert!(matches!(
        p("<ping xmlns='urn:other'/>"),
        Ok(IqPayload::Unknown(_))
    ));
}

#[test]
fn roster_set_parsing_rfc_6121() {
    let p = |s: &str| {
        IqPayload::parse(
            &wire(&format!(
                "<iq type='set' id='1'><query xmlns='jabber:iq:roster'>{s}</query></iq>"
            ))
            .children()
            .next()
            .unwrap()
            .clone(),
        )
    };
    let Ok(IqPayload::Roster(q)) = p(
        "<item jid='Nurse@Example.com' name='Nurse' ask='subscribe' approved='true'>\
         <group>Servants</group><group>Family</group></item>",
    ) else {
        panic!()
    };
    assert_eq!(q.ver, None);
    let item = &q.items[0];
    assert_eq!(
        item.jid,
        BareJid::new("nurse@example.com").unwrap(),
        "JIDs are normalised"
    );
    assert_eq!(item.name.as_deref(), Some("Nurse"));
    assert_eq!(
        item.subscription,
        Subscription::None,
        "absent subscription means none"
    );
    assert!(!item.ask, "ask is server state, ignored from clients");
    assert!(
        !item.approved,
        "approved is server state, ignored from clients"
    );
    assert_eq!(item.groups, ["Servants", "Family"]);

    let Ok(IqPayload::Roster(q)) = p("<item jid='nurse@example.com' subscription='remove'/>")
    else {
        panic!()
    };
    assert_eq!(q.items[0].subscription, Subscription::Remove);

    for (input, cond) in [
        ("<item name='no jid'/>", Cond::BadRequest),
        ("<item jid='@bad'/>", Cond::BadRequest),
        ("<item jid='nurse@example.com/resource'/>", Cond::BadRequest),
        (
            "<item jid='nurse@example.com' subscription='sometimes'/>",
            Cond::BadRequest,
        ),
        (
            "<item jid='nurse@example.com'><group>A</group><group>A</group></item>",
            Cond::BadRequest,
        ),
        (
            "<item jid='nurse@example.com'><group/></item>",
            Cond::NotAcceptable,
        ),
    ] {
        assert_eq!(p(input).unwrap_err().condition, cond, "{input}");
    }
}

#[test]
fn roster_serialization() {
    let item = RosterItem {
        jid: BareJid::new("romeo@example.net").unwrap(),
        name: Some("Romeo & co".into()),
        subscription: Subscription::Both,
        ask: true,
        groups: vec!["Friends".into()],
        approved: true,
    };
    let q = RosterQuery {
        ver: Some("v2".into()),
        items: vec![item.clone()],
    };
    assert_eq!(
        xml(&q.to_element(), ns::CLIENT),
        "<query xmlns='jabber:iq:roster' ver='v2'><item jid='romeo@example.net' \
         name='Romeo &amp; co' subscription='both' ask='subscribe' approved='true'>\
         <group>Friends</group></item></query>"
    );
    // Reading it back as client input drops the server-only flags.
    let back = RosterItem::from_element(&item.to_element()).unwrap();
    assert_eq!(
        back,
        RosterItem {
            ask: false,
            approved: false,
            ..item
        }
    );
    for s in [
        Subscription::None,
        Subscription::To,
        Subscription::From,
        Subscription::Both,
        Subscription::Remove,
    ] {
        assert_eq!(s.as_str().parse::<Subscription>().unwrap(), s);
    }
}

/// Found by `fuzz/` (target `stanza`, fuzz/regressions/stanza/): U+337A SQUARE IU was
/// unassigned in Unicode 3.2, so stringprep's case folding (RFC 3454 B.2) does not know
/// it, and NFKC then expands it to upper-case `IU`: `example㍺.com` became
/// `exampleIU.com`, which reads back as `exampleiu.com`. An address must mean the same
/// when a peer re-reads what we wrote; one that does not is malformed.
#[test]
fn address_whose_normalisation_is_not_stable_is_jid_malformed() {
    for addr in ["juliet@example&#x337A;.com", "ju&#x337A;liet@example.com"] {
        let (_, err) = invalid(&format!("<message to='{addr}'/>"));
        assert_eq!(err.condition, Cond::JidMalformed, "{addr}");
        let (_, err) = invalid(&format!("<presence from='{addr}'/>"));
        assert_eq!(err.condition, Cond::JidMalformed, "{addr}");
    }
    let roster =
        wire("<query xmlns='jabber:iq:roster'><item jid='nurse@example&#x337A;.com'/></query>");
    assert_eq!(
        RosterQuery::from_element(&roster).unwrap_err().condition,
        Cond::BadRequest
    );
    // Non-ASCII that normalises stably is still fine (resourceprep does not case-fold,
    // so NFKC alone is stable there).
    let Ok(Stanza::Message(m)) =
        parse("<message to='J&#xFC;liet@Ex&#xE4;mple.com/Caf&#xE9;&#x337A;'/>")
    else {
        panic!()
    };
    assert_eq!(m.to.unwrap().as_str(), "jüliet@exämple.com/CaféIU");
}
