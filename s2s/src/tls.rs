//! TLS for s2s: the client side of outbound streams and the trust decision.
//!
//! RFC 6120 13.7.2 / RFC 6125: a peer's certificate is checked against the peer's XMPP
//! domain (never the SRV target). Whether it verifies decides how the peer is
//! authenticated: SASL EXTERNAL (XEP-0178) needs a valid certificate; Server Dialback
//! (XEP-0220) authenticates a peer whose certificate does not verify, where the operator
//! allows it. So the handshake itself accepts any certificate when dialback is allowed
//! (the stream is still encrypted), and [`Trust::verifies`] decides afterwards with the
//! normal WebPKI checks; with dialback off, the handshake verifies and fails.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// This server's certificate chain and key: presented to peers as server (inbound) and
/// as client (outbound) certificate, for their SASL EXTERNAL (XEP-0178).
pub struct Identity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity {
            chain: self.chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

/// The TLS configuration of inbound s2s streams: our certificate, and a client
/// certificate asked for but not required, accepted whatever it is (the trust decision
/// comes after the handshake: SASL EXTERNAL is offered only if it verifies for the
/// peer's domain; otherwise the peer may use dialback).
pub fn server_config(identity: &Identity) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut sc = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_client_cert_verifier(Arc::new(AnyCertificate { provider }))
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())
        .map_err(|e| e.to_string())?;
    sc.alpn_protocols = vec![ALPN_XMPP_SERVER.to_vec()];
    Ok(Arc::new(sc))
}

/// ALPN protocol of s2s direct TLS (XEP-0368).
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

/// Checks peer certificates against trusted roots.
#[derive(Debug, Clone)]
pub struct Trust {
    verifier: Arc<WebPkiServerVerifier>,
}

impl Trust {
    /// Trusts `roots` (the system's and the operator's CA file, as the caller gathered).
    pub fn new(roots: RootCertStore) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Trust { verifier })
    }

    /// Whether `chain` (leaf first) is valid for `domain` now (RFC 6125 DNS-ID).
    pub fn verifies(&self, chain: &[CertificateDer<'static>], domain: &str) -> bool {
        let Some((leaf, rest)) = chain.split_first() else {
            return false;
        };
        let Ok(name) = ServerName::try_from(domain.to_owned()) else {
            return false;
        };
        self.verifier
            .verify_server_cert(leaf, rest, &name, &[], UnixTime::now())
            .is_ok()
    }

    /// The client configuration for outbound streams: with `allow_untrusted`, any
    /// certificate is accepted by the handshake (dialback decides); otherwise only one
    /// that verifies for the peer's domain. `identity` is presented as our client
    /// certificate (the peer's SASL EXTERNAL checks it).
    pub fn client_config(
        &self,
        allow_untrusted: bool,
        identity: Option<&Identity>,
    ) -> Result<Arc<rustls::ClientConfig>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let wants_cert = if allow_untrusted {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate { provider }))
        } else {
            builder.with_webpki_verifier(self.verifier.clone())
        };
        let mut cc = match identity {
            Some(id) => wants_cert
                .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
                .map_err(|e| e.to_string())?,
            None => wants_cert.with_no_client_auth(),
        };
        // No ALPN: it belongs to direct TLS (XEP-0368), and a STARTTLS peer that
        // configured other protocols would fail the handshake over it.
        cc.alpn_protocols = Vec::new();
        Ok(Arc::new(cc))
    }
}

/// Accepts any certificate (as server or client certificate) but still checks the
/// handshake's signatures, so the peer holds the key of the certificate it sent; whether
/// that certificate is trusted is decided after the handshake ([`Trust::verifies`]).
#[derive(Debug)]
struct AnyCertificate {
    provider: Arc<CryptoProvider>,
}

impl AnyCertificate {
    /// The handshake signature, checked with the certificate's key (TLS 1.3 or 1.2).
    fn signature(
        &self,
        tls13: bool,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.provider.signature_verification_algorithms;
        if tls13 {
            rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
        } else {
            rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
        }
    }
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

impl ClientCertVerifier for AnyCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(false, message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signature(true, message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
