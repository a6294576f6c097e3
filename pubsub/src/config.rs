//! Node configuration (XEP-0060 16.4.3, `pubsub#node_config`) and service configuration.

/// `pubsub#access_model` (XEP-0060 4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AccessModel {
    Open,
    Presence,
    Roster,
    Whitelist,
    Authorize,
}

impl AccessModel {
    pub const ALL: [AccessModel; 5] = [
        AccessModel::Authorize,
        AccessModel::Open,
        AccessModel::Presence,
        AccessModel::Roster,
        AccessModel::Whitelist,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessModel::Open => "open",
            AccessModel::Presence => "presence",
            AccessModel::Roster => "roster",
            AccessModel::Whitelist => "whitelist",
            AccessModel::Authorize => "authorize",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        AccessModel::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `pubsub#publish_model`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PublishModel {
    /// Owners and publishers (and publish-only) may publish.
    Publishers,
    /// As `Publishers`, plus entities with a `subscribed` subscription.
    Subscribers,
    /// Anyone but outcasts.
    Open,
}

impl PublishModel {
    pub const ALL: [PublishModel; 3] = [
        PublishModel::Publishers,
        PublishModel::Subscribers,
        PublishModel::Open,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PublishModel::Publishers => "publishers",
            PublishModel::Subscribers => "subscribers",
            PublishModel::Open => "open",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        PublishModel::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `pubsub#send_last_published_item`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SendLastPublished {
    Never,
    /// On subscription: the core emits [`crate::Effect::SendLast`].
    OnSub,
    /// On subscription, and when a subscriber becomes available: the server calls
    /// [`crate::Service::last_items_for`] on presence (XEP-0163 contacts and +notify too).
    OnSubAndPresence,
}

impl SendLastPublished {
    pub const ALL: [SendLastPublished; 3] = [
        SendLastPublished::Never,
        SendLastPublished::OnSub,
        SendLastPublished::OnSubAndPresence,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SendLastPublished::Never => "never",
            SendLastPublished::OnSub => "on_sub",
            SendLastPublished::OnSubAndPresence => "on_sub_and_presence",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        SendLastPublished::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// `pubsub#notification_type`: the `type` of notification `<message/>`s.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NotificationType {
    Normal,
    Headline,
}

impl NotificationType {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationType::Normal => "normal",
            NotificationType::Headline => "headline",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "normal" => NotificationType::Normal,
            "headline" => NotificationType::Headline,
            _ => return None,
        })
    }
}

/// `pubsub#max_items`: a count, or `max` (XEP-0060 1.24, feature `config-node-max`).
///
/// `Max` means the service-wide cap ([`ServiceConfig::max_items_cap`]). A count above the
/// cap is accepted on configure and stored as `Max`: the node keeps at most `cap` items
/// either way, and the form then honestly reports `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaxItems {
    Count(u32),
    Max,
}

impl MaxItems {
    /// The number of items a node keeps, given the service cap.
    pub fn effective(self, cap: u32) -> u32 {
        match self {
            MaxItems::Count(n) => n.min(cap),
            MaxItems::Max => cap,
        }
    }

    /// Parses a form value: a decimal count or `max`; counts above `cap` become `Max`.
    pub fn parse(s: &str, cap: u32) -> Option<Self> {
        if s == "max" {
            return Some(MaxItems::Max);
        }
        let n: u32 = s.parse().ok()?;
        Some(if n >= cap {
            MaxItems::Max
        } else {
            MaxItems::Count(n)
        })
    }

    pub fn to_value(self) -> String {
        match self {
            MaxItems::Count(n) => n.to_string(),
            MaxItems::Max => "max".to_owned(),
        }
    }
}

/// One node's configuration. Field names follow `pubsub#node_config`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeConfig {
    pub title: String,
    pub description: String,
    /// `pubsub#type`: the payload namespace; when set, publishes must carry a payload in
    /// it (XEP-0060 7.1.3.5, invalid-payload otherwise).
    pub payload_type: Option<String>,
    pub access_model: AccessModel,
    /// `pubsub#roster_groups_allowed` (access model `roster`).
    pub roster_groups_allowed: Vec<String>,
    pub publish_model: PublishModel,
    pub max_items: MaxItems,
    pub persist_items: bool,
    pub deliver_payloads: bool,
    pub deliver_notifications: bool,
    pub notify_retract: bool,
    pub notify_delete: bool,
    pub notify_config: bool,
    /// `pubsub#subscribe`: whether entities may subscribe at all.
    pub subscribe: bool,
    pub send_last_published_item: SendLastPublished,
    /// Deliver only to subscribers that are available; the server enforces it (it
    /// knows presence), see [`crate::Notification::presence_based`].
    pub presence_based_delivery: bool,
    pub notification_type: NotificationType,
}

