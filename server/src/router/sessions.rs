//! The registry of bound local sessions and their presence state.

use std::sync::{Arc, Mutex, MutexGuard};

use dashmap::DashMap;
use hydrant_c2s::SessionInfo;
use hydrant_proto::{Element, FullJid, Jid};
use hydrant_stream::outbox::Outbox;
use hydrant_stream::{Frame, StanzaKind};

use crate::im::blocklist::Blocklist;

/// What the router remembers about one session's presence (RFC 6121 4).
///
/// One of these lives for every connected client, so what an idle session never uses
/// is boxed (the last presence, caps and PEP catch-up state): an idle connection's
/// memory is a headline figure (README, BENCHMARKS.md).
#[derive(Debug, Default)]
pub struct PresenceState {
    /// Sent available presence and not yet unavailable.
    pub available: bool,
    /// Initial presence was sent at least once (probes, pending requests and offline
    /// messages happen only then).
    pub initial_done: bool,
    pub priority: i8,
    /// The last broadcast presence, as sent (with `from`), for answering probes.
    pub last: Option<Box<Element>>,
    /// `last` carries the server's XEP-0153 avatar hash, not the client's, and follows
    /// the account's vCard (`im/vcard_update.rs`).
    pub avatar_from_server: bool,
    /// Requested the roster, so receives roster pushes (RFC 6121 2.1.6 "interested").
    pub interested: bool,
    /// Bare or full JIDs sent directed presence, owed an unavailable at the end (4.6).
    /// A `Vec`: bounded by `max_directed_presence` and usually empty, so it costs an idle
    /// session 24 bytes rather than a hash set's 48.
    pub directed: Vec<String>,
    /// Offline messages were handed to this session already.
    pub offline_delivered: bool,
    /// XEP-0280: message carbons enabled on this session.
    pub carbons: bool,
    /// XEP-0191 3.2: requested the blocklist, so receives block and unblock pushes.
    pub blocklist_requested: bool,
    /// The caps `ver` whose features `notify` reflects (XEP-0115).
    pub caps_ver: Option<String>,
    /// PEP nodes this session wants with +notify (XEP-0163); None until known.
    pub notify: Option<Arc<[String]>>,
    /// Once a +notify interest is known: the newest item `seq` delivered per (owner,
    /// node), so the last item sent on catch-up and a live notification of the same item
    /// never both arrive. Kept for the session, not just while the catch-up runs: a live
    /// notification committed before the catch-up read the node can still be on its way
    /// (its fan-out awaits the owner's roster) after the catch-up has finished.
    pub pep_seen: Option<Box<std::collections::HashMap<(String, String), u64>>>,
    /// A caps disco#info query in flight: (iq id, ver).
    pub caps_query: Option<Box<(String, String)>>,
}

/// A bound session as the router sees it.
#[derive(Debug)]
pub struct LocalSession {
    pub info: SessionInfo,
    pub outbox: Arc<Outbox>,
    state: Mutex<PresenceState>,
}

impl LocalSession {
    pub fn new(info: SessionInfo, outbox: Arc<Outbox>) -> Self {
        LocalSession {
            info,
            outbox,
            state: Mutex::new(PresenceState::default()),
        }
    }

    pub fn state(&self) -> MutexGuard<'_, PresenceState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues a stanza for this client; false when it could not be queued (the session is
    /// closing or over its queue limit, and will be closed by its own task).
    pub fn send(&self, el: &Element) -> bool {
        self.outbox.push(Frame::element(el)).is_ok()
    }

    pub fn available_with_priority(&self) -> Option<i8> {
        let st = self.state();
        st.available.then_some(st.priority)
    }
}

/// The account has as many sessions as it may ([`Sessions::insert`]).
#[derive(Debug)]
pub struct TooManySessions;

/// One online account: its sessions and, while it blocks anyone, its blocklist.
#[derive(Debug, Default)]
struct Account {
    sessions: Vec<Arc<LocalSession>>,
    /// XEP-0191: `None` when the list is empty, so deliveries to an account that blocks
    /// nobody test this pointer and nothing else.
    blocked: Option<Arc<Blocklist>>,
}

/// Sessions keyed by username (localpart).
#[derive(Debug, Default)]
pub struct Sessions {
    by_user: DashMap<String, Account>,
}

impl Sessions {
    /// Adds a session unless its account already has `max` others (a replacement of the
    /// same full JID does not count as one more); returns the one it replaces, if any.
    /// `first` is queued on the new session before it becomes reachable (under the
    /// account's entry lock, which also makes the count exact under concurrent binds).
    /// `blocked` is the account's blocklist as loaded for this bind: kept if the account
    /// had no session yet (otherwise the list kept with its sessions is the current one).
    pub fn insert(
        &self,
        s: Arc<LocalSession>,
        max: usize,
        first: bytes::Bytes,
        blocked: Option<Arc<Blocklist>>,
    ) -> Result<Option<Arc<LocalSession>>, TooManySessions> {
        let user = username(&s.info.jid);
        let mut account = self.by_user.entry(user).or_default();
        let pos = account
            .sessions
            .iter()
            .position(|o| o.info.jid == s.info.jid);
        if pos.is_none() && account.sessions.len() >= max {
            return Err(TooManySessions);
        }
        if account.sessions.is_empty() {
            account.blocked = blocked;
        }
        let old = pos.map(|i| account.sessions.swap_remove(i));
        let _ = s.outbox.push(Frame::Stanza(StanzaKind::Iq, first));
        account.sessions.push(s);
        Ok(old)
    }

