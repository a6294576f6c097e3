//! What a session is handed from storage when it becomes available: pending subscription
//! requests (RFC 6121 3.1.3, at initial presence) and offline messages (RFC 6121
//! 8.5.2.1.1 with 8.5.2.2.1, at the first available presence with a non-negative
//! priority), paced by what the client reads.
//!
//! The backlog can be far larger than the session's outbound queue (an account's offline
//! messages up to `[offline] max_messages_per_user`), and a push past the queue's limit
//! ends the stream as a slow consumer. So a backlog push never takes the queue past half
//! its limit (the other half stays free for live traffic); one stanza larger than that
//! waits for an empty queue. Offline messages are read a page at a time, a page being
//! what fits now, and each page's rows are deleted only after its stanzas were queued, so
//! a connection that ends half-way leaves the rest stored, never lost.
//!
//! The first pages go out inline, while the presence stanza is handled (so a small
//! backlog arrives before the answer to anything the client sends next). When the queue
//! is full, the rest continues on a task of its own that waits for the connection to
//! drain the queue (`Outbox::room`). It stops when the session ends or stops being a
//! candidate for offline delivery (unavailable, negative priority); what remains is then
//! handed to another available session of the account with a non-negative priority if
//! there is one, else it waits, stored, for the next such presence. One session of an
//! account delivers offline messages at a time (a claim per account), so two sessions
//! logging in together never both get the same rows.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use hydrant_proto::ns;
use hydrant_stream::{Frame, StanzaKind};
use tracing::warn;

use crate::im::roster::presence_to;
use crate::router::Router;
use crate::router::sessions::{LocalSession, username};

/// Where a delivery run stopped.
enum Step {
    /// Everything was queued.
    Done,
    /// The queue is full and the run may not wait.
    Blocked,
    /// The session ended or no longer takes offline messages; the store still holds
    /// the rest.
    Stopped,
    /// The store failed (logged); the rest waits for the next qualifying presence.
    Failed,
}

/// Holds an account's offline delivery for one session; released on drop.
struct Claim {
    router: Arc<Router>,
    user: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.router.offline_claims.remove(&self.user);
    }
}

/// One session's undelivered backlog.
struct Backlog {
    me: Arc<LocalSession>,
    user: String,
    /// Pending subscription requests not queued yet.
    pending: VecDeque<Bytes>,
    /// Set while offline messages are still to be delivered.
    offline: Option<Claim>,
}

impl Router {
    /// Hands `me`, which just sent available presence, what storage holds for it:
    /// pending subscription requests if this is its initial presence, and offline
    /// messages if it is the first time it is available with a non-negative priority.
    pub(super) async fn hand_over_stored(&self, me: &Arc<LocalSession>, initial: bool) {
        let Some(router) = self.me.upgrade() else {
            return;
        };
        let user = username(&me.info.jid);
        let pending = if initial {
            self.pending_requests(&user).await
        } else {
            VecDeque::new()
        };
        let offline = self.claim_offline(&router, me, &user);
        if pending.is_empty() && offline.is_none() {
            return;
        }
        let backlog = Backlog {
            me: me.clone(),
            user,
            pending,
            offline,
        };
        backlog.start(router).await;
    }

    /// RFC 6121 3.1.3: requests received while the user was offline, redelivered at
    /// every login until answered. Rebuilt from the stored sender rather than replayed:
    /// whatever the original carried, each costs the login a few dozen bytes (requests
    /// stored by earlier versions were stored whole).
    async fn pending_requests(&self, user: &str) -> VecDeque<Bytes> {
        let u = user.to_owned();
        let Ok(pending) = self.db.run(move |s| s.pending_in(&u)).await else {
            return VecDeque::new();
        };
        let to = self.bare_of(user);
        // XEP-0191 3.3: a request from a JID blocked since is kept (it is the user's to
        // answer once unblocked) but not delivered.
        let blocked = self.sessions.blocklist(user).flatten();
        pending
            .into_iter()
            .filter(|(from, _)| !blocked.as_ref().is_some_and(|b| b.blocks_str(from)))
            .map(|(from, _)| Bytes::from(trimmed_request(&from, &to)))
            .collect()
    }

