//! [`SubTable`]: one node's subscriptions, grouped by account, and the fan-out view of
//! them kept up to date one account at a time.
//!
//! Why not a list and a snapshot rebuilt at every change: a node with 10,000
//! subscribers rebuilt its whole fan-out snapshot (a sorted map of every subscriber,
//! with copies of their JIDs and ids) at each subscribe, under the service lock, so
//! 10,000 subscribes cost some 50 million entry copies and every publish meanwhile
//! waited behind them (issue 8, item 11). Here a change costs O(log n) plus the
//! account's own subscriptions (at most `max_subscriptions_per_jid`). The snapshot the
//! fan-out reads is materialised on first use after a change, one pointer copy per
//! subscriber; that first use is a publish, which then writes to each of them anyway.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use hydrant_proto::{BareJid, Jid};

use crate::types::{SubId, SubState, Subscriber, Subscribers, Subscription};

#[derive(Clone, Debug, Default)]
pub(crate) struct SubTable {
    /// Every subscription, by account, each account's in the order they were made.
    by_bare: BTreeMap<BareJid, Vec<Subscription>>,
    /// One entry per JID with a `subscribed`, delivering subscription whose account is
    /// not an outcast: what a publish notifies.
    live: BTreeMap<Jid, Arc<Subscriber>>,
    /// `live` as the fan-out's slice; emptied by every change, filled on first read.
    snapshot: OnceLock<Subscribers>,
}

impl SubTable {
    /// A table of `subs` (node load); `outcast` says which accounts are outcasts.
    pub(crate) fn new(subs: Vec<Subscription>, outcast: impl Fn(&BareJid) -> bool) -> Self {
        let mut t = SubTable::default();
        for s in subs {
            t.by_bare.entry(s.jid.to_bare()).or_default().push(s);
        }
        let accounts: Vec<BareJid> = t.by_bare.keys().cloned().collect();
        for bare in accounts {
            let out = outcast(&bare);
            t.reindex(&bare, Vec::new(), out);
        }
        t
    }

    /// How many JIDs a publish notifies.
    pub(crate) fn delivering(&self) -> usize {
        self.live.len()
    }

    /// Every subscription, by account.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.by_bare.values().flatten()
    }

    /// The subscriptions of any JID with this bare JID.
    pub(crate) fn of_bare(&self, bare: &BareJid) -> &[Subscription] {
        self.by_bare.get(bare).map_or(&[], Vec::as_slice)
    }

    /// The subscriptions of exactly this JID.
    pub(crate) fn of<'a>(&'a self, jid: &'a Jid) -> impl Iterator<Item = &'a Subscription> {
        self.of_bare(&jid.to_bare())
            .iter()
            .filter(move |s| &s.jid == jid)
    }

    /// Adds `sub`, or replaces the subscription with its id. `outcast`: whether its
    /// account is an outcast of the node.
    pub(crate) fn put(&mut self, sub: Subscription, outcast: bool) {
        let bare = sub.jid.to_bare();
        let before = self.jids_of(&bare);
        let group = self.by_bare.entry(bare.clone()).or_default();
        if let Some(slot) = group.iter_mut().find(|s| s.subid == sub.subid) {
            *slot = sub;
        } else {
            group.push(sub);
        }
        self.reindex(&bare, before, outcast);
    }

    /// Removes the subscription `subid` of an account.
    pub(crate) fn remove(
        &mut self,
        bare: &BareJid,
        subid: &SubId,
        outcast: bool,
    ) -> Option<Subscription> {
        let before = self.jids_of(bare);
        let group = self.by_bare.get_mut(bare)?;
        let at = group.iter().position(|s| &s.subid == subid)?;
        let gone = group.remove(at);
        if group.is_empty() {
            self.by_bare.remove(bare);
        }
        self.reindex(bare, before, outcast);
        Some(gone)
    }

    /// Removes every subscription of an account.
    pub(crate) fn remove_account(&mut self, bare: &BareJid) -> Vec<Subscription> {
        let before = self.jids_of(bare);
        let gone = self.by_bare.remove(bare).unwrap_or_default();
        self.reindex(bare, before, true);
        gone
    }

    /// Replaces every subscription of an account by `subs` (all of that account).
    pub(crate) fn replace_account(
        &mut self,
        bare: &BareJid,
        subs: Vec<Subscription>,
        outcast: bool,
    ) {
        let before = self.jids_of(bare);
        if subs.is_empty() {
            self.by_bare.remove(bare);
        } else {
            self.by_bare.insert(bare.clone(), subs);
        }
        self.reindex(bare, before, outcast);
    }

    /// Re-derives an account's fan-out entries (its affiliation changed to or from
    /// outcast).
    pub(crate) fn refresh(&mut self, bare: &BareJid, outcast: bool) {
        let before = self.jids_of(bare);
        self.reindex(bare, before, outcast);
    }

    /// The fan-out snapshot: shared, not copied, until the next change.
    pub(crate) fn subscribers(&self) -> Subscribers {
        Arc::clone(
            self.snapshot
                .get_or_init(|| self.live.values().cloned().collect()),
        )
    }

    /// One entry per JID over every subscription, whatever its state (node deletion
    /// notifies them all).
    pub(crate) fn everyone(&self) -> Subscribers {
        entries(self.iter()).into_iter().map(Arc::new).collect()
    }

    /// The distinct JIDs of an account's subscriptions.
    fn jids_of(&self, bare: &BareJid) -> Vec<Jid> {
        let mut out: Vec<Jid> = Vec::new();
        for s in self.of_bare(bare) {
            if !out.contains(&s.jid) {
                out.push(s.jid.clone());
            }
        }
        out
    }

    /// Replaces the `live` entries of `before` (the account's JIDs before a change) by
    /// those of the account as it is now.
    fn reindex(&mut self, bare: &BareJid, before: Vec<Jid>, outcast: bool) {
        for j in &before {
            self.live.remove(j);
        }
        self.snapshot = OnceLock::new();
        if outcast {
            return;
        }
        let Some(group) = self.by_bare.get(bare) else {
            return;
        };
        let delivering = group
            .iter()
            .filter(|s| s.state == SubState::Subscribed && s.options.deliver);
        for e in entries(delivering) {
            self.live.insert(e.jid.clone(), Arc::new(e));
        }
    }
}

