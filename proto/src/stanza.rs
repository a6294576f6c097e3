//! Typed stanzas (RFC 6120 8, RFC 6121 4–5): parse once at the edge, route typed values.
//!
//! `<message/>` and `<presence/>` keep their whole element: their payloads are opaque to
//! the router and are forwarded as received, only the addressing attributes are typed.
//! `<iq/>` is split into its attributes and its single payload (see [`crate::iq`]).

use jid::Jid;

use crate::common::{in_content_ns, jid_attr};
use crate::element::Element;
use crate::error::{StanzaError, StanzaErrorCondition};
use crate::iq::Iq;

fn set_opt_attr(el: &mut Element, name: &str, value: Option<&str>) {
    match value {
        Some(v) => el.set_attr(name, v),
        None => {
            el.remove_attr(name);
        }
    }
}

/// `<message type=..>` (RFC 6121 5.2.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Normal,
    Chat,
    Groupchat,
    Headline,
    Error,
}

impl MessageType {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Normal => "normal",
            MessageType::Chat => "chat",
            MessageType::Groupchat => "groupchat",
            MessageType::Headline => "headline",
            MessageType::Error => "error",
        }
    }

    /// RFC 6121 5.2.2: a missing or not understood type means `normal`.
    pub fn from_attr(value: Option<&str>) -> Self {
        match value {
            Some("chat") => MessageType::Chat,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            Some("error") => MessageType::Error,
            _ => MessageType::Normal,
        }
    }
}

/// A `<message/>` stanza.
#[derive(Clone, Debug)]
pub struct Message {
    pub from: Option<Jid>,
    pub to: Option<Jid>,
    pub id: Option<String>,
    pub kind: MessageType,
    /// The element as received; [`Stanza::to_element`] writes the fields above over it.
    pub element: Element,
}

impl Message {
    /// Reads a `<message/>` element (its name is not checked; see [`Stanza::parse`]).
    pub fn from_element(el: Element) -> Result<Message, (Element, StanzaError)> {
        let addresses = jid_attr(&el, "from").and_then(|f| Ok((f, jid_attr(&el, "to")?)));
        let (from, to) = match addresses {
            Ok(a) => a,
            Err(e) => return Err((el, e)),
        };
        Ok(Message {
            from,
            to,
            id: el.attr("id").map(str::to_owned),
            kind: MessageType::from_attr(el.attr("type")),
            element: el,
        })
    }

    /// The element in namespace `ns` with the typed fields written over it.
    pub fn to_element(&self, ns: &str) -> Element {
        let mut el = in_content_ns(self.element.clone(), ns);
        set_opt_attr(&mut el, "from", self.from.as_ref().map(Jid::as_str));
        set_opt_attr(&mut el, "to", self.to.as_ref().map(Jid::as_str));
        set_opt_attr(&mut el, "id", self.id.as_deref());
        // Keep a type the peer wrote that still means `normal` (absent, unknown): we
        // forward what we do not understand rather than rewrite it.
        if self.kind != MessageType::from_attr(el.attr("type")) {
            if self.kind == MessageType::Normal {
                el.remove_attr("type");
            } else {
                el.set_attr("type", self.kind.as_str());
            }
        }
        el
    }

    /// The body text in the stanza's namespace, if any.
    pub fn body(&self) -> Option<String> {
        self.element
            .get_child("body", self.element.ns())
            .map(Element::text)
    }
}

/// `<presence type=..>` (RFC 6121 4.7.1); no type means available.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PresenceType {
    Available,
    Unavailable,
    Subscribe,
    Subscribed,
    Unsubscribe,
    Unsubscribed,
    Probe,
    Error,
}

impl PresenceType {
    /// The attribute value; `None` for available (which has no `type`).
    pub fn as_attr(self) -> Option<&'static str> {
        Some(match self {
            PresenceType::Available => return None,
            PresenceType::Unavailable => "unavailable",
            PresenceType::Subscribe => "subscribe",
            PresenceType::Subscribed => "subscribed",
            PresenceType::Unsubscribe => "unsubscribe",
            PresenceType::Unsubscribed => "unsubscribed",
            PresenceType::Probe => "probe",
            PresenceType::Error => "error",
        })
    }

    /// RFC 6121 4.7.1 lists the values; anything else is `bad-request` (RFC 6120 8.3.3.1)
    /// since, unlike for messages, no default meaning is defined.
    pub fn from_attr(value: Option<&str>) -> Result<Self, StanzaError> {
        Ok(match value {
            None => PresenceType::Available,
            Some("unavailable") => PresenceType::Unavailable,
            Some("subscribe") => PresenceType::Subscribe,
            Some("subscribed") => PresenceType::Subscribed,
            Some("unsubscribe") => PresenceType::Unsubscribe,
            Some("unsubscribed") => PresenceType::Unsubscribed,
            Some("probe") => PresenceType::Probe,
            Some("error") => PresenceType::Error,
            Some(other) => {
                return Err(StanzaError::new(StanzaErrorCondition::BadRequest)
                    .with_text(format!("unknown presence type '{other}'")));
            }
        })
    }
}

