//! Finding a peer server: DNS SRV (RFC 6120 3.2, XEP-0368), static overrides. (In progress.)
