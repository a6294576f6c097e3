//! XEP-0033 Extended Stanza Addressing: this server as its domain's multicast service, and
//! the same protocol toward other servers for pubsub fan-out.
//!
//! Why it is here: a node on this server with 10,000 subscribers on another server used to
//! cross s2s as 10,000 copies of the same 2 KB notification, which the other server parsed
//! one by one. To a server that advertises multicast, the fan-out now sends one stanza per
//! `[multicast] chunk` subscribers (their addresses as bcc), and a hydrant receiving it
//! delivers every copy from one shared serialisation, as a local fan-out does.
//!
//! Receiving (XEP-0033 5, "Multicast Usage"): a message (from anyone) or a presence (from
//! another server) addressed to our domain with an `<addresses/>` block goes to each of its
//! undelivered to/cc/bcc addresses. Every address must be ours (a local account), except
//! that a local user's message may also name other domains (each gets its own copy, as
//! the sender could have sent it): otherwise the stanza is refused whole with
//! `<forbidden/>` (5, step 5; 2.2: a server need not relay for other servers). Each copy
//! carries the addresses with `delivered='true'` (step 6), without the bcc ones (step 7),
//! except that a bcc recipient sees its own (step 8). Local presence multicast is not
//! offered: XEP-0033 1.2 would make the service track the directed presence it sent.
//!
//! Sending (2.1, 2.3): whether a server is a multicast service is asked with disco#info
//! from our domain the first time a notification goes there, and remembered for
//! `[multicast] cache_secs`; until the answer comes, and for servers without the feature,
//! notifications go one per subscriber as before.
//!
//! Depends on the router (delivery, routing to other domains) and the stream crate's
//! frames; the pubsub core knows nothing of it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dashmap::DashMap;
use hydrant_proto::writer::escape_attr_into;
use hydrant_proto::{
    Element, Iq, IqType, Jid, MessageType, Stanza, StanzaError, StanzaErrorCondition as Cond, ns,
};
use hydrant_stream::{Frame, Shared, StanzaKind};
use tracing::debug;

use crate::im::message::Carbons;
use crate::router::origin::Origin;
use crate::router::remote::OnRefusal;
use crate::router::{Dest, Router};

/// `[multicast]`, resolved.
#[derive(Debug, Clone)]
pub struct MulticastConfig {
    pub enabled: bool,
    pub max_addresses: usize,
    pub chunk: usize,
    pub cache: Duration,
}

/// What another server said about multicast (XEP-0033 2.3: cached, positive and negative).
#[derive(Debug)]
enum Known {
    /// A disco#info request is out, with this id.
    Asked {
        id: String,
        at: Instant,
    },
    Yes {
        until: Instant,
    },
    No {
        until: Instant,
    },
}

/// How long an unanswered disco#info request keeps us from asking again.
const ASK_AGAIN_AFTER: Duration = Duration::from_mins(1);

/// Id prefix of our disco#info requests, so their answers are told from anything else.
const ID_PREFIX: &str = "xep0033-";

/// Other servers' multicast support, by domain. Bounded: entries are added only for
/// domains a local node has subscribers on (or that our users wrote to), and each is one
/// small record; they are replaced, never accumulated per request.
#[derive(Debug, Default)]
pub struct Peers {
    map: DashMap<String, Known>,
}

/// An address of the block, as read.
struct Address<'a> {
    el: &'a Element,
    /// to, cc or bcc, not yet delivered: a recipient.
    recipient: Option<Recipient>,
}

struct Recipient {
    jid: Jid,
    bcc: bool,
}

impl Router {
    /// Whether notifications for `domain` go as multicast (it said so, recently). The
    /// first time, asks it (disco#info from our domain) and answers no until it replies.
    pub(crate) fn multicast_to(&self, domain: &str) -> bool {
        let cfg = &self.cfg.multicast;
        if !cfg.enabled {
            return false;
        }
        let now = Instant::now();
        if let Some(k) = self.multicast_peers.map.get(domain) {
            match *k {
                Known::Yes { until } if now < until => return true,
                Known::No { until } if now < until => return false,
                Known::Asked { at, .. } if now.duration_since(at) < ASK_AGAIN_AFTER => {
                    return false;
                }
                _ => {}
            }
        }
        let Ok(to) = Jid::new(domain) else {
            return false;
        };
        let id = format!("{ID_PREFIX}{}", self.next_query_id());
        self.multicast_peers.map.insert(
            domain.to_owned(),
            Known::Asked {
                id: id.clone(),
                at: now,
            },
        );
        let iq = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("from", self.domain.as_str())
            .with_attr("to", domain)
            .with_attr("id", id)
            .with_child(Element::new("query", ns::DISCO_INFO));
        debug!(%domain, "asking whether it is a multicast service (XEP-0033)");
        self.route_remote(&to, iq, OnRefusal::Drop);
        false
    }

