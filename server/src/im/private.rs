//! XEP-0049 private XML storage: XML an account keeps on the server for its own clients
//! (XEP-0048 bookmarks, client preferences), one fragment per namespace, persisted
//! (`hydrant_storage::PrivateStore`) and bounded by `[private]`.
//!
//! Only the account's own sessions reach it (`im/iq.rs` routes a request without `to`,
//! or to the account's bare JID, here); anyone else asking for an account's private data
//! gets `<forbidden/>` (XEP-0049 2.3: "Forbidden" or "Service Unavailable", "the former
//! preferable").

use std::sync::Arc;

use hydrant_proto::{Element, Iq, IqType, StanzaError, StanzaErrorCondition as Cond, ns};
use hydrant_storage::{PrivateWrite, StorageError};
use tracing::warn;

use crate::router::Router;
use crate::router::sessions::{LocalSession, username};

/// Namespaces no fragment may be stored under. The content namespaces of streams: an
/// element in one of them is stanza syntax, not a client's data. `jabber:iq:private`
/// itself: its children are what is stored. `vcard-temp`: XEP-0049 2.3 names it reserved,
/// and the vCard has its own storage (XEP-0054), which a private copy would shadow.
const RESERVED: &[&str] = &[
    ns::CLIENT,
    ns::SERVER,
    ns::COMPONENT_ACCEPT,
    ns::PRIVATE,
    ns::VCARD,
];

impl Router {
    /// A `jabber:iq:private` request from one of the account's own sessions.
    pub(crate) async fn private_iq(&self, me: &Arc<LocalSession>, iq: Iq) {
        let Some(query) = iq.payload.as_ref() else {
            return;
        };
        let children: Vec<&Element> = query.children().collect();
        // XEP-0049 2.3: "At least one child element with a proper namespace MUST be
        // included; otherwise the server MUST respond with a 'Not Acceptable' error".
        // Reserved namespaces get the same answer (the XEP's optional behaviour).
        if children.is_empty() || children.iter().any(|c| RESERVED.contains(&c.ns())) {
            return self.iq_error(me.into(), &iq, StanzaError::new(Cond::NotAcceptable));
        }
        let user = username(&me.info.jid);
        match iq.kind {
            IqType::Get => self.private_get(me, &user, &iq, &children).await,
            IqType::Set => self.private_set(me, &user, &iq, &children).await,
            IqType::Result | IqType::Error => {}
        }
    }

    async fn private_get(
        &self,
        me: &Arc<LocalSession>,
        user: &str,
        iq: &Iq,
        children: &[&Element],
    ) {
        let namespace = children[0].ns().to_owned();
        // XEP-0049 2.3: "A client MUST NOT query for more than one namespace in a single IQ
        // get request."
        if children.iter().any(|c| c.ns() != namespace) {
            return self.iq_error(
                me.into(),
                iq,
                StanzaError::new(Cond::BadRequest).with_text("one namespace per get"),
            );
        }
        let u = user.to_owned();
        match self.db.run(move |s| s.private_xml(&u, &namespace)).await {
            Ok(Some(stored)) => {
                me.send(&iq.result(Some(stored)).to_element(ns::CLIENT));
            }
            // Nothing stored: the request's query comes back as it was asked for (an
            // empty `<storage xmlns='storage:bookmarks'/>`, say), which is how clients
            // learn that there is nothing yet.
            Ok(None) => {
                me.send(&iq.result(iq.payload.clone()).to_element(ns::CLIENT));
            }
            Err(e) => {
                warn!(error = %e, user, "private XML read failed");
                self.iq_error(me.into(), iq, StanzaError::new(Cond::InternalServerError));
            }
        }
    }

    async fn private_set(
        &self,
        me: &Arc<LocalSession>,
        user: &str,
        iq: &Iq,
        children: &[&Element],
    ) {
        // XEP-0049 2.3: "an IQ set or result MAY contain multiple elements qualified by the
        // same namespace": each namespace keeps every element of it the set carried, in
        // order, as the `<query/>` a get of that namespace returns.
        let quota = self.cfg.private_quota;
        let mut groups: Vec<(String, Element)> = Vec::new();
        for child in children {
            let at = if let Some(i) = groups.iter().position(|(n, _)| n == child.ns()) {
                i
            } else {
                // More namespaces than the account may hold can never be stored; refused
                // here, the grouping costs at most that many comparisons per element
                // (a stanza can carry thousands of elements of distinct namespaces).
                if groups.len() == quota.max_namespaces {
                    return self.iq_error(me.into(), iq, over_namespaces(quota.max_namespaces));
                }
                groups.push((child.ns().to_owned(), Element::new("query", ns::PRIVATE)));
                groups.len() - 1
            };
            groups[at].1.append_child((*child).clone());
        }
        let items: Vec<(String, Vec<u8>)> = groups
            .into_iter()
            .map(|(n, q)| (n, q.to_bytes("")))
            .collect();
        let u = user.to_owned();
        let err = match self
            .db
            .run(move |s| s.set_private_xml(&u, &items, quota))
            .await
        {
            Ok(PrivateWrite::Stored) => {
                me.send(&iq.result(None).to_element(ns::CLIENT));
                return;
            }
            Ok(PrivateWrite::OverBytes) => {
                StanzaError::new(Cond::ResourceConstraint).with_text(format!(
                    "private XML is limited to {} bytes per account",
                    quota.max_bytes
                ))
            }
            Ok(PrivateWrite::OverNamespaces) => over_namespaces(quota.max_namespaces),
            Err(e) => {
                if !matches!(e, StorageError::NotFound) {
                    warn!(error = %e, user, "private XML write failed");
                }
                StanzaError::new(Cond::InternalServerError)
            }
        };
        self.iq_error(me.into(), iq, err);
    }
}

fn over_namespaces(max: usize) -> StanzaError {
    StanzaError::new(Cond::ResourceConstraint).with_text(format!(
        "private XML is limited to {max} namespaces per account"
    ))
}
