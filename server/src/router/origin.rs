//! Where a stanza came from, and the one entry every stanza takes: [`Router::route`].
//!
//! A stanza reaches the router from a local client's session or from another domain
//! (s2s, Federation issue; later cluster peers). The handlers of requests any entity may
//! make (the server's disco, ping and version, an account's PEP service and disco, the
//! pubsub services, MAM) take an [`Origin`] and answer through [`Router::reply`], so the
//! same code serves a remote requester; what only the account's own client may do (roster,
//! presence broadcast, in-band registration changes) takes the session itself.

use std::net::IpAddr;
use std::sync::Arc;

use hydrant_proto::{
    Element, Iq, IqType, Jid, Message, MessageType, Presence, PresenceType, Stanza, StanzaError,
    StanzaErrorCondition as Cond, error_reply, ns,
};
use hydrant_stream::Frame;
use tracing::debug;

use hydrant_storage::SubState;

use super::remote::OnRefusal;
use super::sessions::LocalSession;
use super::{Dest, Router};
use crate::im::message::Carbons;
use crate::im::roster::presence_to;
use crate::pubsub::ServiceKey;

/// Who sent the stanza being handled.
#[derive(Clone, Copy)]
pub enum Origin<'a> {
    /// A bound local session: replies are queued on it directly.
    Session(&'a Arc<LocalSession>),
    /// Another domain, for the stanza's `from`, which s2s has checked against the domains
    /// the peer authenticated (a `from` it did not is an `<invalid-from/>` stream error,
    /// RFC 6120 4.9.3.9); replies go back through [`Router::route_remote`].
    Remote(&'a Jid),
}

impl<'a> From<&'a Arc<LocalSession>> for Origin<'a> {
    fn from(s: &'a Arc<LocalSession>) -> Self {
        Origin::Session(s)
    }
}

impl Origin<'_> {
    /// The sender's address (a full JID for a session).
    pub fn jid(&self) -> Jid {
        match self {
            Origin::Session(s) => s.info.jid.clone().into(),
            Origin::Remote(j) => (*j).clone(),
        }
    }

    /// The local session, when the sender is one.
    pub fn session(&self) -> Option<&Arc<LocalSession>> {
        match self {
            Origin::Session(s) => Some(s),
            Origin::Remote(_) => None,
        }
    }

    /// The client network, for the per-network read budget (`pubsub/reads.rs`). A remote
    /// domain has none here: its stream is bounded by the s2s queue instead.
    pub fn network(&self) -> Option<IpAddr> {
        self.session().map(|s| s.info.peer.ip())
    }

    /// Bytes a multi-stanza answer (a MAM page) may take: at most `cap`, and for a session
    /// at most half its queue limit less what is queued already, so an answer cannot
    /// overflow the asker's own stream.
    pub fn answer_budget(&self, cap: usize) -> usize {
        match self {
            Origin::Session(s) => cap
                .min(s.outbox.limit() / 2)
                .saturating_sub(s.outbox.queued_bytes()),
            Origin::Remote(_) => cap,
        }
    }
}

impl Router {
    /// The one entry for every stanza, whatever sent it (issue 9 item 3).
    pub async fn route(&self, origin: Origin<'_>, stanza: Stanza) {
        if let Origin::Session(me) = origin
            && self.refuse_blocked_outbound(me, &stanza)
        {
            // XEP-0191 3.3: nothing the user sends reaches a JID it blocks.
            return;
        }
        match origin {
            Origin::Session(me) => match stanza {
                Stanza::Message(m) => self.outbound_message(me, m).await,
                Stanza::Presence(p) => self.outbound_presence(me, p).await,
                Stanza::Iq(iq) => self.outbound_iq(me, iq).await,
            },
            Origin::Remote(from) => self.inbound_remote(from, stanza).await,
        }
    }

    /// Sends a reply or an error to whoever sent a request; false when it could not be
    /// queued. A reply is never bounced.
    pub fn reply(&self, to: Origin<'_>, el: &Element) -> bool {
        match to {
            Origin::Session(s) => s.send(el),
            Origin::Remote(j) => {
                self.route_remote(j, el.clone(), OnRefusal::Drop);
                true
            }
        }
    }

