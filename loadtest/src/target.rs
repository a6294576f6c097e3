//! Command-line options shared by every scenario: which server, how to secure and
//! authenticate, which accounts, and which local source addresses to connect from.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use crate::xmpp::conn::{Target, TlsMode};
use crate::xmpp::sasl::Mechanism;
use crate::xmpp::tls::{self, Trust};

/// Server, TLS and authentication options.
#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    /// Address of the server's client port, HOST:PORT.
    #[arg(long)]
    pub server: String,
    /// XMPP domain: the stream's `to`, the TLS server name (SNI) and the JIDs' domain.
    #[arg(long)]
    pub domain: String,
    /// TLS: STARTTLS on the client port, direct TLS (XEP-0368), or none.
    #[arg(long, value_enum, default_value = "starttls")]
    pub tls: TlsMode,
    /// Trust the CA certificate(s) in this PEM file.
    #[arg(long, conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// Do not verify the server certificate (self-signed test servers only).
    #[arg(long)]
    pub insecure: bool,
    /// SASL mechanism.
    #[arg(long, value_enum, default_value = "scram-sha-1")]
    pub auth: Mechanism,
    /// Local source addresses, round-robin per connection: "127.0.0.2-127.0.0.254",
    /// or a comma-separated list of addresses and ranges. Default: chosen by the OS.
    #[arg(long)]
    pub sources: Option<String>,
    /// Time allowed for connect and negotiation of one connection.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
    /// `SO_RCVBUF` of every client socket, in bytes (default: the kernel's
    /// autotuning). Small values let a throttled subscriber fill the server's queue
    /// sooner.
    #[arg(long)]
    pub recv_buffer_bytes: Option<u32>,
    /// XEP-0138 zlib stream compression after authentication (the server must offer
    /// it; a connection to one that does not fails in the `compress` stage).
    #[arg(long)]
    pub zlib: bool,
}

/// Which accounts to use.
#[derive(Debug, Clone, Args)]
pub struct AccountArgs {
    /// Number of accounts (and connections).
    #[arg(long)]
    pub users: u64,
    /// First account number: several generator processes use disjoint ranges
    /// (e.g. `--offset 0` and `--offset 10000` with `--users 10000`).
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Account names are PREFIX + number.
    #[arg(long, default_value = "load")]
    pub user_prefix: String,
    /// Password of every account.
    #[arg(long, default_value = "load-password")]
    pub password: String,
    /// Resource to bind: this prefix + account number.
    #[arg(long, default_value = "hl")]
    pub resource: String,
}

impl ServerArgs {
    /// Resolve the server address, load TLS trust, and build the shared target.
    pub fn target(&self, accounts: &AccountArgs, presence: bool) -> Result<Arc<Target>, String> {
        let server = resolve(&self.server)?;
        let tls_config = match self.tls {
            TlsMode::None => None,
            TlsMode::Starttls | TlsMode::Direct => {
                let trust = match (&self.ca, self.insecure) {
                    (Some(ca), _) => Trust::CaFile(ca.clone()),
                    (None, true) => Trust::Insecure,
                    (None, false) => {
                        return Err("TLS needs --ca FILE, or --insecure for a self-signed \
                                    test server (or --tls none)"
                            .to_owned());
                    }
                };
                let config = tls::client_config(&trust)?;
                Some((config, tls::server_name(&self.domain)?))
            }
        };
        Ok(Arc::new(Target {
            server,
            domain: self.domain.clone(),
            tls: self.tls,
            tls_config,
            mechanism: self.auth,
            password: accounts.password.clone(),
            resource: accounts.resource.clone(),
            presence,
            timeout: Duration::from_secs(self.timeout_secs),
            recv_buffer: self.recv_buffer_bytes,
            zlib: self.zlib,
        }))
    }

