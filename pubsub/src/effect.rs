//! What a request asks the outside world to do: the effects the server carries out
//! after the store accepted the change.

use std::sync::Arc;

use hydrant_proto::{Element, Jid};

use crate::config::{NodeConfig, NotificationType};
use crate::types::{Item, ItemId, NodeName, SubId, SubState, Subscribers};

/// The `<event xmlns='pubsub#event'/>` content of a notification.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// Published items (XEP-0060 7.1.2). `payloads` false: the items go without their
    /// payload (notification-only node); an empty `items` with `payloads` false is a
    /// transient notification-only publish (`<items node='..'/>`).
    Items {
        items: Vec<Arc<Item>>,
        payloads: bool,
    },
    /// Retracted (or evicted) items (XEP-0060 7.2.2.1).
    Retract { ids: Vec<ItemId> },
    /// All items were purged (XEP-0060 8.5.2).
    Purge,
    /// The node was deleted (XEP-0060 8.4.2), with an optional redirect URI.
    Delete { redirect: Option<String> },
    /// The configuration changed (XEP-0060 8.2.5.3); `form` is the full configuration
    /// when the node delivers payloads.
    Configuration { form: Option<Box<NodeConfig>> },
    /// A subscription's state changed (XEP-0060 8.6 approval, 8.8.4 owner changes).
    /// `state` `None` means the subscription was removed.
    Subscription {
        jid: Jid,
        subid: Option<SubId>,
        state: Option<SubState>,
    },
}

/// One event for a set of recipients. The server serialises it once
/// ([`crate::xep0060::event::render`] builds the `<event/>` element) and addresses one
/// copy to each recipient.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub node: NodeName,
    pub event: Event,
    /// The `type` of the `<message/>`.
    pub notification_type: NotificationType,
    /// The recipients: the node's subscriber snapshot (shared, not copied) or a list
    /// built for this event. A subscriber with several subids gets SHIM headers
    /// ([`crate::xep0060::event::render_shim`]).
    pub recipients: Subscribers,
    /// `pubsub#presence_based_delivery`: the server delivers only to recipients that are
    /// available (and whose `show_values` admit their current show).
    pub presence_based: bool,
}

/// One thing for the server to do. Deliberately not `#[non_exhaustive]`: the server
/// matches every variant, so a new effect fails its build instead of falling into a
/// `_ => {}` and being silently dropped.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Send this event to these recipients.
    Notify(Notification),
    /// The last published item(s) go to one new subscriber (`send_last_published_item`),
    /// as an `<items/>` event, with payloads as the node's `deliver_payloads` says.
    SendLast {
        to: Jid,
        node: NodeName,
        items: Vec<Arc<Item>>,
        payloads: bool,
        notification_type: NotificationType,
        /// Set when `to` holds several subscriptions (SHIM header).
        subid: Option<SubId>,
    },
    /// Ask the owners to approve a pending subscription (XEP-0060 8.6): build the
    /// message with [`crate::xep0060::forms::authorization_request`].
    ApprovalRequest {
        to: Vec<Jid>,
        node: NodeName,
        subscriber: Jid,
        subid: SubId,
    },
}

/// The result of one request: the iq result payload (None = empty result) and the
/// effects to carry out, in order.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub reply: Option<Element>,
    pub effects: Vec<Effect>,
}
