//! The router: where every stanza from a local session goes (RFC 6120 10, RFC 6121 8.5).
//!
//! Destinations are the server itself, a local account (bare JID), a local session (full
//! JID), a pubsub service, or another domain. Every stanza for another domain goes
//! through [`Router::route_remote`] (`remote.rs`), the one place that decides what
//! happens to it: s2s takes it once the Federation issue lands; until then it is bounced
//! with `<remote-server-not-found/>` (never dropped silently), except broadcast presence.

pub mod origin;
pub mod remote;
pub mod sessions;

use std::sync::Arc;

use hydrant_c2s::{Backend, RegisterError, SessionInfo};
use hydrant_proto::scram::StoredCredentials;
use hydrant_proto::{
    BareJid, Element, FullJid, Jid, Stanza, StanzaError, StanzaErrorCondition as Cond, StreamError,
    StreamErrorCondition, error_reply, ns,
};
use hydrant_storage::StorageError;
use hydrant_stream::outbox::Outbox;
use tracing::{info, warn};

use crate::im::blocklist::Blocklist;
use crate::store::Db;
use sessions::{LocalSession, Sessions};

/// Router settings from the config file.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    pub offline_max: usize,
    pub registration_enabled: bool,
    pub min_password_length: usize,
    /// Most accounts registration may create (0: unlimited).
    pub max_accounts: u64,
    pub scram_iterations: u32,
    pub max_roster_items: usize,
    pub max_directed_presence: usize,
    /// Publisher pacing threshold in queued bytes per recipient (0: off), see
    /// `pubsub::pace`.
    pub pace_queued_bytes: usize,
    pub pace_max_wait: std::time::Duration,
    /// `[roster] max_groups_per_item`.
    pub max_roster_groups: usize,
    /// `[roster] max_name_bytes`: roster item and group names.
    pub max_roster_name_bytes: usize,
    /// `[roster] max_pending_subscriptions`.
    pub max_pending_subscriptions: usize,
    /// `[c2s] max_sessions_per_account`: bound resources of one account at once.
    pub max_sessions_per_account: usize,
    /// `[pubsub] caps_cache_bytes`: the verified entity-capabilities cache.
    pub caps_cache_bytes: usize,
    /// `[pubsub] read_bytes_per_ip_per_sec` and `read_burst_bytes_per_ip` (0: off).
    pub read_bytes_per_ip_per_sec: u64,
    pub read_burst_bytes_per_ip: u64,
    /// `[pubsub] max_concurrent_reads`, resolved (0 became the number of cores).
    pub max_concurrent_reads: usize,
    /// `[multicast]` (XEP-0033).
    pub multicast: crate::im::multicast::MulticastConfig,
    /// `[pubsub] max_remote_notify_resources`: other servers' resources tracked per
    /// account for PEP +notify.
    pub max_remote_notify_resources: usize,
    /// `[c2s] compression`: chain each node's notifications so compressed streams can
    /// refer back to the previous one (`stream::zlib`).
    pub chain_notifications: bool,
    /// `[pubsub] pep`: XEP-0163 personal eventing on every account.
    pub pep: bool,
    /// `[admin]`: XEP-0133 commands.
    pub admin: crate::im::adhoc::AdminConfig,
    /// `[blocking] max_items`: JIDs one account's XEP-0191 blocklist may hold.
    pub max_blocklist_items: usize,
    /// `[private]`: what one account may keep in XEP-0049 private XML storage.
    pub private_quota: hydrant_storage::PrivateQuota,
    /// `[vcard] max_bytes`: the largest XEP-0054 vCard an account may store.
    pub max_vcard_bytes: usize,
}

