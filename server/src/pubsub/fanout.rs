//! The hot path: one notification, N deliveries (DESIGN.md, "The hot path").
//!
//! The `<message/>` is serialised once into two shared parts: everything before the
//! recipient address and everything after it (type, id, the `<event/>` with its items
//! and payloads). Each recipient then costs its escaped address and one
//! [`Frame::Addressed`] (two `Arc`s and the address) pushed onto its connection's queue: no
//! per-recipient DOM, no per-recipient serialisation, and the shared parts stay
//! identifiable down to the socket (a compressing stream compresses them once). Subscriber lists are immutable snapshots, so no lock is held while
//! walking them; a full queue never slows the publisher (the outbox refuses at once and
//! that subscriber's stream is closed by its own task).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use hydrant_proto::writer::escape_attr_into;
use hydrant_proto::{Jid, ns};
use hydrant_pubsub::{NotificationType, Show, Subscriber, Subscribers, xep0060};
use hydrant_stream::outbox::Outbox;
use hydrant_stream::{Chain, Frame, Prev, Shared};
use tracing::debug;

use crate::im::blocklist::Blocklist;
use crate::router::remote::OnRefusal;
use crate::router::sessions::LocalSession;
use crate::router::{Dest, Router};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Recipients' queues sampled per fan-out for publisher pacing.
pub const PACE_SAMPLE: usize = 16;

/// Counters of what one fan-out did (logged at debug; metrics later).
#[derive(Debug, Default)]
pub struct FanoutStats {
    /// Every `sample_every`-th queue that accepted the notification, at most
    /// [`PACE_SAMPLE`] of them: how far behind the recipients are (pacing).
    pub sample: Vec<Arc<Outbox>>,
    sample_every: usize,
    pub queued: usize,
    /// Recipients whose queue refused (slow consumers: their streams are being closed).
    pub refused: usize,
    /// Recipients on other domains (handed to the routing point).
    pub remote: usize,
    /// The backlogs of the other servers this fan-out queued notifications for, one per
    /// domain: the publisher waits on those that are behind before it goes on.
    pub backlogs: Vec<(String, Box<dyn crate::router::remote::Backpressure>)>,
}

/// A notification serialised once: `head` + escaped recipient + `tail`.
pub struct Prepared {
    pub head: Arc<Shared>,
    pub tail: Arc<Shared>,
    /// `tail` marked urgent, for subscribers who asked for the node at once even while
    /// inactive (XEP-0352); made the first time one is met.
    urgent_tail: std::sync::OnceLock<Arc<Shared>>,
}

/// The escaped `to` address of every subscriber in a node's current snapshot, computed
/// once per snapshot (snapshots change only on subscribe/unsubscribe), so a publish costs
/// no allocation per recipient.
#[derive(Default)]
pub struct AddressCache {
    /// (service, node) -> (the snapshot it was built for, kept alive so its pointer
    /// cannot be reused by another snapshot, and the addresses in snapshot order).
    map: std::sync::Mutex<std::collections::HashMap<NodeKey, CachedAddrs>>,
}

type NodeKey = (String, String);

/// A node's cached addresses: the snapshot they were built for (kept alive so its pointer
/// cannot be reused by another snapshot), the addresses in snapshot order, their widest
/// escaped length, and the node's last chained notification (compression).
struct CachedAddrs {
    snapshot: Subscribers,
    addrs: Arc<[Bytes]>,
    widest: usize,
    last: Option<Prev>,
}