    /// [`Router::reply`] for a reply serialised already (pubsub results, MAM pages).
    pub fn reply_frame(&self, to: Origin<'_>, frame: Frame) -> bool {
        match to {
            Origin::Session(s) => s.outbox.push(frame).is_ok(),
            Origin::Remote(j) => {
                // Cold until s2s: the transport takes elements.
                if let Some(el) = frame.stanza_element() {
                    self.route_remote(j, el, OnRefusal::Drop);
                }
                true
            }
        }
    }

    /// The error reply to an iq request (never to a result or an error).
    pub fn iq_error(&self, to: Origin<'_>, iq: &Iq, err: StanzaError) {
        if iq.kind == IqType::Error || iq.kind == IqType::Result {
            return;
        }
        self.reply(to, &error_reply(&iq.to_element(ns::CLIENT), &err));
    }

    /// A stanza from another domain for this server (RFC 6120 10.3, 10.5; RFC 6121 8.5).
    /// `from` is the checked sender; the stanza's `to` is in one of our domains (s2s
    /// refuses any other with `<host-unknown/>`, RFC 6120 4.9.3.6).
    async fn inbound_remote(&self, from: &Jid, stanza: Stanza) {
        // Into the router's own namespace (`jabber:client`), with the checked `from`
        // written into the element too: the handlers read both. Messages and presence
        // (the bulk: notifications) are converted in place, not rebuilt and reparsed.
        let stanza = match stanza {
            Stanza::Message(mut m) => {
                m.element.rename_ns(ns::SERVER, ns::CLIENT);
                m.element.set_attr("from", from.as_str());
                m.from = Some(from.clone());
                Stanza::Message(m)
            }
            Stanza::Presence(mut p) => {
                p.element.rename_ns(ns::SERVER, ns::CLIENT);
                p.element.set_attr("from", from.as_str());
                p.from = Some(from.clone());
                Stanza::Presence(p)
            }
            mut iq @ Stanza::Iq(_) => {
                iq.set_from(Some(from.clone()));
                let Ok(iq) = Stanza::parse(iq.to_element(ns::CLIENT), ns::CLIENT) else {
                    return;
                };
                iq
            }
        };
        let origin = Origin::Remote(from);
        let to = stanza.to().cloned();
        let dest = self.classify(to.as_ref());
        if let Dest::Remote(_) = dest {
            // Not ours: a server does not relay between other domains; the sender learns
            // it rather than losing the stanza silently.
            debug!(%from, "a stanza from another domain for a third one");
            let el = stanza.to_element(ns::CLIENT);
            return self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
        }
        match stanza {
            Stanza::Message(m) => self.inbound_message(from, dest, m).await,
            Stanza::Iq(iq) => self.iq_to(origin, dest, iq).await,
            Stanza::Presence(p) => self.inbound_presence(from, dest, p).await,
        }
    }

    /// A message from another domain: delivered as a local user's would be.
    async fn inbound_message(&self, from: &Jid, dest: Dest<'_>, m: Message) {
        let mut el = m.element;
        if crate::im::carbons::strip_forged(&mut el) {
            // XEP-0280 11: a carbon comes from the user's own server, never from another.
            debug!(%from, "carbons wrapper removed from another domain's message");
        }
        let kind = m.kind;
        match dest {
            Dest::Server => {
                // XEP-0033: our domain is its multicast service.
                let Err(el) = self.multicast_in(Origin::Remote(from), el).await else {
                    return;
                };
                if kind != MessageType::Error && kind != MessageType::Headline {
                    self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
                }
            }
            Dest::Service(addr) => {
                if kind == MessageType::Error {
                    self.to_service(addr, &el);
                } else {
                    self.pubsub_message(Origin::Remote(from), addr.to_owned(), el)
                        .await;
                }
            }
            Dest::LocalBare(_) | Dest::LocalFull(_) => {
                self.message_to_local(dest, el, kind, Carbons::Copy).await;
            }
            Dest::Remote(_) => {}
        }
    }

