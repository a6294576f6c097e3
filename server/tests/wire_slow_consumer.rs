//! The slow-consumer policy over the wire (DESIGN.md "The hot path", README "Slow
//! consumers"): one subscriber of a firehose node stops reading while 1,000 others keep
//! reading. The 1,000 get every item in order, the publisher is never held up, the
//! stalled one is cut off with `<policy-violation/>` once its outbound queue passes
//! `outbound_queue_bytes`, and it catches up from the node's items (RSM) with no gap.
//!
//! Plaintext streams (`require_tls = false`) keep 1,001 clients cheap; the 1,000 readers
//! scan their raw byte streams for `<item id='…'>` with the C library's memchr instead of
//! parsing XML, which a debug build could not do for gigabytes in time.

mod common;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use common::{DOMAIN, Server, TIMEOUT, is_reply, new_id};
use hydrant_proto::scram::StoredCredentials;
use hydrant_proto::{Element, ns};
use hydrant_storage::{AccountStore as _, SqliteStore};
use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, SharedString, Unit};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

/// Subscribers that keep reading.
const READERS: usize = 1000;
/// How many items are published is found at run time: the stalled subscriber's path
/// holds its 64 KiB outbound queue plus the kernel's socket buffers, which on Linux
/// loopback auto-tune to megabytes even with a 4 KiB SO_RCVBUF on the client (the
/// server's send buffer grows towards `tcp_wmem` max). So the publisher goes on until
/// the server has refused a notification for the stalled subscriber (its queue passed
/// the limit), then publishes `AFTER_OVERFLOW` more, which the stalled subscriber can
/// only get by catching up. At least `MIN_ITEMS`, at most `MAX_ITEMS`.
const MIN_ITEMS: usize = 500;
const AFTER_OVERFLOW: usize = 500;
const MAX_ITEMS: usize = 20_000;
/// Payload text per item (bytes); each notification is ~2.2 KB on the wire.
const PAYLOAD: usize = 2000;
/// The publisher stays at most this many items ahead of the slowest reader, so that the
/// 1,000 readers (test tasks sharing two cores with the server) are never slow
/// consumers themselves: 32 notifications are ~70 KB, well inside what their kernel
/// buffers and 64 KiB queues hold. The stalled subscriber takes no part in this.
const WINDOW: usize = 256;
/// Publishes in flight (the publisher pipelines its iqs).
const IN_FLIGHT: usize = 8;
/// Logins running at once.
const LOGIN_CONCURRENCY: usize = 64;
const QUEUE_BYTES: usize = 65_536;
/// SO_RCVBUF of the stalled client (the kernel doubles it and enforces a minimum).
const STALLED_RCVBUF: u32 = 4096;
/// SCRAM iterations of the test accounts: the `sasl` client runs PBKDF2 unoptimised in a
/// debug build, and 1,001 logins at 4,096 iterations would take minutes.
const ITERATIONS: u32 = 16;
const PASSWORD: &str = "firehose-password";
const NODE: &str = "firehose";
const STALLED: &str = "stalled";
const MAM: &str = "urn:xmpp:mam:2";

fn service() -> String {
    format!("pubsub.{DOMAIN}")
}

fn reader_name(i: usize) -> String {
    format!("r{i:04}")
}

fn item_id(i: usize) -> String {
    format!("i{i:05}")
}

fn item_index(id: &[u8]) -> Option<usize> {
    let digits = id.strip_prefix(b"i")?;
    if digits.len() != 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

// --- Server metrics, read through an in-process recorder -------------------------------

/// The counters this test watches (the server's `metrics` calls land here).
struct Watched {
    /// `hydrant_c2s_slow_consumer_disconnects_total`.
    slow: watch::Sender<u64>,
    /// `hydrant_pubsub_notifications_refused_total`.
    refused: AtomicU64,
    /// `hydrant_pubsub_notifications_queued_total`.
    queued: AtomicU64,
}

fn watched() -> &'static Watched {
    static W: OnceLock<Watched> = OnceLock::new();
    W.get_or_init(|| Watched {
        slow: watch::channel(0).0,
        refused: AtomicU64::new(0),
        queued: AtomicU64::new(0),
    })
}

