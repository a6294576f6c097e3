//! Archive queries on one node: the semantics of XEP-0313 (MAM) on pubsub nodes
//! (XEP-0442). The wire format is the server's; this is what a query means.
//!
//! The archive of a node is its stored items in chronological order (by `seq`: the
//! order subscribers received them; a re-published item moves to the end). Archive
//! UIDs, and the RSM UIDs that page through them, are ItemIDs. Unlike items retrieval
//! (newest first, `service/items.rs`), pages walk forwards: `after` X gives the items
//! published after X, which is how a subscriber that was away catches up.
//!
//! Who may query: whoever may retrieve the node's items ([`Service::may_retrieve`]).

use std::sync::Arc;

use hydrant_proto::Jid;

use crate::access::Action;
use crate::error::Error;
use crate::relations::Relations;
use crate::service::Service;
use crate::store::{ItemQuery, Store};
use crate::types::{Item, ItemId, NodeName};

/// Items read per store call when a publisher filter (`with`) has to look at items
/// one by one.
const SCAN_CHUNK: usize = 256;

/// One archive query (XEP-0313 4.1 filters and XEP-0059 paging), in domain terms.
/// All filters combine (AND); an unset one matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ArchiveQuery {
    /// Only items published at or after this time (`start`, inclusive).
    pub start_ms: Option<u64>,
    /// Only items published at or before this time (`end`, inclusive).
    pub end_ms: Option<u64>,
    /// Only items after this one (`after-id`); it must be in the archive.
    pub after_id: Option<ItemId>,
    /// Only items before this one (`before-id`); it must be in the archive.
    pub before_id: Option<ItemId>,
    /// Only these items (`ids`); each must be in the archive. `Some(vec![])` matches
    /// nothing.
    pub ids: Option<Vec<ItemId>>,
    /// Only items whose publisher is this JID (`with`); a bare JID matches all of its
    /// resources.
    pub with: Option<Jid>,
    /// RSM `<max/>`: at most this many items, and never more than
    /// [`crate::ServiceConfig::max_page_items`].
    pub max: Option<u32>,
    /// RSM `<after/>`: the page that follows this item; it must be in the archive.
    pub after: Option<ItemId>,
    /// RSM `<before/>`: the page that precedes this item, walking backwards; `Some("")`
    /// asks for the last page (the newest items). It must be in the archive.
    pub before: Option<String>,
    /// RSM `<index/>` (without `after`/`before`): skip this many matching items first.
    pub index: Option<u32>,
}

/// One page of an archive query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchivePage {
    /// In chronological order (oldest first), whichever way the page was asked for.
    pub items: Vec<Arc<Item>>,
    /// No further page in the direction of paging: forwards (no `before`) nothing
    /// matches after the last item; backwards (`before`) nothing matches before the
    /// first one. Always true for an empty page.
    pub complete: bool,
    /// How many items match the query's filters (the RSM `<count/>`, ignoring the
    /// RSM page bounds); `None` when counting would mean reading every item (a
    /// `with` filter).
    pub count: Option<u64>,
    /// How many matching items precede the first one of the page (the RSM `<first
    /// index=..>`), when `count` is known and the page is not empty.
    pub first_index: Option<u64>,
}

impl<S: Store> Service<S> {
    /// Whether `actor` may read the items of `node`: the item-retrieval rule of the
    /// access model (XEP-0060 6.5), admins as owners. `Err(NodeNotFound)` for a node
    /// that does not exist, else the access model's denial.
    pub fn may_retrieve(
        &self,
        node: &NodeName,
        actor: &Jid,
        rel: &dyn Relations,
    ) -> Result<(), Error> {
        let n = self.node(node)?;
        let bare = actor.to_bare();
        let admin = rel.is_admin(&bare);
        self.check(n, &bare, admin, Action::RetrieveItems, rel)
            .map(|_| ())
    }

