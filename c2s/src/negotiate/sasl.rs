//! SASL authentication (RFC 6120 section 6): SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN.
//!
//! The exchange itself is `hydrant_stream::sasl::SaslServer` (sans-IO); this file is the
//! c2s policy around it: which mechanisms are offered, where keys come from, the login
//! budgets spent before each guess is checked, and what a failure costs.
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
use hydrant_proto::scram::{ScramHash, ScramKeys};
use hydrant_proto::{Element, StreamError, StreamErrorCondition as Cond, ns};
use hydrant_stream::sasl::{AuthContext, Failure, Input, Mechanism, Step};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{debug, info};

use crate::backend::Backend;
use crate::stream::{Shared, Stream};
use crate::throttle::{LoginAttempt, LoginBudgets};

impl<'a, S, B> Stream<'a, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    /// Mechanisms offered now, strongest first.
    pub(crate) fn mechanisms(&self) -> Vec<Mechanism> {
        let mut m = vec![Mechanism::ScramSha256, Mechanism::ScramSha1];
        if self.secure {
            m.push(Mechanism::Plain);
        }
        m
    }

    pub(crate) async fn on_sasl(&mut self, el: Element) {
        if !self.may_authenticate() {
            // A policy refusal, not a credential failure: answered at once, not counted.
            return self.send_failure(Failure::EncryptionRequired);
        }
        let Some(input) = Input::from_element(&el) else {
            return self.stream_error(StreamError::new(Cond::UnsupportedStanzaType));
        };
        let offered = self.mechanisms();
        let shared: &'a Shared<B> = self.shared;
        let ctx = AuthContext {
            offered: &offered,
            domain: &shared.cfg.domain,
            // No client certificates are asked for: EXTERNAL is never offered on c2s.
            certificate_ids: &[],
        };
        let step = self.sasl.input(&ctx, input);
        self.drive(step).await;
    }

    /// Carries out the machine's steps until it waits for the client again or is done.
    async fn drive(&mut self, mut step: Step) {
        // Taken from the login budgets before a guess is checked; settled on success,
        // dropped (counted) on failure.
        let mut attempt: Option<LoginAttempt<'a>> = None;
        loop {
            step = match step {
                Step::Challenge(data) => {
                    if data.is_empty() {
                        self.conn
                            .send(&b"<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"[..]);
                    } else {
                        let mut el = Element::new("challenge", ns::SASL);
                        el.append_text(B64.encode(data));
                        self.send_element(&el);
                    }
                    return;
                }
                Step::NeedKeys { username, hash } => {
                    // An unknown user gets fake keys: the same exchange, the same cost.
                    let keys = match self.shared.backend.credentials(&username).await {
                        Some(creds) => creds.keys(hash).clone(),
                        None => self.fake_keys(hash, &username),
                    };
                    self.sasl.keys(keys)
                }
                Step::Check { username } => {
                    // The guess is about to be checked: budgets first.
                    let Some(a) = self.login_attempt(username.as_deref()).await else {
                        return self.throttled();
                    };
                    attempt = Some(a);
                    self.sasl.check()
                }
                Step::VerifyPassword(check) => {
                    // PBKDF2 is deliberately slow; keep it off the reactor threads.
                    tokio::task::spawn_blocking(move || check.run())
                        .await
                        .unwrap_or(Step::Failure(Failure::NotAuthorized))
                }
                Step::Success {
                    username,
                    additional,
                } => return self.succeed(username, &additional, attempt),
                Step::Failure(Failure::NotAuthorized) => {
                    // Settled before the failure delay, so attempts waiting on it go on.
                    drop(attempt);
                    return self.fail(Failure::NotAuthorized).await;
                }
                Step::Failure(f) => return self.send_failure(f),
            };
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
        self.sasl.reset();
        metrics::counter!("hydrant_c2s_auth_throttled_total").increment(1);
        self.count_failure(Failure::TemporaryAuth);
    }

    fn succeed(&mut self, username: String, additional: &[u8], attempt: Option<LoginAttempt<'_>>) {
        info!(peer = %self.peer, user = %username, "authenticated");
        if let Some(attempt) = attempt {
            attempt.succeeded();
        }
        let mut el = Element::new("success", ns::SASL);
        if !additional.is_empty() {
            el.append_text(B64.encode(additional));
        }
        self.send_element(&el);
        self.username = Some(username);
        self.sasl.reset();
        // RFC 6120 6.4.6: both sides restart the stream after <success/>.
        self.restart();
    }

    /// A failed credential check: delayed by the network's record, counted per stream.
    async fn fail(&mut self, f: Failure) {
        self.sasl.reset();
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
        self.sasl.reset();
        self.send_element(&f.to_element());
    }
}
