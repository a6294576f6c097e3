//! Roster payloads (RFC 6121 2).

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use jid::BareJid;

use crate::element::Element;
use crate::error::{StanzaError, StanzaErrorCondition};
use crate::ns;

fn bad_request(text: impl Into<String>) -> StanzaError {
    StanzaError::new(StanzaErrorCondition::BadRequest).with_text(text)
}

/// The `subscription` attribute of a roster item (RFC 6121 2.1.2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Subscription {
    #[default]
    None,
    To,
    From,
    Both,
    /// Only in a roster set (the removal request) and in the push announcing it.
    Remove,
}

impl Subscription {
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
            Subscription::Remove => "remove",
        }
    }
}

impl fmt::Display for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Subscription {
    type Err = StanzaError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            "remove" => Subscription::Remove,
            other => return Err(bad_request(format!("unknown subscription '{other}'"))),
        })
    }
}

/// One roster item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RosterItem {
    pub jid: BareJid,
    pub name: Option<String>,
    pub subscription: Subscription,
    /// `ask='subscribe'`: an outbound subscription request is pending (RFC 6121 2.1.2.2).
    pub ask: bool,
    /// Groups, in order, without duplicates.
    pub groups: Vec<String>,
    /// `approved='true'`: subscription pre-approved (RFC 6121 3.4).
    pub approved: bool,
}

impl RosterItem {
    /// The item as the server sends it (roster result or push), in the roster namespace.
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("item", ns::ROSTER).with_attr("jid", self.jid.as_str());
        if let Some(name) = &self.name {
            el.set_attr("name", name.clone());
        }
        el.set_attr("subscription", self.subscription.as_str());
        if self.ask {
            el.set_attr("ask", "subscribe");
        }
        if self.approved {
            el.set_attr("approved", "true");
        }
        for group in &self.groups {
            el.append_child(Element::new("group", ns::ROSTER).with_text(group.clone()));
        }
        el
    }

    /// Reads an item a *client* sent (roster set). Hence `ask` and `approved` are always
    /// false: both are server-controlled state the client can only observe (RFC 6121
    /// 2.1.2.2 and 3.4 tell the server to ignore them in a set).
    ///
    /// `jid` must be a valid bare JID and subscription, when present, a known value
    /// (absent means `none`, RFC 6121 2.1.2.5); otherwise `bad-request`. Per RFC 6121
    /// 2.3.3 a repeated group is `bad-request` and an empty group `not-acceptable`.
    pub fn from_element(el: &Element) -> Result<RosterItem, StanzaError> {
        let jid = el
            .attr("jid")
            .ok_or_else(|| bad_request("roster item without jid"))?;
        let raw = jid;
        let jid = BareJid::new(raw).map_err(|e| bad_request(format!("roster item jid: {e}")))?;
        if !crate::address::normalises_stably(raw, jid.as_str()) {
            return Err(bad_request(
                "roster item jid: its normalised form normalises differently",
            ));
        }
        let subscription = el
            .attr("subscription")
            .map_or(Ok(Subscription::None), str::parse)?;
        // The duplicate check is a set, linear in the number of groups: a list scan
        // per group would be quadratic in what a client sends. (The number of groups
        // is the handler's limit; here it is bounded by the stanza size.)
        let mut groups: Vec<String> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for group in el.children().filter(|c| c.is("group", ns::ROSTER)) {
            let name = group.text();
            if name.is_empty() {
                return Err(StanzaError::new(StanzaErrorCondition::NotAcceptable)
                    .with_text("empty roster group"));
            }
            if !seen.insert(name.clone()) {
                return Err(bad_request(format!("duplicate roster group '{name}'")));
            }
            groups.push(name);
        }
        Ok(RosterItem {
            jid,
            name: el.attr("name").filter(|n| !n.is_empty()).map(str::to_owned),
            subscription,
            ask: false,
            groups,
            approved: false,
        })
    }
}

/// `<query xmlns='jabber:iq:roster'/>`: a roster get, result, set or push.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct RosterQuery {
    /// Roster version (RFC 6121 2.6).
    pub ver: Option<String>,
    pub items: Vec<RosterItem>,
}

impl RosterQuery {
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("query", ns::ROSTER);
        if let Some(ver) = &self.ver {
            el.set_attr("ver", ver.clone());
        }
        for item in &self.items {
            el.append_child(item.to_element());
        }
        el
    }

    /// Reads a client's roster query. Whether the item count suits the iq type (a set
    /// carries exactly one item, RFC 6121 2.3.3) is for the handler to check.
    pub fn from_element(el: &Element) -> Result<RosterQuery, StanzaError> {
        let items = el
            .children()
            .filter(|c| c.is("item", ns::ROSTER))
            .map(RosterItem::from_element)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RosterQuery {
            ver: el.attr("ver").map(str::to_owned),
            items,
        })
    }
}
