//! PubSub services in the server: `pubsub.<domain>` components and PEP on every account,
//! all on the `hydrant-pubsub` core, persisted in the embedded store.
//!
//! A request runs on the blocking pool (the core is synchronous and its store writes
//! reach the disk before it returns, so an acknowledged publish is durable); the reply
//! and the effects (notifications, last items, approval requests) are then carried out
//! by the router, with the fan-out in `fanout.rs`. XEP-0313 queries on nodes (catch-up)
//! are answered by `mam.rs`.

pub mod caps;
pub mod fanout;
pub mod mam;
pub mod pacing;
pub mod pep;
pub mod reads;
pub mod relations;
pub mod remote_notify;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use hydrant_proto::{BareJid, Element, Iq, Jid, StanzaError, StanzaErrorCondition as Cond, ns};
use hydrant_pubsub::{Effect, Error as PsError, Event, Handled, Service, ServiceConfig, xep0060};
use hydrant_storage::{SqlitePubsubStore, SqliteStore};
use hydrant_stream::outbox::Outbox;
use hydrant_stream::{Frame, StanzaKind};
use tracing::{debug, warn};

use crate::router::Router;
use crate::router::origin::Origin;
use crate::router::remote::OnRefusal;
use crate::router::sessions::LocalSession;
use fanout::Prepared;
use relations::StoreRelations;

type Svc = Arc<Mutex<Service<SqlitePubsubStore>>>;

/// Which service a request is for.
#[derive(Debug, Clone)]
pub enum ServiceKey {
    /// A `pubsub.<domain>` component, by address.
    Component(String),
    /// An account's PEP service, by bare JID.
    Pep(String),
}

/// All pubsub services of the server.
pub struct Hub {
    components: HashMap<String, Svc>,
    pep: DashMap<String, Svc>,
    sqlite: Arc<SqliteStore>,
    pep_cfg: ServiceConfig,
    pub relations: Arc<StoreRelations>,
    /// Escaped subscriber addresses per node snapshot, for the fan-out.
    pub addresses: fanout::AddressCache,
}

impl Hub {
    /// Opens every configured component service (loading its state from the store).
    pub fn open(
        sqlite: Arc<SqliteStore>,
        components: &[(String, ServiceConfig)],
        pep_cfg: ServiceConfig,
        relations: StoreRelations,
    ) -> anyhow::Result<Self> {
        let mut map = HashMap::new();
        for (addr, cfg) in components {
            let jid = Jid::new(addr)?;
            // `mam.rs` answers XEP-0313 queries on every node: disco says so.
            let cfg = ServiceConfig {
                mam: true,
                ..cfg.clone()
            };
            let svc = Service::open(jid, sqlite.pubsub(addr), cfg)
                .map_err(|e| anyhow::anyhow!("opening pubsub service {addr}: {e}"))?;
            map.insert(addr.clone(), Arc::new(Mutex::new(svc)));
        }
        Ok(Hub {
            components: map,
            pep: DashMap::new(),
            sqlite,
            pep_cfg: ServiceConfig {
                mam: true,
                ..pep_cfg
            },
            relations: Arc::new(relations),
            addresses: fanout::AddressCache::default(),
        })
    }

    pub fn is_component(&self, domain: &str) -> bool {
        self.components.contains_key(domain)
    }

    pub fn component_addresses(&self) -> impl Iterator<Item = &String> {
        self.components.keys()
    }

    /// The service for a key, opening an account's PEP service on first use. Blocking
    /// (it may load from the store): call from the blocking pool.
    pub fn service(&self, key: &ServiceKey) -> Result<Svc, PsError> {
        match key {
            ServiceKey::Component(a) => {
                self.components.get(a).cloned().ok_or(PsError::NodeNotFound)
            }
            ServiceKey::Pep(bare) => {
                if let Some(s) = self.pep.get(bare) {
                    return Ok(s.clone());
                }
                let jid = Jid::new(bare).map_err(|_| PsError::JidMalformed)?;
                let svc = Service::open(jid, self.sqlite.pubsub(bare), self.pep_cfg.clone())?;
                Ok(self
                    .pep
                    .entry(bare.clone())
                    .or_insert_with(|| Arc::new(Mutex::new(svc)))
                    .clone())
            }
        }
    }

