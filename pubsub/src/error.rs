//! Domain errors. They name what went wrong in pubsub terms; the one place that turns
//! them into wire errors is [`crate::xep0060::error::to_stanza_error`].

/// A failure of the persistence layer. The service keeps its state unchanged when a
/// store call fails (every call is atomic), so the request can simply be retried.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pubsub store: {0}")]
pub struct StoreError(pub String);

/// Why a pubsub request failed. Each variant maps to exactly one XEP-0060 error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed in a way XEP-0060 has no specific condition for.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The node does not exist (`item-not-found`).
    #[error("no such node")]
    NodeNotFound,
    /// The item does not exist (`item-not-found`).
    #[error("no such item")]
    ItemNotFound,
    #[error("forbidden")]
    Forbidden,
    /// Create with a NodeID that is taken (`conflict`).
    #[error("node exists")]
    NodeExists,
    /// A subscribe/unsubscribe/options JID whose bare JID is not the sender's
    /// (`bad-request` + `invalid-jid`, XEP-0060 6.1.3.1). Unsubscribe and options use
    /// [`Error::Forbidden`] for the same mismatch, as the XEP says.
    #[error("JID does not match the sender")]
    InvalidJid,
    /// A JID attribute that is missing (`bad-request` + `jid-required`).
    #[error("a JID is required")]
    JidRequired,
    /// A JID attribute that is not a JID (`jid-malformed`).
    #[error("malformed JID")]
    JidMalformed,
    #[error("a NodeID is required")]
    NodeIdRequired,
    #[error("an item (with an ItemID) is required")]
    ItemRequired,
    #[error("a payload is required")]
    PayloadRequired,
    #[error("this node takes no items")]
    ItemForbidden,
    #[error("invalid payload")]
    InvalidPayload,
    #[error("payload of {size} bytes exceeds {limit}")]
    PayloadTooBig { size: usize, limit: usize },
    /// A publish-options precondition that the node does not meet, or an unknown field
    /// in publish-options (`conflict` + `precondition-not-met`).
    #[error("precondition not met: {field}")]
    PreconditionNotMet { field: String },
    #[error("presence subscription required")]
    PresenceSubscriptionRequired,
    #[error("not in an allowed roster group")]
    NotInRosterGroup,
    /// Whitelist node and the actor is not on it (`not-allowed` + `closed-node`).
    #[error("closed node")]
    ClosedNode,
    #[error("subscription pending")]
    PendingSubscription,
    /// Unsubscribe or options for an entity that is not subscribed
    /// (`unexpected-request` + `not-subscribed`).
    #[error("not subscribed")]
    NotSubscribed,
    /// Items of an authorize node asked by a non-subscriber
    /// (`not-authorized` + `not-subscribed`, XEP-0060 6.5.9.3).
    #[error("items require a subscription")]
    ItemsRequireSubscription,
    #[error("subscription id required")]
    SubIdRequired,
    #[error("invalid subscription id")]
    InvalidSubId,
    /// A subscription-options form with an invalid value (`bad-request` +
    /// `invalid-options`).
    #[error("invalid subscription options: {0}")]
    InvalidOptions(String),
    /// A node-configuration form with an invalid value (`not-acceptable`, XEP-0060
    /// 8.2.5.2).
    #[error("invalid node configuration: {field}")]
    InvalidConfig { field: String },
    /// A data form that is not a usable form at all (wrong FORM_TYPE, type, structure).
    #[error("bad data form: {0}")]
    BadForm(&'static str),
    /// A change that cannot be applied as asked (e.g. removing the last owner, XEP-0060
    /// 8.9.2.4; an invalid entry in a multi-entry change) (`not-acceptable`).
    #[error("not acceptable: {0}")]
    NotAcceptable(&'static str),
    #[error("too many subscriptions")]
    TooManySubscriptions,
    /// The requester already created as many nodes as the service allows one creator
    /// ([`crate::ServiceConfig::max_nodes_per_creator`]): `not-allowed`, type `cancel`.
    /// XEP-0060 8.1.1 lets a service refuse node creation depending on who asks; the
    /// quota will not lift by waiting, so not `resource-constraint` (type `wait`).
    #[error("at most {limit} nodes per creator")]
    TooManyNodes { limit: usize },
    /// A retrieval naming more distinct ItemIDs than one page holds
    /// ([`crate::ServiceConfig::max_page_items`]): `policy-violation`, type `modify`
    /// (RFC 6120 8.3.3.12: a local service policy; the requester can ask for fewer).
    #[error("more than {limit} item ids in one request")]
    TooManyIds { limit: u32 },
    /// A feature hydrant does not offer on this node or service
    /// (`feature-not-implemented` + `unsupported feature=...`).
    #[error("unsupported: {feature}")]
    Unsupported { feature: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}
