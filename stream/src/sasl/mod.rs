//! A sans-IO SASL server (RFC 6120 section 6, RFC 4422): SCRAM-SHA-256, SCRAM-SHA-1
//! (RFC 5802, on stored keys from `hydrant_proto::scram`), PLAIN (RFC 4616) and EXTERNAL
//! (RFC 4422 appendix A, with XEP-0178's authzid rules).
//!
//! The machine takes the peer's `<auth/>`, `<response/>` and `<abort/>` and answers with a
//! [`Step`]. It does no I/O and looks nothing up: where it needs stored keys it returns
//! [`Step::NeedKeys`] and is resumed with [`SaslServer::keys`]; before it checks a guess
//! (a SCRAM proof, a PLAIN password) it returns [`Step::Check`], so the caller can spend
//! its login budgets first and only then call [`SaslServer::check`]; PBKDF2 for PLAIN is
//! handed out as a [`PasswordCheck`] to run off the reactor. Unknown users are the
//! caller's business too: it passes keys no password matches, so the exchange looks and
//! costs the same (timing equalisation).
//!
//! Identities for SCRAM and PLAIN are client identities (RFC 6120 6.3.8): a localpart of
//! our domain, or a bare JID of it; an authzid must be the user's own bare JID. EXTERNAL
//! identities come from the caller (what the peer's certificate proves).

mod external;
mod failure;
mod identity;
#[cfg(test)]
mod tests;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hydrant_proto::scram::{ClientFirst, ScramError, ScramHash, ScramKeys, ServerFirst};
use hydrant_proto::{Element, ns};

pub use failure::Failure;

/// A SASL mechanism this server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    ScramSha256,
    ScramSha1,
    Plain,
    External,
}

impl Mechanism {
    pub const fn as_str(self) -> &'static str {
        match self {
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::Plain => "PLAIN",
            Mechanism::External => "EXTERNAL",
        }
    }
}

/// A SASL element from the peer (RFC 6120 6.4).
#[derive(Debug)]
pub enum Input<'a> {
    Auth { mechanism: &'a str, payload: String },
    Response { payload: String },
    Abort,
}

impl<'a> Input<'a> {
    /// `None`: an element of the SASL namespace that is none of these (a stream error,
    /// RFC 6120 4.9.3.24 `<unsupported-stanza-type/>`, is the caller's to send).
    pub fn from_element(el: &'a Element) -> Option<Self> {
        if el.ns() != ns::SASL {
            return None;
        }
        match el.name() {
            "auth" => Some(Input::Auth {
                mechanism: el.attr("mechanism").unwrap_or_default(),
                payload: el.text(),
            }),
            "response" => Some(Input::Response { payload: el.text() }),
            "abort" => Some(Input::Abort),
            _ => None,
        }
    }
}

/// What the stream around the machine knows and allows.
#[derive(Debug, Clone, Copy)]
pub struct AuthContext<'a> {
    /// Mechanisms offered on this stream now; any other is `<invalid-mechanism/>`.
    pub offered: &'a [Mechanism],
    /// Our domain: SCRAM and PLAIN identities are its localparts.
    pub domain: &'a str,
    /// EXTERNAL: the identities the peer's certificate proves, already verified by the
    /// caller (a bare JID for a client, a domain for a server).
    pub certificate_ids: &'a [&'a str],
}

/// What the caller does next.
#[derive(Debug)]
pub enum Step {
    /// Send `<challenge/>` with these bytes (empty: the empty challenge) and wait for the
    /// peer's `<response/>`.
    Challenge(Vec<u8>),
    /// Look up the stored keys of `username` (normalised) for `hash` and resume with
    /// [`SaslServer::keys`]. For an unknown user pass keys no password can match, with a
    /// salt stable per name, so probing cannot tell accounts apart.
    NeedKeys { username: String, hash: ScramHash },
    /// The peer's guess for `username` is ready to be checked (`None`: the name cannot
    /// exist, the guess fails anyway). Spend the login budgets, then call
    /// [`SaslServer::check`], or [`SaslServer::reset`] when a budget refuses.
    Check { username: Option<String> },
    /// PLAIN: run [`PasswordCheck::run`] (PBKDF2, deliberately slow: off the reactor);
    /// its result is the final step.
    VerifyPassword(PasswordCheck),
    /// Authenticated as `username` (for EXTERNAL: the certificate identity); send
    /// `<success/>` with `additional` data (RFC 6120 6.4.6) and restart the stream.
    Success {
        username: String,
        additional: Vec<u8>,
    },
    /// Send `<failure/>` with this condition. [`Failure::NotAuthorized`] is a failed
    /// credential check (the caller counts and delays it); the others are protocol errors.
    Failure(Failure),
}

