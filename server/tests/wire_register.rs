//! Wire test: in-band registration (XEP-0077) checks everything that can refuse it before
//! the server derives the new account's SCRAM keys (PBKDF2, the expensive part), so a
//! flood of taken names costs the server no key derivation.
//!
//! The server's `hydrant_scram_key_derivations_total` counter is read through an
//! in-process recorder; this binary holds this one test so no other server adds to it.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use common::{Server, stanza_error};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};

static DERIVATIONS: AtomicU64 = AtomicU64::new(0);

struct Derivations;

impl CounterFn for Derivations {
    fn increment(&self, value: u64) {
        DERIVATIONS.fetch_add(value, Ordering::SeqCst);
    }

    fn absolute(&self, value: u64) {
        DERIVATIONS.store(value, Ordering::SeqCst);
    }
}

struct Recorder;

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == "hydrant_scram_key_derivations_total" {
            Counter::from_arc(Arc::new(Derivations))
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn register_query(user: &str, password: &str) -> String {
    format!(
        "<query xmlns='jabber:iq:register'><username>{user}</username>\
         <password>{password}</password></query>"
    )
}

#[tokio::test]
async fn refused_registrations_derive_no_keys() {
    metrics::set_global_recorder(Recorder).expect("the only recorder of this test binary");
    let server = Server::start_with("max_attempts_per_stream = 10\nmax_accounts = 2").await;
    server.add_user("alice", "wonderland");
    let (mut c, _) = server.connect_tls().await;
    let derivations = || DERIVATIONS.load(Ordering::SeqCst);

    let res = c
        .iq("set", None, &register_query("carol", "s3cret-pw"))
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    assert_eq!(derivations(), 1, "one account, one derivation");

    // Taken names (created in-band or by the admin), and a password below the minimum.
    for (user, password) in [("carol", "other-pw"), ("alice", "other-pw")] {
        let res = c.iq("set", None, &register_query(user, password)).await;
        assert_eq!(stanza_error(&res).as_deref(), Some("conflict"), "{res}");
    }
    let res = c.iq("set", None, &register_query("dave", "pw")).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    // The account cap (alice and carol: two) is reached: <not-allowed/>.
    let res = c
        .iq("set", None, &register_query("erin", "s3cret-pw"))
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("not-allowed"), "{res}");
    assert_eq!(derivations(), 1, "no derivation for a refused registration");
    assert_eq!(
        c.auth_plain("erin", "s3cret-pw").await,
        Err("not-authorized".into())
    );
}
