//! XEP-0004 data forms of XEP-0060: node configuration (`pubsub#node_config`),
//! publish-options preconditions, subscription options (`pubsub#subscribe_options`),
//! node meta-data (`pubsub#meta-data`) and subscription authorization
//! (`pubsub#subscribe_authorization`).
//!
//! Parsing turns a submitted `<x/>` into (var, values) pairs; applying validates every
//! value against a copy of the configuration, so a bad field leaves nothing changed.
//! Unknown fields in a configuration or options form are ignored (clients send fields
//! of other servers); unknown fields in publish-options are a failed precondition, as
//! XEP-0060 7.1.5 requires.

use hydrant_proto::{Element, Jid, ns};

use crate::config::{
    AccessModel, MaxItems, NodeConfig, NotificationType, PublishModel, SendLastPublished,
};
use crate::error::Error;
use crate::request::{ConfigForm, NodeMeta, Request};
use crate::types::{NodeName, Show, SubId, SubOptions};

pub const NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
pub const PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
pub const SUBSCRIBE_OPTIONS: &str = "http://jabber.org/protocol/pubsub#subscribe_options";
pub const META_DATA: &str = "http://jabber.org/protocol/pubsub#meta-data";
pub const SUBSCRIBE_AUTHORIZATION: &str =
    "http://jabber.org/protocol/pubsub#subscribe_authorization";

/// Parses a submitted form. `Ok(None)` for a cancelled form. The FORM_TYPE, when
/// present, must be `form_type`.
pub fn parse_submit(x: &Element, form_type: &str) -> Result<Option<ConfigForm>, Error> {
    if !x.is("x", ns::DATA_FORMS) {
        return Err(Error::BadForm("expected a jabber:x:data form"));
    }
    match x.attr("type") {
        Some("cancel") => return Ok(None),
        Some("submit") | None => {}
        Some(_) => return Err(Error::BadForm("form type must be submit")),
    }
    let mut fields = Vec::new();
    for f in x.children().filter(|c| c.is("field", ns::DATA_FORMS)) {
        let Some(var) = f.attr("var") else {
            continue;
        };
        let values: Vec<String> = f
            .children()
            .filter(|v| v.is("value", ns::DATA_FORMS))
            .map(Element::text)
            .collect();
        if var == "FORM_TYPE" {
            if values.first().map(String::as_str) != Some(form_type) {
                return Err(Error::BadForm("wrong FORM_TYPE"));
            }
            continue;
        }
        fields.push((var.to_owned(), values));
    }
    Ok(Some(ConfigForm { fields }))
}

fn single<'a>(var: &str, values: &'a [String]) -> Result<&'a str, Error> {
    match values {
        [] => Ok(""),
        [v] => Ok(v.as_str()),
        _ => Err(Error::InvalidConfig {
            field: var.to_owned(),
        }),
    }
}

