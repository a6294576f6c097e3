//! PEP `+notify` for other servers' users (XEP-0163 4.3, XEP-0115): a contact on another
//! server gets a local owner's PEP events when its resource's capabilities ask for them,
//! as a local contact does. Stock clients depend on it across federation: avatars,
//! nicknames, OMEMO device lists are PEP nodes nobody subscribes to explicitly.
//!
//! What is tracked, per local account: the other servers' full JIDs that sent it
//! available presence with `<c/>`, and the `+notify` nodes their `ver` stands for. Only a
//! contact whose presence the account is subscribed to (roster `to` or `both`: RFC 6121
//! says its presence reaches the account then) is tracked, at most
//! `[pubsub] max_remote_notify_resources` resources per account, and unavailable presence
//! removes one; nothing is stored on disk (a restart learns them again from the presence
//! probes of the account's next login, RFC 6121 4.3).
//!
//! Caps are learnt as for local sessions (`pep.rs`): a cached `ver` applies at once;
//! otherwise the server asks the resource's disco#info for `node#ver`, from the owner's
//! bare JID (the contact's client knows that address, and its server routes the answer
//! back to it), and caches a result whose hash verifies.

use std::sync::Arc;

use dashmap::DashMap;
use hydrant_proto::{Element, FullJid, Iq, IqType, Jid, ns};
use hydrant_pubsub::{NodeName, Notification};
use hydrant_storage::SubState;
use tracing::debug;

use super::fanout::Prepared;
use super::{ServiceKey, lock};
use crate::router::Router;
use crate::router::remote::OnRefusal;

/// Id prefix of the caps queries sent to other servers' resources.
const ID_PREFIX: &str = "rcaps-";

/// One resource of another server's user, as an account saw its presence.
#[derive(Debug)]
struct Resource {
    jid: FullJid,
    /// `ver` of its last presence, with the query out for it (id), if one is.
    ver: String,
    query: Option<String>,
    notify: Option<Arc<[String]>>,
}

/// Other servers' resources per local account (by username).
#[derive(Debug, Default)]
pub struct RemoteNotify {
    by_user: DashMap<String, Vec<Resource>>,
}

impl Router {
    /// Available or unavailable presence from `from` (another server's full JID, its
    /// `from` checked by s2s) delivered to the local account `user`.
    pub(crate) async fn remote_presence_for_pep(&self, user: &str, from: &Jid, presence: &Element) {
        let Some(full) = from.try_as_full().ok().cloned() else {
            return;
        };
        let unavailable = presence.attr("type") == Some("unavailable");
        if unavailable {
            if let Some(mut list) = self.remote_notify.by_user.get_mut(user) {
                list.retain(|r| r.jid != full);
            }
            self.remote_notify
                .by_user
                .remove_if(user, |_, l| l.is_empty());
            return;
        }
        let Some(c) = presence.get_child("c", ns::CAPS) else {
            return;
        };
        let (Some(node), Some(ver)) = (c.attr("node"), c.attr("ver")) else {
            return;
        };
        let known = self
            .remote_notify
            .by_user
            .get(user)
            .is_some_and(|l| l.iter().any(|r| r.jid == full && r.ver == ver));
        if known {
            return;
        }
        // Only contacts whose presence this account asked for (RFC 6121 4.1): anyone
        // else could make the server keep state (and send queries) on their say-so.
        let (u, contact) = (user.to_owned(), full.to_bare().to_string());
        let entry = self
            .db
            .run(move |s| s.roster_item(&u, &contact))
            .await
            .ok()
            .flatten();
        if !entry.is_some_and(|e| matches!(e.subscription, SubState::To | SubState::Both)) {
            return;
        }
        let cached = self.caps_cache.get(ver);
        let query_id = cached
            .is_none()
            .then(|| format!("{ID_PREFIX}{}", self.next_query_id()));
        {
            let mut list = self
                .remote_notify
                .by_user
                .entry(user.to_owned())
                .or_default();
            list.retain(|r| r.jid != full);
            if list.len() >= self.cfg.max_remote_notify_resources {
                debug!(%user, "too many remote resources tracked for +notify; one ignored");
                return;
            }
            list.push(Resource {
                jid: full.clone(),
                ver: ver.to_owned(),
                query: query_id.clone(),
                notify: cached.clone(),
            });
        }
        match (cached, query_id) {
            (Some(notify), _) => self.remote_last_items(user, &full, &notify).await,
            (None, Some(id)) => {
                let query = Element::new("iq", ns::CLIENT)
                    .with_attr("type", "get")
                    .with_attr("id", id)
                    .with_attr("from", self.bare_of(user))
                    .with_attr("to", full.to_string())
                    .with_child(
                        Element::new("query", ns::DISCO_INFO)
                            .with_attr("node", format!("{node}#{ver}")),
                    );
                self.route_remote(&full.into(), query, OnRefusal::Drop);
            }
            (None, None) => {}
        }
    }

