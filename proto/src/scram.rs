//! SCRAM (RFC 5802 / RFC 7677) server side, sans-IO, and the stored credential format.
//!
//! Credentials are kept as RFC 5802 section 3 `StoredKey`/`ServerKey` pairs with their
//! salt and iteration count, one per hash (SHA-1 and SHA-256): a SCRAM login then costs the
//! server a few HMACs, PLAIN costs one PBKDF2 run, and the database never holds anything
//! that logs in by itself.
//!
//! Why not `sasl::server::mechanisms::Scram`: sasl 0.5 refuses the `n,,` GS2 header when
//! the server offers no channel binding (RFC 5802 section 6 requires accepting it: it is
//! what every client without `-PLUS` sends), and it can only be fed the salted password,
//! which is password-equivalent. The hash, HMAC and PBKDF2 primitives and frame parsing
//! still come from the `sasl` crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sasl::common::Password;
use sasl::common::scram::{ScramProvider, Sha1, Sha256};

/// Which hash a SCRAM mechanism uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScramHash {
    Sha1,
    Sha256,
}

impl ScramHash {
    /// The SASL mechanism name.
    pub fn mechanism(self) -> &'static str {
        match self {
            ScramHash::Sha1 => "SCRAM-SHA-1",
            ScramHash::Sha256 => "SCRAM-SHA-256",
        }
    }

    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            // HMAC accepts keys of any length, so this cannot fail.
            ScramHash::Sha1 => Sha1::hmac(data, key).expect("hmac key of any length"),
            ScramHash::Sha256 => Sha256::hmac(data, key).expect("hmac key of any length"),
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha1 => Sha1::hash(data),
            ScramHash::Sha256 => Sha256::hash(data),
        }
    }

    fn salted_password(self, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
        let pw = Password::Plain(password.to_owned());
        match self {
            ScramHash::Sha1 => Sha1::derive(&pw, salt, iterations),
            ScramHash::Sha256 => Sha256::derive(&pw, salt, iterations),
        }
        .expect("plain password derivation cannot fail")
    }
}

/// One hash's stored SCRAM keys (RFC 5802 section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

impl ScramKeys {
    /// Derives keys for `password` with a fresh random salt.
    pub fn derive(hash: ScramHash, password: &str, iterations: u32) -> Self {
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).expect("the OS random source is available");
        Self::derive_with_salt(hash, password, &salt, iterations)
    }

    /// Derives keys for `password` with the given salt (deterministic; for tests and for
    /// the fake credentials of unknown users).
    pub fn derive_with_salt(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> Self {
        let salted = hash.salted_password(password, salt, iterations);
        let client_key = hash.hmac(&salted, b"Client Key");
        ScramKeys {
            salt: salt.to_vec(),
            iterations,
            stored_key: hash.hash(&client_key),
            server_key: hash.hmac(&salted, b"Server Key"),
        }
    }

    /// Checks a plaintext password (SASL PLAIN) against these keys: one PBKDF2 run.
    pub fn verify_password(&self, hash: ScramHash, password: &str) -> bool {
        let other = Self::derive_with_salt(hash, password, &self.salt, self.iterations);
        constant_time_eq(&other.stored_key, &self.stored_key)
    }
}

/// An account's credentials: SCRAM keys for both hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    pub sha1: ScramKeys,
    pub sha256: ScramKeys,
}

/// Default PBKDF2 iteration count (RFC 7677 section 4 recommends at least 4096).
pub const DEFAULT_ITERATIONS: u32 = 4096;

impl StoredCredentials {
    /// Derives both hashes' keys for a password, each with its own salt.
    pub fn from_password(password: &str, iterations: u32) -> Self {
        StoredCredentials {
            sha1: ScramKeys::derive(ScramHash::Sha1, password, iterations),
            sha256: ScramKeys::derive(ScramHash::Sha256, password, iterations),
        }
    }

    /// The keys for one hash.
    pub fn keys(&self, hash: ScramHash) -> &ScramKeys {
        match hash {
            ScramHash::Sha1 => &self.sha1,
            ScramHash::Sha256 => &self.sha256,
        }
    }
}