    /// An iq result or error for the server from `from`: the answer to our question, if it
    /// is one. True when it was.
    pub(crate) fn multicast_answer(&self, from: &Jid, iq: &Iq) -> bool {
        if !iq.id.starts_with(ID_PREFIX) || from.node().is_some() || from.resource().is_some() {
            return false;
        }
        let domain = from.domain().as_str();
        let Some(mut k) = self.multicast_peers.map.get_mut(domain) else {
            return false;
        };
        // Only the answer to the question we asked that domain: another id (or another
        // sender) changes nothing.
        if !matches!(&*k, Known::Asked { id, .. } if *id == iq.id) {
            return false;
        }
        let yes = iq.kind == IqType::Result
            && iq.payload.as_ref().is_some_and(|q| {
                q.is("query", ns::DISCO_INFO)
                    && q.children()
                        .any(|f| f.name() == "feature" && f.attr("var") == Some(ns::ADDRESS))
            });
        let until = Instant::now() + self.cfg.multicast.cache;
        *k = if yes {
            Known::Yes { until }
        } else {
            Known::No { until }
        };
        debug!(%domain, multicast = yes, "XEP-0033 support learnt");
        true
    }

    /// A message or presence for our domain itself: a multicast request if it carries an
    /// address block (and multicast is on). Returns the stanza back when it is not one.
    pub(crate) async fn multicast_in(
        &self,
        origin: Origin<'_>,
        el: Element,
    ) -> Result<(), Element> {
        if !self.cfg.multicast.enabled || el.get_child("addresses", ns::ADDRESS).is_none() {
            return Err(el);
        }
        let presence = el.name() == "presence";
        if presence && origin.session().is_some() {
            // XEP-0033 1.2: presence multicast obliges the service to track the directed
            // presence it sent on the user's behalf; not offered to local users.
            self.bounce(&el, StanzaError::new(Cond::FeatureNotImplemented));
            return Ok(());
        }
        let block = el
            .get_child("addresses", ns::ADDRESS)
            .expect("checked above");
        let addresses = match self.read_addresses(origin, block) {
            Ok(a) => a,
            Err(e) => {
                self.bounce(&el, *e);
                return Ok(());
            }
        };
        // Steps 6 and 7: every address marked delivered, the bcc ones removed.
        let shown: Vec<Element> = addresses
            .iter()
            .filter(|a| a.el.attr("type") != Some("bcc"))
            .map(|a| {
                let mut e = a.el.clone();
                e.set_attr("delivered", "true");
                e
            })
            .collect();
        let recipients: Vec<Recipient> =
            addresses.into_iter().filter_map(|a| a.recipient).collect();
        metrics::counter!("hydrant_multicast_received_total").increment(1);
        metrics::counter!("hydrant_multicast_recipients_total").increment(recipients.len() as u64);
        let mut el = el;
        el.remove_child("addresses", ns::ADDRESS);
        el.remove_attr("to");
        let headline =
            !presence && MessageType::from_attr(el.attr("type")) == MessageType::Headline;
        if headline {
            // The bulk (pubsub notifications): one serialisation shared by every copy.
            let copies = Copies::new(&el, &shown);
            let from = origin.jid();
            for r in &recipients {
                match self.classify(Some(&r.jid)) {
                    dest @ (Dest::LocalBare(_) | Dest::LocalFull(_)) => {
                        self.headline_to_local(dest, &from, copies.frame(&r.jid, r.bcc));
                    }
                    _ => self.copy_elsewhere(origin, &el, &shown, r),
                }
            }
            return Ok(());
        }
        for r in &recipients {
            let copy = copy_for(&el, &shown, r);
            let dest = self.classify(Some(&r.jid));
            match dest {
                Dest::LocalBare(_) | Dest::LocalFull(_) if presence => {
                    let Origin::Remote(from) = origin else {
                        continue;
                    };
                    if let Ok(Stanza::Presence(p)) = Stanza::parse(copy, ns::CLIENT) {
                        self.inbound_presence(from, dest, p).await;
                    }
                }
                Dest::LocalBare(_) | Dest::LocalFull(_) => {
                    let kind = MessageType::from_attr(copy.attr("type"));
                    self.message_to_local(dest, copy, kind, Carbons::Copy).await;
                }
                _ => self.copy_elsewhere(origin, &el, &shown, r),
            }
        }
        Ok(())
    }

