//! Server Dialback (XEP-0220) with keys per XEP-0185: the sans-IO parts.
//!
//! Section numbers below are those of XEP-0220 version 1.x (the text in xsf/xeps): 2.1.1
//! Initiating Server sends a key, 2.1.2 Receiving Server asks the Authoritative Server,
//! 2.2.1 Receiving Server handles the key, 2.2.2 Authoritative Server answers, 2.4.2
//! dialback errors feature, 2.5 error conditions, 2.6 multiplexing, 3.1 unsolicited
//! dialback. XEP-0185: section 2 the algorithm, section 3 the worked example.
//!
//! Roles and names, once (XEP-0220 1.3): the *Initiating Server* opened a stream to the
//! *Receiving Server* and asserts a *Sender Domain* (`from` of its `<db:result/>`) for
//! stanzas to a *Target Domain* (`to`). The Receiving Server asks the *Authoritative
//! Server* (found by DNS for the Sender Domain) whether the key is one it made. XEP-0185
//! still says "Originating Server" for the Initiating Server.
//!
//! What is here:
//! - [`key`], [`Secret`], [`verify_key`]: key generation and constant-time checking.
//! - [`DbElement`], [`parse`], [`DbError`]: `<db:result/>` and `<db:verify/>` both ways.
//! - [`Inbound`]: the Receiving Server's per-stream state of domain pairs (2.2.1, 2.6).
//! - [`answer_verify`]: the Authoritative Server's answer to `<db:verify/>` (2.2.2).
//!
//! The stream code owns the rest: correlating a `<db:verify/>` answer with the inbound
//! stream it is for (by `from`, `to` and `id`, 2.1.2), timeouts, and closing the stream
//! after sending `type='invalid'` (2.2.1).

use std::fmt;
use std::sync::OnceLock;

use hmac::{Hmac, Mac};
use hydrant_proto::writer::{escape_attr_into, escape_text_into};
use hydrant_proto::{Element, StanzaError, StanzaErrorCondition, StreamErrorCondition, ns};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// Longest dialback key accepted on the wire, in bytes (after trimming whitespace). An
/// XEP-0185 key is 64 hex digits; older schemes used 40 (SHA-1). Twice the longest
/// known format, so a peer cannot make us store and relay arbitrary text.
pub const MAX_KEY_LEN: usize = 128;

/// Longest `id` (a stream id) accepted on `<db:verify/>`, in bytes. Stream ids are
/// typically 8 to 40 characters (ours are 24 hex digits).
pub const MAX_ID_LEN: usize = 256;

/// Most domain pairs one inbound stream may hold in any state (pending, authorized,
/// failed). Past it, new pairs are refused with a dialback error, so a peer cannot grow
/// our memory or make us start unbounded verifications on one stream (2.6 multiplexing
/// allows many pairs per stream, not infinitely many).
pub const MAX_PAIRS: usize = 64;

/// Most character data read from a request before trimming: the key plus room for the
/// indentation pretty-printing peers put around it.
const MAX_KEY_TEXT: usize = MAX_KEY_LEN + 256;

const HEX: &[u8; 16] = b"0123456789abcdef";

// ---------------------------------------------------------------------------------------
// Keys (XEP-0185)
// ---------------------------------------------------------------------------------------

/// The dialback key of XEP-0185 section 2:
///
/// ```text
/// key = HMAC-SHA256( SHA256(Secret),
///                    { Receiving Server, ' ', Originating Server, ' ', Stream ID } )
/// ```
///
/// with the SHA-256 output "provided in the hexadecimal representation" (note 4), i.e.
/// the HMAC key is the 64 lowercase hex digits of SHA256(secret) as ASCII bytes (that is
/// what the section 3 example shows: `HMAC-SHA256('a7136e…9acc', …)`), and the result is
/// lowercase hex too. `stream_id` is the id the *Receiving* Server gave the stream the
/// Initiating Server opened.
pub fn key(secret: &[u8], receiving: &str, originating: &str, stream_id: &str) -> String {
    let hmac_key = hmac_key(secret);
    hex(&mac(&hmac_key, receiving, originating, stream_id)
        .finalize()
        .into_bytes())
}

