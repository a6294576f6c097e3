//! What ends with an account, and what a new password ends.
//!
//! **Removal** (XEP-0077 3.2 in-band, or `hydrant user remove`) leaves nothing a new
//! account registered under the same name could inherit:
//! - the account row with its credentials, roster, pending requests, offline messages
//!   and blocklist (one store transaction, by cascade; the list in memory goes too);
//! - its sessions: a `<not-authorized/>` stream error (XEP-0077 3.2: "the server SHOULD
//!   then return a <not-authorized/> stream error and terminate all active sessions");
//! - its presence subscriptions: "the server SHOULD also cancel all existing presence
//!   subscriptions related to that entity (as stored in the entity's roster)" (3.2), so
//!   each local contact gets `unsubscribe` / `unsubscribed` as if the user had sent them
//!   (RFC 6121 3.2, 3.3), and whoever still has it in their roster or a request of it
//!   pending loses that entry (with a roster push): an entry left behind would hand
//!   the new account the old one's name, groups and so roster-group access;
//! - its pubsub state: its PEP nodes, and on every other service its affiliations and
//!   subscriptions; component nodes it owned alone are deleted
//!   (`hydrant_pubsub::Service::forget`).
//!
//! **Password change** (XEP-0077 3.3 in-band, or `hydrant user passwd`): the account's
//! other sessions end with `<reset/>` (RFC 6120 4.9.3.16: the credentials the stream's
//! authentication rests on were revoked during the life of the stream; Prosody closes
//! them the same way), so whoever learned the old password is out.
//!
//! The CLI runs in another process: it records the change in the store
//! (`account_changes`; a removal takes the credentials at once, so nobody logs in
//! meanwhile, and keeps the name taken) and the server applies it here: at start-up and
//! every [`CHANGES_POLL`] while it runs. Without a running server the CLI applies it
//! itself through the same code.

use std::time::Duration;

use hydrant_proto::{BareJid, RosterItem, StreamError, StreamErrorCondition, Subscription};
use hydrant_storage::{AccountChange, SubState};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::im::roster::presence_to;
use crate::router::Router;

/// How often a running server looks for changes the admin CLI recorded.
pub const CHANGES_POLL: Duration = Duration::from_secs(2);

impl Router {
    /// Removes `user` and everything of it (module doc). `Ok(false)` if there is no such
    /// account. The account is deleted before anything else, so a failure later leaves
    /// nothing that can log in; what follows is logged, not returned.
    pub async fn remove_account(&self, user: &str) -> Result<bool, hydrant_storage::StorageError> {
        let u = user.to_owned();
        let (roster, pending) = self
            .db
            .run(move |s| Ok((s.roster(&u)?.1, s.pending_in(&u)?)))
            .await?;
        let u = user.to_owned();
        if !self.db.run(move |s| s.delete_account(&u)).await? {
            return Ok(false);
        }
        info!(user, "account removed");
        self.forget_blocklist(user).await;
        // RFC 6121 3.2.2 / 4.5.2: contacts stop seeing its resources, before the
        // sessions end (once unbound, they no longer know whom to tell).
        for e in roster
            .iter()
            .filter(|e| matches!(e.subscription, SubState::From | SubState::Both))
        {
            self.unavailable_to_contact(user, &e.jid);
        }
        self.end_sessions(
            user,
            None,
            &StreamError::new(StreamErrorCondition::NotAuthorized).with_text("account removed"),
        );
        let bare = self.bare_of(user);
        self.cancel_subscriptions(&bare, &roster, &pending).await;
        self.remove_from_rosters(&bare).await;
        self.forget_pep(user).await;
        if let Ok(who) = BareJid::new(&bare) {
            let hub = self.pubsub.clone();
            match tokio::task::spawn_blocking(move || hub.forget_entity(&who)).await {
                Ok(done) => {
                    for (addr, effects) in done {
                        self.run_effects(&addr, effects).await;
                    }
                }
                Err(e) => warn!(error = %e, "pubsub cleanup task failed"),
            }
        }
        Ok(true)
    }

