//! Presence (RFC 6121 sections 3 and 4): broadcast, probes, directed presence and the
//! subscription handshake, in two halves: what the user's server does with a client's
//! outbound presence, and what the contact's server does with an inbound one. Both
//! halves run here for local contacts; s2s will feed the inbound half for remote ones.

use std::sync::Arc;

use hydrant_proto::{
    Element, Jid, Presence, PresenceType, StanzaError, StanzaErrorCondition as Cond, ns,
};
use hydrant_storage::{RosterEntry, SubState};
use tracing::debug;

use crate::im::backlog::trimmed_request;
use crate::im::blocklist::Blocklist;
use crate::im::roster::presence_to;
use crate::router::remote::OnRefusal;
use crate::router::sessions::{LocalSession, username};
use crate::router::{Dest, Router};

impl Router {
    pub async fn outbound_presence(&self, me: &Arc<LocalSession>, p: Presence) {
        let mut el = p.element.clone();
        el.set_attr("from", me.info.jid.to_string());
        if p.kind != PresenceType::Error
            && let Some(to) = p.to.as_ref()
            && let Dest::Server = self.classify(Some(to))
            && el.get_child("addresses", ns::ADDRESS).is_some()
        {
            // XEP-0033: refused for local users (`im::multicast`).
            let _ = self.multicast_in(me.into(), el).await;
            return;
        }
        match (p.kind, p.to.as_ref()) {
            (PresenceType::Available | PresenceType::Unavailable, None) => {
                self.presence_broadcast_from_client(me, p.kind, el).await;
            }
            (PresenceType::Available, Some(to)) => {
                // XEP-0398 4: the avatar hash goes into directed presence too (MUC joins).
                if !matches!(self.classify(Some(to)), Dest::Server | Dest::Service(_)) {
                    self.add_avatar_hash(&username(&me.info.jid), &mut el).await;
                }
                self.directed_presence(me, p.kind, to, el);
            }
            (PresenceType::Unavailable, Some(to)) => {
                self.directed_presence(me, p.kind, to, el);
            }
            (
                PresenceType::Subscribe
                | PresenceType::Subscribed
                | PresenceType::Unsubscribe
                | PresenceType::Unsubscribed,
                Some(to),
            ) => {
                let contact = to.to_bare().to_string();
                let user = username(&me.info.jid);
                self.outbound_subscription(&user, p.kind, &contact, &el)
                    .await;
            }
            // RFC 6121 4.3: probes are the server's business; an error presence is
            // relayed like directed presence.
            (PresenceType::Error, Some(to)) => self.directed_presence(me, p.kind, to, el),
            _ => debug!(jid = %me.info.jid, "ignored presence without a usable 'to'"),
        }
    }

    async fn presence_broadcast_from_client(
        &self,
        me: &Arc<LocalSession>,
        kind: PresenceType,
        mut el: Element,
    ) {
        // XEP-0153 / XEP-0398 4: the account's avatar hash, unless the client gave one.
        let avatar_from_server = kind == PresenceType::Available
            && self.add_avatar_hash(&username(&me.info.jid), &mut el).await;
        let initial;
        {
            let mut st = me.state();
            st.avatar_from_server = avatar_from_server;
            if kind == PresenceType::Available {
                initial = !st.initial_done;
                st.initial_done = true;
                st.available = true;
                st.priority = el
                    .get_child("priority", ns::CLIENT)
                    .and_then(|p| p.text().trim().parse::<i8>().ok())
                    .unwrap_or(0);
                st.last = Some(Box::new(el.clone()));
            } else {
                initial = false;
                st.available = false;
                st.last = None;
            }
        }
        if kind == PresenceType::Available {
            self.caps_from_presence(me, &el);
        }
        self.broadcast_presence(me, el).await;
        if initial {
            self.after_initial_presence(me).await;
            self.component_last_items(me).await;
        }
        if kind == PresenceType::Available {
            // Pending subscription requests (initial presence only) and offline
            // messages, paced by the session's queue (`backlog.rs`).
            self.hand_over_stored(me, initial).await;
        }
    }

    /// Sends a session's broadcast presence (available or unavailable) to contacts with a
    /// subscription from the user, to the user's other resources, and (when unavailable)
    /// to everyone it sent directed presence to (RFC 6121 4.2.2, 4.4.2, 4.6.3).
    pub async fn broadcast_presence(&self, me: &LocalSession, el: Element) {
        let blocked = self.sessions.blocklist(&username(&me.info.jid)).flatten();
        self.broadcast_presence_except(me, el, blocked.as_deref())
            .await;
    }

