//! XEP-0313 (Message Archive Management) on pubsub nodes (XEP-0442): the parser of
//! `<query/>` and `<metadata/>` payloads, the query form, the one mapping of errors to
//! the wire, and the rendering of a page (result messages cut to a byte budget, the
//! `<fin/>`). Pure: what a query returns is [`crate::Service::archive`]'s, and the
//! server sends the pages.
//!
//! Here, not in the server, so that it is fuzzed with the other request parsers
//! (`fuzz/fuzz_targets/mam_request.rs`): it reads whatever any client sends.

// Stanza errors are the cold path of a request.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use hydrant_proto::{
    Element, ErrorType, IqType, Jid, StanzaError, StanzaErrorCondition as Cond, ns,
};

use crate::error::Error as PsError;
use crate::service::archive::{ArchivePage, ArchiveQuery};
use crate::types::{Item, ItemId, NodeName};

/// The MAM namespace (and the query form's FORM_TYPE).
pub const MAM: &str = "urn:xmpp:mam:2";
const XDATA_VALIDATE: &str = "http://jabber.org/protocol/xdata-validate";

/// A parsed MAM request.
#[derive(Debug, PartialEq)]
pub enum MamRequest {
    /// iq get `<query/>`: the form fields (XEP-0313 4.1.5).
    Form,
    Query {
        queryid: Option<String>,
        node: NodeName,
        query: Box<ArchiveQuery>,
        /// `<flip-page/>`: send the page newest first.
        flip: bool,
    },
    /// iq get `<metadata node=../>` (XEP-0313 section 6, on a node).
    Metadata { node: NodeName },
}

pub fn bad_request(why: &str) -> StanzaError {
    StanzaError::new(Cond::BadRequest)
        .with_type(ErrorType::Modify)
        .with_text(why)
}

fn node_of(el: &Element) -> Result<NodeName, StanzaError> {
    match el.attr("node") {
        Some(n) if !n.is_empty() => Ok(NodeName::from(n)),
        // A service keeps no archive of its own: only its nodes do (XEP-0442).
        _ => Err(bad_request("the query must name a node (XEP-0442)")),
    }
}

pub fn parse(kind: IqType, el: &Element) -> Result<MamRequest, StanzaError> {
    match (kind, el.name()) {
        (IqType::Get, "query") => Ok(MamRequest::Form),
        (IqType::Get, "metadata") => Ok(MamRequest::Metadata { node: node_of(el)? }),
        (IqType::Set, "query") => {
            let node = node_of(el)?;
            let mut query = Box::<ArchiveQuery>::default();
            if let Some(x) = el.get_child("x", ns::DATA_FORMS) {
                parse_form(x, &mut query)?;
            }
            if let Some(set) = el.get_child("set", ns::RSM) {
                parse_rsm(set, &mut query)?;
            }
            Ok(MamRequest::Query {
                queryid: el.attr("queryid").map(str::to_owned),
                node,
                query,
                flip: el.get_child("flip-page", MAM).is_some(),
            })
        }
        _ => Err(StanzaError::new(Cond::FeatureNotImplemented)
            .with_text("supported: query (get: form, set: search) and metadata (get)")),
    }
}

/// The XEP-0004 filter form (XEP-0313 4.1).
fn parse_form(x: &Element, q: &mut ArchiveQuery) -> Result<(), StanzaError> {
    if !matches!(x.attr("type"), None | Some("submit")) {
        return Err(bad_request("the filter form must be of type submit"));
    }
    for f in x.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
        let var = f.attr("var").unwrap_or("");
        let values: Vec<String> = f
            .children()
            .filter(|v| v.is("value", ns::DATA_FORMS))
            .map(|v| v.text().trim().to_owned())
            .collect();
        let single = || -> Result<Option<&str>, StanzaError> {
            match values.as_slice() {
                [] => Ok(None),
                [v] if v.is_empty() => Ok(None),
                [v] => Ok(Some(v.as_str())),
                _ => Err(bad_request("a single-valued field has several values")),
            }
        };
        match var {
            "FORM_TYPE" => {
                if single()? != Some(MAM) {
                    return Err(bad_request("FORM_TYPE must be urn:xmpp:mam:2"));
                }
            }
            "start" | "end" => {
                let ms = match single()? {
                    None => None,
                    Some(v) => Some(
                        parse_datetime(v)
                            .ok_or_else(|| bad_request("start/end: a XEP-0082 DateTime"))?,
                    ),
                };
                if var == "start" {
                    q.start_ms = ms;
                } else {
                    q.end_ms = ms;
                }
            }
            "after-id" => q.after_id = single()?.map(ItemId::from),
            "before-id" => q.before_id = single()?.map(ItemId::from),
            "ids" => {
                q.ids = Some(
                    values
                        .iter()
                        .filter(|v| !v.is_empty())
                        .map(|v| ItemId::from(v.as_str()))
                        .collect(),
                );
            }
            "with" => {
                q.with = match single()? {
                    None => None,
                    Some(v) => Some(
                        hydrant_proto::address::jid(v)
                            .ok_or_else(|| bad_request("with: not a JID"))?,
                    ),
                };
            }
            // XEP-0313 4.1.5: a field the server does not know.
            _ => {
                return Err(StanzaError::new(Cond::FeatureNotImplemented)
                    .with_text(format!("unknown field '{var}'")));
            }
        }
    }
    Ok(())
}

