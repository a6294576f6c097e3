//! Settings of the c2s listeners, filled by the server crate from its TOML config.

use std::sync::Arc;
use std::time::Duration;

use hydrant_proto::Limits;

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
    /// Parser limits (stanza size, depth, attributes).
    pub limits: Limits,
    /// Time allowed from TCP accept to a bound resource.
    pub auth_timeout: Duration,
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
            auth_timeout: Duration::from_secs(30),
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
        }
    }
}
