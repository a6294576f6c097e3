//! Publisher pacing over the wire (README "Publisher pacing", `pubsub/pacing.rs`): when
//! every subscriber of a node has stopped reading, the publisher's next stanzas are held
//! back (at most `pace_max_wait_ms` each) instead of running on, and the publisher is
//! never wedged: once the stalled subscribers' queues pass `outbound_queue_bytes` they
//! are closed as slow consumers and publishes are prompt again.
//!
//! Acks are sent before the pause (the pause holds the session's next stanza), so a paced
//! publish shows as a round trip of at least the pause, measured from send to result.
//! The lower bound is deterministic: a paced publisher waits the whole pause when no
//! sampled queue drains.

mod common;

use std::time::Duration;

use common::pubsub::{PW, assert_result, subscribe, users};
use common::{Server, TIMEOUT};
use hydrant_proto::ns;
use tokio::time::Instant;

const SVC: &str = "pubsub.localhost";
const NODE: &str = "paced";
const PAUSE_MS: u64 = 400;
const STALLED: usize = 3;
/// Publishes allowed before the test gives up waiting for pacing or its end: the
/// stalled clients' kernel buffers hold a few MB (loopback autotuning) before anything
/// stays in hydrant's queues.
const MAX_ITEMS: usize = 8000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_is_paced_while_all_subscribers_stall_and_never_wedged() {
    let dir = tempfile::Builder::new()
        .prefix("hydrant-wire-")
        .tempdir()
        .expect("temp dir");
    let server = Server::start_in_with_c2s(
        dir,
        "require_tls = false\noutbound_queue_bytes = 65536",
        &format!("[pubsub]\npace_queued_bytes = 2048\npace_max_wait_ms = {PAUSE_MS}\n"),
    )
    .await;
    let names: Vec<String> = (0..STALLED).map(|i| format!("stalled{i}")).collect();
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.push("publisher");
    users(&server, &all);

    let mut publisher = server.login_plaintext("publisher", PW, "p", None).await;
    let create = format!(
        "<pubsub xmlns='{}'><create node='{NODE}'/></pubsub>",
        ns::PUBSUB
    );
    let res = publisher.iq("set", Some(SVC), &create).await;
    assert_result(&res, "create");
    let mut stalled = Vec::new();
    for name in &names {
        let mut c = server.login_plaintext(name, PW, "s", Some(4096)).await;
        let jid = c.jid.clone();
        subscribe(&mut c, SVC, NODE, &jid, None).await;
        // From here on nobody reads this stream until the end.
        stalled.push(c);
    }

    let payload = format!(
        "<entry xmlns='urn:example:pace'>{}</entry>",
        "p".repeat(2000)
    );
    let deadline = Instant::now() + Duration::from_mins(4);
    let pause = Duration::from_millis(PAUSE_MS);
    let (mut paced, mut prompt_after_paced) = (0usize, 0usize);
    for i in 0..MAX_ITEMS {
        assert!(Instant::now() < deadline, "gave up after {i} publishes");
        let t0 = Instant::now();
        let res = tokio::time::timeout(
            TIMEOUT,
            publisher.iq(
                "set",
                Some(SVC),
                &format!(
                    "<pubsub xmlns='{}'><publish node='{NODE}'><item id='i{i}'>{payload}</item>\
                     </publish></pubsub>",
                    ns::PUBSUB
                ),
            ),
        )
        .await
        .unwrap_or_else(|_| {
            panic!("publish {i}: no answer in {TIMEOUT:?}: the publisher is wedged")
        });
        assert_result(&res, &format!("publish {i}"));
        let took = t0.elapsed();
        if took >= pause {
            paced += 1;
            prompt_after_paced = 0;
        } else if paced > 0 && took < pause / 4 {
            prompt_after_paced += 1;
            // The stalled subscribers were cut off: publishing is prompt again.
            if prompt_after_paced == 20 {
                break;
            }
        }
    }
    assert!(paced > 0, "no publish was paced in {MAX_ITEMS} items");
    assert_eq!(
        prompt_after_paced, 20,
        "publishes never became prompt again after {paced} paced ones"
    );
    // The stalled streams ended as slow consumers.
    for (i, mut c) in stalled.into_iter().enumerate() {
        let condition = c.expect_stream_error().await;
        assert_eq!(condition, "policy-violation", "stalled{i}");
    }
    server.stop().await;
}
