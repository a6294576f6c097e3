//! Service discovery (XEP-0060 5.1–5.5): features, nodes, node information and
//! meta-data, a node's items.

use crate::access::Action;
use crate::effect::Effect;
use crate::error::Error;
use crate::request::{DiscoInfo, NodeMeta, Reply};
use crate::service::{Ctx, Service};
use crate::store::{ItemQuery, Store};
use crate::types::{Affiliation, NodeName};

macro_rules! pubsub_features {
    ($($n:literal),* $(,)?) => {
        &[$(concat!("http://jabber.org/protocol/pubsub#", $n)),*]
    };
}

/// The `http://jabber.org/protocol/pubsub#*` features hydrant implements, advertised
/// as they are. Each one is backed by a use case and tests in this crate; delivery-side
/// features (`presence-notifications`, `filtered-notifications`, `auto-subscribe`,
/// `last-published` on presence) are the server's to add once it implements them.
pub const FEATURES: &[&str] = pubsub_features!(
    "access-authorize",
    "access-open",
    "access-presence",
    "access-roster",
    "access-whitelist",
    "config-node",
    "config-node-max",
    "create-and-configure",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "instant-nodes",
    "item-ids",
    "manage-subscriptions",
    "member-affiliation",
    "meta-data",
    "modify-affiliations",
    "multi-subscribe",
    "outcast-affiliation",
    "persistent-items",
    "publish",
    "publish-only-affiliation",
    "publish-options",
    "publisher-affiliation",
    "purge-nodes",
    "retract-items",
    "retrieve-affiliations",
    "retrieve-default",
    "retrieve-default-sub",
    "retrieve-items",
    "retrieve-subscriptions",
    "subscribe",
    "subscription-notifications",
    "subscription-options",
);

/// XEP-0313 on pubsub nodes (XEP-0442), advertised when [`crate::ServiceConfig::mam`]
/// says the server answers MAM queries: the base protocol and `#extended`
/// (`before-id`/`after-id`/`ids`, flipped pages, archive metadata).
pub const MAM_FEATURES: &[&str] = &["urn:xmpp:mam:2", "urn:xmpp:mam:2#extended"];

/// Advertised by PEP services only (XEP-0163: publish creates the node).
pub const AUTO_CREATE: &str = "http://jabber.org/protocol/pubsub#auto-create";

impl<S: Store> Service<S> {
    /// The full feature list of this service: the pubsub namespace, disco, RSM, and
    /// [`FEATURES`] (plus `auto-create` on PEP).
    pub fn features(&self) -> Vec<&'static str> {
        use hydrant_proto::ns;
        let mut out = vec![ns::DISCO_INFO, ns::DISCO_ITEMS, ns::PUBSUB, ns::RSM];
        out.extend_from_slice(FEATURES);
        if self.cfg.pep {
            out.push(AUTO_CREATE);
        }
        if self.cfg.mam {
            out.extend_from_slice(MAM_FEATURES);
        }
        out.sort_unstable();
        out
    }

    pub(crate) fn disco_info(
        &mut self,
        ctx: &Ctx<'_>,
        node: Option<&NodeName>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let Some(name) = node else {
            let identity = if self.cfg.pep {
                ("pubsub", "pep")
            } else {
                ("pubsub", "service")
            };
            return Ok((
                Reply::DiscoInfo(DiscoInfo {
                    node: None,
                    identity,
                    features: self.features(),
                    meta: None,
                }),
                Vec::new(),
            ));
        };
        let n = self.node(name)?;
        self.check_ctx(n, ctx, Action::Discover)?;
        let meta = NodeMeta {
            config: n.config.clone(),
            owners: n.owners(),
            publishers: n.with_affiliation(Affiliation::Publisher),
            creator: n.creator.clone(),
            created_ms: n.created_ms,
            num_subscribers: n.subscribers.len(),
        };
        Ok((
            Reply::DiscoInfo(DiscoInfo {
                node: Some(name.clone()),
                identity: ("pubsub", "leaf"),
                features: if self.cfg.mam {
                    let mut f = vec![hydrant_proto::ns::PUBSUB];
                    f.extend_from_slice(MAM_FEATURES);
                    f
                } else {
                    vec![hydrant_proto::ns::PUBSUB]
                },
                meta: Some(meta),
            }),
            Vec::new(),
        ))
    }

    /// Nodes (those the requester may discover; on PEP, those it may read), or the
    /// items of one node (requires item retrieval rights; newest first, at most one
    /// page).
    pub(crate) fn disco_items(
        &mut self,
        ctx: &Ctx<'_>,
        node: Option<&NodeName>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let Some(name) = node else {
            let action = if self.cfg.pep {
                Action::RetrieveItems
            } else {
                Action::Discover
            };
            let entries = self
                .nodes
                .values()
                .filter(|n| self.check_ctx(n, ctx, action).is_ok())
                .map(|n| (Some(n.name.clone()), n.config.title.clone()))
                .collect();
            return Ok((
                Reply::DiscoItems {
                    node: None,
                    entries,
                },
                Vec::new(),
            ));
        };
        let n = self.node(name)?;
        self.check_ctx(n, ctx, Action::RetrieveItems)?;
        let items = self.store.query_items(
            name,
            &ItemQuery {
                newest_first: true,
                limit: Some(self.cfg.max_page_items as usize),
                ..ItemQuery::default()
            },
        )?;
        let entries = items.iter().map(|i| (None, i.id.to_string())).collect();
        Ok((
            Reply::DiscoItems {
                node: Some(name.clone()),
                entries,
            },
            Vec::new(),
        ))
    }
}
