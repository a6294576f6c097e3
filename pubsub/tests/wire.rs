//! The wire layer on its own: the one error mapping, request parsing of bad input.

mod common;

use common::*;
use hydrant_proto::{IqType, ns};
use hydrant_pubsub::xep0060::{self, error::to_stanza_error};
use hydrant_pubsub::{Error, StoreError};

#[test]
fn every_error_maps_to_its_xep_0060_condition() {
    let table: Vec<(Error, &str, &str, Option<&str>)> = vec![
        (Error::BadRequest("x"), "modify", "bad-request", None),
        (Error::NodeNotFound, "cancel", "item-not-found", None),
        (Error::ItemNotFound, "cancel", "item-not-found", None),
        (Error::Forbidden, "auth", "forbidden", None),
        (Error::NodeExists, "cancel", "conflict", None),
        (
            Error::InvalidJid,
            "modify",
            "bad-request",
            Some("invalid-jid"),
        ),
        (
            Error::JidRequired,
            "modify",
            "bad-request",
            Some("jid-required"),
        ),
        (Error::JidMalformed, "modify", "jid-malformed", None),
        (
            Error::NodeIdRequired,
            "modify",
            "bad-request",
            Some("nodeid-required"),
        ),
        (
            Error::ItemRequired,
            "modify",
            "bad-request",
            Some("item-required"),
        ),
        (
            Error::PayloadRequired,
            "modify",
            "bad-request",
            Some("payload-required"),
        ),
        (
            Error::ItemForbidden,
            "modify",
            "bad-request",
            Some("item-forbidden"),
        ),
        (
            Error::InvalidPayload,
            "modify",
            "bad-request",
            Some("invalid-payload"),
        ),
        (
            Error::PayloadTooBig { size: 2, limit: 1 },
            "modify",
            "not-acceptable",
            Some("payload-too-big"),
        ),
        (
            Error::PreconditionNotMet { field: "f".into() },
            "cancel",
            "conflict",
            Some("precondition-not-met"),
        ),
        (
            Error::PresenceSubscriptionRequired,
            "auth",
            "not-authorized",
            Some("presence-subscription-required"),
        ),
        (
            Error::NotInRosterGroup,
            "auth",
            "not-authorized",
            Some("not-in-roster-group"),
        ),
        (
            Error::ClosedNode,
            "cancel",
            "not-allowed",
            Some("closed-node"),
        ),
        (
            Error::PendingSubscription,
            "auth",
            "not-authorized",
            Some("pending-subscription"),
        ),
        (
            Error::NotSubscribed,
            "cancel",
            "unexpected-request",
            Some("not-subscribed"),
        ),
        (
            Error::ItemsRequireSubscription,
            "auth",
            "not-authorized",
            Some("not-subscribed"),
        ),
        (
            Error::SubIdRequired,
            "modify",
            "bad-request",
            Some("subid-required"),
        ),
        (
            Error::InvalidSubId,
            "modify",
            "not-acceptable",
            Some("invalid-subid"),
        ),
        (
            Error::InvalidOptions("f".into()),
            "modify",
            "bad-request",
            Some("invalid-options"),
        ),
        (
            Error::InvalidConfig { field: "f".into() },
            "modify",
            "not-acceptable",
            None,
        ),
        (Error::BadForm("x"), "modify", "bad-request", None),
        (Error::NotAcceptable("x"), "modify", "not-acceptable", None),
        (
            Error::TooManySubscriptions,
            "wait",
            "policy-violation",
            Some("too-many-subscriptions"),
        ),
        (
            Error::TooManyNodes { limit: 3 },
            "cancel",
            "not-allowed",
            None,
        ),
        (
            Error::TooManyIds { limit: 3 },
            "modify",
            "policy-violation",
            None,
        ),
        (
            Error::Unsupported {
                feature: "purge-nodes",
            },
            "cancel",
            "feature-not-implemented",
            Some("unsupported"),
        ),
        (
            Error::Store(StoreError("x".into())),
            "wait",
            "internal-server-error",
            None,
        ),
    ];
    for (e, kind, cond, app) in table {
        let s = to_stanza_error(&e);
        assert_eq!(s.kind.as_str(), kind, "{e:?}");
        assert_eq!(s.condition.as_str(), cond, "{e:?}");
        assert_eq!(
            s.app.as_ref().map(hydrant_proto::Element::name),
            app,
            "{e:?}"
        );
        if let Some(a) = &s.app {
            assert_eq!(a.ns(), ns::PUBSUB_ERRORS);
        }
    }
    let el = to_stanza_error(&Error::Unsupported {
        feature: "purge-nodes",
    })
    .to_element(ns::CLIENT);
    assert_eq!(
        el.to_bytes(ns::CLIENT),
        b"<error type='cancel'><feature-not-implemented xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
          <unsupported xmlns='http://jabber.org/protocol/pubsub#errors' feature='purge-nodes'/></error>"
    );
    // Store details stay off the wire.
    assert!(
        to_stanza_error(&Error::Store(StoreError("secret path".into())))
            .text
            .is_none()
    );
}

