//! XEP-0313 (Message Archive Management) requests on pubsub nodes (XEP-0442): the
//! parser of `<query/>` and `<metadata/>` payloads and the query form. Pure: bytes in,
//! a typed request or the stanza error to answer with out; what a query returns is
//! [`crate::Service::archive`]'s, and the server sends the pages.
//!
//! Here, not in the server, so that it is fuzzed with the other request parsers
//! (`fuzz/fuzz_targets/mam_request.rs`): it reads whatever any client sends.

// Stanza errors are the cold path of a request.
#![allow(clippy::result_large_err)]

use hydrant_proto::{Element, ErrorType, IqType, StanzaError, StanzaErrorCondition as Cond, ns};

use crate::service::archive::ArchiveQuery;
use crate::types::{ItemId, NodeName};

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

/// XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss]TZD`, TZD `Z` or `±hh:mm`) to
/// milliseconds since the epoch; fractions beyond milliseconds are truncated. Times
/// before 1970 are refused.
pub fn parse_datetime(text: &str) -> Option<u64> {
    let bytes = text.as_bytes();
    let digits = |from: usize, n: usize| -> Option<i64> {
        let part = bytes.get(from..from + n)?;
        part.iter().all(u8::is_ascii_digit).then(|| {
            part.iter()
                .fold(0i64, |acc, d| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, min, sec) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    if bytes.get(4) != Some(&b'-')
        || bytes.get(7) != Some(&b'-')
        || bytes.get(10) != Some(&b'T')
        || bytes.get(13) != Some(&b':')
        || bytes.get(16) != Some(&b':')
        || !(1..=12).contains(&month)
        || !(1..=days_in_month(year, month)).contains(&day)
        || hour > 23
        || min > 59
        || sec > 60
    {
        return None;
    }
    let mut pos = 19;
    let mut millis = 0i64;
    if bytes.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            if pos - start < 3 {
                millis = millis * 10 + i64::from(bytes[pos] - b'0');
            }
            pos += 1;
        }
        if pos == start {
            return None;
        }
        for _ in (pos - start)..3 {
            millis *= 10;
        }
    }
    let offset_min = match bytes.get(pos..)? {
        b"Z" => 0,
        [sign @ (b'+' | b'-'), ..] if bytes.len() == pos + 6 && bytes[pos + 3] == b':' => {
            let (off_h, off_m) = (digits(pos + 1, 2)?, digits(pos + 4, 2)?);
            if off_h > 23 || off_m > 59 {
                return None;
            }
            let off = off_h * 60 + off_m;
            if *sign == b'+' { off } else { -off }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + min * 60 + sec - offset_min * 60;
    u64::try_from(secs * 1000 + millis).ok()
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
    fn datetimes_xep0082() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_datetime("1970-01-01T00:00:01.123456Z"), Some(1123));
        assert_eq!(
            parse_datetime("2010-07-10T23:08:25Z"),
            Some(1_278_803_305_000)
        );
        assert_eq!(
            parse_datetime("2010-07-11T01:08:25+02:00"),
            Some(1_278_803_305_000)
        );
        assert_eq!(
            parse_datetime("2010-07-10T22:08:25-01:00"),
            Some(1_278_803_305_000)
        );
        assert_eq!(
            parse_datetime("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in [
            "",
            "2010-07-10",
            "2010-07-10T23:08:25",
            "2010-13-10T23:08:25Z",
            "2023-02-29T00:00:00Z",
            "2010-07-10T24:08:25Z",
            "2010-07-10T23:08:25.Z",
            "2010-07-10T23:08:25+0200",
            "1969-12-31T23:59:59Z",
            "2010-07-10 23:08:25Z",
        ] {
            assert_eq!(parse_datetime(bad), None, "{bad}");
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
