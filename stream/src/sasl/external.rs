//! SASL EXTERNAL (RFC 4422 appendix A) over a TLS client certificate, with the
//! authorization identity rules of XEP-0178.
//!
//! The caller verified the certificate and passes the identities it proves (xmppAddr or
//! dNSName values: a bare JID for a client, a domain for a server). The payload is the
//! optional authzid. XEP-0178 lets the peer omit it (or send `=`, RFC 6120 6.4.2) when the
//! certificate names one identity, which is then the one authenticated; with several the
//! peer must say which (we answer `<invalid-authzid/>` when it did not). An authzid must
//! be one of the certificate's identities, compared after RFC 7622 normalisation.

use super::{Failure, Step};

pub(super) fn authenticate(certificate_ids: &[&str], authzid: &[u8]) -> Step {
    let Ok(authzid) = std::str::from_utf8(authzid) else {
        return Step::Failure(Failure::MalformedRequest);
    };
    let id = if authzid.is_empty() {
        match certificate_ids {
            [] => return Step::Failure(Failure::NotAuthorized),
            [one] => *one,
            _ => return Step::Failure(Failure::InvalidAuthzid),
        }
    } else {
        if certificate_ids.is_empty() {
            return Step::Failure(Failure::NotAuthorized);
        }
        match certificate_ids.iter().find(|c| same_identity(c, authzid)) {
            Some(c) => *c,
            None => return Step::Failure(Failure::InvalidAuthzid),
        }
    };
    Step::Success {
        username: id.to_owned(),
        additional: Vec::new(),
    }
}

/// Equal as JIDs after normalisation (a domain is a JID too); byte-equal otherwise.
fn same_identity(a: &str, b: &str) -> bool {
    match (hydrant_proto::Jid::new(a), hydrant_proto::Jid::new(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