/// A PLAIN password to verify against stored keys.
pub struct PasswordCheck {
    username: String,
    password: String,
    keys: ScramKeys,
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordCheck")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl PasswordCheck {
    /// Derives and compares: [`Step::Success`] or [`Step::Failure`] (`not-authorized`).
    pub fn run(self) -> Step {
        if self.keys.verify_password(ScramHash::Sha256, &self.password) {
            Step::Success {
                username: self.username,
                additional: Vec::new(),
            }
        } else {
            Step::Failure(Failure::NotAuthorized)
        }
    }
}

/// Where an exchange is. Every payload is boxed: an idle stream holds one word here.
#[derive(Debug, Default)]
enum State {
    #[default]
    Idle,
    /// PLAIN without initial response: we sent the empty challenge.
    PlainAwaitingResponse,
    /// PLAIN credentials parsed, waiting for [`SaslServer::check`] and then the keys.
    PlainCheck(Box<PlainGuess>),
    /// SCRAM client-first parsed, waiting for the keys.
    ScramNeedKeys(Box<(ClientFirst, ScramHash)>),
    /// SCRAM server-first sent, waiting for client-final.
    Scram(Box<ServerFirst>),
    /// SCRAM client-final received, waiting for [`SaslServer::check`].
    ScramCheck(Box<(ServerFirst, Vec<u8>)>),
    /// EXTERNAL without initial response: we sent the empty challenge.
    ExternalAwaitingResponse,
}

#[derive(Debug)]
struct PlainGuess {
    username: Option<String>,
    password: String,
    /// Checked (budgets spent), waiting for the keys.
    checked: bool,
}

/// One stream's SASL server. Any [`Step::Success`] or [`Step::Failure`] returns it to
/// idle; a new `<auth/>` abandons an exchange in progress.
#[derive(Debug, Default)]
pub struct SaslServer {
    state: State,
}