    /// An iq result or error from another server for the local account `user`: the
    /// answer to one of our caps queries? True when it was.
    pub(crate) async fn remote_caps_answer(&self, user: &str, from: &Jid, iq: &Iq) -> bool {
        if !iq.id.starts_with(ID_PREFIX) {
            return false;
        }
        let Some(full) = from.try_as_full().ok().cloned() else {
            return false;
        };
        let ver = {
            let Some(mut list) = self.remote_notify.by_user.get_mut(user) else {
                return false;
            };
            let Some(r) = list
                .iter_mut()
                .find(|r| r.jid == full && r.query.as_deref() == Some(iq.id.as_str()))
            else {
                return false;
            };
            r.query = None;
            r.ver.clone()
        };
        let Some(q) = iq
            .payload
            .as_ref()
            .filter(|q| iq.kind == IqType::Result && q.is("query", ns::DISCO_INFO))
        else {
            return true;
        };
        let notify = self.learn_caps(q, &ver);
        if let Some(mut list) = self.remote_notify.by_user.get_mut(user)
            && let Some(r) = list.iter_mut().find(|r| r.jid == full && r.ver == ver)
        {
            r.notify = Some(Arc::clone(&notify));
        }
        self.remote_last_items(user, &full, &notify).await;
        true
    }

    /// XEP-0163 4.3.4: a contact resource whose interest became known gets the last item
    /// of each node it asked for and may read.
    async fn remote_last_items(&self, user: &str, to: &FullJid, notify: &Arc<[String]>) {
        if notify.is_empty() {
            return;
        }
        let nodes: Vec<NodeName> = notify.iter().map(|n| NodeName::new(n.clone())).collect();
        let hub = self.pubsub.clone();
        let owner = self.bare_of(user);
        let to: Jid = to.clone().into();
        let res = tokio::task::spawn_blocking(move || {
            let svc = hub.service(&ServiceKey::Pep(owner))?;
            let g = lock(&svc);
            let effects = g.last_items_for(&to, Some(&nodes), &*hub.relations)?;
            Ok::<_, hydrant_pubsub::Error>((g.address().clone(), effects))
        })
        .await;
        if let Ok(Ok((addr, effects))) = res {
            self.run_effects(&addr, effects).await;
        }
    }

    /// The implicit PEP audience on other servers: resources of `allowed` contacts (bare
    /// JIDs that may read the node) of `user` whose caps ask for the node, less the
    /// explicit subscribers, each sent the shared notification through s2s.
    pub(crate) fn remote_pep_implicit(
        &self,
        addr: &Jid,
        user: &str,
        allowed: &[String],
        n: &Notification,
        prepared: &Prepared,
    ) -> usize {
        if allowed.is_empty() {
            return 0;
        }
        let targets: Vec<FullJid> = {
            let Some(list) = self.remote_notify.by_user.get(user) else {
                return 0;
            };
            list.iter()
                .filter(|r| {
                    r.notify
                        .as_ref()
                        .is_some_and(|ns| ns.iter().any(|x| x == n.node.as_str()))
                })
                .filter(|r| {
                    let bare = r.jid.to_bare();
                    allowed.iter().any(|a| a == bare.as_str())
                })
                .map(|r| r.jid.clone())
                .collect()
        };
        // XEP-0191 3.3: not to a resource the owner blocks (its bare JID was left out of
        // `allowed` already; a full JID or `domain/resource` item is matched here).
        let blocked = self.pep_owner_blocklist(addr);
        let mut sent = 0;
        for full in targets {
            let to: Jid = full.into();
            if blocked.as_ref().is_some_and(|b| b.blocks(&to)) {
                continue;
            }
            let bare = to.to_bare();
            if n.recipients
                .iter()
                .any(|s| s.jid == to || s.jid.as_str() == bare.as_str())
            {
                continue;
            }
            // A waiting publisher is not needed here: one resource per contact.
            let _ = self.route_remote_notification(addr, &to, prepared.frame_for(&to));
            sent += 1;
        }
        sent
    }
}
