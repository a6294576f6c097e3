//! Finding a peer server: which host, port and TLS mode to dial for a remote XMPP domain, and
//! the TCP connection to the first one that answers.
//!
//! Owns: per-domain static overrides from the configuration, the DNS SRV lookups of
//! `_xmpps-server._tcp` (XEP-0368, direct TLS) and `_xmpp-server._tcp` (RFC 6120 §3.2.1,
//! STARTTLS), their combined RFC 2782 ordering, the RFC 6120 §3.2.2 fallback to the domain
//! itself on port 5269, the A/AAAA lookups of each target and the TCP connect that walks
//! targets and addresses in order.
//!
//! Does not own: TLS (the caller starts it right away when [`Target::direct_tls`] is set,
//! with SNI set to the peer's domain, not the target host, per XEP-0368 §3), stream
//! negotiation, retry and back-off between attempts, or per-domain queues.
//!
//! Everything DNS says comes from the network and is treated as hostile: the number of
//! targets and addresses tried is bounded (see the constants below; an SRV answer itself is
//! bounded by the DNS message size), error text is bounded, and an odd answer (empty, "."
//! mixed with real targets, port 0, unspecified addresses) is skipped, never a panic.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    NameServerConfigGroup, ResolveHosts, ResolverConfig as DnsConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::{ProtoError, ProtoErrorKind};
use hickory_resolver::{Name, TokioResolver};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// The IANA-registered "xmpp-server" port, used by the RFC 6120 §3.2.2 fallback when the
/// domain publishes no SRV records, and for a domain that is an IP literal.
pub const DEFAULT_PORT: u16 = 5269;

/// At most this many targets are returned by [`Resolver::targets`] and tried by
/// [`Resolver::connect`]. A hostile domain could publish thousands of SRV records and make
/// one outbound attempt last for hours (each target costs two lookups and connect
/// timeouts); real deployments publish a handful.
pub const MAX_TARGETS: usize = 16;

/// At most this many addresses of one target are tried, for the same reason as
/// [`MAX_TARGETS`]: 16 × 4 connect attempts bound one call of [`Resolver::connect`].
pub const MAX_ADDRS_PER_TARGET: usize = 4;

/// Error texts (DNS failures, the list of what [`Resolver::connect`] tried) are cut to this
/// many bytes: they end up in logs and bounce texts, and include names taken from DNS.
const MAX_ERROR_TEXT: usize = 1024;

/// How to resolve peer domains.
#[derive(Debug, Clone)]
pub struct ResolverConfig {
    /// `None`: the system's resolver configuration (`/etc/resolv.conf`). `Some`: only this
    /// server, over UDP and TCP, and no hosts file (split-horizon DNS, tests).
    pub nameserver: Option<SocketAddr>,
    /// Static targets per domain, tried in the listed order with STARTTLS; they replace the
    /// SRV lookups entirely (the target hosts are still resolved to addresses unless they
    /// are IP literals). An empty list means the domain is never dialled
    /// ([`ResolveError::NoService`]). Keys are matched case-insensitively.
    pub overrides: HashMap<String, Vec<(String, u16)>>,
    /// Upper bound for each DNS lookup (each SRV, A or AAAA query, retries included).
    pub timeout: Duration,
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            nameserver: None,
            overrides: HashMap::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// One place to dial for a peer domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// A host name (resolved with A/AAAA when connecting) or an IP literal.
    pub host: String,
    pub port: u16,
    /// Start TLS immediately on connect (an `_xmpps-server` record, XEP-0368) instead of
    /// negotiating STARTTLS in the stream.
    pub direct_tls: bool,
}

/// Why no connection could be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveError {
    /// The domain says it offers no server-to-server service: an SRV answer whose only
    /// target is "." (RFC 2782, RFC 6120 §3.2.1 step 3), or an operator override with no
    /// targets. Retrying soon will not help.
    NoService,
    /// DNS could not answer (timeout, SERVFAIL, REFUSED, an invalid name); possibly
    /// transient.
    Dns(String),
    /// Every target and address tried failed; the text lists them (bounded).
    Unreachable(String),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoService => f.write_str("the domain offers no XMPP server-to-server service"),
            Self::Dns(text) => write!(f, "DNS lookup failed: {text}"),
            Self::Unreachable(text) => write!(f, "no target reachable: {text}"),
        }
    }
}

impl std::error::Error for ResolveError {}

/// One SRV record as the ordering sees it. `target` is the host name without the trailing
/// dot; "." is the root (RFC 2782: "the service is decidedly not available").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    pub target: String,
}