    /// Runs an archive query on `node` for `actor` (checked with
    /// [`Service::may_retrieve`] first). Errors: `NodeNotFound`, the access denial,
    /// `ItemNotFound` for an `after-id` / `before-id` / `ids` / RSM UID that is not in
    /// the archive, `BadRequest` for RSM `after` and `before` together.
    pub fn archive(
        &self,
        actor: &Jid,
        node: &NodeName,
        q: &ArchiveQuery,
        rel: &dyn Relations,
    ) -> Result<ArchivePage, Error> {
        self.may_retrieve(node, actor, rel)?;
        let seq_of = |id: &ItemId| -> Result<u64, Error> {
            Ok(self
                .store
                .get_item(node, id)?
                .ok_or(Error::ItemNotFound)?
                .seq)
        };
        if q.after.is_some() && q.before.is_some() {
            // XEP-0313 4.3.2: undefined by RSM; before-id/after-id are the way.
            return Err(Error::BadRequest("RSM after and before together"));
        }

        // The whole result set (what <count/> counts): time and id bounds.
        let mut range = ItemQuery {
            start_ms: q.start_ms,
            end_ms: q.end_ms,
            ..ItemQuery::default()
        };
        if let Some(id) = &q.after_id {
            range.after_seq = Some(seq_of(id)?);
        }
        if let Some(id) = &q.before_id {
            range.before_seq = Some(seq_of(id)?);
        }
        // The page: the result set cut at the RSM UID.
        let mut page = range.clone();
        if let Some(id) = &q.after {
            let s = seq_of(id)?;
            page.after_seq = Some(page.after_seq.map_or(s, |a| a.max(s)));
        }
        let backwards = q.before.is_some();
        if let Some(id) = q.before.as_deref().filter(|b| !b.is_empty()) {
            let s = seq_of(&ItemId::from(id))?;
            page.before_seq = Some(page.before_seq.map_or(s, |b| b.min(s)));
        }
        let cap = self.cfg.max_page_items;
        let max = q.max.map_or(cap, |m| m.min(cap)) as usize;
        let skip = if q.after.is_none() && !backwards {
            q.index.unwrap_or(0) as usize
        } else {
            0
        };
        let with = q.with.as_ref();
        let publisher_matches = |i: &Item| match with {
            None => true,
            Some(w) if w.resource().is_some() => i.publisher == *w,
            Some(w) => i.publisher.to_bare() == w.to_bare(),
        };

        if let Some(ids) = &q.ids {
            // Few, named items: fetch them and do the rest in memory.
            let mut set = Vec::with_capacity(ids.len());
            for id in ids {
                set.push(self.store.get_item(node, id)?.ok_or(Error::ItemNotFound)?);
            }
            set.sort_by_key(|i| i.seq);
            set.dedup_by_key(|i| i.seq);
            set.retain(|i| in_range(i, &range) && publisher_matches(i));
            let mut hits: Vec<usize> = (0..set.len())
                .filter(|&k| in_range(&set[k], &page))
                .collect();
            if backwards {
                hits.reverse();
            }
            let more = hits.len() > skip + max;
            let mut chosen: Vec<usize> = hits.into_iter().skip(skip).take(max).collect();
            chosen.sort_unstable();
            let first_index = chosen.first().map(|&k| k as u64);
            return Ok(ArchivePage {
                items: chosen.into_iter().map(|k| Arc::clone(&set[k])).collect(),
                complete: !more,
                count: Some(set.len() as u64),
                first_index,
            });
        }

        let (mut items, more) = if with.is_some() {
            self.scan(node, &page, backwards, skip, max, &publisher_matches)?
        } else {
            let mut v = self.store.query_items(
                node,
                &ItemQuery {
                    newest_first: backwards,
                    skip,
                    limit: Some(max + 1),
                    ..page
                },
            )?;
            let more = v.len() > max;
            v.truncate(max);
            (v, more)
        };
        if backwards {
            items.reverse();
        }
        let (count, first_index) = if with.is_some() {
            (None, None)
        } else {
            let count = self.store.count_items(node, &range)?;
            let first_index = match items.first() {
                Some(f) => Some(self.store.count_items(
                    node,
                    &ItemQuery {
                        before_seq: Some(f.seq),
                        ..range.clone()
                    },
                )?),
                None => None,
            };
            (Some(count), first_index)
        };
        Ok(ArchivePage {
            items,
            complete: !more,
            count,
            first_index,
        })
    }

    /// Up to `max` items of `range` that pass `keep`, after skipping `skip` of them,
    /// read in chunks; and whether more would follow.
    fn scan(
        &self,
        node: &NodeName,
        range: &ItemQuery,
        newest_first: bool,
        mut skip: usize,
        max: usize,
        keep: &dyn Fn(&Item) -> bool,
    ) -> Result<(Vec<Arc<Item>>, bool), Error> {
        let mut out = Vec::new();
        let mut cursor = range.clone();
        cursor.newest_first = newest_first;
        cursor.limit = Some(SCAN_CHUNK);
        loop {
            let chunk = self.store.query_items(node, &cursor)?;
            for item in &chunk {
                if !keep(item) {
                    continue;
                }
                if skip > 0 {
                    skip -= 1;
                } else if out.len() == max {
                    return Ok((out, true));
                } else {
                    out.push(Arc::clone(item));
                }
            }
            match chunk.last() {
                Some(last) if chunk.len() == SCAN_CHUNK => {
                    if newest_first {
                        cursor.before_seq = Some(last.seq);
                    } else {
                        cursor.after_seq = Some(last.seq);
                    }
                }
                _ => return Ok((out, false)),
            }
        }
    }
}

/// Whether an item lies within a query's seq and time bounds.
fn in_range(i: &Item, r: &ItemQuery) -> bool {
    r.after_seq.is_none_or(|a| i.seq > a)
        && r.before_seq.is_none_or(|b| i.seq < b)
        && r.start_ms.is_none_or(|s| i.published_ms >= s)
        && r.end_ms.is_none_or(|e| i.published_ms <= e)
}
