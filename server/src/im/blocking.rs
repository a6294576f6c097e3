//! XEP-0191 Blocking Command: the blocklist requests, their pushes and presence, and the
//! checks the router makes with the list.
//!
//! **Requests** (3.2 to 3.5, iq without `to` from the account's own client): `<blocklist/>`
//! get, `<block/>` and `<unblock/>` set (an empty `<unblock/>` unblocks all). Lists are
//! stored (`storage/src/blocking.rs`), at most `[blocking] max_items` JIDs per account
//! (past it: `<resource-constraint/>`, RFC 6120 8.3.3.18, as for a full roster). A change
//! is pushed to every session of the account that requested the list (3.3, 3.4, 3.5).
//!
//! **Presence** (3.3): a newly blocked JID that may see the user's presence (a contact
//! with a subscription from the user, or one it sent directed presence to) gets
//! unavailable presence from each available resource; from then on broadcasts leave it
//! out. Unblocked (3.4), a contact with a subscription gets the resources' current
//! presence, and a contact the user is subscribed to is asked for its own again, which
//! was dropped while it was blocked.
//!
//! **Checks** (3.3). From a blocked JID to the user: presence is dropped unanswered, a
//! message gets `<service-unavailable/>`, an iq get/set `<service-unavailable/>` (other
//! iqs are dropped): the user appears offline. This covers pubsub notifications: a
//! blocked contact's PEP service is its bare JID, so its notifications are dropped in
//! the fan-out (`pubsub/fanout.rs`, a test of the account's list pointer, which is
//! `None` for an account that blocks nobody) and in PEP `+notify` delivery
//! (`pubsub/pep.rs`); the user's own PEP notifications and last items do not go to the
//! JIDs it blocks either. From the user to a blocked JID: `<not-acceptable/>` with
//! `<blocked xmlns='urn:xmpp:blocking:errors'/>`. Matching is XEP-0191 6
//! (`blocklist.rs`); the account's own resources are never blocked (5).
//!
//! The list of an online account is in memory with its sessions (loaded at bind), so the
//! checks read no storage; for an account without a session (offline messages, stored
//! subscription requests, probes, its PEP last items) the store is asked.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hydrant_proto::{
    Element, ErrorType, Iq, IqType, Jid, Stanza, StanzaError, StanzaErrorCondition as Cond, ns,
};
use hydrant_storage::{StorageError, SubState};
use tracing::warn;

use crate::im::blocklist::{Blocklist, match_keys};
use crate::im::roster::presence_to;
use crate::router::Router;
use crate::router::remote::OnRefusal;
use crate::router::sessions::{LocalSession, username};

impl Router {
    /// The account's blocklist from the store (`None`: it blocks nobody). A store that
    /// fails is logged and read as an empty list: the session still works.
    pub(crate) async fn load_blocklist(&self, user: &str) -> Option<Arc<Blocklist>> {
        let u = user.to_owned();
        match self.db.run(move |s| s.blocklist(&u)).await {
            Ok(items) => Blocklist::new(user, &self.domain, items),
            Err(e) => {
                warn!(error = %e, user, "reading the blocklist failed");
                None
            }
        }
    }

    /// Reads the account's list again into memory, ordered with changes (a bind whose
    /// read raced a change).
    pub(crate) async fn reload_blocklist(&self, user: &str) {
        let _writes = self.blocklist_writes.lock().await;
        let list = self.load_blocklist(user).await;
        self.sessions.update_blocklist(user, |_| list);
    }

    /// The account's list went with its row (the store's cascade): its sessions, still
    /// closing, must not hand it to a new account of the same name.
    pub(crate) async fn forget_blocklist(&self, user: &str) {
        let _writes = self.blocklist_writes.lock().await;
        self.sessions.update_blocklist(user, |_| None);
        self.blocklist_changes.fetch_add(1, Ordering::AcqRel);
    }

    /// Whether local `user` blocks `from`: from memory while the account has a session,
    /// else from the store (offline storage, stored requests, probes: never the fan-out).
    pub(crate) async fn blocks(&self, user: &str, from: &Jid) -> bool {
        match self.sessions.blocklist(user) {
            Some(list) => list.is_some_and(|b| b.blocks(from)),
            None => !self
                .blocking_among(vec![user.to_owned()], from)
                .await
                .is_empty(),
        }
    }

    /// Whether local `user` blocks the sender (`from`) of `el`. An online account that
    /// blocks nobody costs one lookup, not a parse of the address.
    pub(crate) async fn blocks_sender(&self, user: &str, el: &Element) -> bool {
        if let Some(None) = self.sessions.blocklist(user) {
            return false;
        }
        match el.attr("from").and_then(|f| Jid::new(f).ok()) {
            Some(from) => self.blocks(user, &from).await,
            None => false,
        }
    }