impl Default for NodeConfig {
    /// The defaults of a pubsub component node (XEP-0060 16.4.3, and what Prosody and
    /// ejabberd ship): open, persistent, payloads delivered, ten items.
    fn default() -> Self {
        NodeConfig {
            title: String::new(),
            description: String::new(),
            payload_type: None,
            access_model: AccessModel::Open,
            roster_groups_allowed: Vec::new(),
            publish_model: PublishModel::Publishers,
            max_items: MaxItems::Count(10),
            persist_items: true,
            deliver_payloads: true,
            deliver_notifications: true,
            notify_retract: true,
            notify_delete: true,
            notify_config: false,
            subscribe: true,
            send_last_published_item: SendLastPublished::Never,
            presence_based_delivery: false,
            notification_type: NotificationType::Headline,
        }
    }
}

impl NodeConfig {
    /// The XEP-0163 PEP defaults: presence access model, last item on subscription and
    /// presence, one item.
    pub fn pep_default() -> Self {
        NodeConfig {
            access_model: AccessModel::Presence,
            max_items: MaxItems::Count(1),
            send_last_published_item: SendLastPublished::OnSubAndPresence,
            ..NodeConfig::default()
        }
    }

    /// How many items this node keeps. A transient node keeps its last item only, so
    /// the last published item can still be sent (XEP-0060 12.7); a transient
    /// notification-only node keeps nothing (its publishes carry no item).
    pub fn keep_items(&self, cap: u32) -> u32 {
        if self.persist_items {
            self.max_items.effective(cap)
        } else {
            1
        }
    }
}

/// Who may create nodes ([`ServiceConfig::create_policy`]). Service admins
/// ([`crate::Relations::is_admin`]) always may; on a PEP service only the account does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreatePolicy {
    Anyone,
    /// Only entities whose bare JID is at this domain.
    LocalUsers(String),
    Nobody,
}

/// One service's configuration, set by the operator.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    /// What `max_items = max` and any larger `max_items` mean: the most items one node
    /// keeps. Default 10,000.
    pub max_items_cap: u32,
    /// The largest item payload accepted, in bytes of its serialized XML. Default 256 KiB.
    pub max_payload_bytes: usize,
    /// The most items one items-retrieval reply carries; more are paged with RSM
    /// (XEP-0060 6.5.4). Default 500.
    pub max_page_items: u32,
    /// The most payload bytes one items-retrieval reply carries (at least one item is
    /// always sent); more are paged with RSM. Keep it well below the clients' outbound
    /// queue limit. Default 256 KiB.
    pub max_page_bytes: usize,
    /// The most subscriptions one account (bare JID, all of its resources together)
    /// may hold on one node; more get `<policy-violation/>` with
    /// `<too-many-subscriptions/>` (XEP-0060 6.1.3.9). Default 16.
    pub max_subscriptions_per_jid: usize,
    /// The most nodes one bare JID may have created on this service (on PEP: the
    /// account's own nodes, auto-created ones included); admins are exempt. More get
    /// `<not-allowed/>` ([`crate::Error::TooManyNodes`]). Default 1,000.
    pub max_nodes_per_creator: usize,
    /// The longest value of a node configuration text field (`pubsub#title`,
    /// `pubsub#description`, `pubsub#type`, each of `pubsub#roster_groups_allowed`),
    /// in bytes; and the most roster groups one node may allow. Longer or more:
    /// `<not-acceptable/>` (XEP-0060 8.2.5.2, an invalid configuration). Default 1,024.
    pub max_config_text_bytes: usize,
    /// Configuration of new nodes (create without form, auto-create, `<default/>`).
    pub default_node: NodeConfig,
    /// PEP semantics (XEP-0163): the service address is the account; it owns every node;
    /// publish auto-creates; only it may create, publish, configure.
    pub pep: bool,
    pub create_policy: CreatePolicy,
    /// Advertise XEP-0313 on the service and its nodes ([`crate::MAM_FEATURES`]):
    /// set by a server that answers MAM queries with [`crate::Service::archive`].
    /// Default false (the core has no MAM wire format of its own).
    pub mam: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            max_items_cap: 10_000,
            max_payload_bytes: 256 * 1024,
            max_page_items: 500,
            max_page_bytes: 256 * 1024,
            max_subscriptions_per_jid: 16,
            max_nodes_per_creator: 1_000,
            max_config_text_bytes: 1_024,
            default_node: NodeConfig::default(),
            pep: false,
            create_policy: CreatePolicy::Anyone,
            mam: false,
        }
    }
}

impl ServiceConfig {
    /// A PEP service configuration (XEP-0163 defaults).
    pub fn pep() -> Self {
        ServiceConfig {
            default_node: NodeConfig::pep_default(),
            pep: true,
            create_policy: CreatePolicy::Nobody,
            ..ServiceConfig::default()
        }
    }
}
