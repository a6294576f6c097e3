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

use std::sync::Arc;

use crate::access::Action;
use crate::config::AccessModel;
use crate::effect::Effect;
use crate::error::Error;
use crate::request::{Reply, RsmQuery, RsmResult};
use crate::service::{Ctx, Service};
use crate::store::{ItemQuery, Store};
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
        let mine: Vec<&SubId> = node
            .subscriptions
            .iter()
            .filter(|s| s.jid.to_bare() == ctx.actor)
            .map(|s| &s.subid)
            .collect();
        match subid {
            Some(id) if !mine.contains(&id) => return Err(Error::InvalidSubId),
            None if mine.len() > 1 && node.config.access_model == AccessModel::Authorize => {
                return Err(Error::SubIdRequired);
            }
            _ => {}
        }

        let page_cap = self.cfg.max_page_items;
        let (items, rsm) = if !ids.is_empty() {
            // Requested items that do not exist are left out (XEP-0060 6.5.9.11).
            let mut found = Vec::new();
            for id in ids {
                if let Some(item) = self.store.get_item(name, id)? {
                    found.push(item);
                }
            }
            cap_bytes(&mut found, self.cfg.max_page_bytes, false);
            (found, None)
        } else if let Some(n) = max_items {
            let mut items = self.last_items(name, n.min(page_cap) as usize)?;
            cap_bytes(&mut items, self.cfg.max_page_bytes, false);
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
        let count = self.store.count_items(name, &ItemQuery::default())?;
        let seq_of = |id: &str| -> Result<u64, Error> {
            Ok(self
                .store
                .get_item(name, &ItemId::from(id))?
                .ok_or(Error::ItemNotFound)?
                .seq)
        };
        let mut items = match (q.after.as_deref(), q.before.as_deref()) {
            (Some(after), _) => self.store.query_items(
                name,
                &ItemQuery {
                    before_seq: Some(seq_of(after)?),
                    newest_first: true,
                    limit: Some(max),
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
                    ..ItemQuery::default()
                },
            )?,
        };
        items.truncate(max);
        // A page going toward newer items (`before`) must keep the items next to the
        // marker, which are at its end.
        let keep_end = q.after.is_none() && q.before.is_some();
        cap_bytes(&mut items, self.cfg.max_page_bytes, keep_end);
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

/// Keeps at most `budget` bytes of serialised payload (always at least one item), so a
/// reply can never outgrow the requester's outbound queue; RSM continues from the last
/// item kept. `keep_end`: drop from the front instead of the back.
fn cap_bytes(items: &mut Vec<Arc<Item>>, budget: usize, keep_end: bool) {
    let size =
        |i: &Arc<Item>| -> usize { 128 + i.payload.as_ref().map_or(0, |p| p.to_bytes("").len()) };
    let mut used = 0;
    let mut keep = 0;
    let order: Box<dyn Iterator<Item = &Arc<Item>>> = if keep_end {
        Box::new(items.iter().rev())
    } else {
        Box::new(items.iter())
    };
    for i in order {
        let n = size(i);
        if keep > 0 && used + n > budget {
            break;
        }
        used += n;
        keep += 1;
    }
    if keep_end {
        items.drain(..items.len() - keep);
    } else {
        items.truncate(keep);
    }
}
