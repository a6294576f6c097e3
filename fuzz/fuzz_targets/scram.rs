//! The SCRAM server exchange (proto/src/scram.rs, RFC 5802) against a stored credential
//! for user `juliet`, password `r0m30myr0m30`.
//!
//! Input: `[flags][client-first-message] 0x00 [client-final template]`. Flag bit 0 picks
//! SCRAM-SHA-256 over SCRAM-SHA-1. In the template `{r}` becomes the nonce the server
//! chose, `{c}` the base64 GS2 header the client sent, and a trailing `,p={p}` the
//! correct ClientProof for the message before it, computed here by an independent
//! client (hmac/sha/pbkdf2 crates, RFC 5802 section 3) — so the fuzzer reaches the
//! proof check and the success path, not only the parsers.
//!
//! Never a panic; the server accepts exactly when the proof is the right one and the
//! channel binding and nonce attributes are the ones it expects; on success its
//! ServerSignature is the right one.
#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use hydrant_proto::scram::{ClientFirst, ScramHash, ScramKeys};
use libfuzzer_sys::fuzz_target;
use sha1::{Digest, Sha1};
use sha2::Sha256;

const PASSWORD: &str = "r0m30myr0m30";
const SALT: &[u8] = b"fuzzing-salt-123";
const ITERATIONS: u32 = 4096;

fn hmac(hash: ScramHash, key: &[u8], data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => {
            let mut m = Hmac::<Sha1>::new_from_slice(key).expect("any key length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
        ScramHash::Sha256 => {
            let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
            m.update(data);
            m.finalize().into_bytes().to_vec()
        }
    }
}

fn digest(hash: ScramHash, data: &[u8]) -> Vec<u8> {
    match hash {
        ScramHash::Sha1 => Sha1::digest(data).to_vec(),
        ScramHash::Sha256 => Sha256::digest(data).to_vec(),
    }
}

/// (the stored keys, SaltedPassword), computed once per hash.
fn credential(hash: ScramHash) -> &'static (ScramKeys, Vec<u8>) {
    static SHA1: OnceLock<(ScramKeys, Vec<u8>)> = OnceLock::new();
    static SHA256: OnceLock<(ScramKeys, Vec<u8>)> = OnceLock::new();
    let cell = match hash {
        ScramHash::Sha1 => &SHA1,
        ScramHash::Sha256 => &SHA256,
    };
    cell.get_or_init(|| {
        let keys = ScramKeys::derive_with_salt(hash, PASSWORD, SALT, ITERATIONS);
        let salted = match hash {
            ScramHash::Sha1 => {
                pbkdf2::pbkdf2_hmac_array::<Sha1, 20>(PASSWORD.as_bytes(), SALT, ITERATIONS)
                    .to_vec()
            }
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(PASSWORD.as_bytes(), SALT, ITERATIONS)
                    .to_vec()
            }
        };
        (keys, salted)
    })
}

/// The value of the last `name=` attribute, as the server reads `c=` and `r=`.
fn last_attr<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.split(',')
        .filter_map(|a| a.strip_prefix(name))
        .next_back()
}

fuzz_target!(|data: &[u8]| {
    let [flags, rest @ ..] = data else {
        return;
    };
    let hash = if flags & 1 == 1 {
        ScramHash::Sha256
    } else {
        ScramHash::Sha1
    };
    let (first, template) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(parsed) = ClientFirst::parse(first) else {
        return;
    };
    // Parsing succeeded, so `first` is UTF-8 with at least two commas.
    let first = std::str::from_utf8(first).expect("parsed as UTF-8");
    let mut parts = first.splitn(3, ',');
    let gs2 = format!(
        "{},{},",
        parts.next().expect("cb flag"),
        parts.next().expect("authzid")
    );
    let bare = parts.next().expect("bare message");

    let (keys, salted) = credential(hash);
    let (server_first, state) = parsed.challenge(hash, keys.clone());
    let server_first = String::from_utf8(server_first).expect("server-first is ASCII");
    let nonce = server_first
        .strip_prefix("r=")
        .and_then(|s| s.split(',').next())
        .expect("server-first starts with the nonce");
    assert!(
        server_first.ends_with(&format!(",i={ITERATIONS}")),
        "server-first announces the stored iteration count: {server_first}"
    );

    let Ok(template) = std::str::from_utf8(template) else {
        let _ = state.finish(template);
        return;
    };
    let cbind = B64.encode(gs2.as_bytes());
    let msg = template.replace("{r}", nonce).replace("{c}", &cbind);
    let (final_msg, proof_given, auth_message) = match msg.strip_suffix(",p={p}") {
        Some(without_proof) => {
            let auth = format!("{bare},{server_first},{without_proof}");
            let client_key = hmac(hash, salted, b"Client Key");
            let stored_key = digest(hash, &client_key);
            let signature = hmac(hash, &stored_key, auth.as_bytes());
            let proof: Vec<u8> = client_key
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            (
                format!("{without_proof},p={}", B64.encode(proof)),
                Some(without_proof.to_owned()),
                auth,
            )
        }
        None => (msg, None, String::new()),
    };
    let result = state.finish(final_msg.as_bytes());
    let should_succeed = proof_given.as_deref().is_some_and(|without| {
        last_attr(without, "c=") == Some(cbind.as_str()) && last_attr(without, "r=") == Some(nonce)
    });
    match result {
        Ok(server_final) => {
            assert!(
                should_succeed,
                "accepted without the right proof: {final_msg}"
            );
            let server_key = hmac(hash, salted, b"Server Key");
            let expected = format!(
                "v={}",
                B64.encode(hmac(hash, &server_key, auth_message.as_bytes()))
            );
            assert_eq!(String::from_utf8_lossy(&server_final), expected);
        }
        Err(_) => {
            assert!(!should_succeed, "refused the right proof: {final_msg}");
        }
    }
});
