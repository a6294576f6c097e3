//! Rendering: typed [`Reply`]s into iq result payloads.

use hydrant_proto::{Element, Jid, ns};

use crate::request::{Reply, RsmResult};
use crate::types::Subscription;
use crate::xep0060::event::item_element;
use crate::xep0060::forms;

/// The iq result payload for a reply (`None`: an empty result). `service` is the
/// service's address (the `jid` of disco#items entries).
pub fn render(reply: &Reply, service: &Jid) -> Option<Element> {
    let pubsub = || Element::new("pubsub", ns::PUBSUB);
    let owner = || Element::new("pubsub", ns::PUBSUB_OWNER);
    Some(match reply {
        Reply::Empty => return None,
        Reply::Created { node } => {
            pubsub().with_child(Element::new("create", ns::PUBSUB).with_attr("node", node.as_str()))
        }
        Reply::Subscription { node, sub } => {
            let mut el = subscription_el(ns::PUBSUB, sub).with_attr("node", node.as_str());
            if sub.state == crate::types::SubState::Unconfigured {
                el.append_child(
                    Element::new("subscribe-options", ns::PUBSUB)
                        .with_child(Element::new("required", ns::PUBSUB)),
                );
            }
            pubsub().with_child(el)
        }
        Reply::Options {
            node,
            jid,
            subid,
            options,
        } => pubsub().with_child(
            Element::new("options", ns::PUBSUB)
                .with_attr("node", node.as_str())
                .with_attr("jid", jid.to_string())
                .with_attr("subid", subid.as_str())
                .with_child(forms::options_form(options)),
        ),
        Reply::DefaultOptions { node } => {
            let mut d = Element::new("default", ns::PUBSUB);
            if let Some(n) = node {
                d.set_attr("node", n.as_str());
            }
            d.append_child(forms::options_form(&crate::types::SubOptions::default()));
            pubsub().with_child(d)
        }
        Reply::Published { node, id } => {
            let mut p = Element::new("publish", ns::PUBSUB).with_attr("node", node.as_str());
            if let Some(id) = id {
                p.append_child(Element::new("item", ns::PUBSUB).with_attr("id", id.as_str()));
            }
            pubsub().with_child(p)
        }
        Reply::Items { node, items, rsm } => {
            let mut list = Element::new("items", ns::PUBSUB).with_attr("node", node.as_str());
            for i in items {
                list.append_child(item_element(ns::PUBSUB, i, true));
            }
            let mut ps = pubsub().with_child(list);
            if let Some(r) = rsm {
                ps.append_child(rsm_set(r));
            }
            ps
        }
        Reply::Subscriptions { node, subs } => {
            let mut list = Element::new("subscriptions", ns::PUBSUB);
            if let Some(n) = node {
                list.set_attr("node", n.as_str());
            }
            for (n, s) in subs {
                list.append_child(subscription_el(ns::PUBSUB, s).with_attr("node", n.as_str()));
            }
            pubsub().with_child(list)
        }
        Reply::Affiliations { node, affs } => {
            let mut list = Element::new("affiliations", ns::PUBSUB);
            if let Some(n) = node {
                list.set_attr("node", n.as_str());
            }
            for (n, a) in affs {
                list.append_child(
                    Element::new("affiliation", ns::PUBSUB)
                        .with_attr("node", n.as_str())
                        .with_attr("affiliation", a.as_str()),
                );
            }
            pubsub().with_child(list)
        }
        Reply::OwnerSubscriptions { node, subs } => {
            let mut list =
                Element::new("subscriptions", ns::PUBSUB_OWNER).with_attr("node", node.as_str());
            for s in subs {
                list.append_child(subscription_el(ns::PUBSUB_OWNER, s));
            }
            owner().with_child(list)
        }
        Reply::OwnerAffiliations { node, affs } => {
            let mut list =
                Element::new("affiliations", ns::PUBSUB_OWNER).with_attr("node", node.as_str());
            for (j, a) in affs {
                list.append_child(
                    Element::new("affiliation", ns::PUBSUB_OWNER)
                        .with_attr("jid", j.to_string())
                        .with_attr("affiliation", a.as_str()),
                );
            }
            owner().with_child(list)
        }
        Reply::Config { node, config } => owner().with_child(
            Element::new("configure", ns::PUBSUB_OWNER)
                .with_attr("node", node.as_str())
                .with_child(forms::config_form(config, "form")),
        ),
        Reply::DefaultConfig { config } => owner().with_child(
            Element::new("default", ns::PUBSUB_OWNER)
                .with_child(forms::config_form(config, "form")),
        ),
        Reply::DiscoInfo(info) => {
            let mut q = Element::new("query", ns::DISCO_INFO);
            if let Some(n) = &info.node {
                q.set_attr("node", n.as_str());
            }
            q.append_child(
                Element::new("identity", ns::DISCO_INFO)
                    .with_attr("category", info.identity.0)
                    .with_attr("type", info.identity.1),
            );
            for f in &info.features {
                q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", *f));
            }
            if let Some(meta) = &info.meta {
                q.append_child(forms::meta_data_form(meta));
            }
            q
        }
        Reply::DiscoItems { node, entries, rsm } => {
            let mut q = Element::new("query", ns::DISCO_ITEMS);
            if let Some(n) = node {
                q.set_attr("node", n.as_str());
            }
            for (n, name) in entries {
                let mut it =
                    Element::new("item", ns::DISCO_ITEMS).with_attr("jid", service.to_string());
                if let Some(n) = n {
                    it.set_attr("node", n.as_str());
                }
                if !name.is_empty() {
                    it.set_attr("name", name.clone());
                }
                q.append_child(it);
            }
            if let Some(r) = rsm {
                q.append_child(rsm_set(r));
            }
            q
        }
    })
}

fn subscription_el(in_ns: &str, s: &Subscription) -> Element {
    Element::new("subscription", in_ns)
        .with_attr("jid", s.jid.to_string())
        .with_attr("subscription", s.state.as_str())
        .with_attr("subid", s.subid.as_str())
}

/// XEP-0059 `<set/>` of a reply.
pub fn rsm_set(r: &RsmResult) -> Element {
    let mut set = Element::new("set", ns::RSM);
    if let Some((first, index)) = &r.first {
        set.append_child(
            Element::new("first", ns::RSM)
                .with_attr("index", index.to_string())
                .with_text(first.clone()),
        );
    }
    if let Some(last) = &r.last {
        set.append_child(Element::new("last", ns::RSM).with_text(last.clone()));
    }
    set.append_child(Element::new("count", ns::RSM).with_text(r.count.to_string()));
    set
}