    /// [`Router::broadcast_presence`], leaving out the JIDs the account blocks: XEP-0191
    /// 3.3, "the user will appear offline to the blocked JID" (they were sent
    /// unavailable presence when they were blocked).
    pub(crate) async fn broadcast_presence_except(
        &self,
        me: &LocalSession,
        el: Element,
        blocked: Option<&Blocklist>,
    ) {
        let user = username(&me.info.jid);
        let roster = self.roster_items(&user).await;
        let is_blocked = |jid: &str| blocked.is_some_and(|b| b.blocks_str(jid));
        for e in roster
            .iter()
            .filter(|e| matches!(e.subscription, SubState::From | SubState::Both))
        {
            if is_blocked(&e.jid) {
                continue;
            }
            let mut out = el.clone();
            out.set_attr("to", e.jid.as_str());
            self.presence_to_contact(&e.jid, &out, OnRefusal::Drop);
        }
        let own_bare = self.bare_of(&user);
        for s in self.sessions.of_user(&user) {
            if s.info.jid == me.info.jid && s.info.id != me.info.id {
                continue; // a session replacing this one must not hear it leave
            }
            if s.info.id == me.info.id || s.state().available {
                let mut out = el.clone();
                out.set_attr("to", own_bare.as_str());
                s.send(&out);
            }
        }
        if el.attr("type") == Some("unavailable") {
            let directed = std::mem::take(&mut me.state().directed);
            for to in directed {
                if is_blocked(&to) {
                    continue;
                }
                let mut out = el.clone();
                out.set_attr("to", to.as_str());
                self.presence_to_contact(&to, &out, OnRefusal::Drop);
            }
        }
    }

    /// Delivers presence to a local JID's available resources (all of them for a bare
    /// JID, RFC 6121 4.2.3), or to another domain (`on_refusal`: broadcasts are not
    /// bounced, directed presence is).
    pub(crate) fn presence_to_contact(&self, to: &str, el: &Element, on_refusal: OnRefusal) {
        let Ok(jid) = Jid::new(to) else { return };
        match self.classify(Some(&jid)) {
            Dest::LocalBare(user) => self.presence_to_available(user, el),
            Dest::LocalFull(full) => {
                let from = el.attr("from").and_then(|f| Jid::new(f).ok());
                if let Some(s) = self.sessions.get_unless_blocked(full, from.as_ref()) {
                    s.send(el);
                }
            }
            Dest::Remote(jid) => self.route_remote(jid, el.clone(), on_refusal),
            Dest::Server | Dest::Service(_) => {}
        }
    }

    /// Presence for every available resource of local `user`, unless the account blocks
    /// its sender (XEP-0191 3.3: presence from a blocked JID is dropped, unanswered).
    pub(crate) fn presence_to_available(&self, user: &str, el: &Element) {
        let (sessions, blocked) = self.sessions.of_user_with_blocklist(user);
        if let Some(b) = blocked
            && el.attr("from").is_some_and(|f| b.blocks_str(f))
        {
            return;
        }
        for s in sessions {
            if s.state().available {
                s.send(el);
            }
        }
    }

    /// First available presence of a session: probe contacts, show the user's other
    /// resources (stored subscription requests and offline messages follow, from
    /// `backlog.rs`).
    async fn after_initial_presence(&self, me: &Arc<LocalSession>) {
        let user = username(&me.info.jid);
        let my_full = me.info.jid.to_string();
        let roster = self.roster_items(&user).await;
        // RFC 6121 4.2.2 / 4.3.2: probes to contacts the user is subscribed to; for local
        // contacts the answer is each available resource's last presence.
        for e in roster
            .iter()
            .filter(|e| matches!(e.subscription, SubState::To | SubState::Both))
        {
            if let Some(contact) = self.local_user_of(&e.jid) {
                self.send_current_presence(&contact, me, &my_full);
            } else if let Ok(jid) = Jid::new(&e.jid)
                && let Dest::Remote(to) = self.classify(Some(&jid))
            {
                // A contact in another domain: its server answers the probe (4.3.2).
                let probe = presence_to(&self.bare_of(&user), &e.jid, "probe");
                self.route_remote(to, probe, OnRefusal::Drop);
            }
        }
        // The user's other available resources.
        for s in self.sessions.of_user(&user) {
            if s.info.id == me.info.id {
                continue;
            }
            let last = s.state().last.as_deref().cloned();
            if let Some(mut p) = last.filter(|_| s.state().available) {
                p.set_attr("to", my_full.as_str());
                me.send(&p);
            }
        }
    }