    /// Ends `user`'s sessions (all, or all but the one with id `except`) with `err`.
    pub fn end_sessions(&self, user: &str, except: Option<u64>, err: &StreamError) {
        let mut bytes = err.to_bytes();
        bytes.extend_from_slice(b"</stream:stream>");
        let bytes = bytes::Bytes::from(bytes);
        for s in self.sessions.of_user(user) {
            if Some(s.info.id) != except {
                s.outbox.close_after(Some(bytes.clone()));
            }
        }
    }

    /// XEP-0077 3.2: each local contact hears the subscriptions end both ways, as if the
    /// user had sent `unsubscribe` (its subscription to them, or its pending request)
    /// and `unsubscribed` (theirs to it, or their pending request).
    async fn cancel_subscriptions(
        &self,
        bare: &str,
        roster: &[hydrant_storage::RosterEntry],
        pending: &[(String, Vec<u8>)],
    ) {
        let local = |jid: &str| self.local_user_of(jid).is_some();
        for e in roster.iter().filter(|e| local(&e.jid)) {
            if matches!(e.subscription, SubState::To | SubState::Both) || e.ask_out {
                let p = presence_to(bare, &e.jid, "unsubscribe");
                self.inbound_subscription(bare, &e.jid, "unsubscribe", p)
                    .await;
            }
            if matches!(e.subscription, SubState::From | SubState::Both) {
                let p = presence_to(bare, &e.jid, "unsubscribed");
                self.inbound_subscription(bare, &e.jid, "unsubscribed", p)
                    .await;
            }
        }
        for (from, _) in pending.iter().filter(|(f, _)| local(f)) {
            let p = presence_to(bare, from, "unsubscribed");
            self.inbound_subscription(bare, from, "unsubscribed", p)
                .await;
        }
    }

    /// Removes the account's JID from every roster and pending request, with a roster
    /// push to each owner's interested sessions (RFC 6121 2.1.6).
    async fn remove_from_rosters(&self, bare: &str) {
        let b = bare.to_owned();
        let changed = match self.db.run(move |s| s.remove_contact_everywhere(&b)).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, jid = bare, "could not remove a removed account from rosters");
                return;
            }
        };
        let Ok(jid) = BareJid::new(bare) else { return };
        let item = RosterItem {
            jid,
            name: None,
            subscription: Subscription::Remove,
            ask: false,
            groups: Vec::new(),
            approved: false,
        };
        for (owner, ver) in changed {
            self.push(&owner, &item, ver);
        }
    }

    /// A password change: every session of `user` but `except` ends with `<reset/>`.
    pub fn password_changed(&self, user: &str, except: Option<u64>) {
        self.end_sessions(
            user,
            except,
            &StreamError::new(StreamErrorCondition::Reset).with_text("password changed"),
        );
    }

    /// Applies every change the admin CLI recorded (module doc).
    pub async fn apply_account_changes(&self) {
        let changes = match self.db.run(|s| s.account_changes()).await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "reading account changes failed");
                return;
            }
        };
        for (user, change) in changes {
            match change {
                AccountChange::Removed => {
                    // Deleting the account deletes its record too.
                    if let Err(e) = self.remove_account(&user).await {
                        warn!(error = %e, user, "removing an account failed");
                    }
                }
                AccountChange::PasswordChanged => {
                    self.password_changed(&user, None);
                    let u = user.clone();
                    if let Err(e) = self
                        .db
                        .run(move |s| s.clear_change(&u, AccountChange::PasswordChanged))
                        .await
                    {
                        warn!(error = %e, user, "clearing an account change failed");
                    }
                }
            }
        }
    }

    /// Applies recorded changes now and every [`CHANGES_POLL`] until `shutdown`.
    pub async fn watch_account_changes(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(CHANGES_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => self.apply_account_changes().await,
            }
        }
    }
}
