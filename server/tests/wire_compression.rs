//! XEP-0138 zlib on c2s: negotiated after authentication and before binding (XEP-0170),
//! both directions compressed, pubsub notifications spliced from parts deflated once per
//! publish, decoded here by a stock inflater (flate2) that also checks the final
//! Adler-32; limits and failures as the XEP says.

mod common;

use common::pubsub::{PW, assert_result, publish, users};
use common::{Client, Server, stanza_error};
use hydrant_proto::{Element, ns};

const COMPRESS: &str = "http://jabber.org/protocol/compress";
const FEATURE: &str = "http://jabber.org/features/compress";

async fn compressing_server() -> Server {
    let dir = tempfile::Builder::new()
        .prefix("hydrant-wire-")
        .tempdir()
        .expect("temp dir");
    Server::start_in_with_c2s(dir, "compression = true", "").await
}

/// A ~2 KB Atom entry, like the firehose's photos.
fn atom(n: usize) -> String {
    format!(
        "<entry xmlns='http://www.w3.org/2005/Atom'><title>photo {n}</title>\
         <id>urn:example:photo:{n}</id><updated>2026-12-03T12:00:{:02}Z</updated>\
         <link rel='enclosure' type='image/jpeg' href='https://photos.example/{n}.jpg' length='40000{n}'/>\
         <author><name>photographer</name></author><content type='text'>{}</content></entry>",
        n % 60,
        "a view of the harbour at dusk with boats and gulls, ".repeat(35)
    )
}