    /// Those of the local `users` that block `from` (memory for online ones, one store
    /// read for the rest).
    pub(crate) async fn blocking_among(&self, users: Vec<String>, from: &Jid) -> Vec<String> {
        let mut blocking = Vec::new();
        let mut offline = Vec::new();
        for u in users {
            match self.sessions.blocklist(&u) {
                Some(list) => {
                    if list.is_some_and(|b| b.blocks(from)) {
                        blocking.push(u);
                    }
                }
                None => offline.push(u),
            }
        }
        let own = |u: &str| {
            from.node().is_some_and(|n| n.as_str() == u) && from.domain().as_str() == self.domain
        };
        offline.retain(|u| !own(u));
        if offline.is_empty() {
            return blocking;
        }
        let keys = match_keys(from);
        match self.db.run(move |s| s.blocking_any(&offline, &keys)).await {
            Ok(found) => blocking.extend(found),
            Err(e) => warn!(error = %e, "reading blocklists failed"),
        }
        blocking
    }

    /// XEP-0191 3.3: a stanza a local client addresses to a JID its account blocks is
    /// not routed; the sender gets `<not-acceptable/>` with `<blocked/>` (never for an
    /// error, nor for an iq result). True when it was refused.
    pub(crate) fn refuse_blocked_outbound(&self, me: &Arc<LocalSession>, stanza: &Stanza) -> bool {
        let Some(to) = stanza.to() else {
            return false;
        };
        let user = me.info.jid.node().map_or("", |n| n.as_str());
        let Some(list) = self.sessions.blocklist(user).flatten() else {
            return false;
        };
        if !list.blocks(to) {
            return false;
        }
        let err = StanzaError::new(Cond::NotAcceptable)
            .with_type(ErrorType::Cancel)
            .with_app(Element::new("blocked", ns::BLOCKING_ERRORS));
        match stanza {
            Stanza::Iq(iq) => self.iq_error(me.into(), iq, err),
            Stanza::Message(m) => refuse_to(me, &m.to_element(ns::CLIENT), &err),
            Stanza::Presence(p) => refuse_to(me, &p.to_element(ns::CLIENT), &err),
        }
        true
    }

    /// An iq in `urn:xmpp:blocking` from the account's own client (3.2 to 3.5).
    pub(crate) async fn blocking_iq(&self, me: &Arc<LocalSession>, iq: Iq) {
        let Some(q) = iq.payload.as_ref() else {
            return;
        };
        let user = username(&me.info.jid);
        let bad = |text: &str| {
            StanzaError::new(Cond::BadRequest)
                .with_type(ErrorType::Modify)
                .with_text(text)
        };
        match (iq.kind, q.name()) {
            (IqType::Get, "blocklist") => {
                // 3.2: this session now gets the pushes of 3.3 to 3.5.
                me.state().blocklist_requested = true;
                let items = self
                    .sessions
                    .blocklist(&user)
                    .flatten()
                    .map(|b| b.sorted())
                    .unwrap_or_default();
                let list = with_items(Element::new("blocklist", ns::BLOCKING), &items);
                me.send(&iq.result(Some(list)).to_element(ns::CLIENT));
            }
            (IqType::Set, "block") => match items_of(q) {
                // 3.3: "If the <block/> element does not contain at least one <item/>
                // child element, the server MUST return a <bad-request/> error."
                Ok(jids) if jids.is_empty() => {
                    self.iq_error(me.into(), &iq, bad("block needs at least one item"));
                }
                Ok(jids) => self.block(me, &user, &iq, jids).await,
                Err(e) => self.iq_error(me.into(), &iq, *e),
            },
            (IqType::Set, "unblock") => match items_of(q) {
                Ok(jids) => self.unblock(me, &user, &iq, jids).await,
                Err(e) => self.iq_error(me.into(), &iq, *e),
            },
            (IqType::Get | IqType::Set, _) => {
                self.iq_error(me.into(), &iq, bad("not a blocking command"));
            }
            (IqType::Result | IqType::Error, _) => {}
        }
    }

