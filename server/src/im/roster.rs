//! Roster management (RFC 6121 section 2) and roster pushes.

use std::sync::Arc;

use hydrant_proto::{
    BareJid, Element, ErrorType, Iq, IqPayload, IqType, RosterItem, RosterQuery, StanzaError,
    StanzaErrorCondition as Cond, Subscription, ns,
};
use hydrant_storage::{RosterEntry, SubState};
use tracing::warn;

use crate::router::Router;
use crate::router::sessions::LocalSession;

pub fn to_item(e: &RosterEntry) -> Option<RosterItem> {
    Some(RosterItem {
        jid: BareJid::new(&e.jid).ok()?,
        name: e.name.clone(),
        subscription: match e.subscription {
            SubState::None => Subscription::None,
            SubState::To => Subscription::To,
            SubState::From => Subscription::From,
            SubState::Both => Subscription::Both,
        },
        ask: e.ask_out,
        groups: e.groups.clone(),
        approved: e.approved,
    })
}

impl Router {
    pub async fn roster_iq(&self, me: &Arc<LocalSession>, iq: Iq, query: RosterQuery) {
        let user = crate::router::sessions::username(&me.info.jid);
        match iq.kind {
            IqType::Get => {
                me.state().interested = true;
                let u = user.clone();
                let Ok((ver, entries)) = self.db.run(move |s| s.roster(&u)).await else {
                    return self.iq_error(
                        me.into(),
                        &iq,
                        StanzaError::new(Cond::InternalServerError),
                    );
                };
                let ver_s = ver.to_string();
                // RFC 6121 2.6.3: an unchanged roster is answered with an empty result.
                if query.ver.as_deref() == Some(ver_s.as_str()) {
                    me.send(&iq.result(None).to_element(ns::CLIENT));
                    return;
                }
                let q = RosterQuery {
                    ver: Some(ver_s),
                    items: entries.iter().filter_map(to_item).collect(),
                };
                me.send(&iq.result(Some(q.to_element())).to_element(ns::CLIENT));
            }
            IqType::Set => self.roster_set(me, &user, iq, query).await,
            IqType::Result | IqType::Error => {}
        }
    }

    async fn roster_set(&self, me: &Arc<LocalSession>, user: &str, iq: Iq, query: RosterQuery) {
        // RFC 6121 2.3.3: exactly one item per set.
        let [item] = query.items.as_slice() else {
            return self.iq_error(
                me.into(),
                &iq,
                StanzaError::new(Cond::BadRequest).with_type(ErrorType::Modify),
            );
        };
        let contact = item.jid.to_string();
        if item.subscription == Subscription::Remove {
            return self.roster_remove(me, user, iq, &contact).await;
        }
        // RFC 6121 2.3.3 allows a server-configured limit on name and group lengths
        // (`not-acceptable`); the number of groups is limited the same way, since every
        // group is stored and pushed to every interested resource.
        let max_name = self.cfg.max_roster_name_bytes;
        let too_long = item.name.as_ref().is_some_and(|n| n.len() > max_name)
            || item
                .groups
                .iter()
                .any(|g| g.is_empty() || g.len() > max_name);
        let too_many = item.groups.len() > self.cfg.max_roster_groups;
        if too_long || too_many {
            let why = if too_many {
                format!("at most {} groups per item", self.cfg.max_roster_groups)
            } else {
                format!("names and groups are at most {max_name} bytes")
            };
            return self.iq_error(
                me.into(),
                &iq,
                StanzaError::new(Cond::NotAcceptable)
                    .with_type(ErrorType::Modify)
                    .with_text(why),
            );
        }
        let existing = self.roster_entry(user, &contact).await;
        if existing.is_none() && !self.roster_has_room(user).await {
            return self.iq_error(me.into(), &iq, StanzaError::new(Cond::ResourceConstraint));
        }
        // RFC 6121 2.1.2.5: subscription state and 'ask' are the server's, never the client's.
        let entry = RosterEntry {
            jid: contact,
            name: item.name.clone(),
            subscription: existing.as_ref().map_or(SubState::None, |e| e.subscription),
            ask_out: existing.as_ref().is_some_and(|e| e.ask_out),
            approved: existing.as_ref().is_some_and(|e| e.approved),
            groups: item.groups.clone(),
        };
        let groups_changed = existing.as_ref().is_some_and(|e| e.groups != entry.groups);
        match self.save_and_push(user, &entry).await {
            Ok(()) => {
                me.send(&iq.result(None).to_element(ns::CLIENT));
                // Roster-access pubsub nodes of the user may no longer admit the contact.
                if groups_changed {
                    self.revalidate_contact(user, &entry.jid).await;
                }
            }
            Err(()) => self.iq_error(me.into(), &iq, StanzaError::new(Cond::InternalServerError)),
        }
    }