pub struct Router {
    pub domain: String,
    pub db: Db,
    pub sessions: Sessions,
    pub cfg: RouterConfig,
    pub pubsub: Arc<crate::pubsub::Hub>,
    /// Verified entity capabilities: `ver` -> nodes with +notify (XEP-0115, PEP),
    /// bounded in bytes.
    pub caps_cache: crate::pubsub::caps::CapsCache,
    /// Reply bytes of pubsub and MAM requests per client network (`pubsub/reads.rs`).
    pub reads: crate::pubsub::reads::ReadShaper,
    /// Pubsub and MAM reads handled at once (`[pubsub] max_concurrent_reads`).
    pub read_slots: tokio::sync::Semaphore,
    /// Accounts whose offline messages a session is delivering right now (one session
    /// per account at a time, `im/backlog.rs`).
    pub offline_claims: dashmap::DashSet<String>,
    /// Other domains (`remote.rs`): s2s once it is set, [`remote::NoFederation`] until.
    remote: std::sync::OnceLock<Box<dyn remote::RemoteDomains>>,
    /// This router, for tasks it spawns.
    pub me: std::sync::Weak<Router>,
    next_query: std::sync::atomic::AtomicU64,
    /// Held from the account count to the insert, so concurrent registrations cannot
    /// pass `max_accounts` together.
    creating_account: tokio::sync::Mutex<()>,
    /// Which other servers are multicast services (XEP-0033), as they answered.
    pub multicast_peers: crate::im::multicast::Peers,
    /// Other servers' resources and their PEP +notify interest, per local account.
    pub remote_notify: crate::pubsub::remote_notify::RemoteNotify,
    /// Held across a blocklist change's store write and its update in memory, so changes
    /// reach memory in the order they reached the store (`im/blocking.rs`).
    pub(crate) blocklist_writes: tokio::sync::Mutex<()>,
    /// Counts blocklist changes: a bind whose load raced a change loads again.
    pub(crate) blocklist_changes: std::sync::atomic::AtomicU64,
}