/// A `<presence/>` stanza.
#[derive(Clone, Debug)]
pub struct Presence {
    pub from: Option<Jid>,
    pub to: Option<Jid>,
    pub id: Option<String>,
    pub kind: PresenceType,
    /// The element as received; [`Stanza::to_element`] writes the fields above over it.
    pub element: Element,
}

impl Presence {
    /// Reads a `<presence/>` element (its name is not checked; see [`Stanza::parse`]).
    pub fn from_element(el: Element) -> Result<Presence, (Element, StanzaError)> {
        let parsed = (|| {
            let from = jid_attr(&el, "from")?;
            let to = jid_attr(&el, "to")?;
            let kind = PresenceType::from_attr(el.attr("type"))?;
            Ok((from, to, kind))
        })();
        let (from, to, kind) = match parsed {
            Ok(p) => p,
            Err(e) => return Err((el, e)),
        };
        Ok(Presence {
            from,
            to,
            id: el.attr("id").map(str::to_owned),
            kind,
            element: el,
        })
    }

    /// The element in namespace `ns` with the typed fields written over it.
    pub fn to_element(&self, ns: &str) -> Element {
        let mut el = in_content_ns(self.element.clone(), ns);
        set_opt_attr(&mut el, "from", self.from.as_ref().map(Jid::as_str));
        set_opt_attr(&mut el, "to", self.to.as_ref().map(Jid::as_str));
        set_opt_attr(&mut el, "id", self.id.as_deref());
        set_opt_attr(&mut el, "type", self.kind.as_attr());
        el
    }
}

/// One of the three stanza kinds.
#[derive(Clone, Debug)]
pub enum Stanza {
    Iq(Iq),
    Message(Message),
    Presence(Presence),
}

/// Why [`Stanza::parse`] refused an element.
#[derive(Debug)]
pub enum StanzaParseError {
    /// Not `iq`/`message`/`presence` in the stream's content namespace (stream features
    /// negotiation elements, `<stream:error/>`, garbage). The c2s session answers
    /// `unsupported-stanza-type` (RFC 6120 4.9.3.24) where it expects a stanza.
    NotAStanza(Element),
    /// A stanza with invalid attributes or structure: answer with
    /// [`crate::error_reply`]`(&element, &error)`, unless its type is `error` (or it is
    /// an iq `result`), which must never be answered with an error (RFC 6120 8.3.1).
    Invalid(Element, StanzaError),
}

impl Stanza {
    /// Parses a depth-1 element of the stream whose content namespace is `stream_ns`.
    pub fn parse(el: Element, stream_ns: &str) -> Result<Stanza, StanzaParseError> {
        if el.ns() != stream_ns {
            return Err(StanzaParseError::NotAStanza(el));
        }
        match el.name() {
            "iq" => match Iq::parse(&el) {
                Ok(parsed) => Ok(Stanza::Iq(parsed.take_payload(el))),
                Err(e) => Err(StanzaParseError::Invalid(el, e)),
            },
            "message" => Message::from_element(el)
                .map(Stanza::Message)
                .map_err(|(el, e)| StanzaParseError::Invalid(el, e)),
            "presence" => Presence::from_element(el)
                .map(Stanza::Presence)
                .map_err(|(el, e)| StanzaParseError::Invalid(el, e)),
            _ => Err(StanzaParseError::NotAStanza(el)),
        }
    }

    /// The stanza as an element qualified by `ns` (the content namespace of the stream it
    /// is written to: `jabber:client` or `jabber:server`).
    pub fn to_element(&self, ns: &str) -> Element {
        match self {
            Stanza::Iq(iq) => iq.to_element(ns),
            Stanza::Message(m) => m.to_element(ns),
            Stanza::Presence(p) => p.to_element(ns),
        }
    }

    pub fn from(&self) -> Option<&Jid> {
        match self {
            Stanza::Iq(s) => s.from.as_ref(),
            Stanza::Message(s) => s.from.as_ref(),
            Stanza::Presence(s) => s.from.as_ref(),
        }
    }

    pub fn to(&self) -> Option<&Jid> {
        match self {
            Stanza::Iq(s) => s.to.as_ref(),
            Stanza::Message(s) => s.to.as_ref(),
            Stanza::Presence(s) => s.to.as_ref(),
        }
    }

    pub fn set_from(&mut self, j: Option<Jid>) {
        match self {
            Stanza::Iq(s) => s.from = j,
            Stanza::Message(s) => s.from = j,
            Stanza::Presence(s) => s.from = j,
        }
    }

    pub fn set_to(&mut self, j: Option<Jid>) {
        match self {
            Stanza::Iq(s) => s.to = j,
            Stanza::Message(s) => s.to = j,
            Stanza::Presence(s) => s.to = j,
        }
    }

    /// The `id` attribute, if any.
    pub fn id(&self) -> Option<&str> {
        match self {
            Stanza::Iq(s) => Some(&s.id),
            Stanza::Message(s) => s.id.as_deref(),
            Stanza::Presence(s) => s.id.as_deref(),
        }
    }

    /// Whether this is an error stanza (never to be answered with an error).
    pub fn is_error(&self) -> bool {
        match self {
            Stanza::Iq(s) => s.kind == crate::iq::IqType::Error,
            Stanza::Message(s) => s.kind == MessageType::Error,
            Stanza::Presence(s) => s.kind == PresenceType::Error,
        }
    }
}