/// Whether `key` (hex, either case) is the XEP-0185 key for these inputs. The comparison
/// is constant-time (`Mac::verify_slice`); only the length and hex syntax of the offered
/// key, which the peer chose, are checked with early exits.
pub fn verify_key(
    secret: &[u8],
    receiving: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> bool {
    verify_with(&hmac_key(secret), receiving, originating, stream_id, key)
}

/// hex(SHA256(secret)) as ASCII: the HMAC key of XEP-0185 section 2 (notes 2 and 4).
fn hmac_key(secret: &[u8]) -> [u8; 64] {
    let digest = Sha256::digest(secret);
    let mut out = [0u8; 64];
    for (i, b) in digest.iter().enumerate() {
        out[2 * i] = HEX[usize::from(b >> 4)];
        out[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    out
}

fn mac(hmac_key: &[u8], receiving: &str, originating: &str, stream_id: &str) -> HmacSha256 {
    let mut m = HmacSha256::new_from_slice(hmac_key).expect("HMAC takes keys of any length");
    // XEP-0185 section 2 note 5: separated by U+0020. Domains (checked by `parse`) and
    // stream ids (no whitespace, checked by `parse`) cannot contain a space, so the
    // message is unambiguous.
    m.update(receiving.as_bytes());
    m.update(b" ");
    m.update(originating.as_bytes());
    m.update(b" ");
    m.update(stream_id.as_bytes());
    m
}

fn verify_with(
    hmac_key: &[u8],
    receiving: &str,
    originating: &str,
    stream_id: &str,
    key: &str,
) -> bool {
    let Some(offered) = decode_hex32(key) else {
        return false;
    };
    mac(hmac_key, receiving, originating, stream_id)
        .verify_slice(&offered)
        .is_ok()
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Exactly 64 hex digits (either case) as 32 bytes.
fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The dialback secret of this process (XEP-0185 section 2 note 3: "generated as a
/// random string when starting the XMPP server"; nothing shares it, so only this process
/// can answer `<db:verify/>` for keys it made).
///
/// Holds only the derived HMAC key, hex(SHA256(secret)), never the secret itself; both
/// are equally sensitive, so `Debug` prints neither.
#[derive(Clone)]
pub struct Secret {
    hmac_key: [u8; 64],
}

impl Secret {
    /// A fresh secret of 32 bytes from the OS random source.
    pub fn random() -> Self {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the OS random source is available");
        Secret::from_bytes(&raw)
    }

    /// The process-wide secret, made on first use (one per process).
    pub fn process() -> &'static Secret {
        static SECRET: OnceLock<Secret> = OnceLock::new();
        SECRET.get_or_init(Secret::random)
    }

    /// A secret given by configuration (XEP-0185 allows one "set up in a configuration
    /// option"); also how tests use the XEP examples' secrets.
    pub fn from_bytes(secret: &[u8]) -> Self {
        Secret {
            hmac_key: hmac_key(secret),
        }
    }

    /// [`key`] with this secret.
    pub fn key(&self, receiving: &str, originating: &str, stream_id: &str) -> String {
        hex(&mac(&self.hmac_key, receiving, originating, stream_id)
            .finalize()
            .into_bytes())
    }

    /// [`verify_key`] with this secret (constant-time).
    pub fn verify(&self, receiving: &str, originating: &str, stream_id: &str, key: &str) -> bool {
        verify_with(&self.hmac_key, receiving, originating, stream_id, key)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

// ---------------------------------------------------------------------------------------
// Elements
// ---------------------------------------------------------------------------------------

/// The `type` of a dialback response: `valid`, `invalid`, or `error` with a stanza error
/// condition (XEP-0220 2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Valid,
    Invalid,
    Error(StanzaErrorCondition),
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Valid => "valid",
            DbKind::Invalid => "invalid",
            DbKind::Error(_) => "error",
        }
    }
}

/// A `<db:result/>` or `<db:verify/>` element, typed.
///
/// Domains (`from`, `to`) are normalised domain JIDs when the element came from [`parse`].
/// A request has no `type` and carries the key as character data; a response has a
/// `type` and no key (XEP-0220 2.1.1, 2.2.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbElement {
    /// Step 1 (2.1.1): Initiating → Receiving. `from` Sender Domain, `to` Target Domain.
    ResultRequest {
        from: String,
        to: String,
        key: String,
    },
    /// Step 4 (2.2.1): Receiving → Initiating. `from` Target Domain, `to` Sender Domain.
    ResultResponse {
        from: String,
        to: String,
        kind: DbKind,
    },
    /// Step 2 (2.1.2): Receiving → Authoritative. `from` Target Domain, `to` Sender
    /// Domain, `id` the stream id the Receiving Server gave the Initiating Server's stream.
    VerifyRequest {
        from: String,
        to: String,
        id: String,
        key: String,
    },
    /// Step 3 (2.2.2): Authoritative → Receiving: `from`/`to` swapped from the request,
    /// `id` copied.
    VerifyResponse {
        from: String,
        to: String,
        id: String,
        kind: DbKind,
    },
}

impl DbElement {
    /// Step 1 for an Initiating Server: the `<db:result/>` asking to send from `from` (a
    /// local domain) to `to`, keyed with `stream_id`, the id the Receiving Server gave in
    /// its response header (XEP-0220 2.1.1; key per XEP-0185 with Receiving = `to`,
    /// Originating = `from`).
    pub fn result_request(secret: &Secret, from: &str, to: &str, stream_id: &str) -> Self {
        DbElement::ResultRequest {
            from: from.to_owned(),
            to: to.to_owned(),
            key: secret.key(to, from, stream_id),
        }
    }

    /// The element name: `result` or `verify`.
    pub fn name(&self) -> &'static str {
        match self {
            DbElement::ResultRequest { .. } | DbElement::ResultResponse { .. } => "result",
            DbElement::VerifyRequest { .. } | DbElement::VerifyResponse { .. } => "verify",
        }
    }

    pub fn from(&self) -> &str {
        match self {
            DbElement::ResultRequest { from, .. }
            | DbElement::ResultResponse { from, .. }
            | DbElement::VerifyRequest { from, .. }
            | DbElement::VerifyResponse { from, .. } => from,
        }
    }

    pub fn to(&self) -> &str {
        match self {
            DbElement::ResultRequest { to, .. }
            | DbElement::ResultResponse { to, .. }
            | DbElement::VerifyRequest { to, .. }
            | DbElement::VerifyResponse { to, .. } => to,
        }
    }

    /// Requests (no `type`) are what an inbound stream receives; responses are what an
    /// outbound stream receives. XEP-0220 2.2: "unless XEP-0288 is used, the 'type'
    /// should not be set on either `<db:result/>` or `<db:verify/>` elements received on an
    /// inbound connection"; and a response nobody asked for must be dropped (3.1).
    pub fn is_request(&self) -> bool {
        matches!(
            self,
            DbElement::ResultRequest { .. } | DbElement::VerifyRequest { .. }
        )
    }

    /// The element in the dialback namespace, for code that handles [`Element`]s.
    ///
    /// Serialised with [`Element::write_to`] it comes out as
    /// `<result xmlns='jabber:server:dialback' …/>`: hydrant_proto's writer emits the
    /// default-namespace form wherever the namespace changes. That is valid XML with the
    /// same expanded names, but XEP-0220 section 2 says dialback elements "MUST be
    /// prefixed with the namespace prefix … advertised on the stream header", and some
    /// deployed servers match the literal name `db:result` (ejabberd and MongooseIM
    /// build and match `#xmlel{name = <<"db:result">>}`). So on the wire use
    /// [`DbElement::to_bytes`], which writes the `db:` prefix.
    ///
    /// The `<error/>` child of a `type='error'` response is in `jabber:server`
    /// ("implicitly qualified by the 'jabber:server' namespace", 2.5).
    pub fn to_element(&self) -> Element {
        let mut el = Element::new(self.name(), ns::DIALBACK)
            .with_attr("from", self.from())
            .with_attr("to", self.to());
        match self {
            DbElement::ResultRequest { key, .. } => el.append_text(key.clone()),
            DbElement::VerifyRequest { id, key, .. } => {
                el.set_attr("id", id.clone());
                el.append_text(key.clone());
            }
            DbElement::ResultResponse { kind, .. } => add_kind(&mut el, *kind),
            DbElement::VerifyResponse { id, kind, .. } => {
                el.set_attr("id", id.clone());
                add_kind(&mut el, *kind);
            }
        }
        el
    }

    /// The bytes to write on an s2s stream: `<db:result …>`/`<db:verify …>` with the `db`
    /// prefix, as XEP-0220 section 2 requires (see [`DbElement::to_element`]).
    ///
    /// Precondition: the header this side sent on the stream declared
    /// `xmlns:db='jabber:server:dialback'` (XEP-0220 2.4.1; that declaration is also how
    /// dialback support is advertised) and the default namespace `jabber:server`, which
    /// the unprefixed `<error/>` child inherits (2.5).
    pub fn to_bytes(&self) -> Vec<u8> {
        let el = self.to_element();
        let mut out = Vec::with_capacity(192);
        out.extend_from_slice(b"<db:");
        out.extend_from_slice(el.name().as_bytes());
        for (name, value) in el.attrs() {
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"='");
            escape_attr_into(&mut out, value);
            out.push(b'\'');
        }
        if el.nodes().is_empty() {
            out.extend_from_slice(b"/>");
            return out;
        }
        out.push(b'>');
        for node in el.nodes() {
            match node {
                hydrant_proto::Node::Text(t) => escape_text_into(&mut out, t),
                // In jabber:server, the stream's default namespace: no xmlns needed.
                hydrant_proto::Node::Element(child) => child.write_to(&mut out, ns::SERVER),
            }
        }
        out.extend_from_slice(b"</db:");
        out.extend_from_slice(el.name().as_bytes());
        out.push(b'>');
        out
    }
}

fn add_kind(el: &mut Element, kind: DbKind) {
    el.set_attr("type", kind.as_str());
    if let DbKind::Error(condition) = kind {
        // XEP-0220 2.5: an <error/> child (jabber:server) holding a stanza error
        // condition; the type is the condition's RFC 6120 8.3.3 default, which gives
        // the examples' `cancel` for item-not-found.
        el.append_child(StanzaError::new(condition).to_element(ns::SERVER));
    }
}

/// Which addressing attribute an error is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attr {
    From,
    To,
}

impl Attr {
    pub fn as_str(self) -> &'static str {
        match self {
            Attr::From => "from",
            Attr::To => "to",
        }
    }
}

/// Why a dialback element was refused. [`DbError::answer`] says what to send.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbError {
    /// Not `<result/>` or `<verify/>` in `jabber:server:dialback`.
    NotDialback,
    /// `from` or `to` absent or empty (RFC 6120 4.9.3.7 `<improper-addressing/>`).
    MissingAddress(Attr),
    /// `from` or `to` is not an XMPP address at all, or one that does not normalise
    /// stably ("the value violates the rules for XMPP addresses", RFC 6120 4.9.3.7).
    MalformedAddress(Attr),
    /// `from` or `to` is an address but not a domain (a localpart or resource):
    /// `from` → `<invalid-from/>` (4.9.3.9: not a domain that can be validated), `to` →
    /// `<host-unknown/>` (4.9.3.6: not a domain we serve).
    NotDomain(Attr),
    /// A `type` other than `valid`, `invalid`, `error`.
    BadType,
    /// `<db:verify/>` without an `id` (required by the XEP-0220 schema).
    MissingId,
    /// An `id` that is too long ([`MAX_ID_LEN`]) or contains whitespace or control
    /// characters (the schema says NMTOKEN).
    BadId,
    /// A request without a key.
    MissingKey,
    /// A key that is not hex digits. XEP-0185 section 2 note 4 makes keys hex; we relay
    /// and accept no other format.
    BadKey,
    /// A key longer than [`MAX_KEY_LEN`].
    KeyTooLong,
    /// Receiving side (2.2.1): the Target Domain is not one of ours. A dialback error
    /// `<item-not-found/>`, "not a stream error and therefore MUST NOT result in closing
    /// of the stream".
    UnknownTarget { from: String, to: String },
    /// Receiving side: the stream already holds [`MAX_PAIRS`] domain pairs.
    TooManyPairs { from: String, to: String },
    /// Receiving side: a verification for this pair is already outstanding. The
    /// Initiating Server does not send a second key while one is pending (2.1.1: it
    /// sends a key when it "is currently not attempting to get a verified connection for
    /// this domain pair"); the outstanding verification answers the pair once, so the
    /// duplicate is dropped without an answer (answering it would look, to the peer, like
    /// the answer to its first request).
    AlreadyPending { from: String, to: String },
    /// Receiving side: the pair is already authorized on this stream; answered `valid`
    /// again without a new verification (the stream already proved it).
    AlreadyAuthorized { from: String, to: String },
    /// Receiving side: the pair was answered `invalid` on this stream, after which the
    /// stream MUST be closed (2.2.1); a new attempt on it is refused.
    Rejected { from: String, to: String },
}

