//! Wire tests: XEP-0084 user avatars on PEP (issue 11 item 4). A client publishes the
//! image to `urn:xmpp:avatar:data` (item id = SHA-1 of the image) and then its metadata
//! to `urn:xmpp:avatar:metadata`; a contact that asked for the metadata with `+notify`
//! is told, fetches the data by item id, and is not sent the data itself. A typical
//! avatar (48 KiB of image, 64 KiB of base64) fits the default payload limit; both nodes
//! have the PEP default access model (`presence`, as XEP-0398 6 describes XEP-0084's),
//! so someone without a presence subscription can read neither.

mod common;

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::caps::{announce_caps, answer_caps_query, caps_ver};
use common::pubsub::{PW, assert_result, users};
use common::{Client, DOMAIN, Server, befriend, stanza_error};
use hydrant_proto::{Element, ns};
use sha1::{Digest as _, Sha1};

const DATA: &str = "urn:xmpp:avatar:data";
const METADATA: &str = "urn:xmpp:avatar:metadata";

fn sha1_hex(data: &[u8]) -> String {
    let mut hex = String::new();
    for b in Sha1::digest(data) {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// 48 KiB that do not compress into anything smaller (a PNG is deflated already).
fn image(seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..48 * 1024)
        .map(|_| {
            // xorshift32
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

async fn publish(c: &mut Client, node: &str, id: &str, payload: &str) {
    let res = c
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><publish node='{node}'><item id='{id}'>{payload}</item>\
                 </publish></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, &format!("publish to {node}"));
}

/// XEP-0084 3.1 and 3.2: data first, then metadata.
async fn publish_avatar(c: &mut Client, png: &[u8]) -> String {
    let id = sha1_hex(png);
    publish(
        c,
        DATA,
        &id,
        &format!("<data xmlns='{DATA}'>{}</data>", B64.encode(png)),
    )
    .await;
    publish(
        c,
        METADATA,
        &id,
        &format!(
            "<metadata xmlns='{METADATA}'><info bytes='{}' id='{id}' height='64' width='64' \
             type='image/png'/></metadata>",
            png.len()
        ),
    )
    .await;
    id
}

/// A PEP event from `from` for `node` carrying item `id`.
fn event(from: &str, node: &str, id: &str) -> impl Fn(&Element) -> bool + use<> {
    let (from, node, id) = (from.to_owned(), node.to_owned(), id.to_owned());
    move |e: &Element| {
        e.name() == "message"
            && e.attr("from") == Some(from.as_str())
            && e.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
                .is_some_and(|i| {
                    i.attr("node") == Some(node.as_str())
                        && i.children()
                            .any(|c| c.name() == "item" && c.attr("id") == Some(id.as_str()))
                })
    }
}

fn any_event(node: &str) -> impl Fn(&Element) -> bool + use<> {
    let node = node.to_owned();
    move |e: &Element| {
        e.name() == "message"
            && e.get_child("event", ns::PUBSUB_EVENT)
                .and_then(|ev| ev.get_child("items", ns::PUBSUB_EVENT))
                .is_some_and(|i| i.attr("node") == Some(node.as_str()))
    }
}

/// A session that asks for `nodes` with +notify (XEP-0115 caps, verified; a feature of
/// its own so the server asks rather than finding the `ver` cached).
async fn wants(c: &mut Client, nodes: &[&str]) {
    let mut features = vec![
        "http://jabber.org/protocol/caps".to_owned(),
        ns::DISCO_INFO.to_owned(),
        format!("urn:test:client:{}", c.jid),
    ];
    features.extend(nodes.iter().map(|n| format!("{n}+notify")));
    let ver = caps_ver(&features);
    announce_caps(c, &ver).await;
    answer_caps_query(c, DOMAIN, &ver, &features).await;
    c.sync().await;
}

/// XEP-0084 3.4: the data item by id; returns the decoded image (`None`: no such item),
/// or the error reply.
async fn fetch_data(c: &mut Client, owner: &str, id: &str) -> Result<Option<Vec<u8>>, Element> {
    let res = c
        .iq(
            "get",
            Some(owner),
            &format!(
                "<pubsub xmlns='{}'><items node='{DATA}'><item id='{id}'/></items></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    if res.attr("type") != Some("result") {
        return Err(res);
    }
    let items: Vec<&Element> = res
        .get_child("pubsub", ns::PUBSUB)
        .and_then(|p| p.get_child("items", ns::PUBSUB))
        .map(|i| i.children().filter(|c| c.is("item", ns::PUBSUB)).collect())
        .unwrap_or_default();
    if items.is_empty() {
        return Ok(None);
    }
    assert_eq!(items.len(), 1, "exactly the item asked for");
    assert_eq!(items[0].attr("id"), Some(id));
    let text = items[0]
        .get_child("data", DATA)
        .expect("a data element")
        .text();
    let b64: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Ok(Some(B64.decode(b64).expect("base64 image data")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_told_of_the_metadata_and_fetches_the_data_by_id() {
    let server = Server::start().await;
    users(&server, &["juliet", "romeo", "nurse"]);
    let mut juliet = server.online("juliet", PW, "balcony").await;
    let mut romeo = server.online("romeo", PW, "orchard").await;
    let mut nurse = server.online("nurse", PW, "kitchen").await;
    befriend(&mut juliet, &mut romeo).await;
    wants(&mut romeo, &[METADATA]).await;
    // The nurse would take both, but is no contact.
    wants(&mut nurse, &[METADATA, DATA]).await;
    let owner = juliet.bare();

    let png = image(1);
    assert_eq!(B64.encode(&png).len(), 65_536, "a 64 KiB base64 payload");
    let id = publish_avatar(&mut juliet, &png).await;

    // XEP-0084 3.3: the contact with metadata+notify is told.
    let m = romeo
        .expect("the metadata notification", event(&owner, METADATA, &id))
        .await;
    let info = m
        .get_child("event", ns::PUBSUB_EVENT)
        .and_then(|e| e.get_child("items", ns::PUBSUB_EVENT))
        .and_then(|i| i.get_child("item", ns::PUBSUB_EVENT))
        .and_then(|i| i.get_child("metadata", METADATA))
        .and_then(|md| md.get_child("info", METADATA))
        .unwrap_or_else(|| panic!("no info: {m}"));
    assert_eq!(info.attr("bytes"), Some("49152"), "{m}");
    // ... and fetches the image by the id it was told (3.4), not sent it unasked.
    let got = fetch_data(&mut romeo, &owner, &id)
        .await
        .expect("a result")
        .expect("the image");
    assert_eq!(sha1_hex(&got), id);
    assert_eq!(got, png);
    juliet.sync().await;
    romeo.sync().await;
    romeo.assert_none("the image data unasked", any_event(DATA));

    // Presence access: no subscription, no avatar, neither notified nor readable.
    nurse.sync().await;
    nurse.assert_none("a metadata notification", any_event(METADATA));
    nurse.assert_none("a data notification", any_event(DATA));
    let err = fetch_data(&mut nurse, &owner, &id)
        .await
        .expect_err("not a contact");
    assert_eq!(
        stanza_error(&err).as_deref(),
        Some("not-authorized"),
        "{err}"
    );
    assert!(
        err.to_string().contains("presence-subscription-required"),
        "{err}"
    );

    // A new avatar: told again; the data node keeps only the current image (the PEP
    // default of one item), so the old id is gone.
    let png2 = image(2);
    let id2 = publish_avatar(&mut juliet, &png2).await;
    romeo
        .expect(
            "the second metadata notification",
            event(&owner, METADATA, &id2),
        )
        .await;
    assert_eq!(
        fetch_data(&mut romeo, &owner, &id2).await.expect("new"),
        Some(png2.clone())
    );
    // (An id that is not there is left out of the reply, XEP-0060 6.5.8 as
    // `pubsub/src/service/items.rs` reads it.)
    let gone = fetch_data(&mut romeo, &owner, &id).await.expect("a result");
    assert_eq!(gone, None, "the old image is replaced");

    // A contact's session that comes later gets the current metadata as soon as its
    // interest is known (XEP-0163 4.3.4, send_last_published_item on_sub_and_presence).
    let mut romeo2 = server.online("romeo", PW, "garden").await;
    wants(&mut romeo2, &[METADATA]).await;
    romeo2
        .expect("the last metadata", event(&owner, METADATA, &id2))
        .await;

    // XEP-0084 3.5: disabling the avatar is an empty metadata item ("SHOULD NOT possess
    // an ItemID"), told like any other.
    let res = juliet
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><publish node='{METADATA}'><item>\
                 <metadata xmlns='{METADATA}'/></item></publish></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "disable the avatar");
    let m = romeo
        .expect("the empty metadata", |e| {
            any_event(METADATA)(e) && !e.to_string().contains("<info")
        })
        .await;
    assert!(m.to_string().contains("metadata"), "{m}");

    // Persisted.
    drop((juliet, romeo, romeo2, nurse));
    let server = server.restart().await;
    let mut romeo = server.login("romeo", PW, "orchard").await;
    assert_eq!(
        fetch_data(&mut romeo, &owner, &id2)
            .await
            .expect("after restart"),
        Some(png2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payload_limit_refuses_a_larger_image() {
    let server = Server::start_with("[pubsub]\nmax_payload_bytes = 32768\n").await;
    users(&server, &["juliet"]);
    let mut juliet = server.login("juliet", PW, "balcony").await;
    let png = image(3);
    let res = juliet
        .iq(
            "set",
            None,
            &format!(
                "<pubsub xmlns='{}'><publish node='{DATA}'><item id='{}'><data xmlns='{DATA}'>{}</data>\
                 </item></publish></pubsub>",
                ns::PUBSUB,
                sha1_hex(&png),
                B64.encode(&png)
            ),
        )
        .await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    assert!(res.to_string().contains("payload-too-big"), "{res}");
}