    /// A local user's copy for another domain (only local users' requests may name
    /// one: `read_addresses`).
    fn copy_elsewhere(&self, origin: Origin<'_>, el: &Element, shown: &[Element], r: &Recipient) {
        if origin.session().is_some() {
            self.route_remote(&r.jid, copy_for(el, shown, r), OnRefusal::Bounce);
        }
    }

    /// Reads and checks the address block (XEP-0033 4, and 5 step 5: all or nothing).
    fn read_addresses<'e>(
        &self,
        origin: Origin<'_>,
        block: &'e Element,
    ) -> Result<Vec<Address<'e>>, Box<StanzaError>> {
        let max = self.cfg.multicast.max_addresses;
        let mut out = Vec::new();
        for el in block.children() {
            if !el.is("address", ns::ADDRESS) {
                continue; // 4.7: extensions not understood are ignored.
            }
            if out.len() == max {
                return Err(Box::new(
                    StanzaError::new(Cond::PolicyViolation)
                        .with_text(format!("at most {max} addresses per stanza")),
                ));
            }
            let kind = el.attr("type").unwrap_or_default();
            let recipient = match kind {
                "to" | "cc" | "bcc" if el.attr("delivered") != Some("true") => {
                    Some(self.check_recipient(origin, el, kind == "bcc")?)
                }
                // replyto, replyroom, noreply, ofrom, delivered ones: carried, not sent to.
                _ => None,
            };
            out.push(Address { el, recipient });
        }
        if !out.iter().any(|a| a.recipient.is_some()) {
            return Err(Box::new(
                StanzaError::new(Cond::BadRequest)
                    .with_type(hydrant_proto::ErrorType::Modify)
                    .with_text("no address to deliver to"),
            ));
        }
        Ok(out)
    }

    fn check_recipient(
        &self,
        origin: Origin<'_>,
        el: &Element,
        bcc: bool,
    ) -> Result<Recipient, Box<StanzaError>> {
        let Some(jid) = el.attr("jid") else {
            // 4.2: a URI scheme we cannot deliver to.
            return Err(Box::new(
                StanzaError::new(Cond::JidMalformed)
                    .with_text("only 'jid' addresses are delivered here"),
            ));
        };
        let jid = Jid::new(jid).map_err(|_| Box::new(StanzaError::new(Cond::JidMalformed)))?;
        match self.classify(Some(&jid)) {
            Dest::LocalBare(_) | Dest::LocalFull(_) => {}
            Dest::Remote(_) if origin.session().is_some() => {}
            // Relaying for another server, or to the server or a service: refused whole
            // (2.2, 5 step 5).
            _ => {
                return Err(Box::new(
                    StanzaError::new(Cond::Forbidden)
                        .with_text("only this server's accounts can be addressed here"),
                ));
            }
        }
        Ok(Recipient { jid, bcc })
    }

    /// A headline for a local account (RFC 6121 8.5.2.1.1, 8.5.3.2.1): the named resource
    /// if it is online, else every available resource with non-negative priority; with
    /// nobody online it is dropped (8.5.2.2.1), as is one for an account that does not
    /// exist (8.5.1 allows silently ignoring it, which spares a lookup per copy). Not
    /// for an account that blocks `from` (XEP-0191 3.3; a headline is dropped unanswered,
    /// as for an account that is offline).
    fn headline_to_local(&self, dest: Dest<'_>, from: &Jid, frame: Frame) {
        let user = match dest {
            Dest::LocalFull(full) => {
                if let Some(s) = self.sessions.get_unless_blocked(full, Some(from)) {
                    let _ = s.outbox.push(frame);
                    return;
                }
                full.node().map_or("", |n| n.as_str())
            }
            Dest::LocalBare(user) => user,
            _ => return,
        };
        self.sessions.for_each_of_user(user, from, |s| {
            if s.available_with_priority().is_some_and(|p| p >= 0) {
                let _ = s.outbox.push(frame.clone());
            }
        });
    }
}

/// A copy of `el` (without `to` and its address block) for one recipient, as an element.
fn copy_for(el: &Element, shown: &[Element], r: &Recipient) -> Element {
    let mut copy = el.clone();
    copy.set_attr("to", r.jid.as_str());
    let mut block = Element::new("addresses", ns::ADDRESS);
    if r.bcc {
        block.append_child(
            Element::new("address", ns::ADDRESS)
                .with_attr("type", "bcc")
                .with_attr("jid", r.jid.as_str())
                .with_attr("delivered", "true"),
        );
    }
    for a in shown {
        block.append_child(a.clone());
    }
    copy.append_child(block);
    copy
}

