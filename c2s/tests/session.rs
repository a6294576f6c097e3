//! Resource binding and the bound session: stamping, validation, close, shutdown, and the
//! slow-consumer policy.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{DOMAIN, Harness, Record, assert_stanza_error, config};
use hydrant_proto::{Stanza, StreamEvent, ns};
use hydrant_stream::outbox::PushError;

// -- Bind -----------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn bind_echoes_the_requested_resource() {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    c.login("alice", "secret").await;
    let jid = c.bind(Some("balcony")).await;
    assert_eq!(jid, format!("alice@{DOMAIN}/balcony"));
    match h.record().await {
        Record::Bind(info) => {
            assert_eq!(info.jid.to_string(), jid);
            assert!(info.secure);
            assert_eq!(info.peer, common::peer());
        }
        other => panic!("expected a bind, got {other:?}"),
    }
    assert!(h.backend.is_bound(&jid));
}

#[tokio::test(start_paused = true)]
async fn bind_without_resource_generates_one() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.login("alice", "secret").await;
    let jid = c.bind(None).await;
    let resource = jid
        .strip_prefix(&format!("alice@{DOMAIN}/"))
        .unwrap_or_else(|| panic!("{jid}"));
    assert!(resource.len() >= 8, "unguessable resource: {resource}");
    // A second stream gets a different one.
    let mut c2 = h.connect(true);
    c2.login("alice", "secret").await;
    let jid2 = c2.bind(None).await;
    assert_ne!(jid, jid2);
}

#[tokio::test(start_paused = true)]
async fn bind_with_empty_resource_generates_one() {
    let h = Harness::with_alice();
    let mut c = h.connect(true);
    c.login("alice", "secret").await;
    let jid = c.bind(Some("")).await;
    let resource = jid.strip_prefix(&format!("alice@{DOMAIN}/")).unwrap();
    assert!(!resource.is_empty());
}

#[tokio::test(start_paused = true)]
async fn stanza_before_bind_is_not_authorized() {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    c.login("alice", "secret").await;
    c.send("<message to='bob@example.com'><body>early</body></message>")
        .await;
    c.expect_stream_error("not-authorized").await;
    assert!(h.pending_records().is_empty(), "nothing reached the router");
}

#[tokio::test(start_paused = true)]
async fn stanza_before_authentication_is_not_authorized() {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send("<presence/>").await;
    c.expect_stream_error("not-authorized").await;
    assert!(h.pending_records().is_empty());
}

#[tokio::test(start_paused = true)]
async fn second_bind_on_a_stream_is_not_allowed() {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    let jid = c.bound_alice("one").await;
    c.send(
        "<iq type='set' id='b2'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>two</resource></bind></iq>",
    )
    .await;
    let reply = c.expect_element().await;
    assert_eq!(reply.attr("id"), Some("b2"));
    assert_stanza_error(&reply, "cancel", "not-allowed");
    // The session continues under its first JID.
    c.send("<presence/>").await;
    assert!(matches!(h.record().await, Record::Bind(_)));
    let (info, _) = h.stanza().await;
    assert_eq!(info.jid.to_string(), jid);
    assert!(!h.backend.is_bound(&format!("alice@{DOMAIN}/two")));
}

#[tokio::test(start_paused = true)]
async fn legacy_session_iq_gets_a_result() {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    c.bound_alice("r").await;
    c.send("<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>")
        .await;
    let reply = c.expect_element().await;
    assert!(reply.is("iq", ns::CLIENT));
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("id"), Some("sess"));
    assert_eq!(reply.children().count(), 0);
    // Answered by c2s itself, not routed.
    assert!(matches!(h.record().await, Record::Bind(_)));
    assert!(h.pending_records().is_empty());
}

#[tokio::test(start_paused = true)]
async fn binding_the_same_full_jid_twice_replaces_the_first_session() {
    let mut h = Harness::with_alice();
    let mut first = h.connect(true);
    let jid = first.bound_alice("phone").await;
    let mut second = h.connect(true);
    assert_eq!(second.bound_alice("phone").await, jid);
    first.expect_stream_error("conflict").await;
    // The second session is the one bound, and it still works.
    let binds: Vec<u64> = [h.record().await, h.record().await]
        .into_iter()
        .map(|r| match r {
            Record::Bind(info) => info.id,
            other => panic!("expected binds first, got {other:?}"),
        })
        .collect();
    match h.record().await {
        Record::Unbind(info) => assert_eq!(info.id, binds[0], "the old session is unbound"),
        other => panic!("expected the old session's unbind, got {other:?}"),
    }
    assert!(h.backend.is_bound(&jid));
    second.send("<presence/>").await;
    let (info, _) = h.stanza().await;
    assert_eq!(info.id, binds[1]);
}

