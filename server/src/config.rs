//! The TOML configuration: every key optional, unknown keys and bad values rejected with
//! the key and line named (serde with `deny_unknown_fields`; validating types such as
//! [`Domain`] and `NonZero*` make `toml` point at the offending line).

use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// The development configuration embedded in the binary (`hydrant serve --dev`).
pub const DEV_CONFIG: &str = include_str!("../../deploy/dev.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The XMPP domain served (the part after '@' in users' JIDs).
    pub domain: Domain,
    /// Where the database and the generated certificate live.
    pub data_dir: PathBuf,
    /// Log filter in `tracing` syntax, e.g. "info" or "hydrant_c2s=debug,info".
    pub log: String,
    /// "human" (colours only when the output is a terminal) or "json" (one object per
    /// line, for log shippers).
    pub log_format: LogFormat,
    pub tls: TlsSection,
    pub c2s: C2sSection,
    pub registration: RegistrationSection,
    pub offline: OfflineSection,
    pub roster: RosterSection,
    pub blocking: BlockingSection,
    pub private: PrivateSection,
    pub vcard: VcardSection,
    pub presence: PresenceSection,
    pub pubsub: PubsubSection,
    pub metrics: MetricsSection,
    pub storage: StorageSection,
    pub s2s: S2sSection,
    pub multicast: MulticastSection,
    pub admin: AdminSection,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            domain: Domain("localhost".into()),
            data_dir: PathBuf::from("hydrant-data"),
            log: "info".into(),
            log_format: LogFormat::Human,
            tls: TlsSection::default(),
            c2s: C2sSection::default(),
            registration: RegistrationSection::default(),
            offline: OfflineSection::default(),
            roster: RosterSection::default(),
            blocking: BlockingSection::default(),
            private: PrivateSection::default(),
            vcard: VcardSection::default(),
            presence: PresenceSection::default(),
            pubsub: PubsubSection::default(),
            metrics: MetricsSection::default(),
            storage: StorageSection::default(),
            s2s: S2sSection::default(),
            multicast: MulticastSection::default(),
            admin: AdminSection::default(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain. Without `cert` and `key`, a self-signed certificate for the
    /// domain is generated in `data_dir` on first start.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct C2sSection {
    /// Plain TCP listeners offering STARTTLS (RFC 6120 5).
    pub listen: Vec<SocketAddr>,
    /// Direct TLS listeners (XEP-0368).
    pub direct_tls_listen: Vec<SocketAddr>,
    /// Refuse authentication until STARTTLS has completed.
    pub require_tls: bool,
    /// Largest stanza accepted, in bytes (RFC 6120 13.12: at least 10,000).
    pub max_stanza_bytes: NonZeroUsize,
    /// Deepest element nesting accepted inside a stanza.
    pub max_depth: NonZeroUsize,
    /// Most attributes accepted on one element.
    pub max_attributes: NonZeroUsize,
    /// Largest stream header (`<stream:stream ...>`), in bytes.
    pub max_header_bytes: NonZeroUsize,
    /// Longest namespace URI a declaration may bind, in bytes.
    pub max_namespace_bytes: NonZeroUsize,
    /// Longest attribute value, in bytes.
    pub max_attribute_value_bytes: NonZeroUsize,
    /// Largest stanza accepted before the client authenticated (RFC 6120 13.12: at least
    /// 10,000).
    pub preauth_max_stanza_bytes: NonZeroUsize,
    /// Seconds allowed for each stream header before authentication.
    pub header_timeout_secs: NonZeroU64,
    /// Milliseconds the server keeps reading (and discarding) after it closed a stream,
    /// so the peer reads the error instead of a TCP reset; 0 closes at once.
    pub linger_ms: u64,
    /// Connections from one address (IPv4, or IPv6 /64) not yet authenticated.
    pub max_unauthenticated_per_ip: NonZeroU32,
    /// New connections per second from one address, sustained.
    pub connections_per_ip_per_sec: NonZeroU32,
    /// New connections from one address in a burst.
    pub connection_burst_per_ip: NonZeroU32,
    /// Seconds from TCP accept to a bound resource.
    pub auth_timeout_secs: NonZeroU64,
    /// Seconds of client silence before the server sends an XEP-0199 ping.
    pub ping_interval_secs: NonZeroU64,
    /// Seconds to wait for any traffic after that ping before closing the stream.
    pub ping_timeout_secs: NonZeroU64,
    /// Seconds without output after which a whitespace keepalive is sent.
    pub whitespace_keepalive_secs: NonZeroU64,
    /// Per-connection outbound queue limit in bytes; past it the stream is closed with
    /// `<policy-violation/>` (slow-consumer policy).
    pub outbound_queue_bytes: NonZeroUsize,
    /// Connections held at once over all c2s listeners (mind the process fd limit).
    pub max_connections: NonZeroUsize,
    /// Offer XEP-0138 zlib stream compression to authenticated clients (README:
    /// "Compression" for what it costs and the security note).
    pub compression: bool,
    /// Offer XEP-0198 stream management (acks and resumption) to bound sessions.
    pub stream_management: bool,
    /// Seconds a stream-managed session whose connection broke waits for its client to
    /// resume it (it stays online meanwhile; what is routed to it is queued, within
    /// `outbound_queue_bytes`). 0: acks only, no resumption.
    pub sm_resume_timeout_secs: u64,
    /// Bytes of sent stanzas a stream-managed session keeps until the client
    /// acknowledges them; past it the client is a slow consumer (`<policy-violation/>`).
    pub sm_max_unacked_bytes: NonZeroUsize,
    /// The server asks for an acknowledgement (`<r/>`) after this many stanzas...
    pub sm_request_every: NonZeroU32,
    /// ...or after this many milliseconds without output while stanzas are unasked.
    pub sm_request_after_ms: NonZeroU64,
    /// Offer XEP-0352 client state indication: while a client says it is inactive,
    /// pubsub notifications, presence and messages without a body are held and written
    /// in batches (messages with a body, iqs and subscription requests go at once).
    pub csi: bool,
    /// An inactive client's batch goes out once this many bytes are held...
    pub csi_max_held_bytes: NonZeroUsize,
    /// ...or once the oldest held stanza waited this many seconds.
    pub csi_max_delay_secs: NonZeroU64,
    /// Failed SASL attempts on one stream before it is closed (RFC 6120 6.4.5: 2 to 5).
    pub max_auth_failures: NonZeroU32,
    /// Sessions (bound resources) one account may have at once; another bind gets
    /// `<resource-constraint/>` (RFC 6120 7.6.2.1). Rebinding a resource in use replaces
    /// that session and is not one more.
    pub max_sessions_per_account: NonZeroUsize,
    /// Cap on the growing delay imposed on repeated failed logins from one address.
    pub auth_failure_max_delay_secs: u64,
    /// Failed logins per client network (IPv4 address, IPv6 /64) per hour, as a burst
    /// refilled evenly; past it logins are refused unchecked. 0: unlimited.
    pub auth_failures_per_ip_per_hour: u32,
    /// Failed logins per account per hour from all networks together. 0: unlimited.
    pub auth_failures_per_account_per_hour: u32,
}

impl Default for C2sSection {
    fn default() -> Self {
        C2sSection {
            listen: vec!["0.0.0.0:5222".parse().expect("valid")],
            direct_tls_listen: vec!["0.0.0.0:5223".parse().expect("valid")],
            require_tls: true,
            max_stanza_bytes: nz(262_144),
            max_depth: nz(32),
            max_attributes: nz(64),
            max_header_bytes: nz(4096),
            max_namespace_bytes: nz(1024),
            max_attribute_value_bytes: nz(4096),
            preauth_max_stanza_bytes: nz(10_000),
            header_timeout_secs: nz64(10),
            linger_ms: 2000,
            max_unauthenticated_per_ip: nz32(64),
            connections_per_ip_per_sec: nz32(20),
            connection_burst_per_ip: nz32(100),
            auth_timeout_secs: nz64(60),
            ping_interval_secs: nz64(300),
            ping_timeout_secs: nz64(60),
            whitespace_keepalive_secs: nz64(60),
            outbound_queue_bytes: nz(1 << 20),
            max_connections: nz(19_000),
            compression: false,
            stream_management: true,
            sm_resume_timeout_secs: 300,
            sm_max_unacked_bytes: nz(1 << 20),
            sm_request_every: nz32(16),
            sm_request_after_ms: nz64(2000),
            csi: true,
            csi_max_held_bytes: nz(1 << 20),
            csi_max_delay_secs: nz64(60),
            max_auth_failures: NonZeroU32::new(3).expect("non-zero"),
            max_sessions_per_account: nz(10),
            auth_failure_max_delay_secs: 10,
            auth_failures_per_ip_per_hour: 30,
            auth_failures_per_account_per_hour: 30,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationSection {
    /// XEP-0077 in-band registration of new accounts (off by default).
    pub enabled: bool,
    /// Shortest password accepted at registration and password change.
    pub min_password_length: usize,
    /// Registrations per client network (IPv4 address, IPv6 /64) per hour, as a burst
    /// refilled evenly; past it `<resource-constraint/>`. 0: unlimited.
    pub per_ip_per_hour: u32,
    /// Registration requests on one stream before it is closed with `<policy-violation/>`.
    pub max_attempts_per_stream: NonZeroU32,
    /// Accounts the server holds at most; in-band registration past it gets
    /// `<not-allowed/>`. A cap on strangers, not on the operator: `hydrant user add`
    /// is not limited by it. 0: unlimited.
    pub max_accounts: u64,
}

impl Default for RegistrationSection {
    fn default() -> Self {
        RegistrationSection {
            enabled: false,
            min_password_length: 4,
            per_ip_per_hour: 5,
            max_attempts_per_stream: NonZeroU32::new(5).expect("non-zero"),
            max_accounts: 0,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OfflineSection {
    /// Messages kept per user while they are offline; past it senders get
    /// `<service-unavailable/>` (RFC 6121 8.5.2.1.1).
    pub max_messages_per_user: usize,
}

impl Default for OfflineSection {
    fn default() -> Self {
        OfflineSection {
            max_messages_per_user: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RosterSection {
    /// Items one roster may hold; adding more is refused with `<resource-constraint/>`.
    pub max_items: usize,
    /// Groups one roster item may be in; a roster set with more gets
    /// `<not-acceptable/>`.
    pub max_groups_per_item: NonZeroUsize,
    /// Longest roster item name and group name, in bytes; longer gets
    /// `<not-acceptable/>` (RFC 6121 2.3.3 allows a server-configured limit).
    pub max_name_bytes: NonZeroUsize,
    /// Inbound presence subscription requests stored for one account, awaiting its
    /// answer; past it further requests from new contacts are not stored and get
    /// `<resource-constraint/>` back.
    pub max_pending_subscriptions: usize,
}

impl Default for RosterSection {
    fn default() -> Self {
        RosterSection {
            max_items: 2000,
            max_groups_per_item: nz(64),
            max_name_bytes: nz(1024),
            max_pending_subscriptions: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlockingSection {
    /// JIDs one account's XEP-0191 blocklist may hold; a block past it is refused with
    /// `<resource-constraint/>` and blocks nothing.
    pub max_items: usize,
}

impl Default for BlockingSection {
    fn default() -> Self {
        BlockingSection { max_items: 1000 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivateSection {
    /// Bytes of XEP-0049 private XML one account may keep, all namespaces together; a
    /// set that would pass it is refused with `<resource-constraint/>`.
    pub max_bytes_per_account: NonZeroUsize,
    /// Namespaces one account may keep private XML under; a set that would pass it is
    /// refused with `<resource-constraint/>`.
    pub max_namespaces_per_account: NonZeroUsize,
}

impl Default for PrivateSection {
    fn default() -> Self {
        PrivateSection {
            // Bookmarks of a few hundred rooms are tens of KiB; client preferences less.
            max_bytes_per_account: nz(1024 * 1024),
            max_namespaces_per_account: nz(64),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VcardSection {
    /// Largest XEP-0054 vCard an account may store, in bytes of XML, its base64 PHOTO
    /// included; a larger one is refused with `<not-acceptable/>`.
    pub max_bytes: NonZeroUsize,
}

impl Default for VcardSection {
    fn default() -> Self {
        VcardSection {
            // A 200x200 PNG avatar (what desktop clients upload) base64-encoded, with room
            // for the text fields.
            max_bytes: nz(128 * 1024),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PresenceSection {
    /// Distinct JIDs one session may send directed presence to (each is owed an
    /// unavailable presence later, so the server remembers them); past it the directed
    /// presence is refused with `<resource-constraint/>`.
    pub max_directed_per_session: usize,
}

impl Default for PresenceSection {
    fn default() -> Self {
        PresenceSection {
            max_directed_per_session: 1000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PubsubSection {
    /// Addresses of pubsub services (XEP-0060); empty: `pubsub.<domain>`. Each must be a
    /// subdomain the certificate covers for federation.
    pub services: Vec<Domain>,
    /// Who may create nodes on those services: "local" (accounts of this domain),
    /// "anyone", or "admins".
    pub create: CreateWho,
    /// Bare JIDs allowed everything on every node (and node creation when `create` is
    /// "admins").
    pub admins: Vec<String>,
    /// Most items one node keeps; `max_items = max` means this (at least 1).
    pub max_items_cap: NonZeroU32,
    /// Largest item payload in bytes; larger publishes get `<not-acceptable/>` with
    /// `<payload-too-big/>`.
    pub max_payload_bytes: NonZeroUsize,
    /// Most items in one items-retrieval reply; more are paged with RSM. Also the most
    /// distinct ItemIDs one retrieval by id may name (more: `<policy-violation/>`).
    pub max_page_items: NonZeroU32,
    /// Most nodes one account may have created on a pubsub service (on its PEP service:
    /// its own nodes); more get `<not-allowed/>`. Admins are exempt.
    pub max_nodes_per_account: usize,
    /// Most subscriptions one account (all of its resources together) may hold on one
    /// node; more get `<policy-violation/>` + `<too-many-subscriptions/>`.
    pub max_subscriptions_per_account: NonZeroUsize,
    /// Longest node configuration text field in bytes (title, description, type; the
    /// allowed roster groups together); longer gets `<not-acceptable/>`.
    pub max_config_text_bytes: NonZeroUsize,
    /// Personal eventing (XEP-0163) on every account.
    pub pep: bool,
    /// Bytes the server-wide cache of verified entity capabilities (XEP-0115: which
    /// PEP nodes a client version wants, +notify) may hold; least recently used
    /// entries go first. 0 caches nothing (every session's caps are then asked).
    pub caps_cache_bytes: usize,
    /// Publisher pacing: after a publish, when more than half of a sample of its local
    /// recipients still have more than this many bytes queued (the server as a whole is
    /// behind, not one slow subscriber), the publisher's next stanza waits until they
    /// have drained below it, at most `pace_max_wait_ms`. 0 turns pacing off.
    pub pace_queued_bytes: usize,
    /// Longest one publish is held back by pacing, in milliseconds.
    pub pace_max_wait_ms: u64,
    /// Bytes of replies to pubsub and MAM requests (items pages, archive pages) one client
    /// network (IPv4 address, IPv6 /64) gets per second; past its burst, its next request
    /// waits until the debt is paid. Bounds what a flood of expensive reads costs, over
    /// any number of sessions. 0: unlimited.
    pub read_bytes_per_ip_per_sec: u64,
    /// The burst of `read_bytes_per_ip_per_sec`.
    pub read_burst_bytes_per_ip: u64,
    /// Items and archive (MAM) requests handled at once, server-wide; more wait their
    /// turn. Bounds the memory of pages being read and the CPU they take beside the
    /// fan-out. 0: half the CPU cores, at least one.
    pub max_concurrent_reads: usize,
    /// Other servers' resources tracked per account for PEP +notify (their caps); more
    /// are not sent implicit notifications until one goes away (0: none tracked).
    pub max_remote_notify_resources: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CreateWho {
    Local,
    Anyone,
    Admins,
}

impl Default for PubsubSection {
    fn default() -> Self {
        PubsubSection {
            services: Vec::new(),
            create: CreateWho::Local,
            admins: Vec::new(),
            max_items_cap: NonZeroU32::new(10_000).expect("non-zero"),
            max_payload_bytes: nz(262_144),
            max_page_items: NonZeroU32::new(500).expect("non-zero"),
            max_nodes_per_account: 1_000,
            max_subscriptions_per_account: nz(16),
            max_config_text_bytes: nz(1_024),
            pep: true,
            caps_cache_bytes: 4 * 1024 * 1024,
            pace_queued_bytes: 65_536,
            pace_max_wait_ms: 250,
            read_bytes_per_ip_per_sec: 1024 * 1024,
            read_burst_bytes_per_ip: 4 * 1024 * 1024,
            max_concurrent_reads: 0,
            max_remote_notify_resources: 1000,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve Prometheus metrics over HTTP on this address (e.g. "127.0.0.1:9464");
    /// unset: no metrics listener.
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// SQLite's own page cache per database connection (there are three), in KiB. The
    /// kernel caches the file as well, so a small cache costs little speed; SQLite's
    /// default (2 MiB each) would be counted in hydrant's resident memory.
    pub page_cache_kib: u32,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            page_cache_kib: hydrant_storage::DEFAULT_PAGE_CACHE_KIB,
        }
    }
}

/// XEP-0033 multicast: this server as the multicast service of its domain, and its use
/// toward other servers that advertise one (one stanza per `chunk` remote subscribers of a
/// notification instead of one per subscriber).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MulticastSection {
    /// Accept (and advertise) multicast stanzas, and send notifications to other servers
    /// as multicast when they advertise it.
    pub enabled: bool,
    /// Most addresses one multicast stanza may carry; beyond, it is refused with
    /// `<policy-violation/>` (each address is one delivery: this bounds the work one
    /// stanza can ask for).
    pub max_addresses: NonZeroUsize,
    /// Addresses per multicast stanza this server sends (keep it at or below the peers'
    /// `max_addresses`).
    pub chunk: NonZeroUsize,
    /// Seconds another server's answer (multicast or not) is remembered (XEP-0033 2.3:
    /// at most a day).
    pub cache_secs: NonZeroU64,
}

impl Default for MulticastSection {
    fn default() -> Self {
        MulticastSection {
            enabled: true,
            max_addresses: nz(1000),
            chunk: nz(250),
            cache_secs: nz64(3600),
        }
    }
}

/// Federation (RFC 6120 server-to-server, XEP-0220 dialback, XEP-0368).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S2sSection {
    /// Federate at all: off, every stanza for another domain is answered with
    /// `<remote-server-not-found/>` and nothing listens for peers.
    pub enabled: bool,
    /// Listeners for peer servers (STARTTLS).
    pub listen: Vec<SocketAddr>,
    /// Direct TLS listeners for peer servers (XEP-0368; published as
    /// `_xmpps-server._tcp` SRV records).
    pub direct_tls_listen: Vec<SocketAddr>,
    /// Streams must be encrypted (STARTTLS) in both directions.
    pub require_tls: bool,
    /// Authenticate peers whose certificate does not verify with Server Dialback
    /// (XEP-0220). Off: such peers are refused.
    pub allow_dialback: bool,
    /// PEM file of extra certificate authorities trusted for peers' certificates, besides
    /// the system's.
    pub ca_file: Option<PathBuf>,
    /// DNS server for finding peers (e.g. "127.0.0.53:53" for split DNS); unset: the
    /// system's resolv.conf.
    pub resolver: Option<SocketAddr>,
    /// Static targets per domain, bypassing DNS: `"example.org" = ["10.0.0.5:5269"]`.
    pub overrides: std::collections::BTreeMap<String, Vec<String>>,
    /// Seconds per TCP connection attempt.
    pub connect_timeout_secs: NonZeroU64,
    /// Seconds from the first attempt to an authenticated stream (DNS, TLS, dialback).
    pub negotiate_timeout_secs: NonZeroU64,
    /// Seconds stanzas for an unreachable peer wait, across retries, before they are
    /// bounced with `<remote-server-timeout/>`.
    pub give_up_after_secs: NonZeroU64,
    /// Seconds without traffic after which a stream is closed.
    pub idle_timeout_secs: NonZeroU64,
    /// Bytes queued per peer; beyond it stanzas are refused with `<resource-constraint/>`.
    pub queue_bytes: NonZeroUsize,
    /// Inbound s2s connections at once.
    pub max_inbound: NonZeroUsize,
    /// Largest stanza accepted from a peer, in bytes.
    pub max_stanza_bytes: NonZeroUsize,
    /// Remote domains with a stream or stanzas waiting, at once.
    pub max_peers: NonZeroUsize,
    /// Dialback verifications (outbound connections) at once.
    pub max_verifications: NonZeroUsize,
    /// Inbound connections from one peer address (IPv4, IPv6 /64) not yet authenticated.
    pub max_unauthenticated_per_ip: NonZeroU32,
    /// New inbound connections per second from one address, sustained.
    pub connections_per_ip_per_sec: NonZeroU32,
    /// New inbound connections from one address in a burst.
    pub connection_burst_per_ip: NonZeroU32,
    /// Domains federated with, if not empty (subdomains included); others are refused.
    pub allow: Vec<Domain>,
    /// Domains never federated with (subdomains included).
    pub deny: Vec<Domain>,
    /// Write pacing per outbound stream, bytes per second (0: off).
    pub write_bytes_per_sec: u64,
    /// Per-domain write pacing, overriding `write_bytes_per_sec`: `"example.org" = 30000`.
    pub write_rate: std::collections::BTreeMap<String, u64>,
    /// XEP-0138 zlib with peers that offer or accept it (README, "Compression").
    pub compression: bool,
}

impl Default for S2sSection {
    fn default() -> Self {
        S2sSection {
            enabled: true,
            listen: vec!["0.0.0.0:5269".parse().expect("valid")],
            direct_tls_listen: Vec::new(),
            require_tls: true,
            allow_dialback: true,
            ca_file: None,
            resolver: None,
            overrides: std::collections::BTreeMap::new(),
            connect_timeout_secs: nz64(10),
            negotiate_timeout_secs: nz64(30),
            give_up_after_secs: nz64(60),
            idle_timeout_secs: nz64(600),
            queue_bytes: nz(16 << 20),
            max_inbound: nz(1000),
            max_stanza_bytes: nz(262_144),
            max_peers: nz(10_000),
            max_verifications: nz(64),
            max_unauthenticated_per_ip: nz32(16),
            connections_per_ip_per_sec: nz32(5),
            connection_burst_per_ip: nz32(20),
            allow: Vec::new(),
            deny: Vec::new(),
            write_bytes_per_sec: 0,
            write_rate: std::collections::BTreeMap::new(),
            compression: false,
        }
    }
}

fn nz(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).expect("non-zero default")
}

fn nz32(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("non-zero default")
}

fn nz64(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).expect("non-zero default")
}

/// A domain validated and normalised as an RFC 7622 domainpart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain(pub String);

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        match jid::BareJid::new(&raw) {
            Ok(j) if j.node().is_none() => Ok(Domain(j.domain().as_str().to_owned())),
            _ => Err(serde::de::Error::custom(format!(
                "`{raw}` is not a valid XMPP domain"
            ))),
        }
    }
}

/// A configuration error, with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Config {
    /// Parses TOML text; `origin` names it in messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate().map_err(|message| ConfigError::Invalid {
            path: origin.to_owned(),
            message,
        })?;
        Ok(cfg)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Checks that involve several keys.
    fn validate(&self) -> Result<(), String> {
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => return Err("[tls] cert is set but [tls] key is not".into()),
            (None, Some(_)) => return Err("[tls] key is set but [tls] cert is not".into()),
            _ => {}
        }
        if self.c2s.max_stanza_bytes.get() < 10_000 {
            // RFC 6120 13.12: servers MUST accept stanzas of at least 10,000 bytes.
            return Err("[c2s] max_stanza_bytes must be at least 10000 (RFC 6120 13.12)".into());
        }
        if self.c2s.preauth_max_stanza_bytes.get() < 10_000 {
            return Err(
                "[c2s] preauth_max_stanza_bytes must be at least 10000 (RFC 6120 13.12)".into(),
            );
        }
        if self.c2s.listen.is_empty() && self.c2s.direct_tls_listen.is_empty() {
            return Err("[c2s] listen and direct_tls_listen are both empty".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        Config::parse(s, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.domain.0, "localhost");
        assert!(c.c2s.require_tls);
        assert!(!c.registration.enabled);
    }

    #[test]
    fn dev_config_parses() {
        let c = parse(DEV_CONFIG).unwrap();
        assert!(c.registration.enabled);
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = parse("domain = \"example.org\"\n\n[c2s]\nlisten_typo = []\n").unwrap_err();
        assert!(e.contains("listen_typo"), "{e}");
        assert!(e.contains("line 4"), "{e}");
    }

    #[test]
    fn bad_value_names_line() {
        let e = parse("[c2s]\nmax_stanza_bytes = 0\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = parse("domain = \"not a domain@\"\n").unwrap_err();
        assert!(
            e.contains("line 1") && e.contains("not a valid XMPP domain"),
            "{e}"
        );
        let e = parse("[c2s]\nlisten = [\"nonsense\"]\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn private_and_vcard_limits() {
        let c = parse("").unwrap();
        assert_eq!(c.private.max_bytes_per_account.get(), 1024 * 1024);
        assert_eq!(c.private.max_namespaces_per_account.get(), 64);
        assert_eq!(c.vcard.max_bytes.get(), 128 * 1024);
        let c = parse("[private]\nmax_namespaces_per_account = 3\n[vcard]\nmax_bytes = 9000\n")
            .unwrap();
        assert_eq!(c.private.max_namespaces_per_account.get(), 3);
        assert_eq!(c.vcard.max_bytes.get(), 9000);
        // A zero quota would refuse every set: a typo, not a setting.
        let e = parse("[vcard]\nmax_bytes = 0\n").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn cross_key_checks() {
        let e = parse("[tls]\ncert = \"/x.crt\"\n").unwrap_err();
        assert!(e.contains("[tls] key"), "{e}");
        let e = parse("[c2s]\nmax_stanza_bytes = 100\n").unwrap_err();
        assert!(e.contains("10000"), "{e}");
    }
}

/// Limits of the XEP-0133 administration commands.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Bare JIDs of the server's administrators: they see and run the XEP-0133
    /// administration commands (XEP-0050 ad-hoc) from their clients.
    pub admins: Vec<String>,
    /// Accounts one delete-user command may name.
    pub max_accounts_per_command: NonZeroUsize,
    /// Online users one list shows at most.
    pub max_listed: NonZeroUsize,
    /// Longest announcement (subject and text), in bytes.
    pub max_announcement_bytes: NonZeroUsize,
}

impl Default for AdminSection {
    fn default() -> Self {
        AdminSection {
            admins: Vec::new(),
            max_accounts_per_command: nz(100),
            max_listed: nz(1000),
            max_announcement_bytes: nz(4096),
        }
    }
}

/// How log lines are written (`log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}
