//! SASL failure conditions (RFC 6120 6.5) this server sends.

use hydrant_proto::{Element, ns};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Aborted,
    EncryptionRequired,
    IncorrectEncoding,
    InvalidAuthzid,
    InvalidMechanism,
    MalformedRequest,
    NotAuthorized,
    TemporaryAuth,
}

impl Failure {
    pub const fn as_str(self) -> &'static str {
        match self {
            Failure::Aborted => "aborted",
            Failure::EncryptionRequired => "encryption-required",
            Failure::IncorrectEncoding => "incorrect-encoding",
            Failure::InvalidAuthzid => "invalid-authzid",
            Failure::InvalidMechanism => "invalid-mechanism",
            Failure::MalformedRequest => "malformed-request",
            Failure::NotAuthorized => "not-authorized",
            Failure::TemporaryAuth => "temporary-auth-failure",
        }
    }

    /// `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><condition/></failure>`.
    pub fn to_element(self) -> Element {
        Element::new("failure", ns::SASL).with_child(Element::new(self.as_str(), ns::SASL))
    }
}