    /// Each available resource of local `contact` sends its last presence to `to`,
    /// unless either account blocks the other (XEP-0191 3.3: the blocked side sees the
    /// other offline, and the blocking side gets nothing from it).
    pub(crate) fn send_current_presence(&self, contact: &str, to_session: &LocalSession, to: &str) {
        let (contacts, their_list) = self.sessions.of_user_with_blocklist(contact);
        let my_jid: Jid = to_session.info.jid.clone().into();
        if their_list.is_some_and(|b| b.blocks(&my_jid)) {
            return;
        }
        let my_list = self
            .sessions
            .blocklist(&username(&to_session.info.jid))
            .flatten();
        for c in contacts {
            if let Some(b) = &my_list
                && b.blocks(&c.info.jid.clone().into())
            {
                continue;
            }
            let last = {
                let st = c.state();
                st.available.then(|| st.last.as_deref().cloned()).flatten()
            };
            if let Some(mut p) = last {
                p.set_attr("to", to);
                to_session.send(&p);
            }
        }
    }

    fn directed_presence(&self, me: &LocalSession, kind: PresenceType, to: &Jid, el: Element) {
        if let Dest::Server | Dest::Service(_) = self.classify(Some(to)) {
            return;
        }
        {
            let mut st = me.state();
            // RFC 6121 4.6.3: remember directed presence while available, so the
            // recipient learns when the session goes away.
            if kind == PresenceType::Available && st.available {
                let key = to.to_string();
                if !st.directed.contains(&key)
                    && st.directed.len() >= self.cfg.max_directed_presence
                {
                    drop(st);
                    return self.bounce(&el, StanzaError::new(Cond::ResourceConstraint));
                }
                if !st.directed.contains(&key) {
                    st.directed.push(key);
                }
            } else if kind == PresenceType::Unavailable {
                let key = to.to_string();
                st.directed.retain(|d| *d != key);
            }
        }
        self.presence_to_contact(to.as_str(), &el, OnRefusal::Bounce);
    }

