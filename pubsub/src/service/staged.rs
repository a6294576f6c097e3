//! Publishes and subscribes split around the store's commit, so the service is not held
//! across an fsync and concurrent writes share one.
//!
//! A publish to an existing node is checked, given its seq and queued with the store
//! while the caller holds the service ([`Service::handle_staged`]); the caller then lets
//! go of the service, waits for the commit ([`Staged::wait`]), which the store
//! shares with every write queued meanwhile (group commit, on any node of any service),
//! and comes back to [`Service::finish_publish`]. A subscribe is staged the same way: the
//! new subscription is in the node at once (so the quota and the duplicate check of the
//! next request see it) and taken out again if its commit fails; its reply and its last
//! item wait for the commit. Notifications leave in seq order per
//! node whatever order the commits return in: each node keeps its staged publishes in a
//! queue ([`InFlight`]), and one caller at a time (the *drainer*) takes the committed
//! ones from its front and fans them out, asking for more with
//! [`Service::drain_published`] until none are ready. Another caller whose publish
//! commits meanwhile only marks it; the drainer picks it up.
//!
//! An unsubscribe is the mirror image: the subscription leaves the node at once (no
//! notification is queued for it from then on) and is put back if its commit fails.
//!
//! The rest of the service's writes (configure, affiliations, retract, delete, ...) still
//! commit while the service is held: they are rare next to publishes and subscription
//! changes, and each can change what many later requests see (access, item counts), which
//! staging would have to undo. The store commits everything in the order it was queued,
//! so a retract queued after a publish of the same item is applied after it.

use std::collections::VecDeque;

use hydrant_proto::{Element, Jid};

use crate::effect::{Effect, Event, Outcome};
use crate::error::Error;
use crate::relations::Relations;
use crate::request::{PublishItem, Reply, Request};
use crate::service::subscribe::Subscribing;
use crate::service::{Ctx, Service};
use crate::store::{Committing, Store, SubChange};
use crate::types::{ItemId, NodeName, Subscription};

/// What [`Service::handle_staged`] did.
pub enum Handled {
    /// Done at once, as [`Service::handle`] does it.
    Done(Outcome),
    /// A publish waiting for its commit.
    Staged(Staged),
}

/// A write queued with the store: wait for it without holding the service, then
/// finish it.
pub struct Staged {
    node: NodeName,
    kind: Kind,
}

enum Kind {
    Publish {
        commit: Box<dyn Committing<Vec<ItemId>>>,
        seq: u64,
        /// The iq result, rendered while the service was held (it names the item's id).
        reply: Option<Element>,
    },
    Subscribe {
        commit: Box<dyn Committing<()>>,
        sub: Subscription,
    },
    Unsubscribe {
        commit: Box<dyn Committing<()>>,
        /// The subscription taken out, to put back if the commit fails.
        sub: Subscription,
    },
}

/// The outcome of a staged write once its commit is known.
pub struct Commit {
    node: NodeName,
    kind: Committed,
}

enum Committed {
    Publish {
        seq: u64,
        /// `Ok(evicted ids)` when durable.
        result: Result<Vec<ItemId>, Error>,
        reply: Option<Element>,
    },
    Subscribe {
        result: Result<(), Error>,
        sub: Subscription,
    },
    Unsubscribe {
        result: Result<(), Error>,
        sub: Subscription,
    },
}

/// What a finished staged write asks of its caller.
pub struct Finished {
    /// The iq result payload, or the error.
    pub reply: Result<Option<Element>, Error>,
    /// Effects to carry out now (for a publish: the first of its node's drain).
    pub effects: Vec<Effect>,
    /// Set when the caller is its node's drainer: after `effects`, ask
    /// [`Service::drain_published`] for more until it returns `None`.
    pub drain: Option<NodeName>,
}

impl Commit {
    /// The node written to.
    pub fn node(&self) -> &NodeName {
        &self.node
    }
}

