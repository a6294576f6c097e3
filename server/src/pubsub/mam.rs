//! Catch-up without a flood: XEP-0313 Message Archive Management on the nodes of the
//! pubsub components and of PEP services (XEP-0442: the query names the node).
//!
//! The archive of a node is its stored items, oldest first; archive UIDs and RSM UIDs
//! are ItemIDs (semantics in the core, `Service::archive`). A subscriber that was away
//! asks for everything after the last item it saw:
//!
//! ```xml
//! <iq type='set' to='pubsub.example.com' id='q1'>
//!   <query xmlns='urn:xmpp:mam:2' queryid='f1' node='news'>
//!     <x xmlns='jabber:x:data' type='submit'>
//!       <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>
//!       <field var='after-id'><value>LAST-SEEN-ITEM-ID</value></field>
//!     </x>
//!     <set xmlns='http://jabber.org/protocol/rsm'><max>100</max></set>
//!   </query>
//! </iq>
//! ```
//!
//! and gets one `<message/>` per item, then the iq result:
//!
//! ```xml
//! <message from='pubsub.example.com' to='user@example.com/res' id='mam-7-0'>
//!   <result xmlns='urn:xmpp:mam:2' queryid='f1' id='ITEM-ID'>
//!     <forwarded xmlns='urn:xmpp:forward:0'>
//!       <delay xmlns='urn:xmpp:delay' stamp='2025-01-01T12:00:00.123Z'/>
//!       <message xmlns='jabber:client' from='pubsub.example.com' type='headline'>
//!         <event xmlns='http://jabber.org/protocol/pubsub#event'>
//!           <items node='news'><item id='ITEM-ID'>PAYLOAD</item></items>
//!         </event>
//!       </message>
//!     </forwarded>
//!   </result>
//! </message>
//! <iq type='result' from='pubsub.example.com' id='q1'>
//!   <fin xmlns='urn:xmpp:mam:2' complete='true'>
//!     <set xmlns='http://jabber.org/protocol/rsm'>
//!       <first index='12'>ITEM-ID</first><last>ITEM-ID</last><count>30</count>
//!     </set>
//!   </fin>
//! </iq>
//! ```
//!
//! The forwarded message is built as the node's notifications are (its
//! `notification_type`, payloads only when `deliver_payloads`; XEP-0442 section 3), one
//! item per message. Stamps carry milliseconds. Without a flood: a page holds at most
//! `max_page_items` items and, so that a catch-up never overflows the requester's own
//! outbound queue (which would close its stream, DESIGN.md "The hot path"), at most
//! [`PAGE_BYTES`] of result messages, fewer when its queue is already busy; a page cut
//! short says `complete='false'` and the client asks for the next one with RSM `after`.
//!
//! Also: the query form (iq get, XEP-0313 4.1.5), flipped pages (`<flip-page/>`) and
//! archive metadata (`<metadata node=../>`, the node's first and last item), which with
//! `before-id`/`after-id`/`ids` make up `urn:xmpp:mam:2#extended`. Not supported: a
//! query without a node (the services keep no archive of their own), `urn:xmpp:mam:1`,
//! and archiving preferences (XEP-0441).

// Stanza errors are the cold path of a request (as in the pubsub core).
#![allow(clippy::result_large_err)]

use bytes::Bytes;
use hydrant_proto::{Element, ErrorType, Iq, Jid, StanzaError, StanzaErrorCondition as Cond, ns};
pub use hydrant_pubsub::xep0313::MAM;
use hydrant_pubsub::xep0313::{MamRequest, bad_request, form, parse};
use hydrant_pubsub::{ArchivePage, ArchiveQuery, Error as PsError, Item, NodeName};
use tracing::warn;

use super::{ServiceKey, lock};
use crate::router::Router;
use crate::router::sessions::LocalSession;

/// Result messages of one page queue at most this many bytes on the requester's stream
/// (minus what is already queued there; at least one item always goes). Well below the
/// default outbound queue limit (1 MiB).
pub const PAGE_BYTES: usize = 256 * 1024;