    /// The user's server side of subscribe / subscribed / unsubscribe / unsubscribed
    /// (RFC 6121 3.1.2, 3.1.5, 3.2.2, 3.3.2).
    /// Also run on the user's behalf when a pre-approved contact asks (RFC 6121 3.4).
    async fn outbound_subscription(
        &self,
        user: &str,
        kind: PresenceType,
        contact: &str,
        el: &Element,
    ) {
        let user = user.to_owned();
        let my_bare = self.bare_of(&user);
        let kind_s = match kind {
            PresenceType::Subscribe => "subscribe",
            PresenceType::Subscribed => "subscribed",
            PresenceType::Unsubscribe => "unsubscribe",
            _ => "unsubscribed",
        };
        // RFC 6121 3.1.2: stamped with the user's bare JID, addressed to the contact's.
        let mut out = el.clone();
        out.set_attr("from", my_bare.as_str());
        out.set_attr("to", contact);
        let existing = self.roster_entry(&user, contact).await;
        let mut entry = existing.clone().unwrap_or_else(|| RosterEntry {
            jid: contact.to_owned(),
            name: None,
            subscription: SubState::None,
            ask_out: false,
            approved: false,
            groups: Vec::new(),
        });
        if existing.is_none()
            && matches!(kind, PresenceType::Subscribe | PresenceType::Subscribed)
            && !self.roster_has_room(&user).await
        {
            return self.bounce(&out, StanzaError::new(Cond::ResourceConstraint));
        }
        let mut changed = false;
        // Cancelling the contact's subscription to the user (3.2.2) ends the relation
        // the user's presence-access pubsub nodes rely on.
        let mut drops_from = false;
        match kind {
            PresenceType::Subscribe => {
                if matches!(entry.subscription, SubState::None | SubState::From) && !entry.ask_out {
                    entry.ask_out = true;
                    changed = true;
                }
            }
            PresenceType::Subscribed => {
                let (u, c) = (user.clone(), contact.to_owned());
                let was_pending = self
                    .db
                    .run(move |s| s.remove_pending_in(&u, &c))
                    .await
                    .unwrap_or(false);
                if !was_pending && !matches!(entry.subscription, SubState::None | SubState::To) {
                    return; // already approved: nothing to do (3.1.5)
                }
                if !was_pending {
                    // RFC 6121 3.4.1: nothing was asked, so this pre-approves the
                    // contact's future request: the item says approved='true' and the
                    // presence is not routed to the contact.
                    if !entry.approved {
                        entry.approved = true;
                        let _ = self.save_and_push(&user, &entry).await;
                    }
                    return;
                }
                entry.subscription = match entry.subscription {
                    SubState::To | SubState::Both => SubState::Both,
                    SubState::None | SubState::From => SubState::From,
                };
                // The approval is used up (3.4: it only matters while the contact has no
                // subscription).
                entry.approved = false;
                changed = true;
            }
            PresenceType::Unsubscribe => {
                let before = (entry.subscription, entry.ask_out);
                entry.subscription = match entry.subscription {
                    SubState::Both | SubState::From => SubState::From,
                    SubState::To | SubState::None => SubState::None,
                };
                entry.ask_out = false;
                changed = existing.is_some() && before != (entry.subscription, entry.ask_out);
            }
            _ => {
                let (u, c) = (user.clone(), contact.to_owned());
                let _ = self.db.run(move |s| s.remove_pending_in(&u, &c)).await;
                let before = entry.subscription;
                entry.subscription = match entry.subscription {
                    SubState::Both | SubState::To => SubState::To,
                    SubState::From | SubState::None => SubState::None,
                };
                changed = existing.is_some() && before != entry.subscription;
                drops_from = changed && matches!(before, SubState::From | SubState::Both);
                if entry.approved {
                    // 3.4: unsubscribed also cancels a pre-approval.
                    entry.approved = false;
                    changed = existing.is_some();
                }
            }
        }
        if changed {
            let _ = self.save_and_push(&user, &entry).await;
        }
        if drops_from {
            self.revalidate_contact(&user, contact).await;
        }
        if let Ok(jid) = Jid::new(contact)
            && let Dest::Remote(to) = self.classify(Some(&jid))
        {
            self.route_remote(to, out, OnRefusal::Bounce);
            // 3.1.5 / 3.2.2 as below, through the contact's server.
            let follow = match kind {
                PresenceType::Subscribed => Some(None),
                PresenceType::Unsubscribed => Some(Some("unavailable")),
                _ => None,
            };
            if let Some(kind) = follow {
                self.presence_from_user_to_remote(&user, to, kind);
            }
            return;
        }
        self.inbound_subscription(&my_bare, contact, kind_s, out)
            .await;
        match kind {
            // 3.1.5: after approving, the contact's current presence goes to the user.
            PresenceType::Subscribed => {
                if let Some(other) = self.local_user_of(contact) {
                    self.presence_from_user_to(&user, &other, None);
                }
            }
            // 3.2.2: after cancelling, the user's resources say unavailable to the contact.
            PresenceType::Unsubscribed => {
                if let Some(other) = self.local_user_of(contact) {
                    self.presence_from_user_to(&user, &other, Some("unavailable"));
                }
            }
            _ => {}
        }
    }

    /// Each available resource of `from_user` sends its presence (or `kind`) to a contact
    /// in another domain (broadcast-like: not bounced).
    fn presence_from_user_to_remote(&self, from_user: &str, to: &Jid, kind: Option<&str>) {
        let to_bare = to.to_bare().to_string();
        for mut p in self.presences_of(from_user, kind) {
            p.set_attr("to", to_bare.as_str());
            self.route_remote(to, p, OnRefusal::Drop);
        }
    }

    /// The presence (or a presence of type `kind`) of each available resource of `user`.
    pub(crate) fn presences_of(&self, user: &str, kind: Option<&str>) -> Vec<Element> {
        let mut out = Vec::new();
        for s in self.sessions.of_user(user) {
            let st = s.state();
            if !st.available {
                continue;
            }
            let p = match kind {
                None => st.last.as_deref().cloned(),
                Some(k) => Some(
                    Element::new("presence", ns::CLIENT)
                        .with_attr("type", k)
                        .with_attr("from", s.info.jid.to_string()),
                ),
            };
            out.extend(p);
        }
        out
    }

    /// Each available resource of `from_user` sends its presence (or `kind`) to every
    /// available resource of local `to_user`.
    fn presence_from_user_to(&self, from_user: &str, to_user: &str, kind: Option<&str>) {
        let to_bare = self.bare_of(to_user);
        for mut p in self.presences_of(from_user, kind) {
            p.set_attr("to", to_bare.as_str());
            self.presence_to_available(to_user, &p);
        }
    }

