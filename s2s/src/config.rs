//! s2s settings (the server's `[s2s]` section fills them).

use std::time::Duration;

use hydrant_proto::Limits;
use hydrant_stream::admission::PerIpLimits;

/// How this server federates.
#[derive(Debug, Clone)]
pub struct S2sConfig {
    /// Streams must be encrypted with STARTTLS (RFC 6120 5.3.1: "mandatory-to-negotiate"
    /// when required): outbound, a peer that offers no STARTTLS is given up; inbound,
    /// dialback and stanzas before TLS get `<policy-violation/>`.
    pub require_tls: bool,
    /// Server Dialback (XEP-0220) may authenticate a peer whose certificate does not
    /// verify. Off: such peers are refused.
    pub allow_dialback: bool,
    /// Per TCP connection attempt.
    pub connect_timeout: Duration,
    /// From the first connection attempt to an authenticated stream: DNS, TCP, TLS,
    /// dialback (including the peer's callback to us).
    pub negotiate_timeout: Duration,
    /// How long stanzas for an unreachable peer wait, across retries, before they are
    /// bounced (`<remote-server-timeout/>`).
    pub give_up_after: Duration,
    /// An outbound stream with nothing to write for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes queued per peer (waiting for the stream, then behind its write queue);
    /// beyond it stanzas are refused with `<resource-constraint/>`. Pubsub notifications
    /// may go up to four times past it, and their publisher then waits until the backlog
    /// is back under it (a firehose is paced by the slower server, not cut).
    pub queue_bytes: usize,
    /// Parser limits for s2s streams.
    pub limits: Limits,
    /// Inbound s2s connections at once, all peers together; past it new ones are
    /// closed at accept (a peer that opens streams in a loop cannot exhaust descriptors).
    pub max_inbound: usize,
    /// Remote domains with a stream or stanzas waiting, at once; a stanza for one more is
    /// refused with `<resource-constraint/>` (a user cannot make the server dial a
    /// million domains).
    pub max_peers: usize,
    /// Dialback verifications (each an outbound connection) running at once, all inbound
    /// streams together; a peer's further `<db:result/>` requests wait their turn.
    pub max_verifications: usize,
    /// Per peer address (IPv4, IPv6 /64): inbound connections per second and in a
    /// burst, and connections not yet authenticated (a peer that opens streams in a loop
    /// is refused at accept).
    pub per_ip: PerIpLimits,
}

impl Default for S2sConfig {
    fn default() -> Self {
        S2sConfig {
            require_tls: true,
            allow_dialback: true,
            connect_timeout: Duration::from_secs(10),
            negotiate_timeout: Duration::from_secs(30),
            give_up_after: Duration::from_mins(1),
            idle_timeout: Duration::from_mins(10),
            queue_bytes: 16 << 20,
            limits: Limits::default(),
            max_inbound: 1000,
            max_peers: 10_000,
            max_verifications: 64,
            per_ip: PerIpLimits {
                max_unauthenticated: 16,
                connections_per_sec: 5,
                connection_burst: 20,
            },
        }
    }
}
