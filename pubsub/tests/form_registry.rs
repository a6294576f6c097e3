//! Every field of the node configuration form hydrant sends has the type the XEP-0060
//! `pubsub#node_config` registry (XEP-0060 16.4.4) gives it: libraries that type-check
//! forms reject the whole form over one wrong type.

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
    let form = forms::config_form(&config, "form");
    let fields = fields(&form);
    assert!(!fields.is_empty());
    for f in fields {
        let var = f.attr("var").unwrap_or_default();
        let want = REGISTRY
            .iter()
            .find(|(v, _)| *v == var)
            .unwrap_or_else(|| panic!("{var} is not in the node_config registry"))
            .1;
        assert_eq!(f.attr("type"), Some(want), "{var}: {f}");
        if want == "list-multi" || want == "list-single" {
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