/// XEP-0059 request parameters.
fn parse_rsm(set: &Element, q: &mut ArchiveQuery) -> Result<(), StanzaError> {
    let num = |name: &str| -> Result<Option<u32>, StanzaError> {
        set.get_child(name, ns::RSM)
            .map(|e| {
                e.text()
                    .trim()
                    .parse()
                    .map_err(|_| bad_request("RSM numbers are non-negative integers"))
            })
            .transpose()
    };
    q.max = num("max")?;
    q.index = num("index")?;
    q.after = set
        .get_child("after", ns::RSM)
        .map(|e| ItemId::from(e.text().trim()));
    q.before = set
        .get_child("before", ns::RSM)
        .map(|e| e.text().trim().to_owned());
    if q.after.as_ref().is_some_and(|a| a.as_str().is_empty()) {
        return Err(bad_request("RSM after must name an item"));
    }
    Ok(())
}

/// The query form (XEP-0313 4.1.5): every field hydrant accepts.
pub fn form() -> Element {
    let field = |var: &str, kind: &str| {
        Element::new("field", ns::DATA_FORMS)
            .with_attr("var", var)
            .with_attr("type", kind)
    };
    let x = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "form")
        .with_child(
            field("FORM_TYPE", "hidden")
                .with_child(Element::new("value", ns::DATA_FORMS).with_text(MAM)),
        )
        .with_child(field("with", "jid-single"))
        .with_child(field("start", "text-single"))
        .with_child(field("end", "text-single"))
        .with_child(field("before-id", "text-single"))
        .with_child(field("after-id", "text-single"))
        .with_child(
            field("ids", "list-multi").with_child(
                Element::new("validate", XDATA_VALIDATE)
                    .with_attr("datatype", "xs:string")
                    .with_child(Element::new("open", XDATA_VALIDATE)),
            ),
        );
    Element::new("query", MAM).with_child(x)
}

pub use hydrant_proto::datetime::parse as parse_datetime;

/// Domain errors on the wire, XEP-0313 style: unknown node or UID `item-not-found`,
/// every access denial `forbidden` (XEP-0313 section 8.1).
pub fn to_stanza_error(e: &PsError) -> StanzaError {
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
        other => crate::xep0060::error::to_stanza_error(other),
    }
}

/// What one query produced, ready to queue: the result messages, serialised, and the
/// iq result's payload.
pub struct Answer {
    pub messages: Vec<Vec<u8>>,
    pub fin: Element,
}

/// The `<fin/>` of a page (XEP-0313 4.3): RSM first (with index), last, count.
fn fin(
    items: &[Arc<Item>],
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
pub struct Render<'a> {
    pub service: &'a Jid,
    pub to: &'a Jid,
    pub queryid: Option<&'a str>,
    pub node: &'a NodeName,
    pub kind: crate::config::NotificationType,
    pub payloads: bool,
    /// Makes the result messages' ids unique per query.
    pub id_base: u64,
}

