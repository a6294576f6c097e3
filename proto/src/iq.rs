//! `<iq/>` (RFC 6120 8.2.3) and the typed payloads hydrant handles itself.

use jid::Jid;

use crate::common::{in_content_ns, is_content_ns, jid_attr};
use crate::element::{Element, Node};
use crate::error::{StanzaError, StanzaErrorCondition};
use crate::ns;
use crate::roster::RosterQuery;

fn bad_request(text: &str) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IqType {
    Get,
    Set,
    Result,
    Error,
}

impl IqType {
    pub fn as_str(self) -> &'static str {
        match self {
            IqType::Get => "get",
            IqType::Set => "set",
            IqType::Result => "result",
            IqType::Error => "error",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Some(match s {
            "get" => IqType::Get,
            "set" => IqType::Set,
            "result" => IqType::Result,
            "error" => IqType::Error,
            _ => return None,
        })
    }

    /// Requests (get/set) must be answered; responses (result/error) never are.
    pub fn is_request(self) -> bool {
        matches!(self, IqType::Get | IqType::Set)
    }
}

/// An `<iq/>` stanza.
///
/// `payload` is the single child element: the request for get/set, the optional result
/// for result. For type `error` it is the `<error/>` child (read it with
/// [`Iq::stanza_error`]); the echoed request an error may also carry (RFC 6120 8.3.1
/// MAY) is dropped, as nothing in hydrant acts on it.
#[derive(Clone, Debug)]
pub struct Iq {
    pub from: Option<Jid>,
    pub to: Option<Jid>,
    pub id: String,
    pub kind: IqType,
    pub payload: Option<Element>,
    /// `xml:lang` of the request, so a reply's human-readable text can follow it.
    pub lang: Option<String>,
}

/// An iq whose attributes are valid, with the position of its payload in the element.
pub(crate) struct ParsedIq {
    iq: Iq,
    payload_at: Option<usize>,
}

impl ParsedIq {
    /// Moves the payload out of the (already validated) element.
    pub(crate) fn take_payload(mut self, el: Element) -> Iq {
        if let Some(i) = self.payload_at {
            self.iq.payload = el.into_nodes().into_iter().nth(i).and_then(|n| match n {
                Node::Element(e) => Some(*e),
                Node::Text(_) => None,
            });
        }
        self.iq
    }
}

impl Iq {
    /// RFC 6120 8.2.3: `id` and `type` are required; get/set carry exactly one child
    /// element, result zero or one, error an `<error/>`; all else is `bad-request`.
    /// Invalid `to`/`from` addresses are `jid-malformed`.
    pub fn try_from_element(el: Element) -> Result<Iq, StanzaError> {
        Ok(Iq::parse(&el)?.take_payload(el))
    }

    pub(crate) fn parse(el: &Element) -> Result<ParsedIq, StanzaError> {
        if el.name() != "iq" {
            return Err(bad_request("not an iq"));
        }
        let from = jid_attr(el, "from")?;
        let to = jid_attr(el, "to")?;
        let kind = match el.attr("type") {
            Some(t) => IqType::from_name(t).ok_or_else(|| bad_request("unknown iq type"))?,
            None => return Err(bad_request("iq without type")),
        };
        let id = el
            .attr("id")
            .ok_or_else(|| bad_request("iq without id"))?
            .to_owned();
        let mut elements = el
            .nodes()
            .iter()
            .enumerate()
            .filter(|(_, n)| matches!(n, Node::Element(_)));
        let payload_at = match kind {
            IqType::Get | IqType::Set => match (elements.next(), elements.next()) {
                (Some((i, _)), None) => Some(i),
                _ => return Err(bad_request("get/set iq needs exactly one child element")),
            },
            IqType::Result => match (elements.next(), elements.next()) {
                (first, None) => first.map(|(i, _)| i),
                _ => return Err(bad_request("result iq has more than one child element")),
            },
            IqType::Error => {
                let found = elements.find(
                    |(_, n)| matches!(n, Node::Element(e) if e.name() == "error" && e.ns() == el.ns()),
                );
                Some(
                    found
                        .ok_or_else(|| bad_request("error iq without <error/>"))?
                        .0,
                )
            }
        };
        Ok(ParsedIq {
            iq: Iq {
                from,
                to,
                id,
                kind,
                payload: None,
                lang: el.attr("xml:lang").map(str::to_owned),
            },
            payload_at,
        })
    }