#[derive(Clone, Copy)]
enum Which {
    Slow,
    Refused,
    Queued,
}

struct Count(Which);

impl CounterFn for Count {
    fn increment(&self, value: u64) {
        let w = watched();
        match self.0 {
            Which::Slow => w.slow.send_modify(|v| *v += value),
            Which::Refused => {
                w.refused.fetch_add(value, Ordering::Relaxed);
            }
            Which::Queued => {
                w.queued.fetch_add(value, Ordering::Relaxed);
            }
        }
    }

    fn absolute(&self, value: u64) {
        let w = watched();
        match self.0 {
            Which::Slow => w.slow.send_modify(|v| *v = value),
            Which::Refused => w.refused.store(value, Ordering::Relaxed),
            Which::Queued => w.queued.store(value, Ordering::Relaxed),
        }
    }
}

struct Recorder;

impl metrics::Recorder for Recorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let which = match key.name() {
            "hydrant_c2s_slow_consumer_disconnects_total" => Which::Slow,
            "hydrant_pubsub_notifications_refused_total" => Which::Refused,
            "hydrant_pubsub_notifications_queued_total" => Which::Queued,
            _ => return Counter::noop(),
        };
        Counter::from_arc(Arc::new(Count(which)))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

// --- The readers: raw byte streams scanned for item ids ---------------------------------

/// What the readers achieved together.
#[derive(Debug, Clone, Default)]
struct Delivered {
    /// Items 0..prefix reached every reader (each reader sees them in order, so an item
    /// that reached all of them implies all earlier ones did).
    prefix: usize,
    failed: Option<String>,
}

struct Progress {
    per_item: Vec<AtomicU32>,
    state: watch::Sender<Delivered>,
    /// How many items there are, once the publisher is done (`usize::MAX` before).
    total: watch::Sender<usize>,
}

impl Progress {
    fn got(&self, i: usize) {
        if self.per_item[i].fetch_add(1, Ordering::AcqRel) + 1 == READERS as u32 {
            self.state.send_modify(|d| d.prefix = d.prefix.max(i + 1));
        }
    }

    fn fail(&self, why: String) {
        self.state.send_modify(|d| {
            d.failed.get_or_insert(why);
        });
    }
}

/// The index of the first `b` in `h`, found with the C library's memchr (std's
/// `BufRead::skip_until` uses it); a byte loop would crawl in a debug build.
fn find(h: &[u8], b: u8) -> Option<usize> {
    let mut r = h;
    let n = std::io::BufRead::skip_until(&mut r, b).expect("reading a slice cannot fail");
    (n > 0 && h[n - 1] == b).then(|| n - 1)
}

/// Scans `data` for tags; calls `item` with the id of every `<item id='…'>`. Returns how
/// many bytes were fully consumed (an incomplete tag at the end is kept for later).
fn scan(data: &[u8], mut item: impl FnMut(&[u8]) -> Result<(), String>) -> Result<usize, String> {
    const ITEM: &[u8] = b"<item ";
    const ENDS: [&[u8]; 2] = [b"<stream:error", b"</stream:stream"];
    let mut pos = 0;
    loop {
        let Some(lt) = find(&data[pos..], b'<') else {
            return Ok(data.len());
        };
        let start = pos + lt;
        let rest = &data[start..];
        if rest.len() < 16 {
            return Ok(start);
        }
        if ENDS.iter().any(|e| rest.starts_with(e)) {
            let end = rest.len().min(400);
            return Err(format!(
                "the stream ended: {}",
                String::from_utf8_lossy(&rest[..end])
            ));
        }
        if rest.starts_with(ITEM) {
            let Some(gt) = find(rest, b'>') else {
                return Ok(start);
            };
            let tag = &rest[..gt];
            let at = tag
                .windows(4)
                .position(|w| w == b"id='" || w == b"id=\"")
                .ok_or_else(|| format!("item without id: {}", String::from_utf8_lossy(tag)))?;
            let quote = tag[at + 3];
            let value = &tag[at + 4..];
            let close = value
                .iter()
                .position(|&c| c == quote)
                .ok_or_else(|| format!("bad item tag: {}", String::from_utf8_lossy(tag)))?;
            item(&value[..close])?;
            pos = start + gt + 1;
        } else {
            pos = start + 1;
        }
    }
}

