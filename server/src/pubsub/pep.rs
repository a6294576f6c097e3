//! PEP (XEP-0163) delivery on top of the core: `+notify` interest learned through entity
//! capabilities (XEP-0115), implicit notifications to contacts, and last items when a
//! contact's interest becomes known.
//!
//! Caps: on available presence with `<c/>`, the server asks the client's disco#info for
//! `node#ver` (unless that `ver` is cached), from the server's own address. A result
//! whose hash verifies (XEP-0115 section 5) is cached for every session using the same
//! `ver`; an unverifiable one applies to that session only, so one client cannot poison
//! what others receive. The cache is bounded in bytes (`[pubsub] caps_cache_bytes`,
//! `caps.rs`).

use std::sync::Arc;

use base64::Engine as _;
use hydrant_proto::{BareJid, Element, Iq, IqType, Jid, ns};
use hydrant_pubsub::{Event, NodeName, Notification, Relations};
use hydrant_storage::SubState;
use sha1::{Digest, Sha1};
use tracing::debug;

use super::fanout::Prepared;
use super::{ServiceKey, lock};
use crate::router::Router;
use crate::router::sessions::{LocalSession, username};

impl Router {
    /// Looks at the caps of an available presence and learns the session's +notify set.
    pub fn caps_from_presence(&self, me: &Arc<LocalSession>, presence: &Element) {
        let Some(c) = presence.get_child("c", ns::CAPS) else {
            return;
        };
        let (Some(node), Some(ver)) = (c.attr("node"), c.attr("ver")) else {
            return;
        };
        {
            let st = me.state();
            if st.caps_ver.as_deref() == Some(ver) {
                return;
            }
        }
        if let Some(notify) = self.caps_cache.get(ver) {
            let mut st = me.state();
            st.caps_ver = Some(ver.to_owned());
            st.notify = Some(notify);
            st.pep_seen.get_or_insert_with(Box::default);
            drop(st);
            self.spawn_pep_last_items(me);
            return;
        }
        let id = format!("caps-{}-{}", me.info.id, self.next_query_id());
        let query = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", id.clone())
            .with_attr("from", self.domain.as_str())
            .with_attr("to", me.info.jid.to_string())
            .with_child(
                Element::new("query", ns::DISCO_INFO).with_attr("node", format!("{node}#{ver}")),
            );
        {
            let mut st = me.state();
            st.caps_query = Some(Box::new((id, ver.to_owned())));
        }
        me.send(&query);
    }

    /// An iq result/error addressed to the server: the answer to a caps query? Returns
    /// true when it was one.
    pub fn caps_answer(&self, me: &Arc<LocalSession>, iq: &Iq) -> bool {
        let pending = {
            let st = me.state();
            st.caps_query.as_deref().cloned()
        };
        let Some((id, ver)) = pending.filter(|(id, _)| *id == iq.id) else {
            return false;
        };
        let _ = id;
        let mut st = me.state();
        st.caps_query = None;
        if iq.kind != IqType::Result {
            return true;
        }
        let Some(q) = iq
            .payload
            .as_ref()
            .filter(|q| q.is("query", ns::DISCO_INFO))
        else {
            return true;
        };
        let notify = self.learn_caps(q, &ver);
        st.caps_ver = Some(ver);
        st.notify = Some(notify);
        st.pep_seen.get_or_insert_with(Box::default);
        drop(st);
        self.spawn_pep_last_items(me);
        true
    }

    /// The `+notify` nodes of a disco#info answer for `ver`, cached when the answer's
    /// hash verifies (XEP-0115 5); an unverifiable answer applies to its asker only.
    pub(crate) fn learn_caps(&self, q: &Element, ver: &str) -> Arc<[String]> {
        let notify: Arc<[String]> = q
            .children()
            .filter(|f| f.is("feature", ns::DISCO_INFO))
            .filter_map(|f| f.attr("var")?.strip_suffix("+notify").map(str::to_owned))
            .collect();
        if verify_caps(q, ver) {
            self.caps_cache.insert(ver, Arc::clone(&notify));
        }
        notify
    }