    /// The iq as an element qualified by the content namespace `ns`.
    pub fn to_element(&self, ns: &str) -> Element {
        let mut el = Element::new("iq", ns)
            .with_attr("type", self.kind.as_str())
            .with_attr("id", self.id.clone());
        if let Some(to) = &self.to {
            el.set_attr("to", to.as_str());
        }
        if let Some(from) = &self.from {
            el.set_attr("from", from.as_str());
        }
        if let Some(lang) = &self.lang {
            el.set_attr("xml:lang", lang.clone());
        }
        if let Some(payload) = &self.payload {
            // Only an `<error/>` lives in the content namespace; it follows the stream.
            let payload = if is_content_ns(payload.ns()) {
                in_content_ns(payload.clone(), ns)
            } else {
                payload.clone()
            };
            el.append_child(payload);
        }
        el
    }

    /// The reply of type result: addresses swapped, same id.
    pub fn result(&self, payload: Option<Element>) -> Iq {
        Iq {
            from: self.to.clone(),
            to: self.from.clone(),
            id: self.id.clone(),
            kind: IqType::Result,
            payload,
            lang: None,
        }
    }

    /// The reply of type error (RFC 6120 8.3.1: addresses swapped, same id, no payload
    /// echoed). `ns` is the content namespace the `<error/>` is written in.
    pub fn error_reply(&self, err: &StanzaError, ns: &str) -> Iq {
        Iq {
            from: self.to.clone(),
            to: self.from.clone(),
            id: self.id.clone(),
            kind: IqType::Error,
            payload: Some(err.to_element(ns)),
            lang: None,
        }
    }

    /// For type error: the error it carries.
    pub fn stanza_error(&self) -> Option<StanzaError> {
        match (&self.payload, self.kind) {
            (Some(p), IqType::Error) => Some(StanzaError::from_element(p)),
            _ => None,
        }
    }
}

/// The iq payloads hydrant handles itself; everything else is routed as
/// [`IqPayload::Unknown`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IqPayload {
    /// RFC 6120 7: resource binding; `None` asks the server to pick the resource.
    Bind {
        resource: Option<String>,
    },
    /// RFC 3921 session establishment, a no-op kept for old clients (RFC 6121 1.4).
    Session,
    Roster(RosterQuery),
    /// XEP-0199.
    Ping,
    /// XEP-0092 query.
    Version,
    DiscoInfo {
        node: Option<String>,
    },
    DiscoItems {
        node: Option<String>,
    },
    /// XEP-0077 query, handled by the registration code as a whole.
    Register(Element),
    Unknown(Element),
}

impl IqPayload {
    /// Classifies an iq payload; a malformed known payload is `bad-request` (e.g. a roster
    /// item without a valid bare JID; see [`crate::RosterItem::from_element`]).
    pub fn parse(el: &Element) -> Result<IqPayload, StanzaError> {
        let node = || el.attr("node").map(str::to_owned);
        Ok(match (el.name(), el.ns()) {
            ("bind", ns::BIND) => IqPayload::Bind {
                resource: el
                    .get_child("resource", ns::BIND)
                    .map(Element::text)
                    .filter(|r| !r.is_empty()),
            },
            ("session", ns::SESSION) => IqPayload::Session,
            ("query", ns::ROSTER) => IqPayload::Roster(RosterQuery::from_element(el)?),
            ("ping", ns::PING) => IqPayload::Ping,
            ("query", ns::VERSION) => IqPayload::Version,
            ("query", ns::DISCO_INFO) => IqPayload::DiscoInfo { node: node() },
            ("query", ns::DISCO_ITEMS) => IqPayload::DiscoItems { node: node() },
            ("query", ns::REGISTER) => IqPayload::Register(el.clone()),
            _ => IqPayload::Unknown(el.clone()),
        })
    }
}
