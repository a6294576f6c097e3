//! Typed requests (built by [`crate::xep0060::parse`]) and typed replies (rendered by
//! [`crate::xep0060::response::render`]).

use std::sync::Arc;

use hydrant_proto::{BareJid, Element, Jid};

use crate::config::NodeConfig;
use crate::types::{
    Affiliation, Item, ItemId, NodeName, SubId, SubOptions, SubState, Subscription,
};

/// A submitted `pubsub#node_config` form, parsed but not yet applied: each present field
/// as (var, values). Applying it to a configuration ([`crate::xep0060::forms::apply_config`])
/// validates the values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigForm {
    pub fields: Vec<(String, Vec<String>)>,
}

/// A submitted `pubsub#subscribe_options` form (fields as in [`ConfigForm`]).
pub type OptionsForm = ConfigForm;

/// A `pubsub#publish-options` form: preconditions as (var, values).
pub type Preconditions = ConfigForm;

/// XEP-0059 request parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RsmQuery {
    pub max: Option<u32>,
    /// The page after (older than, in hydrant's newest-first order) this ItemID.
    pub after: Option<String>,
    /// The page before (newer than) this ItemID; `Some("")` asks for the last page.
    pub before: Option<String>,
    pub index: Option<u32>,
}

/// A typed XEP-0060 / XEP-0030 request to one service.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Request {
    /// disco#info on the service (`node` None) or a node (5.1, 5.3, 5.4).
    DiscoInfo {
        node: Option<NodeName>,
    },
    /// disco#items: the nodes (`node` None, 5.2, paged with XEP-0059 RSM by NodeID)
    /// or a node's items (5.5).
    DiscoItems {
        node: Option<NodeName>,
        rsm: Option<RsmQuery>,
    },

    /// Create (8.1); `node` None asks for an instant node; `config` create-and-configure.
    Create {
        node: Option<NodeName>,
        config: Option<ConfigForm>,
    },
    /// Get the configuration form (8.2.1).
    GetConfig {
        node: NodeName,
    },
    /// Submit a configuration form (8.2.4); `form` None is a cancel.
    SetConfig {
        node: NodeName,
        form: Option<ConfigForm>,
    },
    /// Default node configuration (8.3).
    DefaultConfig,
    Delete {
        node: NodeName,
        redirect: Option<String>,
    },
    Purge {
        node: NodeName,
    },

    Publish {
        node: NodeName,
        /// None = a `<publish/>` without `<item/>` (transient notification-only nodes).
        item: Option<PublishItem>,
        options: Option<Preconditions>,
    },
    Retract {
        node: NodeName,
        ids: Vec<ItemId>,
        /// The `notify` attribute; None = the node's `notify_retract`.
        notify: Option<bool>,
    },

    Subscribe {
        node: NodeName,
        jid: Jid,
        options: Option<OptionsForm>,
    },
    Unsubscribe {
        node: NodeName,
        jid: Jid,
        subid: Option<SubId>,
    },
    GetOptions {
        node: NodeName,
        jid: Jid,
        subid: Option<SubId>,
    },
    SetOptions {
        node: NodeName,
        jid: Jid,
        subid: Option<SubId>,
        form: OptionsForm,
    },
    /// Default subscription options (6.4).
    DefaultOptions {
        node: Option<NodeName>,
    },
    Items {
        node: NodeName,
        subid: Option<SubId>,
        max_items: Option<u32>,
        /// Specific items (6.5.8); empty = all / most recent.
        ids: Vec<ItemId>,
        rsm: Option<RsmQuery>,
    },
    /// The sender's own subscriptions (5.6), on one node or all.
    Subscriptions {
        node: Option<NodeName>,
    },
    /// The sender's own affiliations (5.7), on one node or all.
    Affiliations {
        node: Option<NodeName>,
    },

    /// Owner: the subscription list (8.8.1).
    OwnerSubscriptions {
        node: NodeName,
    },
    /// Owner: change subscriptions (8.8.2); state None removes.
    ModifySubscriptions {
        node: NodeName,
        changes: Vec<SubscriptionChange>,
    },
    /// Owner: the affiliation list (8.9.1).
    OwnerAffiliations {
        node: NodeName,
    },
    /// Owner: change affiliations (8.9.2); `Affiliation::None` removes.
    ModifyAffiliations {
        node: NodeName,
        changes: Vec<(BareJid, Affiliation)>,
    },
    /// Owner: answer to a subscription approval request (8.6), from a `<message/>`'s
    /// `pubsub#subscribe_authorization` form.
    Authorize {
        node: NodeName,
        subscriber: Jid,
        subid: Option<SubId>,
        allow: bool,
    },
}