    /// An account's PEP service if it is open or has nodes in the store (an account
    /// without PEP nodes is not kept open). Blocking: call from the blocking pool.
    pub fn pep_if_any(&self, bare: &str) -> Result<Option<Svc>, PsError> {
        if let Some(s) = self.pep.get(bare) {
            return Ok(Some(s.clone()));
        }
        let jid = Jid::new(bare).map_err(|_| PsError::JidMalformed)?;
        let svc = Service::open(jid, self.sqlite.pubsub(bare), self.pep_cfg.clone())?;
        if svc.node_names().next().is_none() {
            return Ok(None);
        }
        Ok(Some(
            self.pep
                .entry(bare.to_owned())
                .or_insert_with(|| Arc::new(Mutex::new(svc)))
                .clone(),
        ))
    }

    /// Forgets an account's PEP service and deletes its nodes (account deleted).
    /// Removes every trace of `bare` (a removed account) from the other services:
    /// first its rows on every PEP service, open or not, then, in memory and store, on
    /// every open service (components delete the nodes it owned alone). Blocking: call
    /// from the blocking pool. Returns each service's effects (delete notifications).
    pub fn forget_entity(&self, bare: &BareJid) -> Vec<(Jid, Vec<Effect>)> {
        if let Err(e) = self.sqlite.delete_pep_entity(bare.as_str()) {
            warn!(error = %e, jid = %bare, "could not delete a removed account's PEP rows");
        }
        let open: Vec<Svc> = self
            .components
            .values()
            .cloned()
            .chain(self.pep.iter().map(|e| e.value().clone()))
            .collect();
        let mut out = Vec::new();
        for svc in open {
            let mut g = lock(&svc);
            match g.forget(bare) {
                Ok(effects) => out.push((g.address().clone(), effects)),
                Err(e) => warn!(
                    error = %e, jid = %bare, service = %g.address(),
                    "could not remove a removed account's pubsub state"
                ),
            }
        }
        out
    }

    pub fn drop_pep(&self, bare: &str) -> Result<(), hydrant_storage::StorageError> {
        self.pep.remove(bare);
        self.addresses.forget_service(bare);
        self.sqlite.delete_pubsub_service(bare)
    }
}