impl SaslServer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets any exchange in progress.
    pub fn reset(&mut self) {
        self.state = State::Idle;
    }

    /// Feeds one SASL element.
    pub fn input(&mut self, ctx: &AuthContext<'_>, input: Input<'_>) -> Step {
        match input {
            Input::Auth { mechanism, payload } => self.auth(ctx, mechanism, &payload),
            Input::Response { payload } => self.response(ctx, &payload),
            Input::Abort => self.fail(Failure::Aborted),
        }
    }

    /// `<auth mechanism='...'>payload</auth>` (RFC 6120 6.4.2).
    pub fn auth(&mut self, ctx: &AuthContext<'_>, mechanism: &str, payload: &str) -> Step {
        self.state = State::Idle;
        let Some(mech) = ctx
            .offered
            .iter()
            .copied()
            .find(|m| m.as_str() == mechanism)
        else {
            // RFC 6120 6.5.5; a mechanism not offered on this stream (PLAIN before TLS)
            // lands here too.
            return self.fail(Failure::InvalidMechanism);
        };
        let Ok(payload) = decode_payload(payload) else {
            return self.fail(Failure::IncorrectEncoding);
        };
        match mech {
            Mechanism::Plain => match payload {
                None => {
                    // RFC 6120 6.4.2: no initial response, so an empty challenge.
                    self.state = State::PlainAwaitingResponse;
                    Step::Challenge(Vec::new())
                }
                Some(p) => self.plain(ctx, &p),
            },
            Mechanism::ScramSha256 => {
                self.scram_first(ctx, ScramHash::Sha256, &payload.unwrap_or_default())
            }
            Mechanism::ScramSha1 => {
                self.scram_first(ctx, ScramHash::Sha1, &payload.unwrap_or_default())
            }
            Mechanism::External => match payload {
                None => {
                    self.state = State::ExternalAwaitingResponse;
                    Step::Challenge(Vec::new())
                }
                Some(p) => self.finish(external::authenticate(ctx.certificate_ids, &p)),
            },
        }
    }

    /// `<response>payload</response>` (RFC 6120 6.4.3).
    pub fn response(&mut self, ctx: &AuthContext<'_>, payload: &str) -> Step {
        let Ok(payload) = decode_payload(payload) else {
            return self.fail(Failure::IncorrectEncoding);
        };
        let payload = payload.unwrap_or_default();
        match std::mem::take(&mut self.state) {
            State::PlainAwaitingResponse => self.plain(ctx, &payload),
            State::ExternalAwaitingResponse => {
                self.finish(external::authenticate(ctx.certificate_ids, &payload))
            }
            State::Scram(server_first) => {
                // The client proof is the guess: the caller spends its budgets first.
                let username = Some(server_first.username().to_owned());
                self.state = State::ScramCheck(Box::new((*server_first, payload)));
                Step::Check { username }
            }
            // A response with no exchange in progress (or one that awaits the caller).
            _ => self.fail(Failure::MalformedRequest),
        }
    }

    /// The caller spent its budgets after [`Step::Check`]: the guess is checked now.
    pub fn check(&mut self) -> Step {
        match std::mem::take(&mut self.state) {
            State::ScramCheck(b) => {
                let (server_first, client_final) = *b;
                let username = server_first.username().to_owned();
                match server_first.finish(&client_final) {
                    Ok(server_final) => Step::Success {
                        username,
                        additional: server_final,
                    },
                    Err(ScramError::NotAuthorized) => Step::Failure(Failure::NotAuthorized),
                    Err(_) => Step::Failure(Failure::MalformedRequest),
                }
            }
            State::PlainCheck(mut guess) => match guess.username.clone() {
                None => Step::Failure(Failure::NotAuthorized),
                Some(username) => {
                    guess.checked = true;
                    self.state = State::PlainCheck(guess);
                    Step::NeedKeys {
                        username,
                        hash: ScramHash::Sha256,
                    }
                }
            },
            _ => self.fail(Failure::MalformedRequest),
        }
    }

    /// The stored keys asked for by [`Step::NeedKeys`].
    pub fn keys(&mut self, keys: ScramKeys) -> Step {
        match std::mem::take(&mut self.state) {
            State::ScramNeedKeys(b) => {
                let (first, hash) = *b;
                let (challenge, server_first) = first.challenge(hash, keys);
                self.state = State::Scram(Box::new(server_first));
                Step::Challenge(challenge)
            }
            State::PlainCheck(guess) if guess.checked => {
                let PlainGuess {
                    username, password, ..
                } = *guess;
                Step::VerifyPassword(PasswordCheck {
                    username: username.expect("checked guesses have a username"),
                    password,
                    keys,
                })
            }
            _ => self.fail(Failure::MalformedRequest),
        }
    }

    fn scram_first(&mut self, ctx: &AuthContext<'_>, hash: ScramHash, payload: &[u8]) -> Step {
        let Ok(first) = ClientFirst::parse(payload) else {
            return self.fail(Failure::MalformedRequest);
        };
        let Some(username) = identity::normalize_username(&first.username, ctx.domain) else {
            // A name that cannot exist: a failed check, like a wrong password.
            return self.fail(Failure::NotAuthorized);
        };
        if let Some(authz) = &first.authzid
            && !identity::authzid_ok(authz, &username, ctx.domain)
        {
            return self.fail(Failure::InvalidAuthzid);
        }
        self.state = State::ScramNeedKeys(Box::new((first, hash)));
        Step::NeedKeys { username, hash }
    }

    fn plain(&mut self, ctx: &AuthContext<'_>, payload: &[u8]) -> Step {
        // RFC 4616: [authzid] NUL authcid NUL passwd
        let mut parts = payload.split(|b| *b == 0);
        let (Some(authz), Some(authc), Some(pass), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.fail(Failure::MalformedRequest);
        };
        let (Ok(authz), Ok(authc), Ok(pass)) = (
            std::str::from_utf8(authz),
            std::str::from_utf8(authc),
            std::str::from_utf8(pass),
        ) else {
            return self.fail(Failure::MalformedRequest);
        };
        let username = identity::normalize_username(authc, ctx.domain);
        if let Some(username) = &username
            && !authz.is_empty()
            && !identity::authzid_ok(authz, username, ctx.domain)
        {
            return self.fail(Failure::InvalidAuthzid);
        }
        self.state = State::PlainCheck(Box::new(PlainGuess {
            username: username.clone(),
            password: pass.to_owned(),
            checked: false,
        }));
        Step::Check { username }
    }

    fn finish(&mut self, step: Step) -> Step {
        self.state = State::Idle;
        step
    }

    fn fail(&mut self, f: Failure) -> Step {
        self.finish(Step::Failure(f))
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
