//! Parsing: iq payloads (`<pubsub/>`, `<pubsub xmlns='..#owner'/>`, disco queries)
//! into typed [`Request`]s. Everything structural is checked here; what depends on the
//! node (existence, configuration, rights) is the service's.

use hydrant_proto::{BareJid, Element, IqType, Jid, ns};

use crate::error::Error;
use crate::request::{PublishItem, Request, RsmQuery, SubscriptionChange};
use crate::types::{Affiliation, ItemId, NodeName, SubId, SubState};
use crate::xep0060::forms;

/// Parses the payload of an iq `get` or `set` addressed to a pubsub service.
pub fn parse(kind: IqType, payload: &Element) -> Result<Request, Error> {
    let get = match kind {
        IqType::Get => true,
        IqType::Set => false,
        IqType::Result | IqType::Error => return Err(Error::BadRequest("not a request")),
    };
    match (payload.name(), payload.ns()) {
        ("query", ns::DISCO_INFO) if get => Ok(Request::DiscoInfo {
            node: opt_node(payload),
        }),
        ("query", ns::DISCO_ITEMS) if get => Ok(Request::DiscoItems {
            node: opt_node(payload),
            rsm: payload
                .get_child("set", ns::RSM)
                .map(parse_rsm)
                .transpose()?,
        }),
        ("pubsub", ns::PUBSUB) => parse_pubsub(get, payload),
        ("pubsub", ns::PUBSUB_OWNER) => parse_owner(get, payload),
        _ => Err(Error::BadRequest("not a pubsub request")),
    }
}

fn opt_node(el: &Element) -> Option<NodeName> {
    el.attr("node")
        .filter(|n| !n.is_empty())
        .map(NodeName::from)
}

fn node(el: &Element) -> Result<NodeName, Error> {
    opt_node(el).ok_or(Error::NodeIdRequired)
}

fn subid(el: &Element) -> Option<SubId> {
    el.attr("subid").filter(|s| !s.is_empty()).map(SubId::from)
}

fn jid(el: &Element) -> Result<Jid, Error> {
    let j = el.attr("jid").ok_or(Error::JidRequired)?;
    hydrant_proto::address::jid(j).ok_or(Error::JidMalformed)
}

fn xml_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// The one element child in `ns`, ignoring any other namespace (e.g. RSM `<set/>`).
fn verbs<'a>(el: &'a Element, in_ns: &'a str) -> impl Iterator<Item = &'a Element> {
    el.children().filter(move |c| c.ns() == in_ns)
}

fn form_of(el: &Element) -> Option<&Element> {
    el.get_child("x", ns::DATA_FORMS)
}

fn parse_pubsub(get: bool, ps: &Element) -> Result<Request, Error> {
    let mut children = verbs(ps, ns::PUBSUB);
    let first = children
        .next()
        .ok_or(Error::BadRequest("empty <pubsub/>"))?;
    let second = children.next();
    let options_child = || ps.get_child("options", ns::PUBSUB);
    match (get, first.name()) {
        (false, "create") => {
            let config = match second {
                None => None,
                Some(c) if c.name() == "configure" => {
                    if c.attr("node").is_some() {
                        return Err(Error::BadRequest(
                            "<configure/> after <create/> takes no node",
                        ));
                    }
                    match form_of(c) {
                        Some(x) => forms::parse_submit(x, forms::NODE_CONFIG)?,
                        None => None,
                    }
                }
                Some(_) => return Err(Error::BadRequest("unexpected element after <create/>")),
            };
            Ok(Request::Create {
                node: opt_node(first),
                config,
            })
        }
        (false, "publish") => {
            let node = node(first)?;
            let mut items = first.children().filter(|c| c.is("item", ns::PUBSUB));
            let item = items.next().map(|i| PublishItem {
                id: i.attr("id").filter(|s| !s.is_empty()).map(ItemId::from),
                payload: i.children().cloned().collect(),
            });
            if items.next().is_some() {
                return Err(Error::BadRequest("publish one item at a time"));
            }
            let options = match ps
                .get_child("publish-options", ns::PUBSUB)
                .and_then(form_of)
            {
                Some(x) => forms::parse_submit(x, forms::PUBLISH_OPTIONS)?,
                None => None,
            };
            Ok(Request::Publish {
                node,
                item,
                options,
            })
        }
        (false, "retract") => {
            let node = node(first)?;
            let mut ids = Vec::new();
            for i in first.children().filter(|c| c.is("item", ns::PUBSUB)) {
                let id = i
                    .attr("id")
                    .filter(|s| !s.is_empty())
                    .ok_or(Error::ItemRequired)?;
                ids.push(ItemId::from(id));
            }
            if ids.is_empty() {
                return Err(Error::ItemRequired);
            }
            let notify = match first.attr("notify") {
                None => None,
                Some(v) => Some(xml_bool(v).ok_or(Error::BadRequest("notify is a boolean"))?),
            };
            Ok(Request::Retract { node, ids, notify })
        }
        (false, "subscribe") => {
            let node = node(first)?;
            let jid = jid(first)?;
            let options = match options_child().and_then(form_of) {
                Some(x) => forms::parse_submit(x, forms::SUBSCRIBE_OPTIONS)?,
                None => None,
            };
            Ok(Request::Subscribe { node, jid, options })
        }
        (false, "unsubscribe") => Ok(Request::Unsubscribe {
            node: node(first)?,
            jid: jid(first)?,
            subid: subid(first),
        }),
        (false, "options") => {
            let node = node(first)?;
            let jid = jid(first)?;
            let x = form_of(first).ok_or(Error::InvalidOptions("no form".into()))?;
            let form = forms::parse_submit(x, forms::SUBSCRIBE_OPTIONS)
                .map_err(|_| Error::InvalidOptions("FORM_TYPE".into()))?
                .unwrap_or_default();
            Ok(Request::SetOptions {
                node,
                jid,
                subid: subid(first),
                form,
            })
        }
        (true, "options") => Ok(Request::GetOptions {
            node: node(first)?,
            jid: jid(first)?,
            subid: subid(first),
        }),
        (true, "default") => Ok(Request::DefaultOptions {
            node: opt_node(first),
        }),
        (true, "items") => {
            let node = node(first)?;
            let max_items = match first.attr("max_items") {
                None => None,
                Some(v) => Some(
                    v.parse()
                        .map_err(|_| Error::BadRequest("max_items is a number"))?,
                ),
            };
            let mut ids = Vec::new();
            for i in first.children().filter(|c| c.is("item", ns::PUBSUB)) {
                let id = i
                    .attr("id")
                    .filter(|s| !s.is_empty())
                    .ok_or(Error::ItemRequired)?;
                ids.push(ItemId::from(id));
            }
            let rsm = ps.get_child("set", ns::RSM).map(parse_rsm).transpose()?;
            Ok(Request::Items {
                node,
                subid: subid(first),
                max_items,
                ids,
                rsm,
            })
        }
        (true, "subscriptions") => Ok(Request::Subscriptions {
            node: opt_node(first),
        }),
        (true, "affiliations") => Ok(Request::Affiliations {
            node: opt_node(first),
        }),
        _ => Err(Error::BadRequest("unknown pubsub request")),
    }
}

