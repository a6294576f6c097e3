//! The client side of XMPP that the scenarios need, and nothing more: a streaming
//! scanner instead of an XML parser, SASL client mechanisms, TLS setup, and a
//! connection that negotiates up to a bound resource.

pub mod conn;
pub mod pubsub;
pub mod sasl;
pub mod scan;
pub mod tls;
pub mod zlib;
