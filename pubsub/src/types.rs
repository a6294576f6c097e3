//! The domain vocabulary: names, affiliations, subscriptions, items.

use std::fmt;
use std::sync::Arc;

use hydrant_proto::{Element, Jid};

macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Wraps a string; the wire layer rejects empty values before they get here.
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                $name(s.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                $name(s)
            }
        }
    };
}

string_newtype!(
    /// A NodeID (XEP-0060 4.6.2): opaque, unique within one service.
    NodeName
);
string_newtype!(
    /// An ItemID (XEP-0060 7.1): unique within one node.
    ItemId
);
string_newtype!(
    /// A subscription identifier (XEP-0060 6.1.6): unique within one node.
    SubId
);

/// An entity's affiliation with a node (XEP-0060 4.1), always held for a bare JID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Affiliation {
    Owner,
    Publisher,
    PublishOnly,
    Member,
    None,
    Outcast,
}

impl Affiliation {
    pub const ALL: [Affiliation; 6] = [
        Affiliation::Owner,
        Affiliation::Publisher,
        Affiliation::PublishOnly,
        Affiliation::Member,
        Affiliation::None,
        Affiliation::Outcast,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Publisher => "publisher",
            Affiliation::PublishOnly => "publish-only",
            Affiliation::Member => "member",
            Affiliation::None => "none",
            Affiliation::Outcast => "outcast",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Affiliation::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The state of one subscription (XEP-0060 4.2). "none" is the absence of a
/// subscription and is only a wire value (owner removal, unsubscribe notifications).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubState {
    /// Waiting for an owner's approval (access model `authorize`); gets no notifications.
    Pending,
    /// Set by an owner (XEP-0060 8.8.2); gets no notifications until the subscriber
    /// submits options, which makes it `Subscribed`.
    Unconfigured,
    Subscribed,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            SubState::Pending => "pending",
            SubState::Unconfigured => "unconfigured",
            SubState::Subscribed => "subscribed",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => SubState::Pending,
            "unconfigured" => SubState::Unconfigured,
            "subscribed" => SubState::Subscribed,
            _ => return None,
        })
    }
}

/// A presence `<show/>` value a subscriber asks notifications for (XEP-0060
/// `pubsub#show-values`); `Online` stands for available presence without `<show/>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Show {
    Away,
    Chat,
    Dnd,
    Online,
    Xa,
}

impl Show {
    pub const ALL: [Show; 5] = [Show::Away, Show::Chat, Show::Dnd, Show::Online, Show::Xa];

    pub fn as_str(self) -> &'static str {
        match self {
            Show::Away => "away",
            Show::Chat => "chat",
            Show::Dnd => "dnd",
            Show::Online => "online",
            Show::Xa => "xa",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Show::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// Subscription options (XEP-0060 6.3, `pubsub#subscribe_options`). Only the options
/// hydrant acts on are kept; `digest` and `include_body` are accepted when false.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubOptions {
    /// `pubsub#deliver`: false pauses notifications without unsubscribing.
    pub deliver: bool,
    /// `pubsub#show-values`: empty means any availability. Acted on by the server
    /// (it knows presence) when it walks a [`crate::Subscriber`] snapshot.
    pub show_values: Vec<Show>,
    /// hydrant's `x-hydrant#urgent` (an XEP-0068 custom field): this node's notifications
    /// go to the subscriber at once even while its client says it is inactive (XEP-0352),
    /// instead of waiting for the next batch.
    pub urgent: bool,
}

impl Default for SubOptions {
    fn default() -> Self {
        SubOptions {
            deliver: true,
            show_values: Vec::new(),
            urgent: false,
        }
    }
}

/// One subscription to one node. A JID may hold several (multi-subscribe), told apart by
/// `subid`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub jid: Jid,
    pub subid: SubId,
    pub state: SubState,
    pub options: SubOptions,
}

/// A published item. Shared as `Arc<Item>` between the store, replies and notifications:
/// the payload is never copied per recipient.
#[derive(Clone, Debug)]
pub struct Item {
    pub id: ItemId,
    /// The publisher's JID as it published (full JID for a client).
    pub publisher: Jid,
    /// The payload element (exactly one, XEP-0060 7.1.3.5); `None` for an empty item on a
    /// notification-only node.
    pub payload: Option<Element>,
    /// When the service accepted it (the caller's clock, milliseconds since the epoch).
    pub published_ms: u64,
    /// Per-node monotonic sequence number: ordering for RSM paging and MAM queries.
    /// Re-publishing an existing ItemID gives it a new, higher `seq`.
    pub seq: u64,
    /// `payload` serialised (without inherited namespaces), when it already was: a
    /// publish serialises it once to check its size, and the store writes these bytes
    /// rather than serialising it again. `None`: serialise when needed.
    pub payload_xml: Option<Arc<[u8]>>,
}

/// Items are equal by what they hold; `payload_xml` is a cache of `payload`.
impl PartialEq for Item {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
            && self.publisher == other.publisher
            && self.payload == other.payload
            && self.published_ms == other.published_ms
            && self.seq == other.seq
    }
}

impl Eq for Item {}

/// What the fan-out needs about one subscribed JID: one entry per distinct JID, holding
/// all of its delivering subscriptions' ids (more than one means SHIM headers, XEP-0060
/// 7.1.2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscriber {
    /// Where notifications go: a full JID gets them at that resource, a bare JID through
    /// the server's normal bare-JID routing (RFC 6121 8.5.2; `headline` reaches every
    /// available resource).
    pub jid: Jid,
    pub subids: Vec<SubId>,
    /// Union of the subscriptions' `show_values`; empty = any availability.
    pub show_values: Vec<Show>,
    /// Any of the subscriptions asked for urgent delivery ([`SubOptions::urgent`]).
    pub urgent: bool,
}

impl Subscriber {
    /// Whether notifications to this subscriber carry SHIM `SubID` headers.
    pub fn needs_shim(&self) -> bool {
        self.subids.len() > 1
    }
}

/// The subscriber snapshot the fan-out walks without a lock.
///
/// Entries are shared (`Arc`): a subscription change replaces one entry, and the next
/// snapshot is a copy of pointers, not of JIDs and ids.
pub type Subscribers = Arc<[Arc<Subscriber>]>;