/// XEP-0004 boolean: `1`/`true`, `0`/`false`.
fn boolean(s: &str) -> Option<bool> {
    match s {
        "1" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// Applies a submitted configuration to `config`. On error `config` may be partly
/// changed: callers apply to a copy.
///
/// A text field longer than `max_text` bytes is an invalid value (`not-acceptable`,
/// XEP-0060 8.2.5.2); `pubsub#roster_groups_allowed` counts as one field, the sum of
/// its values, which bounds both the number of groups and their length.
pub fn apply_config(
    config: &mut NodeConfig,
    form: &ConfigForm,
    cap: u32,
    max_text: usize,
) -> Result<(), Error> {
    for (var, values) in &form.fields {
        let bad = || Error::InvalidConfig { field: var.clone() };
        let text_len: usize = values.iter().map(String::len).sum();
        if text_len > max_text
            && matches!(
                var.as_str(),
                "pubsub#title"
                    | "pubsub#description"
                    | "pubsub#type"
                    | "pubsub#roster_groups_allowed"
            )
        {
            return Err(bad());
        }
        let one = || single(var, values);
        let flag = || boolean(one()?).ok_or_else(bad);
        match var.as_str() {
            "pubsub#title" => one()?.clone_into(&mut config.title),
            "pubsub#description" => one()?.clone_into(&mut config.description),
            "pubsub#type" => {
                let v = one()?;
                config.payload_type = (!v.is_empty()).then(|| v.to_owned());
            }
            "pubsub#access_model" => {
                config.access_model = AccessModel::from_name(one()?).ok_or_else(bad)?;
            }
            "pubsub#roster_groups_allowed" => config.roster_groups_allowed.clone_from(values),
            "pubsub#publish_model" => {
                config.publish_model = PublishModel::from_name(one()?).ok_or_else(bad)?;
            }
            "pubsub#max_items" => {
                config.max_items = MaxItems::parse(one()?, cap).ok_or_else(bad)?;
            }
            "pubsub#persist_items" => config.persist_items = flag()?,
            "pubsub#deliver_payloads" => config.deliver_payloads = flag()?,
            "pubsub#deliver_notifications" => config.deliver_notifications = flag()?,
            "pubsub#notify_retract" => config.notify_retract = flag()?,
            "pubsub#notify_delete" => config.notify_delete = flag()?,
            "pubsub#notify_config" => config.notify_config = flag()?,
            "pubsub#subscribe" => config.subscribe = flag()?,
            "pubsub#presence_based_delivery" => config.presence_based_delivery = flag()?,
            "pubsub#send_last_published_item" => {
                config.send_last_published_item =
                    SendLastPublished::from_name(one()?).ok_or_else(bad)?;
            }
            "pubsub#notification_type" => {
                config.notification_type = NotificationType::from_name(one()?).ok_or_else(bad)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// The configuration as (var, values), the form fields hydrant understands.
fn config_values(c: &NodeConfig) -> Vec<(&'static str, Vec<String>)> {
    let b = |v: bool| vec![if v { "1" } else { "0" }.to_owned()];
    let s = |v: &str| vec![v.to_owned()];
    vec![
        ("pubsub#title", s(&c.title)),
        ("pubsub#description", s(&c.description)),
        ("pubsub#type", s(c.payload_type.as_deref().unwrap_or(""))),
        ("pubsub#access_model", s(c.access_model.as_str())),
        (
            "pubsub#roster_groups_allowed",
            c.roster_groups_allowed.clone(),
        ),
        ("pubsub#publish_model", s(c.publish_model.as_str())),
        ("pubsub#max_items", vec![c.max_items.to_value()]),
        ("pubsub#persist_items", b(c.persist_items)),
        ("pubsub#deliver_payloads", b(c.deliver_payloads)),
        ("pubsub#deliver_notifications", b(c.deliver_notifications)),
        ("pubsub#notify_retract", b(c.notify_retract)),
        ("pubsub#notify_delete", b(c.notify_delete)),
        ("pubsub#notify_config", b(c.notify_config)),
        ("pubsub#subscribe", b(c.subscribe)),
        (
            "pubsub#presence_based_delivery",
            b(c.presence_based_delivery),
        ),
        (
            "pubsub#send_last_published_item",
            s(c.send_last_published_item.as_str()),
        ),
        ("pubsub#notification_type", s(c.notification_type.as_str())),
    ]
}

/// Every precondition field must be one hydrant knows (XEP-0060 7.1.5).
pub fn check_precondition_fields(pre: &ConfigForm) -> Result<(), Error> {
    let known = config_values(&NodeConfig::default());
    for (var, _) in &pre.fields {
        if !known.iter().any(|(k, _)| k == var) {
            return Err(Error::PreconditionNotMet { field: var.clone() });
        }
    }
    Ok(())
}

/// Checks publish-options against an existing node: each field must equal the node's
/// value (booleans by meaning, `max_items` by the number of items kept, lists as sets).
pub fn check_preconditions(config: &NodeConfig, pre: &ConfigForm, cap: u32) -> Result<(), Error> {
    check_precondition_fields(pre)?;
    let current = config_values(config);
    for (var, want) in &pre.fields {
        let have = &current
            .iter()
            .find(|(k, _)| k == var)
            .expect("checked known")
            .1;
        let unmet = || Error::PreconditionNotMet { field: var.clone() };
        let ok = if var == "pubsub#max_items" {
            let w = MaxItems::parse(single(var, want).map_err(|_| unmet())?, cap);
            w.map(|w| w.effective(cap)) == Some(config.max_items.effective(cap))
        } else if var == "pubsub#roster_groups_allowed" {
            let mut a = want.clone();
            let mut b = have.clone();
            a.sort();
            b.sort();
            a == b
        } else if have.len() == 1 && (have[0] == "0" || have[0] == "1") {
            want.len() == 1 && boolean(&want[0]) == boolean(&have[0])
        } else {
            want == have
        };
        if !ok {
            return Err(unmet());
        }
    }
    Ok(())
}

// ---- rendering ----

fn hidden_form_type(value: &str) -> Element {
    Element::new("field", ns::DATA_FORMS)
        .with_attr("var", "FORM_TYPE")
        .with_attr("type", "hidden")
        .with_child(value_el(value))
}

fn value_el(v: &str) -> Element {
    Element::new("value", ns::DATA_FORMS).with_text(v)
}

fn field(var: &str, kind: &str, label: &str, values: &[String], options: &[&str]) -> Element {
    let mut f = Element::new("field", ns::DATA_FORMS)
        .with_attr("var", var)
        .with_attr("type", kind);
    if !label.is_empty() {
        f.set_attr("label", label);
    }
    for o in options {
        f.append_child(Element::new("option", ns::DATA_FORMS).with_child(value_el(o)));
    }
    for v in values {
        f.append_child(value_el(v));
    }
    f
}

fn field_meta(var: &str) -> (&'static str, &'static str, Vec<&'static str>) {
    match var {
        "pubsub#title" => ("text-single", "A friendly name for the node", vec![]),
        "pubsub#description" => ("text-single", "A description of the node", vec![]),
        "pubsub#type" => (
            "text-single",
            "The type of node data (payload namespace)",
            vec![],
        ),
        "pubsub#access_model" => (
            "list-single",
            "Who may subscribe and retrieve items",
            AccessModel::ALL.iter().map(|a| a.as_str()).collect(),
        ),
        // XEP-0060 16.4.4 (pubsub#node_config registry): list-multi.
        "pubsub#roster_groups_allowed" => {
            ("list-multi", "Roster groups allowed to subscribe", vec![])
        }
        "pubsub#publish_model" => (
            "list-single",
            "Who may publish",
            PublishModel::ALL.iter().map(|a| a.as_str()).collect(),
        ),
        "pubsub#max_items" => (
            "text-single",
            "Max number of items to persist (or max)",
            vec![],
        ),
        "pubsub#persist_items" => ("boolean", "Persist items", vec![]),
        "pubsub#deliver_payloads" => ("boolean", "Deliver payloads with notifications", vec![]),
        "pubsub#deliver_notifications" => ("boolean", "Deliver event notifications", vec![]),
        "pubsub#notify_retract" => ("boolean", "Notify when items are removed", vec![]),
        "pubsub#notify_delete" => ("boolean", "Notify when the node is deleted", vec![]),
        "pubsub#notify_config" => ("boolean", "Notify when the configuration changes", vec![]),
        "pubsub#subscribe" => ("boolean", "Allow subscriptions", vec![]),
        "pubsub#presence_based_delivery" => {
            ("boolean", "Deliver only to available subscribers", vec![])
        }
        "pubsub#send_last_published_item" => (
            "list-single",
            "When to send the last published item",
            SendLastPublished::ALL.iter().map(|a| a.as_str()).collect(),
        ),
        "pubsub#notification_type" => (
            "list-single",
            "Message type of notifications",
            vec!["normal", "headline"],
        ),
        _ => ("text-single", "", vec![]),
    }
}

/// The configuration as a form: `type='form'` to fill in (configure, default), or
/// `type='result'` (configuration notifications).
pub fn config_form(config: &NodeConfig, kind: &str) -> Element {
    let mut x = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", kind)
        .with_child(hidden_form_type(NODE_CONFIG));
    for (var, values) in config_values(config) {
        let (t, label, mut options) = field_meta(var);
        if var == "pubsub#roster_groups_allowed" {
            // XEP-0060's registry types it list-multi, whose options are the owner's
            // roster groups; the node knows the groups it names, which are offered so
            // that a typed form accepts the current value.
            options.extend(values.iter().map(String::as_str));
        }
        let (label, options): (&str, &[&str]) = if kind == "form" {
            (label, &options)
        } else {
            ("", &[])
        };
        x.append_child(field(var, t, label, &values, options));
    }
    x
}

/// The `pubsub#meta-data` form of a node's disco#info (XEP-0060 5.4).
pub fn meta_data_form(meta: &NodeMeta) -> Element {
    let c = &meta.config;
    let s = |v: &str| vec![v.to_owned()];
    let jids = |v: &[hydrant_proto::BareJid]| v.iter().map(ToString::to_string).collect::<Vec<_>>();
    let mut x = Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "result")
        .with_child(hidden_form_type(META_DATA));
    let fields: Vec<(&str, &str, Vec<String>)> = vec![
        ("pubsub#title", "text-single", s(&c.title)),
        ("pubsub#description", "text-single", s(&c.description)),
        (
            "pubsub#type",
            "text-single",
            s(c.payload_type.as_deref().unwrap_or("")),
        ),
        (
            "pubsub#access_model",
            "list-single",
            s(c.access_model.as_str()),
        ),
        (
            "pubsub#publish_model",
            "list-single",
            s(c.publish_model.as_str()),
        ),
        (
            "pubsub#max_items",
            "text-single",
            vec![c.max_items.to_value()],
        ),
        ("pubsub#owner", "jid-multi", jids(&meta.owners)),
        ("pubsub#publisher", "jid-multi", jids(&meta.publishers)),
        (
            "pubsub#creator",
            "jid-single",
            s(&meta.creator.to_bare().to_string()),
        ),
        (
            "pubsub#num_subscribers",
            "text-single",
            s(&meta.num_subscribers.to_string()),
        ),
    ];
    for (var, t, values) in fields {
        x.append_child(field(var, t, "", &values, &[]));
    }
    x
}

/// Applies a submitted subscription-options form (XEP-0060 6.3.5): `invalid-options` on
/// a value hydrant cannot honour.
pub fn apply_options(opts: &mut SubOptions, form: &ConfigForm) -> Result<(), Error> {
    for (var, values) in &form.fields {
        let bad = || Error::InvalidOptions(var.clone());
        let one = || match values.as_slice() {
            [v] => Ok(v.as_str()),
            _ => Err(bad()),
        };
        match var.as_str() {
            "pubsub#deliver" => opts.deliver = boolean(one()?).ok_or_else(bad)?,
            // Digests and message bodies are not offered: only "off" is acceptable.
            "pubsub#digest" | "pubsub#include_body" if boolean(one()?).ok_or_else(bad)? => {
                return Err(bad());
            }
            "pubsub#show-values" => {
                let mut shows = Vec::new();
                for v in values {
                    shows.push(Show::from_name(v).ok_or_else(bad)?);
                }
                shows.sort();
                shows.dedup();
                opts.show_values = shows;
            }
            URGENT => opts.urgent = boolean(one()?).ok_or_else(bad)?,
            "pubsub#subscription_type" if one()? != "items" => return Err(bad()),
            "pubsub#subscription_depth" if one()? != "1" => return Err(bad()),
            _ => {}
        }
    }
    Ok(())
}

/// The subscription options as a form (6.3.2, and 6.4 defaults).
pub fn options_form(opts: &SubOptions) -> Element {
    let b = |v: bool| vec![if v { "1" } else { "0" }.to_owned()];
    let shows: Vec<String> = opts
        .show_values
        .iter()
        .map(|s| s.as_str().to_owned())
        .collect();
    let all_shows: Vec<&str> = Show::ALL.iter().map(|s| s.as_str()).collect();
    Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "form")
        .with_child(hidden_form_type(SUBSCRIBE_OPTIONS))
        .with_child(field(
            "pubsub#deliver",
            "boolean",
            "Enable delivery?",
            &b(opts.deliver),
            &[],
        ))
        .with_child(field(
            "pubsub#digest",
            "boolean",
            "Receive digest notifications (not offered)",
            &b(false),
            &[],
        ))
        .with_child(field(
            "pubsub#include_body",
            "boolean",
            "Receive message body in addition to payload (not offered)",
            &b(false),
            &[],
        ))
        .with_child(field(
            "pubsub#show-values",
            "list-multi",
            "Select the presence types which are allowed to receive event notifications",
            &shows,
            &all_shows,
        ))
        .with_child(field(
            URGENT,
            "boolean",
            "Deliver at once even while my client is inactive (XEP-0352)",
            &b(opts.urgent),
            &[],
        ))
}

/// hydrant's subscription option for urgent nodes. Not in XEP-0060's registry, so named
/// as XEP-0068 3.4 asks of a field that extends a registered FORM_TYPE: `x-` first.
pub const URGENT: &str = "x-hydrant#urgent";

/// The approval request an owner receives for a pending subscription (XEP-0060 8.6):
/// the `<x/>` to put in a `<message/>` from the service to each owner.
pub fn authorization_request(node: &NodeName, subscriber: &Jid, subid: &SubId) -> Element {
    let s = |v: &str| vec![v.to_owned()];
    Element::new("x", ns::DATA_FORMS)
        .with_attr("type", "form")
        .with_child(Element::new("title", ns::DATA_FORMS).with_text("PubSub subscriber request"))
        .with_child(Element::new("instructions", ns::DATA_FORMS).with_text(
            "To approve this entity's subscription request, click the OK button. \
                 To deny the request, click the cancel button.",
        ))
        .with_child(hidden_form_type(SUBSCRIBE_AUTHORIZATION))
        .with_child(field("pubsub#subid", "hidden", "", &s(subid.as_str()), &[]))
        .with_child(field(
            "pubsub#node",
            "text-single",
            "Node ID",
            &s(node.as_str()),
            &[],
        ))
        .with_child(field(
            "pubsub#subscriber_jid",
            "jid-single",
            "Subscriber Address",
            &s(&subscriber.to_string()),
            &[],
        ))
        .with_child(field(
            "pubsub#allow",
            "boolean",
            "Allow this JID to subscribe to this pubsub node?",
            &s("0"),
            &[],
        ))
}

/// Parses an owner's answer to [`authorization_request`] (the `<x/>` of its message)
/// into [`Request::Authorize`].
pub fn parse_authorization(x: &Element) -> Result<Request, Error> {
    let form = parse_submit(x, SUBSCRIBE_AUTHORIZATION)?
        .ok_or(Error::BadForm("a cancelled authorization form"))?;
    let get = |var: &str| {
        form.fields
            .iter()
            .find(|(v, _)| v == var)
            .and_then(|(_, vals)| vals.first())
            .map(String::as_str)
    };
    let node = get("pubsub#node")
        .filter(|n| !n.is_empty())
        .ok_or(Error::NodeIdRequired)?;
    let subscriber = get("pubsub#subscriber_jid").ok_or(Error::JidRequired)?;
    let subscriber = hydrant_proto::address::jid(subscriber).ok_or(Error::JidMalformed)?;
    let allow = boolean(get("pubsub#allow").ok_or(Error::BadForm("pubsub#allow missing"))?)
        .ok_or(Error::BadForm("pubsub#allow is not a boolean"))?;
    Ok(Request::Authorize {
        node: NodeName::from(node),
        subscriber,
        subid: get("pubsub#subid")
            .filter(|s| !s.is_empty())
            .map(SubId::from),
        allow,
    })
}
