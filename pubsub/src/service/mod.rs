//! [`Service`]: one pubsub service (a `pubsub.<domain>` component, or one account's
//! PEP). One file per use case; this one holds the state, the dispatch and the helpers
//! they share (node lookup, the access check, the subscriber snapshot, ids).

mod affiliations;
mod approve;
pub(crate) mod archive;
mod configure;
mod create;
mod delete;
pub(crate) mod disco;
mod forget;
pub(crate) mod items;
mod options;
mod publish;
mod purge;
mod retract;
mod revalidate;
pub(crate) mod staged;
pub(crate) mod subscribe;
mod subscriptions;
mod subtable;
mod unsubscribe;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use hydrant_proto::{BareJid, Jid};

use crate::access::{self, Action, Standing};
use crate::config::{NodeConfig, ServiceConfig};
use crate::effect::{Effect, Event, Notification, Outcome};
use crate::error::Error;
use crate::relations::Relations;
use crate::request::{Reply, Request};
use crate::store::{NodeRecord, Store};
use crate::types::{
    Affiliation, Item, ItemId, NodeName, SubId, SubState, Subscribers, Subscription,
};
use subtable::SubTable;

/// One node's state in memory (everything but its items, which live in the store).
#[derive(Clone, Debug)]
pub(crate) struct NodeState {
    pub name: NodeName,
    pub config: NodeConfig,
    pub affiliations: BTreeMap<BareJid, Affiliation>,
    /// The subscriptions and the fan-out view of them ([`SubTable`]).
    pub subs: SubTable,
    pub creator: Jid,
    pub created_ms: u64,
    pub last_seq: u64,
    /// Publishes staged but not yet fanned out, in seq order (`staged.rs`).
    pub inflight: staged::InFlight,
}

impl NodeState {
    fn from_record(r: NodeRecord) -> Self {
        let affiliations: BTreeMap<BareJid, Affiliation> = r.affiliations.into_iter().collect();
        let subs = SubTable::new(r.subscriptions, |b| {
            affiliations.get(b) == Some(&Affiliation::Outcast)
        });
        NodeState {
            name: r.name,
            config: r.config,
            affiliations,
            subs,
            creator: r.creator,
            created_ms: r.created_ms,
            last_seq: r.last_seq,
            inflight: staged::InFlight::default(),
        }
    }

    /// An empty node (create, auto-create).
    pub(crate) fn new(
        name: NodeName,
        config: NodeConfig,
        affiliations: BTreeMap<BareJid, Affiliation>,
        creator: Jid,
        created_ms: u64,
    ) -> Self {
        NodeState {
            name,
            config,
            affiliations,
            subs: SubTable::default(),
            creator,
            created_ms,
            last_seq: 0,
            inflight: staged::InFlight::default(),
        }
    }

    /// The subscriptions held by any JID with this bare JID.
    pub(crate) fn subs_of_bare(&self, bare: &BareJid) -> impl Iterator<Item = &Subscription> {
        self.subs.of_bare(bare).iter()
    }

    pub(crate) fn to_record(&self) -> NodeRecord {
        NodeRecord {
            name: self.name.clone(),
            config: self.config.clone(),
            affiliations: self
                .affiliations
                .iter()
                .map(|(j, a)| (j.clone(), *a))
                .collect(),
            subscriptions: self.subs.iter().cloned().collect(),
            creator: self.creator.clone(),
            created_ms: self.created_ms,
            last_seq: self.last_seq,
        }
    }

    pub(crate) fn owners(&self) -> Vec<BareJid> {
        self.with_affiliation(Affiliation::Owner)
    }

    pub(crate) fn with_affiliation(&self, a: Affiliation) -> Vec<BareJid> {
        self.affiliations
            .iter()
            .filter(|(_, x)| **x == a)
            .map(|(j, _)| j.clone())
            .collect()
    }

    /// The subscriptions held by exactly this JID.
    pub(crate) fn subs_of<'a>(&'a self, jid: &'a Jid) -> impl Iterator<Item = &'a Subscription> {
        self.subs.of(jid)
    }

