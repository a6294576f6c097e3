//! SASL authentication (RFC 6120 section 6): SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN.
//!
//! SCRAM runs on stored keys (`hydrant_proto::scram`); PLAIN (RFC 4616) is offered only on
//! TLS-protected streams and costs one PBKDF2 run, for an unknown user as for a known one.
//!
//! Guessing is limited by the throttle: each credential check first takes an attempt
//! from the budgets of the client's network and of the account (given back on success);
//! with either used up the check is not made and the answer is `<temporary-auth-failure/>`.
//! Failed attempts are answered after a per-network delay that grows with each failure,
//! and after `max_auth_failures` on one stream the stream is closed with
//! `<policy-violation/>` (RFC 6120 6.4.5).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hydrant_proto::scram::{ClientFirst, ScramError, ScramHash, ScramKeys, ServerFirst};
use hydrant_proto::{Element, StreamError, StreamErrorCondition as Cond, ns};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

use crate::backend::Backend;
use crate::stream::{Shared, Stream};
use crate::throttle::{LoginAttempt, LoginBudgets};

/// An exchange waiting for the client's next `<response/>`.
pub(crate) enum SaslState {
    Scram(Box<ServerFirst>),
    /// PLAIN sent without initial response: we sent an empty challenge.
    PlainAwaitingResponse,
}

/// RFC 6120 6.5 failure conditions we use.
#[derive(Debug, Clone, Copy)]
enum Failure {
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
    fn as_str(self) -> &'static str {
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
}

