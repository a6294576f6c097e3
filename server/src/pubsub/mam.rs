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
use hydrant_proto::{Element, Iq, Jid, StanzaError, StanzaErrorCondition as Cond, ns};
pub use hydrant_pubsub::xep0313::MAM;
use hydrant_pubsub::xep0313::{Answer, MamRequest, Render, form, metadata, parse, to_stanza_error};
use hydrant_pubsub::{ArchiveQuery, Error as PsError};
use hydrant_stream::{Frame, StanzaKind};
use tracing::warn;

use super::{ServiceKey, lock};
use crate::router::Router;
use crate::router::origin::Origin;

/// Result messages of one page queue at most this many bytes on the requester's stream
/// (minus what is already queued there; at least one item always goes). Well below the
/// default outbound queue limit (1 MiB).
pub const PAGE_BYTES: usize = 256 * 1024;

impl Router {
    /// A `urn:xmpp:mam:2` iq for a pubsub service (its nodes' archives).
    pub async fn mam_iq(&self, origin: Origin<'_>, iq: Iq, payload: Element, key: ServiceKey) {
        let req = match parse(iq.kind, &payload) {
            Ok(r) => r,
            Err(e) => return self.iq_error(origin, &iq, e),
        };
        let hub = self.pubsub.clone();
        let from: Jid = origin.jid();
        let result = match req {
            MamRequest::Form => {
                self.reply(origin, &iq.result(Some(form())).to_element(ns::CLIENT));
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
                    Ok::<_, PsError>(Answer {
                        messages: Vec::new(),
                        fin: metadata(&first, &last),
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
                let budget = origin.answer_budget(PAGE_BYTES);
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
                let bytes: usize = answer.messages.iter().map(Vec::len).sum();
                if let Some(ip) = origin.network() {
                    self.reads.charge(ip, bytes);
                }
                for m in answer.messages {
                    let frame = Frame::Stanza(StanzaKind::Message, Bytes::from(m));
                    if !self.reply_frame(origin, frame) {
                        // Over its queue limit: the stream is being closed anyway.
                        return;
                    }
                }
                self.reply(origin, &iq.result(Some(answer.fin)).to_element(ns::CLIENT));
            }
            Ok(Err(e)) => self.iq_error(origin, &iq, to_stanza_error(&e)),
            Err(e) => {
                warn!(error = %e, "MAM task failed");
                self.iq_error(origin, &iq, StanzaError::new(Cond::InternalServerError));
            }
        }
    }
}