/// The `<item/>` of a publish.
#[derive(Clone, Debug, PartialEq)]
pub struct PublishItem {
    pub id: Option<ItemId>,
    /// The payload children, all of them (more than one is invalid-payload).
    pub payload: Vec<Element>,
}

/// One entry of an owner's subscriptions change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubscriptionChange {
    pub jid: Jid,
    pub subid: Option<SubId>,
    /// None = "none": remove the subscription(s).
    pub state: Option<SubState>,
}

/// XEP-0059 reply parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RsmResult {
    pub first: Option<(String, u64)>,
    pub last: Option<String>,
    pub count: u64,
}

/// Identity, features and (for nodes) meta-data of a disco#info reply.
#[derive(Clone, Debug, PartialEq)]
pub struct DiscoInfo {
    pub node: Option<NodeName>,
    /// (category, type)
    pub identity: (&'static str, &'static str),
    pub features: Vec<&'static str>,
    /// `pubsub#meta-data` of a node.
    pub meta: Option<NodeMeta>,
}

/// The node meta-data of XEP-0060 5.4.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeMeta {
    pub config: NodeConfig,
    pub owners: Vec<BareJid>,
    pub publishers: Vec<BareJid>,
    pub creator: Jid,
    pub created_ms: u64,
    pub num_subscribers: usize,
}

/// A typed reply, before rendering.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Reply {
    /// An empty iq result.
    Empty,
    /// Create: always names the node (required for instant nodes).
    Created {
        node: NodeName,
    },
    /// Subscribe result (6.1.2); an `unconfigured` one carries `<subscribe-options><required/>`.
    Subscription {
        node: NodeName,
        sub: Subscription,
    },
    /// Options form (6.3.2).
    Options {
        node: NodeName,
        jid: Jid,
        subid: SubId,
        options: SubOptions,
    },
    /// Default options form (6.4.2).
    DefaultOptions {
        node: Option<NodeName>,
    },
    Published {
        node: NodeName,
        id: Option<ItemId>,
    },
    Items {
        node: NodeName,
        items: Vec<Arc<Item>>,
        rsm: Option<RsmResult>,
    },
    /// The sender's subscriptions: (node, subscription).
    Subscriptions {
        node: Option<NodeName>,
        subs: Vec<(NodeName, Subscription)>,
    },
    /// The sender's affiliations: (node, affiliation).
    Affiliations {
        node: Option<NodeName>,
        affs: Vec<(NodeName, Affiliation)>,
    },
    OwnerSubscriptions {
        node: NodeName,
        subs: Vec<Subscription>,
    },
    OwnerAffiliations {
        node: NodeName,
        affs: Vec<(BareJid, Affiliation)>,
    },
    Config {
        node: NodeName,
        config: NodeConfig,
    },
    DefaultConfig {
        config: NodeConfig,
    },
    DiscoInfo(DiscoInfo),
    /// disco#items: (node, name) entries, or item ids for a node's items.
    DiscoItems {
        node: Option<NodeName>,
        entries: Vec<(Option<NodeName>, String)>,
        /// The RSM `<set/>` of a page of nodes, when asked for or when the reply does
        /// not hold every node.
        rsm: Option<RsmResult>,
    },
}
