//! Retrieve items (XEP-0060 6.5): all, the N most recent, by id, and paged with RSM
//! (XEP-0059).
//!
//! Order: replies list items newest first (highest seq first), as XEP-0060 6.5.7 has
//! for `max_items`, whichever way they were asked for. RSM pages walk that order:
//! the first page holds the newest items, `<after>X</after>` continues with items older
//! than X, `<before>X</before>` gives the page of items just newer than X, and an empty
//! `<before/>` the last page (the oldest items). RSM UIDs are ItemIDs; `<first
//! index='n'>` counts items newer than the first one returned. Re-publishing an item
//! moves it to the front, as a new seq.

use std::collections::HashSet;
use std::sync::Arc;

use crate::access::Action;
use crate::config::AccessModel;
use crate::effect::Effect;
use crate::error::Error;
use crate::request::{Reply, RsmQuery, RsmResult};
use crate::service::{Ctx, Service};
use crate::store::{ByteBudget, ItemQuery, Store};
use crate::types::{Item, ItemId, NodeName, SubId};

/// An items request that passed its access checks: the reads it still has to do, which
/// need the store but not the service (`Service::items_read`). `S` is the store handle it
/// reads with; `()` when the service reads at once with its own (`Service::items`).
pub struct ItemsRead<S> {
    store: S,
    name: NodeName,
    max_items: Option<u32>,
    ids: Vec<ItemId>,
    rsm: Option<RsmQuery>,
    max_page_items: u32,
    max_page_bytes: usize,
    address: hydrant_proto::Jid,
}

impl<S: Store> Service<S> {
    pub(crate) fn items(
        &mut self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        subid: Option<&SubId>,
        max_items: Option<u32>,
        ids: &[ItemId],
        rsm: Option<RsmQuery>,
    ) -> Result<(Reply, Vec<Effect>), Error> {
        self.check_items(ctx, name, subid)?;
        let read = ItemsRead {
            store: (),
            name: name.clone(),
            max_items,
            ids: ids.to_vec(),
            rsm,
            max_page_items: self.cfg.max_page_items,
            max_page_bytes: self.cfg.max_page_bytes,
            address: self.address.clone(),
        };
        Ok((read.reply(&self.store)?, Vec::new()))
    }

    /// XEP-0060 6.5 access: may `ctx` read the node's items, with this SubID.
    fn check_items(
        &self,
        ctx: &Ctx<'_>,
        name: &NodeName,
        subid: Option<&SubId>,
    ) -> Result<(), Error> {
        let node = self.node(name)?;
        self.check_ctx(node, ctx, Action::RetrieveItems)?;
        // SubIDs matter where the subscription grants access (authorize); elsewhere a
        // SubID, if given, must still be one of the requester's.
        let mine: Vec<&SubId> = node.subs_of_bare(&ctx.actor).map(|s| &s.subid).collect();
        match subid {
            Some(id) if !mine.contains(&id) => return Err(Error::InvalidSubId),
            None if mine.len() > 1 && node.config.access_model == AccessModel::Authorize => {
                return Err(Error::SubIdRequired);
            }
            _ => {}
        }
        Ok(())
    }
}

impl<S: Store + Clone> Service<S> {
    /// An items request (XEP-0060 6.5) checked while the caller holds the service, its
    /// reads left for after it let go ([`ItemsRead::run`]): a page of items is read from
    /// storage and parsed outside the service's lock, so publishes do not wait behind
    /// it. `None`: not an items request (handle it with [`Service::handle`]). The
    /// store is cloned: a handle (the SQLite store is an `Arc`).
    pub fn items_read(
        &self,
        from: &hydrant_proto::Jid,
        req: &crate::request::Request,
        rel: &dyn crate::relations::Relations,
        now_ms: u64,
    ) -> Option<Result<ItemsRead<S>, Error>> {
        let crate::request::Request::Items {
            node,
            subid,
            max_items,
            ids,
            rsm,
        } = req
        else {
            return None;
        };
        let ctx = Ctx::new(from, rel, now_ms);
        Some(
            self.check_items(&ctx, node, subid.as_ref())
                .map(|()| ItemsRead {
                    store: self.store.clone(),
                    name: node.clone(),
                    max_items: *max_items,
                    ids: ids.clone(),
                    rsm: rsm.clone(),
                    max_page_items: self.cfg.max_page_items,
                    max_page_bytes: self.cfg.max_page_bytes,
                    address: self.address.clone(),
                }),
        )
    }
}

impl<S: Store> ItemsRead<S> {
    /// Does the reads: the iq result payload, as [`Service::handle`] would render it.
    pub fn run(self) -> Result<crate::effect::Outcome, Error> {
        Ok(crate::effect::Outcome {
            reply: crate::xep0060::response::render(&self.reply(&self.store)?, &self.address),
            effects: Vec::new(),
        })
    }
}

