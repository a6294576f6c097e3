//! hydrant-pubsub: the XEP-0060 / XEP-0163 state machine and its XEP-0060 wire layer.
//!
//! Owns: nodes, node configuration, affiliations, subscriptions, items, the access
//! capability table, and the XEP-0060 wire format of all of them — as pure synchronous
//! code that returns effects. Storage ([`Store`]) and roster/presence facts
//! ([`Relations`]) are injected; delivery is the caller's ([`Effect`]).
//!
//! Must not depend on: tokio, sockets, a database, clocks (the caller passes `now_ms`),
//! or any workspace crate but `proto` (`scripts/check-deps.sh` enforces it).
//!
//! # Using it
//!
//! ```
//! use hydrant_proto::{Element, IqType, Jid};
//! use hydrant_pubsub::{MemoryStore, NoRelations, Service, ServiceConfig, xep0060};
//!
//! let mut svc = Service::open(
//!     Jid::new("pubsub.example.com").unwrap(),
//!     MemoryStore::new(),
//!     ServiceConfig::default(),
//! )
//! .unwrap();
//! let alice = Jid::new("alice@example.com/phone").unwrap();
//! let payload = Element::new("pubsub", hydrant_proto::ns::PUBSUB)
//!     .with_child(Element::new("create", hydrant_proto::ns::PUBSUB).with_attr("node", "photos"));
//! let req = xep0060::parse(IqType::Set, &payload).unwrap();
//! match svc.handle(&alice, req, &NoRelations, 1_000) {
//!     Ok(outcome) => { /* send outcome.reply as the iq result, then carry out outcome.effects */ }
//!     Err(e) => { let _wire = xep0060::error::to_stanza_error(&e); /* iq error */ }
//! }
//! ```
//!
//! One [`Service`] per pubsub service: a `pubsub.<domain>` component, or one account's
//! PEP (`ServiceConfig::pep()`, address = the account's bare JID). The server:
//!
//! 1. parses iq payloads with [`xep0060::parse`] (and an owner's approval `<message/>`
//!    form with [`xep0060::parse_authorization`]);
//! 2. calls [`Service::handle`] with the sender, the request, its [`Relations`] and the
//!    time; on `Err` replies with [`xep0060::error::to_stanza_error`] — nothing was
//!    changed (validation happens before the single, atomic store write);
//! 3. sends `Outcome::reply` as the iq result, then carries out `Outcome::effects`:
//!    - [`Effect::Notify`]: serialise [`xep0060::event::render`] once and address it to
//!      every [`Subscriber`] in `recipients` (`type` = `notification_type`; add
//!      [`xep0060::event::render_shim`] for a subscriber with several subids; when
//!      `presence_based`, skip unavailable subscribers and those whose `show_values`
//!      exclude their current show). A full-JID subscriber gets it at that resource, a
//!      bare-JID one through normal bare-JID routing;
//!    - [`Effect::SendLast`]: one `<message/>` with [`xep0060::event::items_event`];
//!    - [`Effect::ApprovalRequest`]: a `<message/>` to each owner with
//!      [`xep0060::forms::authorization_request`].
//! 4. For PEP and `send_last_published_item = on_sub_and_presence`, calls
//!    [`Service::last_items_for`] when a subscriber (or, on PEP, a contact with +notify)
//!    becomes available. Caps/+notify filtering and presence tracking are the server's.
//!
//! Fan-out reads [`Service::subscribers`] snapshots (`Arc<[Arc<Subscriber>]>`, taken on
//! the first read after a subscription change; a change touches only its account's
//! entries), never the live state.
//!
//! # Decisions
//!
//! - Items are listed newest first, and RSM pages walk that order (see
//!   `service/items.rs`); RSM UIDs are ItemIDs. Replies hold at most
//!   [`ServiceConfig::max_page_items`] items; more are paged.
//! - `max_items` is bounded by [`ServiceConfig::max_items_cap`] (default 10,000):
//!   `max` means the cap, a larger number is stored as `max` ([`MaxItems`]). A
//!   transient node (`persist_items` false) keeps only its last item, for
//!   `send_last_published_item`; retract and purge on it are `feature-not-implemented`.
//! - Archive queries (XEP-0313 on nodes, XEP-0442): [`Service::archive`] lists a node's
//!   items oldest first and pages forwards (RSM UIDs are ItemIDs), so "everything after
//!   the last item I saw" is one query; see `service/archive.rs`. The MAM wire format
//!   is the server's; [`ServiceConfig::mam`] makes disco advertise it.
//! - Access: [`access::may`] is the capability table; an entity the access model
//!   admits counts as `member`, one it does not as `none` (see [`access`]).
//! - A JID may hold several subscriptions (multi-subscribe); re-subscribing without new
//!   options returns the existing one.
//! - Outcasts leave the subscriber snapshot at once; their stored subscriptions stay.
//!
//! # Layout
//!
//! Core: [`types`], [`config`], [`access`], [`error`], [`relations`], [`store`]
//! ([`Store`], [`MemoryStore`], [`store::conformance`]), [`request`] (typed requests and
//! replies), [`effect`], and `service/` with one file per use case. Wire: [`xep0060`]
//! with `request` (parse) ↔ `response` (render), `forms`, `event`, `error`.

// The `Error` enum carries field names; it is the cold path of every request.
#![allow(clippy::result_large_err)]

pub mod access;
pub mod config;
pub mod effect;
pub mod error;
pub mod relations;
pub mod request;
mod service;
pub mod store;
pub mod types;
pub mod xep0060;
pub mod xep0313;

pub use access::{Action, may};
pub use config::{
    AccessModel, CreatePolicy, MaxItems, NodeConfig, NotificationType, PublishModel,
    SendLastPublished, ServiceConfig,
};
pub use effect::{Effect, Event, Notification, Outcome};
pub use error::{Error, StoreError};
pub use relations::{NoRelations, Relations, StaticRelations};
pub use request::{Reply, Request, RsmQuery};
pub use service::Service;
pub use service::archive::{ArchivePage, ArchiveQuery};
pub use service::disco::{AUTO_CREATE, FEATURES, MAM_FEATURES};
pub use service::items::ItemsRead;
pub use service::staged::{Commit, Finished, Handled, Staged};
pub use store::{
    ByteBudget, Committing, ItemMeta, ItemQuery, MemoryStore, NodeRecord, Store, SubChange,
    item_cost,
};
pub use types::{
    Affiliation, Item, ItemId, NodeName, Show, SubId, SubOptions, SubState, Subscriber,
    Subscribers, Subscription,
};