    /// Presence from another domain (RFC 6121 3 and 4, the contact's server's side).
    pub(crate) async fn inbound_presence(&self, from: &Jid, dest: Dest<'_>, p: Presence) {
        let el = p.element;
        let (user, full) = match dest {
            Dest::LocalBare(user) => (user, None),
            Dest::LocalFull(f) => (f.node().map_or("", |n| n.as_str()), Some(f)),
            // XEP-0033: presence for each of the addresses of a multicast request.
            Dest::Server if p.kind != PresenceType::Error => {
                let _ = Box::pin(self.multicast_in(Origin::Remote(from), el)).await;
                return;
            }
            // Presence to the server or a service: nothing to do (the services keep no
            // presence of other domains' users).
            _ => return,
        };
        let blocked = match p.kind {
            // Availability reaches sessions only: the list in memory is the one to ask.
            PresenceType::Available | PresenceType::Unavailable | PresenceType::Error => {
                self.sessions.blocks(user, from)
            }
            _ => self.blocks(user, from).await,
        };
        if blocked {
            // XEP-0191 3.3: "For presence stanzas (including notifications,
            // subscriptions, and probes), the server MUST NOT respond and MUST NOT return
            // an error."
            return;
        }
        let from_bare = from.to_bare().to_string();
        let to_bare = self.bare_of(user);
        let kind_s = match p.kind {
            PresenceType::Subscribe => "subscribe",
            PresenceType::Subscribed => "subscribed",
            PresenceType::Unsubscribe => "unsubscribe",
            PresenceType::Unsubscribed => "unsubscribed",
            PresenceType::Probe => {
                return self.answer_probe(from, user).await;
            }
            PresenceType::Available | PresenceType::Unavailable | PresenceType::Error => {
                // RFC 6121 4.2.3, 4.6.4: to the named resource, or every available one.
                match full {
                    Some(f) => {
                        if let Some(s) = self.sessions.get(f) {
                            s.send(&el);
                        }
                    }
                    None => self.presence_to_available(user, &el),
                }
                // The contact's caps: its PEP +notify interest (XEP-0163 4.3).
                if p.kind != PresenceType::Error {
                    self.remote_presence_for_pep(user, from, &el).await;
                }
                return;
            }
        };
        // RFC 6121 3.1.3 etc.: subscription states are between bare JIDs.
        let mut el = el;
        el.set_attr("from", from_bare.as_str());
        el.set_attr("to", to_bare.as_str());
        self.inbound_subscription(&from_bare, &to_bare, kind_s, el)
            .await;
    }

    /// An iq for `dest`, from any origin (RFC 6120 8.2.3, 10.5; RFC 6121 8.5).
    pub async fn iq_to(&self, origin: Origin<'_>, dest: Dest<'_>, iq: Iq) {
        match dest {
            Dest::Server => self.server_iq(origin, iq).await,
            Dest::LocalBare(target) => {
                let target = target.to_owned();
                self.account_iq(origin, &target, iq).await;
            }
            Dest::LocalFull(full) => {
                // XEP-0191 3.3: an iq from a JID the account blocks is answered as for a
                // resource that is not there (get/set) or dropped.
                let from = origin.jid();
                if let Some(s) = self.sessions.get_unless_blocked(full, Some(&from)) {
                    s.send(&iq.to_element(ns::CLIENT));
                } else {
                    // RFC 6121 8.5.3.2.1: no such resource.
                    self.iq_error(origin, &iq, StanzaError::new(Cond::ServiceUnavailable));
                }
            }
            Dest::Remote(to) => {
                let to = to.clone();
                self.route_remote(&to, iq.to_element(ns::CLIENT), OnRefusal::Bounce);
            }
            Dest::Service(addr) => {
                let key = ServiceKey::Component(addr.to_owned());
                self.pubsub_iq(origin, iq, key).await;
            }
        }
    }

    /// RFC 6121 4.3.2: a probe from a contact in another domain. A contact with a
    /// subscription to the user's presence gets each available resource's last presence,
    /// or `unavailable` when none is; anyone else learns nothing but `unsubscribed`.
    async fn answer_probe(&self, from: &Jid, user: &str) {
        let from_bare = from.to_bare().to_string();
        let to_bare = self.bare_of(user);
        let subscribed = self
            .roster_entry(user, &from_bare)
            .await
            .is_some_and(|e| matches!(e.subscription, SubState::From | SubState::Both));
        if !subscribed {
            let p = presence_to(&to_bare, from.as_str(), "unsubscribed");
            return self.route_remote(from, p, OnRefusal::Drop);
        }
        let mut sent = false;
        for mut p in self.presences_of(user, None) {
            p.set_attr("to", from.as_str());
            self.route_remote(from, p, OnRefusal::Drop);
            sent = true;
        }
        if !sent {
            let p = presence_to(&to_bare, from.as_str(), "unavailable");
            self.route_remote(from, p, OnRefusal::Drop);
        }
    }
}