fn parse_rsm(set: &Element) -> Result<RsmQuery, Error> {
    let num = |name: &str| -> Result<Option<u32>, Error> {
        match set.get_child(name, ns::RSM) {
            None => Ok(None),
            Some(e) => e
                .text()
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::BadRequest("RSM numbers are non-negative integers")),
        }
    };
    Ok(RsmQuery {
        max: num("max")?,
        after: set.get_child("after", ns::RSM).map(Element::text),
        before: set.get_child("before", ns::RSM).map(Element::text),
        index: num("index")?,
    })
}

fn parse_owner(get: bool, ps: &Element) -> Result<Request, Error> {
    let first = verbs(ps, ns::PUBSUB_OWNER)
        .next()
        .ok_or(Error::BadRequest("empty <pubsub/>"))?;
    match (get, first.name()) {
        (true, "configure") => Ok(Request::GetConfig { node: node(first)? }),
        (false, "configure") => {
            let node = node(first)?;
            let x = form_of(first).ok_or(Error::BadForm("no form"))?;
            Ok(Request::SetConfig {
                node,
                form: forms::parse_submit(x, forms::NODE_CONFIG)?,
            })
        }
        (true, "default") => Ok(Request::DefaultConfig),
        (false, "delete") => Ok(Request::Delete {
            node: node(first)?,
            redirect: first
                .get_child("redirect", ns::PUBSUB_OWNER)
                .and_then(|r| r.attr("uri"))
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
        }),
        (false, "purge") => Ok(Request::Purge { node: node(first)? }),
        (true, "subscriptions") => Ok(Request::OwnerSubscriptions { node: node(first)? }),
        (false, "subscriptions") => {
            let node = node(first)?;
            let mut changes = Vec::new();
            for s in first
                .children()
                .filter(|c| c.is("subscription", ns::PUBSUB_OWNER))
            {
                let jid = jid(s)?;
                // No 'subscription' attribute: this entry changes nothing (8.8.2.1).
                let Some(state) = s.attr("subscription") else {
                    continue;
                };
                let state = match state {
                    "none" => None,
                    other => Some(
                        SubState::from_name(other)
                            .ok_or(Error::BadRequest("unknown subscription state"))?,
                    ),
                };
                changes.push(SubscriptionChange {
                    jid,
                    subid: subid(s),
                    state,
                });
            }
            Ok(Request::ModifySubscriptions { node, changes })
        }
        (true, "affiliations") => Ok(Request::OwnerAffiliations { node: node(first)? }),
        (false, "affiliations") => {
            let node = node(first)?;
            let mut changes = Vec::new();
            for a in first
                .children()
                .filter(|c| c.is("affiliation", ns::PUBSUB_OWNER))
            {
                let jid: BareJid = jid(a)?.to_bare();
                let Some(aff) = a.attr("affiliation") else {
                    continue;
                };
                let aff =
                    Affiliation::from_name(aff).ok_or(Error::BadRequest("unknown affiliation"))?;
                changes.push((jid, aff));
            }
            Ok(Request::ModifyAffiliations { node, changes })
        }
        _ => Err(Error::BadRequest("unknown pubsub#owner request")),
    }
}