/// Domain errors on the wire, XEP-0313 style: unknown node or UID `item-not-found`,
/// every access denial `forbidden` (XEP-0313 section 8.1).
fn to_stanza_error(e: &PsError) -> StanzaError {
    match e {
        PsError::NodeNotFound | PsError::ItemNotFound => StanzaError::new(Cond::ItemNotFound),
        PsError::Forbidden
        | PsError::PresenceSubscriptionRequired
        | PsError::NotInRosterGroup
        | PsError::ClosedNode
        | PsError::PendingSubscription
        | PsError::NotSubscribed
        | PsError::ItemsRequireSubscription => {
            StanzaError::new(Cond::Forbidden).with_type(ErrorType::Auth)
        }
        PsError::BadRequest(why) => bad_request(why),
        PsError::JidMalformed => StanzaError::new(Cond::JidMalformed),
        PsError::Store(_) => StanzaError::new(Cond::InternalServerError).with_type(ErrorType::Wait),
        other => hydrant_pubsub::xep0060::error::to_stanza_error(other),
    }
}

/// Milliseconds since the epoch as a XEP-0082 DateTime with milliseconds, in UTC.
pub fn format_datetime(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// What one query produced, ready to queue.
struct Answer {
    messages: Vec<Bytes>,
    fin: Element,
}

/// The `<fin/>` of a page (XEP-0313 4.3): RSM first (with index), last, count.
fn fin(
    items: &[std::sync::Arc<Item>],
    first_index: Option<u64>,
    count: Option<u64>,
    complete: bool,
) -> Element {
    let mut set = Element::new("set", ns::RSM);
    if let (Some(f), Some(l)) = (items.first(), items.last()) {
        let mut first = Element::new("first", ns::RSM).with_text(f.id.as_str());
        if let Some(i) = first_index {
            first.set_attr("index", i.to_string());
        }
        set.append_child(first);
        set.append_child(Element::new("last", ns::RSM).with_text(l.id.as_str()));
    }
    if let Some(c) = count {
        set.append_child(Element::new("count", ns::RSM).with_text(c.to_string()));
    }
    Element::new("fin", MAM)
        .with_attr("complete", if complete { "true" } else { "false" })
        .with_child(set)
}

/// Parameters of rendering one page.
struct Render<'a> {
    service: &'a Jid,
    to: &'a Jid,
    queryid: Option<&'a str>,
    node: &'a NodeName,
    kind: hydrant_pubsub::NotificationType,
    payloads: bool,
    id_base: u64,
}

impl Render<'_> {
    /// One result `<message/>` (XEP-0313 4.2, XEP-0442 section 2).
    fn message(&self, k: usize, item: &std::sync::Arc<Item>) -> Element {
        let event = hydrant_pubsub::xep0060::event::items_event(
            self.node,
            std::slice::from_ref(item),
            self.payloads,
        );
        let inner = Element::new("message", ns::CLIENT)
            .with_attr("from", self.service.to_string())
            .with_attr("type", self.kind.as_str())
            .with_child(event);
        let forwarded = Element::new("forwarded", ns::FORWARD)
            .with_child(
                Element::new("delay", ns::DELAY)
                    .with_attr("stamp", format_datetime(item.published_ms)),
            )
            .with_child(inner);
        let mut result = Element::new("result", MAM);
        if let Some(q) = self.queryid {
            result.set_attr("queryid", q);
        }
        result.set_attr("id", item.id.as_str());
        result.append_child(forwarded);
        Element::new("message", ns::CLIENT)
            .with_attr("from", self.service.to_string())
            .with_attr("to", self.to.to_string())
            .with_attr("id", format!("mam-{}-{k}", self.id_base))
            .with_child(result)
    }

    /// Serialises a page within `budget` bytes: a prefix of it when paging forwards, a
    /// suffix when paging backwards (so the next page continues from the right end),
    /// at least one item. Returns the messages (in sending order) and the fin.
    fn page(&self, mut page: ArchivePage, backwards: bool, flip: bool, budget: usize) -> Answer {
        let mut encoded: Vec<Bytes> = page
            .items
            .iter()
            .enumerate()
            .map(|(k, i)| Bytes::from(self.message(k, i).to_bytes(ns::CLIENT)))
            .collect();
        let mut keep = 0;
        let mut used = 0;
        let order: Vec<usize> = if backwards {
            (0..encoded.len()).rev().collect()
        } else {
            (0..encoded.len()).collect()
        };
        for &k in &order {
            if keep > 0 && used + encoded[k].len() > budget {
                break;
            }
            used += encoded[k].len();
            keep += 1;
        }
        let dropped = encoded.len() - keep;
        if dropped > 0 {
            page.complete = false;
            if backwards {
                page.items.drain(..dropped);
                encoded.drain(..dropped);
                page.first_index = page.first_index.map(|i| i + dropped as u64);
            } else {
                page.items.truncate(keep);
                encoded.truncate(keep);
            }
        }
        if flip {
            encoded.reverse();
        }
        Answer {
            messages: encoded,
            fin: fin(&page.items, page.first_index, page.count, page.complete),
        }
    }
}