/// Reads until every item arrived, checking order and duplicates; returns the socket
/// (kept open to the end) and the bytes read.
async fn read_all(mut tcp: TcpStream, progress: Arc<Progress>) -> Result<(TcpStream, u64), String> {
    let mut data: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut next = 0usize;
    let mut bytes = 0u64;
    let mut total = progress.total.subscribe();
    while next < *total.borrow_and_update() {
        data.reserve(1 << 16);
        let read = tokio::select! {
            r = tokio::time::timeout(TIMEOUT, tcp.read_buf(&mut data)) => r,
            // Publishing is over: maybe this reader has everything already.
            _ = total.changed() => continue,
        };
        let n = match read {
            Err(_) => return Err(format!("no data within {TIMEOUT:?} after {next} items")),
            Ok(Err(e)) => return Err(format!("read error after {next} items: {e}")),
            Ok(Ok(0)) => return Err(format!("connection closed after {next} items")),
            Ok(Ok(n)) => n,
        };
        bytes += n as u64;
        let consumed = scan(&data, |id| {
            let i = item_index(id)
                .filter(|&i| i < MAX_ITEMS)
                .ok_or_else(|| format!("unexpected item id {}", String::from_utf8_lossy(id)))?;
            if i != next {
                return Err(format!(
                    "item {i} arrived when {next} was due (gap, duplicate or reordering)"
                ));
            }
            progress.got(i);
            next += 1;
            Ok(())
        })
        .map_err(|e| format!("after {next} items: {e}"))?;
        data.drain(..consumed);
    }
    Ok((tcp, bytes))
}

// --- Helpers ------------------------------------------------------------------------------

fn data_form(form_type: &str, fields: &[(&str, &str)]) -> String {
    let mut x = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>{form_type}</value></field>"
    );
    for (var, value) in fields {
        let _ = write!(x, "<field var='{var}'><value>{value}</value></field>");
    }
    x.push_str("</x>");
    x
}

fn assert_result(res: &Element, what: &str) {
    assert_eq!(res.attr("type"), Some("result"), "{what}: {res}");
}