impl AddressCache {
    /// The escaped addresses of `n`'s recipients. With `chain` (compressed streams are
    /// possible), `chain`'s notification also joins the node's chain: compressed streams
    /// can then deflate it against the node's previous notification (`stream::zlib`).
    /// Nodes with fewer than two recipients are not chained: the previous notification's
    /// bytes are kept per chained node, which only pays where many receive the same.
    pub fn escaped(
        &self,
        service: &Jid,
        n: &hydrant_pubsub::Notification,
        chain: Option<&Prepared>,
    ) -> Arc<[Bytes]> {
        let key = (service.to_string(), n.node.as_str().to_owned());
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = !map
            .get(&key)
            .is_some_and(|c| Arc::ptr_eq(&c.snapshot, &n.recipients));
        if fresh {
            let addrs: Arc<[Bytes]> = n
                .recipients
                .iter()
                .map(|sub| {
                    let mut a = Vec::with_capacity(sub.jid.as_str().len() + 8);
                    escape_attr_into(&mut a, sub.jid.as_str());
                    Bytes::from(a)
                })
                .collect();
            let widest = addrs.iter().map(Bytes::len).max().unwrap_or(0);
            // A new snapshot continues the node's chain.
            let last = map.remove(&key).and_then(|c| c.last);
            map.insert(
                key.clone(),
                CachedAddrs {
                    snapshot: n.recipients.clone(),
                    addrs,
                    widest,
                    last,
                },
            );
        }
        let entry = map.get_mut(&key).expect("inserted above");
        match chain {
            Some(p) if n.recipients.len() >= 2 => {
                // The region holds the address and its closing quote.
                let width = entry.widest + 1;
                p.head.set_chain(Chain::new(width, entry.last.take()));
                entry.last = Some(Prev {
                    head: p.head.bytes().clone(),
                    tail: p.tail.bytes().clone(),
                    tail_id: p.tail.id(),
                    width,
                });
            }
            _ => entry.last = None,
        }
        entry.addrs.clone()
    }

    /// Forgets a deleted service's entries (account removal).
    pub fn forget_service(&self, service: &str) {
        let mut map = self
            .map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.retain(|(svc, _), _| svc != service);
    }
}

impl Prepared {
    pub fn new(from: &Jid, kind: NotificationType, event: &hydrant_proto::Element) -> Self {
        let mut prefix = Vec::with_capacity(64);
        prefix.extend_from_slice(b"<message from='");
        escape_attr_into(&mut prefix, from.as_str());
        prefix.extend_from_slice(b"' to='");
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let mut suffix = Vec::with_capacity(512);
        suffix.extend_from_slice(b"' type='");
        suffix.extend_from_slice(kind.as_str().as_bytes());
        suffix.extend_from_slice(format!("' id='ps-{id}'>").as_bytes());
        // `<message>` carries no xmlns: it takes the content namespace of whichever
        // stream it is written to (jabber:client, jabber:server), like every frame.
        event.write_to(&mut suffix, ns::CLIENT);
        suffix.extend_from_slice(b"</message>");
        Prepared {
            head: Shared::new(prefix),
            tail: Shared::new(suffix),
            urgent_tail: std::sync::OnceLock::new(),
        }
    }

    /// The frame for one recipient whose escaped address is `to`, urgent or not
    /// (`Subscriber::urgent`).
    pub fn frame_with(&self, to: Bytes, urgent: bool) -> Frame {
        if !urgent {
            return self.frame(to);
        }
        let tail = self
            .urgent_tail
            .get_or_init(|| Shared::with_urgency(self.tail.bytes().clone(), true));
        Frame::Addressed {
            head: self.head.clone(),
            to,
            tail: tail.clone(),
        }
    }

    /// The frame for one recipient whose escaped address is `to`.
    pub fn frame(&self, to: Bytes) -> Frame {
        Frame::Addressed {
            head: self.head.clone(),
            to,
            tail: self.tail.clone(),
        }
    }

    /// The frame for one recipient.
    pub fn frame_for(&self, to: &Jid) -> Frame {
        let mut addr = Vec::with_capacity(to.as_str().len() + 8);
        escape_attr_into(&mut addr, to.as_str());
        self.frame(Bytes::from(addr))
    }
}

impl Router {
    /// The blocklist of the account whose PEP service `service` is, if it is online and
    /// blocks anyone (`None` for components: their address has no localpart).
    pub fn pep_owner_blocklist(&self, service: &Jid) -> Option<Arc<Blocklist>> {
        let owner = service.node()?;
        if service.domain().as_str() != self.domain {
            return None;
        }
        self.sessions.blocklist(owner.as_str()).flatten()
    }