    async fn roster_remove(&self, me: &Arc<LocalSession>, user: &str, iq: Iq, contact: &str) {
        let existing = self.roster_entry(user, contact).await;
        let Some(existing) = existing else {
            // RFC 6121 2.5.3
            return self.iq_error(me.into(), &iq, StanzaError::new(Cond::ItemNotFound));
        };
        // RFC 6121 2.5.2: cancel both directions of the subscription first.
        let from_bare = self.bare_of(user);
        if matches!(existing.subscription, SubState::To | SubState::Both) || existing.ask_out {
            let p = presence_to(&from_bare, contact, "unsubscribe");
            self.inbound_subscription(&from_bare, contact, "unsubscribe", p)
                .await;
        }
        if matches!(existing.subscription, SubState::From | SubState::Both) {
            let p = presence_to(&from_bare, contact, "unsubscribed");
            self.inbound_subscription(&from_bare, contact, "unsubscribed", p)
                .await;
            // RFC 6121 3.2.2: while the contact is still subscribed, the user's available
            // resources say unavailable to them (as for a client-sent 'unsubscribed').
            self.unavailable_to_contact(user, contact);
        }
        let (u, c) = (user.to_owned(), contact.to_owned());
        match self.db.run(move |s| s.remove_roster_item(&u, &c)).await {
            Ok(Some(ver)) => {
                let item = RosterItem {
                    jid: BareJid::new(contact).expect("stored JIDs are valid"),
                    name: None,
                    subscription: Subscription::Remove,
                    ask: false,
                    groups: Vec::new(),
                    approved: false,
                };
                self.push(user, &item, ver);
                me.send(&iq.result(None).to_element(ns::CLIENT));
                // Neither presence nor roster access admits a removed contact.
                self.revalidate_contact(user, contact).await;
            }
            Ok(None) => self.iq_error(me.into(), &iq, StanzaError::new(Cond::ItemNotFound)),
            Err(_) => self.iq_error(me.into(), &iq, StanzaError::new(Cond::InternalServerError)),
        }
    }

    /// A user's roster items (empty if the store fails: callers only read it to decide
    /// who hears about something, and the failure is logged by the store).
    pub async fn roster_items(&self, user: &str) -> Vec<RosterEntry> {
        let u = user.to_owned();
        self.db
            .run(move |s| s.roster(&u))
            .await
            .map(|(_, r)| r)
            .unwrap_or_default()
    }

    /// One roster item of a user.
    pub async fn roster_entry(&self, user: &str, jid: &str) -> Option<RosterEntry> {
        let (u, j) = (user.to_owned(), jid.to_owned());
        self.db
            .run(move |s| s.roster_item(&u, &j))
            .await
            .ok()
            .flatten()
    }

    /// Whether the user's roster may take one more item (`[roster] max_items`).
    pub async fn roster_has_room(&self, user: &str) -> bool {
        self.roster_items(user).await.len() < self.cfg.max_roster_items
    }

    /// Unavailable presence from each available resource of `user` to the available
    /// resources of a local `contact` (bare JID); other domains are not reachable yet.
    pub(crate) fn unavailable_to_contact(&self, user: &str, contact: &str) {
        let Some(other) = self.local_user_of(contact) else {
            return;
        };
        let theirs: Vec<_> = self
            .sessions
            .of_user(&other)
            .into_iter()
            .filter(|s| s.state().available)
            .collect();
        for mine in self.sessions.of_user(user) {
            if !mine.state().available {
                continue;
            }
            let p = Element::new("presence", ns::CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", mine.info.jid.to_string())
                .with_attr("to", contact);
            for s in &theirs {
                s.send(&p);
            }
        }
    }

    /// Stores an entry and pushes it to the user's interested resources.
    pub async fn save_and_push(&self, user: &str, entry: &RosterEntry) -> Result<(), ()> {
        let (u, e) = (user.to_owned(), entry.clone());
        match self.db.run(move |s| s.set_roster_item(&u, &e)).await {
            Ok(ver) => {
                if let Some(item) = to_item(entry) {
                    self.push(user, &item, ver);
                }
                Ok(())
            }
            Err(err) => {
                warn!(error = %err, "roster write failed");
                Err(())
            }
        }
    }

    /// RFC 6121 2.1.6: a roster push to every interested resource of the user.
    pub(crate) fn push(&self, user: &str, item: &RosterItem, ver: u64) {
        let query = RosterQuery {
            ver: Some(ver.to_string()),
            items: vec![item.clone()],
        };
        for s in self.sessions.of_user(user) {
            if !s.state().interested {
                continue;
            }
            let iq = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("push-{ver}-{}", s.info.id))
                .with_attr("to", s.info.jid.to_string())
                .with_child(query.to_element());
            s.send(&iq);
        }
    }
}

/// A subscription-related presence from a bare JID to a bare JID.
pub fn presence_to(from: &str, to: &str, kind: &str) -> Element {
    Element::new("presence", ns::CLIENT)
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", kind)
}

/// Whether a payload is a roster query (for the iq dispatcher).
pub fn as_roster(payload: &IqPayload) -> Option<RosterQuery> {
    match payload {
        IqPayload::Roster(q) => Some(q.clone()),
        _ => None,
    }
}