impl Staged {
    /// Blocks until the store committed (or failed) the write; call it without holding
    /// the service.
    pub fn wait(self) -> Commit {
        let kind = match self.kind {
            Kind::Publish { commit, seq, reply } => Committed::Publish {
                seq,
                result: commit.wait().map_err(Error::from),
                reply,
            },
            Kind::Subscribe { commit, sub } => Committed::Subscribe {
                result: commit.wait().map_err(Error::from),
                sub,
            },
            Kind::Unsubscribe { commit, sub } => Committed::Unsubscribe {
                result: commit.wait().map_err(Error::from),
                sub,
            },
        };
        Commit {
            node: self.node,
            kind,
        }
    }
}

/// A node's staged publishes in seq order, and whether a caller is draining them.
#[derive(Clone, Debug, Default)]
pub(crate) struct InFlight {
    slots: VecDeque<Slot>,
    draining: bool,
}

#[derive(Clone, Debug)]
struct Slot {
    seq: u64,
    /// The notifications, decided when the publish was staged.
    effects: Vec<Effect>,
    /// `None` while committing; `Some(true)` committed, `Some(false)` failed.
    committed: Option<bool>,
}

impl<S: Store> Service<S> {
    /// As [`Service::handle`], except that a publish of an item to an existing node, a
    /// subscribe and an unsubscribe are only staged ([`Handled::Staged`]); everything
    /// else is done at once.
    pub fn handle_staged(
        &mut self,
        from: &Jid,
        req: Request,
        rel: &dyn Relations,
        now_ms: u64,
    ) -> Result<Handled, Error> {
        match req {
            Request::Publish {
                node,
                item: Some(item),
                options,
            } if self.nodes.contains_key(&node) => {
                let ctx = Ctx::new(from, rel, now_ms);
                self.stage_publish(&ctx, node, item, options)
                    .map(Handled::Staged)
            }
            Request::Subscribe { node, jid, options } => {
                let ctx = Ctx::new(from, rel, now_ms);
                match self.subscribe_prepare(&ctx, &node, jid, options)? {
                    Subscribing::Existing(reply) => Ok(Handled::Done(Outcome {
                        reply: crate::xep0060::response::render(&reply, &self.address),
                        effects: Vec::new(),
                    })),
                    Subscribing::New(sub) => {
                        let commit = self
                            .store
                            .queue_update_subscriptions(&node, &[SubChange::Put(sub.clone())])?;
                        self.node_mut(&node).put_sub(sub.clone());
                        Ok(Handled::Staged(Staged {
                            node,
                            kind: Kind::Subscribe { commit, sub },
                        }))
                    }
                }
            }
            Request::Unsubscribe { node, jid, subid } => {
                let ctx = Ctx::new(from, rel, now_ms);
                let n = self.node(&node)?;
                let sub = super::unsubscribe::own_subscription(n, &ctx, &jid, subid.as_ref())?;
                let (owner, subid) = (sub.jid.clone(), sub.subid.clone());
                let commit = self
                    .store
                    .queue_update_subscriptions(&node, &[SubChange::Remove(subid.clone())])?;
                let sub = self
                    .node_mut(&node)
                    .remove_sub(&owner, &subid)
                    .expect("own_subscription found it");
                Ok(Handled::Staged(Staged {
                    node,
                    kind: Kind::Unsubscribe { commit, sub },
                }))
            }
            req => self.handle(from, req, rel, now_ms).map(Handled::Done),
        }
    }

    /// Finishes a staged write once its commit is known (see [`Finished`]).
    pub fn finish(&mut self, c: Commit) -> Finished {
        match c.kind {
            Committed::Publish { seq, result, reply } => {
                let (reply, first) = self.finish_publish_at(&c.node, seq, result, reply);
                let drain = first.is_some().then(|| c.node.clone());
                Finished {
                    reply,
                    effects: first.unwrap_or_default(),
                    drain,
                }
            }
            Committed::Subscribe { result, sub } => {
                let done = result.and_then(|()| self.subscribed(&c.node, sub.clone()));
                match done {
                    Ok((reply, effects)) => Finished {
                        reply: Ok(crate::xep0060::response::render(&reply, &self.address)),
                        effects,
                        drain: None,
                    },
                    Err(e) => {
                        // Not stored: out of the node again (if it is still there).
                        if let Some(node) = self.nodes.get_mut(&c.node) {
                            node.remove_sub(&sub.jid, &sub.subid);
                        }
                        Finished {
                            reply: Err(e),
                            effects: Vec::new(),
                            drain: None,
                        }
                    }
                }
            }
            Committed::Unsubscribe { result, sub } => {
                if result.is_err()
                    && let Some(node) = self.nodes.get_mut(&c.node)
                {
                    // Still stored: back into the node (if it is still there).
                    node.put_sub(sub);
                }
                Finished {
                    reply: result.map(|()| None),
                    effects: Vec::new(),
                    drain: None,
                }
            }
        }
    }