    /// The contact's server side of a subscription presence from `from` (a bare JID) to
    /// local `to` (RFC 6121 3.1.3, 3.1.6, 3.2.3, 3.3.3).
    pub async fn inbound_subscription(&self, from: &str, to: &str, kind: &str, el: Element) {
        let Some(user) = self.local_user_of(to) else {
            return;
        };
        if let Ok(sender) = Jid::new(from)
            && self.blocks(&user, &sender).await
        {
            // XEP-0191 3.3: subscription presence from a blocked JID is dropped; no
            // answer, no error.
            return;
        }
        let exists = self.account_exists(&user).await;
        if !exists {
            if kind == "subscribe" {
                // RFC 6121 3.1.3: no such contact, so the request is refused.
                let reply = presence_to(to, from, "unsubscribed");
                Box::pin(self.inbound_subscription(to, from, "unsubscribed", reply)).await;
            }
            return;
        }
        let existing = self.roster_entry(&user, from).await;
        match kind {
            "subscribe" => {
                if existing
                    .as_ref()
                    .is_some_and(|e| matches!(e.subscription, SubState::From | SubState::Both))
                {
                    // Already subscribed: answer on the contact's behalf (3.1.3).
                    let reply = presence_to(to, from, "subscribed");
                    Box::pin(self.inbound_subscription(to, from, "subscribed", reply)).await;
                    return;
                }
                // Stored trimmed: it is redelivered at every login until answered, so
                // an arbitrary payload would cost the user's queue that much each time.
                let bytes = trimmed_request(from, to);
                let (u, f) = (user.clone(), from.to_owned());
                let max = self.cfg.max_pending_subscriptions;
                let stored = self
                    .db
                    .run(move |s| s.add_pending_in_capped(&u, &f, &bytes, max))
                    .await;
                if matches!(stored, Ok(false)) {
                    // RFC 6121 3.1.3 has the contact's server keep every request until it
                    // is answered; past `[roster] max_pending_subscriptions` hydrant
                    // cannot, so it refuses the request as for a contact that does not
                    // exist (`unsubscribed` on the contact's behalf, 3.1.3), which also
                    // clears the requester's pending `ask`. Never dropped silently.
                    let reply = presence_to(to, from, "unsubscribed");
                    Box::pin(self.inbound_subscription(to, from, "unsubscribed", reply)).await;
                    return;
                }
                if existing.as_ref().is_some_and(|e| e.approved) {
                    // RFC 6121 3.4.2: pre-approved, so the server approves on the user's
                    // behalf and the user is not asked.
                    let subscribed = presence_to(to, from, "subscribed");
                    Box::pin(self.outbound_subscription(
                        &user,
                        PresenceType::Subscribed,
                        from,
                        &subscribed,
                    ))
                    .await;
                    return;
                }
                self.presence_to_available(&user, &el);
            }
            "subscribed" => {
                let Some(mut e) = existing.filter(|e| e.ask_out) else {
                    return;
                };
                e.subscription = match e.subscription {
                    SubState::From | SubState::Both => SubState::Both,
                    SubState::None | SubState::To => SubState::To,
                };
                e.ask_out = false;
                let _ = self.save_and_push(&user, &e).await;
                self.presence_to_available(&user, &el);
            }
            "unsubscribe" => {
                let (u, f) = (user.clone(), from.to_owned());
                let _ = self.db.run(move |s| s.remove_pending_in(&u, &f)).await;
                let Some(mut e) =
                    existing.filter(|e| matches!(e.subscription, SubState::From | SubState::Both))
                else {
                    return;
                };
                e.subscription = if e.subscription == SubState::Both {
                    SubState::To
                } else {
                    SubState::None
                };
                let _ = self.save_and_push(&user, &e).await;
                // `from` no longer has the user's presence: the user's presence-access
                // pubsub nodes stop admitting it.
                self.revalidate_contact(&user, from).await;
                self.presence_to_available(&user, &el);
                // 3.3.3: the contact's resources become unavailable to the user.
                if let Some(other) = self.local_user_of(from) {
                    self.presence_from_user_to(&user, &other, Some("unavailable"));
                }
            }
            "unsubscribed" => {
                let Some(mut e) = existing.filter(|e| {
                    e.ask_out || matches!(e.subscription, SubState::To | SubState::Both)
                }) else {
                    return;
                };
                e.subscription = if e.subscription == SubState::Both {
                    SubState::From
                } else {
                    SubState::None
                };
                e.ask_out = false;
                let _ = self.save_and_push(&user, &e).await;
                self.presence_to_available(&user, &el);
            }
            _ => {}
        }
    }
}