/// The outcome of one SRV lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrvAnswer {
    /// The answer had SRV records (possibly only ".").
    Records(Vec<SrvRecord>),
    /// NXDOMAIN, or NOERROR without SRV records: the domain publishes nothing here.
    NoRecords,
    /// No usable answer (timeout, SERVFAIL, REFUSED, ...), with a description.
    Failed(String),
}

/// Finds and dials peer servers. Cheap to share behind an `Arc`; the DNS cache inside is
/// shared by all calls.
#[derive(Debug)]
pub struct Resolver {
    dns: TokioResolver,
    /// Keys normalised by [`normalise_domain`].
    overrides: HashMap<String, Vec<Target>>,
    timeout: Duration,
}

impl Resolver {
    /// Builds the resolver; with `nameserver: None` this reads the system configuration,
    /// which can fail (no `/etc/resolv.conf`), hence the `Result`.
    pub fn new(cfg: ResolverConfig) -> Result<Self, ResolveError> {
        let (dns_config, mut opts) = match cfg.nameserver {
            Some(addr) => {
                // trust_negative_responses: with a single server there is nobody else to
                // ask, so its NXDOMAIN is final.
                let servers =
                    NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true);
                let mut opts = ResolverOpts::default();
                // "Only that server": the hosts file would be a second source of answers.
                opts.use_hosts_file = ResolveHosts::Never;
                (DnsConfig::from_parts(None, Vec::new(), servers), opts)
            }
            None => hickory_resolver::system_conf::read_system_conf().map_err(|e| {
                ResolveError::Dns(bounded(format!(
                    "reading the system DNS configuration: {e}"
                )))
            })?,
        };
        // hickory's own per-request timeout; each lookup is also wrapped in `cfg.timeout` as
        // a whole, so retries inside hickory cannot stretch it.
        opts.timeout = cfg.timeout;
        let dns =
            TokioResolver::builder_with_config(dns_config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();

        let overrides = cfg
            .overrides
            .into_iter()
            .map(|(domain, hosts)| {
                let targets = hosts
                    .into_iter()
                    .take(MAX_TARGETS)
                    .map(|(host, port)| Target {
                        host,
                        port,
                        direct_tls: false,
                    })
                    .collect();
                (normalise_domain(&domain), targets)
            })
            .collect();

        Ok(Self {
            dns,
            overrides,
            timeout: cfg.timeout,
        })
    }

    /// The targets to try for `domain`, best first (at most [`MAX_TARGETS`]).
    ///
    /// Overrides first; an IP-literal domain is dialled directly on 5269 (SRV owner names
    /// are domain names); otherwise both SRV lookups run concurrently and
    /// [`order_targets`] decides.
    pub async fn targets(&self, domain: &str) -> Result<Vec<Target>, ResolveError> {
        let domain = normalise_domain(domain);
        if let Some(targets) = self.overrides.get(&domain) {
            if targets.is_empty() {
                return Err(ResolveError::NoService);
            }
            return Ok(targets.clone());
        }
        if let Some(ip) = parse_ip_literal(&domain) {
            return Ok(vec![Target {
                host: ip.to_string(),
                port: DEFAULT_PORT,
                direct_tls: false,
            }]);
        }

        let xmpps_name =
            dns_name(Some("_xmpps-server._tcp"), &domain).map_err(ResolveError::Dns)?;
        let xmpp_name = dns_name(Some("_xmpp-server._tcp"), &domain).map_err(ResolveError::Dns)?;
        let (xmpps, xmpp) = tokio::join!(self.srv(xmpps_name), self.srv(xmpp_name));
        tracing::debug!(%domain, ?xmpps, ?xmpp, "SRV answers");
        order_targets(&domain, xmpps, xmpp, &mut system_random)
    }