    /// XEP-0060 7.1 up to the store: the same checks as an unstaged publish, then the
    /// item is queued and its seq taken, so the next publish to the node gets the next.
    fn stage_publish(
        &mut self,
        ctx: &Ctx<'_>,
        name: NodeName,
        mut item: PublishItem,
        options: Option<crate::request::Preconditions>,
    ) -> Result<Staged, Error> {
        let node = self.node(&name)?;
        self.check_ctx(node, ctx, crate::access::Action::Publish)?;
        if let Some(pre) = &options {
            crate::xep0060::forms::check_preconditions(&node.config, pre, self.cfg.max_items_cap)?;
        }
        let config = &node.config;
        let payload = self.validate_item(config, Some(&mut item))?;
        let keep = config.keep_items(self.cfg.max_items_cap);
        let (deliver, payloads) = (config.deliver_notifications, config.deliver_payloads);
        let item = self.new_item(ctx, &name, item, payload)?;
        let commit = self.store.queue_put_item(&name, &item, keep)?;
        let seq = item.seq;
        let id = item.id.clone();
        let pep = self.cfg.pep;
        let node = self.node_mut(&name);
        node.last_seq = seq;
        let mut effects = Vec::new();
        if deliver {
            effects.extend(super::notify(
                node,
                Event::Items {
                    items: vec![item],
                    payloads,
                },
                pep,
            ));
        }
        node.inflight.slots.push_back(Slot {
            seq,
            effects,
            committed: None,
        });
        let reply = crate::xep0060::response::render(
            &Reply::Published {
                node: name.clone(),
                id: Some(id),
            },
            &self.address,
        );
        Ok(Staged {
            node: name,
            kind: Kind::Publish { commit, seq, reply },
        })
    }

    /// Records a staged publish's commit. Returns the iq result (or the error), and, if
    /// this caller is now the node's drainer, the first notifications to send: send
    /// them, then call [`Service::drain_published`] until it returns `None`.
    fn finish_publish_at(
        &mut self,
        name: &NodeName,
        seq: u64,
        result: Result<Vec<ItemId>, Error>,
        reply: Option<Element>,
    ) -> (Result<Option<Element>, Error>, Option<Vec<Effect>>) {
        let (reply, evicted) = match result {
            Ok(evicted) => (Ok(reply), Some(evicted)),
            Err(e) => (Err(e), None),
        };
        let (pep, cap) = (self.cfg.pep, self.cfg.max_items_cap);
        let Some(node) = self.nodes.get_mut(name) else {
            // Deleted meanwhile: the item went with it, and so do its notifications.
            return (reply, None);
        };
        let retracts =
            evicted.and_then(|ids| super::publish::evicted_retracts(node, ids, cap, pep));
        if let Some(slot) = node.inflight.slots.iter_mut().find(|s| s.seq == seq) {
            slot.committed = Some(reply.is_ok());
            slot.effects.extend(retracts);
        }
        if node.inflight.draining {
            return (reply, None);
        }
        node.inflight.draining = true;
        let more = self.drain_published(name);
        (reply, more)
    }

    /// The drainer's next notifications for `node`, in seq order: those of the
    /// committed publishes at the front of its queue. `None` when nothing is ready; the
    /// caller is then no longer the drainer.
    pub fn drain_published(&mut self, node: &NodeName) -> Option<Vec<Effect>> {
        let n = self.nodes.get_mut(node)?;
        let mut effects = Vec::new();
        let mut taken = 0usize;
        while n
            .inflight
            .slots
            .front()
            .is_some_and(|s| s.committed.is_some())
        {
            let slot = n.inflight.slots.pop_front().expect("front checked");
            taken += 1;
            if slot.committed == Some(true) {
                effects.extend(slot.effects);
            }
        }
        if taken == 0 {
            n.inflight.draining = false;
            return None;
        }
        Some(effects)
    }
}
