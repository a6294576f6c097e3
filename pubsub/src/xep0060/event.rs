//! Notifications (XEP-0060 7.1.2, 7.2.2.1, 8.2.5.3, 8.4.2, 8.5.2, 8.8.4): the
//! `<event xmlns='pubsub#event'/>` payload, built once per [`Notification`] and shared
//! by every recipient, and the SHIM headers (XEP-0131) of a recipient holding several
//! subscriptions.

use hydrant_proto::{Element, Jid, ns};

use crate::config::NotificationType;
use crate::effect::{Event, Notification};
use crate::types::{Item, NodeName, SubId};
use crate::xep0060::forms;

/// Stanza Headers and Internet Metadata (XEP-0131).
pub const SHIM: &str = "http://jabber.org/protocol/shim";

/// An `<item/>` in namespace `in_ns` (pubsub for replies, pubsub#event for events),
/// with its payload when `payload` is true.
pub(crate) fn item_element(in_ns: &str, item: &Item, payload: bool) -> Element {
    let mut el = Element::new("item", in_ns).with_attr("id", item.id.as_str());
    if let (true, Some(p)) = (payload, &item.payload) {
        el.append_child(p.clone());
    }
    el
}

/// The `<items/>` event of published items (also what [`crate::Effect::SendLast`]
/// renders to).
pub fn items_event(node: &NodeName, items: &[std::sync::Arc<Item>], payloads: bool) -> Element {
    let mut list = Element::new("items", ns::PUBSUB_EVENT).with_attr("node", node.as_str());
    for i in items {
        list.append_child(item_element(ns::PUBSUB_EVENT, i, payloads));
    }
    Element::new("event", ns::PUBSUB_EVENT).with_child(list)
}

/// The `<event/>` element of a notification.
pub fn render(n: &Notification) -> Element {
    let node = n.node.as_str();
    let ev = |child: Element| Element::new("event", ns::PUBSUB_EVENT).with_child(child);
    match &n.event {
        Event::Items { items, payloads } => items_event(&n.node, items, *payloads),
        Event::Retract { ids } => {
            let mut list = Element::new("items", ns::PUBSUB_EVENT).with_attr("node", node);
            for id in ids {
                list.append_child(
                    Element::new("retract", ns::PUBSUB_EVENT).with_attr("id", id.as_str()),
                );
            }
            ev(list)
        }
        Event::Purge => ev(Element::new("purge", ns::PUBSUB_EVENT).with_attr("node", node)),
        Event::Delete { redirect } => {
            let mut d = Element::new("delete", ns::PUBSUB_EVENT).with_attr("node", node);
            if let Some(uri) = redirect {
                d.append_child(
                    Element::new("redirect", ns::PUBSUB_EVENT).with_attr("uri", uri.clone()),
                );
            }
            ev(d)
        }
        Event::Configuration { form } => {
            let mut c = Element::new("configuration", ns::PUBSUB_EVENT).with_attr("node", node);
            if let Some(config) = form {
                c.append_child(forms::config_form(config, "result"));
            }
            ev(c)
        }
        Event::Subscription { jid, subid, state } => {
            let mut s = Element::new("subscription", ns::PUBSUB_EVENT)
                .with_attr("node", node)
                .with_attr("jid", jid.to_string())
                .with_attr("subscription", state.map_or("none", |s| s.as_str()));
            if let Some(id) = subid {
                s.set_attr("subid", id.as_str());
            }
            ev(s)
        }
    }
}

/// `<headers xmlns='http://jabber.org/protocol/shim'>` with one `SubID` header per
/// subscription (XEP-0060 7.1.2.4), for a recipient whose [`crate::Subscriber`] has
/// several subids.
pub fn render_shim(subids: &[SubId]) -> Element {
    let mut h = Element::new("headers", SHIM);
    for id in subids {
        h.append_child(
            Element::new("header", SHIM)
                .with_attr("name", "SubID")
                .with_text(id.as_str()),
        );
    }
    h
}

/// A whole notification `<message/>` (in `jabber:client`), for the cold paths
/// (last-item sends, tests); the fan-out splices [`render`]'s bytes instead.
pub fn message(
    from: &Jid,
    to: &Jid,
    kind: NotificationType,
    event: Element,
    shim: Option<Element>,
) -> Element {
    let mut m = Element::new("message", ns::CLIENT)
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
        .with_attr("type", kind.as_str())
        .with_child(event);
    if let Some(h) = shim {
        m.append_child(h);
    }
    m
}