/// What to send in reply to a refused dialback element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// A stream error; the stream is closed after it.
    Stream(StreamErrorCondition),
    /// A dialback element; the stream stays open.
    Dialback(DbElement),
    /// Nothing.
    Nothing,
}

impl DbError {
    /// The reply: malformed dialback elements are stream errors (the peer is broken or
    /// hostile, and no well-formed answer can be addressed); refusals of a well-formed
    /// request are dialback errors, non-fatal for the stream (XEP-0220 2.5).
    pub fn answer(&self) -> Answer {
        use StreamErrorCondition as S;
        match self {
            DbError::NotDialback => Answer::Stream(S::UnsupportedStanzaType),
            DbError::MissingAddress(_) | DbError::MalformedAddress(_) => {
                Answer::Stream(S::ImproperAddressing)
            }
            DbError::NotDomain(Attr::From) => Answer::Stream(S::InvalidFrom),
            DbError::NotDomain(Attr::To) => Answer::Stream(S::HostUnknown),
            DbError::BadType
            | DbError::MissingId
            | DbError::BadId
            | DbError::MissingKey
            | DbError::BadKey => Answer::Stream(S::BadFormat),
            DbError::KeyTooLong => Answer::Stream(S::PolicyViolation),
            DbError::UnknownTarget { from, to } => Answer::Dialback(result_answer(
                from,
                to,
                DbKind::Error(StanzaErrorCondition::ItemNotFound),
            )),
            DbError::TooManyPairs { from, to } => Answer::Dialback(result_answer(
                from,
                to,
                DbKind::Error(StanzaErrorCondition::PolicyViolation),
            )),
            DbError::AlreadyPending { .. } => Answer::Nothing,
            DbError::AlreadyAuthorized { from, to } => {
                Answer::Dialback(result_answer(from, to, DbKind::Valid))
            }
            DbError::Rejected { .. } => Answer::Stream(S::NotAuthorized),
        }
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::NotDialback => f.write_str("not a dialback element"),
            DbError::MissingAddress(a) => write!(f, "dialback element without '{}'", a.as_str()),
            DbError::MalformedAddress(a) => {
                write!(f, "dialback '{}' is not a valid address", a.as_str())
            }
            DbError::NotDomain(a) => write!(f, "dialback '{}' is not a domain", a.as_str()),
            DbError::BadType => f.write_str("unknown dialback type"),
            DbError::MissingId => f.write_str("db:verify without 'id'"),
            DbError::BadId => f.write_str("malformed db:verify 'id'"),
            DbError::MissingKey => f.write_str("dialback request without a key"),
            DbError::BadKey => f.write_str("dialback key is not hex"),
            DbError::KeyTooLong => f.write_str("dialback key too long"),
            DbError::UnknownTarget { from, to } => {
                write!(f, "dialback from {from} to {to}: not a local domain")
            }
            DbError::TooManyPairs { from, to } => {
                write!(
                    f,
                    "dialback from {from} to {to}: too many domain pairs on the stream"
                )
            }
            DbError::AlreadyPending { from, to } => {
                write!(f, "dialback from {from} to {to}: already being verified")
            }
            DbError::AlreadyAuthorized { from, to } => {
                write!(f, "dialback from {from} to {to}: already authorized")
            }
            DbError::Rejected { from, to } => {
                write!(f, "dialback from {from} to {to}: key was invalid")
            }
        }
    }
}

impl std::error::Error for DbError {}

/// The `<db:result type=…/>` a Receiving Server sends for a request `from` → `to`:
/// addresses swapped (2.2.1: `from` the Target Domain, `to` the Sender Domain; for
/// item-not-found the non-local domain still goes in `from`, 2.5).
fn result_answer(from: &str, to: &str, kind: DbKind) -> DbElement {
    DbElement::ResultResponse {
        from: to.to_owned(),
        to: from.to_owned(),
        kind,
    }
}

fn is_xml_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Reads a `<db:result/>` or `<db:verify/>`. Never panics, whatever the element.
///
/// The caller hands every top-level element in `jabber:server:dialback` here; whether a
/// request or a response is acceptable on the stream it arrived on is its business
/// ([`DbElement::is_request`]).
pub fn parse(el: &Element) -> Result<DbElement, DbError> {
    if el.ns() != ns::DIALBACK {
        return Err(DbError::NotDialback);
    }
    let is_verify = match el.name() {
        "result" => false,
        "verify" => true,
        _ => return Err(DbError::NotDialback),
    };
    // Addresses first: every answer, even an error, needs them.
    let from = domain(el.attr("from"), Attr::From)?;
    let to = domain(el.attr("to"), Attr::To)?;
    let id = if is_verify {
        Some(verify_id(el.attr("id"))?)
    } else {
        None
    };
    let kind = match el.attr("type") {
        None => None,
        Some("valid") => Some(DbKind::Valid),
        Some("invalid") => Some(DbKind::Invalid),
        Some("error") => Some(DbKind::Error(error_condition(el))),
        Some(_) => return Err(DbError::BadType),
    };
    Ok(match (id, kind) {
        (None, None) => DbElement::ResultRequest {
            from,
            to,
            key: request_key(el)?,
        },
        (None, Some(kind)) => DbElement::ResultResponse { from, to, kind },
        (Some(id), None) => DbElement::VerifyRequest {
            from,
            to,
            id,
            key: request_key(el)?,
        },
        (Some(id), Some(kind)) => DbElement::VerifyResponse { from, to, id, kind },
    })
}

impl TryFrom<&Element> for DbElement {
    type Error = DbError;

    fn try_from(el: &Element) -> Result<Self, DbError> {
        parse(el)
    }
}

/// A domain JID, normalised (nameprep), refusing addresses that do not read back as
/// themselves (`hydrant_proto::address::jid`).
fn domain(raw: Option<&str>, attr: Attr) -> Result<String, DbError> {
    let raw = raw
        .filter(|r| !r.is_empty())
        .ok_or(DbError::MissingAddress(attr))?;
    let jid = hydrant_proto::address::jid(raw).ok_or(DbError::MalformedAddress(attr))?;
    if jid.node().is_some() || jid.resource().is_some() {
        return Err(DbError::NotDomain(attr));
    }
    let d = jid.domain().as_str();
    // The key message separates domains with spaces (XEP-0185 note 5); the jid crate's
    // IDNA check already refuses them, this keeps that true whatever it does.
    if d.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DbError::MalformedAddress(attr));
    }
    Ok(d.to_owned())
}

fn verify_id(raw: Option<&str>) -> Result<String, DbError> {
    let id = raw.filter(|r| !r.is_empty()).ok_or(DbError::MissingId)?;
    if id.len() > MAX_ID_LEN || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(DbError::BadId);
    }
    Ok(id.to_owned())
}

/// The key of a request: its character data without surrounding XML whitespace (the
/// XEP examples indent it on its own line).
fn request_key(el: &Element) -> Result<String, DbError> {
    // Sum the text lengths first so an oversized key is refused before it is copied.
    let text_len: usize = el
        .nodes()
        .iter()
        .map(|n| match n {
            hydrant_proto::Node::Text(t) => t.len(),
            hydrant_proto::Node::Element(_) => 0,
        })
        .sum();
    if text_len > MAX_KEY_TEXT {
        return Err(DbError::KeyTooLong);
    }
    let text = el.text();
    let key = text.trim_matches(is_xml_space);
    if key.is_empty() {
        return Err(DbError::MissingKey);
    }
    if key.len() > MAX_KEY_LEN {
        return Err(DbError::KeyTooLong);
    }
    if !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(DbError::BadKey);
    }
    Ok(key.to_owned())
}

