//! Stanzas a stream-managed client never acknowledged (XEP-0198), once its session ended
//! without a resumption: each is handled as if it arrived now for a resource that is
//! gone, as RFC 6121 8.5.3.2 and RFC 6120 10.5.3 say.

use hydrant_c2s::SessionInfo;
use hydrant_proto::{Element, MessageType, StanzaError, StanzaErrorCondition as Cond, ns};

use crate::im::message::Carbons;
use crate::router::sessions::username;
use crate::router::{Dest, Router};

impl Router {
    pub(crate) async fn undelivered_stanzas(&self, session: &SessionInfo, stanzas: Vec<Element>) {
        let user = username(&session.jid);
        for el in stanzas {
            match el.name() {
                "message" => self.undelivered_message(session, &user, el).await,
                // RFC 6120 10.5.3.1 / 8.3.1: a request nobody will answer gets
                // <service-unavailable/>; results and errors are dropped.
                "iq" if matches!(el.attr("type"), Some("get" | "set")) => {
                    self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
                }
                // Presence is state, not a message: the contact's next presence tells.
                _ => {}
            }
        }
    }

    async fn undelivered_message(&self, session: &SessionInfo, user: &str, el: Element) {
        let kind = MessageType::from_attr(el.attr("type"));
        if el.get_child("event", ns::PUBSUB_EVENT).is_some() {
            // A pubsub notification: the subscriber catches up from the node (README,
            // slow consumers), as it would after any disconnection.
            return;
        }
        if crate::im::carbons::is_carbon(&el) {
            // A XEP-0280 copy: the account's other sessions had their own, and the copy
            // of a copy would reach them as a message from their own account (10.3: a
            // copy's failure goes nowhere).
            return;
        }
        let to_full = el.attr("to") == Some(session.jid.to_string().as_str());
        if to_full {
            // RFC 6121 8.5.3.2.1: the resource is gone; chat and normal go to the bare
            // JID (other resources, else offline storage), groupchat is bounced.
            self.message_to_local(Dest::LocalFull(&session.jid), el, kind, Carbons::NoCopy)
                .await;
            return;
        }
        // Sent to the bare JID: every other available resource had its own copy, so it
        // is only stored when there is none (no duplicate on the other devices).
        let others = self
            .sessions
            .of_user(user)
            .iter()
            .any(|s| s.available_with_priority().is_some_and(|p| p >= 0));
        if !others {
            self.message_to_local(Dest::LocalBare(user), el, kind, Carbons::NoCopy)
                .await;
        }
    }
}