    /// Marks `me` as having had offline delivery and claims the account's, if `me` is
    /// due for it (RFC 6121 8.5.2.1.1: available, priority ≥ 0, not yet delivered).
    fn claim_offline(&self, router: &Arc<Router>, me: &LocalSession, user: &str) -> Option<Claim> {
        {
            let mut st = me.state();
            if !st.available || st.priority < 0 || st.offline_delivered {
                return None;
            }
            st.offline_delivered = true;
        }
        if !self.offline_claims.insert(user.to_owned()) {
            // Another session of the account is delivering them right now; whatever it
            // cannot deliver is handed over when it stops (see `Backlog::finish`).
            me.state().offline_delivered = false;
            return None;
        }
        Some(Claim {
            router: router.clone(),
            user: user.to_owned(),
        })
    }
}

/// The `from` of a stanza as the server serialised it for storage (the start tag ends at
/// the first `>`, which the writer escapes inside attribute values).
fn stored_sender(stanza: &[u8]) -> Option<String> {
    let end = stanza.iter().position(|&b| b == b'>')?;
    let tag = std::str::from_utf8(&stanza[..end]).ok()?;
    let (quote, start) = [('\'', " from='"), ('"', " from=\"")]
        .iter()
        .find_map(|(q, pat)| tag.find(pat).map(|i| (*q, i + pat.len())))?;
    let len = tag[start..].find(quote)?;
    Some(
        tag[start..start + len]
            .replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// The stored form of an inbound subscription request, and what is redelivered: RFC
/// 6121 3.1.3 needs the sender and the type, nothing else.
pub fn trimmed_request(from: &str, to: &str) -> Vec<u8> {
    presence_to(from, to, "subscribe").to_bytes(ns::CLIENT)
}

impl Backlog {
    /// Delivers inline what fits now; if the queue fills up, continues on a task.
    async fn start(mut self, router: Arc<Router>) {
        let next = match self.run(&router, false).await {
            Step::Done | Step::Failed => return,
            Step::Blocked => Some(self),
            Step::Stopped => self.finish(&router),
        };
        if let Some(backlog) = next {
            tokio::spawn(backlog.continue_waiting(router));
        }
    }

    /// The rest of a run that found the queue full, waiting for room as it goes.
    async fn continue_waiting(mut self, router: Arc<Router>) {
        loop {
            match self.run(&router, true).await {
                // A waiting run never reports `Blocked`.
                Step::Done | Step::Blocked | Step::Failed => return,
                Step::Stopped => match self.finish(&router) {
                    Some(next) => self = next,
                    None => return,
                },
            }
        }
    }

    async fn run(&mut self, router: &Router, wait: bool) -> Step {
        while let Some(p) = self.pending.front() {
            match self.room(p.len(), wait).await {
                Room::Yes => {}
                Room::Blocked => return Step::Blocked,
                Room::Closed => return Step::Stopped,
                Room::Never => {
                    self.pending.pop_front();
                    continue;
                }
            }
            let p = self.pending.pop_front().expect("front exists");
            if self
                .me
                .outbox
                .push(Frame::Stanza(StanzaKind::Presence, p))
                .is_err()
            {
                return Step::Stopped;
            }
        }
        if self.offline.is_some() {
            return self.offline_pages(router, wait).await;
        }
        Step::Done
    }

    /// Offline messages, a page at a time; each page's rows deleted once queued.
    async fn offline_pages(&mut self, router: &Router, wait: bool) -> Step {
        let limit = self.me.outbox.limit();
        loop {
            let eligible = {
                let st = self.me.state();
                st.available && st.priority >= 0
            };
            if !eligible {
                // Delivery resumes at this session's next presence that qualifies.
                self.me.state().offline_delivered = false;
                return Step::Stopped;
            }
            let budget = (limit / 2).saturating_sub(self.me.outbox.queued_bytes());
            let u = self.user.clone();
            let page = match router.db.run(move |s| s.offline_page(&u, budget)).await {
                Ok(p) => p,
                Err(e) => {
                    warn!(error = %e, user = %self.user, "reading offline messages failed");
                    return Step::Failed;
                }
            };
            if page.is_empty() {
                return Step::Done;
            }
            let mut queued = Vec::with_capacity(page.len());
            let mut step = None;
            let blocked = router.sessions.blocklist(&self.user).flatten();
            for m in page {
                if let Some(b) = &blocked
                    && stored_sender(&m.stanza).is_some_and(|f| b.blocks_str(&f))
                {
                    // XEP-0191 3.3: stored before its sender was blocked, and no longer
                    // delivered to the user (its sender was told it was stored).
                    queued.push(m.id);
                    continue;
                }
                match self.room(m.stanza.len(), wait).await {
                    Room::Yes => {}
                    Room::Never => {
                        // Larger than the whole queue: no connection with this limit can
                        // ever take it, and keeping it would stall the account's queue.
                        warn!(
                            user = %self.user,
                            bytes = m.stanza.len(),
                            limit,
                            "offline message larger than the outbound queue dropped"
                        );
                        queued.push(m.id);
                        continue;
                    }
                    Room::Blocked => {
                        step = Some(Step::Blocked);
                        break;
                    }
                    Room::Closed => {
                        step = Some(Step::Stopped);
                        break;
                    }
                }
                if self
                    .me
                    .outbox
                    .push(Frame::Stanza(StanzaKind::Message, Bytes::from(m.stanza)))
                    .is_err()
                {
                    step = Some(Step::Stopped);
                    break;
                }
                queued.push(m.id);
            }
            if !queued.is_empty() {
                let (u, n) = (self.user.clone(), queued.len());
                if let Err(e) = router.db.run(move |s| s.remove_offline(&u, &queued)).await {
                    // Stop rather than read the same rows again and deliver them twice.
                    warn!(error = %e, user = %self.user, delivered = n,
                        "removing delivered offline messages failed");
                    return Step::Failed;
                }
            }
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Whether a backlog stanza of `len` bytes may be queued now: it must leave half the
    /// queue free, or find the queue empty if it is larger than half.
    async fn room(&self, len: usize, wait: bool) -> Room {
        let outbox = &self.me.outbox;
        let limit = outbox.limit();
        if len > limit {
            return Room::Never;
        }
        // `Outbox::room(need)` is "need more bytes fit under the limit".
        let need = (len + (limit - limit / 2)).min(limit);
        if wait {
            return if outbox.room(need).await {
                Room::Yes
            } else {
                Room::Closed
            };
        }
        if outbox.is_closing() {
            Room::Closed
        } else if outbox.queued_bytes() + need <= limit {
            Room::Yes
        } else {
            Room::Blocked
        }
    }

    /// The run stopped early: release the claim and, if another qualifying session of
    /// the account is there, hand it the offline messages that may remain.
    fn finish(&mut self, router: &Arc<Router>) -> Option<Backlog> {
        drop(self.offline.take()?);
        let next = router.sessions.of_user(&self.user).into_iter().find(|s| {
            s.info.id != self.me.info.id && !s.outbox.is_closing() && {
                let st = s.state();
                st.available && st.priority >= 0
            }
        })?;
        let claim = router.claim_handover(&self.user)?;
        Some(Backlog {
            me: next,
            user: self.user.clone(),
            pending: VecDeque::new(),
            offline: Some(claim),
        })
    }
}

/// What [`Backlog::room`] found.
enum Room {
    Yes,
    /// Not now, and the caller may not wait.
    Blocked,
    /// The queue accepts nothing more (the session is ending).
    Closed,
    /// Larger than the queue's limit.
    Never,
}

impl Router {
    /// The account's offline claim for a session that takes over a stopped delivery.
    fn claim_handover(self: &Arc<Self>, user: &str) -> Option<Claim> {
        self.offline_claims.insert(user.to_owned()).then(|| Claim {
            router: self.clone(),
            user: user.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sender_of_a_stored_stanza() {
        let el = hydrant_proto::Element::new("message", ns::CLIENT)
            .with_attr("to", "a@x")
            .with_attr("from", "o'brien@x/r&d")
            .with_child(hydrant_proto::Element::new("body", ns::CLIENT).with_text("from='no'"));
        let bytes = el.to_bytes(ns::CLIENT);
        assert_eq!(stored_sender(&bytes).as_deref(), Some("o'brien@x/r&d"));
        assert_eq!(stored_sender(b"<message to='a@x'><body/></message>"), None);
        assert_eq!(
            stored_sender(b"<message from=\"b@x\">").as_deref(),
            Some("b@x")
        );
    }
}
