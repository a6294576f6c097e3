//! Hostile or broken input: every case ends the stream with the exact stream error, the
//! pipe reaches EOF and the stream task ends.

mod common;

use std::fmt::Write as _;
use std::time::Duration;

use common::{DOMAIN, Harness, Record, config, header};
use hydrant_proto::{Limits, StreamEvent};

/// An opened, unauthenticated stream.
async fn opened(h: &Harness) -> common::Client {
    let mut c = h.connect(true);
    c.open().await;
    c
}

#[tokio::test(start_paused = true)]
async fn mismatched_tags_are_not_well_formed() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<message><body>hi</message></body>").await;
    c.expect_stream_error("not-well-formed").await;
}

#[tokio::test(start_paused = true)]
async fn bare_ampersand_is_not_well_formed() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<message><body>fish & chips</body></message>").await;
    c.expect_stream_error("not-well-formed").await;
}

#[tokio::test(start_paused = true)]
async fn malformed_input_in_a_bound_session_ends_it() {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    c.bound_alice("r").await;
    c.send("<presence><show>away</presence></show>").await;
    c.expect_stream_error("not-well-formed").await;
    assert!(matches!(h.record().await, Record::Bind(_)));
    assert!(matches!(h.record().await, Record::Unbind(_)));
}

#[tokio::test(start_paused = true)]
async fn dtd_before_the_header_is_restricted_xml() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.send(&format!(
        "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'>]>{}",
        header(DOMAIN).trim_start_matches("<?xml version='1.0'?>")
    ))
    .await;
    // Our header comes first even though the peer never completed its own.
    c.expect_open().await;
    c.expect_stream_error("restricted-xml").await;
}

#[tokio::test(start_paused = true)]
async fn dtd_inside_the_stream_is_restricted_xml() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<!DOCTYPE foo>").await;
    c.expect_stream_error("restricted-xml").await;
}

#[tokio::test(start_paused = true)]
async fn processing_instruction_is_restricted_xml() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<?xml-stylesheet href='x'?>").await;
    c.expect_stream_error("restricted-xml").await;
}

#[tokio::test(start_paused = true)]
async fn comment_is_restricted_xml() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<!-- hello -->").await;
    c.expect_stream_error("restricted-xml").await;
}

#[tokio::test(start_paused = true)]
async fn comment_inside_a_stanza_is_restricted_xml() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<message><!-- hello --></message>").await;
    c.expect_stream_error("restricted-xml").await;
}

#[tokio::test(start_paused = true)]
async fn undeclared_entity_is_restricted_xml() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<message><body>&lol;</body></message>").await;
    c.expect_stream_error("restricted-xml").await;
}

#[tokio::test(start_paused = true)]
async fn text_between_stanzas_is_not_well_formed() {
    // proto treats character data as a child of <stream:stream> like any other garbage.
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("hello").await;
    c.expect_stream_error("not-well-formed").await;
}

const LIMIT: usize = 10_000;

fn small_limits() -> Harness {
    let mut cfg = config();
    cfg.limits = Limits {
        max_stanza_bytes: LIMIT,
        ..Limits::default()
    };
    cfg.preauth_limits = cfg.limits;
    let h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    h
}

#[tokio::test(start_paused = true)]
async fn stanza_over_the_size_limit_is_policy_violation() {
    let h = small_limits();
    let mut c = opened(&h).await;
    // Just under the limit is fine (it fails later, for lack of authentication).
    let prefix = "<message><body>";
    let suffix = "</body></message>";
    let fits = format!(
        "{prefix}{}{suffix}",
        "a".repeat(LIMIT - prefix.len() - suffix.len())
    );
    assert_eq!(fits.len(), LIMIT);
    c.send(&format!("{prefix}{}{suffix}", "a".repeat(2 * LIMIT)))
        .await;
    c.expect_stream_error("policy-violation").await;

    let mut c = opened(&h).await;
    c.send(&fits).await;
    c.expect_stream_error("not-authorized").await;
}

#[tokio::test(start_paused = true)]
async fn never_closed_tag_is_refused_as_soon_as_it_passes_the_limit() {
    const CHUNK: usize = 1000;
    let h = small_limits();
    let mut c = opened(&h).await;
    let start = "<message to='";
    c.send(start).await;
    let mut unit = start.len();
    // Keep an attribute value open forever, a chunk at a time. After each chunk, wait
    // until the server has consumed everything (the paused clock advances only when all
    // tasks are idle) and see whether it has spoken.
    loop {
        if !c.is_silent_for(Duration::from_millis(1)).await {
            break;
        }
        assert!(
            unit <= LIMIT,
            "{unit} bytes of one unit accepted without complaint"
        );
        if c.try_send(&[b'a'; CHUNK]).await.is_err() {
            break;
        }
        unit += CHUNK;
    }
    assert!(unit > LIMIT, "refused before the limit: {unit}");
    assert!(unit <= LIMIT + CHUNK, "refused late: {unit}");
    c.expect_stream_error("policy-violation").await;
}

