//! SASL client mechanisms: PLAIN (RFC 4616) and SCRAM-SHA-1 / SCRAM-SHA-256
//! (RFC 5802, RFC 7677), without channel binding (gs2 header `n,,`).
//!
//! Sans-IO: messages in and out are raw bytes; the caller base64-encodes them into
//! `<auth>`/`<response>` and decodes `<challenge>`/`<success>`.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// The mechanism to authenticate with (`--auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Mechanism {
    #[value(name = "plain")]
    #[serde(rename = "PLAIN")]
    Plain,
    #[value(name = "scram-sha-1")]
    #[serde(rename = "SCRAM-SHA-1")]
    ScramSha1,
    #[value(name = "scram-sha-256")]
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
}

impl Mechanism {
    /// The IANA name, as in `<mechanism>`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
        }
    }
}

/// The server's SASL messages did not follow the mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslError {
    /// A server message that does not parse, or an unexpected step.
    BadMessage(&'static str),
    /// The server's nonce does not extend ours.
    NonceMismatch,
    /// The server signature in the outcome is wrong: not the server we enrolled with.
    BadServerSignature,
    /// The server reported `e=...` in its final message.
    ServerError(String),
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::BadMessage(what) => write!(f, "bad server message: {what}"),
            SaslError::NonceMismatch => f.write_str("server nonce does not extend ours"),
            SaslError::BadServerSignature => f.write_str("wrong server signature"),
            SaslError::ServerError(e) => write!(f, "server error: {e}"),
        }
    }
}

impl std::error::Error for SaslError {}

/// One authentication exchange, client side.
#[derive(Debug)]
pub enum Client {
    /// The PLAIN message (`\0user\0password`): there is nothing more to it.
    Plain(Vec<u8>),
    Scram(Scram),
}

impl Client {
    pub fn new(mech: Mechanism, user: &str, password: &str) -> Self {
        match mech {
            Mechanism::Plain => Client::Plain(format!("\0{user}\0{password}").into_bytes()),
            Mechanism::ScramSha1 | Mechanism::ScramSha256 => {
                Client::Scram(Scram::new(mech, user, password, &random_nonce()))
            }
        }
    }

    /// The initial response, sent inside `<auth>`.
    pub fn initial(&self) -> Vec<u8> {
        match self {
            Client::Plain(msg) => msg.clone(),
            Client::Scram(s) => s.client_first(),
        }
    }

    /// Answer a `<challenge>`.
    pub fn respond(&mut self, challenge: &[u8]) -> Result<Vec<u8>, SaslError> {
        match self {
            Client::Plain(_) => Err(SaslError::BadMessage("challenge to PLAIN")),
            Client::Scram(s) => s.client_final(challenge),
        }
    }

    /// Check the additional data of `<success>` (SCRAM's server signature).
    pub fn finish(&mut self, success: &[u8]) -> Result<(), SaslError> {
        match self {
            Client::Plain(_) => Ok(()),
            Client::Scram(s) => s.verify(success),
        }
    }
}

/// 24 random bytes in base64: printable, no ','.
fn random_nonce() -> String {
    let mut raw = [0u8; 24];
    getrandom::fill(&mut raw).expect("OS random source");
    B64.encode(raw)
}

/// SCRAM client state (RFC 5802 §3).
#[derive(Debug)]
pub struct Scram {
    hash: Mechanism,
    password: String,
    client_first_bare: String,
    cnonce: String,
    /// After `client_final`: the server signature to expect.
    expected_server_sig: Option<Vec<u8>>,
}

impl Scram {
    pub fn new(hash: Mechanism, user: &str, password: &str, cnonce: &str) -> Self {
        let user = user.replace('=', "=3D").replace(',', "=2C");
        Self {
            hash,
            password: password.to_owned(),
            client_first_bare: format!("n={user},r={cnonce}"),
            cnonce: cnonce.to_owned(),
            expected_server_sig: None,
        }
    }

