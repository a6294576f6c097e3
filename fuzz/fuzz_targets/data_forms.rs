//! XEP-0004 data forms as XEP-0060 reads them (pubsub/src/xep0060/forms.rs): the first
//! stanza of the input (normally an `<x xmlns='jabber:x:data'/>`; its children are tried
//! too, so a form inside a `<configure/>` or `<options/>` counts) parsed for every pubsub
//! FORM_TYPE and applied as node configuration, subscription options and
//! publish-options preconditions. Never a panic, and the forms hydrant writes agree with
//! what it reads: an accepted configuration rendered as a form and applied to a fresh
//! node gives the same configuration, and meets itself as a precondition; likewise for
//! subscription options.
#![no_main]

use hydrant_fuzz::{reread, stanza};
use hydrant_proto::Element;
use hydrant_pubsub::xep0060::forms::{
    self, META_DATA, NODE_CONFIG, PUBLISH_OPTIONS, SUBSCRIBE_AUTHORIZATION, SUBSCRIBE_OPTIONS,
};
use hydrant_pubsub::{NodeConfig, SubOptions};
use libfuzzer_sys::fuzz_target;

/// The operator's `max_items_cap` the forms are checked against.
const CAP: u32 = 100;
/// Text-field budget of node configurations (`[pubsub] max_config_text_bytes` default).
const MAX_TEXT: usize = 1024;

fn as_submitted(mut x: Element) -> Element {
    x.set_attr("type", "submit");
    reread(&x)
}

fn check(x: &Element) {
    let _ = forms::parse_authorization(x);
    for form_type in [
        NODE_CONFIG,
        PUBLISH_OPTIONS,
        META_DATA,
        SUBSCRIBE_AUTHORIZATION,
    ] {
        let Ok(Some(form)) = forms::parse_submit(x, form_type) else {
            continue;
        };
        let _ = forms::check_precondition_fields(&form);
        let _ = forms::check_preconditions(&NodeConfig::default(), &form, CAP);
        let mut config = NodeConfig::default();
        if forms::apply_config(&mut config, &form, CAP, MAX_TEXT).is_ok() {
            let written = as_submitted(forms::config_form(&config, "form"));
            let back = forms::parse_submit(&written, NODE_CONFIG)
                .expect("hydrant's own configuration form parses")
                .expect("and is not cancelled");
            let mut fresh = NodeConfig::default();
            forms::apply_config(&mut fresh, &back, CAP, MAX_TEXT)
                .expect("hydrant's own configuration form applies");
            assert_eq!(config, fresh, "configuration form round trip differs");
            forms::check_preconditions(&config, &back, CAP)
                .expect("a configuration meets itself as a precondition");
        }
    }
    if let Ok(Some(form)) = forms::parse_submit(x, SUBSCRIBE_OPTIONS) {
        let mut opts = SubOptions::default();
        if forms::apply_options(&mut opts, &form).is_ok() {
            let written = as_submitted(forms::options_form(&opts));
            let back = forms::parse_submit(&written, SUBSCRIBE_OPTIONS)
                .expect("hydrant's own options form parses")
                .expect("and is not cancelled");
            let mut fresh = SubOptions::default();
            forms::apply_options(&mut fresh, &back).expect("hydrant's own options form applies");
            assert_eq!(opts, fresh, "options form round trip differs");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some(el) = stanza(data) else {
        return;
    };
    check(&el);
    for child in el.children() {
        check(child);
    }
});