fn item_id(e: &Element) -> Option<String> {
    e.get_child("event", ns::PUBSUB_EVENT)?
        .get_child("items", ns::PUBSUB_EVENT)?
        .get_child("item", ns::PUBSUB_EVENT)?
        .attr("id")
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_subscribers_get_every_notification() {
    let s = compressing_server().await;
    users(&s, &["pub", "zed", "zoe", "pat"]);
    let mut publisher = s.online("pub", PW, "p").await;
    let mut zed = s.login_compressed("zed", PW, "z").await;
    let mut zoe = s.login_compressed("zoe", PW, "z").await;
    // One plaintext subscriber beside them: the same notifications, uncompressed.
    let mut pat = s.login("pat", PW, "p").await;
    let res = publisher
        .iq(
            "set",
            Some("pubsub.localhost"),
            &format!(
                "<pubsub xmlns='{}'><create node='photos'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "create");
    for c in [&mut zed, &mut zoe, &mut pat] {
        let jid = c.jid.clone();
        let res = c
            .iq(
                "set",
                Some("pubsub.localhost"),
                &format!(
                    "<pubsub xmlns='{}'><subscribe node='photos' jid='{jid}'/></pubsub>",
                    ns::PUBSUB
                ),
            )
            .await;
        assert_result(&res, "subscribe");
    }
    let (wire0, plain0) = (zed.wire_in, zed.plain_in);
    const N: usize = 30;
    // The first notifications one at a time, to see what each costs on zed's wire: the
    // node's notifications are chained, so from the second on each is deflated against
    // the one before, which every subscriber holds as the same bytes.
    let mut costs = Vec::new();
    for n in 0..N {
        let before = zed.wire_in;
        let id = format!("i{n}");
        publish(&mut publisher, "pubsub.localhost", "photos", &id, &atom(n)).await;
        if n < 4 {
            let m = zed
                .expect("the notification", |e| item_id(e).as_deref() == Some(&id))
                .await;
            zed.put_back(m);
            costs.push(zed.wire_in - before);
        }
    }
    assert!(
        costs[2] * 3 < costs[0] && costs[3] * 3 < costs[0],
        "chained notifications cost {costs:?} bytes on the wire"
    );
    for c in [&mut zed, &mut zoe, &mut pat] {
        let last = format!("i{}", N - 1);
        c.expect("the last notification", |e| {
            item_id(e).as_deref() == Some(&last)
        })
        .await;
        let got: Vec<_> = c
            .take_buffered(|e| item_id(e).is_some())
            .iter()
            .filter_map(item_id)
            .collect();
        let want: Vec<_> = (0..N - 1).map(|n| format!("i{n}")).collect();
        assert_eq!(got, want, "{}", c.jid);
    }
    let (wire, plain) = (zed.wire_in - wire0, zed.plain_in - plain0);
    assert!(
        wire * 10 < plain * 7,
        "compressed notifications took {wire} bytes for {plain}"
    );
    assert_eq!(pat.wire_in, pat.plain_in);

    // The client's direction is compressed too: a message and an iq round trip.
    zed.send(&format!(
        "<message to='{}' type='chat'><body>{}</body></message>",
        zoe.jid,
        "compressed both ways ".repeat(20)
    ))
    .await;
    let m = zoe
        .expect("zed's message", |e| {
            e.name() == "message" && e.attr("type") == Some("chat")
        })
        .await;
    assert!(m.to_string().contains("compressed both ways"), "{m}");
    zed.sync().await;

    // Closing: the server ends its zlib stream (final block, Adler-32), which the stock
    // inflater checks; a bad checksum would fail the read.
    zed.send("</stream:stream>").await;
    zed.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_offered_after_authentication_once() {
    let s = compressing_server().await;
    users(&s, &["amy"]);
    let (mut c, features) = s.connect_tls().await;
    assert!(
        features.get_child("compression", FEATURE).is_none(),
        "not before authentication (XEP-0170): {features}"
    );
    c.auth_plain("amy", PW).await.expect("login");
    let features = c.open_stream().await;
    let offer = features
        .get_child("compression", FEATURE)
        .unwrap_or_else(|| panic!("offered after authentication: {features}"));
    assert!(
        offer.to_string().contains("<method>zlib</method>"),
        "{offer}"
    );

    // An unknown method: <unsupported-method/>, and the stream goes on uncompressed.
    c.send(&format!(
        "<compress xmlns='{COMPRESS}'><method>lzw</method></compress>"
    ))
    .await;
    let f = c.expect("<failure/>", |e| e.is("failure", COMPRESS)).await;
    assert!(f.get_child("unsupported-method", COMPRESS).is_some(), "{f}");

    let features = c.compress().await;
    assert!(
        features.get_child("compression", FEATURE).is_none(),
        "not offered again: {features}"
    );
    // Asking again on the compressed stream: <setup-failed/>.
    c.send(&format!(
        "<compress xmlns='{COMPRESS}'><method>zlib</method></compress>"
    ))
    .await;
    let f = c.expect("<failure/>", |e| e.is("failure", COMPRESS)).await;
    assert!(f.get_child("setup-failed", COMPRESS).is_some(), "{f}");
    c.bind(&features, "r").await;
    c.sync().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_is_off_unless_configured() {
    let s = Server::start().await;
    users(&s, &["amy"]);
    let (mut c, _) = s.connect_tls().await;
    c.auth_plain("amy", PW).await.expect("login");
    let features = c.open_stream().await;
    assert!(
        features.get_child("compression", FEATURE).is_none(),
        "{features}"
    );
    c.send(&format!(
        "<compress xmlns='{COMPRESS}'><method>zlib</method></compress>"
    ))
    .await;
    let f = c.expect("<failure/>", |e| e.is("failure", COMPRESS)).await;
    assert!(f.get_child("setup-failed", COMPRESS).is_some(), "{f}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_bomb_ends_the_stream_not_the_server() {
    let s = compressing_server().await;
    users(&s, &["amy", "bob"]);
    let mut bob: Client = s.online("bob", PW, "b").await;
    let mut amy = s.login_compressed("amy", PW, "a").await;
    // 20 MB of one letter is ~20 KB compressed; the stanza limit (256 KiB) must end the
    // stream long before it is all inflated.
    let body = "a".repeat(20 << 20);
    amy.send(&format!(
        "<message to='bob@localhost'><body>{body}</body></message>"
    ))
    .await;
    let cond = amy.expect_stream_error().await;
    assert_eq!(cond, "policy-violation");
    // Everyone else is served as before.
    bob.sync().await;
    let res = bob
        .iq("get", Some("localhost"), "<ping xmlns='urn:xmpp:ping'/>")
        .await;
    assert!(stanza_error(&res).is_none(), "{res}");
}