    /// Removes the session with this id; None if it was already replaced.
    pub fn remove(&self, info: &SessionInfo) -> Option<Arc<LocalSession>> {
        let user = username(&info.jid);
        let mut removed = None;
        if let Some(mut account) = self.by_user.get_mut(&user)
            && let Some(i) = account.sessions.iter().position(|o| o.info.id == info.id)
        {
            removed = Some(account.sessions.swap_remove(i));
        }
        self.by_user.remove_if(&user, |_, a| a.sessions.is_empty());
        removed
    }

    /// A snapshot of a user's sessions (the lock is not held while sending).
    pub fn of_user(&self, user: &str) -> Vec<Arc<LocalSession>> {
        self.by_user
            .get(user)
            .map(|a| a.sessions.clone())
            .unwrap_or_default()
    }

    /// [`Sessions::of_user`] with the account's blocklist (`None`: it blocks nobody).
    pub fn of_user_with_blocklist(
        &self,
        user: &str,
    ) -> (Vec<Arc<LocalSession>>, Option<Arc<Blocklist>>) {
        self.by_user
            .get(user)
            .map(|a| (a.sessions.clone(), a.blocked.clone()))
            .unwrap_or_default()
    }

    /// The blocklist of an online account: `None` if the account has no session (its
    /// list is not in memory), `Some(None)` if it blocks nobody.
    pub fn blocklist(&self, user: &str) -> Option<Option<Arc<Blocklist>>> {
        self.by_user.get(user).map(|a| a.blocked.clone())
    }

    /// Whether online `user` blocks `jid` (false for an account with no session: callers
    /// that may reach offline accounts ask `Router::blocks`).
    pub fn blocks(&self, user: &str, jid: &Jid) -> bool {
        self.by_user
            .get(user)
            .is_some_and(|a| a.blocked.as_ref().is_some_and(|b| b.blocks(jid)))
    }

    /// Replaces the blocklist of an online account with what `f` makes of it (nothing if
    /// the account has no session: it is loaded again at the next bind).
    pub fn update_blocklist(
        &self,
        user: &str,
        f: impl FnOnce(Option<&Blocklist>) -> Option<Arc<Blocklist>>,
    ) {
        if let Some(mut a) = self.by_user.get_mut(user) {
            a.blocked = f(a.blocked.as_deref());
        }
    }

    pub fn get(&self, jid: &FullJid) -> Option<Arc<LocalSession>> {
        let user = jid.node().map_or("", |n| n.as_str());
        self.by_user
            .get(user)?
            .sessions
            .iter()
            .find(|s| s.info.jid == *jid)
            .cloned()
    }

    /// The session of a full JID unless its account blocks `from` (XEP-0191 3.3).
    pub fn get_unless_blocked(
        &self,
        jid: &FullJid,
        from: Option<&Jid>,
    ) -> Option<Arc<LocalSession>> {
        let user = jid.node().map_or("", |n| n.as_str());
        let a = self.by_user.get(user)?;
        if let (Some(b), Some(from)) = (&a.blocked, from)
            && b.blocks(from)
        {
            return None;
        }
        a.sessions.iter().find(|s| s.info.jid == *jid).cloned()
    }

    /// Calls `f` for each session of a user while holding only that map shard's read
    /// lock: the fan-out's way to reach sessions without copying the list. Nothing is
    /// called when the account blocks `from` (XEP-0191 3.3: no stanza from a blocked
    /// JID reaches the user), which costs an account that blocks nobody one test.
    pub fn for_each_of_user(&self, user: &str, from: &Jid, mut f: impl FnMut(&LocalSession)) {
        if let Some(a) = self.by_user.get(user) {
            if a.blocked.as_ref().is_some_and(|b| b.blocks(from)) {
                return;
            }
            for s in &a.sessions {
                f(s);
            }
        }
    }

    pub fn by_id(&self, info: &SessionInfo) -> Option<Arc<LocalSession>> {
        let user = info.jid.node().map_or("", |n| n.as_str());
        self.by_user
            .get(user)?
            .sessions
            .iter()
            .find(|s| s.info.id == info.id)
            .cloned()
    }

    /// Usernames with at least one session (XEP-0133 online users, announcements).
    pub fn usernames(&self) -> Vec<String> {
        self.by_user.iter().map(|e| e.key().clone()).collect()
    }

    pub fn count(&self) -> usize {
        self.by_user.iter().map(|e| e.value().sessions.len()).sum()
    }
}

pub fn username(jid: &FullJid) -> String {
    jid.node()
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default()
}