    /// Delivers one prepared notification to every recipient.
    pub fn fan_out(
        &self,
        from: &Jid,
        n: &hydrant_pubsub::Notification,
        prepared: &Prepared,
    ) -> FanoutStats {
        let mut stats = FanoutStats {
            sample_every: (n.recipients.len() / PACE_SAMPLE).max(1),
            ..FanoutStats::default()
        };
        let addrs = self.pubsub.addresses.escaped(
            from,
            n,
            self.cfg.chain_notifications.then_some(prepared),
        );
        // The `<event/>` as an element, for the rare recipients that get a message of
        // their own (another domain, SHIM headers); rendered at most once per fan-out.
        let mut event = None;
        // Other domains met in this fan-out, with the addresses bound for each when it is
        // a multicast service (XEP-0033; asked once per domain per fan-out here).
        let mut multicast: Vec<(&str, Option<Vec<Bytes>>)> = Vec::new();
        // XEP-0191 3.3: a PEP service is its owner's address, and the owner's
        // notifications do not go to the JIDs it blocks. One lookup per fan-out, and
        // nothing per recipient unless the owner blocks someone.
        let owner_blocks = self.pep_owner_blocklist(from);
        for (sub, addr) in n.recipients.iter().zip(addrs.iter()) {
            if let Some(b) = &owner_blocks
                && b.blocks(&sub.jid)
            {
                continue;
            }
            // Classified once per recipient, here, and handed down.
            let dest = self.classify(Some(&sub.jid));
            if let Dest::Remote(to) = dest {
                // Another domain: through the one routing point, which hands it to that
                // domain's s2s stream (or refuses it back to the service). The same
                // shared frame as for local recipients, unless SHIM headers make it a
                // message of its own.
                stats.remote += 1;
                if !sub.needs_shim() {
                    let domain = to.domain().as_str();
                    let i = multicast
                        .iter()
                        .position(|(d, _)| *d == domain)
                        .unwrap_or_else(|| {
                            multicast.push((domain, self.multicast_to(domain).then(Vec::new)));
                            multicast.len() - 1
                        });
                    if let Some(list) = &mut multicast[i].1 {
                        list.push(addr.clone());
                        continue;
                    }
                }
                if sub.needs_shim() {
                    let shim = xep0060::event::render_shim(&sub.subids);
                    let event = event
                        .get_or_insert_with(|| xep0060::event::render(n))
                        .clone();
                    let msg =
                        xep0060::event::message(from, to, n.notification_type, event, Some(shim));
                    self.route_remote(to, msg, OnRefusal::ToService);
                } else if let Some(backlog) =
                    self.route_remote_notification(from, to, prepared.frame(addr.clone()))
                {
                    // One per other server and fan-out: the publisher waits while that
                    // server is behind (`run_effects`), instead of overfilling its queue.
                    let domain = to.domain().as_str();
                    if !stats.backlogs.iter().any(|(d, _)| d == domain) {
                        stats.backlogs.push((domain.to_owned(), backlog));
                    }
                }
                continue;
            }
            if sub.needs_shim() {
                // Rare: one JID with several subscriptions gets its own copy with SHIM
                // headers naming them (XEP-0060 7.1.2.4).
                let event = event
                    .get_or_insert_with(|| xep0060::event::render(n))
                    .clone();
                let shim = xep0060::event::render_shim(&sub.subids);
                let msg =
                    xep0060::event::message(from, &sub.jid, n.notification_type, event, Some(shim));
                self.deliver_to_subscriber(
                    from,
                    sub,
                    dest,
                    n.presence_based,
                    n.notification_type,
                    &Frame::element(&msg),
                    &mut stats,
                );
                continue;
            }
            self.deliver_to_subscriber(
                from,
                sub,
                dest,
                n.presence_based,
                n.notification_type,
                &prepared.frame_with(addr.clone(), sub.urgent),
                &mut stats,
            );
        }
        for (domain, list) in multicast {
            let (Some(list), Ok(to)) = (list, Jid::new(domain)) else {
                continue;
            };
            // One stanza per `chunk` subscribers on that server, in the same stream (and
            // so the same order) as single notifications from this service.
            for chunk in list.chunks(self.cfg.multicast.chunk.max(1)) {
                let frame = crate::im::multicast::notification_stanza(
                    prepared.head.bytes(),
                    prepared.tail.bytes(),
                    domain,
                    chunk,
                );
                metrics::counter!("hydrant_multicast_sent_total").increment(1);
                if let Some(backlog) = self.route_remote_notification(from, &to, frame)
                    && !stats.backlogs.iter().any(|(d, _)| d == domain)
                {
                    stats.backlogs.push((domain.to_owned(), backlog));
                }
            }
        }
        debug!(node = %n.node.as_str(), queued = stats.queued, refused = stats.refused, remote = stats.remote, "fan-out");
        metrics::counter!("hydrant_pubsub_notifications_queued_total")
            .increment(stats.queued as u64);
        // Refused: the recipient's queue was full; its stream is closed with
        // <policy-violation/> and it catches up from the node (README, slow consumers).
        metrics::counter!("hydrant_pubsub_notifications_refused_total")
            .increment(stats.refused as u64);
        // Handed to the routing point for other domains (`router/remote.rs`).
        metrics::counter!("hydrant_pubsub_notifications_remote_total")
            .increment(stats.remote as u64);
        stats
    }