    /// 3.3: blocks `jids`, answers, pushes, and sends the unavailable presence.
    async fn block(&self, me: &Arc<LocalSession>, user: &str, iq: &Iq, jids: Vec<String>) {
        let max = self.cfg.max_blocklist_items;
        let full = || {
            StanzaError::new(Cond::ResourceConstraint)
                .with_text(format!("at most {max} blocked JIDs"))
        };
        if jids.len() > max {
            // More distinct JIDs than the list may hold: refused before the store is
            // asked about each.
            return self.iq_error(me.into(), iq, full());
        }
        let writes = self.blocklist_writes.lock().await;
        let (u, j) = (user.to_owned(), jids.clone());
        match self.db.run(move |s| s.block(&u, &j, max)).await {
            Ok(true) => {}
            Ok(false) => {
                drop(writes);
                return self.iq_error(me.into(), iq, full());
            }
            Err(e) => {
                drop(writes);
                self.blocklist_write_failed(me, iq, &e);
                return;
            }
        }
        self.sessions.update_blocklist(user, |l| {
            Blocklist::changed(user, &self.domain, l, &jids, &[])
        });
        self.blocklist_changes.fetch_add(1, Ordering::AcqRel);
        drop(writes);
        me.send(&iq.result(None).to_element(ns::CLIENT));
        self.blocking_push(user, with_items(Element::new("block", ns::BLOCKING), &jids));
        self.unavailable_to_blocked(user, &jids).await;
    }

    /// 3.4 and 3.5: unblocks `jids` (all when empty), answers, pushes, and sends the
    /// current presence.
    async fn unblock(&self, me: &Arc<LocalSession>, user: &str, iq: &Iq, jids: Vec<String>) {
        let writes = self.blocklist_writes.lock().await;
        let before = self.sessions.blocklist(user).flatten();
        let (u, j) = (user.to_owned(), jids.clone());
        let all = jids.is_empty();
        let stored = self
            .db
            .run(move |s| {
                if all {
                    s.unblock_all(&u)
                } else {
                    s.unblock(&u, &j)
                }
            })
            .await;
        if let Err(e) = stored {
            drop(writes);
            self.blocklist_write_failed(me, iq, &e);
            return;
        }
        let unblocked: Vec<String> = if all {
            before.as_ref().map(|b| b.sorted()).unwrap_or_default()
        } else {
            jids.iter()
                .filter(|j| {
                    before
                        .as_ref()
                        .is_some_and(|b| b.contains_any(&[(*j).clone()]))
                })
                .cloned()
                .collect()
        };
        self.sessions.update_blocklist(user, |l| {
            if all {
                None
            } else {
                Blocklist::changed(user, &self.domain, l, &[], &jids)
            }
        });
        self.blocklist_changes.fetch_add(1, Ordering::AcqRel);
        drop(writes);
        me.send(&iq.result(None).to_element(ns::CLIENT));
        // 3.5: an empty <unblock/> is pushed as it was asked.
        self.blocking_push(
            user,
            with_items(Element::new("unblock", ns::BLOCKING), &jids),
        );
        self.presence_to_unblocked(user, &unblocked).await;
    }

    fn blocklist_write_failed(&self, me: &Arc<LocalSession>, iq: &Iq, e: &StorageError) {
        warn!(error = %e, jid = %me.info.jid, "blocklist write failed");
        self.iq_error(me.into(), iq, StanzaError::new(Cond::InternalServerError));
    }

    /// The iq-set push of 3.3, 3.4 and 3.5 to every session of the account that
    /// requested the blocklist.
    fn blocking_push(&self, user: &str, payload: Element) {
        for s in self.sessions.of_user(user) {
            if !s.state().blocklist_requested {
                continue;
            }
            let iq = Element::new("iq", ns::CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("block-push-{}", self.next_query_id()))
                .with_attr("to", s.info.jid.to_string())
                .with_child(payload.clone());
            s.send(&iq);
        }
    }

    /// 3.3: "the user's server MUST send unavailable presence information to the JID (but
    /// only if the JID is allowed to receive presence notifications from the user)":
    /// contacts with a subscription from the user, and whoever a session sent directed
    /// presence to (no longer owed one at the session's end).
    async fn unavailable_to_blocked(&self, user: &str, jids: &[String]) {
        let Some(newly) = Blocklist::new(user, &self.domain, jids.to_vec()) else {
            return;
        };
        let roster = self.roster_items(user).await;
        let mut targets = presence_audience(&roster, &newly, jids);
        let sessions = self.sessions.of_user(user);
        for s in &sessions {
            let mut st = s.state();
            st.directed.retain(|d| {
                if newly.blocks_str(d) {
                    targets.push(d.clone());
                    false
                } else {
                    true
                }
            });
        }
        targets.sort();
        targets.dedup();
        for s in &sessions {
            if !s.state().available {
                continue;
            }
            let from = s.info.jid.to_string();
            for t in &targets {
                let p = Element::new("presence", ns::CLIENT)
                    .with_attr("type", "unavailable")
                    .with_attr("from", from.as_str())
                    .with_attr("to", t.as_str());
                self.presence_to_contact(t, &p, OnRefusal::Drop);
            }
        }
    }