    fn spawn_pep_last_items(&self, me: &Arc<LocalSession>) {
        let Some(router) = self.me.upgrade() else {
            return;
        };
        let me = me.clone();
        tokio::spawn(async move { router.pep_last_items(&me).await });
    }

    /// XEP-0163 4.3.4: a session whose +notify interest became known gets the last item
    /// of each such node of its own account and of every contact it is subscribed to.
    async fn pep_last_items(&self, me: &Arc<LocalSession>) {
        let Some(notify) = me.state().notify.clone() else {
            return;
        };
        if notify.is_empty() {
            return;
        }
        let user = username(&me.info.jid);
        let roster = self.roster_items(&user).await;
        let mut owners = vec![self.bare_of(&user)];
        for e in roster
            .iter()
            .filter(|e| matches!(e.subscription, SubState::To | SubState::Both))
        {
            // Local contacts only: a remote contact's PEP service is on its own server.
            if self.local_user_of(&e.jid).is_some() {
                owners.push(e.jid.clone());
            }
        }
        let nodes: Vec<NodeName> = notify.iter().map(|n| NodeName::new(n.clone())).collect();
        let to: Jid = me.info.jid.clone().into();
        // XEP-0191 3.3: no last items of an owner the session's account blocks, nor of
        // one that blocks it (an owner may be offline: its list is then read).
        let mine = self.sessions.blocklist(&user).flatten();
        let others: Vec<String> = owners
            .iter()
            .skip(1)
            .filter_map(|o| self.local_user_of(o))
            .collect();
        let blocking_me = self.blocking_among(others, &to).await;
        owners.retain(|o| {
            let blocked_by_me = mine.as_ref().is_some_and(|b| b.blocks_str(o));
            let blocks_me = self
                .local_user_of(o)
                .is_some_and(|u| blocking_me.contains(&u));
            !blocked_by_me && !blocks_me
        });
        for owner in owners {
            let hub = self.pubsub.clone();
            let (to, nodes) = (to.clone(), nodes.clone());
            let res = tokio::task::spawn_blocking(move || {
                let svc = hub.service(&ServiceKey::Pep(owner))?;
                let g = lock(&svc);
                let effects = g.last_items_for(&to, Some(&nodes), &*hub.relations)?;
                Ok::<_, hydrant_pubsub::Error>((g.address().clone(), effects))
            })
            .await;
            if let Ok(Ok((addr, effects))) = res {
                // The last item races with live notifications of the same node: whichever
                // reaches the session second is dropped if it is not newer.
                let effects = {
                    let mut st = me.state();
                    effects
                        .into_iter()
                        .filter(|e| match (e, st.pep_seen.as_mut()) {
                            (hydrant_pubsub::Effect::SendLast { node, items, .. }, Some(seen)) => {
                                let seq = items.iter().map(|i| i.seq).max().unwrap_or(0);
                                newer(seen, (addr.to_string(), node.as_str().to_owned()), seq)
                            }
                            _ => true,
                        })
                        .collect::<Vec<_>>()
                };
                self.run_effects(&addr, effects).await;
            }
        }
    }