/// The stanza error condition of a `type='error'` response. XEP-0220 2.5: the element
/// "MUST contain an `<error/>` element (implicitly qualified by the 'jabber:server'
/// namespace)" holding a stanza error condition. Read leniently: an `<error/>` in any
/// namespace, and a missing error or an unknown condition is `<undefined-condition/>`;
/// the response is a failure either way, and closing the stream over its detail would
/// throw away the other pairs on it. (XEP-0220's table lists `remote-connection-failed`,
/// which is a stream error condition, not a stanza one in RFC 6120 8.3.3; it too reads
/// as undefined-condition.)
fn error_condition(el: &Element) -> StanzaErrorCondition {
    el.children()
        .find(|c| c.name() == "error")
        .map_or(StanzaErrorCondition::UndefinedCondition, |e| {
            StanzaError::from_element(e).condition
        })
}

// ---------------------------------------------------------------------------------------
// Receiving Server: per inbound stream
// ---------------------------------------------------------------------------------------

/// Where a domain pair stands on an inbound stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PairState {
    /// A `<db:result/>` was received and its verification is outstanding.
    Pending,
    /// Verified: stanzas from the Sender Domain to the Target Domain are accepted.
    Authorized,
    /// Verification could not be done (a dialback error was sent); the peer may try
    /// again (2.5: dialback errors are non-fatal).
    Failed,
    /// The key was invalid: the peer tried to spoof the Sender Domain; the stream is to
    /// be closed (2.2.1) and the pair is never retried on it.
    Rejected,
}

#[derive(Debug)]
struct Pair {
    from: String,
    to: String,
    state: PairState,
}

/// A verification to start: ask the Authoritative Server for `from` (the Sender Domain)
/// whether the key is good for `from` → `to` (XEP-0220 2.1.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verify {
    /// The Sender Domain: look up its Authoritative Server.
    pub from: String,
    /// The Target Domain, one of ours.
    pub to: String,
}

impl Verify {
    /// The `<db:verify/>` to send to the Authoritative Server (2.1.2): `from` the Target
    /// Domain, `to` the Sender Domain, `id` the id *we* gave the inbound stream the key
    /// came on, the key as received.
    pub fn request(&self, inbound_stream_id: &str, key: &str) -> DbElement {
        DbElement::VerifyRequest {
            from: self.to.clone(),
            to: self.from.clone(),
            id: inbound_stream_id.to_owned(),
            key: key.to_owned(),
        }
    }
}

/// The Receiving Server's dialback state for one inbound stream: the domain pairs
/// (Sender Domain, Target Domain) asked for on it, at most [`MAX_PAIRS`].
///
/// Several pairs may share a stream (2.6 multiplexing, a.k.a. piggybacking): every
/// stanza on it must have a `from` domain and a `to` domain that form an authorized pair
/// ([`Inbound::is_authorized`]). Pairs are keyed by the normalised domains [`parse`]
/// gives; `from` is always the Sender Domain and `to` the Target Domain, which is the
/// orientation of both the `<db:result/>` request and the Authoritative Server's
/// `<db:verify/>` answer.
#[derive(Debug, Default)]
pub struct Inbound {
    pairs: Vec<Pair>,
}

impl Inbound {
    pub fn new() -> Self {
        Inbound::default()
    }

    fn find(&self, from: &str, to: &str) -> Option<usize> {
        self.pairs.iter().position(|p| p.from == from && p.to == to)
    }

    /// A `<db:result/>` request arrived for `from` → `to` (2.2.1). `Ok`: start the
    /// verification ([`Verify::request`]); the pair is now pending. `Err`: do not;
    /// [`DbError::answer`] says what to reply.
    ///
    /// The key is not looked at here: it goes unchanged into the `<db:verify/>`.
    pub fn on_result_request(
        &mut self,
        from: &str,
        to: &str,
        is_local: impl Fn(&str) -> bool,
    ) -> Result<Verify, DbError> {
        let (f, t) = (from.to_owned(), to.to_owned());
        // 2.2.1: "If the Target Domain … is not a configured domain of the Receiving
        // Server, this results in a dialback error" (item-not-found, 2.5).
        if !is_local(to) {
            return Err(DbError::UnknownTarget { from: f, to: t });
        }
        if let Some(i) = self.find(from, to) {
            let pair = &mut self.pairs[i];
            match pair.state {
                PairState::Pending => return Err(DbError::AlreadyPending { from: f, to: t }),
                PairState::Authorized => {
                    return Err(DbError::AlreadyAuthorized { from: f, to: t });
                }
                PairState::Rejected => return Err(DbError::Rejected { from: f, to: t }),
                PairState::Failed => pair.state = PairState::Pending,
            }
        } else {
            if self.pairs.len() >= MAX_PAIRS {
                return Err(DbError::TooManyPairs { from: f, to: t });
            }
            self.pairs.push(Pair {
                from: f.clone(),
                to: t.clone(),
                state: PairState::Pending,
            });
        }
        Ok(Verify { from: f, to: t })
    }

    /// The Authoritative Server answered `valid` or `invalid` for the pending pair
    /// `from` → `to` (Sender, Target). Returns the `<db:result/>` to send the Initiating
    /// Server (2.2.1: `from` the Target Domain, `to` the Sender Domain).
    ///
    /// `None` if the pair is not pending on this stream: an unsolicited or repeated
    /// answer, dropped (2.1.2: "If no inbound connection is found that matches …, the
    /// verification result SHOULD be dropped silently"; 3.1 unsolicited dialback).
    ///
    /// After sending `type='invalid'` the caller MUST close the stream (2.2.1: "The
    /// Receiving Server MUST NOT accept stanzas … for the Sender Domain, ought to log the
    /// attempt, and MUST close the XML stream").
    pub fn on_verified(&mut self, from: &str, to: &str, valid: bool) -> Option<DbElement> {
        let pair = self.pending_mut(from, to)?;
        let kind = if valid {
            pair.state = PairState::Authorized;
            DbKind::Valid
        } else {
            pair.state = PairState::Rejected;
            DbKind::Invalid
        };
        Some(result_answer(from, to, kind))
    }

    /// Verification of the pending pair `from` → `to` could not be done; returns the
    /// non-fatal dialback error to send (2.5). Conditions per 2.5's table: the
    /// Authoritative Server answered `type='error'` → `remote-server-not-found` ("If an
    /// error is encountered in Step 3 …, the Receiving Server MUST send a
    /// `<remote-server-not-found/>` dialback error"), it could not be reached or did not
    /// answer → `remote-server-timeout`. `None` if the pair is not pending.
    pub fn on_verify_failed(
        &mut self,
        from: &str,
        to: &str,
        condition: StanzaErrorCondition,
    ) -> Option<DbElement> {
        let pair = self.pending_mut(from, to)?;
        pair.state = PairState::Failed;
        Some(result_answer(from, to, DbKind::Error(condition)))
    }

    fn pending_mut(&mut self, from: &str, to: &str) -> Option<&mut Pair> {
        let i = self.find(from, to)?;
        let pair = &mut self.pairs[i];
        (pair.state == PairState::Pending).then_some(pair)
    }

    /// Whether stanzas from `from_domain` to `to_domain` are accepted on this stream:
    /// the domain parts of a stanza's `from` and `to` (2.2.1, 2.6).
    pub fn is_authorized(&self, from_domain: &str, to_domain: &str) -> bool {
        self.state(from_domain, to_domain) == Some(PairState::Authorized)
    }

    pub fn state(&self, from: &str, to: &str) -> Option<PairState> {
        self.find(from, to).map(|i| self.pairs[i].state)
    }

    /// The pairs still waiting for verification, (Sender, Target): when the stream to
    /// the Authoritative Server closes, they are failed (2.1.2: "those requests SHOULD be
    /// considered failed").
    pub fn pending(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .filter(|p| p.state == PairState::Pending)
            .map(|p| (p.from.as_str(), p.to.as_str()))
    }

    /// Number of pairs held, in any state.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }
}

// ---------------------------------------------------------------------------------------
// Authoritative Server
// ---------------------------------------------------------------------------------------

