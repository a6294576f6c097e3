//! XEP-0077 in-band registration before authentication (section 3.1).
//!
//! Only account creation happens here; password change and cancellation need an
//! authenticated session and are routed to the server like any other iq.
//!
//! Abuse limits: the name is checked (nodeprep) before the server is asked, each client
//! network has a budget of registrations per hour (the throttle), and one stream may
//! send `max_registration_attempts` requests before it is closed.

use hydrant_proto::{
    Element, ErrorType, Iq, IqType, StanzaError, StanzaErrorCondition as Cond, StreamError,
    StreamErrorCondition as StreamCond, error_reply, ns,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use crate::backend::{Backend, RegisterError};
use crate::stream::Stream;

impl<S, B> Stream<'_, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    pub(crate) fn is_register_iq(&self, el: &Element) -> bool {
        let to_us = el
            .attr("to")
            .is_none_or(|to| to.eq_ignore_ascii_case(&self.cfg().domain));
        to_us && el.get_child("query", ns::REGISTER).is_some()
    }

    pub(crate) async fn on_register(&mut self, el: Element) {
        if !self.cfg().allow_registration || !self.may_authenticate() {
            // XEP-0077 3.1: a server that does not allow registration answers
            // <service-unavailable/>.
            return self.reply_error(&el, StanzaError::new(Cond::ServiceUnavailable));
        }
        let iq = match Iq::try_from_element(el.clone()) {
            Ok(iq) => iq,
            Err(e) => return self.reply_error(&el, e),
        };
        let Some(query) = iq.payload.as_ref() else {
            return self.reply_error(&el, StanzaError::new(Cond::BadRequest));
        };
        match iq.kind {
            IqType::Get => {
                let form = Element::new("query", ns::REGISTER)
                    .with_child(
                        Element::new("instructions", ns::REGISTER)
                            .with_text("Choose a username and password for use with this service."),
                    )
                    .with_child(Element::new("username", ns::REGISTER))
                    .with_child(Element::new("password", ns::REGISTER));
                let reply = iq.result(Some(form));
                self.send_element(&reply.to_element(ns::CLIENT));
            }
            IqType::Set => {
                if query.get_child("remove", ns::REGISTER).is_some() {
                    // Cancelling needs an authenticated account (XEP-0077 3.2).
                    return self.reply_error(&el, StanzaError::new(Cond::NotAuthorized));
                }
                self.register_attempts += 1;
                if self.register_attempts > self.cfg().max_registration_attempts {
                    // XEP-0077 3.1.1: a server MAY answer <not-acceptable/> to an entity
                    // that "attempts to register too many times before authenticating";
                    // the stream then ends, as after too many SASL failures.
                    self.reply_error(&el, not_acceptable());
                    return self.stream_error(
                        StreamError::new(StreamCond::PolicyViolation)
                            .with_text("too many registration attempts"),
                    );
                }
                let username = query.get_child("username", ns::REGISTER).map(Element::text);
                let password = query.get_child("password", ns::REGISTER).map(Element::text);
                let (Some(username), Some(password)) = (username, password) else {
                    return self.reply_error(&el, not_acceptable());
                };
                // RFC 7622 nodeprep (which also bounds the length, 1023 bytes); a name
                // whose nodeprep form is not stable would become another user's address
                // once re-read (hydrant_proto::address).
                let normalized = hydrant_proto::address::nodepart(username.trim());
                let (Some(user), false) = (normalized, password.is_empty()) else {
                    return self.reply_error(&el, not_acceptable());
                };
                let ip = self.peer.ip();
                let per_hour = self.cfg().registrations_per_ip_per_hour;
                if let Err(wait) = self.shared.throttle.registration_attempt(ip, per_hour) {
                    info!(peer = %self.peer, ?wait, "registration refused: rate per network");
                    metrics::counter!("hydrant_c2s_registrations_throttled_total").increment(1);
                    // RFC 6120 8.3.3.18: <resource-constraint/> of type wait, "the
                    // requesting entity may try again later" (as ejabberd answers).
                    return self.reply_error(
                        &el,
                        StanzaError::new(Cond::ResourceConstraint)
                            .with_type(ErrorType::Wait)
                            .with_text("too many registrations from your network; try again later"),
                    );
                }
                let result = self.shared.backend.register(&user, &password).await;
                if !matches!(result, Ok(()) | Err(RegisterError::Internal)) {
                    // Refused before any key was derived: the attempt is not counted
                    // against the network (a taken name must not cost a legitimate user).
                    self.shared.throttle.registration_refund(ip, per_hour);
                }
                match result {
                    Ok(()) => {
                        info!(peer = %self.peer, user = %user, "registered in-band");
                        self.send_element(&iq.result(None).to_element(ns::CLIENT));
                    }
                    Err(RegisterError::Conflict) => {
                        self.reply_error(&el, StanzaError::new(Cond::Conflict));
                    }
                    Err(RegisterError::NotAcceptable) => self.reply_error(&el, not_acceptable()),
                    Err(RegisterError::NotAllowed) => self.reply_error(
                        &el,
                        StanzaError::new(Cond::NotAllowed)
                            .with_text("this server accepts no new accounts now"),
                    ),
                    Err(_) => self.reply_error(&el, StanzaError::new(Cond::InternalServerError)),
                }
            }
            IqType::Result | IqType::Error => {}
        }
    }

    pub(crate) fn reply_error(&mut self, original: &Element, err: StanzaError) {
        // RFC 6120 8.3.1: never answer an error with an error.
        if original.attr("type") == Some("error") {
            return;
        }
        self.send_element(&error_reply(original, &err));
    }
}

/// XEP-0077 3.1: missing or unacceptable registration data.
fn not_acceptable() -> StanzaError {
    StanzaError::new(Cond::NotAcceptable).with_type(ErrorType::Modify)
}
