//! Client identities for SCRAM and PLAIN (RFC 6120 6.3.8): the authentication identity is
//! a localpart of our domain, the authorization identity a bare JID.

/// SASL identities are localparts; clients that send a bare JID of our domain are
/// accepted too. Normalised with nodeprep via the `jid` crate.
pub(super) fn normalize_username(raw: &str, domain: &str) -> Option<String> {
    let local = match raw.rsplit_once('@') {
        Some((l, d)) if d.eq_ignore_ascii_case(domain) => l,
        Some(_) => return None,
        None => raw,
    };
    // Refuses a name whose nodeprep form is not stable (hydrant_proto::address).
    hydrant_proto::address::nodepart(local)
}

/// The only identity a user may act as is their own bare JID.
pub(super) fn authzid_ok(authz: &str, username: &str, domain: &str) -> bool {
    match hydrant_proto::BareJid::new(authz) {
        Ok(j) => {
            j.node().map(jid::NodeRef::as_str) == Some(username) && j.domain().as_str() == domain
        }
        Err(_) => false,
    }
}