/// The Authoritative Server's `<db:verify/>` answer (XEP-0220 2.2.2) to a request with
/// attributes `from`, `to`, `id` and key `key` (the fields of
/// [`DbElement::VerifyRequest`]).
///
/// Which domain is which, from 2.1.2 and 2.2.2: the Receiving Server sends the request
/// with `from` = the Target Domain (itself, the Receiving Server), `to` = the Sender
/// Domain (us, the domain whose key it is), `id` = "the stream ID of the response stream
/// header sent from the Receiving Server to the Initiating Server", i.e. the id the
/// Receiving Server gave the stream *we* opened to it. We made the key in Step 1
/// ([`DbElement::result_request`]) as XEP-0185 key(Receiving = the peer, Originating =
/// us, Stream ID = that id); so it is checked as `key(secret, receiving = from,
/// originating = to, stream_id = id)`. The 2.2.2 example agrees: the request
/// `from='capulet.example' to='montague.example' id='417GAF25'` is checked with
/// `{ 'capulet.example', ' ', 'montague.example', ' ', '417GAF25' }`.
///
/// `our_stream_id` is the id the peer `from` gave our outbound stream on which a
/// `<db:result/>` for `to` → `from` is outstanding, `None` if we have no such stream. The
/// answer is `valid` only if the key checks out *and* `id` is that stream's id: a key we
/// did not ask about now is not vouched for (2.2.2 lists "the Authoritative Server
/// doesn't know anything about the StreamID" as a reason for `invalid`; 3.1). As the
/// key binds the id, this only narrows a valid key to the stream it was made for.
///
/// If `to` is not one of our domains the answer is a dialback error `<item-not-found/>`
/// with the non-local `to` still in `from` (2.2.2, 2.5), which must not close the stream.
pub fn answer_verify(
    secret: &Secret,
    is_local: impl Fn(&str) -> bool,
    from: &str,
    to: &str,
    id: &str,
    key: &str,
    our_stream_id: Option<&str>,
) -> DbElement {
    let kind = if is_local(to) {
        // Both checks always run; only the key comparison involves the secret.
        let key_ok = secret.verify(from, to, id, key);
        let stream_ok = our_stream_id == Some(id);
        if key_ok && stream_ok {
            DbKind::Valid
        } else {
            DbKind::Invalid
        }
    } else {
        DbKind::Error(StanzaErrorCondition::ItemNotFound)
    };
    DbElement::VerifyResponse {
        from: to.to_owned(),
        to: from.to_owned(),
        id: id.to_owned(),
        kind,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydrant_proto::{Limits, StreamEvent, StreamReader};

    // XEP-0185 section 3.
    const XEP185_SECRET: &[u8] = b"s3cr3tf0rd14lb4ck";
    const XEP185_KEY: &str = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643";
    // XEP-0220 section 2 ("Assumptions used in the examples"), 2.1.1 and 2.2.2.
    const CAPULET_SECRET: &[u8] = b"s3cr3tf0rd14lb4ck";
    const MONTAGUE_SECRET: &[u8] = b"d14lb4ck43v3r";
    const EX1_KEY: &str = "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3";
    const EX5_KEY: &str = "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d";

    fn s(v: &str) -> String {
        v.to_owned()
    }

    /// Reads `xml` (one element) on an s2s stream whose header binds `db`, as a peer's
    /// bytes would be read.
    fn read(xml: &[u8]) -> Element {
        let mut r = StreamReader::new(Limits::default());
        r.feed(
            b"<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' \
              xmlns:stream='http://etherx.jabber.org/streams' to='a.example' version='1.0'>",
        )
        .unwrap();
        r.feed(xml).unwrap();
        assert!(matches!(
            r.next_event().unwrap(),
            Some(StreamEvent::Open(_))
        ));
        match r.next_event().unwrap() {
            Some(StreamEvent::Stanza(el)) => el,
            other => panic!("expected an element, got {other:?}"),
        }
    }

    fn local(d: &str) -> bool {
        d == "montague.example" || d == "chat.montague.example"
    }

    #[test]
    fn xep0185_example_vector() {
        assert_eq!(
            std::str::from_utf8(&hmac_key(XEP185_SECRET)).unwrap(),
            "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc",
            "the HMAC key is hex(SHA256(secret))"
        );
        assert_eq!(
            key(
                XEP185_SECRET,
                "xmpp.example.com",
                "example.org",
                "D60000229F"
            ),
            XEP185_KEY
        );
        assert!(verify_key(
            XEP185_SECRET,
            "xmpp.example.com",
            "example.org",
            "D60000229F",
            XEP185_KEY
        ));
    }

    #[test]
    fn xep0220_example_vectors() {
        // Example 1: capulet → montague, stream id D60000229F.
        let capulet = Secret::from_bytes(CAPULET_SECRET);
        assert_eq!(
            capulet.key("montague.example", "capulet.example", "D60000229F"),
            EX1_KEY
        );
        assert_eq!(
            DbElement::result_request(
                &capulet,
                "capulet.example",
                "montague.example",
                "D60000229F"
            ),
            DbElement::ResultRequest {
                from: s("capulet.example"),
                to: s("montague.example"),
                key: s(EX1_KEY)
            }
        );
        // Example 13: montague checks capulet's verify of its own key, stream id 417GAF25.
        assert_eq!(
            key(
                MONTAGUE_SECRET,
                "capulet.example",
                "montague.example",
                "417GAF25"
            ),
            EX5_KEY
        );
    }

    #[test]
    fn key_properties() {
        let k = key(b"x", "a.example", "b.example", "id1");
        assert_eq!(k.len(), 64);
        assert!(
            k.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_eq!(
            k,
            key(b"x", "a.example", "b.example", "id1"),
            "deterministic"
        );
        assert_ne!(k, key(b"y", "a.example", "b.example", "id1"));
        assert_ne!(
            k,
            key(b"x", "b.example", "a.example", "id1"),
            "order matters"
        );
        assert_ne!(k, key(b"x", "a.example", "b.example", "id2"));
        // The separator keeps concatenations apart (XEP-0185 note 5).
        assert_ne!(
            key(b"x", "example.in", "form.example.org", "1"),
            key(b"x", "example.info", "rm.example.org", "1")
        );
        let sec = Secret::from_bytes(b"x");
        assert_eq!(sec.key("a.example", "b.example", "id1"), k);
    }

    #[test]
    fn forged_and_malformed_keys_are_rejected() {
        let sec = Secret::from_bytes(CAPULET_SECRET);
        let args = ("montague.example", "capulet.example", "D60000229F");
        assert!(sec.verify(args.0, args.1, args.2, EX1_KEY));
        assert!(
            sec.verify(args.0, args.1, args.2, &EX1_KEY.to_ascii_uppercase()),
            "hex is case-insensitive"
        );
        let mut forged = EX1_KEY.to_owned();
        forged.replace_range(63.., "4");
        assert!(!sec.verify(args.0, args.1, args.2, &forged));
        assert!(!sec.verify(args.0, args.1, args.2, &EX1_KEY[..62]));
        assert!(!sec.verify(args.0, args.1, args.2, &format!("{EX1_KEY}00")));
        assert!(!sec.verify(args.0, args.1, args.2, ""));
        assert!(!sec.verify(args.0, args.1, args.2, &"g".repeat(64)));
        // Right key, other inputs.
        assert!(!sec.verify("other.example", args.1, args.2, EX1_KEY));
        assert!(!sec.verify(args.0, "other.example", args.2, EX1_KEY));
        assert!(!sec.verify(args.1, args.0, args.2, EX1_KEY));
        assert!(!sec.verify(args.0, args.1, "D60000229G", EX1_KEY));
        // Another secret.
        assert!(!Secret::from_bytes(MONTAGUE_SECRET).verify(args.0, args.1, args.2, EX1_KEY));
    }

    #[test]
    fn secret_is_random_and_not_printed() {
        let a = Secret::random();
        let b = Secret::random();
        assert_ne!(a.key("a", "b", "c"), b.key("a", "b", "c"));
        assert!(std::ptr::eq(Secret::process(), Secret::process()));
        let printed = format!("{a:?}");
        assert_eq!(printed, "Secret(<redacted>)");
        assert!(!printed.contains(std::str::from_utf8(&a.hmac_key).unwrap()));
    }

    #[test]
    fn parses_the_xep0220_examples() {
        // Example 1, indented as in the XEP.
        let el = read(
            b"<db:result\n          from='capulet.example'\n          to='montague.example'>\n\
              \x20       b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3\n\
              \x20     </db:result>",
        );
        assert_eq!(
            parse(&el).unwrap(),
            DbElement::ResultRequest {
                from: s("capulet.example"),
                to: s("montague.example"),
                key: s(EX1_KEY)
            }
        );
        // Example 2.
        let el = read(b"<db:result from='montague.example' to='capulet.example' type='valid'/>");
        assert_eq!(
            parse(&el).unwrap(),
            DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                kind: DbKind::Valid
            }
        );
        // Example 4: dialback error.
        let el = read(
            b"<db:result from='montague.example' to='capulet.example' type='error'>\
              <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
              </error></db:result>",
        );
        assert_eq!(
            parse(&el).unwrap(),
            DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                kind: DbKind::Error(StanzaErrorCondition::ItemNotFound)
            }
        );
        // Example 5.
        let el = read(
            b"<db:verify from='capulet.example' id='417GAF25' to='montague.example'>\n\
              \x20 225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d\n</db:verify>",
        );
        assert_eq!(
            parse(&el).unwrap(),
            DbElement::VerifyRequest {
                from: s("capulet.example"),
                to: s("montague.example"),
                id: s("417GAF25"),
                key: s(EX5_KEY)
            }
        );
        // Example 7.
        let el = read(
            b"<db:verify from='montague.example' id='417GAF25' to='capulet.example' \
              type='invalid'/>",
        );
        assert_eq!(
            parse(&el).unwrap(),
            DbElement::VerifyResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                id: s("417GAF25"),
                kind: DbKind::Invalid
            }
        );
        // Another prefix for the same namespace is the same element.
        let el = read(
            b"<x:result xmlns:x='jabber:server:dialback' from='capulet.example' \
              to='montague.example' type='invalid'/>",
        );
        assert!(matches!(
            parse(&el),
            Ok(DbElement::ResultResponse {
                kind: DbKind::Invalid,
                ..
            })
        ));
    }

    fn all_kinds() -> Vec<DbElement> {
        let mut v = vec![
            DbElement::ResultRequest {
                from: s("capulet.example"),
                to: s("montague.example"),
                key: s(EX1_KEY),
            },
            DbElement::VerifyRequest {
                from: s("capulet.example"),
                to: s("montague.example"),
                id: s("417GAF25"),
                key: s(EX5_KEY),
            },
        ];
        for kind in [
            DbKind::Valid,
            DbKind::Invalid,
            DbKind::Error(StanzaErrorCondition::ItemNotFound),
            DbKind::Error(StanzaErrorCondition::RemoteServerNotFound),
            DbKind::Error(StanzaErrorCondition::RemoteServerTimeout),
            DbKind::Error(StanzaErrorCondition::NotAuthorized),
            DbKind::Error(StanzaErrorCondition::PolicyViolation),
        ] {
            v.push(DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                kind,
            });
            v.push(DbElement::VerifyResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                id: s("417GAF25"),
                kind,
            });
        }
        v
    }

    #[test]
    fn round_trips_through_element_and_wire() {
        for db in all_kinds() {
            let el = db.to_element();
            assert_eq!(el.ns(), ns::DIALBACK);
            assert_eq!(parse(&el).as_ref(), Ok(&db), "element {el}");
            // The prefixed bytes, read back by our own stream reader.
            let bytes = db.to_bytes();
            assert!(
                bytes.starts_with(b"<db:"),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
            assert_eq!(parse(&read(&bytes)).as_ref(), Ok(&db));
            // And the default-namespace form our writer would emit is read the same.
            assert_eq!(parse(&read(&el.to_bytes(ns::SERVER))).as_ref(), Ok(&db));
        }
    }

    #[test]
    fn wire_form() {
        let db = DbElement::ResultResponse {
            from: s("montague.example"),
            to: s("capulet.example"),
            kind: DbKind::Error(StanzaErrorCondition::ItemNotFound),
        };
        assert_eq!(
            String::from_utf8(db.to_bytes()).unwrap(),
            "<db:result from='montague.example' to='capulet.example' type='error'>\
             <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></db:result>"
        );
        let db = DbElement::VerifyRequest {
            from: s("capulet.example"),
            to: s("montague.example"),
            id: s("417GAF25"),
            key: s(EX5_KEY),
        };
        assert_eq!(
            String::from_utf8(db.to_bytes()).unwrap(),
            format!(
                "<db:verify from='capulet.example' to='montague.example' id='417GAF25'>\
                 {EX5_KEY}</db:verify>"
            )
        );
        let db = DbElement::ResultResponse {
            from: s("montague.example"),
            to: s("capulet.example"),
            kind: DbKind::Valid,
        };
        assert_eq!(
            db.to_bytes(),
            b"<db:result from='montague.example' to='capulet.example' type='valid'/>"
        );
        // The element form, as hydrant_proto's writer emits it.
        assert_eq!(
            db.to_element().to_bytes(ns::SERVER),
            b"<result xmlns='jabber:server:dialback' from='montague.example' \
              to='capulet.example' type='valid'/>"
        );
    }

    fn result(attrs: &[(&str, &str)], text: &str) -> Element {
        let mut el = Element::new("result", ns::DIALBACK).with_text(text);
        for (n, v) in attrs {
            el.set_attr(*n, *v);
        }
        el
    }

    #[test]
    fn addressing_errors() {
        let k = EX1_KEY;
        let cases: &[(&[(&str, &str)], DbError, StreamErrorCondition)] = &[
            (
                &[("to", "montague.example")],
                DbError::MissingAddress(Attr::From),
                StreamErrorCondition::ImproperAddressing,
            ),
            (
                &[("from", "capulet.example"), ("to", "")],
                DbError::MissingAddress(Attr::To),
                StreamErrorCondition::ImproperAddressing,
            ),
            (
                &[("from", "a@@b"), ("to", "montague.example")],
                DbError::MalformedAddress(Attr::From),
                StreamErrorCondition::ImproperAddressing,
            ),
            (
                &[("from", "capulet.example"), ("to", "a b.example")],
                DbError::MalformedAddress(Attr::To),
                StreamErrorCondition::ImproperAddressing,
            ),
            (
                &[
                    ("from", "romeo@capulet.example"),
                    ("to", "montague.example"),
                ],
                DbError::NotDomain(Attr::From),
                StreamErrorCondition::InvalidFrom,
            ),
            (
                &[("from", "capulet.example/r"), ("to", "montague.example")],
                DbError::NotDomain(Attr::From),
                StreamErrorCondition::InvalidFrom,
            ),
            (
                &[
                    ("from", "capulet.example"),
                    ("to", "juliet@montague.example"),
                ],
                DbError::NotDomain(Attr::To),
                StreamErrorCondition::HostUnknown,
            ),
        ];
        for (attrs, err, cond) in cases {
            let got = parse(&result(attrs, k)).unwrap_err();
            assert_eq!(&got, err, "{attrs:?}");
            assert_eq!(got.answer(), Answer::Stream(*cond));
        }
        // Domains are normalised.
        let el = result(
            &[("from", "Capulet.Example"), ("to", "MONTAGUE.example.")],
            k,
        );
        assert_eq!(parse(&el).unwrap().from(), "capulet.example");
        assert_eq!(parse(&el).unwrap().to(), "montague.example");
    }

    #[test]
    fn key_id_and_type_errors() {
        let ft = [("from", "capulet.example"), ("to", "montague.example")];
        assert_eq!(parse(&result(&ft, "")), Err(DbError::MissingKey));
        assert_eq!(parse(&result(&ft, " \n\t ")), Err(DbError::MissingKey));
        assert_eq!(parse(&result(&ft, "not-hex")), Err(DbError::BadKey));
        assert_eq!(parse(&result(&ft, "ab cd")), Err(DbError::BadKey));
        assert_eq!(
            parse(&result(&ft, &"a".repeat(MAX_KEY_LEN))).unwrap(),
            DbElement::ResultRequest {
                from: s("capulet.example"),
                to: s("montague.example"),
                key: "a".repeat(MAX_KEY_LEN)
            },
            "at the bound"
        );
        assert_eq!(
            parse(&result(&ft, &"a".repeat(MAX_KEY_LEN + 1))),
            Err(DbError::KeyTooLong)
        );
        assert_eq!(
            parse(&result(&ft, &"a".repeat(1 << 20))),
            Err(DbError::KeyTooLong)
        );
        assert_eq!(
            DbError::KeyTooLong.answer(),
            Answer::Stream(StreamErrorCondition::PolicyViolation)
        );
        assert_eq!(
            DbError::BadKey.answer(),
            Answer::Stream(StreamErrorCondition::BadFormat)
        );
        let mut typed = result(&ft, "");
        typed.set_attr("type", "maybe");
        assert_eq!(parse(&typed), Err(DbError::BadType));

        let verify = |id: Option<&str>| {
            let mut el = result(&ft, EX5_KEY);
            el = Element::new("verify", ns::DIALBACK)
                .with_attr("from", el.attr("from").unwrap())
                .with_attr("to", el.attr("to").unwrap())
                .with_text(EX5_KEY);
            if let Some(id) = id {
                el.set_attr("id", id);
            }
            parse(&el)
        };
        assert_eq!(verify(None), Err(DbError::MissingId));
        assert_eq!(verify(Some("")), Err(DbError::MissingId));
        assert_eq!(verify(Some("a b")), Err(DbError::BadId));
        assert_eq!(
            verify(Some(&"i".repeat(MAX_ID_LEN + 1))),
            Err(DbError::BadId)
        );
        assert!(verify(Some(&"i".repeat(MAX_ID_LEN))).is_ok());
    }

    #[test]
    fn lenient_error_responses_and_ignored_response_text() {
        let ft = [
            ("from", "montague.example"),
            ("to", "capulet.example"),
            ("type", "error"),
        ];
        // No <error/> child, or an unknown condition: undefined-condition.
        let kind = |el: &Element| match parse(el) {
            Ok(DbElement::ResultResponse { kind, .. }) => kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            kind(&result(&ft, "")),
            DbKind::Error(StanzaErrorCondition::UndefinedCondition)
        );
        let el = result(&ft, "").with_child(
            Element::new("error", ns::SERVER)
                .with_child(Element::new("remote-connection-failed", ns::STANZAS)),
        );
        assert_eq!(
            kind(&el),
            DbKind::Error(StanzaErrorCondition::UndefinedCondition)
        );
        // A response's text is not a key and is ignored.
        let el = result(
            &[
                ("from", "montague.example"),
                ("to", "capulet.example"),
                ("type", "valid"),
            ],
            "junk <>",
        );
        assert_eq!(kind(&el), DbKind::Valid);
    }

    #[test]
    fn not_dialback() {
        assert_eq!(
            parse(&Element::new("result", ns::SERVER)),
            Err(DbError::NotDialback)
        );
        assert_eq!(
            parse(&Element::new("features", ns::DIALBACK)),
            Err(DbError::NotDialback)
        );
    }

    #[test]
    fn parse_never_panics() {
        // A small exhaustive walk over attribute and content shapes.
        let addrs = [
            None,
            Some(""),
            Some("capulet.example"),
            Some("a@b"),
            Some("b/c"),
            Some("@"),
            Some("/"),
            Some("\u{0}"),
            Some("\u{1F130}.example"),
            Some("[::1]"),
            Some("xn--"),
        ];
        let types = [
            None,
            Some("valid"),
            Some("invalid"),
            Some("error"),
            Some(""),
            Some("x"),
        ];
        let texts = ["", " ", EX1_KEY, "zz", "\u{fffd}\u{fffd}"];
        for name in ["result", "verify", "other"] {
            for from in addrs {
                for to in [None, Some("montague.example"), Some("x@y")] {
                    for ty in types {
                        for id in [None, Some("1"), Some(" ")] {
                            for text in texts {
                                let mut el = Element::new(name, ns::DIALBACK).with_text(text);
                                for (n, v) in [("from", from), ("to", to), ("type", ty), ("id", id)]
                                {
                                    if let Some(v) = v {
                                        el.set_attr(n, v);
                                    }
                                }
                                el.append_child(Element::new("error", "urn:x"));
                                match parse(&el) {
                                    // Whatever parsed renders and parses back the same.
                                    Ok(db) => assert_eq!(parse(&db.to_element()), Ok(db)),
                                    Err(e) => {
                                        let _ = (e.to_string(), e.answer());
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn inbound_happy_path_and_multiplexing() {
        let mut inb = Inbound::new();
        let v = inb
            .on_result_request("capulet.example", "montague.example", local)
            .unwrap();
        assert_eq!(
            v,
            Verify {
                from: s("capulet.example"),
                to: s("montague.example")
            }
        );
        assert_eq!(
            v.request("417GAF25", EX5_KEY),
            DbElement::VerifyRequest {
                from: s("montague.example"),
                to: s("capulet.example"),
                id: s("417GAF25"),
                key: s(EX5_KEY)
            },
            "the verify request has Target in from, Sender in to (2.1.2)"
        );
        assert!(!inb.is_authorized("capulet.example", "montague.example"));
        assert_eq!(
            inb.pending().collect::<Vec<_>>(),
            [("capulet.example", "montague.example")]
        );
        assert_eq!(
            inb.on_verified("capulet.example", "montague.example", true),
            Some(DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                kind: DbKind::Valid
            })
        );
        assert!(inb.is_authorized("capulet.example", "montague.example"));
        assert!(
            !inb.is_authorized("montague.example", "capulet.example"),
            "one direction"
        );
        assert_eq!(inb.pending().count(), 0);

        // Sender and target multiplexing (2.6) on the same stream.
        inb.on_result_request("rooms.capulet.example", "montague.example", local)
            .unwrap();
        inb.on_result_request("capulet.example", "chat.montague.example", local)
            .unwrap();
        assert!(!inb.is_authorized("rooms.capulet.example", "montague.example"));
        inb.on_verified("rooms.capulet.example", "montague.example", true)
            .unwrap();
        assert!(inb.is_authorized("rooms.capulet.example", "montague.example"));
        assert!(!inb.is_authorized("capulet.example", "chat.montague.example"));
        assert!(
            !inb.is_authorized("rooms.capulet.example", "chat.montague.example"),
            "pairs, not domains, are authorized"
        );
        assert_eq!(inb.len(), 3);
    }

    #[test]
    fn inbound_refusals() {
        let mut inb = Inbound::new();
        // Not one of our domains: dialback error item-not-found, non-local domain in from.
        let e = inb
            .on_result_request("capulet.example", "elsewhere.example", local)
            .unwrap_err();
        assert_eq!(
            e.answer(),
            Answer::Dialback(DbElement::ResultResponse {
                from: s("elsewhere.example"),
                to: s("capulet.example"),
                kind: DbKind::Error(StanzaErrorCondition::ItemNotFound)
            })
        );
        assert!(inb.is_empty(), "nothing stored for a refused pair");

        // Duplicate while pending: dropped.
        inb.on_result_request("capulet.example", "montague.example", local)
            .unwrap();
        let e = inb
            .on_result_request("capulet.example", "montague.example", local)
            .unwrap_err();
        assert!(matches!(e, DbError::AlreadyPending { .. }));
        assert_eq!(e.answer(), Answer::Nothing);

        // Duplicate once authorized: valid again, no new verification.
        inb.on_verified("capulet.example", "montague.example", true);
        let e = inb
            .on_result_request("capulet.example", "montague.example", local)
            .unwrap_err();
        assert_eq!(
            e.answer(),
            Answer::Dialback(DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                kind: DbKind::Valid
            })
        );
    }

    #[test]
    fn inbound_invalid_and_failed() {
        let mut inb = Inbound::new();
        inb.on_result_request("evil.example", "montague.example", local)
            .unwrap();
        assert_eq!(
            inb.on_verified("evil.example", "montague.example", false),
            Some(DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("evil.example"),
                kind: DbKind::Invalid
            })
        );
        assert!(!inb.is_authorized("evil.example", "montague.example"));
        assert_eq!(
            inb.state("evil.example", "montague.example"),
            Some(PairState::Rejected)
        );
        // A late second answer (e.g. a forged valid) changes nothing.
        assert_eq!(
            inb.on_verified("evil.example", "montague.example", true),
            None
        );
        assert!(!inb.is_authorized("evil.example", "montague.example"));
        // And no retry on this stream.
        let e = inb
            .on_result_request("evil.example", "montague.example", local)
            .unwrap_err();
        assert_eq!(
            e.answer(),
            Answer::Stream(StreamErrorCondition::NotAuthorized)
        );

        // A verification that could not be done: dialback error, retry allowed.
        inb.on_result_request("capulet.example", "montague.example", local)
            .unwrap();
        assert_eq!(
            inb.on_verify_failed(
                "capulet.example",
                "montague.example",
                StanzaErrorCondition::RemoteServerTimeout
            ),
            Some(DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                kind: DbKind::Error(StanzaErrorCondition::RemoteServerTimeout)
            })
        );
        assert_eq!(
            inb.state("capulet.example", "montague.example"),
            Some(PairState::Failed)
        );
        assert!(
            inb.on_result_request("capulet.example", "montague.example", local)
                .is_ok()
        );
        assert_eq!(inb.len(), 2, "the retry reuses the entry");
    }

    #[test]
    fn inbound_unsolicited_answers_are_dropped() {
        let mut inb = Inbound::new();
        // Never asked (XEP-0220 3.1).
        assert_eq!(
            inb.on_verified("capulet.example", "montague.example", true),
            None
        );
        assert_eq!(
            inb.on_verify_failed(
                "capulet.example",
                "montague.example",
                StanzaErrorCondition::RemoteServerNotFound
            ),
            None
        );
        assert!(!inb.is_authorized("capulet.example", "montague.example"));
        assert!(inb.is_empty());
        // Asked for another pair: the answer for this one is still unsolicited.
        inb.on_result_request("capulet.example", "montague.example", local)
            .unwrap();
        assert_eq!(
            inb.on_verified("capulet.example", "chat.montague.example", true),
            None
        );
        assert_eq!(
            inb.on_verified("montague.example", "capulet.example", true),
            None
        );
        assert!(!inb.is_authorized("capulet.example", "chat.montague.example"));
    }

    #[test]
    fn inbound_pairs_are_bounded() {
        let mut inb = Inbound::new();
        let all_local = |_: &str| true;
        for i in 0..MAX_PAIRS {
            inb.on_result_request(&format!("s{i}.example"), "montague.example", all_local)
                .unwrap();
        }
        assert_eq!(inb.len(), MAX_PAIRS);
        let e = inb
            .on_result_request("one-more.example", "montague.example", all_local)
            .unwrap_err();
        assert_eq!(
            e.answer(),
            Answer::Dialback(DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("one-more.example"),
                kind: DbKind::Error(StanzaErrorCondition::PolicyViolation)
            })
        );
        assert_eq!(inb.len(), MAX_PAIRS, "the refused pair is not stored");
        // Existing pairs still work at the bound.
        assert!(
            inb.on_verified("s0.example", "montague.example", true)
                .is_some()
        );
        assert!(inb.is_authorized("s0.example", "montague.example"));
    }

    #[test]
    fn authoritative_answers_per_xep0220_2_2_2() {
        // montague.example is authoritative; capulet.example is the Receiving Server
        // verifying the key montague sent on the stream capulet gave id 417GAF25.
        let montague = Secret::from_bytes(MONTAGUE_SECRET);
        let answer = |from: &str, to: &str, id: &str, key: &str, ours: Option<&str>| {
            answer_verify(&montague, local, from, to, id, key, ours)
        };
        let resp = |kind| DbElement::VerifyResponse {
            from: s("montague.example"),
            to: s("capulet.example"),
            id: s("417GAF25"),
            kind,
        };
        let ok = answer(
            "capulet.example",
            "montague.example",
            "417GAF25",
            EX5_KEY,
            Some("417GAF25"),
        );
        assert_eq!(ok, resp(DbKind::Valid), "Example 15 (= Example 6)");
        assert_eq!(
            String::from_utf8(ok.to_bytes()).unwrap(),
            "<db:verify from='montague.example' to='capulet.example' id='417GAF25' \
             type='valid'/>"
        );
        // Forged key.
        let mut forged = EX5_KEY.to_owned();
        forged.replace_range(..1, "3");
        assert_eq!(
            answer(
                "capulet.example",
                "montague.example",
                "417GAF25",
                &forged,
                Some("417GAF25")
            ),
            resp(DbKind::Invalid)
        );
        // Right key, but we have no outbound stream with that id (unsolicited, 3.1).
        assert_eq!(
            answer(
                "capulet.example",
                "montague.example",
                "417GAF25",
                EX5_KEY,
                None
            ),
            resp(DbKind::Invalid)
        );
        assert_eq!(
            answer(
                "capulet.example",
                "montague.example",
                "417GAF25",
                EX5_KEY,
                Some("OTHER")
            ),
            resp(DbKind::Invalid)
        );
        // The key is bound to the receiving domain: another server cannot replay it.
        assert_eq!(
            answer(
                "thief.example",
                "montague.example",
                "417GAF25",
                EX5_KEY,
                Some("417GAF25")
            )
            .to_element()
            .attr("type"),
            Some("invalid")
        );
        // Swapped roles (the key checked with receiving/originating reversed) fail.
        let swapped = key(
            MONTAGUE_SECRET,
            "montague.example",
            "capulet.example",
            "417GAF25",
        );
        assert_eq!(
            answer(
                "capulet.example",
                "montague.example",
                "417GAF25",
                &swapped,
                Some("417GAF25")
            ),
            resp(DbKind::Invalid)
        );
        // Not our domain: dialback error, that domain in from (Example 8).
        assert_eq!(
            answer(
                "capulet.example",
                "elsewhere.example",
                "417GAF25",
                EX5_KEY,
                Some("417GAF25")
            ),
            DbElement::VerifyResponse {
                from: s("elsewhere.example"),
                to: s("capulet.example"),
                id: s("417GAF25"),
                kind: DbKind::Error(StanzaErrorCondition::ItemNotFound)
            }
        );
    }

    #[test]
    fn end_to_end_between_two_secrets() {
        // capulet (initiating) → montague (receiving), capulet authoritative.
        let capulet = Secret::random();
        let stream_id = "D60000229F"; // montague's id for capulet's stream
        let step1 =
            DbElement::result_request(&capulet, "capulet.example", "montague.example", stream_id);
        let DbElement::ResultRequest { from, to, key } = parse(&read(&step1.to_bytes())).unwrap()
        else {
            panic!("a request")
        };
        let mut inb = Inbound::new();
        let v = inb.on_result_request(&from, &to, local).unwrap();
        let step2 = v.request(stream_id, &key);
        let DbElement::VerifyRequest { from, to, id, key } =
            parse(&read(&step2.to_bytes())).unwrap()
        else {
            panic!("a verify request")
        };
        let step3 = answer_verify(
            &capulet,
            |d| d == "capulet.example",
            &from,
            &to,
            &id,
            &key,
            Some(stream_id),
        );
        let DbElement::VerifyResponse { from, to, kind, .. } =
            parse(&read(&step3.to_bytes())).unwrap()
        else {
            panic!("a verify response")
        };
        assert_eq!(kind, DbKind::Valid);
        // The answer's orientation (from = Sender, to = Target) is the pair's.
        let step4 = inb.on_verified(&from, &to, kind == DbKind::Valid).unwrap();
        assert_eq!(
            step4,
            DbElement::ResultResponse {
                from: s("montague.example"),
                to: s("capulet.example"),
                kind: DbKind::Valid
            }
        );
        assert!(inb.is_authorized("capulet.example", "montague.example"));

        // A spoofer without capulet's secret gets invalid.
        let spoof = DbElement::result_request(
            &Secret::random(),
            "capulet.example",
            "chat.montague.example",
            stream_id,
        );
        let DbElement::ResultRequest { from, to, key } = spoof else {
            unreachable!()
        };
        inb.on_result_request(&from, &to, local).unwrap();
        let ans = answer_verify(
            &capulet,
            |d| d == "capulet.example",
            &to,
            &from,
            stream_id,
            &key,
            Some(stream_id),
        );
        assert_eq!(ans.to_element().attr("type"), Some("invalid"));
        assert_eq!(
            inb.on_verified(&from, &to, false)
                .unwrap()
                .to_element()
                .attr("type"),
            Some("invalid")
        );
        assert!(!inb.is_authorized("capulet.example", "chat.montague.example"));
    }
}
