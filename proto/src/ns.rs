//! XML namespace names used on the wire.
//!
//! Plain `&'static str` constants so they can be compared against [`crate::Element::ns`]
//! without allocation and used in `match` guards.

/// The stream namespace (RFC 6120 4.8.1); qualifies `<stream:stream>`, features, errors.
pub const STREAM: &str = "http://etherx.jabber.org/streams";
/// Content namespace of client-to-server streams (RFC 6120 4.8.3).
pub const CLIENT: &str = "jabber:client";
/// Content namespace of server-to-server streams (RFC 6120 4.8.3).
pub const SERVER: &str = "jabber:server";
/// Content namespace of external component streams (XEP-0114).
pub const COMPONENT_ACCEPT: &str = "jabber:component:accept";
/// Server Dialback (XEP-0220), declared as `xmlns:db` on s2s stream headers.
pub const DIALBACK: &str = "jabber:server:dialback";
/// Stream feature for dialback error support (XEP-0220).
pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";

/// STARTTLS (RFC 6120 5).
pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL (RFC 6120 6).
pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 7).
pub const BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Legacy session establishment (RFC 3921, kept by RFC 6121 as optional no-op).
pub const SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Stanza error conditions (RFC 6120 8.3.3).
pub const STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// Stream error conditions (RFC 6120 4.9.3).
pub const STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";

/// Roster management (RFC 6121 2).
pub const ROSTER: &str = "jabber:iq:roster";
/// Roster versioning stream feature (RFC 6121 2.6).
pub const ROSTERVER: &str = "urn:xmpp:features:rosterver";
/// Subscription pre-approval stream feature (RFC 6121 3.4).
pub const PRE_APPROVAL: &str = "urn:xmpp:features:pre-approval";

/// Service discovery, info (XEP-0030).
pub const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Service discovery, items (XEP-0030).
pub const DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// Extended Stanza Addressing, multicast (XEP-0033).
pub const ADDRESS: &str = "http://jabber.org/protocol/address";
/// XMPP Ping (XEP-0199).
pub const PING: &str = "urn:xmpp:ping";
/// Software Version (XEP-0092).
pub const VERSION: &str = "jabber:iq:version";
/// In-Band Registration (XEP-0077).
pub const REGISTER: &str = "jabber:iq:register";
/// In-Band Registration stream feature (XEP-0077).
pub const REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// Private XML Storage (XEP-0049).
pub const PRIVATE: &str = "jabber:iq:private";
/// vcard-temp (XEP-0054).
pub const VCARD: &str = "vcard-temp";
/// The avatar hash in presence of vCard-Based Avatars (XEP-0153).
pub const VCARD_UPDATE: &str = "vcard-temp:x:update";
/// Delayed Delivery (XEP-0203).
pub const DELAY: &str = "urn:xmpp:delay";
/// The namespace bound to the reserved `xml` prefix (`xml:lang`).
pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
/// Entity Capabilities (XEP-0115).
pub const CAPS: &str = "http://jabber.org/protocol/caps";
/// Data Forms (XEP-0004).
pub const DATA_FORMS: &str = "jabber:x:data";
/// Stanza Forwarding (XEP-0297).
pub const FORWARD: &str = "urn:xmpp:forward:0";
/// Publish-Subscribe (XEP-0060).
pub const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// Publish-Subscribe event notifications (XEP-0060).
pub const PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// Publish-Subscribe owner use cases (XEP-0060).
pub const PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// Publish-Subscribe errors (XEP-0060).
pub const PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// Result Set Management (XEP-0059).
pub const RSM: &str = "http://jabber.org/protocol/rsm";
/// Stream Compression (XEP-0138).
pub const COMPRESS: &str = "http://jabber.org/protocol/compress";
/// Stream Compression feature (XEP-0138).
pub const COMPRESS_FEATURE: &str = "http://jabber.org/features/compress";
/// Message Carbons (XEP-0280).
pub const CARBONS: &str = "urn:xmpp:carbons:2";
/// Message Processing Hints (XEP-0334).
pub const HINTS: &str = "urn:xmpp:hints";
/// Chat State Notifications (XEP-0085).
pub const CHATSTATES: &str = "http://jabber.org/protocol/chatstates";
/// Message Delivery Receipts (XEP-0184).
pub const RECEIPTS: &str = "urn:xmpp:receipts";
/// Chat Markers (XEP-0333).
pub const CHAT_MARKERS: &str = "urn:xmpp:chat-markers:0";
/// Multi-User Chat, occupant payloads (XEP-0045).
pub const MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// Direct MUC Invitations (XEP-0249).
pub const CONFERENCE: &str = "jabber:x:conference";
/// Blocking Command (XEP-0191).
pub const BLOCKING: &str = "urn:xmpp:blocking";
/// Blocking Command application errors (XEP-0191).
pub const BLOCKING_ERRORS: &str = "urn:xmpp:blocking:errors";