// -- The bound session ----------------------------------------------------------------------

/// A harness with alice bound to `alice@example.com/home`; the Bind record is consumed.
async fn bound() -> (Harness, common::Client) {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    c.bound_alice("home").await;
    assert!(matches!(h.record().await, Record::Bind(_)));
    (h, c)
}

#[tokio::test(start_paused = true)]
async fn stanzas_are_stamped_with_the_full_jid() {
    let (mut h, mut c) = bound().await;
    c.send("<message to='bob@example.com' type='chat' id='m1'><body>hi</body></message>")
        .await;
    let (info, stanza) = h.stanza().await;
    assert_eq!(info.jid.to_string(), format!("alice@{DOMAIN}/home"));
    let Stanza::Message(m) = stanza else {
        panic!("expected a message, got {stanza:?}")
    };
    assert_eq!(
        m.from.as_ref().map(ToString::to_string),
        Some(format!("alice@{DOMAIN}/home"))
    );
    assert_eq!(
        m.to.as_ref().map(ToString::to_string),
        Some("bob@example.com".to_owned())
    );
    assert_eq!(m.id.as_deref(), Some("m1"));
}

#[tokio::test(start_paused = true)]
async fn bare_jid_from_is_accepted_and_stamped_full() {
    let (mut h, mut c) = bound().await;
    c.send(&format!(
        "<presence from='alice@{DOMAIN}'><show>away</show></presence>"
    ))
    .await;
    let (_, stanza) = h.stanza().await;
    assert!(matches!(stanza, Stanza::Presence(_)), "{stanza:?}");
    assert_eq!(
        stanza.from().map(ToString::to_string),
        Some(format!("alice@{DOMAIN}/home"))
    );
    // The full JID itself is fine too.
    c.send(&format!(
        "<iq type='get' id='v1' from='alice@{DOMAIN}/home' to='{DOMAIN}'>\
         <query xmlns='jabber:iq:version'/></iq>"
    ))
    .await;
    let (_, stanza) = h.stanza().await;
    assert!(matches!(stanza, Stanza::Iq(_)), "{stanza:?}");
    assert_eq!(
        stanza.from().map(ToString::to_string),
        Some(format!("alice@{DOMAIN}/home"))
    );
}

