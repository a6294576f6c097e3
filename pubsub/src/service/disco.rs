//! Service discovery (XEP-0060 5.1–5.5): features, nodes, node information and
//! meta-data, a node's items.

use std::ops::Bound;

use crate::access::Action;
use crate::effect::Effect;
use crate::error::Error;
use crate::request::{DiscoInfo, NodeMeta, Reply, RsmQuery, RsmResult};
use crate::service::{Ctx, NodeState, Service};
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
    // XEP-0060 6.5.4: items requests page with RSM (XEP-0059).
    "rsm",
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
            num_subscribers: n.subs.delivering(),
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
    ///
    /// The nodes come in NodeID order, at most [`crate::ServiceConfig::max_page_items`]
    /// per reply, paged with RSM (XEP-0059: `<after/>` a NodeID, `<max/>`); a reply
    /// without every node carries the `<set/>` that continues it. On a component the
    /// answer comes from memory: discovery is refused only to outcasts (an explicit
    /// affiliation), so no roster is read for it.
    pub(crate) fn disco_items(
        &mut self,
        ctx: &Ctx<'_>,
        node: Option<&NodeName>,
        rsm: Option<RsmQuery>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let Some(name) = node else {
            return self.disco_nodes(ctx, rsm.as_ref());
        };
        let n = self.node(name)?;
        self.check_ctx(n, ctx, Action::RetrieveItems)?;
        let items = self.store.query_items(
            name,
            &ItemQuery {
                newest_first: true,
                limit: Some(self.cfg.max_page_items as usize),
                max_bytes: Some(self.cfg.max_page_bytes),
                ..ItemQuery::default()
            },
        )?;
        let entries = items.iter().map(|i| (None, i.id.to_string())).collect();
        Ok((
            Reply::DiscoItems {
                node: Some(name.clone()),
                entries,
                rsm: None,
            },
            Vec::new(),
        ))
    }

    /// One page of the service's nodes (see [`Service::disco_items`]).
    fn disco_nodes(
        &self,
        ctx: &Ctx<'_>,
        rsm: Option<&RsmQuery>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let page_cap = self.cfg.max_page_items;
        let max = rsm.and_then(|q| q.max).unwrap_or(page_cap).min(page_cap) as usize;
        // On PEP (a handful of nodes, XEP-0163) what is listed is what may be read.
        let visible = |n: &NodeState| {
            if self.cfg.pep {
                self.check_ctx(n, ctx, Action::RetrieveItems).is_ok()
            } else {
                ctx.admin || self.explicit_affiliation(n, &ctx.actor) != Affiliation::Outcast
            }
        };
        if rsm.is_some_and(|q| q.before.is_some()) {
            return Err(Error::Unsupported {
                feature: "rsm-before",
            });
        }
        let after = rsm.and_then(|q| q.after.as_deref()).map(NodeName::from);
        let start = match &after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        let skip = if after.is_none() {
            rsm.and_then(|q| q.index).unwrap_or(0) as usize
        } else {
            0
        };
        let mut page: Vec<&NodeState> = self
            .nodes
            .range::<NodeName, _>((start, Bound::Unbounded))
            .map(|(_, n)| n)
            .filter(|n| visible(n))
            .skip(skip)
            .take(max + 1)
            .collect();
        let more = page.len() > max;
        page.truncate(max);
        let rsm_result = if rsm.is_some() || more || skip > 0 {
            // Counting is one pass over the node map in memory.
            let count = self.nodes.values().filter(|n| visible(n)).count() as u64;
            let before_first = match page.first() {
                Some(f) => self
                    .nodes
                    .range::<NodeName, _>(..&f.name)
                    .filter(|(_, n)| visible(n))
                    .count() as u64,
                None => 0,
            };
            Some(RsmResult {
                first: page.first().map(|f| (f.name.to_string(), before_first)),
                last: page.last().map(|l| l.name.to_string()),
                count,
            })
        } else {
            None
        };
        let entries = page
            .iter()
            .map(|n| (Some(n.name.clone()), n.config.title.clone()))
            .collect();
        Ok((
            Reply::DiscoItems {
                node: None,
                entries,
                rsm: rsm_result,
            },
            Vec::new(),
        ))
    }
}
