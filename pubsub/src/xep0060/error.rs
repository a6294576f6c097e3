//! The one mapping from domain [`Error`]s to XEP-0060 wire errors (XEP-0060 7–8 error
//! cases, and the `pubsub#errors` conditions of its section 14).

use hydrant_proto::{Element, ErrorType, StanzaError, StanzaErrorCondition as C, ns};

use crate::error::Error;

/// `<error type=..><condition xmlns=stanzas/><pubsub-condition
/// xmlns='http://jabber.org/protocol/pubsub#errors' [feature=..]/></error>` as a value.
pub fn to_stanza_error(e: &Error) -> StanzaError {
    // (stanza condition, error type, pubsub#errors condition)
    let (cond, kind, app): (C, ErrorType, Option<&str>) = match e {
        Error::BadRequest(_) => (C::BadRequest, ErrorType::Modify, None),
        Error::NodeNotFound | Error::ItemNotFound => (C::ItemNotFound, ErrorType::Cancel, None),
        Error::Forbidden => (C::Forbidden, ErrorType::Auth, None),
        Error::NodeExists => (C::Conflict, ErrorType::Cancel, None),
        Error::InvalidJid => (C::BadRequest, ErrorType::Modify, Some("invalid-jid")),
        Error::JidRequired => (C::BadRequest, ErrorType::Modify, Some("jid-required")),
        Error::JidMalformed => (C::JidMalformed, ErrorType::Modify, None),
        Error::NodeIdRequired => (C::BadRequest, ErrorType::Modify, Some("nodeid-required")),
        Error::ItemRequired => (C::BadRequest, ErrorType::Modify, Some("item-required")),
        Error::PayloadRequired => (C::BadRequest, ErrorType::Modify, Some("payload-required")),
        Error::ItemForbidden => (C::BadRequest, ErrorType::Modify, Some("item-forbidden")),
        Error::InvalidPayload => (C::BadRequest, ErrorType::Modify, Some("invalid-payload")),
        Error::PayloadTooBig { .. } => {
            (C::NotAcceptable, ErrorType::Modify, Some("payload-too-big"))
        }
        Error::PreconditionNotMet { .. } => {
            (C::Conflict, ErrorType::Cancel, Some("precondition-not-met"))
        }
        Error::PresenceSubscriptionRequired => (
            C::NotAuthorized,
            ErrorType::Auth,
            Some("presence-subscription-required"),
        ),
        Error::NotInRosterGroup => (
            C::NotAuthorized,
            ErrorType::Auth,
            Some("not-in-roster-group"),
        ),
        Error::ClosedNode => (C::NotAllowed, ErrorType::Cancel, Some("closed-node")),
        Error::PendingSubscription => (
            C::NotAuthorized,
            ErrorType::Auth,
            Some("pending-subscription"),
        ),
        Error::NotSubscribed => (
            C::UnexpectedRequest,
            ErrorType::Cancel,
            Some("not-subscribed"),
        ),
        Error::ItemsRequireSubscription => {
            (C::NotAuthorized, ErrorType::Auth, Some("not-subscribed"))
        }
        Error::SubIdRequired => (C::BadRequest, ErrorType::Modify, Some("subid-required")),
        Error::InvalidSubId => (C::NotAcceptable, ErrorType::Modify, Some("invalid-subid")),
        Error::InvalidOptions(_) => (C::BadRequest, ErrorType::Modify, Some("invalid-options")),
        Error::InvalidConfig { .. } | Error::NotAcceptable(_) => {
            (C::NotAcceptable, ErrorType::Modify, None)
        }
        Error::BadForm(_) => (C::BadRequest, ErrorType::Modify, None),
        Error::TooManySubscriptions => (
            C::PolicyViolation,
            ErrorType::Wait,
            Some("too-many-subscriptions"),
        ),
        Error::TooManyIds { .. } => (C::PolicyViolation, ErrorType::Modify, None),
        Error::TooManyNodes { .. } => (C::NotAllowed, ErrorType::Cancel, None),
        Error::Unsupported { .. } => (
            C::FeatureNotImplemented,
            ErrorType::Cancel,
            Some("unsupported"),
        ),
        Error::Store(_) => (C::InternalServerError, ErrorType::Wait, None),
    };
    let mut err = StanzaError::new(cond).with_type(kind);
    if let Some(name) = app {
        let mut el = Element::new(name, ns::PUBSUB_ERRORS);
        if let Error::Unsupported { feature } = e {
            el.set_attr("feature", *feature);
        }
        err = err.with_app(el);
    }
    // Say which field was at fault; store errors stay in the logs, not on the wire.
    match e {
        Error::PreconditionNotMet { field } | Error::InvalidConfig { field } => {
            err = err.with_text(field.clone());
        }
        Error::InvalidOptions(field) => err = err.with_text(field.clone()),
        Error::TooManyNodes { limit } => {
            err = err.with_text(format!("at most {limit} nodes per creator"));
        }
        Error::TooManyIds { limit } => {
            err = err.with_text(format!("at most {limit} item ids per request"));
        }
        Error::BadRequest(why) | Error::BadForm(why) | Error::NotAcceptable(why) => {
            err = err.with_text(*why);
        }
        _ => {}
    }
    err
}
