//! Message routing (RFC 6121 section 8.5) and offline storage.

use hydrant_proto::{Element, Message, MessageType, StanzaError, StanzaErrorCondition as Cond, ns};
use std::sync::Arc;

use tracing::warn;

use crate::router::remote::OnRefusal;
use crate::router::sessions::LocalSession;
use crate::router::{Dest, Router};

impl Router {
    pub async fn outbound_message(&self, me: &Arc<LocalSession>, m: Message) {
        let mut el = m.element.clone();
        el.set_attr("from", me.info.jid.to_string());
        let is_error = m.kind == MessageType::Error;
        // RFC 6120 10.3.1: a message without 'to' is for the sender's own bare JID.
        let own = crate::router::sessions::username(&me.info.jid);
        let dest = match m.to.as_ref() {
            None => Dest::LocalBare(&own),
            Some(to) => self.classify(Some(to)),
        };
        match dest {
            Dest::Server => {
                // XEP-0033: our domain is its multicast service.
                let Err(el) = self.multicast_in(me.into(), el).await else {
                    return;
                };
                // RFC 6121 8.5.1 / RFC 6120 10.3: the server has no message service.
                if !is_error && m.kind != MessageType::Headline {
                    self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
                }
            }
            // Errors go too (s2s delivers them); a refused one is not bounced.
            Dest::Remote(to) => self.route_remote(to, el, OnRefusal::Bounce),
            Dest::Service(addr) => {
                if !is_error {
                    self.pubsub_message(me.into(), addr.to_owned(), el).await;
                }
            }
            Dest::LocalBare(_) | Dest::LocalFull(_) => {
                self.message_to_local(dest, el, m.kind).await;
            }
        }
    }

    /// A message for a local account, from anyone (RFC 6121 8.5.2, 8.5.3).
    pub(crate) async fn message_to_local(&self, dest: Dest<'_>, el: Element, kind: MessageType) {
        match dest {
            Dest::LocalBare(user) => self.message_to_bare(user, el, kind).await,
            Dest::LocalFull(full) => {
                if let Some(s) = self.sessions.get(full) {
                    s.send(&el);
                    return;
                }
                // RFC 6121 8.5.3.2.1: no such resource.
                match kind {
                    MessageType::Normal | MessageType::Chat | MessageType::Headline => {
                        let user = crate::router::sessions::username(full);
                        self.message_to_bare(&user, el, kind).await;
                    }
                    MessageType::Groupchat => {
                        self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
                    }
                    MessageType::Error => {}
                }
            }
            Dest::Server | Dest::Service(_) | Dest::Remote(_) => {}
        }
    }

    /// RFC 6121 8.5.2: a message for a local account's bare JID.
    async fn message_to_bare(&self, user: &str, el: Element, kind: MessageType) {
        if !self.account_exists(user).await {
            // 8.5.2 (no such user): <service-unavailable/>, never for error messages.
            if kind != MessageType::Error {
                self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
            }
            return;
        }
        match kind {
            // 8.5.2.1.1: groupchat to a bare JID is refused; error messages dropped.
            MessageType::Groupchat => {
                return self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
            }
            MessageType::Error => return,
            _ => {}
        }
        // 8.5.2.1.1: delivered to every available resource with non-negative priority.
        let mut delivered = false;
        for s in self.sessions.of_user(user) {
            if s.available_with_priority().is_some_and(|p| p >= 0) && s.send(&el) {
                delivered = true;
            }
        }
        if delivered || kind == MessageType::Headline {
            // 8.5.2.2.1: a headline with nobody online is silently dropped.
            return;
        }
        self.store_offline(user, el).await;
    }

    /// Stores a message for later delivery with a XEP-0203 delay stamp; a full store
    /// answers the sender with <service-unavailable/> (RFC 6121 8.5.2.2.1).
    async fn store_offline(&self, user: &str, mut el: Element) {
        // A message stored before (delivered from storage, never acknowledged, stored
        // again: XEP-0198) keeps its first stamp, the time it really arrived.
        if el.get_child("delay", ns::DELAY).is_none() {
            let stamp = hydrant_proto::datetime::format(crate::pubsub::now_ms());
            el.append_child(
                Element::new("delay", ns::DELAY)
                    .with_attr("from", self.domain.as_str())
                    .with_attr("stamp", stamp)
                    .with_text("Offline storage"),
            );
        }
        let bytes = el.to_bytes(ns::CLIENT);
        let (u, max) = (user.to_owned(), self.cfg.offline_max);
        match self.db.run(move |s| s.store_offline(&u, &bytes, max)).await {
            Ok(true) => {}
            Ok(false) => self.bounce(
                &el,
                StanzaError::new(Cond::ServiceUnavailable).with_text("offline storage full"),
            ),
            Err(e) => {
                warn!(error = %e, "offline store failed");
                self.bounce(&el, StanzaError::new(Cond::InternalServerError));
            }
        }
    }
}