    /// Connects to the first reachable address of the first reachable target of `domain`
    /// (RFC 6120 §3.2.1 steps 4-7: next address of the same target, then the next target),
    /// each TCP attempt bounded by `connect_timeout`. Returns the stream and the target it
    /// reached; the caller starts TLS at once when `direct_tls` is set.
    ///
    /// The worst case is [`MAX_TARGETS`] × ([`MAX_ADDRS_PER_TARGET`] × `connect_timeout` +
    /// the lookup timeout); callers wanting a tighter overall bound wrap this call.
    pub async fn connect(
        &self,
        domain: &str,
        connect_timeout: Duration,
    ) -> Result<(TcpStream, Target), ResolveError> {
        let targets = self.targets(domain).await?;
        let mut tried = Vec::new();
        for target in targets.into_iter().take(MAX_TARGETS) {
            let addrs = match self.addresses(&target.host).await {
                Ok(addrs) => addrs,
                Err(why) => {
                    tracing::debug!(host = %target.host, %why, "s2s target has no address");
                    tried.push(format!("{}:{}: {why}", target.host, target.port));
                    continue;
                }
            };
            for ip in addrs {
                let addr = SocketAddr::new(ip, target.port);
                let why = match timeout(connect_timeout, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => {
                        tracing::debug!(%domain, host = %target.host, %addr, "s2s TCP connected");
                        return Ok((stream, target));
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "timed out".to_owned(),
                };
                tracing::debug!(host = %target.host, %addr, %why, "s2s connect failed");
                tried.push(format!("{}:{} ({addr}): {why}", target.host, target.port));
            }
        }
        Err(ResolveError::Unreachable(bounded(tried.join("; "))))
    }

    /// One SRV lookup, classified; never longer than the lookup timeout.
    async fn srv(&self, name: Name) -> SrvAnswer {
        let shown = name.to_ascii();
        match timeout(self.timeout, self.dns.srv_lookup(name)).await {
            Err(_) => SrvAnswer::Failed(format!("{shown}: timed out")),
            Ok(Ok(lookup)) => SrvAnswer::Records(
                // Not truncated here: cutting in answer order could drop the best
                // records. A DNS message is at most 64 KiB, i.e. a few thousand SRV
                // records, and the ordering costs O(n log n + MAX_TARGETS * n).
                lookup
                    .iter()
                    .map(|srv| SrvRecord {
                        priority: srv.priority(),
                        weight: srv.weight(),
                        port: srv.port(),
                        target: host_text(srv.target()),
                    })
                    .collect(),
            ),
            Ok(Err(e)) if is_no_records(&e) => SrvAnswer::NoRecords,
            Ok(Err(e)) => SrvAnswer::Failed(bounded(format!("{shown}: {}", describe(&e)))),
        }
    }

    /// The addresses to try for one target host: an IP literal as is, else AAAA and A looked
    /// up concurrently and interleaved IPv6 first (RFC 8305 §4), at most
    /// [`MAX_ADDRS_PER_TARGET`]. `Err` describes why there are none.
    async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, String> {
        if let Some(ip) = parse_ip_literal(host) {
            return if usable_ip(ip) {
                Ok(vec![ip])
            } else {
                Err(format!("{ip} is not a connectable address"))
            };
        }
        let name = dns_name(None, host)?;
        let (v6, v4) = tokio::join!(
            timeout(self.timeout, self.dns.ipv6_lookup(name.clone())),
            timeout(self.timeout, self.dns.ipv4_lookup(name)),
        );
        let v6 = match v6 {
            Ok(Ok(found)) => Ok(found
                .iter()
                .map(|aaaa| IpAddr::V6(aaaa.0))
                .filter(|ip| usable_ip(*ip))
                .take(MAX_ADDRS_PER_TARGET)
                .collect()),
            Ok(Err(e)) if is_no_records(&e) => Ok(Vec::new()),
            Ok(Err(e)) => Err(format!("AAAA: {}", describe(&e))),
            Err(_) => Err("AAAA: timed out".to_owned()),
        };
        let v4 = match v4 {
            Ok(Ok(found)) => Ok(found
                .iter()
                .map(|a| IpAddr::V4(a.0))
                .filter(|ip| usable_ip(*ip))
                .take(MAX_ADDRS_PER_TARGET)
                .collect()),
            Ok(Err(e)) if is_no_records(&e) => Ok(Vec::new()),
            Ok(Err(e)) => Err(format!("A: {}", describe(&e))),
            Err(_) => Err("A: timed out".to_owned()),
        };
        // One family failing is not fatal while the other has addresses.
        let failed: Vec<&str> = [&v6, &v4]
            .into_iter()
            .filter_map(|r| r.as_ref().err().map(String::as_str))
            .collect();
        let none = if failed.is_empty() {
            "no usable A/AAAA records".to_owned()
        } else {
            bounded(failed.join("; "))
        };
        let (v6, v4): (Vec<IpAddr>, Vec<IpAddr>) = (v6.unwrap_or_default(), v4.unwrap_or_default());
        let mut out = Vec::with_capacity(MAX_ADDRS_PER_TARGET);
        let (mut v6, mut v4) = (v6.into_iter(), v4.into_iter());
        while out.len() < MAX_ADDRS_PER_TARGET {
            match (v6.next(), v4.next()) {
                (None, None) => break,
                (a, b) => out.extend(a.into_iter().chain(b)),
            }
        }
        out.truncate(MAX_ADDRS_PER_TARGET);
        if out.is_empty() {
            return Err(none);
        }
        Ok(out)
    }
}

/// Decides the targets for `domain` from its two SRV answers: the pure part of
/// [`Resolver::targets`]. `random(max)` must return a uniform integer in `0..=max`
/// (values above `max` are clamped); tests pass a fixed sequence.
///
/// Rules, in order:
/// 1. Records with target "." or port 0 are unusable and dropped. The usable records of both
///    answers are mixed into one set (XEP-0368 §3 rule 1: "all priorities and weights are
///    mixed") and ordered per RFC 2782, keeping at most [`MAX_TARGETS`]; `_xmpps-server`
///    ones get `direct_tls`. If only one lookup failed and the other has usable records,
///    those are used (losing the failed side's records costs an option, not correctness).
/// 2. Otherwise a failed lookup makes the whole result [`ResolveError::Dns`]: the failed
///    side might have had records, and with records published RFC 6120 §3.2.1 step 8 says
///    the initiator "SHOULD NOT attempt the fallback process".
/// 3. Otherwise an answer consisting only of "." (or of unusable records) gives
///    [`ResolveError::NoService`]: for `_xmpp-server`, RFC 6120 §3.2.1 step 3 ("abort SRV
///    processing", the service "is decidedly not available"); for `_xmpps-server`, XEP-0368
///    §5 says direct TLS is not offered, to look up `_xmpp-server` (done: it had nothing
///    usable) and that the initiator "MUST NOT perform A/AAAA fallback".
/// 4. Otherwise (neither lookup found records) the RFC 6120 §3.2.2 fallback: the domain
///    itself on 5269 with STARTTLS.
pub fn order_targets(
    domain: &str,
    xmpps: SrvAnswer,
    xmpp: SrvAnswer,
    random: &mut dyn FnMut(u64) -> u64,
) -> Result<Vec<Target>, ResolveError> {
    let mut usable = Vec::new();
    let mut failures = Vec::new();
    let mut declined = false;
    // xmpps first: where RFC 2782 lets the set be arranged "in any order" (before the running
    // sums), direct TLS comes first, so at equal priority with all weights 0 it is tried
    // first: the preference XEP-0368 §3 rule 1 allows ("MAY choose to prefer").
    for (answer, direct_tls) in [(xmpps, true), (xmpp, false)] {
        match answer {
            SrvAnswer::Records(records) => {
                let published = !records.is_empty();
                let before = usable.len();
                usable.extend(
                    records
                        .into_iter()
                        .filter(|r| r.port != 0 && !is_root(&r.target))
                        .map(|r| (r, direct_tls)),
                );
                // A non-empty answer with nothing usable: "." alone (the RFC case), several
                // "." or port 0; none names a place to connect to, all say "not here".
                declined |= published && usable.len() == before;
            }
            SrvAnswer::NoRecords => {}
            SrvAnswer::Failed(why) => failures.push(why),
        }
    }

    if !usable.is_empty() {
        if !failures.is_empty() {
            let failures = failures.join("; ");
            tracing::warn!(%domain, %failures, "one SRV lookup failed; using the other's records");
        }
        return Ok(rfc2782_order(usable, random, MAX_TARGETS)
            .into_iter()
            .map(|(r, direct_tls)| Target {
                host: r.target,
                port: r.port,
                direct_tls,
            })
            .collect());
    }
    if !failures.is_empty() {
        return Err(ResolveError::Dns(bounded(failures.join("; "))));
    }
    if declined {
        return Err(ResolveError::NoService);
    }
    Ok(vec![Target {
        host: domain.to_owned(),
        port: DEFAULT_PORT,
        direct_tls: false,
    }])
}

/// RFC 2782 target selection ("Usage rules"), stopping after `limit` picks: records in
/// ascending priority; within one priority, repeatedly put weight-0 records first, compute
/// the running sums of the weights, draw `r` uniform in `0..=sum` and pick the first record
/// whose running sum is ≥ `r`. A weight-0 record is thus picked only when `r` is 0 (a small
/// chance beside weighted ones), and among all-weight-0 records the listed order holds.
fn rfc2782_order<T>(
    mut records: Vec<(SrvRecord, T)>,
    random: &mut dyn FnMut(u64) -> u64,
    limit: usize,
) -> Vec<(SrvRecord, T)> {
    // Stable sorts: the arrangement RFC 2782 leaves free is the caller's order.
    records.sort_by_key(|(r, _)| r.priority);
    let mut out = Vec::with_capacity(limit.min(records.len()));
    let mut rest = records.into_iter().peekable();
    while out.len() < limit {
        let Some((first, tag)) = rest.next() else {
            break;
        };
        let priority = first.priority;
        let mut group = vec![(first, tag)];
        while let Some(next) = rest.next_if(|(r, _)| r.priority == priority) {
            group.push(next);
        }
        group.sort_by_key(|(r, _)| r.weight != 0);
        while !group.is_empty() && out.len() < limit {
            let sum: u64 = group.iter().map(|(r, _)| u64::from(r.weight)).sum();
            let drawn = random(sum).min(sum);
            let mut running = 0;
            let pick = group
                .iter()
                .position(|(r, _)| {
                    running += u64::from(r.weight);
                    running >= drawn
                })
                // Unreachable (the last running sum is `sum` ≥ `drawn`), but never panic.
                .unwrap_or(group.len() - 1);
            out.push(group.remove(pick));
        }
    }
    out
}

/// The production random source for [`order_targets`]: uniform in `0..=max`.
fn system_random(max: u64) -> u64 {
    let Some(span) = max.checked_add(1) else {
        return getrandom::u64().unwrap_or(0);
    };
    // Only load spreading, not a secret: if the OS has no randomness, the listed order is
    // used. The modulo bias is < span / 2^64, and the weights of one DNS message (at most a
    // few thousand 16-bit values) keep span below 2^29.
    getrandom::u64().unwrap_or(0) % span
}

/// A domain as used for override keys, DNS queries and the fallback host: no trailing dot
/// (RFC 7622 §3.2 strips it), lower case.
fn normalise_domain(domain: &str) -> String {
    domain.strip_suffix('.').unwrap_or(domain).to_lowercase()
}

/// An IPv4 literal, or an IPv6 literal with or without brackets (the JID form is bracketed,
/// RFC 7622 §3.2).
fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// Whether TCP to this address can mean a remote server: connecting to the unspecified
/// address reaches the local host on Linux, and multicast or broadcast are never a server.
/// (Loopback and private addresses are allowed: split DNS and tests use them. Keeping a
/// hostile domain from steering connections at internal services is connection policy,
/// above this module.)
fn usable_ip(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    !(ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST))
}

