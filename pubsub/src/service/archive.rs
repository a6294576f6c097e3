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
use crate::service::items::distinct_ids;
use crate::store::{ByteBudget, ItemMeta, ItemQuery, Store, publisher_matches};
use crate::types::{Item, ItemId, NodeName};

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
    /// The page's byte budget (see [`crate::store::item_cost`]), judged on stored
    /// lengths before any payload is read; at least one item is returned. `None`:
    /// [`crate::ServiceConfig::max_page_bytes`].
    pub max_bytes: Option<usize>,
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
    /// RSM page bounds). Always known today (the store counts by index and publisher
    /// column, reading no payload); optional on the wire (XEP-0313 4.3.3).
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
        let seq_of = |id: &ItemId| self.seq_of(node, id);
        if q.after.is_some() && q.before.is_some() {
            // XEP-0313 4.3.2: undefined by RSM; before-id/after-id are the way.
            return Err(Error::BadRequest("RSM after and before together"));
        }

        // The whole result set (what <count/> counts): time, id and publisher bounds.
        let mut range = ItemQuery {
            start_ms: q.start_ms,
            end_ms: q.end_ms,
            publisher: q.with.clone(),
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
        let max_bytes = Some(q.max_bytes.unwrap_or(self.cfg.max_page_bytes));
        let skip = if q.after.is_none() && !backwards {
            q.index.unwrap_or(0) as usize
        } else {
            0
        };

        if let Some(ids) = &q.ids {
            return self.archive_ids(node, ids, &range, &page, backwards, skip, max, max_bytes);
        }

        // The store cuts the page at `max` items and at the byte budget (in the order
        // of paging, so the items next to the RSM UID are the ones kept).
        let mut items = self.store.query_items(
            node,
            &ItemQuery {
                newest_first: backwards,
                skip,
                limit: Some(max),
                max_bytes,
                ..page.clone()
            },
        )?;
        if backwards {
            items.reverse();
        }
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
        // The page is a contiguous run of the result set, so what lies beyond it in the
        // direction of paging follows from the count and the index.
        let complete = match first_index {
            None => max > 0 || self.store.count_items(node, &page)? <= skip as u64,
            Some(i) if backwards => i == 0,
            Some(i) => i + items.len() as u64 >= count,
        };
        Ok(ArchivePage {
            items,
            complete,
            count: Some(count),
            first_index,
        })
    }

    /// An `ids` query: the named items (each must exist; a repeat counts once; at most
    /// a page of them), filtered and paged by their metadata; payloads are read only for
    /// the items of the page.
    #[allow(clippy::too_many_arguments)]
    fn archive_ids(
        &self,
        node: &NodeName,
        ids: &[ItemId],
        range: &ItemQuery,
        page: &ItemQuery,
        backwards: bool,
        skip: usize,
        max: usize,
        max_bytes: Option<usize>,
    ) -> Result<ArchivePage, Error> {
        let ids = distinct_ids(ids, self.cfg.max_page_items)?;
        let mut set = self.store.item_meta(node, &ids)?;
        if set.len() < ids.len() {
            // XEP-0313 4.1.3: any UID not in the archive is item-not-found.
            return Err(Error::ItemNotFound);
        }
        set.sort_unstable_by_key(|m| m.seq);
        set.retain(|m| in_range(m, range));
        let mut hits: Vec<usize> = (0..set.len())
            .filter(|&k| in_range(&set[k], page))
            .collect();
        if backwards {
            hits.reverse();
        }
        let matching = hits.len();
        let mut budget = ByteBudget::new(max_bytes);
        let mut chosen: Vec<usize> = hits
            .into_iter()
            .skip(skip)
            .take(max)
            .take_while(|&k| budget.admit(set[k].payload_bytes))
            .collect();
        let more = matching > skip + chosen.len();
        chosen.sort_unstable();
        let first_index = chosen.first().map(|&k| k as u64);
        let mut items = Vec::with_capacity(chosen.len());
        for &k in &chosen {
            items.push(
                self.store
                    .get_item(node, &set[k].id)?
                    .ok_or(Error::ItemNotFound)?,
            );
        }
        Ok(ArchivePage {
            items,
            complete: !more,
            count: Some(set.len() as u64),
            first_index,
        })
    }
}

/// Whether an item lies within a query's seq, time and publisher bounds.
fn in_range(m: &ItemMeta, r: &ItemQuery) -> bool {
    r.after_seq.is_none_or(|a| m.seq > a)
        && r.before_seq.is_none_or(|b| m.seq < b)
        && r.start_ms.is_none_or(|s| m.published_ms >= s)
        && r.end_ms.is_none_or(|e| m.published_ms <= e)
        && publisher_matches(r.publisher.as_ref(), &m.publisher)
}