    /// PEP notifications also go to the owner's contacts (and own resources) whose
    /// sessions asked for the node with +notify, when the access model lets them read it.
    pub async fn pep_implicit(&self, addr: &Jid, n: &Notification, prepared: &Prepared) {
        let Some(owner_user) = addr.node().map(|u| u.as_str().to_owned()) else {
            return;
        };
        if addr.domain().as_str() != self.domain {
            return;
        }
        let roster = self.roster_items(&owner_user).await;
        let Ok(owner) = BareJid::new(&self.bare_of(&owner_user)) else {
            return;
        };
        // XEP-0191 3.3: the owner's notifications do not go to contacts it blocks. The
        // owner is almost always online (it just published); if not, its list is read.
        let owner_blocks = match self.sessions.blocklist(&owner_user) {
            Some(list) => list,
            None => self.load_blocklist(&owner_user).await,
        };
        let rel = RosterRelations::new(owner, &roster);
        // Local accounts by username; other servers' contacts by bare JID.
        let (audience, remote): (Vec<String>, Vec<String>) = {
            let hub = self.pubsub.clone();
            let Ok(svc) = hub.service(&ServiceKey::Pep(addr.to_string())) else {
                return;
            };
            let g = lock(&svc);
            let mut audience = vec![owner_user.clone()];
            let mut remote = Vec::new();
            for (who, e) in &rel.contacts {
                if owner_blocks
                    .as_ref()
                    .is_some_and(|b| b.blocks_str(who.as_str()))
                {
                    continue;
                }
                let allowed = g
                    .may_read(&n.node, who, &rel)
                    // A deleted node: its last audience was the presence audience.
                    .unwrap_or(matches!(e.subscription, SubState::From | SubState::Both));
                if !allowed {
                    continue;
                }
                match self.local_user_of(who.as_str()) {
                    Some(local) => audience.push(local),
                    None if who.node().is_some() => remote.push(who.to_string()),
                    None => {}
                }
            }
            (audience, remote)
        };
        let remote_sent = self.remote_pep_implicit(addr, &owner_user, &remote, n, prepared);
        let explicit: Vec<&Jid> = n.recipients.iter().map(|s| &s.jid).collect();
        let mut queued = 0usize;
        for user in audience {
            let (sessions, blocked) = self.sessions.of_user_with_blocklist(&user);
            if blocked.is_some_and(|b| b.blocks(addr)) {
                // XEP-0191 3.3: the contact blocks the owner.
                continue;
            }
            for s in sessions {
                if owner_blocks
                    .as_ref()
                    .is_some_and(|b| b.blocks(&s.info.jid.clone().into()))
                {
                    continue;
                }
                let wants = {
                    let mut st = s.state();
                    let wants = st.available
                        && st
                            .notify
                            .as_ref()
                            .is_some_and(|ns| ns.iter().any(|x| x == n.node.as_str()));
                    match (&n.event, st.pep_seen.as_mut()) {
                        (Event::Items { items, .. }, Some(seen)) if wants => {
                            let seq = items.iter().map(|i| i.seq).max().unwrap_or(0);
                            newer(seen, (addr.to_string(), n.node.as_str().to_owned()), seq)
                        }
                        // A node created again after deletion numbers its items anew.
                        (Event::Delete { .. }, Some(seen)) => {
                            seen.remove(&(addr.to_string(), n.node.as_str().to_owned()));
                            wants
                        }
                        _ => wants,
                    }
                };
                let full: Jid = s.info.jid.clone().into();
                if !wants
                    || explicit
                        .iter()
                        .any(|j| **j == full || j.as_str() == s.info.jid.to_bare().as_str())
                {
                    continue;
                }
                if s.outbox.push(prepared.frame_for(&full)).is_ok() {
                    queued += 1;
                }
            }
        }
        debug!(node = %n.node.as_str(), queued, remote_sent, "PEP +notify deliveries");
    }
}

/// Records that items up to `seq` of a node reached a session; false when they (or
/// newer ones) already had, so this copy is a duplicate.
fn newer(
    seen: &mut std::collections::HashMap<(String, String), u64>,
    key: (String, String),
    seq: u64,
) -> bool {
    match seen.get(&key) {
        Some(&had) if had >= seq => false,
        _ => {
            seen.insert(key, seq);
            true
        }
    }
}