    /// How the certificate is checked, for the report.
    pub fn verification(&self) -> String {
        match (self.tls, &self.ca, self.insecure) {
            (TlsMode::None, _, _) => "none (plaintext)".to_owned(),
            (_, Some(ca), _) => format!("CA file {}", ca.display()),
            (_, None, _) => "INSECURE: certificate not verified (--insecure)".to_owned(),
        }
    }

    pub fn sources(&self) -> Result<Sources, String> {
        match &self.sources {
            None => Ok(Sources(Vec::new())),
            Some(spec) => Sources::parse(spec),
        }
    }
}

fn resolve(server: &str) -> Result<SocketAddr, String> {
    server
        .to_socket_addrs()
        .map_err(|e| format!("--server {server}: {e}"))?
        .next()
        .ok_or_else(|| format!("--server {server}: no address"))
}

/// Local addresses to bind before connecting, used round-robin.
///
/// Each (source, destination) pair has its own ~28,000 ephemeral ports, so spreading
/// over 127.0.0.0/8 lets one machine open far more connections to one server port.
#[derive(Debug, Clone)]
pub struct Sources(Vec<IpAddr>);

impl Sources {
    /// Upper bound on the addresses one spec may expand to (a /16).
    const MAX: usize = 65_536;

    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = |e: &dyn std::fmt::Display| format!("--sources {part:?}: {e}");
            if let Some((a, b)) = part.split_once('-') {
                let a: Ipv4Addr = a.trim().parse().map_err(|e| bad(&e))?;
                let b: Ipv4Addr = b.trim().parse().map_err(|e| bad(&e))?;
                let (a, b) = (u32::from(a), u32::from(b));
                if b < a || (b - a) as usize >= Self::MAX {
                    return Err(bad(&"range is empty or too large"));
                }
                out.extend((a..=b).map(|n| IpAddr::V4(Ipv4Addr::from(n))));
            } else {
                out.push(part.parse().map_err(|e| bad(&e))?);
            }
            if out.len() > Self::MAX {
                return Err(bad(&"too many addresses"));
            }
        }
        if out.is_empty() {
            return Err("--sources: no address".to_owned());
        }
        Ok(Sources(out))
    }

    /// The source for connection `index` (`None`: let the OS choose).
    pub fn pick(&self, index: u64) -> Option<IpAddr> {
        if self.0.is_empty() {
            None
        } else {
            Some(self.0[(index % self.0.len() as u64) as usize])
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Share `k` of `n` (`k < n`): every `n`th address from the `k`th, so `n` users of
    /// one spec get disjoint addresses; all of them if there are fewer than `n`.
    pub fn share(&self, k: usize, n: usize) -> Sources {
        if self.0.len() < n.max(1) {
            return self.clone();
        }
        Sources(self.0.iter().skip(k).step_by(n).copied().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_and_lists() {
        let s = Sources::parse("127.0.0.2-127.0.0.254").unwrap();
        assert_eq!(s.len(), 253);
        assert_eq!(s.pick(0), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(s.pick(253), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(s.pick(252), Some("127.0.0.254".parse().unwrap()));
        let s = Sources::parse("127.0.0.1, 127.0.1.255-127.0.2.0").unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s.pick(2), Some("127.0.2.0".parse().unwrap()));
        assert!(Sources::parse("127.0.0.9-127.0.0.1").is_err());
        assert!(Sources::parse("nope").is_err());
        assert!(Sources::parse("127.0.0.0-127.255.255.255").is_err());
        assert_eq!(Sources(Vec::new()).pick(5), None);
        let s = Sources::parse("127.0.1.1-127.0.1.7").unwrap();
        let b = s.share(1, 3);
        assert_eq!(b.len(), 2);
        assert_eq!(b.pick(0), Some("127.0.1.2".parse().unwrap()));
        assert_eq!(b.pick(1), Some("127.0.1.5".parse().unwrap()));
        assert_eq!(s.share(2, 3).len(), 2);
        assert_eq!(s.share(0, 3).len(), 3);
        assert_eq!(s.share(4, 9).len(), 7, "too few to split: all shared");
    }
}