#[tokio::test(start_paused = true)]
async fn from_of_another_user_is_invalid_from() {
    let (mut h, mut c) = bound().await;
    c.send(&format!(
        "<message from='bob@{DOMAIN}/home' to='carol@{DOMAIN}'><body>spoof</body></message>"
    ))
    .await;
    c.expect_stream_error("invalid-from").await;
    let records = h.pending_records();
    assert!(
        records.iter().all(|r| !matches!(r, Record::Stanza(..))),
        "the spoofed stanza was not routed: {records:?}"
    );
    assert!(
        matches!(records.last(), Some(Record::Unbind(_))),
        "{records:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn from_of_another_resource_is_invalid_from() {
    let (_h, mut c) = bound().await;
    c.send(&format!(
        "<message from='alice@{DOMAIN}/other' to='carol@{DOMAIN}'><body>x</body></message>"
    ))
    .await;
    c.expect_stream_error("invalid-from").await;
}

#[tokio::test(start_paused = true)]
async fn unknown_top_level_element_is_unsupported_stanza_type() {
    let (_h, mut c) = bound().await;
    c.send("<foo/>").await;
    c.expect_stream_error("unsupported-stanza-type").await;
}

#[tokio::test(start_paused = true)]
async fn element_in_a_foreign_namespace_is_unsupported_stanza_type() {
    let (_h, mut c) = bound().await;
    c.send("<message xmlns='urn:example:other'/>").await;
    c.expect_stream_error("unsupported-stanza-type").await;
}

#[tokio::test(start_paused = true)]
async fn iq_without_id_is_bad_request() {
    let (mut h, mut c) = bound().await;
    c.send("<iq type='get' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let reply = c.expect_element().await;
    assert!(reply.is("iq", ns::CLIENT), "{reply:?}");
    assert_eq!(reply.attr("id"), None);
    assert_stanza_error(&reply, "modify", "bad-request");
    // Not routed, and the stream goes on.
    c.send("<iq type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>")
        .await;
    let (_, stanza) = h.stanza().await;
    let Stanza::Iq(iq) = stanza else {
        panic!("{stanza:?}")
    };
    assert_eq!(iq.id, "p1");
}

#[tokio::test(start_paused = true)]
async fn invalid_iq_of_type_error_is_not_answered() {
    let (mut h, mut c) = bound().await;
    // No id: invalid, but an error must never be answered with an error (RFC 6120 8.3.1).
    c.send("<iq type='error' to='example.com'/>").await;
    c.send("<presence/>").await;
    let (_, stanza) = h.stanza().await;
    assert!(matches!(stanza, Stanza::Presence(_)), "{stanza:?}");
    assert!(
        c.is_silent_for(Duration::from_secs(1)).await,
        "{}",
        c.transcript()
    );
}

#[tokio::test(start_paused = true)]
async fn orderly_close() {
    let (mut h, mut c) = bound().await;
    c.send("</stream:stream>").await;
    match c.next_event().await {
        Some(StreamEvent::Close) => {}
        other => panic!("expected the server's </stream:stream>, got {other:?}"),
    }
    c.expect_eof().await;
    match h.record().await {
        Record::Unbind(info) => assert_eq!(info.jid.to_string(), format!("alice@{DOMAIN}/home")),
        other => panic!("expected unbind, got {other:?}"),
    }
    assert!(!h.backend.is_bound(&format!("alice@{DOMAIN}/home")));
}

#[tokio::test(start_paused = true)]
async fn client_eof_ends_the_session() {
    let (mut h, c) = bound().await;
    let common::Client { io, .. } = c;
    drop(io);
    match h.record().await {
        Record::Unbind(info) => assert_eq!(info.jid.to_string(), format!("alice@{DOMAIN}/home")),
        other => panic!("expected unbind, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn routed_stanzas_reach_the_client() {
    let (h, mut c) = bound().await;
    let outbox = h.backend.outbox(&format!("alice@{DOMAIN}/home"));
    outbox
        .push(Bytes::from_static(
            b"<message from='bob@example.com/x' to='alice@example.com/home'><body>yo</body></message>",
        ))
        .unwrap();
    let el = c.expect_element().await;
    assert!(el.is("message", ns::CLIENT), "{el:?}");
    assert_eq!(
        el.get_child("body", ns::CLIENT)
            .map(hydrant_proto::Element::text),
        Some("yo".to_owned())
    );
}

// -- Shutdown -------------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn shutdown_sends_system_shutdown() {
    let (mut h, mut c) = bound().await;
    let mut unbound = h.connect(true);
    unbound.open().await;
    h.shutdown.cancel();
    c.expect_stream_error("system-shutdown").await;
    unbound.expect_stream_error("system-shutdown").await;
    assert!(matches!(h.record().await, Record::Unbind(_)));
}

// -- Slow consumers -------------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn slow_consumer_overflows_without_blocking_the_producer() {
    const LIMIT: usize = 8 * 1024;
    const PIPE: usize = 1024;
    let mut cfg = config();
    cfg.outbound_queue_bytes = LIMIT;
    let mut h = Harness::new(cfg);
    h.backend.add_user("alice", "secret");
    let mut c = h.connect_with_pipe(true, PIPE);
    let jid = c.bound_alice("slow").await;
    assert!(matches!(h.record().await, Record::Bind(_)));
    let outbox = h.backend.outbox(&jid);

    let stanza = format!(
        "<message from='bob@{DOMAIN}/x' to='{jid}'><body>{}</body></message>",
        "z".repeat(500)
    );
    let stanza = Bytes::from(stanza);
    // The client reads nothing from here on. Pushes never wait: each returns at once,
    // and once the pipe and the queue are full the push is refused with Overflow.
    let mut pushed = 0usize;
    let err = loop {
        // Let the session task move what it can into the pipe between pushes.
        tokio::task::yield_now().await;
        match outbox.push(stanza.clone()) {
            Ok(()) => pushed += stanza.len(),
            Err(e) => break e.why,
        }
        assert!(
            pushed <= LIMIT + PIPE + 2 * stanza.len(),
            "the queue must refuse past its limit (pushed {pushed})"
        );
    };
    assert_eq!(err, PushError::Overflow);
    assert!(pushed + stanza.len() > LIMIT, "refused early: {pushed}");
    assert_eq!(
        outbox.push(stanza.clone()).unwrap_err().why,
        PushError::Closed
    );

    // When the client finally reads: whatever made it into the pipe, then the error.
    let mut messages = 0;
    loop {
        let el = c.expect_element().await;
        if el.is("message", ns::CLIENT) {
            messages += 1;
            continue;
        }
        common::assert_stream_error(&el, "policy-violation");
        break;
    }
    assert!(
        messages * stanza.len() < pushed,
        "queued stanzas were discarded"
    );
    c.expect_closed().await;
    assert!(matches!(h.record().await, Record::Unbind(_)));
}

#[tokio::test(start_paused = true)]
async fn orderly_close_before_authentication() {
    let mut h = Harness::with_alice();
    let mut c = h.connect(true);
    c.open().await;
    c.send("</stream:stream>").await;
    c.expect_closed().await;
    assert!(h.pending_records().is_empty(), "nothing was bound");
}
