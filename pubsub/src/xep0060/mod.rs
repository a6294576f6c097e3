//! The XEP-0060 wire layer: requests in ([`parse`], [`parse_authorization`]), replies
//! out ([`response::render`]), notifications out ([`event::render`]), data forms
//! ([`forms`]), and the one error mapping ([`error::to_stanza_error`]).

pub mod error;
pub mod event;
pub mod forms;
pub mod request;
pub mod response;

pub use forms::parse_authorization;
pub use request::parse;
