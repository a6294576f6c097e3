//! Settings of the c2s listeners, filled by the server crate from its TOML config.

use std::sync::Arc;
use std::time::Duration;

use hydrant_proto::Limits;
pub use hydrant_stream::admission::PerIpLimits;

/// Everything a c2s session needs to know about local policy.
#[derive(Debug, Clone)]
pub struct C2sConfig {
    /// The XMPP domain served; streams to any other `to` get `<host-unknown/>`.
    pub domain: String,
    /// TLS for STARTTLS and direct TLS; `None` disables both.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Refuse SASL (and registration) until STARTTLS completed.
    pub require_tls: bool,
    /// Offer XEP-0077 in-band registration before authentication.
    pub allow_registration: bool,
    /// Registrations per client network (IPv4 address, IPv6 /64) per hour; 0: unlimited.
    pub registrations_per_ip_per_hour: u32,
    /// Registration requests on one stream before `<policy-violation/>`.
    pub max_registration_attempts: u32,
    /// Parser limits (stanza size, depth, attributes) once the client authenticated.
    pub limits: Limits,
    /// Parser limits until the client authenticated: an unauthenticated peer only sends
    /// a header, SASL and registration, so it gets a few KiB, not `limits`.
    pub preauth_limits: Limits,
    /// Time allowed from TCP accept to a bound resource: one deadline over the TCP
    /// connection, the TLS handshake and every stream restart.
    pub auth_timeout: Duration,
    /// Time allowed for each stream header before authentication (after accept, after
    /// STARTTLS, after SASL success).
    pub header_timeout: Duration,
    /// After the server closed a stream (error or not) and shut down its write side, how
    /// long it keeps reading and discarding input so that the peer can read the error
    /// rather than getting a TCP reset for the bytes it was still sending.
    pub linger: Duration,
    /// Per-address admission (IPv4 address, IPv6 /64).
    pub per_ip: PerIpLimits,
    /// After this much inbound silence on a bound session the server sends an XEP-0199 ping.
    pub ping_interval: Duration,
    /// Inbound silence tolerated after that ping before `<connection-timeout/>`.
    pub ping_timeout: Duration,
    /// A single space is written when nothing else was written for this long.
    pub whitespace_keepalive: Duration,
    /// Per-connection outbound queue limit in bytes (the slow-consumer policy applies past it).
    pub outbound_queue_bytes: usize,
    /// Failed SASL attempts allowed on one stream before `<policy-violation/>` (RFC 6120 6.4.5).
    pub max_auth_failures: u32,
    /// Longest delay imposed on failed logins from one address.
    pub auth_failure_max_delay: Duration,
    /// Failed logins per client network (IPv4 address, IPv6 /64) per hour; 0: unlimited.
    pub auth_failures_per_ip_per_hour: u32,
    /// Failed logins per account per hour, from any network; 0: unlimited.
    pub auth_failures_per_account_per_hour: u32,
    /// Connections held at once, all listeners together.
    pub max_connections: usize,
    /// Stream features the server adds after authentication (e.g. roster versioning),
    /// since only it knows what it implements.
    pub extra_features: Vec<hydrant_proto::Element>,
    /// Offer XEP-0138 zlib compression after authentication.
    pub compression: bool,
    /// Offer XEP-0198 stream management after authentication.
    pub stream_management: bool,
    /// How long a stream-managed session whose connection broke waits for its client to
    /// resume it; zero: no resumption.
    pub sm_resume_timeout: Duration,
    /// Bytes of sent, unacknowledged stanzas a session may hold for a resend; past it the
    /// client is a slow consumer.
    pub sm_max_unacked_bytes: usize,
    /// An ack request (`<r/>`) after this many stanzas.
    pub sm_request_every: u32,
    /// An ack request once the stream has been quiet this long with stanzas not asked
    /// about yet.
    pub sm_request_after: Duration,
    /// Offer XEP-0352 client state indication.
    pub csi: bool,
    /// While a client is inactive, held bytes (as written) that release the batch.
    pub csi_max_held_bytes: usize,
    /// While a client is inactive, the longest anything is held.
    pub csi_max_delay: Duration,
}

impl C2sConfig {
    /// Defaults suitable for tests: no TLS, registration off.
    pub fn new(domain: impl Into<String>) -> Self {
        C2sConfig {
            domain: domain.into(),
            tls: None,
            require_tls: true,
            allow_registration: false,
            registrations_per_ip_per_hour: 5,
            max_registration_attempts: 5,
            limits: Limits::default(),
            preauth_limits: Limits {
                // RFC 6120 13.12: stanzas of at least 10,000 bytes must be accepted; a
                // registration form is the largest thing a client sends this early.
                max_stanza_bytes: 10_000,
                max_header_bytes: 4096,
                ..Limits::default()
            },
            auth_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            linger: Duration::from_secs(2),
            per_ip: PerIpLimits::default(),
            ping_interval: Duration::from_mins(5),
            ping_timeout: Duration::from_mins(1),
            whitespace_keepalive: Duration::from_mins(1),
            outbound_queue_bytes: 1 << 20,
            max_auth_failures: 3,
            auth_failure_max_delay: Duration::from_secs(10),
            auth_failures_per_ip_per_hour: 30,
            auth_failures_per_account_per_hour: 30,
            max_connections: 19_000,
            extra_features: Vec::new(),
            compression: false,
            stream_management: true,
            sm_resume_timeout: Duration::from_mins(5),
            sm_max_unacked_bytes: 1 << 20,
            sm_request_every: 16,
            sm_request_after: Duration::from_secs(2),
            csi: true,
            csi_max_held_bytes: 1 << 20,
            csi_max_delay: Duration::from_mins(1),
        }
    }
}
