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
    /// Domains federated with, if not empty: every other one is refused both ways.
    pub allow: Vec<String>,
    /// Domains never federated with (in both directions), whatever `allow` says.
    pub deny: Vec<String>,
    /// Write pacing per outbound stream, bytes per second with a burst of one second's
    /// worth (peers that rate-limit what they read: queueing here beats being cut off
    /// there); 0: as fast as the socket takes it. `write_rate_by_domain` overrides it.
    pub write_bytes_per_sec: u64,
    pub write_rate_by_domain: std::collections::HashMap<String, u64>,
    /// XEP-0138 zlib: offered to peers (on the encrypted stream, before dialback, and
    /// after SASL EXTERNAL), and used when a peer offers it.
    pub compression: bool,
}

impl S2sConfig {
    /// Whether this server federates with `domain` (the `allow`/`deny` lists; a domain
    /// listed also covers its subdomains, e.g. `example.org` covers `pubsub.example.org`).
    pub fn federates_with(&self, domain: &str) -> bool {
        let covers = |d: &String| {
            domain.eq_ignore_ascii_case(d)
                || domain.len().checked_sub(d.len() + 1).is_some_and(|at| {
                    domain.as_bytes()[at] == b'.' && domain[at + 1..].eq_ignore_ascii_case(d)
                })
        };
        !self.deny.iter().any(covers) && (self.allow.is_empty() || self.allow.iter().any(covers))
    }

    /// The write rate for streams to `domain` (0: unpaced).
    pub fn write_rate(&self, domain: &str) -> u64 {
        self.write_rate_by_domain
            .get(&domain.to_ascii_lowercase())
            .copied()
            .unwrap_or(self.write_bytes_per_sec)
    }
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
            allow: Vec::new(),
            deny: Vec::new(),
            write_bytes_per_sec: 0,
            write_rate_by_domain: std::collections::HashMap::new(),
            compression: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_and_deny_cover_subdomains() {
        let mut c = S2sConfig::default();
        assert!(c.federates_with("anything.example"));
        c.deny = vec!["spam.example".into()];
        assert!(!c.federates_with("spam.example"));
        assert!(!c.federates_with("pubsub.Spam.example"));
        assert!(
            c.federates_with("notspam.example"),
            "a suffix is not a subdomain"
        );
        c.allow = vec!["friend.example".into()];
        assert!(c.federates_with("friend.example"));
        assert!(c.federates_with("pubsub.friend.example"));
        assert!(!c.federates_with("stranger.example"));
    }
}
