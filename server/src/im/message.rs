//! Message routing (RFC 6121 section 8.5) and offline storage.

use hydrant_proto::{Element, Message, MessageType, StanzaError, StanzaErrorCondition as Cond, ns};
use std::sync::Arc;

use tracing::{debug, warn};

use crate::im::carbons;

use crate::router::remote::OnRefusal;
use crate::router::sessions::LocalSession;
use crate::router::{Dest, Router};

/// Whether a local delivery makes XEP-0280 copies: not when a message is handed on again
/// (a stream-managed session's unacknowledged stanzas), whose copies were made the first
/// time.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Carbons {
    Copy,
    NoCopy,
}

impl Router {
    pub async fn outbound_message(&self, me: &Arc<LocalSession>, m: Message) {
        let mut el = m.element.clone();
        el.set_attr("from", me.info.jid.to_string());
        if carbons::strip_forged(&mut el) {
            // XEP-0280 11: only the server writes carbons.
            debug!(jid = %me.info.jid, "carbons wrapper removed from a client's message");
        }
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
            Dest::Remote(to) => {
                self.carbons_sent(me, &el);
                self.route_remote(to, el, OnRefusal::Bounce);
            }
            Dest::Service(addr) => {
                if !is_error {
                    self.pubsub_message(me.into(), addr.to_owned(), el).await;
                }
            }
            Dest::LocalBare(_) | Dest::LocalFull(_) => {
                self.carbons_sent(me, &el);
                self.message_to_local(dest, el, m.kind, Carbons::Copy).await;
            }
        }
    }

    /// A message for a local account, from anyone (RFC 6121 8.5.2, 8.5.3); `carbons`
    /// says whether the account's carbons-enabled sessions get copies (XEP-0280 7).
    pub(crate) async fn message_to_local(
        &self,
        dest: Dest<'_>,
        el: Element,
        kind: MessageType,
        carbons: Carbons,
    ) {
        let user = match dest {
            Dest::LocalBare(user) => user.to_owned(),
            Dest::LocalFull(full) => crate::router::sessions::username(full),
            Dest::Server | Dest::Service(_) | Dest::Remote(_) => return,
        };
        if self.blocks_sender(&user, &el).await {
            // XEP-0191 3.3: "For message stanzas, the server SHOULD return an error,
            // which SHOULD be <service-unavailable/>": what an offline user's server
            // answers, so the user appears offline to the blocked JID.
            if kind != MessageType::Error {
                self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
            }
            return;
        }
        match dest {
            Dest::LocalBare(user) => self.message_to_bare(user, el, kind, carbons).await,
            Dest::LocalFull(full) => {
                if let Some(s) = self.sessions.get(full) {
                    s.send(&el);
                    if carbons == Carbons::Copy {
                        self.carbons_received(&user, &el, &[s.info.id]);
                    }
                    return;
                }
                // RFC 6121 8.5.3.2.1: no such resource.
                match kind {
                    MessageType::Normal | MessageType::Chat | MessageType::Headline => {
                        self.message_to_bare(&user, el, kind, carbons).await;
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
    async fn message_to_bare(&self, user: &str, el: Element, kind: MessageType, carbons: Carbons) {
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
        let mut delivered = Vec::new();
        for s in self.sessions.of_user(user) {
            if s.available_with_priority().is_some_and(|p| p >= 0) && s.send(&el) {
                delivered.push(s.info.id);
            }
        }
        if carbons == Carbons::Copy {
            // XEP-0280 7: those that did not get it (negative priority, no presence)
            // get a copy, whether it was delivered or is stored.
            self.carbons_received(user, &el, &delivered);
        }
        if !delivered.is_empty() || kind == MessageType::Headline {
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