impl<'a, S, B> Stream<'a, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    /// Mechanisms offered now, strongest first.
    pub(crate) fn mechanisms(&self) -> Vec<&'static str> {
        let mut m = vec!["SCRAM-SHA-256", "SCRAM-SHA-1"];
        if self.secure {
            m.push("PLAIN");
        }
        m
    }

    pub(crate) async fn on_sasl(&mut self, el: Element) {
        if !self.may_authenticate() {
            // A policy refusal, not a credential failure: answered at once, not counted.
            return self.send_failure(Failure::EncryptionRequired);
        }
        match el.name() {
            "auth" => self.on_auth(&el).await,
            "response" => self.on_response(&el).await,
            "abort" => {
                self.sasl = None;
                self.send_failure(Failure::Aborted);
            }
            _ => self.stream_error(StreamError::new(Cond::UnsupportedStanzaType)),
        }
    }

    async fn on_auth(&mut self, el: &Element) {
        self.sasl = None;
        let mech = el.attr("mechanism").unwrap_or_default().to_owned();
        if !self.mechanisms().contains(&mech.as_str()) {
            // RFC 6120 6.5.5; PLAIN on a plaintext stream lands here too: not offered.
            return self.send_failure(Failure::InvalidMechanism);
        }
        let Ok(payload) = decode_payload(&el.text()) else {
            return self.send_failure(Failure::IncorrectEncoding);
        };
        match mech.as_str() {
            "PLAIN" => match payload {
                None => {
                    // RFC 6120 6.4.2: no initial response, so an empty challenge.
                    self.sasl = Some(SaslState::PlainAwaitingResponse);
                    self.conn
                        .send(&b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"[..]);
                }
                Some(p) => self.plain(&p).await,
            },
            "SCRAM-SHA-256" => {
                self.scram_first(ScramHash::Sha256, payload.unwrap_or_default())
                    .await;
            }
            "SCRAM-SHA-1" => {
                self.scram_first(ScramHash::Sha1, payload.unwrap_or_default())
                    .await;
            }
            _ => self.send_failure(Failure::InvalidMechanism),
        }
    }

    async fn on_response(&mut self, el: &Element) {
        let Ok(payload) = decode_payload(&el.text()) else {
            self.sasl = None;
            return self.send_failure(Failure::IncorrectEncoding);
        };
        let payload = payload.unwrap_or_default();
        match self.sasl.take() {
            Some(SaslState::PlainAwaitingResponse) => self.plain(&payload).await,
            Some(SaslState::Scram(state)) => {
                let username = state.username().to_owned();
                // The client proof is the guess: budgets first.
                let Some(attempt) = self.login_attempt(Some(&username)).await else {
                    return self.throttled();
                };
                match state.finish(&payload) {
                    Ok(server_final) => self.succeed(username, &server_final, attempt),
                    Err(ScramError::NotAuthorized) => {
                        drop(attempt);
                        self.fail(Failure::NotAuthorized).await;
                    }
                    Err(_) => self.send_failure(Failure::MalformedRequest),
                }
            }
            // A response with no exchange in progress.
            None => self.send_failure(Failure::MalformedRequest),
        }
    }

    async fn scram_first(&mut self, hash: ScramHash, payload: Vec<u8>) {
        let Ok(first) = ClientFirst::parse(&payload) else {
            return self.send_failure(Failure::MalformedRequest);
        };
        let Some(username) = self.normalize_username(&first.username) else {
            return self.fail(Failure::NotAuthorized).await;
        };
        if let Some(authz) = &first.authzid
            && !self.authzid_ok(authz, &username)
        {
            return self.send_failure(Failure::InvalidAuthzid);
        }
        let keys = match self.shared.backend.credentials(&username).await {
            Some(creds) => creds.keys(hash).clone(),
            None => self.fake_keys(hash, &username),
        };
        let (challenge, state) = first.challenge(hash, keys);
        let mut el = Element::new("challenge", ns::SASL);
        el.append_text(B64.encode(challenge));
        self.send_element(&el);
        self.sasl = Some(SaslState::Scram(Box::new(state)));
    }

    async fn plain(&mut self, payload: &[u8]) {
        // RFC 4616: [authzid] NUL authcid NUL passwd
        let mut parts = payload.split(|b| *b == 0);
        let (Some(authz), Some(authc), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.send_failure(Failure::MalformedRequest);
        };
        let (Ok(authz), Ok(authc), Ok(pass)) = (
            std::str::from_utf8(authz),
            std::str::from_utf8(authc),
            std::str::from_utf8(pass),
        ) else {
            return self.send_failure(Failure::MalformedRequest);
        };
        let username = self.normalize_username(authc);
        if let Some(username) = &username
            && !authz.is_empty()
            && !self.authzid_ok(authz, username)
        {
            return self.send_failure(Failure::InvalidAuthzid);
        }
        let Some(attempt) = self.login_attempt(username.as_deref()).await else {
            return self.throttled();
        };
        let Some(username) = username else {
            drop(attempt);
            return self.fail(Failure::NotAuthorized).await;
        };
        // An unknown user costs the same PBKDF2 run as a known one (the fake keys have
        // the iteration count accounts are created with), so timing tells nothing.
        let keys = match self.shared.backend.credentials(&username).await {
            Some(creds) => creds.sha256,
            None => self.fake_keys(ScramHash::Sha256, &username),
        };
        let pass = pass.to_owned();
        // PBKDF2 is deliberately slow; keep it off the reactor threads.
        let ok =
            tokio::task::spawn_blocking(move || keys.verify_password(ScramHash::Sha256, &pass))
                .await
                .unwrap_or(false);
        if ok {
            self.succeed(username, &[], attempt);
        } else {
            // Settled before the failure delay, so attempts waiting on it go on.
            drop(attempt);
            self.fail(Failure::NotAuthorized).await;
        }
    }

    /// SASL identities are localparts; clients that send a bare JID of our domain are
    /// accepted too. Normalised with nodeprep via the `jid` crate.
    fn normalize_username(&self, raw: &str) -> Option<String> {
        let local = match raw.rsplit_once('@') {
            Some((l, d)) if d.eq_ignore_ascii_case(&self.cfg().domain) => l,
            Some(_) => return None,
            None => raw,
        };
        // Refuses a name whose nodeprep form is not stable (hydrant_proto::address).
        hydrant_proto::address::nodepart(local)
    }

    /// The only identity a user may act as is their own bare JID.
    fn authzid_ok(&self, authz: &str, username: &str) -> bool {
        match hydrant_proto::BareJid::new(authz) {
            Ok(j) => {
                j.node().map(jid::NodeRef::as_str) == Some(username)
                    && j.domain().as_str() == self.cfg().domain
            }
            Err(_) => false,
        }
    }

    /// Keys for an unknown user: a salt that is stable per name (so probing twice looks like
    /// a real account) and keys no password can match.
    fn fake_keys(&self, hash: ScramHash, username: &str) -> ScramKeys {
        let mut salt = self.shared.fake_salt_key.to_vec();
        salt.extend_from_slice(username.as_bytes());
        let digest = hydrant_proto::scram::fake_salt(&salt);
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).expect("the OS random source is available");
        ScramKeys {
            salt: digest,
            iterations: hydrant_proto::scram::DEFAULT_ITERATIONS,
            stored_key: random[..match hash {
                ScramHash::Sha1 => 20,
                ScramHash::Sha256 => 32,
            }]
                .to_vec(),
            server_key: random.to_vec(),
        }
    }

    /// Takes an attempt from the login budgets before a credential is checked; `None`:
    /// used up, the check must not be made.
    async fn login_attempt(&self, username: Option<&str>) -> Option<LoginAttempt<'a>> {
        let budgets = LoginBudgets {
            per_net: self.cfg().auth_failures_per_ip_per_hour,
            per_account: self.cfg().auth_failures_per_account_per_hour,
        };
        let shared: &'a Shared<B> = self.shared;
        match shared
            .throttle
            .login_attempt(self.peer.ip(), username, budgets)
            .await
        {
            Ok(attempt) => Some(attempt),
            Err(wait) => {
                debug!(peer = %self.peer, user = ?username, ?wait, "login throttled");
                None
            }
        }
    }

    /// A login refused unchecked because a budget is used up: RFC 6120 6.5.11
    /// `<temporary-auth-failure/>` ("advisable ... to try again later"), answered at once
    /// (the check costs nothing) and counted against the stream like a failure.
    fn throttled(&mut self) {
        self.sasl = None;
        metrics::counter!("hydrant_c2s_auth_throttled_total").increment(1);
        self.count_failure(Failure::TemporaryAuth);
    }

    fn succeed(&mut self, username: String, additional: &[u8], attempt: LoginAttempt<'_>) {
        info!(peer = %self.peer, user = %username, "authenticated");
        attempt.succeeded();
        let mut el = Element::new("success", ns::SASL);
        if !additional.is_empty() {
            el.append_text(B64.encode(additional));
        }
        self.send_element(&el);
        self.username = Some(username);
        self.sasl = None;
        // RFC 6120 6.4.6: both sides restart the stream after <success/>.
        self.restart();
    }

    /// A failed credential check: delayed by the network's record, counted per stream.
    async fn fail(&mut self, f: Failure) {
        self.sasl = None;
        let delay = self
            .shared
            .throttle
            .failed(self.peer.ip(), self.cfg().auth_failure_max_delay);
        debug!(peer = %self.peer, ?delay, "authentication failed");
        metrics::counter!("hydrant_c2s_auth_failures_total").increment(1);
        tokio::time::sleep(delay).await;
        self.count_failure(f);
    }

    /// Answers a failed attempt and closes the stream after `max_auth_failures`.
    fn count_failure(&mut self, f: Failure) {
        self.auth_failures += 1;
        self.send_failure(f);
        if self.auth_failures >= self.cfg().max_auth_failures {
            self.stream_error(
                StreamError::new(Cond::PolicyViolation)
                    .with_text("too many failed authentication attempts"),
            );
        }
    }

    fn send_failure(&mut self, f: Failure) {
        self.sasl = None;
        let el = Element::new("failure", ns::SASL).with_child(Element::new(f.as_str(), ns::SASL));
        self.send_element(&el);
    }
}

/// The payload was not valid base64 (RFC 6120 6.4.2 `incorrect-encoding`).
struct BadBase64;

/// Decodes a SASL payload: `None` = no data at all, `Some(empty)` for the explicit empty
/// response `=` (RFC 6120 6.4.2).
fn decode_payload(text: &str) -> Result<Option<Vec<u8>>, BadBase64> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t == "=" {
        return Ok(Some(Vec::new()));
    }
    B64.decode(t).map(Some).map_err(|_| BadBase64)
}