#[test]
fn malformed_requests() {
    let bad = |kind, s: &str| xep0060::parse(kind, &xml(s)).unwrap_err();
    assert!(matches!(
        bad(IqType::Set, "<query xmlns='urn:other'/>"),
        Error::BadRequest(_)
    ));
    assert!(matches!(
        bad(IqType::Result, &ps("<items node='n'/>")),
        Error::BadRequest(_)
    ));
    assert!(matches!(bad(IqType::Set, &ps("")), Error::BadRequest(_)));
    assert!(
        matches!(
            bad(IqType::Set, &ps("<items node='n'/>")),
            Error::BadRequest(_)
        ),
        "items is a get"
    );
    assert!(
        matches!(
            bad(IqType::Get, &ps("<publish node='n'/>")),
            Error::BadRequest(_)
        ),
        "publish is a set"
    );
    assert!(matches!(
        bad(IqType::Set, &ps("<frobnicate/>")),
        Error::BadRequest(_)
    ));
    // An address whose normalised form is another address (U+1F130 folds to `A`, which
    // folds again to `a`): refused, as in stanza addresses (proto/src/address.rs).
    assert_eq!(
        bad(
            IqType::Set,
            &ps("<subscribe node='n' jid='\u{1F130}lice@example.com'/>")
        ),
        Error::JidMalformed
    );
    assert!(matches!(
        bad(IqType::Set, &owner("<frobnicate/>")),
        Error::BadRequest(_)
    ));
    assert!(matches!(
        bad(
            IqType::Set,
            &ps(
                "<publish node='n'><item id='1'><a xmlns='a'/></item><item id='2'><a xmlns='a'/></item></publish>"
            )
        ),
        Error::BadRequest(_)
    ));
    assert!(matches!(
        bad(
            IqType::Set,
            &ps("<retract node='n' notify='perhaps'><item id='1'/></retract>")
        ),
        Error::BadRequest(_)
    ));
    assert!(matches!(
        bad(IqType::Set, &owner("<configure node='n'/>")),
        Error::BadForm(_)
    ));
    assert!(matches!(
        bad(
            IqType::Set,
            &owner("<configure node='n'><x xmlns='jabber:x:data' type='result'/></configure>")
        ),
        Error::BadForm(_)
    ));
    assert!(matches!(
        bad(
            IqType::Set,
            &owner(
                "<subscriptions node='n'><subscription jid='a@b' subscription='maybe'/></subscriptions>"
            )
        ),
        Error::BadRequest(_)
    ));
    assert!(matches!(
        bad(
            IqType::Set,
            &owner("<subscriptions node='n'><subscription subscription='none'/></subscriptions>")
        ),
        Error::JidRequired
    ));
    assert!(matches!(
        bad(IqType::Set, &owner("<delete/>")),
        Error::NodeIdRequired
    ));
    assert!(matches!(
        bad(IqType::Set, &owner("<purge node=''/>")),
        Error::NodeIdRequired
    ));
    // Authorization forms.
    let auth = |fields: &[(&str, &str)]| {
        xep0060::parse_authorization(&xml(&form(
            "http://jabber.org/protocol/pubsub#subscribe_authorization",
            fields,
        )))
    };
    assert!(matches!(
        auth(&[("pubsub#subscriber_jid", "a@b"), ("pubsub#allow", "1")]),
        Err(Error::NodeIdRequired)
    ));
    assert!(matches!(
        auth(&[("pubsub#node", "n"), ("pubsub#allow", "1")]),
        Err(Error::JidRequired)
    ));
    assert!(matches!(
        auth(&[
            ("pubsub#node", "n"),
            ("pubsub#subscriber_jid", "a@b"),
            ("pubsub#allow", "x")
        ]),
        Err(Error::BadForm(_))
    ));
    assert!(matches!(
        xep0060::parse_authorization(&xml(&form("urn:wrong", &[]))),
        Err(Error::BadForm(_))
    ));
}

#[test]
fn parse_builds_typed_requests() {
    let r = xep0060::parse(
        IqType::Get,
        &xml(&ps("<items node='n' max_items='3' subid='s'/><set xmlns='http://jabber.org/protocol/rsm'><max>5</max><after>x</after></set>")),
    )
    .unwrap();
    let hydrant_pubsub::Request::Items {
        node,
        subid,
        max_items,
        ids,
        rsm,
    } = r
    else {
        panic!("{r:?}")
    };
    assert_eq!(node.as_str(), "n");
    assert_eq!(subid.unwrap().as_str(), "s");
    assert_eq!(max_items, Some(3));
    assert!(ids.is_empty());
    let rsm = rsm.unwrap();
    assert_eq!(
        (rsm.max, rsm.after.as_deref(), rsm.before),
        (Some(5), Some("x"), None)
    );
}