/// A fully qualified DNS name (trailing dot, so no resolv.conf search domain is ever
/// appended to a peer's name), optionally under a service prefix; Unicode labels are
/// converted to A-labels.
fn dns_name(prefix: Option<&str>, host: &str) -> Result<Name, String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return Err("empty domain name".to_owned());
    }
    let text = match prefix {
        Some(prefix) => format!("{prefix}.{host}."),
        None => format!("{host}."),
    };
    Name::from_utf8(&text).map_err(|e| bounded(format!("invalid domain name {host:?}: {e}")))
}

/// An SRV target as text: "." for the root, else the name without its trailing dot.
fn host_text(name: &Name) -> String {
    if name.is_root() {
        return ".".to_owned();
    }
    let text = name.to_ascii();
    match text.strip_suffix('.') {
        Some(bare) => bare.to_owned(),
        None => text,
    }
}

fn is_root(target: &str) -> bool {
    target == "." || target.is_empty()
}

/// Whether a lookup error means "the name has no such records" (NXDOMAIN, or NOERROR with
/// an empty answer) as opposed to a failure. hickory reports SERVFAIL, REFUSED and the like
/// with the same `NoRecordsFound` kind, so the response code decides.
fn is_no_records(e: &hickory_resolver::ResolveError) -> bool {
    matches!(
        e.proto().map(ProtoError::kind),
        Some(ProtoErrorKind::NoRecordsFound {
            response_code: ResponseCode::NXDomain | ResponseCode::NoError,
            ..
        })
    )
}

