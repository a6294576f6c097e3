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

        let page_cap = self.cfg.max_page_items;
        let max_bytes = Some(self.cfg.max_page_bytes);
        let (items, rsm) = if !ids.is_empty() {
            self.items_by_id(name, ids)?
        } else if let Some(n) = max_items {
            let items = self.store.query_items(
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
            self.page(name, rsm.as_ref(), page_cap)?
        };
        Ok((
            Reply::Items {
                node: name.clone(),
                items,
                rsm,
            },
            Vec::new(),
        ))
    }

    /// Items by id (XEP-0060 6.5.8), newest first. Requested items that do not exist are
    /// left out (6.5.9.11). A repeated id counts once; more distinct ids than a page
    /// holds are refused. The page's byte cap is applied to the stored lengths before
    /// any payload is read; when it leaves items out, an RSM `<set/>` with the count of
    /// items found says so (XEP-0059 2.6), and the requester asks again for the rest.
    fn items_by_id(
        &self,
        name: &NodeName,
        ids: &[ItemId],
    ) -> Result<(Vec<Arc<Item>>, Option<RsmResult>), Error> {
        let ids = distinct_ids(ids, self.cfg.max_page_items)?;
        let mut metas = self.store.item_meta(name, &ids)?;
        metas.sort_unstable_by_key(|m| std::cmp::Reverse(m.seq));
        let mut budget = ByteBudget::new(Some(self.cfg.max_page_bytes));
        let kept = metas
            .iter()
            .take_while(|m| budget.admit(m.payload_bytes))
            .count();
        let mut items = Vec::with_capacity(kept);
        for m in &metas[..kept] {
            // Gone since (a concurrent retract cannot happen under the service's lock,
            // but a store is allowed to answer so).
            if let Some(item) = self.store.get_item(name, &m.id)? {
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
    fn page(
        &self,
        name: &NodeName,
        rsm: Option<&RsmQuery>,
        page_cap: u32,
    ) -> Result<(Vec<Arc<Item>>, Option<RsmResult>), Error> {
        let default = RsmQuery::default();
        let q = rsm.unwrap_or(&default);
        let max = q.max.unwrap_or(page_cap).min(page_cap) as usize;
        // The byte cap applies in the order of each query below: the items next to the
        // RSM marker are the ones kept.
        let max_bytes = Some(self.cfg.max_page_bytes);
        let count = self.store.count_items(name, &ItemQuery::default())?;
        let seq_of = |id: &str| self.seq_of(name, &ItemId::from(id));
        let mut items = match (q.after.as_deref(), q.before.as_deref()) {
            (Some(after), _) => self.store.query_items(
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
                let mut v = self.store.query_items(
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
            (None, None) => self.store.query_items(
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
                let newer = self.store.count_items(
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