impl Render<'_> {
    /// One result `<message/>` (XEP-0313 4.2, XEP-0442 section 2).
    fn message(&self, k: usize, item: &Arc<Item>) -> Element {
        let event = crate::xep0060::event::items_event(
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
                    .with_attr("stamp", hydrant_proto::datetime::format(item.published_ms)),
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
    pub fn page(
        &self,
        mut page: ArchivePage,
        backwards: bool,
        flip: bool,
        budget: usize,
    ) -> Answer {
        let mut encoded: Vec<Vec<u8>> = page
            .items
            .iter()
            .enumerate()
            .map(|(k, i)| self.message(k, i).to_bytes(ns::CLIENT))
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

/// The archive metadata of a node (XEP-0313 section 6): its first and last item.
pub fn metadata(first: &ArchivePage, last: &ArchivePage) -> Element {
    let mut m = Element::new("metadata", MAM);
    for (name, page) in [("start", first), ("end", last)] {
        if let Some(i) = page.items.first() {
            m.append_child(
                Element::new(name, MAM)
                    .with_attr("id", i.id.as_str())
                    .with_attr("timestamp", hydrant_proto::datetime::format(i.published_ms)),
            );
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml(s: &str) -> Element {
        let mut r = hydrant_proto::StreamReader::new(hydrant_proto::Limits::default());
        r.feed(
            format!(
                "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>{s}"
            )
            .as_bytes(),
        )
        .unwrap();
        let _ = r.next_event().unwrap();
        match r.next_event().unwrap() {
            Some(hydrant_proto::StreamEvent::Stanza(el)) => el,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn query_parsing() {
        let q = xml("<query xmlns='urn:xmpp:mam:2' queryid='f1' node='n'>\
             <x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>\
             <field var='start'><value>1970-01-01T00:00:01Z</value></field>\
             <field var='end'><value>1970-01-01T00:00:02Z</value></field>\
             <field var='after-id'><value>a</value></field>\
             <field var='before-id'><value>b</value></field>\
             <field var='ids'><value>x</value><value>y</value></field>\
             <field var='with'><value>bob@example.com</value></field>\
             </x>\
             <set xmlns='http://jabber.org/protocol/rsm'><max>10</max><after>c</after></set>\
             <flip-page/></query>");
        let MamRequest::Query {
            queryid,
            node,
            query,
            flip,
        } = parse(IqType::Set, &q).unwrap()
        else {
            panic!()
        };
        assert_eq!(queryid.as_deref(), Some("f1"));
        assert_eq!(node.as_str(), "n");
        assert!(flip);
        assert_eq!(
            *query,
            ArchiveQuery {
                start_ms: Some(1000),
                end_ms: Some(2000),
                after_id: Some("a".into()),
                before_id: Some("b".into()),
                ids: Some(vec!["x".into(), "y".into()]),
                with: Some(hydrant_proto::Jid::new("bob@example.com").unwrap()),
                max: Some(10),
                after: Some("c".into()),
                before: None,
                index: None,
                max_bytes: None,
            }
        );
        let last = xml(
            "<query xmlns='urn:xmpp:mam:2' node='n'><set xmlns='http://jabber.org/protocol/rsm'><before/></set></query>",
        );
        let MamRequest::Query { query, .. } = parse(IqType::Set, &last).unwrap() else {
            panic!()
        };
        assert_eq!(query.before.as_deref(), Some(""));
        assert_eq!(
            parse(IqType::Get, &xml("<query xmlns='urn:xmpp:mam:2'/>")),
            Ok(MamRequest::Form)
        );
    }

    #[test]
    fn bad_queries() {
        let cond = |s: &str| {
            parse(IqType::Set, &xml(s))
                .expect_err(s)
                .to_element(ns::CLIENT)
                .children()
                .find(|c| c.ns() == ns::STANZAS)
                .map(|c| c.name().to_owned())
        };
        let with_form = |fields: &str| {
            format!(
                "<query xmlns='urn:xmpp:mam:2' node='n'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>urn:xmpp:mam:2</value></field>{fields}</x></query>"
            )
        };
        let bad = Some("bad-request".to_owned());
        assert_eq!(cond("<query xmlns='urn:xmpp:mam:2'/>"), bad, "no node");
        assert_eq!(
            cond(&with_form(
                "<field var='start'><value>yesterday</value></field>"
            )),
            bad
        );
        assert_eq!(
            cond(&with_form("<field var='with'><value>@@</value></field>")),
            bad
        );
        assert_eq!(
            cond(&with_form(
                "<field var='after-id'><value>a</value><value>b</value></field>"
            )),
            bad
        );
        assert_eq!(
            cond(
                "<query xmlns='urn:xmpp:mam:2' node='n'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x></query>"
            ),
            bad
        );
        assert_eq!(
            cond(
                "<query xmlns='urn:xmpp:mam:2' node='n'><set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set></query>"
            ),
            bad
        );
        assert_eq!(
            cond(&with_form(
                "<field var='{urn:x}fulltext'><value>a</value></field>"
            )),
            Some("feature-not-implemented".to_owned())
        );
        assert_eq!(
            cond("<prefs xmlns='urn:xmpp:mam:2'/>"),
            Some("feature-not-implemented".to_owned())
        );
    }
}