    /// The best subscription state of any JID with this bare JID.
    fn best_state(&self, actor: &BareJid) -> Option<SubState> {
        let mut best = None;
        for s in self.subs_of_bare(actor) {
            best = match (best, s.state) {
                (_, SubState::Subscribed) => Some(SubState::Subscribed),
                (Some(SubState::Subscribed), _) => best,
                (_, st) => Some(st),
            };
        }
        best
    }

    /// Whether an account is an outcast of the node (its subscriptions stay, but are
    /// left out of the fan-out).
    pub(crate) fn is_outcast(&self, bare: &BareJid) -> bool {
        self.affiliations.get(bare) == Some(&Affiliation::Outcast)
    }

    /// Adds or replaces (same id) one subscription.
    pub(crate) fn put_sub(&mut self, sub: Subscription) {
        let out = self.is_outcast(&sub.jid.to_bare());
        self.subs.put(sub, out);
    }

    /// Removes one subscription of `jid`'s account.
    pub(crate) fn remove_sub(&mut self, jid: &Jid, subid: &SubId) -> Option<Subscription> {
        let bare = jid.to_bare();
        let out = self.is_outcast(&bare);
        self.subs.remove(&bare, subid, out)
    }

    /// Every subscription, whatever its state (node deletion notifies them all).
    pub(crate) fn all_subscribers(&self) -> Subscribers {
        self.subs.everyone()
    }
}

/// A notification of `event` to the node's current subscribers, or None when nobody is
/// subscribed. On PEP (`pep`) the effect is always emitted: the server adds the owner's
/// contacts that asked for the node with +notify (XEP-0163), who are not subscribers.
pub(crate) fn notify(node: &NodeState, event: Event, pep: bool) -> Option<Effect> {
    notify_to(node, event, node.subs.subscribers(), pep)
}

pub(crate) fn notify_to(
    node: &NodeState,
    event: Event,
    recipients: Subscribers,
    pep: bool,
) -> Option<Effect> {
    if recipients.is_empty() && !pep {
        return None;
    }
    Some(Effect::Notify(Notification {
        node: node.name.clone(),
        event,
        notification_type: node.config.notification_type,
        recipients,
        presence_based: node.config.presence_based_delivery,
    }))
}

/// Who is asking, in one request.
pub(crate) struct Ctx<'a> {
    pub from: &'a Jid,
    pub actor: BareJid,
    pub rel: &'a dyn Relations,
    pub now_ms: u64,
    pub admin: bool,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(from: &'a Jid, rel: &'a dyn Relations, now_ms: u64) -> Self {
        let actor = from.to_bare();
        Ctx {
            from,
            admin: rel.is_admin(&actor),
            actor,
            rel,
            now_ms,
        }
    }
}

/// A pubsub service: the state machine of XEP-0060 / XEP-0163 over an injected
/// [`Store`]. Not thread-safe by itself (`&mut self`); the server owns one per service
/// behind its own lock or task, and hands the fan-out only [`Subscribers`] snapshots.
pub struct Service<S: Store> {
    address: Jid,
    store: S,
    cfg: ServiceConfig,
    nodes: BTreeMap<NodeName, NodeState>,
    /// How many of the nodes each bare JID created (the node quota).
    created_by: HashMap<BareJid, usize>,
    /// The nodes that send their last item when a subscriber becomes available
    /// (`send_last_published_item = on_sub_and_presence`): what a login looks at, rather
    /// than every node of the service ([`Service::last_items_for`]).
    last_on_presence: BTreeSet<NodeName>,
    ids: u64,
}

impl<S: Store> std::fmt::Debug for Service<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("address", &self.address)
            .field("nodes", &self.nodes.len())
            .finish_non_exhaustive()
    }
}

impl<S: Store> Service<S> {
    /// Opens the service at `address` (for PEP: the account's bare JID), loading its
    /// nodes from `store`.
    pub fn open(address: Jid, mut store: S, cfg: ServiceConfig) -> Result<Self, Error> {
        let nodes: BTreeMap<NodeName, NodeState> = store
            .load_nodes()?
            .into_iter()
            .map(|r| (r.name.clone(), NodeState::from_record(r)))
            .collect();
        let mut created_by: HashMap<BareJid, usize> = HashMap::new();
        for n in nodes.values() {
            *created_by.entry(n.creator.to_bare()).or_default() += 1;
        }
        let last_on_presence = nodes
            .values()
            .filter(|n| sends_last_on_presence(n))
            .map(|n| n.name.clone())
            .collect();
        Ok(Service {
            address,
            store,
            cfg,
            nodes,
            created_by,
            last_on_presence,
            ids: 0,
        })
    }