/// `<address type='bcc' jid='…' delivered='true'/>` for the recipient itself (step 8).
fn own_bcc_into(out: &mut Vec<u8>, jid: &Jid) {
    out.extend_from_slice(b"<address type='bcc' jid='");
    escape_attr_into(out, jid.as_str());
    out.extend_from_slice(b"' delivered='true'/>");
}

/// The shared parts of every copy of one multicast headline: the start tag up to the
/// recipient's address, and everything after the recipient's own part of the block.
/// A copy is `<message ATTRS to='R'><addresses xmlns='…'>[own bcc]SHOWN</addresses>
/// CHILDREN</message>`: the block comes first among the children, so the per-recipient
/// bytes (R twice at most) sit between two shared parts.
struct Copies {
    head: Arc<Shared>,
    tail: Arc<Shared>,
}

impl Copies {
    /// `el` has neither `to` nor the address block any more.
    fn new(el: &Element, shown: &[Element]) -> Self {
        // Written without the content namespace, as every frame is (`Frame::element`).
        let parent = if is_content(el.ns()) { el.ns() } else { "" };
        let whole = el.to_bytes(parent);
        // The start tag is what the element without children serialises to, less `/>`.
        let mut bare = el.clone();
        bare.clear_nodes();
        let start_len = bare.to_bytes(parent).len() - 2;
        let mut head = Vec::with_capacity(start_len + 8);
        head.extend_from_slice(&whole[..start_len]);
        head.extend_from_slice(b" to='");
        let children: &[u8] = if whole.ends_with(b"/>") && el.nodes().is_empty() {
            b""
        } else {
            let close = el.name().len() + 3; // </name>
            &whole[start_len + 1..whole.len() - close]
        };
        let mut tail = Vec::with_capacity(children.len() + 64 * shown.len() + 32);
        for a in shown {
            a.write_to(&mut tail, ns::ADDRESS);
        }
        tail.extend_from_slice(b"</addresses>");
        tail.extend_from_slice(children);
        tail.extend_from_slice(b"</");
        tail.extend_from_slice(el.name().as_bytes());
        tail.push(b'>');
        Copies {
            head: Shared::new(head),
            tail: Shared::new(tail),
        }
    }

    /// The copy for `jid`.
    fn frame(&self, jid: &Jid, bcc: bool) -> Frame {
        let mut mid = Vec::with_capacity(2 * jid.as_str().len() + 96);
        escape_attr_into(&mut mid, jid.as_str());
        mid.extend_from_slice(b"'><addresses xmlns='");
        mid.extend_from_slice(ns::ADDRESS.as_bytes());
        mid.extend_from_slice(b"'>");
        if bcc {
            own_bcc_into(&mut mid, jid);
        }
        Frame::Addressed {
            head: self.head.clone(),
            to: Bytes::from(mid),
            tail: self.tail.clone(),
        }
    }
}

fn is_content(n: &str) -> bool {
    n == ns::CLIENT || n == ns::SERVER || n == ns::COMPONENT_ACCEPT
}

/// The multicast form of a notification for `domain`'s multicast service: the
/// notification's own start (`<message from='…' to='`) and rest, with `to` the service
/// and an address block of `recipients` (escaped addresses) as bcc (XEP-0033 3, 4.6.3).
pub fn notification_stanza(head: &[u8], tail: &[u8], domain: &str, recipients: &[Bytes]) -> Frame {
    const END: &[u8] = b"</message>";
    debug_assert!(tail.ends_with(END));
    let body = &tail[..tail.len() - END.len()];
    let mut out = Vec::with_capacity(
        head.len() + tail.len() + 64 + recipients.iter().map(|r| r.len() + 32).sum::<usize>(),
    );
    out.extend_from_slice(head);
    escape_attr_into(&mut out, domain);
    out.extend_from_slice(body);
    out.extend_from_slice(b"<addresses xmlns='");
    out.extend_from_slice(ns::ADDRESS.as_bytes());
    out.extend_from_slice(b"'>");
    for r in recipients {
        out.extend_from_slice(b"<address type='bcc' jid='");
        out.extend_from_slice(r);
        out.extend_from_slice(b"'/>");
    }
    out.extend_from_slice(b"</addresses>");
    out.extend_from_slice(END);
    Frame::Stanza(StanzaKind::Message, Bytes::from(out))
}