/// One [`Subscriber`] per distinct JID of `subs`, sorted by JID: its subscription ids
/// in order and the union of their `show` filters (a JID any of whose subscriptions
/// has no filter gets everything).
fn entries<'a>(subs: impl Iterator<Item = &'a Subscription>) -> Vec<Subscriber> {
    let mut by_jid: BTreeMap<&Jid, (Subscriber, bool)> = BTreeMap::new();
    for s in subs {
        let (e, unfiltered) = by_jid.entry(&s.jid).or_insert_with(|| {
            (
                Subscriber {
                    jid: s.jid.clone(),
                    subids: Vec::new(),
                    show_values: Vec::new(),
                    urgent: false,
                },
                false,
            )
        });
        e.subids.push(s.subid.clone());
        e.urgent |= s.options.urgent;
        *unfiltered |= s.options.show_values.is_empty();
        for v in &s.options.show_values {
            if !e.show_values.contains(v) {
                e.show_values.push(*v);
            }
        }
    }
    by_jid
        .into_values()
        .map(|(mut e, unfiltered)| {
            if unfiltered {
                e.show_values.clear();
            }
            e.show_values.sort();
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::SubOptions;

    fn sub(jid: &str, id: &str, state: SubState) -> Subscription {
        Subscription {
            jid: Jid::new(jid).unwrap(),
            subid: SubId::new(id),
            state,
            options: SubOptions::default(),
        }
    }

    fn jids(s: &Subscribers) -> Vec<String> {
        s.iter().map(|e| e.jid.to_string()).collect()
    }

    #[test]
    fn fan_out_view_follows_each_change() {
        let mut t = SubTable::new(
            vec![
                sub("b@x/1", "s1", SubState::Subscribed),
                sub("a@x", "s2", SubState::Pending),
            ],
            |_| false,
        );
        assert_eq!(t.iter().count(), 2);
        assert_eq!(jids(&t.subscribers()), ["b@x/1"]);
        let first = t.subscribers();
        // Unchanged: the same snapshot, not a copy.
        assert!(Arc::ptr_eq(&first, &t.subscribers()));

        t.put(sub("a@x", "s2", SubState::Subscribed), false);
        assert_eq!(t.iter().count(), 2);
        assert_eq!(jids(&t.subscribers()), ["a@x", "b@x/1"]);
        // The old snapshot is what a fan-out in flight still walks.
        assert_eq!(jids(&first), ["b@x/1"]);

        // Two subscriptions of one JID: one entry with both ids (SHIM headers).
        t.put(sub("b@x/1", "s3", SubState::Subscribed), false);
        let snap = t.subscribers();
        let b = snap.iter().find(|e| e.jid.to_string() == "b@x/1").unwrap();
        assert_eq!(b.subids.len(), 2);

        assert!(
            t.remove(&BareJid::new("b@x").unwrap(), &SubId::new("s1"), false)
                .is_some()
        );
        let snap = t.subscribers();
        let b = snap.iter().find(|e| e.jid.to_string() == "b@x/1").unwrap();
        assert_eq!(b.subids, [SubId::new("s3")]);

        // An outcast account leaves the view but keeps its subscriptions.
        t.refresh(&BareJid::new("a@x").unwrap(), true);
        assert_eq!(jids(&t.subscribers()), ["b@x/1"]);
        assert_eq!(t.of_bare(&BareJid::new("a@x").unwrap()).len(), 1);
        assert_eq!(jids(&t.everyone()), ["a@x", "b@x/1"]);

        assert_eq!(t.remove_account(&BareJid::new("b@x").unwrap()).len(), 1);
        assert_eq!(t.iter().count(), 1);
        assert!(t.subscribers().is_empty());
    }

    #[test]
    fn other_resources_of_an_account_are_kept_apart() {
        let mut t = SubTable::default();
        t.put(sub("a@x/1", "s1", SubState::Subscribed), false);
        t.put(sub("a@x/2", "s2", SubState::Subscribed), false);
        t.put(sub("a@x.y/1", "s3", SubState::Subscribed), false);
        assert_eq!(t.of(&Jid::new("a@x/2").unwrap()).count(), 1);
        assert_eq!(t.of_bare(&BareJid::new("a@x").unwrap()).len(), 2);
        t.remove(&BareJid::new("a@x").unwrap(), &SubId::new("s1"), false);
        assert_eq!(jids(&t.subscribers()), ["a@x.y/1", "a@x/2"]);
    }
}
