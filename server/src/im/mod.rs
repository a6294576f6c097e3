//! RFC 6121 instant messaging and presence, plus the server's own iq services.

pub mod adhoc;
pub mod backlog;
pub mod blocking;
pub mod blocklist;
pub mod carbons;
pub mod iq;
pub mod message;
pub mod multicast;
pub mod presence;
pub mod private;
pub mod roster;
pub mod undelivered;
pub mod vcard;
pub mod vcard_update;