pub fn lock(s: &Svc) -> MutexGuard<'_, Service<SqlitePubsubStore>> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Router {
    /// An iq with a pubsub or disco payload for a pubsub service.
    pub async fn pubsub_iq(&self, origin: Origin<'_>, iq: Iq, key: ServiceKey) {
        if !iq.kind.is_request() {
            return;
        }
        let Some(payload) = iq.payload.clone() else {
            return self.iq_error(origin, &iq, StanzaError::new(Cond::BadRequest));
        };
        // A network past its read budget waits here, before the request is handled.
        if let Some(ip) = origin.network() {
            self.reads.wait(ip).await;
        }
        // Reads (items, archive pages) take one of a few slots: however many sessions
        // ask at once, only that many pages are being read, parsed and held in memory,
        // and a publish waits for the service lock behind at most that many.
        let read = payload.ns() == mam::MAM
            || (iq.kind == hydrant_proto::IqType::Get
                && payload.get_child("items", ns::PUBSUB).is_some());
        let _slot = if read {
            self.read_slots.acquire().await.ok()
        } else {
            None
        };
        if payload.ns() == mam::MAM {
            return self.mam_iq(origin, iq, payload, key).await;
        }
        let hub = self.pubsub.clone();
        let from: Jid = origin.jid();
        let kind = iq.kind;
        let work = move || {
            let svc = hub.service(&key)?;
            let req = xep0060::parse(kind, &payload)?;
            let mut g = lock(&svc);
            let addr = g.address().clone();
            // Items: checked under the lock, read after it (a page is read from storage
            // and parsed without keeping publishes to the service waiting).
            if let Some(read) = g.items_read(&from, &req, &*hub.relations, now_ms()) {
                let read = read?;
                drop(g);
                return Ok(Worked::Done(addr, read.run()?));
            }
            let staged = match g.handle_staged(&from, req, &*hub.relations, now_ms())? {
                Handled::Done(outcome) => {
                    return Ok::<_, PsError>(Worked::Done(addr, outcome));
                }
                Handled::Staged(staged) => staged,
            };
            // A publish or subscribe: the service is let go while its commit (an fsync,
            // shared with every write queued meanwhile) happens; then a publish's
            // notifications leave in seq order per node (`pubsub/src/service/staged.rs`).
            drop(g);
            let commit = staged.wait();
            let finished = lock(&svc).finish(commit);
            Ok(Worked::Staged {
                svc,
                addr,
                reply: finished.reply?,
                effects: finished.effects,
                drain: finished.drain,
            })
        };
        match block_or_spawn(work).await {
            Ok(Ok(Worked::Done(addr, outcome))) => {
                self.pubsub_reply(origin, &iq, outcome.reply);
                let sample = self.run_effects_sampled(&addr, outcome.effects).await;
                self.pace(&sample).await;
            }
            Ok(Ok(Worked::Staged {
                svc,
                addr,
                reply,
                effects,
                drain,
            })) => {
                self.pubsub_reply(origin, &iq, reply);
                let Some(node) = drain else {
                    self.run_effects(&addr, effects).await;
                    return;
                };
                let mut drain = Drain {
                    router: self.me.clone(),
                    svc,
                    addr,
                    node,
                    next: Some(effects),
                };
                let sample = drain.run(self).await;
                self.pace(&sample).await;
            }
            Ok(Err(e)) => self.iq_error(origin, &iq, xep0060::error::to_stanza_error(&e)),
            Err(e) => {
                warn!(error = %e, "pubsub task failed");
                self.iq_error(origin, &iq, StanzaError::new(Cond::InternalServerError));
            }
        }
    }

    fn pubsub_reply(&self, origin: Origin<'_>, iq: &Iq, payload: Option<Element>) {
        let reply = iq
            .result(payload)
            .to_element(ns::CLIENT)
            .to_bytes(ns::CLIENT);
        if let Some(ip) = origin.network() {
            self.reads.charge(ip, reply.len());
        }
        self.reply_frame(
            origin,
            Frame::Stanza(StanzaKind::Iq, bytes::Bytes::from(reply)),
        );
    }

    /// A `<message/>` to a pubsub service: the owner's answer to an approval request
    /// (XEP-0060 8.6). Anything else is refused.
    pub async fn pubsub_message(&self, origin: Origin<'_>, addr: String, el: Element) {
        let Some(form) = el.get_child("x", ns::DATA_FORMS).cloned() else {
            return self.bounce(&el, StanzaError::new(Cond::ServiceUnavailable));
        };
        let hub = self.pubsub.clone();
        let from: Jid = origin.jid();
        let result = tokio::task::spawn_blocking(move || {
            let svc = hub.service(&ServiceKey::Component(addr))?;
            let req = xep0060::parse_authorization(&form)?;
            let mut g = lock(&svc);
            let outcome = g.handle(&from, req, &*hub.relations, now_ms())?;
            Ok::<_, PsError>((g.address().clone(), outcome))
        })
        .await;
        match result {
            Ok(Ok((addr, outcome))) => self.run_effects(&addr, outcome.effects).await,
            Ok(Err(e)) => self.bounce(&el, xep0060::error::to_stanza_error(&e)),
            Err(_) => self.bounce(&el, StanzaError::new(Cond::InternalServerError)),
        }
    }

    /// Carries out what the core asked for, in order.
    pub async fn run_effects(&self, addr: &Jid, effects: Vec<Effect>) {
        self.run_effects_sampled(addr, effects).await;
    }

    /// [`run_effects`](Self::run_effects), returning a sample of the queues the last
    /// notification went to (for [`pace`](Self::pace)).
    async fn run_effects_sampled(&self, addr: &Jid, effects: Vec<Effect>) -> Vec<Arc<Outbox>> {
        let mut sample = Vec::new();
        for e in effects {
            match e {
                Effect::Notify(n) => {
                    let event = xep0060::event::render(&n);
                    let prepared = Prepared::new(addr, n.notification_type, &event);
                    let stats = self.fan_out(addr, &n, &prepared);
                    sample = stats.sample;
                    // Other servers behind: wait for them (their queues would otherwise
                    // fill and refuse notifications).
                    for (domain, backlog) in stats.backlogs {
                        if backlog.over() {
                            metrics::counter!("hydrant_pubsub_publisher_waited_for_peer_total")
                                .increment(1);
                            tracing::debug!(%domain, "publisher waits for another server");
                            backlog.wait().await;
                        }
                    }
                    // Subscription-state events concern their one recipient, not the
                    // owner's +notify contacts.
                    if addr.node().is_some() && !matches!(n.event, Event::Subscription { .. }) {
                        self.pep_implicit(addr, &n, &prepared).await;
                    }
                }
                Effect::SendLast {
                    to,
                    node,
                    items,
                    payloads,
                    notification_type,
                    subid,
                } => {
                    let event = xep0060::event::items_event(&node, &items, payloads);
                    let shim = subid.map(|s| xep0060::event::render_shim(&[s]));
                    let msg = xep0060::event::message(addr, &to, notification_type, event, shim);
                    self.deliver_one(addr, &to, notification_type, &msg);
                }
                Effect::ApprovalRequest {
                    to,
                    node,
                    subscriber,
                    subid,
                } => {
                    for owner in to {
                        let form =
                            xep0060::forms::authorization_request(&node, &subscriber, &subid);
                        let msg = Element::new("message", ns::CLIENT)
                            .with_attr("from", addr.to_string())
                            .with_attr("to", owner.to_string())
                            .with_child(form);
                        self.deliver_one(
                            addr,
                            &owner,
                            hydrant_pubsub::NotificationType::Normal,
                            &msg,
                        );
                    }
                }
            }
        }
        sample
    }

    /// Publisher pacing (`[pubsub] pace_queued_bytes`, see `pacing.rs`).
    pub async fn pace(&self, sample: &[Arc<Outbox>]) {
        let paced = pacing::pace(sample, self.cfg.pace_queued_bytes, self.cfg.pace_max_wait).await;
        if paced != pacing::Paced::NotNeeded {
            metrics::counter!("hydrant_pubsub_publisher_paced_total").increment(1);
        }
        if paced == pacing::Paced::TimedOut {
            metrics::counter!("hydrant_pubsub_publisher_pacing_timeouts_total").increment(1);
        }
    }

    /// A stanza the server itself addressed to a pubsub service: the errors its
    /// notifications and messages came back with (another domain refused them,
    /// `router/remote.rs`). Counted and logged, and the subscription kept: XEP-0060 leaves
    /// what to do to the service, and a peer that cannot be reached now may be back at
    /// the next publish (its subscriber then catches up from the node's items).
    pub fn to_service(&self, addr: &str, el: &Element) {
        if el.attr("type") != Some("error") {
            debug!(
                service = addr,
                name = el.name(),
                "stanza for a pubsub service dropped"
            );
            return;
        }
        metrics::counter!("hydrant_pubsub_notifications_undeliverable_total").increment(1);
        debug!(
            service = addr,
            from = el.attr("from"),
            "a notification came back with an error"
        );
    }

    /// One message from service `from` to one JID, with the subscriber delivery rules
    /// (and XEP-0191 3.3 both ways: not to a JID a PEP service's owner blocks, nor to an
    /// account that blocks the service).
    pub fn deliver_one(
        &self,
        from: &Jid,
        to: &Jid,
        kind: hydrant_pubsub::NotificationType,
        msg: &Element,
    ) {
        if self.pep_owner_blocklist(from).is_some_and(|b| b.blocks(to)) {
            return;
        }
        let dest = self.classify(Some(to));
        if let crate::router::Dest::Remote(to) = dest {
            return self.route_remote(to, msg.clone(), OnRefusal::ToService);
        }
        let sub = hydrant_pubsub::Subscriber {
            jid: to.clone(),
            subids: Vec::new(),
            show_values: Vec::new(),
            urgent: false,
        };
        let mut stats = fanout::FanoutStats::default();
        self.deliver_to_subscriber(
            from,
            &sub,
            dest,
            false,
            kind,
            &hydrant_stream::Frame::element(msg),
            &mut stats,
        );
    }

    /// `send_last_published_item = on_sub_and_presence` on the components: a session that
    /// just became available gets the last item of every node it is subscribed to.
    pub async fn component_last_items(&self, me: &LocalSession) {
        let to: Jid = me.info.jid.clone().into();
        let addrs: Vec<String> = self.pubsub.component_addresses().cloned().collect();
        for addr in addrs {
            let hub = self.pubsub.clone();
            let to = to.clone();
            let res = tokio::task::spawn_blocking(move || {
                let svc = hub.service(&ServiceKey::Component(addr))?;
                let g = lock(&svc);
                let effects = g.last_items_for(&to, None, &*hub.relations)?;
                Ok::<_, PsError>((g.address().clone(), effects))
            })
            .await;
            if let Ok(Ok((addr, effects))) = res {
                self.run_effects(&addr, effects).await;
            }
        }
    }

    /// Local `owner_user`'s relation with `contact` (a bare JID) ended or narrowed
    /// (roster item removed, presence subscription `from` cancelled, groups changed):
    /// `contact`'s subscriptions that the owner's `presence` / `roster` nodes no longer
    /// admit are removed and `contact` is told (XEP-0060 4.5, XEP-0163). Looks at the
    /// owner's PEP service (if it has nodes) and every component (only nodes the owner
    /// owns consult this relation).
    pub async fn revalidate_contact(&self, owner_user: &str, contact: &str) {
        let Ok(who) = hydrant_proto::BareJid::new(contact) else {
            return;
        };
        let Ok(owner) = hydrant_proto::BareJid::new(&self.bare_of(owner_user)) else {
            return;
        };
        let mut keys: Vec<ServiceKey> = vec![ServiceKey::Pep(self.bare_of(owner_user))];
        keys.extend(
            self.pubsub
                .component_addresses()
                .map(|a| ServiceKey::Component(a.clone())),
        );
        for key in keys {
            let hub = self.pubsub.clone();
            let (who, owner) = (who.clone(), owner.clone());
            let res = tokio::task::spawn_blocking(move || {
                let svc = match &key {
                    ServiceKey::Pep(bare) => match hub.pep_if_any(bare)? {
                        Some(s) => s,
                        None => return Ok(None),
                    },
                    ServiceKey::Component(_) => hub.service(&key)?,
                };
                let mut g = lock(&svc);
                // Only the owner's presence/roster nodes depend on this relation.
                let effects = g.revalidate_relation(&owner, &who, &*hub.relations)?;
                Ok::<_, PsError>(Some((g.address().clone(), effects)))
            })
            .await;
            match res {
                Ok(Ok(Some((addr, effects)))) => self.run_effects(&addr, effects).await,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    warn!(error = %e, %contact, "could not revalidate pubsub subscriptions");
                }
                Err(e) => warn!(error = %e, "pubsub revalidation task failed"),
            }
        }
    }

    /// Deletes a removed account's PEP nodes.
    pub async fn forget_pep(&self, user: &str) {
        let hub = self.pubsub.clone();
        let bare = self.bare_of(user);
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || hub.drop_pep(&bare)).await {
            warn!(error = %e, "could not delete the PEP nodes of a removed account");
        }
    }
}

