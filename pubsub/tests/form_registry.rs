//! Every field of the forms hydrant sends has the type XEP-0060's registries (16.4.4)
//! give it: libraries that type-check forms reject a whole form over one wrong type.
//! Node configuration (`pubsub#node_config`), subscription options
//! (`pubsub#subscribe_options`) and node metadata (`pubsub#meta-data`, which also carries
//! three `node_config` fields, typed as there).

use hydrant_proto::{Element, ns};
use hydrant_pubsub::NodeConfig;
use hydrant_pubsub::xep0060::forms;

/// XEP-0060 16.4.4, the fields hydrant sends.
const REGISTRY: &[(&str, &str)] = &[
    ("pubsub#access_model", "list-single"),
    ("pubsub#deliver_notifications", "boolean"),
    ("pubsub#deliver_payloads", "boolean"),
    ("pubsub#description", "text-single"),
    ("pubsub#item_expire", "text-single"),
    ("pubsub#max_items", "text-single"),
    ("pubsub#max_payload_size", "text-single"),
    ("pubsub#notification_type", "list-single"),
    ("pubsub#notify_config", "boolean"),
    ("pubsub#notify_delete", "boolean"),
    ("pubsub#notify_retract", "boolean"),
    ("pubsub#notify_sub", "boolean"),
    ("pubsub#persist_items", "boolean"),
    ("pubsub#presence_based_delivery", "boolean"),
    ("pubsub#publish_model", "list-single"),
    ("pubsub#purge_offline", "boolean"),
    ("pubsub#roster_groups_allowed", "list-multi"),
    ("pubsub#send_last_published_item", "list-single"),
    ("pubsub#subscribe", "boolean"),
    ("pubsub#title", "text-single"),
    ("pubsub#type", "text-single"),
];

/// XEP-0060 16.4.4, `pubsub#subscribe_options`.
const SUBSCRIBE_OPTIONS: &[(&str, &str)] = &[
    ("pubsub#deliver", "boolean"),
    ("pubsub#digest", "boolean"),
    ("pubsub#digest_frequency", "text-single"),
    ("pubsub#expire", "text-single"),
    ("pubsub#include_body", "boolean"),
    ("pubsub#show-values", "list-multi"),
    ("pubsub#subscription_type", "list-single"),
    ("pubsub#subscription_depth", "list-single"),
];

/// XEP-0060 16.4.4, `pubsub#meta-data`, and the `node_config` fields hydrant adds to it.
const META_DATA: &[(&str, &str)] = &[
    ("pubsub#contact", "jid-multi"),
    ("pubsub#creation_date", "text-single"),
    ("pubsub#creator", "jid-single"),
    ("pubsub#description", "text-single"),
    ("pubsub#language", "list-single"),
    ("pubsub#num_subscribers", "text-single"),
    ("pubsub#owner", "jid-multi"),
    ("pubsub#publisher", "jid-multi"),
    ("pubsub#title", "text-single"),
    ("pubsub#type", "text-single"),
    ("pubsub#access_model", "list-single"),
    ("pubsub#publish_model", "list-single"),
    ("pubsub#max_items", "text-single"),
];

/// Checks every field of `form` against `registry`.
fn check(form: &Element, registry: &[(&str, &str)], check_options: bool) {
    let fields = fields(form);
    assert!(!fields.is_empty(), "{form}");
    for f in fields {
        let var = f.attr("var").unwrap_or_default();
        if var == forms::URGENT {
            // hydrant's own field, named as XEP-0068 3.4 asks of one that extends a
            // registered FORM_TYPE.
            assert!(var.starts_with("x-"), "{var}");
            assert_eq!(f.attr("type"), Some("boolean"), "{f}");
            continue;
        }
        let want = registry
            .iter()
            .find(|(v, _)| *v == var)
            .unwrap_or_else(|| panic!("{var} is not in the registry"))
            .1;
        assert_eq!(f.attr("type"), Some(want), "{var}: {f}");
        if check_options && (want == "list-multi" || want == "list-single") {
            // A typed form accepts only values among the options.
            let options: Vec<String> = f
                .children()
                .filter(|o| o.name() == "option")
                .filter_map(|o| o.get_child("value", ns::DATA_FORMS).map(Element::text))
                .collect();
            for v in f.children().filter(|v| v.name() == "value") {
                assert!(
                    options.contains(&v.text()),
                    "{var}: value {} not an option: {f}",
                    v.text()
                );
            }
        }
    }
}

#[test]
fn the_subscription_options_form_types_every_field_as_the_registry_does() {
    let opts = hydrant_pubsub::SubOptions::default();
    check(&forms::options_form(&opts), SUBSCRIBE_OPTIONS, true);
}

#[test]
fn the_metadata_form_types_every_field_as_the_registry_does() {
    let meta = hydrant_pubsub::request::NodeMeta {
        config: NodeConfig::default(),
        owners: vec![hydrant_proto::BareJid::new("owner@example.org").unwrap()],
        publishers: Vec::new(),
        creator: hydrant_proto::Jid::new("owner@example.org/phone").unwrap(),
        created_ms: 0,
        num_subscribers: 3,
    };
    // A result form: no options to check.
    check(&forms::meta_data_form(&meta), META_DATA, false);
}

/// XEP-0313 (urn:xmpp:mam:2) 5.1 and the #extended fields (XEP-0313 6, XEP-0442).
const MAM: &[(&str, &str)] = &[
    ("with", "jid-single"),
    ("start", "text-single"),
    ("end", "text-single"),
    ("before-id", "text-single"),
    ("after-id", "text-single"),
    // XEP-0313 6.2: list-multi with an open xdata-validate (any id may be given).
    ("ids", "list-multi"),
];

#[test]
fn the_archive_query_form_types_every_field_as_xep_0313_does() {
    let query = hydrant_pubsub::xep0313::form();
    let x = query
        .get_child("x", ns::DATA_FORMS)
        .expect("the query carries its form");
    // The `ids` list is open (no options): values are not checked against options.
    check(x, MAM, false);
}

fn fields(x: &Element) -> Vec<&Element> {
    x.children()
        .filter(|f| f.is("field", ns::DATA_FORMS) && f.attr("var") != Some("FORM_TYPE"))
        .collect()
}

#[test]
fn the_configuration_form_types_every_field_as_the_registry_does() {
    let config = NodeConfig {
        roster_groups_allowed: vec!["friends".to_owned(), "family".to_owned()],
        ..NodeConfig::default()
    };
    check(&forms::config_form(&config, "form"), REGISTRY, true);
}