/// A 16-byte salt derived from `input` (a server secret and a username), for the fake
/// credentials an unknown user gets so that probing cannot tell accounts apart.
pub fn fake_salt(input: &[u8]) -> Vec<u8> {
    ScramHash::Sha256.hash(input)[..16].to_vec()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a SCRAM exchange failed. Every variant maps to a SASL `<failure/>` condition.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScramError {
    /// The message could not be parsed (RFC 6120 6.5.4 `incorrect-encoding` / `malformed-request`).
    #[error("malformed SCRAM message")]
    Malformed,
    /// Channel binding requested, which this server does not offer.
    #[error("channel binding not supported")]
    ChannelBindingUnsupported,
    /// Wrong password or unknown user (the two are indistinguishable on purpose).
    #[error("not authorized")]
    NotAuthorized,
}

/// The first step's result: the username, to be looked up by the caller.
#[derive(Debug)]
pub struct ClientFirst {
    pub username: String,
    pub authzid: Option<String>,
    gs2_header: String,
    bare_message: String,
    client_nonce: String,
}

impl ClientFirst {
    /// Parses `client-first-message` (RFC 5802 section 7).
    pub fn parse(msg: &[u8]) -> Result<Self, ScramError> {
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed)?;
        let mut parts = msg.splitn(3, ',');
        let cb = parts.next().ok_or(ScramError::Malformed)?;
        let authz = parts.next().ok_or(ScramError::Malformed)?;
        let bare = parts.next().ok_or(ScramError::Malformed)?;
        match cb {
            // "n": client does not support binding; "y": client does but thinks we do
            // not, which is true (we never offer -PLUS), so both are fine (RFC 5802 6).
            "n" | "y" => {}
            c if c.starts_with("p=") => return Err(ScramError::ChannelBindingUnsupported),
            _ => return Err(ScramError::Malformed),
        }
        let authzid = match authz {
            "" => None,
            a => Some(decode_saslname(
                a.strip_prefix("a=").ok_or(ScramError::Malformed)?,
            )?),
        };
        let mut username = None;
        let mut nonce = None;
        for attr in bare.split(',') {
            if let Some(v) = attr.strip_prefix("n=") {
                username = Some(decode_saslname(v)?);
            } else if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v.to_owned());
            } else if attr.starts_with("m=") {
                // RFC 5802 5.1: mandatory extensions we do not know must fail.
                return Err(ScramError::Malformed);
            }
        }
        let username = username
            .filter(|u| !u.is_empty())
            .ok_or(ScramError::Malformed)?;
        let client_nonce = nonce
            .filter(|n| !n.is_empty())
            .ok_or(ScramError::Malformed)?;
        Ok(ClientFirst {
            username,
            authzid,
            gs2_header: format!("{cb},{authz},"),
            bare_message: bare.to_owned(),
            client_nonce,
        })
    }

    /// Builds `server-first-message` for the looked-up keys and returns the state that
    /// checks the client's proof.
    pub fn challenge(self, hash: ScramHash, keys: ScramKeys) -> (Vec<u8>, ServerFirst) {
        let mut rnd = [0u8; 18];
        getrandom::fill(&mut rnd).expect("the OS random source is available");
        let nonce = format!("{}{}", self.client_nonce, B64.encode(rnd));
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&keys.salt),
            keys.iterations
        );
        let out = server_first.clone().into_bytes();
        (
            out,
            ServerFirst {
                hash,
                keys,
                first: self,
                message: server_first,
                nonce,
            },
        )
    }
}

/// State between `server-first-message` and `client-final-message`.
#[derive(Debug)]
pub struct ServerFirst {
    hash: ScramHash,
    keys: ScramKeys,
    first: ClientFirst,
    message: String,
    nonce: String,
}

impl ServerFirst {
    /// The username being authenticated.
    pub fn username(&self) -> &str {
        &self.first.username
    }