    pub fn address(&self) -> &Jid {
        &self.address
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.cfg
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// The store, mutably (tests use it to inject failures; the server should not
    /// write behind the service's back, its in-memory state would go stale).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }

    /// Handles one request from `from`: the iq result payload and the effects.
    /// On `Err`, nothing was changed (map it with
    /// [`crate::xep0060::error::to_stanza_error`]).
    pub fn handle(
        &mut self,
        from: &Jid,
        req: Request,
        rel: &dyn Relations,
        now_ms: u64,
    ) -> Result<Outcome, Error> {
        let (reply, effects) = self.execute(from, req, rel, now_ms)?;
        Ok(Outcome {
            reply: crate::xep0060::response::render(&reply, &self.address),
            effects,
        })
    }

    /// As [`Service::handle`], with the typed reply (for callers and tests that want to
    /// look at values rather than XML).
    pub fn execute(
        &mut self,
        from: &Jid,
        req: Request,
        rel: &dyn Relations,
        now_ms: u64,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        let ctx = Ctx::new(from, rel, now_ms);
        match req {
            Request::DiscoInfo { node } => self.disco_info(&ctx, node.as_ref()),
            Request::DiscoItems { node, rsm } => self.disco_items(&ctx, node.as_ref(), rsm),
            Request::Create { node, config } => self.create(&ctx, node, config),
            Request::GetConfig { node } => self.get_config(&ctx, &node),
            Request::SetConfig { node, form } => self.set_config(&ctx, &node, form),
            Request::DefaultConfig => Ok((
                Reply::DefaultConfig {
                    config: self.cfg.default_node.clone(),
                },
                Vec::new(),
            )),
            Request::Delete { node, redirect } => self.delete(&ctx, &node, redirect),
            Request::Purge { node } => self.purge(&ctx, &node),
            Request::Publish {
                node,
                item,
                options,
            } => self.publish(&ctx, node, item, options),
            Request::Retract { node, ids, notify } => self.retract(&ctx, &node, ids, notify),
            Request::Subscribe { node, jid, options } => self.subscribe(&ctx, &node, jid, options),
            Request::Unsubscribe { node, jid, subid } => {
                self.unsubscribe(&ctx, &node, &jid, subid.as_ref())
            }
            Request::GetOptions { node, jid, subid } => {
                self.get_options(&ctx, &node, &jid, subid.as_ref())
            }
            Request::SetOptions {
                node,
                jid,
                subid,
                form,
            } => self.set_options(&ctx, &node, &jid, subid.as_ref(), &form),
            Request::DefaultOptions { node } => self.default_options(node),
            Request::Items {
                node,
                subid,
                max_items,
                ids,
                rsm,
            } => self.items(&ctx, &node, subid.as_ref(), max_items, &ids, rsm),
            Request::Subscriptions { node } => self.own_subscriptions(&ctx, node),
            Request::Affiliations { node } => self.own_affiliations(&ctx, node),
            Request::OwnerSubscriptions { node } => self.owner_subscriptions(&ctx, &node),
            Request::ModifySubscriptions { node, changes } => {
                self.modify_subscriptions(&ctx, &node, changes)
            }
            Request::OwnerAffiliations { node } => self.owner_affiliations(&ctx, &node),
            Request::ModifyAffiliations { node, changes } => {
                self.modify_affiliations(&ctx, &node, changes)
            }
            Request::Authorize {
                node,
                subscriber,
                subid,
                allow,
            } => self.authorize(&ctx, &node, &subscriber, subid.as_ref(), allow),
        }
    }

    /// The subscriber snapshot of a node, for lock-free fan-out (rebuilt on every
    /// subscription change, so holding an old one is safe).
    pub fn subscribers(&self, node: &NodeName) -> Option<Subscribers> {
        self.nodes.get(node).map(|n| n.subs.subscribers())
    }

    /// The names of all nodes.
    pub fn node_names(&self) -> impl Iterator<Item = &NodeName> {
        self.nodes.keys()
    }

    /// A node's configuration.
    pub fn node_config(&self, node: &NodeName) -> Option<&NodeConfig> {
        self.nodes.get(node).map(|n| &n.config)
    }

    /// Whether `actor` may read the node's items (XEP-0060 6.5, the access model and
    /// affiliations through the one table in `access.rs`); `None` if there is no such
    /// node. PEP's implicit audience (XEP-0163 4.3: contacts with +notify) is decided
    /// here too, so that it cannot drift from what a request would be allowed.
    pub fn may_read(&self, node: &NodeName, actor: &BareJid, rel: &dyn Relations) -> Option<bool> {
        let n = self.nodes.get(node)?;
        let admin = rel.is_admin(actor);
        Some(
            self.check(n, actor, admin, Action::RetrieveItems, rel)
                .is_ok(),
        )
    }

    /// For `send_last_published_item = on_sub_and_presence` and PEP: when `to` comes
    /// online (or, on PEP, a contact's caps show +notify for a node), the server asks
    /// which last items to send. Returns, for each node `to` may read whose
    /// configuration sends the last item on presence, the `SendLast` effect. `nodes`
    /// limits the answer (PEP +notify filtering is the server's); None = every node
    /// `to` is subscribed to with a `subscribed` subscription.
    pub fn last_items_for(
        &self,
        to: &Jid,
        nodes: Option<&[NodeName]>,
        rel: &dyn Relations,
    ) -> Result<Vec<Effect>, Error> {
        use crate::config::SendLastPublished;
        let actor = to.to_bare();
        let admin = rel.is_admin(&actor);
        let mut out = Vec::new();
        let candidates: Box<dyn Iterator<Item = &NodeName>> = match nodes {
            Some(list) => Box::new(list.iter()),
            None => Box::new(self.last_on_presence.iter()),
        };
        for name in candidates {
            let Some(n) = self.nodes.get(name) else {
                continue;
            };
            let wanted = nodes.is_some()
                || n.subs_of_bare(&actor)
                    .any(|s| s.state == SubState::Subscribed);
            if !wanted || n.config.send_last_published_item != SendLastPublished::OnSubAndPresence {
                continue;
            }
            if self
                .check(n, &actor, admin, Action::RetrieveItems, rel)
                .is_err()
            {
                continue;
            }
            if let Some(e) = self.send_last_effect(n, to, None)? {
                out.push(e);
            }
        }
        Ok(out)
    }

    // ---- helpers shared by the use cases ----

    pub(crate) fn node(&self, name: &NodeName) -> Result<&NodeState, Error> {
        self.nodes.get(name).ok_or(Error::NodeNotFound)
    }

    fn standing<'a>(
        &self,
        node: &'a NodeState,
        actor: &BareJid,
        owners: &'a [BareJid],
    ) -> Standing<'a> {
        Standing {
            access_model: node.config.access_model,
            publish_model: node.config.publish_model,
            roster_groups_allowed: &node.config.roster_groups_allowed,
            explicit: self.explicit_affiliation(node, actor),
            subscription: node.best_state(actor),
            owners,
        }
    }

    /// The stored affiliation; on PEP the account owns every node.
    pub(crate) fn explicit_affiliation(&self, node: &NodeState, actor: &BareJid) -> Affiliation {
        if self.cfg.pep && *actor == self.address.to_bare() {
            return Affiliation::Owner;
        }
        node.affiliations
            .get(actor)
            .copied()
            .unwrap_or(Affiliation::None)
    }

    /// The access check: Ok(effective affiliation) or the denial for this node's
    /// access model. Admins act as owners.
    pub(crate) fn check(
        &self,
        node: &NodeState,
        actor: &BareJid,
        admin: bool,
        action: Action,
        rel: &dyn Relations,
    ) -> Result<Affiliation, Error> {
        if admin {
            return Ok(Affiliation::Owner);
        }
        let owners = node.owners();
        let st = self.standing(node, actor, &owners);
        let eff = access::effective_affiliation(&st, actor, rel);
        if access::may(eff, action)
            || (action == Action::Publish && access::publish_model_allows(&st, eff))
        {
            Ok(eff)
        } else {
            Err(access::denial(&st, eff, action))
        }
    }

    pub(crate) fn check_ctx(
        &self,
        node: &NodeState,
        ctx: &Ctx<'_>,
        action: Action,
    ) -> Result<Affiliation, Error> {
        self.check(node, &ctx.actor, ctx.admin, action, ctx.rel)
    }

    /// A fresh identifier (ItemIDs, SubIDs, instant NodeIDs): the request time and a
    /// per-service counter, unique as long as the clock does not go back across
    /// restarts; not meant to be unguessable.
    pub(crate) fn new_id(&mut self, now_ms: u64) -> String {
        self.ids += 1;
        format!("{now_ms:x}-{:x}", self.ids)
    }

    /// The `SendLast` effect for one subscriber, if the node has items.
    pub(crate) fn send_last_effect(
        &self,
        node: &NodeState,
        to: &Jid,
        subid: Option<crate::types::SubId>,
    ) -> Result<Option<Effect>, Error> {
        let items = self.last_items(&node.name, 1)?;
        if items.is_empty() || !node.config.deliver_notifications {
            return Ok(None);
        }
        Ok(Some(Effect::SendLast {
            to: to.clone(),
            node: node.name.clone(),
            items,
            payloads: node.config.deliver_payloads,
            notification_type: node.config.notification_type,
            subid,
        }))
    }

    pub(crate) fn last_items(&self, node: &NodeName, n: usize) -> Result<Vec<Arc<Item>>, Error> {
        Ok(self.store.query_items(
            node,
            &crate::store::ItemQuery {
                newest_first: true,
                limit: Some(n),
                ..Default::default()
            },
        )?)
    }

    /// The seq of an item, from its metadata (its payload is not read).
    pub(crate) fn seq_of(&self, node: &NodeName, id: &ItemId) -> Result<u64, Error> {
        seq_of(&self.store, node, id)
    }

    /// Keeps [`Service::last_on_presence`] in step with a node's configuration (after it
    /// was added or configured).
    pub(crate) fn index_node(&mut self, name: &NodeName) {
        match self.nodes.get(name) {
            Some(n) if sends_last_on_presence(n) => {
                self.last_on_presence.insert(name.clone());
            }
            _ => {
                self.last_on_presence.remove(name);
            }
        }
    }

    /// Drops a node from memory (its store record is already gone), with its count in
    /// the creator's quota.
    pub(crate) fn remove_node(&mut self, name: &NodeName) -> NodeState {
        let node = self.nodes.remove(name).expect("node checked to exist");
        self.last_on_presence.remove(name);
        let creator = node.creator.to_bare();
        if let Some(n) = self.created_by.get_mut(&creator) {
            *n -= 1;
            if *n == 0 {
                self.created_by.remove(&creator);
            }
        }
        node
    }

    pub(crate) fn node_mut(&mut self, name: &NodeName) -> &mut NodeState {
        self.nodes
            .get_mut(name)
            .expect("node checked to exist earlier in this request")
    }
}

/// Whether `jid` (bare or full) has the bare JID `bare`, without building one: these
/// comparisons run once per subscription in access checks and snapshot rebuilds.
pub(crate) fn same_bare(jid: &Jid, bare: &BareJid) -> bool {
    jid.node() == bare.node() && jid.domain() == bare.domain()
}

fn sends_last_on_presence(n: &NodeState) -> bool {
    n.config.send_last_published_item == crate::config::SendLastPublished::OnSubAndPresence
}

/// The seq of a stored item (RSM and MAM markers name items by id).
pub(crate) fn seq_of<S: Store>(store: &S, node: &NodeName, id: &ItemId) -> Result<u64, Error> {
    store
        .item_meta(node, std::slice::from_ref(id))?
        .first()
        .map(|m| m.seq)
        .ok_or(Error::ItemNotFound)
}