/// Where a stanza's `to` points. Borrowed from the address, so that classifying costs
/// no allocation: the fan-out classifies every recipient of every publish.
#[derive(Clone, Copy)]
pub enum Dest<'a> {
    /// The server itself (no `to`, or our domain).
    Server,
    /// A local account's bare JID (the username).
    LocalBare(&'a str),
    /// A local full JID.
    LocalFull(&'a FullJid),
    /// A pubsub component of this server (by address).
    Service(&'a str),
    /// Another domain.
    Remote(&'a Jid),
}

impl Router {
    pub fn new(domain: String, db: Db, cfg: RouterConfig, pubsub: crate::pubsub::Hub) -> Arc<Self> {
        Arc::new_cyclic(|me| Router {
            domain,
            db,
            sessions: Sessions::default(),
            caps_cache: crate::pubsub::caps::CapsCache::new(cfg.caps_cache_bytes),
            reads: crate::pubsub::reads::ReadShaper::new(
                cfg.read_bytes_per_ip_per_sec,
                cfg.read_burst_bytes_per_ip,
            ),
            read_slots: tokio::sync::Semaphore::new(cfg.max_concurrent_reads.max(1)),
            cfg,
            pubsub: Arc::new(pubsub),
            offline_claims: dashmap::DashSet::new(),
            remote: std::sync::OnceLock::new(),
            me: me.clone(),
            next_query: std::sync::atomic::AtomicU64::new(1),
            creating_account: tokio::sync::Mutex::new(()),
            multicast_peers: crate::im::multicast::Peers::default(),
            remote_notify: crate::pubsub::remote_notify::RemoteNotify::default(),
            blocklist_writes: tokio::sync::Mutex::new(()),
            blocklist_changes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// A fresh number for server-originated iq ids.
    pub fn next_query_id(&self) -> u64 {
        self.next_query
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn classify<'a>(&self, to: Option<&'a Jid>) -> Dest<'a> {
        let Some(to) = to else { return Dest::Server };
        let domain = to.domain().as_str();
        if domain != self.domain {
            if self.pubsub.is_component(domain) {
                return Dest::Service(domain);
            }
            return Dest::Remote(to);
        }
        match (to.node(), to.try_as_full()) {
            (None, _) => Dest::Server,
            (Some(_), Ok(full)) => Dest::LocalFull(full),
            (Some(n), Err(_)) => Dest::LocalBare(n.as_str()),
        }
    }

    /// The local username of a bare JID string in this domain (compared as a JID, so
    /// case and other normalisation do not matter); `None` for other domains, servers
    /// and services.
    pub fn local_user_of(&self, jid: &str) -> Option<String> {
        let j = BareJid::new(jid).ok()?;
        (j.domain().as_str() == self.domain)
            .then(|| j.node().map(|n| n.as_str().to_owned()))
            .flatten()
    }

    pub fn bare_of(&self, user: &str) -> String {
        format!("{user}@{}", self.domain)
    }

    /// Sends an error reply to the sender of `original` (never for an error stanza).
    pub fn bounce(&self, original: &Element, err: StanzaError) {
        if original.attr("type") == Some("error") {
            return;
        }
        let reply = error_reply(original, &err);
        self.deliver_element(reply);
    }

    /// Delivers an element by its `to` as is (used for replies and errors generated by
    /// the server): to local sessions, to a pubsub service (errors returned for its
    /// notifications), or to another domain.
    pub fn deliver_element(&self, el: Element) {
        let to = el.attr("to").and_then(|t| Jid::new(t).ok());
        match self.classify(to.as_ref()) {
            Dest::LocalFull(full) => {
                if let Some(s) = self.sessions.get(full) {
                    s.send(&el);
                }
            }
            Dest::LocalBare(user) => {
                for s in self.sessions.of_user(user) {
                    s.send(&el);
                }
            }
            Dest::Service(addr) => self.to_service(addr, &el),
            // Never bounced again: what the server generates is a reply or an error.
            Dest::Remote(to) => self.route_remote(to, el, remote::OnRefusal::Drop),
            Dest::Server => {}
        }
    }

    /// Whether an account exists.
    pub async fn account_exists(&self, user: &str) -> bool {
        let u = user.to_owned();
        self.db
            .run(move |s| s.account_exists(&u))
            .await
            .unwrap_or(false)
    }

    async fn derive(&self, password: String) -> StoredCredentials {
        // PBKDF2 runs: what registration and password changes cost the server's CPU.
        metrics::counter!("hydrant_scram_key_derivations_total").increment(1);
        let it = self.cfg.scram_iterations;
        tokio::task::spawn_blocking(move || StoredCredentials::from_password(&password, it))
            .await
            .expect("credential derivation does not panic")
    }

    /// `NotAllowed` when `[registration] max_accounts` accounts exist already.
    async fn account_cap_reached(&self) -> Result<(), RegisterError> {
        let max = self.cfg.max_accounts;
        if max == 0 {
            return Ok(());
        }
        match self.db.run(|s| s.count_accounts()).await {
            Ok(n) if n < max => Ok(()),
            Ok(_) => {
                info!(max, "registration refused: the account cap is reached");
                Err(RegisterError::NotAllowed)
            }
            Err(e) => {
                warn!(error = %e, "registration: account count failed");
                Err(RegisterError::Internal)
            }
        }
    }

    /// Creates or updates credentials (registration, password change, admin CLI).
    pub async fn set_password(
        &self,
        user: &str,
        password: &str,
        create: bool,
    ) -> Result<(), StorageError> {
        let creds = self.derive(password.to_owned()).await;
        let u = user.to_owned();
        self.db
            .run(move |s| {
                if create {
                    s.create_account(&u, &creds)
                } else if s.set_credentials(&u, &creds)? {
                    Ok(())
                } else {
                    Err(StorageError::NotFound)
                }
            })
            .await
    }

    /// A session is gone: it owes its contacts an unavailable presence if it was
    /// available (RFC 6121 4.5.3), except those its account blocks (`blocked`, taken
    /// before the session left: the account's last session takes its list along).
    async fn session_ended(&self, s: &LocalSession, blocked: Option<&Blocklist>) {
        let was_available = s.state().available;
        if was_available {
            let unavailable = Element::new("presence", ns::CLIENT)
                .with_attr("type", "unavailable")
                .with_attr("from", s.info.jid.to_string());
            self.broadcast_presence_except(s, unavailable, blocked)
                .await;
        }
    }
}

impl Backend for Router {
    async fn credentials(&self, username: &str) -> Option<StoredCredentials> {
        let u = username.to_owned();
        match self.db.run(move |s| s.credentials(&u)).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "credential lookup failed");
                None
            }
        }
    }

    async fn register(&self, username: &str, password: &str) -> Result<(), RegisterError> {
        if !self.cfg.registration_enabled {
            return Err(RegisterError::NotAcceptable);
        }
        if password.chars().count() < self.cfg.min_password_length {
            return Err(RegisterError::NotAcceptable);
        }
        // Everything that can refuse the name is checked before the keys are derived:
        // PBKDF2 is the expensive part, and must not be had for a name that cannot be
        // registered. The name must already be nodeprep'd (RFC 7622 3.3, which bounds
        // its length too).
        if jid::NodePart::new(username).map_or(true, |n| n.as_str() != username) {
            return Err(RegisterError::NotAcceptable);
        }
        let u = username.to_owned();
        match self.db.run(move |s| s.account_exists(&u)).await {
            Ok(false) => {}
            Ok(true) => return Err(RegisterError::Conflict),
            Err(e) => {
                warn!(error = %e, "registration: account lookup failed");
                return Err(RegisterError::Internal);
            }
        }
        self.account_cap_reached().await?;
        let creds = self.derive(password.to_owned()).await;
        let _creating = self.creating_account.lock().await;
        // Again: others may have registered while the keys were derived.
        self.account_cap_reached().await?;
        let u = username.to_owned();
        match self.db.run(move |s| s.create_account(&u, &creds)).await {
            Ok(()) => Ok(()),
            Err(StorageError::AlreadyExists) => Err(RegisterError::Conflict),
            Err(e) => {
                warn!(error = %e, "registration failed");
                Err(RegisterError::Internal)
            }
        }
    }

    async fn bind(
        &self,
        session: &SessionInfo,
        outbox: Arc<Outbox>,
        result: bytes::Bytes,
    ) -> Result<(), StanzaError> {
        let s = Arc::new(LocalSession::new(session.clone(), outbox));
        let max = self.cfg.max_sessions_per_account;
        let user = sessions::username(&session.jid);
        let changes = self
            .blocklist_changes
            .load(std::sync::atomic::Ordering::Acquire);
        let blocked = self.load_blocklist(&user).await;
        let Ok(replaced) = self.sessions.insert(s, max, result, blocked) else {
            // RFC 6120 7.6.2.1: the account has reached its limit of simultaneously
            // connected resources.
            return Err(StanzaError::new(Cond::ResourceConstraint)
                .with_type(hydrant_proto::ErrorType::Wait)
                .with_text(format!("at most {max} sessions per account")));
        };
        if let Some(old) = replaced {
            info!(jid = %old.info.jid, "resource conflict: replacing the older session");
            let mut bytes = StreamError::new(StreamErrorCondition::Conflict)
                .with_text("replaced by a new session with the same resource")
                .to_bytes();
            bytes.extend_from_slice(b"</stream:stream>");
            old.outbox.close_after(Some(bytes.into()));
            let blocked = self.sessions.blocklist(&user).flatten();
            self.session_ended(&old, blocked.as_deref()).await;
        }
        if self
            .blocklist_changes
            .load(std::sync::atomic::Ordering::Acquire)
            != changes
        {
            // A blocklist changed while this one was read: if it was this account's, and
            // its other sessions ended meanwhile, what was read is stale.
            self.reload_blocklist(&user).await;
        }
        Ok(())
    }

    async fn stanza(&self, session: &SessionInfo, stanza: Stanza) {
        let Some(me) = self.sessions.by_id(session) else {
            return;
        };
        if me.outbox.is_closing() {
            // The server is ending this session (account removed, password changed,
            // replaced): what it still sends is not acted on.
            return;
        }
        self.route(origin::Origin::Session(&me), stanza).await;
    }

    async fn undelivered(&self, session: &SessionInfo, stanzas: Vec<Element>) {
        self.undelivered_stanzas(session, stanzas).await;
    }

    async fn unbind(&self, session: &SessionInfo) {
        let blocked = self
            .sessions
            .blocklist(&sessions::username(&session.jid))
            .flatten();
        if let Some(s) = self.sessions.remove(session) {
            // Nobody drains this queue any more: whoever waits for room in it (a backlog
            // delivery) must learn that it is closed, not wait forever.
            s.outbox.close_after(None);
            self.session_ended(&s, blocked.as_deref()).await;
        }
    }
}