    /// Checks `client-final-message`; on success returns `server-final-message`
    /// (`v=...`) to send in `<success/>`.
    pub fn finish(self, msg: &[u8]) -> Result<Vec<u8>, ScramError> {
        let msg = std::str::from_utf8(msg).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        let mut cbind = None;
        let mut nonce = None;
        for attr in without_proof.split(',') {
            if let Some(v) = attr.strip_prefix("c=") {
                cbind = Some(v);
            } else if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v);
            }
        }
        let expected_cb = B64.encode(self.first.gs2_header.as_bytes());
        if cbind != Some(expected_cb.as_str()) || nonce != Some(self.nonce.as_str()) {
            return Err(ScramError::Malformed);
        }
        let proof = B64.decode(proof).map_err(|_| ScramError::Malformed)?;
        let auth_message = format!(
            "{},{},{}",
            self.first.bare_message, self.message, without_proof
        );
        let h = self.hash;
        let client_signature = h.hmac(&self.keys.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::NotAuthorized);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !constant_time_eq(&h.hash(&client_key), &self.keys.stored_key) {
            return Err(ScramError::NotAuthorized);
        }
        let server_signature = h.hmac(&self.keys.server_key, auth_message.as_bytes());
        Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
    }
}

/// RFC 5802 section 5.1: `=2C` is `,` and `=3D` is `=`; any other `=` is an error.
fn decode_saslname(s: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed),
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sasl::client::Mechanism as _;
    use sasl::client::mechanisms::Scram as ClientScram;
    use sasl::common::{ChannelBinding, Credentials};

    fn run(hash: ScramHash, stored_pw: &str, client_pw: &str) -> Result<(), ScramError> {
        let keys = ScramKeys::derive(hash, stored_pw, 4096);
        let creds = Credentials::default()
            .with_username("juliet")
            .with_password(client_pw)
            .with_channel_binding(ChannelBinding::None);
        let mut client: Box<dyn sasl::client::Mechanism> = match hash {
            ScramHash::Sha1 => Box::new(ClientScram::<Sha1>::from_credentials(creds).unwrap()),
            ScramHash::Sha256 => Box::new(ClientScram::<Sha256>::from_credentials(creds).unwrap()),
        };
        let first = client.initial();
        assert!(
            first.starts_with(b"n,,"),
            "real clients send n,, without binding"
        );
        let parsed = ClientFirst::parse(&first)?;
        assert_eq!(parsed.username, "juliet");
        let (challenge, state) = parsed.challenge(hash, keys);
        let fin = client.response(&challenge).unwrap();
        let success = state.finish(&fin)?;
        client
            .success(&success)
            .expect("client verifies the server signature");
        Ok(())
    }

    #[test]
    fn sha1_and_sha256_round_trip_with_the_sasl_crate_client() {
        run(ScramHash::Sha1, "r0m30myr0m30", "r0m30myr0m30").unwrap();
        run(ScramHash::Sha256, "r0m30myr0m30", "r0m30myr0m30").unwrap();
    }

    #[test]
    fn wrong_password_is_not_authorized() {
        assert_eq!(
            run(ScramHash::Sha256, "right", "wrong"),
            Err(ScramError::NotAuthorized)
        );
    }

    #[test]
    fn rfc7677_test_vector_keys() {
        // RFC 7677 section 3: user "user", password "pencil".
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let keys = ScramKeys::derive_with_salt(ScramHash::Sha256, "pencil", &salt, 4096);
        let first = ClientFirst::parse(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO").unwrap();
        let mut state = first.challenge(ScramHash::Sha256, keys).1;
        // Replace the random server nonce with the RFC's to reproduce its proof.
        state.nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0".into();
        state.message = format!("r={},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", state.nonce);
        let fin = b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
        assert_eq!(
            state.finish(fin).unwrap(),
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
    }

    #[test]
    fn plain_password_check() {
        let creds = StoredCredentials::from_password("secret", 4096);
        assert!(creds.sha256.verify_password(ScramHash::Sha256, "secret"));
        assert!(!creds.sha256.verify_password(ScramHash::Sha256, "Secret"));
    }

    #[test]
    fn rejects_channel_binding_and_bad_frames() {
        assert_eq!(
            ClientFirst::parse(b"p=tls-unique,,n=a,r=b").unwrap_err(),
            ScramError::ChannelBindingUnsupported
        );
        assert!(ClientFirst::parse(b"n,,n=a").is_err());
        assert!(ClientFirst::parse(b"n,,r=abc").is_err());
        assert!(ClientFirst::parse(b"n,,n=a=2,r=b").is_err());
        assert_eq!(
            ClientFirst::parse(b"y,,n=a=2Cb,r=x").unwrap().username,
            "a,b"
        );
    }
}