/// What the blocking part of a pubsub request did.
enum Worked {
    Done(Jid, hydrant_pubsub::Outcome),
    /// A staged write, committed: its effects, and for a publish whose request drains
    /// its node's notifications, the node.
    Staged {
        svc: Svc,
        addr: Jid,
        reply: Option<Element>,
        effects: Vec<Effect>,
        drain: Option<hydrant_pubsub::NodeName>,
    },
}

/// A node's drainer (`pubsub/src/service/staged.rs`): sends the notifications of every
/// committed publish of the node in seq order, its own and those that commit while it
/// sends, until none are ready. If the request is dropped half way (its session went
/// away), the rest is drained by a task of its own: a node left marked as being drained
/// would never notify again.
struct Drain {
    router: std::sync::Weak<Router>,
    svc: Svc,
    addr: Jid,
    node: hydrant_pubsub::NodeName,
    /// Effects taken from the node and not yet sent; `None` once the node said "no more".
    next: Option<Vec<Effect>>,
}

impl Drain {
    /// Drains; returns a sample of the queues the last notification went to (pacing).
    async fn run(&mut self, router: &Router) -> Vec<Arc<Outbox>> {
        let mut sample = Vec::new();
        while let Some(effects) = self.next.take() {
            // Marked as still owed while it is sent: a drop mid-send re-sends nothing
            // twice, it just leaves these to the send already under way.
            self.next = Some(Vec::new());
            let s = router.run_effects_sampled(&self.addr, effects).await;
            if !s.is_empty() {
                sample = s;
            }
            // Straight on this thread, not `block_or_spawn`: taking the lock to pop a
            // queue is short (publishes no longer hold it across their commit), and a
            // block_in_place per publish hands the worker to another thread for nothing
            // (context switches were the largest cost of 200 publishers on one service).
            self.next = lock(&self.svc).drain_published(&self.node);
        }
        sample
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if self.next.is_none() {
            return;
        }
        let (Some(router), Ok(rt)) = (self.router.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let mut rest = Drain {
            router: self.router.clone(),
            svc: self.svc.clone(),
            addr: self.addr.clone(),
            node: self.node.clone(),
            next: self.next.take(),
        };
        rt.spawn(async move {
            rest.run(&router).await;
        });
    }
}

/// Runs service work that may block (the service mutex, a store commit) off the async
/// workers. block_in_place rather than spawn_blocking: when the commit is done this task
/// goes on at once. A spawn_blocking result wakes it through the runtime's global queue,
/// behind every subscriber connection the previous fan-out woke, so a publisher would get
/// one publish per full round of subscriber writes and every write would carry a single
/// notification; ahead of them, several publishes' notifications share one write
/// (DESIGN.md: many queued stanzas per syscall). `pace` keeps such a publisher from
/// running away from its subscribers. Current-thread runtimes (tests) cannot block in
/// place.
async fn block_or_spawn<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if tokio::runtime::Handle::current().runtime_flavor()
        == tokio::runtime::RuntimeFlavor::MultiThread
    {
        Ok(tokio::task::block_in_place(work))
    } else {
        tokio::task::spawn_blocking(work).await
    }
}