/// A lookup error for humans. hickory's text for an error answer is "no records found for
/// <query>", which hides the part that matters (SERVFAIL, REFUSED, ...).
fn describe(e: &hickory_resolver::ResolveError) -> String {
    match e.proto().map(ProtoError::kind) {
        Some(ProtoErrorKind::NoRecordsFound { response_code, .. }) => {
            format!("server answered {response_code}")
        }
        _ => e.to_string(),
    }
}

/// Cuts `text` to [`MAX_ERROR_TEXT`] bytes at a character boundary, marking the cut.
fn bounded(mut text: String) -> String {
    if text.len() > MAX_ERROR_TEXT {
        let mut cut = MAX_ERROR_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port,
            target: target.to_owned(),
        }
    }

    /// A random source that returns `values` in turn (then 0) and records the `max` it
    /// was asked for.
    fn scripted(
        values: &[u64],
    ) -> (
        impl FnMut(u64) -> u64,
        std::rc::Rc<std::cell::RefCell<Vec<u64>>>,
    ) {
        let asked = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let log = asked.clone();
        let mut values = values.iter().copied();
        (
            move |max| {
                log.borrow_mut().push(max);
                values.next().unwrap_or(0)
            },
            asked,
        )
    }

    fn hosts(targets: &[Target]) -> Vec<&str> {
        targets.iter().map(|t| t.host.as_str()).collect()
    }

    fn starttls(records: Vec<SrvRecord>) -> Result<Vec<Target>, ResolveError> {
        let (mut random, _) = scripted(&[]);
        order_targets(
            "example.org",
            SrvAnswer::NoRecords,
            SrvAnswer::Records(records),
            &mut random,
        )
    }

    #[test]
    fn priorities_ascend() {
        let targets = starttls(vec![
            rec(20, 0, 5269, "c.example.org"),
            rec(5, 0, 5269, "a.example.org"),
            rec(10, 0, 5270, "b.example.org"),
        ])
        .unwrap();
        assert_eq!(
            hosts(&targets),
            ["a.example.org", "b.example.org", "c.example.org"]
        );
        assert_eq!(targets[1].port, 5270);
        assert!(targets.iter().all(|t| !t.direct_tls));
    }

    #[test]
    fn weights_select_by_running_sum() {
        // Running sums 10, 30, 100. Draw 35 -> c (first sum >= 35); then a:10, b:30 with
        // sums 10, 30, draw 10 -> a (10 >= 10); then b alone (sum 20).
        let (mut random, asked) = scripted(&[35, 10, 7]);
        let targets = order_targets(
            "example.org",
            SrvAnswer::NoRecords,
            SrvAnswer::Records(vec![
                rec(1, 10, 5269, "a"),
                rec(1, 20, 5269, "b"),
                rec(1, 70, 5269, "c"),
            ]),
            &mut random,
        )
        .unwrap();
        assert_eq!(hosts(&targets), ["c", "a", "b"]);
        assert_eq!(*asked.borrow(), [100, 30, 20]);

        // Draw 11 right after a's sum of 10 -> b.
        let (mut random, _) = scripted(&[11]);
        let ordered = rfc2782_order(
            vec![(rec(1, 10, 1, "a"), ()), (rec(1, 20, 1, "b"), ())],
            &mut random,
            MAX_TARGETS,
        );
        assert_eq!(ordered[0].0.target, "b");
    }

    #[test]
    fn weight_zero_goes_first_and_wins_only_on_zero() {
        // Listed after the weighted one, but RFC 2782 puts weight 0 first: a draw of 0
        // selects it, any other draw passes it (its running sum stays 0).
        let records = || vec![(rec(1, 10, 1, "weighted"), ()), (rec(1, 0, 1, "zero"), ())];
        let (mut random, _) = scripted(&[0]);
        let ordered = rfc2782_order(records(), &mut random, MAX_TARGETS);
        assert_eq!(ordered[0].0.target, "zero");
        let (mut random, asked) = scripted(&[1]);
        let ordered = rfc2782_order(records(), &mut random, MAX_TARGETS);
        assert_eq!(ordered[0].0.target, "weighted");
        assert_eq!(ordered[1].0.target, "zero");
        assert_eq!(*asked.borrow(), [10, 0]);

        // All weight 0: the sum is 0, the listed order holds.
        let (mut random, asked) = scripted(&[]);
        let ordered = rfc2782_order(
            vec![
                (rec(1, 0, 1, "x"), ()),
                (rec(1, 0, 1, "y"), ()),
                (rec(1, 0, 1, "z"), ()),
            ],
            &mut random,
            MAX_TARGETS,
        );
        let names: Vec<_> = ordered.iter().map(|(r, ())| r.target.as_str()).collect();
        assert_eq!(names, ["x", "y", "z"]);
        assert_eq!(*asked.borrow(), [0, 0, 0]);
    }

    #[test]
    fn out_of_range_random_is_clamped() {
        let (mut random, _) = scripted(&[u64::MAX, u64::MAX]);
        let ordered = rfc2782_order(
            vec![(rec(1, 1, 1, "a"), ()), (rec(1, 1, 1, "b"), ())],
            &mut random,
            MAX_TARGETS,
        );
        let names: Vec<_> = ordered.iter().map(|(r, ())| r.target.as_str()).collect();
        assert_eq!(names, ["b", "a"]);
    }

    #[test]
    fn xmpps_and_xmpp_mix_as_one_set() {
        let (mut random, _) = scripted(&[]);
        let targets = order_targets(
            "example.org",
            SrvAnswer::Records(vec![
                rec(10, 0, 443, "tls.example.org"),
                rec(30, 0, 5270, "tls2.example.org"),
            ]),
            SrvAnswer::Records(vec![
                rec(5, 0, 5269, "first.example.org"),
                rec(10, 0, 5269, "plain.example.org"),
            ]),
            &mut random,
        )
        .unwrap();
        assert_eq!(
            targets,
            [
                Target {
                    host: "first.example.org".into(),
                    port: 5269,
                    direct_tls: false
                },
                // Equal priority, all weights 0: direct TLS listed (and so tried) first.
                Target {
                    host: "tls.example.org".into(),
                    port: 443,
                    direct_tls: true
                },
                Target {
                    host: "plain.example.org".into(),
                    port: 5269,
                    direct_tls: false
                },
                Target {
                    host: "tls2.example.org".into(),
                    port: 5270,
                    direct_tls: true
                },
            ]
        );

        // Weights mix across the two services too: running sums tls 1, plain 4; a draw of 2
        // picks the STARTTLS record first.
        let (mut random, asked) = scripted(&[2]);
        let targets = order_targets(
            "example.org",
            SrvAnswer::Records(vec![rec(10, 1, 443, "tls")]),
            SrvAnswer::Records(vec![rec(10, 3, 5269, "plain")]),
            &mut random,
        )
        .unwrap();
        assert_eq!(hosts(&targets), ["plain", "tls"]);
        assert_eq!(asked.borrow()[0], 4);
    }

    #[test]
    fn dot_on_xmpp_server_means_no_service_unless_xmpps_has_records() {
        let dot = || SrvAnswer::Records(vec![rec(0, 0, 0, ".")]);
        let (mut random, _) = scripted(&[]);
        assert_eq!(
            order_targets("example.org", SrvAnswer::NoRecords, dot(), &mut random),
            Err(ResolveError::NoService)
        );
        let targets = order_targets(
            "example.org",
            SrvAnswer::Records(vec![rec(1, 0, 5223, "tls.example.org")]),
            dot(),
            &mut random,
        )
        .unwrap();
        assert_eq!(
            targets,
            [Target {
                host: "tls.example.org".into(),
                port: 5223,
                direct_tls: true
            }]
        );
        // Both declined.
        assert_eq!(
            order_targets("example.org", dot(), dot(), &mut random),
            Err(ResolveError::NoService)
        );
    }

    #[test]
    fn dot_on_xmpps_server_forbids_the_fallback() {
        let dot = || SrvAnswer::Records(vec![rec(0, 0, 0, ".")]);
        let (mut random, _) = scripted(&[]);
        // XEP-0368 §5: no direct TLS, no A/AAAA fallback either.
        assert_eq!(
            order_targets("example.org", dot(), SrvAnswer::NoRecords, &mut random),
            Err(ResolveError::NoService)
        );
        // ... but the STARTTLS records are used.
        let targets = order_targets(
            "example.org",
            dot(),
            SrvAnswer::Records(vec![rec(1, 0, 5269, "xmpp.example.org")]),
            &mut random,
        )
        .unwrap();
        assert_eq!(hosts(&targets), ["xmpp.example.org"]);
    }

    #[test]
    fn unusable_records_are_dropped() {
        // "." among real targets, and port 0, name nowhere to connect to.
        let targets = starttls(vec![
            rec(1, 0, 5269, "."),
            rec(2, 0, 0, "zero-port.example.org"),
            rec(3, 0, 5269, "real.example.org"),
        ])
        .unwrap();
        assert_eq!(hosts(&targets), ["real.example.org"]);
        // Only unusable records: published, but nothing to dial; no fallback.
        assert_eq!(
            starttls(vec![rec(1, 0, 0, "x.example.org")]),
            Err(ResolveError::NoService)
        );
        assert_eq!(
            starttls(vec![rec(1, 0, 1, "."), rec(2, 0, 1, ".")]),
            Err(ResolveError::NoService)
        );
    }

    #[test]
    fn no_records_falls_back_to_the_domain() {
        let (mut random, _) = scripted(&[]);
        assert_eq!(
            order_targets(
                "example.org",
                SrvAnswer::NoRecords,
                SrvAnswer::NoRecords,
                &mut random
            ),
            Ok(vec![Target {
                host: "example.org".into(),
                port: 5269,
                direct_tls: false
            }])
        );
        // An empty record list (not produced by hickory, but possible in principle) is the
        // same as none.
        assert_eq!(
            order_targets(
                "example.org",
                SrvAnswer::Records(vec![]),
                SrvAnswer::NoRecords,
                &mut random
            ),
            Ok(vec![Target {
                host: "example.org".into(),
                port: 5269,
                direct_tls: false
            }])
        );
    }

    #[test]
    fn failures_are_dns_errors_unless_the_other_side_has_records() {
        let (mut random, _) = scripted(&[]);
        let failed = || SrvAnswer::Failed("SERVFAIL".into());
        for (xmpps, xmpp) in [
            (failed(), SrvAnswer::NoRecords),
            (SrvAnswer::NoRecords, failed()),
            (failed(), failed()),
            // The failed side might have had records: no NoService, no fallback.
            (failed(), SrvAnswer::Records(vec![rec(0, 0, 0, ".")])),
            (SrvAnswer::Records(vec![rec(0, 0, 0, ".")]), failed()),
        ] {
            assert!(matches!(
                order_targets("example.org", xmpps, xmpp, &mut random),
                Err(ResolveError::Dns(text)) if text.contains("SERVFAIL")
            ));
        }
        let targets = order_targets(
            "example.org",
            failed(),
            SrvAnswer::Records(vec![rec(1, 0, 5269, "xmpp.example.org")]),
            &mut random,
        )
        .unwrap();
        assert_eq!(hosts(&targets), ["xmpp.example.org"]);
    }

    #[test]
    fn targets_are_bounded_lowest_priorities_first() {
        let records: Vec<_> = (0..1000u16)
            .rev()
            .map(|i| rec(i, 1, 5269, &format!("h{i}")))
            .collect();
        let targets = starttls(records).unwrap();
        assert_eq!(targets.len(), MAX_TARGETS);
        let expected: Vec<String> = (0..MAX_TARGETS).map(|i| format!("h{i}")).collect();
        assert_eq!(hosts(&targets), expected);
    }

    #[test]
    fn builds_outside_a_runtime() {
        // Configuration is loaded at startup, possibly before the runtime exists.
        let resolver = Resolver::new(ResolverConfig {
            nameserver: Some(SocketAddr::from(([127, 0, 0, 1], 53))),
            overrides: HashMap::from([("Example.ORG.".to_owned(), vec![("h".to_owned(), 1)])]),
            timeout: Duration::from_secs(1),
        })
        .unwrap();
        assert!(resolver.overrides.contains_key("example.org"));
    }

    #[test]
    fn helpers() {
        assert_eq!(normalise_domain("Example.ORG."), "example.org");
        assert_eq!(parse_ip_literal("[::1]"), Some("::1".parse().unwrap()));
        assert_eq!(
            parse_ip_literal("192.0.2.1"),
            Some("192.0.2.1".parse().unwrap())
        );
        assert_eq!(parse_ip_literal("example.org"), None);
        assert!(!usable_ip("0.0.0.0".parse().unwrap()));
        assert!(!usable_ip("::ffff:0.0.0.0".parse().unwrap()));
        assert!(!usable_ip("224.0.0.1".parse().unwrap()));
        assert!(!usable_ip("255.255.255.255".parse().unwrap()));
        assert!(usable_ip("127.0.0.2".parse().unwrap()));
        assert!(dns_name(None, "").is_err());
        assert!(dns_name(None, ".").is_err());
        assert!(dns_name(None, "a..b").is_err());
        assert_eq!(
            dns_name(Some("_xmpp-server._tcp"), "Bücher.example")
                .unwrap()
                .to_ascii(),
            "_xmpp-server._tcp.xn--bcher-kva.example."
        );
        let long = bounded("é".repeat(MAX_ERROR_TEXT));
        assert!(long.len() <= MAX_ERROR_TEXT + '…'.len_utf8());
        assert!(long.ends_with('…'));
        assert_eq!(bounded("short".into()), "short");
    }
}