    /// XEP-0060 rules for one subscriber: a full JID gets it at that resource; a bare JID
    /// at every available resource (non-negative priority unless the type is headline,
    /// RFC 6121 8.5.2.1.1). Notifications are not stored offline: a subscriber that was
    /// away catches up from the node's items (RSM) or MAM, which never drop. Nothing goes
    /// to an account that blocks the service `from` (XEP-0191 3.3: a blocked contact's
    /// PEP service is its bare JID), which costs an account that blocks nobody one test.
    pub fn deliver_to_subscriber(
        &self,
        from: &Jid,
        sub: &Subscriber,
        dest: Dest<'_>,
        presence_based: bool,
        kind: NotificationType,
        frame: &Frame,
        stats: &mut FanoutStats,
    ) {
        let mut push = |s: &LocalSession| {
            if s.outbox.push(frame.clone()).is_ok() {
                if stats.sample_every > 0
                    && stats.queued.is_multiple_of(stats.sample_every)
                    && stats.sample.len() < PACE_SAMPLE
                {
                    stats.sample.push(s.outbox.clone());
                }
                stats.queued += 1;
            } else {
                stats.refused += 1;
            }
        };
        // `dest` is `sub.jid` classified by the caller. Other domains went to the routing
        // point before this (`fan_out`, `deliver_one`); the server itself and services
        // get no notifications.
        let jid = &sub.jid;
        let (user, full) = match dest {
            Dest::LocalBare(user) => (user, false),
            Dest::LocalFull(f) => match f.node() {
                Some(n) => (n.as_str(), true),
                None => return,
            },
            Dest::Server | Dest::Service(_) | Dest::Remote(_) => return,
        };
        self.sessions.for_each_of_user(user, from, |s| {
            if full {
                if s.info.jid == *jid && (!presence_based || admits(s, &sub.show_values)) {
                    push(s);
                }
                return;
            }
            let Some(prio) = s.available_with_priority() else {
                return;
            };
            if prio < 0 && kind != NotificationType::Headline {
                return;
            }
            if presence_based && !admits(s, &sub.show_values) {
                return;
            }
            push(s);
        });
    }
}

/// Whether a session's availability passes `pubsub#show-values` (empty: any available).
fn admits(s: &LocalSession, show_values: &[Show]) -> bool {
    let st = s.state();
    if !st.available {
        return false;
    }
    if show_values.is_empty() {
        return true;
    }
    let show = st
        .last
        .as_ref()
        .and_then(|p| {
            p.get_child("show", ns::CLIENT)
                .map(hydrant_proto::Element::text)
        })
        .unwrap_or_else(|| "online".to_owned());
    show_values.iter().any(|v| v.as_str() == show.trim())
}