/// Ids of the `<item/>`s of an items-retrieval result, in reply order.
fn reply_item_ids(res: &Element) -> Vec<String> {
    res.get_child("pubsub", ns::PUBSUB)
        .and_then(|p| p.get_child("items", ns::PUBSUB))
        .map(|items| {
            items
                .children()
                .filter(|c| c.is("item", ns::PUBSUB))
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The item ids of the notifications among `stanzas`, in order.
fn notified_ids(stanzas: &[Element]) -> Vec<String> {
    stanzas
        .iter()
        .filter_map(|m| m.get_child("event", ns::PUBSUB_EVENT))
        .filter_map(|e| e.get_child("items", ns::PUBSUB_EVENT))
        .flat_map(|items| {
            items
                .children()
                .filter(|c| c.is("item", ns::PUBSUB_EVENT))
                .filter_map(|c| c.attr("id").map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_subscriber_is_cut_off_and_catches_up_while_1000_others_receive_everything() {
    let t0 = Instant::now();
    metrics::set_global_recorder(Recorder).expect("the only recorder of this test binary");

    // Accounts straight into the store, before the server starts.
    let dir = tempfile::Builder::new()
        .prefix("hydrant-wire-slow-")
        .tempdir()
        .expect("temp dir");
    let db = dir.path().join("hydrant.sqlite3");
    let mut users: Vec<String> = (0..READERS).map(reader_name).collect();
    users.push(STALLED.to_owned());
    users.push("publisher".to_owned());
    {
        let (db, users) = (db.clone(), users.clone());
        tokio::task::spawn_blocking(move || {
            let store = SqliteStore::open(&db).expect("store");
            let creds = StoredCredentials::from_password(PASSWORD, ITERATIONS);
            for u in &users {
                store.create_account(u, &creds).expect("create account");
            }
        })
        .await
        .expect("account creation");
    }
    let t_accounts = t0.elapsed();

    let server = Server::start_in_with_c2s(
        dir,
        &format!(
            "require_tls = false\noutbound_queue_bytes = {QUEUE_BYTES}\nmax_connections = 5000"
        ),
        "",
    )
    .await;

    // The node, with room for every item, and the 1,001 subscriptions in one owner iq.
    let mut publisher = server
        .login_plaintext("publisher", PASSWORD, "pub", None)
        .await;
    let form = data_form(
        "http://jabber.org/protocol/pubsub#node_config",
        &[("pubsub#max_items", "max")],
    );
    let res = publisher
        .iq(
            "set",
            Some(&service()),
            &format!(
                "<pubsub xmlns='{}'><create node='{NODE}'/><configure>{form}</configure></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "create");
    let mut subs = String::new();
    for u in users.iter().filter(|u| *u != "publisher") {
        let _ = write!(
            subs,
            "<subscription jid='{u}@{DOMAIN}' subscription='subscribed'/>"
        );
    }
    let res = publisher
        .iq(
            "set",
            Some(&service()),
            &format!(
                "<pubsub xmlns='{}'><subscriptions node='{NODE}'>{subs}</subscriptions></pubsub>",
                ns::PUBSUB_OWNER
            ),
        )
        .await;
    assert_result(&res, "owner subscribes the 1,001 subscribers");

    // Everyone logs in and becomes available (bare-JID subscriptions deliver to
    // available resources).
    let gate = Arc::new(Semaphore::new(LOGIN_CONCURRENCY));
    let mut logins = JoinSet::new();
    let server = Arc::new(server);
    for i in 0..READERS {
        let (gate, server) = (gate.clone(), server.clone());
        logins.spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let mut c = server
                .login_plaintext(&reader_name(i), PASSWORD, "feed", None)
                .await;
            c.send_presence("").await;
            (i, c.into_tcp())
        });
    }
    let mut stalled = server
        .login_plaintext(STALLED, PASSWORD, "feed", Some(STALLED_RCVBUF))
        .await;
    stalled.send_presence("").await;
    let mut sockets: Vec<Option<TcpStream>> = (0..READERS).map(|_| None).collect();
    while let Some(r) = logins.join_next().await {
        let (i, tcp) = r.expect("login task");
        sockets[i] = Some(tcp);
    }
    let t_logins = t0.elapsed();

    // From here on the stalled client reads nothing (its socket stays open).
    let progress = Arc::new(Progress {
        per_item: (0..MAX_ITEMS).map(|_| AtomicU32::new(0)).collect(),
        state: watch::channel(Delivered::default()).0,
        total: watch::channel(usize::MAX).0,
    });
    let mut readers = JoinSet::new();
    for tcp in sockets.into_iter().map(|s| s.expect("logged in")) {
        let progress = progress.clone();
        readers.spawn(async move {
            let r = read_all(tcp, progress.clone()).await;
            if let Err(e) = &r {
                progress.fail(e.clone());
            }
            r
        });
    }

    // The publisher: every publish acknowledged, paced only by the 1,000 readers.
    let payload = "x".repeat(PAYLOAD);
    let mut delivered = progress.state.subscribe();
    let (done_tx, mut done_rx) = watch::channel(false);
    let progress_p = progress.clone();
    let publishing = tokio::spawn(async move {
        let mut pending = std::collections::VecDeque::new();
        let mut results = 0usize;
        let mut overflow_at = None;
        let mut i = 0;
        loop {
            if overflow_at.is_none() && watched().refused.load(Ordering::Relaxed) > 0 {
                overflow_at = Some(i);
            }
            let enough = overflow_at.is_some_and(|at| i >= (at + AFTER_OVERFLOW).max(MIN_ITEMS));
            if enough || i == MAX_ITEMS {
                break;
            }
            let need = i.saturating_sub(WINDOW);
            let d = tokio::time::timeout(
                TIMEOUT,
                delivered.wait_for(|d| d.failed.is_some() || d.prefix >= need),
            )
            .await
            .unwrap_or_else(|_| panic!("readers made no progress: item {i} waits for {need}"))
            .expect("progress channel")
            .clone();
            if let Some(why) = d.failed {
                panic!("a reader failed: {why}");
            }
            let id = new_id();
            publisher
                .send(&format!(
                    "<iq type='set' id='{id}' to='{}'><pubsub xmlns='{}'><publish node='{NODE}'>\
                     <item id='{}'><blob xmlns='urn:example:firehose'>{payload}</blob></item>\
                     </publish></pubsub></iq>",
                    service(),
                    ns::PUBSUB,
                    item_id(i)
                ))
                .await;
            pending.push_back(id);
            i += 1;
            while pending.len() >= IN_FLIGHT {
                let id = pending.pop_front().expect("non-empty");
                let res = publisher.expect("publish result", is_reply(&id)).await;
                assert_result(&res, "publish");
                results += 1;
            }
        }
        for id in pending {
            let res = publisher.expect("publish result", is_reply(&id)).await;
            assert_result(&res, "publish");
            results += 1;
        }
        progress_p.total.send_replace(i);
        let _ = done_tx.send(true);
        (publisher, results, i, overflow_at)
    });

    // The stalled client starts reading once the server reports the overflow (the
    // policy then gives the closing stream a few seconds to deliver its error), or once
    // publishing is over (the overflow is noticed when its writer gets to run again).
    let mut slow = watched().slow.subscribe();
    tokio::select! {
        r = slow.wait_for(|n| *n > 0) => { r.expect("metrics channel"); }
        r = done_rx.wait_for(|d| *d) => { r.expect("done channel"); }
    }
    let overflow_seen_while_publishing = *watched().slow.borrow() > 0;
    let condition = stalled.expect_stream_error().await;
    stalled.expect_closed().await;
    assert!(stalled.closed);
    let live = notified_ids(&stalled.take_buffered(|_| true));
    let t_stalled = t0.elapsed();

    let (mut publisher, results, items, overflow_at) = publishing.await.expect("publisher");
    let overflow_at = overflow_at.unwrap_or_else(|| {
        panic!("{items} items of {PAYLOAD} B never overflowed the stalled subscriber's queue")
    });
    let t_published = t0.elapsed();
    let mut reader_bytes = 0u64;
    let mut kept = Vec::new();
    while let Some(r) = readers.join_next().await {
        match r.expect("reader task") {
            Ok((tcp, bytes)) => {
                reader_bytes += bytes;
                kept.push(tcp);
            }
            Err(e) => panic!("a reader did not get every item in order: {e}"),
        }
    }
    let t_readers = t0.elapsed();

    // (a) every reader got all items in order without duplicates (checked by each), and
    // (b) the publisher got every result.
    assert_eq!(kept.len(), READERS);
    assert_eq!(progress.state.borrow().prefix, items);
    assert_eq!(results, items, "every publish acknowledged");

    // (c) the documented policy: the items that fit, then <policy-violation/>, then the
    // close; what arrived live is exactly a prefix of the node, in order.
    assert_eq!(condition, "policy-violation");
    assert!(
        !live.is_empty() && live.len() + AFTER_OVERFLOW <= items,
        "the stalled client got {} items live",
        live.len()
    );
    let expected_prefix: Vec<String> = (0..live.len()).map(item_id).collect();
    assert_eq!(
        live, expected_prefix,
        "live items: a gap-free prefix in order"
    );
    assert_eq!(*watched().slow.borrow(), 1, "one slow-consumer disconnect");

    // (d) it reconnects and catches up from the last item it saw: MAM on the node
    // (XEP-0313/XEP-0442, after-id, then RSM <after/>), and for comparison items
    // retrieval paged with RSM (<before/> walks towards newer items, each page newest
    // first). Pages of 16 items (~35 KB) fit its 64 KiB queue.
    let mut back = server
        .login_plaintext(STALLED, PASSWORD, "feed", None)
        .await;
    let last_seen = live.last().expect("non-empty").clone();
    let mut fetched: Vec<String> = Vec::new();
    let mut mam_pages = 0;
    loop {
        let rsm = fetched
            .last()
            .map(|l| format!("<after>{l}</after>"))
            .unwrap_or_default();
        let res = back
            .iq(
                "set",
                Some(&service()),
                &format!(
                    "<query xmlns='{MAM}' queryid='up' node='{NODE}'>{}\
                     <set xmlns='{}'><max>16</max>{rsm}</set></query>",
                    data_form(MAM, &[("after-id", &last_seen)]),
                    ns::RSM
                ),
            )
            .await;
        assert_result(&res, "MAM catch-up page");
        let msgs = back.take_buffered(|e| e.name() == "message");
        mam_pages += 1;
        for m in &msgs {
            let r = m
                .get_child("result", MAM)
                .unwrap_or_else(|| panic!("not a MAM result: {m}"));
            assert_eq!(r.attr("queryid"), Some("up"), "{m}");
            let inner = r
                .get_child("forwarded", ns::FORWARD)
                .and_then(|f| f.get_child("message", ns::CLIENT))
                .unwrap_or_else(|| panic!("no forwarded message: {m}"));
            let ids = notified_ids(std::slice::from_ref(inner));
            assert_eq!(ids.len(), 1, "{m}");
            assert_eq!(
                r.attr("id"),
                Some(ids[0].as_str()),
                "archive id = item id: {m}"
            );
            fetched.extend(ids);
        }
        let fin = res
            .get_child("fin", MAM)
            .unwrap_or_else(|| panic!("no <fin/>: {res}"));
        if fin.attr("complete") == Some("true") {
            break;
        }
        assert!(!msgs.is_empty(), "an incomplete page brings items: {res}");
    }
    let mut union = live.clone();
    union.extend(fetched.iter().cloned());
    let all: Vec<String> = (0..items).map(item_id).collect();
    assert_eq!(
        union, all,
        "live + MAM catch-up = every item, once, in order"
    );

    let mut by_rsm: Vec<String> = Vec::new();
    let mut cursor = last_seen.clone();
    let mut rsm_pages = 0;
    loop {
        let res = back
            .iq(
                "get",
                Some(&service()),
                &format!(
                    "<pubsub xmlns='{}'><items node='{NODE}'/><set xmlns='{}'><max>16</max>\
                     <before>{cursor}</before></set></pubsub>",
                    ns::PUBSUB,
                    ns::RSM
                ),
            )
            .await;
        assert_result(&res, "items catch-up page");
        let mut page = reply_item_ids(&res);
        if page.is_empty() {
            break;
        }
        rsm_pages += 1;
        page.reverse();
        cursor = page.last().expect("non-empty").clone();
        by_rsm.extend(page);
    }
    assert_eq!(
        by_rsm, fetched,
        "items retrieval with RSM finds the same missed items"
    );

    let w = watched();
    eprintln!(
        "slow consumer: {READERS} readers x {items} items of {PAYLOAD} B (first refusal \
         seen before publishing item {overflow_at}); readers read {:.2} GB; stalled got {} live then <{condition}/> (overflow reported while \
         publishing: {overflow_seen_while_publishing}), fetched {} (MAM: {mam_pages} pages; items+RSM: {rsm_pages} pages); \
         fan-out queued {} refused {}; times: accounts {:.1?}, logins {:.1?}, stalled \
         done {:.1?}, published {:.1?}, readers done {:.1?}, total {:.1?}",
        reader_bytes as f64 / 1e9,
        live.len(),
        fetched.len(),
        w.queued.load(Ordering::Relaxed),
        w.refused.load(Ordering::Relaxed),
        t_accounts,
        t_logins,
        t_stalled,
        t_published,
        t_readers,
        t0.elapsed(),
    );
    publisher.sync().await;
    back.sync().await;
    drop(kept);
}