impl Router {
    /// A `urn:xmpp:mam:2` iq for a pubsub service (its nodes' archives).
    pub async fn mam_iq(&self, me: &LocalSession, iq: Iq, payload: Element, key: ServiceKey) {
        let req = match parse(iq.kind, &payload) {
            Ok(r) => r,
            Err(e) => return self.iq_error(me, &iq, e),
        };
        let hub = self.pubsub.clone();
        let from: Jid = me.info.jid.clone().into();
        let result = match req {
            MamRequest::Form => {
                me.send(&iq.result(Some(form())).to_element(ns::CLIENT));
                return;
            }
            MamRequest::Metadata { node } => {
                tokio::task::spawn_blocking(move || {
                    let svc = hub.service(&key)?;
                    let g = lock(&svc);
                    let ends = |before: Option<String>| {
                        let q = ArchiveQuery {
                            max: Some(1),
                            before,
                            ..ArchiveQuery::default()
                        };
                        g.archive(&from, &node, &q, &*hub.relations)
                    };
                    let (first, last) = (ends(None)?, ends(Some(String::new()))?);
                    let mut m = Element::new("metadata", MAM);
                    for (name, page) in [("start", first), ("end", last)] {
                        if let Some(i) = page.items.first() {
                            m.append_child(
                                Element::new(name, MAM)
                                    .with_attr("id", i.id.as_str())
                                    .with_attr("timestamp", format_datetime(i.published_ms)),
                            );
                        }
                    }
                    Ok::<_, PsError>(Answer {
                        messages: Vec::new(),
                        fin: m,
                    })
                })
                .await
            }
            MamRequest::Query {
                queryid,
                node,
                query,
                flip,
            } => {
                // Never more than half the client's own queue, so the answer cannot
                // overflow it (a slow reader still only loses its own stream).
                let cap = PAGE_BYTES.min(me.outbox.limit() / 2);
                let budget = cap.saturating_sub(me.outbox.queued_bytes());
                let id_base = self.next_query_id();
                let backwards = query.before.is_some();
                let mut query = query;
                // The core cuts the page on stored lengths before reading payloads; the
                // rendering below then cuts on the exact size of the result messages.
                query.max_bytes = Some(budget);
                tokio::task::spawn_blocking(move || {
                    let svc = hub.service(&key)?;
                    let g = lock(&svc);
                    let page = g.archive(&from, &node, &query, &*hub.relations)?;
                    let cfg = g.node_config(&node).ok_or(PsError::NodeNotFound)?;
                    let (kind, payloads) = (cfg.notification_type, cfg.deliver_payloads);
                    let service = g.address().clone();
                    drop(g);
                    let r = Render {
                        service: &service,
                        to: &from,
                        queryid: queryid.as_deref(),
                        node: &node,
                        kind,
                        payloads,
                        id_base,
                    };
                    Ok::<_, PsError>(r.page(page, backwards, flip, budget))
                })
                .await
            }
        };
        match result {
            Ok(Ok(answer)) => {
                let bytes: usize = answer.messages.iter().map(Bytes::len).sum();
                self.reads.charge(me.info.peer.ip(), bytes);
                for m in answer.messages {
                    if me.outbox.push(m).is_err() {
                        // Over its queue limit: the stream is being closed anyway.
                        return;
                    }
                }
                me.send(&iq.result(Some(answer.fin)).to_element(ns::CLIENT));
            }
            Ok(Err(e)) => self.iq_error(me, &iq, to_stanza_error(&e)),
            Err(e) => {
                warn!(error = %e, "MAM task failed");
                self.iq_error(me, &iq, StanzaError::new(Cond::InternalServerError));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hydrant_pubsub::xep0313::parse_datetime;

    #[test]
    fn stamps_read_back() {
        for ms in [0, 1_278_803_305_123, 1_709_164_800_999] {
            assert_eq!(parse_datetime(&format_datetime(ms)), Some(ms));
        }
        assert_eq!(
            format_datetime(1_278_803_305_123),
            "2010-07-10T23:08:25.123Z"
        );
    }
}