impl<T> ItemsRead<T> {
    fn reply<S: Store>(&self, store: &S) -> Result<Reply, Error> {
        let name = &self.name;
        let page_cap = self.max_page_items;
        let max_bytes = Some(self.max_page_bytes);
        let (items, rsm) = if !self.ids.is_empty() {
            self.items_by_id(store, name, &self.ids)?
        } else if let Some(n) = self.max_items {
            let items = store.query_items(
                name,
                &ItemQuery {
                    newest_first: true,
                    limit: Some(n.min(page_cap) as usize),
                    max_bytes,
                    ..ItemQuery::default()
                },
            )?;
            (items, None)
        } else {
            self.page(store, name, self.rsm.as_ref(), page_cap)?
        };
        Ok(Reply::Items {
            node: name.clone(),
            items,
            rsm,
        })
    }

    /// Items by id (XEP-0060 6.5.8), newest first. Requested items that do not exist are
    /// left out (6.5.9.11). A repeated id counts once; more distinct ids than a page
    /// holds are refused. The page's byte cap is applied to the stored lengths before
    /// any payload is read; when it leaves items out, an RSM `<set/>` with the count of
    /// items found says so (XEP-0059 2.6), and the requester asks again for the rest.
    fn items_by_id<S: Store>(
        &self,
        store: &S,
        name: &NodeName,
        ids: &[ItemId],
    ) -> Result<(Vec<Arc<Item>>, Option<RsmResult>), Error> {
        let ids = distinct_ids(ids, self.max_page_items)?;
        let mut metas = store.item_meta(name, &ids)?;
        metas.sort_unstable_by_key(|m| std::cmp::Reverse(m.seq));
        let mut budget = ByteBudget::new(Some(self.max_page_bytes));
        let kept = metas
            .iter()
            .take_while(|m| budget.admit(m.payload_bytes))
            .count();
        let mut items = Vec::with_capacity(kept);
        for m in &metas[..kept] {
            // Gone since: read outside the service's lock, a retract may have come in
            // between.
            if let Some(item) = store.get_item(name, &m.id)? {
                items.push(item);
            }
        }
        let rsm = (kept < metas.len()).then(|| RsmResult {
            first: items.first().map(|f| (f.id.to_string(), 0)),
            last: items.last().map(|l| l.id.to_string()),
            count: metas.len() as u64,
        });
        Ok((items, rsm))
    }

    /// One RSM page; the `<set/>` is included when RSM was asked for or when the reply
    /// does not hold every item.
    fn page<S: Store>(
        &self,
        store: &S,
        name: &NodeName,
        rsm: Option<&RsmQuery>,
        page_cap: u32,
    ) -> Result<(Vec<Arc<Item>>, Option<RsmResult>), Error> {
        let default = RsmQuery::default();
        let q = rsm.unwrap_or(&default);
        let max = q.max.unwrap_or(page_cap).min(page_cap) as usize;
        // The byte cap applies in the order of each query below: the items next to the
        // RSM marker are the ones kept.
        let max_bytes = Some(self.max_page_bytes);
        let count = store.count_items(name, &ItemQuery::default())?;
        let seq_of = |id: &str| super::seq_of(store, name, &ItemId::from(id));
        let mut items = match (q.after.as_deref(), q.before.as_deref()) {
            (Some(after), _) => store.query_items(
                name,
                &ItemQuery {
                    before_seq: Some(seq_of(after)?),
                    newest_first: true,
                    limit: Some(max),
                    max_bytes,
                    ..ItemQuery::default()
                },
            )?,
            (None, Some(before)) => {
                let after_seq = if before.is_empty() {
                    None
                } else {
                    Some(seq_of(before)?)
                };
                let mut v = store.query_items(
                    name,
                    &ItemQuery {
                        after_seq,
                        newest_first: false,
                        limit: Some(max),
                        max_bytes,
                        ..ItemQuery::default()
                    },
                )?;
                v.reverse();
                v
            }
            (None, None) => store.query_items(
                name,
                &ItemQuery {
                    newest_first: true,
                    skip: q.index.unwrap_or(0) as usize,
                    limit: Some(max),
                    max_bytes,
                    ..ItemQuery::default()
                },
            )?,
        };
        items.truncate(max);
        if rsm.is_none() && items.len() as u64 == count {
            return Ok((items, None));
        }
        let first = match items.first() {
            Some(f) => {
                let newer = store.count_items(
                    name,
                    &ItemQuery {
                        after_seq: Some(f.seq),
                        ..ItemQuery::default()
                    },
                )?;
                Some((f.id.to_string(), newer))
            }
            None => None,
        };
        let last = items.last().map(|l| l.id.to_string());
        Ok((items, Some(RsmResult { first, last, count })))
    }
}

/// `ids` without repeats (first occurrence kept), refused when more than `limit`
/// distinct ones remain: a request names at most one page of items.
pub(crate) fn distinct_ids(ids: &[ItemId], limit: u32) -> Result<Vec<ItemId>, Error> {
    let mut seen = HashSet::with_capacity(ids.len().min(limit as usize + 1));
    let mut out = Vec::new();
    for id in ids {
        if seen.contains(id) {
            continue;
        }
        if out.len() == limit as usize {
            return Err(Error::TooManyIds { limit });
        }
        seen.insert(id);
        out.push(id.clone());
    }
    Ok(out)
}
