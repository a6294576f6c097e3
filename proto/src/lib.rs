//! hydrant-proto: the XMPP wire.
//!
//! Owns: JIDs (re-exported from the `jid` crate), namespaces, the incremental sans-IO
//! stream reader (bytes in, [`StreamEvent`]s out, with hard limits), the element type and
//! its writer, typed stanzas, stream and stanza error enums. (The per-connection outbound
//! queue lives in `hydrant-stream`.)
//!
//! Must not depend on: tokio, rustls, sockets, clocks, or any other workspace crate.
//!
//! Layout: [`ns`] namespace constants; [`element`] the DOM and its serializer
//! ([`writer`] holds the escaping); [`reader`] finds unit boundaries in the byte stream
//! and `parse` (private) turns each complete unit into an [`Element`]; [`error`] stream and
//! stanza errors; [`stanza`], [`iq`] and [`roster`] the typed stanzas and payloads;
//! [`address`] the check that a normalised JID or username reads back as itself.

// `StanzaError` carries an optional application element (`app: Option<Element>`, part of
// the agreed API), which makes it ~150 bytes. Errors are the cold path of every parser
// here, and boxing would change the API other crates are written against.
#![allow(clippy::result_large_err)]

pub mod address;
mod common;
pub mod datetime;
pub mod element;
pub mod error;
pub mod iq;
mod limits;
pub mod ns;
mod parse;
pub mod reader;
pub mod roster;
pub mod scram;
pub mod stanza;
pub mod writer;

pub use element::{Element, Node};
pub use error::{
    ErrorType, StanzaError, StanzaErrorCondition, StreamError, StreamErrorCondition, error_reply,
};
pub use iq::{Iq, IqPayload, IqType};
pub use jid::{BareJid, FullJid, Jid};
pub use reader::{Limits, StreamEvent, StreamHeader, StreamReader};
pub use roster::{RosterItem, RosterQuery, Subscription};
pub use stanza::{Message, MessageType, Presence, PresenceType, Stanza, StanzaParseError};