    pub fn client_first(&self) -> Vec<u8> {
        format!("n,,{}", self.client_first_bare).into_bytes()
    }

    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, SaslError> {
        if self.expected_server_sig.is_some() {
            return Err(SaslError::BadMessage("second challenge"));
        }
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| SaslError::BadMessage("not UTF-8"))?;
        let (mut nonce, mut salt, mut iters) = (None, None, None);
        for part in server_first.split(',') {
            match part.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = Some(v),
                Some(("i=", v)) => iters = Some(v),
                Some(("m=", _)) => return Err(SaslError::BadMessage("mandatory extension")),
                _ => {}
            }
        }
        let nonce = nonce.ok_or(SaslError::BadMessage("no nonce"))?;
        if !nonce.starts_with(&self.cnonce) || nonce.len() == self.cnonce.len() {
            return Err(SaslError::NonceMismatch);
        }
        let salt = B64
            .decode(salt.ok_or(SaslError::BadMessage("no salt"))?)
            .map_err(|_| SaslError::BadMessage("salt is not base64"))?;
        let iters: u32 = iters
            .and_then(|i| i.parse().ok())
            .filter(|&i| i > 0)
            .ok_or(SaslError::BadMessage("bad iteration count"))?;

        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let (proof, server_sig) = match self.hash {
            Mechanism::ScramSha1 => {
                scram_keys::<Hmac<Sha1>, Sha1>(&self.password, &salt, iters, &auth_message)
            }
            _ => scram_keys::<Hmac<Sha256>, Sha256>(&self.password, &salt, iters, &auth_message),
        };
        self.expected_server_sig = Some(server_sig);
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    pub fn verify(&self, server_final: &[u8]) -> Result<(), SaslError> {
        let expected = self
            .expected_server_sig
            .as_ref()
            .ok_or(SaslError::BadMessage("success before challenge"))?;
        let text =
            std::str::from_utf8(server_final).map_err(|_| SaslError::BadMessage("not UTF-8"))?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(SaslError::ServerError(e.to_owned()));
        }
        let v = text
            .split(',')
            .find_map(|p| p.strip_prefix("v="))
            .ok_or(SaslError::BadMessage("no server signature"))?;
        let got = B64
            .decode(v)
            .map_err(|_| SaslError::BadMessage("signature is not base64"))?;
        if &got == expected {
            Ok(())
        } else {
            Err(SaslError::BadServerSignature)
        }
    }
}

/// `(ClientProof, ServerSignature)` for one exchange.
fn scram_keys<M, D>(password: &str, salt: &[u8], iters: u32, auth: &str) -> (Vec<u8>, Vec<u8>)
where
    M: Mac
        + hmac::digest::KeyInit
        + hmac::digest::FixedOutput
        + hmac::digest::Update
        + Clone
        + Sync,
    D: sha2::Digest,
{
    let mut salted = vec![0u8; <M as hmac::digest::OutputSizeUser>::output_size()];
    pbkdf2::pbkdf2::<M>(password.as_bytes(), salt, iters, &mut salted)
        .expect("HMAC accepts any key length");
    let hmac = |key: &[u8], msg: &[u8]| {
        let mut m = <M as Mac>::new_from_slice(key).expect("HMAC accepts any key length");
        Mac::update(&mut m, msg);
        Mac::finalize(m).into_bytes().to_vec()
    };
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = D::digest(&client_key).to_vec();
    let client_sig = hmac(&stored_key, auth.as_bytes());
    let proof = client_key
        .iter()
        .zip(&client_sig)
        .map(|(a, b)| a ^ b)
        .collect();
    let server_key = hmac(&salted, b"Server Key");
    (proof, hmac(&server_key, auth.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_sha1_rfc5802_vector() {
        let mut c = Scram::new(
            Mechanism::ScramSha1,
            "user",
            "pencil",
            "fyko+d2lbbFgONRv9qkxdawL",
        );
        assert_eq!(c.client_first(), b"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL");
        let fin = c
            .client_final(b"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts="
        );
        c.verify(b"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=").unwrap();
        assert_eq!(
            c.verify(b"v=AAAApqV8S7suAoZWja4dJRkFsKQ="),
            Err(SaslError::BadServerSignature)
        );
    }

    #[test]
    fn scram_sha256_rfc7677_vector() {
        let mut c = Scram::new(
            Mechanism::ScramSha256,
            "user",
            "pencil",
            "rOprNGfwEbeRWgbNEkqO",
        );
        let fin = c
            .client_final(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        assert_eq!(
            String::from_utf8(fin).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
    }

    #[test]
    fn scram_rejects_foreign_nonce_and_server_errors() {
        let mut c = Scram::new(Mechanism::ScramSha1, "u", "p", "abc");
        assert_eq!(
            c.client_final(b"r=xyz123,s=QSXC,i=1"),
            Err(SaslError::NonceMismatch)
        );
        let mut c = Scram::new(Mechanism::ScramSha1, "u", "p", "abc");
        c.client_final(b"r=abcdef,s=QSXC,i=1").unwrap();
        assert_eq!(
            c.verify(b"e=invalid-proof"),
            Err(SaslError::ServerError("invalid-proof".into()))
        );
    }

    #[test]
    fn scram_escapes_username() {
        let c = Scram::new(Mechanism::ScramSha1, "a,b=c", "p", "n");
        assert_eq!(c.client_first(), b"n,,n=a=2Cb=3Dc,r=n");
    }

    #[test]
    fn plain_initial_response() {
        let c = Client::new(Mechanism::Plain, "load1", "pw");
        assert_eq!(c.initial(), b"\0load1\0pw");
    }
}