/// XEP-0115 section 5.1: the verification string of a disco#info result, hashed with
/// SHA-1 and base64-encoded, must equal `ver`.
fn verify_caps(q: &Element, ver: &str) -> bool {
    let mut identities: Vec<String> = q
        .children()
        .filter(|c| c.is("identity", ns::DISCO_INFO))
        .map(|i| {
            format!(
                "{}/{}/{}/{}",
                i.attr("category").unwrap_or(""),
                i.attr("type").unwrap_or(""),
                i.attr("xml:lang").unwrap_or(""),
                i.attr("name").unwrap_or("")
            )
        })
        .collect();
    identities.sort();
    let mut features: Vec<&str> = q
        .children()
        .filter(|c| c.is("feature", ns::DISCO_INFO))
        .filter_map(|f| f.attr("var"))
        .collect();
    features.sort_unstable();
    let mut s = String::new();
    for i in identities {
        s.push_str(&i);
        s.push('<');
    }
    for f in features {
        s.push_str(f);
        s.push('<');
    }
    // Extended information (XEP-0128 forms): sorted by FORM_TYPE, fields by var.
    let mut forms: Vec<(String, Vec<(String, Vec<String>)>)> = Vec::new();
    for x in q.children().filter(|c| c.is("x", ns::DATA_FORMS)) {
        let mut form_type = None;
        let mut fields = Vec::new();
        for f in x.children().filter(|c| c.name() == "field") {
            let var = f.attr("var").unwrap_or("").to_owned();
            let mut values: Vec<String> = f
                .children()
                .filter(|v| v.name() == "value")
                .map(Element::text)
                .collect();
            values.sort();
            if var == "FORM_TYPE" {
                form_type = values.first().cloned();
            } else {
                fields.push((var, values));
            }
        }
        let Some(ft) = form_type else { continue };
        fields.sort();
        forms.push((ft, fields));
    }
    forms.sort();
    for (ft, fields) in forms {
        s.push_str(&ft);
        s.push('<');
        for (var, values) in fields {
            s.push_str(&var);
            s.push('<');
            for v in values {
                s.push_str(&v);
                s.push('<');
            }
        }
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes())) == ver
}

/// The owner's roster as the access models see it ([`Relations`]), for the PEP audience:
/// loaded once per notification, asked once per contact without touching storage.
struct RosterRelations<'a> {
    owner: BareJid,
    contacts: std::collections::BTreeMap<BareJid, &'a hydrant_storage::RosterEntry>,
}

impl<'a> RosterRelations<'a> {
    fn new(owner: BareJid, roster: &'a [hydrant_storage::RosterEntry]) -> Self {
        let contacts = roster
            .iter()
            .filter_map(|e| Some((BareJid::new(&e.jid).ok()?, e)))
            .collect();
        RosterRelations { owner, contacts }
    }

    fn entry(&self, owner: &BareJid, who: &BareJid) -> Option<&hydrant_storage::RosterEntry> {
        if *owner != self.owner {
            return None;
        }
        self.contacts.get(who).copied()
    }
}

impl Relations for RosterRelations<'_> {
    fn has_presence_subscription(&self, owner: &BareJid, who: &BareJid) -> bool {
        self.entry(owner, who)
            .is_some_and(|e| matches!(e.subscription, SubState::From | SubState::Both))
    }

    fn roster_groups(&self, owner: &BareJid, who: &BareJid) -> Vec<String> {
        self.entry(owner, who)
            .map(|e| e.groups.clone())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0115_simple_example_verifies() {
        // XEP-0115 section 5.2 example: ver QgayPKawpkPSDYmwT/WM94uAlu0=
        let q = Element::new("query", ns::DISCO_INFO)
            .with_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", "client")
                    .with_attr("type", "pc")
                    .with_attr("name", "Exodus 0.9.1"),
            )
            .with_child(
                Element::new("feature", ns::DISCO_INFO)
                    .with_attr("var", "http://jabber.org/protocol/caps"),
            )
            .with_child(
                Element::new("feature", ns::DISCO_INFO)
                    .with_attr("var", "http://jabber.org/protocol/disco#info"),
            )
            .with_child(
                Element::new("feature", ns::DISCO_INFO)
                    .with_attr("var", "http://jabber.org/protocol/disco#items"),
            )
            .with_child(
                Element::new("feature", ns::DISCO_INFO)
                    .with_attr("var", "http://jabber.org/protocol/muc"),
            );
        assert!(verify_caps(&q, "QgayPKawpkPSDYmwT/WM94uAlu0="));
        assert!(!verify_caps(&q, "AAAAPKawpkPSDYmwT/WM94uAlu0="));
    }
}