    /// 3.4: "the user's server MUST send the user's current presence information to the
    /// JID (but only if the JID is allowed to receive presence notifications from the
    /// user)". Contacts the user is subscribed to are probed too: their presence was
    /// dropped while they were blocked (RFC 6121 4.3).
    async fn presence_to_unblocked(&self, user: &str, unblocked: &[String]) {
        let Some(gone) = Blocklist::new(user, &self.domain, unblocked.to_vec()) else {
            return;
        };
        let still = self.sessions.blocklist(user).flatten();
        let still_blocked = |j: &str| still.as_ref().is_some_and(|b| b.blocks_str(j));
        let roster = self.roster_items(user).await;
        let mut targets = presence_audience(&roster, &gone, unblocked);
        targets.retain(|t| !still_blocked(t));
        let sessions = self.sessions.of_user(user);
        for s in &sessions {
            let last = {
                let st = s.state();
                st.available.then(|| st.last.as_deref().cloned()).flatten()
            };
            let Some(last) = last else { continue };
            for t in &targets {
                let mut p = last.clone();
                p.set_attr("to", t.as_str());
                self.presence_to_contact(t, &p, OnRefusal::Drop);
            }
        }
        let bare = self.bare_of(user);
        for e in roster.iter().filter(|e| {
            matches!(e.subscription, SubState::To | SubState::Both)
                && gone.blocks_str(&e.jid)
                && !still_blocked(&e.jid)
        }) {
            self.probe_again(&bare, &e.jid, &sessions);
        }
    }

    /// The current presence of `contact` for each available session (RFC 6121 4.3).
    fn probe_again(&self, bare: &str, contact: &str, sessions: &[Arc<LocalSession>]) {
        if let Some(local) = self.local_user_of(contact) {
            for s in sessions.iter().filter(|s| s.state().available) {
                self.send_current_presence(&local, s, &s.info.jid.to_string());
            }
        } else if let Ok(jid) = Jid::new(contact) {
            let probe = presence_to(bare, contact, "probe");
            self.route_remote(&jid, probe, OnRefusal::Drop);
        }
    }
}

/// Who of the roster may receive the user's presence (a subscription from it) and is
/// matched by `list`: the contact's bare JID, or a full JID the user blocked under it
/// (`jids`: a blocked resource is told, not its other resources).
fn presence_audience(
    roster: &[hydrant_storage::RosterEntry],
    list: &Blocklist,
    jids: &[String],
) -> Vec<String> {
    let mut out = Vec::new();
    for e in roster
        .iter()
        .filter(|e| matches!(e.subscription, SubState::From | SubState::Both))
    {
        if list.blocks_str(&e.jid) {
            out.push(e.jid.clone());
            continue;
        }
        out.extend(
            jids.iter()
                .filter(|j| j.split_once('/').is_some_and(|(b, _)| b == e.jid))
                .cloned(),
        );
    }
    out
}

/// The `<item jid/>` children of a block or unblock request, normalised (RFC 7622) and
/// each once: `<bad-request/>` for an item without `jid`, `<jid-malformed/>` for one that
/// is not a JID.
fn items_of(q: &Element) -> Result<Vec<String>, Box<StanzaError>> {
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for item in q.children().filter(|c| c.is("item", ns::BLOCKING)) {
        let Some(jid) = item.attr("jid") else {
            return Err(Box::new(
                StanzaError::new(Cond::BadRequest)
                    .with_type(ErrorType::Modify)
                    .with_text("item without jid"),
            ));
        };
        let jid = Jid::new(jid).map_err(|_| Box::new(StanzaError::new(Cond::JidMalformed)))?;
        let jid = jid.to_string();
        if seen.insert(jid.clone()) {
            out.push(jid);
        }
    }
    Ok(out)
}

/// The error for a refused message or presence, straight to the session (the error comes
/// from the blocked JID's address, as in XEP-0191's example).
fn refuse_to(me: &LocalSession, el: &Element, err: &StanzaError) {
    if el.attr("type") == Some("error") {
        return;
    }
    me.send(&hydrant_proto::error_reply(el, err));
}

fn with_items(mut el: Element, jids: &[String]) -> Element {
    for j in jids {
        el.append_child(Element::new("item", ns::BLOCKING).with_attr("jid", j.as_str()));
    }
    el
}
