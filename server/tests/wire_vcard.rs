//! Wire tests: XEP-0054 vCards and the XEP-0153 avatar hash in presence (issue 11 item
//! 4). The account gets and sets its own vCard, anyone reads it, nobody else writes it;
//! it survives a restart, is bounded by `[vcard] max_bytes` and goes with the account.
//! The server puts the SHA-1 of the vCard photo in the account's available presence
//! (XEP-0398 4 rules: a photo the client states is left alone) and broadcasts it again
//! when a vCard set changes the photo.

mod common;

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::{Client, Server, befriend, is_reply, new_id, presence, stanza_error};
use hydrant_proto::{Element, ns};
use sha1::{Digest as _, Sha1};

const PW: &str = "vcard-test-password";

fn vcard(fn_: &str, photo: Option<&[u8]>) -> String {
    let photo = photo
        .map(|p| {
            format!(
                "<PHOTO><TYPE>image/png</TYPE><BINVAL>{}</BINVAL></PHOTO>",
                B64.encode(p)
            )
        })
        .unwrap_or_default();
    format!("<vCard xmlns='vcard-temp'><FN>{fn_}</FN>{photo}</vCard>")
}

fn sha1_hex(data: &[u8]) -> String {
    let mut hex = String::new();
    for b in Sha1::digest(data) {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// The `<vCard/>` of a successful reply.
#[track_caller]
fn result_vcard(res: &Element) -> &Element {
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    res.get_child("vCard", ns::VCARD)
        .unwrap_or_else(|| panic!("no vCard: {res}"))
}

fn fn_of(v: &Element) -> Option<String> {
    v.get_child("FN", ns::VCARD).map(Element::text)
}

async fn set_vcard(c: &mut Client, card: &str) -> Element {
    c.iq("set", None, card).await
}

async fn get_vcard(c: &mut Client, to: Option<&str>) -> Element {
    c.iq("get", to, "<vCard xmlns='vcard-temp'/>").await
}

#[tokio::test]
async fn own_vcard_is_set_by_the_account_and_read_by_anyone() {
    let server = Server::start().await;
    for u in ["juliet", "romeo", "tybalt"] {
        server.add_user(u, PW);
    }
    let mut juliet = server.login("juliet", PW, "balcony").await;
    let mut romeo = server.login("romeo", PW, "orchard").await;

    // XEP-0054 2.1: no vCard yet is an empty one.
    let res = get_vcard(&mut juliet, None).await;
    assert_eq!(result_vcard(&res).children().count(), 0, "{res}");
    // Others get an error for it, the same as for an account that does not exist (2.3).
    for who in ["juliet@localhost", "nobody@localhost"] {
        let res = get_vcard(&mut romeo, Some(who)).await;
        assert_eq!(
            stanza_error(&res).as_deref(),
            Some("service-unavailable"),
            "{who}: {res}"
        );
    }

    // 2.2: set without 'to', then with the account's bare JID.
    let res = set_vcard(&mut juliet, &vcard("Juliet Capulet", Some(b"png"))).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    assert!(res.children().next().is_none(), "{res}");
    let res = get_vcard(&mut juliet, None).await;
    let v = result_vcard(&res);
    assert_eq!(fn_of(v).as_deref(), Some("Juliet Capulet"), "{res}");
    assert!(
        v.get_child("PHOTO", ns::VCARD)
            .and_then(|p| p.get_child("BINVAL", ns::VCARD))
            .is_some_and(|b| b.text() == B64.encode(b"png")),
        "{res}"
    );
    let res = juliet
        .iq("set", Some("juliet@localhost"), &vcard("Juliet", None))
        .await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    // 2.3: anyone reads it at the bare JID, answered by the server on her behalf.
    let res = get_vcard(&mut romeo, Some("juliet@localhost")).await;
    assert_eq!(res.attr("from"), Some("juliet@localhost"), "{res}");
    assert_eq!(
        fn_of(result_vcard(&res)).as_deref(),
        Some("Juliet"),
        "{res}"
    );
    // Her session was not asked.
    juliet.sync().await;
    juliet.assert_none("the vCard request", |e| {
        e.name() == "iq" && e.attr("type") == Some("get")
    });

    // 2.2: "If a user attempts to perform an IQ set on another user's vCard ... the
    // server MUST return a stanza error, which SHOULD be <forbidden/> or <not-allowed/>".
    let res = romeo
        .iq(
            "set",
            Some("juliet@localhost"),
            &vcard("Romeo was here", None),
        )
        .await;
    assert_eq!(stanza_error(&res).as_deref(), Some("forbidden"), "{res}");
    let res = get_vcard(&mut romeo, Some("juliet@localhost")).await;
    assert_eq!(
        fn_of(result_vcard(&res)).as_deref(),
        Some("Juliet"),
        "{res}"
    );

    // Results addressed to the server are not answered.
    let id = new_id();
    romeo
        .send(&format!(
            "<iq type='result' id='{id}'>{}</iq>",
            vcard("x", None)
        ))
        .await;
    romeo.sync().await;
    romeo.assert_none("a reply to a result", is_reply(&id));

    // Persisted.
    drop((juliet, romeo));
    let server = server.restart().await;
    let mut tybalt = server.login("tybalt", PW, "street").await;
    let res = get_vcard(&mut tybalt, Some("juliet@localhost")).await;
    assert_eq!(
        fn_of(result_vcard(&res)).as_deref(),
        Some("Juliet"),
        "{res}"
    );
}

#[tokio::test]
async fn a_vcard_past_max_bytes_is_refused() {
    let server = Server::start_with("[vcard]\nmax_bytes = 2000\n").await;
    server.add_user("juliet", PW);
    let mut juliet = server.login("juliet", PW, "balcony").await;
    let res = set_vcard(&mut juliet, &vcard("Juliet", Some(&[7u8; 1000]))).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    // 2,000 bytes of photo are 2,668 in base64.
    let res = set_vcard(&mut juliet, &vcard("Juliet", Some(&[7u8; 2000]))).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("not-acceptable"),
        "{res}"
    );
    let res = get_vcard(&mut juliet, None).await;
    let binval = result_vcard(&res)
        .get_child("PHOTO", ns::VCARD)
        .and_then(|p| p.get_child("BINVAL", ns::VCARD))
        .map(Element::text);
    assert_eq!(binval, Some(B64.encode([7u8; 1000])), "unchanged: {res}");
}

#[tokio::test]
async fn goes_with_the_account() {
    let server = Server::start().await;
    server.add_user("juliet", PW);
    server.add_user("romeo", PW);
    let mut juliet = server.login("juliet", PW, "balcony").await;
    let mut romeo = server.login("romeo", PW, "orchard").await;
    let res = set_vcard(&mut juliet, &vcard("Juliet", Some(b"png"))).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");

    let id = new_id();
    juliet
        .send(&format!(
            "<iq type='set' id='{id}'><query xmlns='jabber:iq:register'><remove/></query></iq>"
        ))
        .await;
    let res = juliet.expect("removal result", is_reply(&id)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    juliet.expect_closed().await;

    let res = get_vcard(&mut romeo, Some("juliet@localhost")).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );
    server.add_user("juliet", PW);
    let res = get_vcard(&mut romeo, Some("juliet@localhost")).await;
    assert_eq!(
        stanza_error(&res).as_deref(),
        Some("service-unavailable"),
        "{res}"
    );
    let mut juliet = server.login("juliet", PW, "balcony").await;
    let res = get_vcard(&mut juliet, None).await;
    assert_eq!(result_vcard(&res).children().count(), 0, "{res}");
}

/// The `<photo/>` text of the update element(s) of a presence: `None` for an update
/// element without photo.
fn photos(p: &Element) -> Vec<Option<String>> {
    p.children()
        .filter(|c| c.is("x", ns::VCARD_UPDATE))
        .map(|x| x.get_child("photo", ns::VCARD_UPDATE).map(Element::text))
        .collect()
}

fn with_photo(from: &str, want: &str) -> impl Fn(&Element) -> bool + use<> {
    let is_presence = presence(from, None);
    let want = want.to_owned();
    move |e: &Element| is_presence(e) && photos(e) == [Some(want.clone())]
}

#[tokio::test]
async fn the_photo_hash_goes_into_presence_and_follows_the_vcard() {
    let server = Server::start().await;
    for u in ["juliet", "romeo", "nurse"] {
        server.add_user(u, PW);
    }
    let mut juliet = server.online("juliet", PW, "balcony").await;
    let mut romeo = server.online("romeo", PW, "orchard").await;
    let mut nurse = server.online("nurse", PW, "kitchen").await;
    befriend(&mut juliet, &mut romeo).await;
    let me = juliet.jid.clone();

    // No vCard: presence is left as the client sent it.
    juliet.send_presence("<show>away</show>").await;
    let p = romeo.expect("juliet's presence", presence(&me, None)).await;
    assert!(photos(&p).is_empty(), "{p}");

    // A vCard with a photo: the presence she sent without a hash is broadcast again
    // with one, to her contacts and her own resources.
    let png = b"\x89PNG first avatar";
    let res = set_vcard(&mut juliet, &vcard("Juliet", Some(png))).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    let first = sha1_hex(png);
    let p = romeo
        .expect("presence with the new hash", with_photo(&me, &first))
        .await;
    assert!(
        p.get_child("show", ns::CLIENT).is_some(),
        "the rest kept: {p}"
    );
    juliet
        .expect("her own presence with the hash", with_photo(&me, &first))
        .await;

    // A new presence without update element gets it too; so does one with an empty
    // update element (XEP-0153 4.1 "not ready": XEP-0398 4 says overwrite it).
    for children in ["", "<x xmlns='vcard-temp:x:update'/>"] {
        juliet
            .send(&format!("<presence>{children}</presence>"))
            .await;
        romeo
            .expect("presence with the hash", with_photo(&me, &first))
            .await;
    }
    // A contact logging in later learns it from her last presence.
    let mut romeo2 = server.online("romeo", PW, "garden").await;
    romeo2
        .expect("juliet's current presence", with_photo(&me, &first))
        .await;

    // Directed presence carries it too (a MUC join, say): the nurse is no contact.
    juliet.send("<presence to='nurse@localhost'/>").await;
    nurse
        .expect("directed presence with the hash", with_photo(&me, &first))
        .await;

    // The client states a photo of its own: left alone, and a vCard change does not
    // override it.
    juliet
        .send("<presence><x xmlns='vcard-temp:x:update'><photo>c11e47</photo></x></presence>")
        .await;
    romeo
        .expect("the client's own hash", with_photo(&me, "c11e47"))
        .await;
    let res = set_vcard(&mut juliet, &vcard("Juliet", Some(b"second"))).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    juliet.sync().await;
    romeo.sync().await;
    romeo.assert_none(
        "a presence overriding the client's hash",
        presence(&me, None),
    );
    // An empty photo is the client saying "no avatar": also its own.
    juliet
        .send("<presence><x xmlns='vcard-temp:x:update'><photo/></x></presence>")
        .await;
    romeo
        .expect("the client's empty photo", with_photo(&me, ""))
        .await;

    // Back to the server's hash, which is now the second photo's (RFC 3174 vector: the
    // hash is of the decoded bytes).
    juliet.send("<presence/>").await;
    romeo
        .expect(
            "the second photo's hash",
            with_photo(&me, &sha1_hex(b"second")),
        )
        .await;
    // A vCard without photo: the photo element becomes empty (XEP-0153 4.1).
    let res = set_vcard(&mut juliet, &vcard("Juliet", None)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    romeo.expect("an empty photo", with_photo(&me, "")).await;
    // A vCard set that does not change the photo is not broadcast.
    let res = set_vcard(&mut juliet, &vcard("J. Capulet", None)).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    juliet.sync().await;
    romeo.sync().await;
    romeo.assert_none("a presence for an unchanged photo", presence(&me, None));

    // The hash of a known input, so the algorithm is checked against more than itself.
    let res = set_vcard(&mut juliet, &vcard("Juliet", Some(b"abc"))).await;
    assert_eq!(res.attr("type"), Some("result"), "{res}");
    romeo
        .expect(
            "SHA-1 of 'abc'",
            with_photo(&me, "a9993e364706816aba3e25717850c26c9cd0d89d"),
        )
        .await;
}