#[tokio::test(start_paused = true)]
async fn nesting_over_the_depth_limit_is_policy_violation() {
    let h = Harness::with_alice();
    let depth = h.shared.cfg.limits.max_depth;
    let mut c = opened(&h).await;
    let mut s = String::from("<message>");
    for _ in 0..depth {
        s.push_str("<x>");
    }
    c.send(&s).await;
    c.expect_stream_error("policy-violation").await;
}

#[tokio::test(start_paused = true)]
async fn nesting_at_the_depth_limit_is_accepted() {
    let h = Harness::with_alice();
    let depth = h.shared.cfg.limits.max_depth;
    let mut c = opened(&h).await;
    // `depth` levels including the stanza itself: parsed fine, then refused only because
    // the stream is not authenticated.
    let s = format!(
        "<message>{}{}</message>",
        "<x>".repeat(depth - 1),
        "</x>".repeat(depth - 1)
    );
    c.send(&s).await;
    c.expect_stream_error("not-authorized").await;
}

#[tokio::test(start_paused = true)]
async fn too_many_attributes_is_policy_violation() {
    let h = Harness::with_alice();
    let max = h.shared.cfg.limits.max_attrs;
    let mut c = opened(&h).await;
    let mut s = String::from("<message");
    for i in 0..=max {
        write!(s, " a{i}='v'").unwrap();
    }
    s.push_str("/>");
    c.send(&s).await;
    c.expect_stream_error("policy-violation").await;
}

#[tokio::test(start_paused = true)]
async fn data_after_the_stream_error_is_ignored() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<!-- x -->").await;
    // Whatever the peer sends now is not answered.
    let _ = c.try_send(b"<presence/><foo/>").await;
    c.expect_stream_error("restricted-xml").await;
}

#[tokio::test(start_paused = true)]
async fn eof_in_the_middle_of_a_stanza_ends_the_task() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<message><bo").await;
    let common::Client { io, .. } = &mut c;
    tokio::io::AsyncWriteExt::shutdown(io).await.unwrap();
    // Nothing to say to a peer that is gone: the task just ends.
    match c.next_event().await {
        None | Some(StreamEvent::Close) => {}
        Some(other) => panic!("unexpected {other:?}"),
    }
    c.expect_task_end().await;
}

/// Hardening issue item 5: until authenticated a client gets `preauth_limits` (10,000
/// bytes), not the full stanza limit; after SASL success the full limit applies.
#[tokio::test(start_paused = true)]
async fn stanza_limit_is_smaller_before_authentication() {
    let mut h = Harness::with_alice();
    assert_eq!(h.shared.cfg.preauth_limits.max_stanza_bytes, 10_000);
    assert!(h.shared.cfg.limits.max_stanza_bytes > 30_000);
    let big = format!(
        "<message to='bob@{}'><body>{}</body></message>",
        common::DOMAIN,
        "a".repeat(20_000)
    );
    let mut c = opened(&h).await;
    c.send(&big).await;
    c.expect_stream_error("policy-violation").await;

    let mut c = h.connect(true);
    c.bound_alice("home").await;
    assert!(matches!(h.record().await, common::Record::Bind(_)));
    c.send(&big).await;
    let (_, stanza) = h.stanza().await;
    let hydrant_proto::Stanza::Message(m) = stanza else {
        panic!("expected the message, got {stanza:?}");
    };
    assert_eq!(m.body().map(|b| b.len()), Some(20_000));
}

/// A stream header larger than `max_header_bytes` is refused before it is complete.
#[tokio::test(start_paused = true)]
async fn oversized_stream_header_is_policy_violation() {
    let h = Harness::with_alice();
    let max = h.shared.cfg.preauth_limits.max_header_bytes;
    let mut c = h.connect(true);
    let header = common::header(common::DOMAIN)
        .replace(" version=", &format!(" id='{}' version=", "x".repeat(max)));
    c.send(&header).await;
    c.expect_open().await;
    c.expect_stream_error("policy-violation").await;
}

/// Hardening issue item 2: `<message to='me'><body>x</message>` used to leave the stream
/// waiting forever (the scan only counted depth); now it is not-well-formed at once.
#[tokio::test(start_paused = true)]
async fn mismatched_end_tag_is_not_well_formed_at_once() {
    let h = Harness::with_alice();
    let mut c = opened(&h).await;
    c.send("<message to='me'><body>x</message>").await;
    c.expect_stream_error("not-well-formed").await;
}
