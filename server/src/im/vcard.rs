//! XEP-0054 vcard-temp: the server keeps each account's vCard
//! (`hydrant_storage::VcardStore`) and answers for it. The account's own sessions get
//! and set it (an iq without `to`, or to the account's bare JID); anyone may get it,
//! from this server or another (XEP-0054 4: "The vCard information published to one's
//! Jabber server is world-readable"). A set is bounded by `[vcard] max_bytes`, and when
//! it changes the photo, the XEP-0153 hash in the account's presence follows
//! (`vcard_update.rs`).

use std::fmt::Write as _;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hydrant_proto::{Element, Iq, IqType, StanzaError, StanzaErrorCondition as Cond, ns};
use hydrant_storage::{StorageError, VcardAvatar};
use hydrant_stream::{Frame, StanzaKind};
use sha1::{Digest as _, Sha1};
use tracing::warn;

use crate::router::Router;
use crate::router::origin::Origin;

/// XEP-0153 4.6 (image restrictions): "any whitespace characters ... MUST be ignored";
/// padding is accepted either way, as clients differ.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Router {
    /// A vcard-temp request for local account `target`. `own`: it comes from one of that
    /// account's sessions.
    pub(crate) async fn vcard_iq(&self, origin: Origin<'_>, target: &str, own: bool, iq: Iq) {
        match iq.kind {
            IqType::Get => self.vcard_get(origin, target, own, &iq).await,
            // XEP-0054 2.2: a set on another user's vCard gets "a stanza error, which
            // SHOULD be <forbidden/> or <not-allowed/>".
            IqType::Set if !own => {
                self.iq_error(origin, &iq, StanzaError::new(Cond::Forbidden));
            }
            IqType::Set => self.vcard_set(origin, target, &iq).await,
            IqType::Result | IqType::Error => {}
        }
    }

    async fn vcard_get(&self, origin: Origin<'_>, target: &str, own: bool, iq: &Iq) {
        // Anyone may read any vCard, and a vCard with a photo is tens of KiB: the reply
        // counts against the asker's network like a pubsub items page (`pubsub/reads.rs`),
        // so a loop of gets is slowed down instead of costing the server that much each.
        if let Some(ip) = origin.network() {
            self.reads.wait(ip).await;
        }
        let t = target.to_owned();
        let vcard = match self.db.run(move |s| s.vcard(&t)).await {
            Ok(Some(v)) => v,
            // XEP-0054 2.1: for the user's own, "an IQ-result containing an empty
            // <vCard/> element" is one of the two answers allowed (clients handle it
            // more gracefully than an error).
            Ok(None) if own => Element::new("vCard", ns::VCARD),
            // XEP-0054 2.3: "If no vCard exists or the user does not exist, the server
            // MUST return a stanza error, which SHOULD be <service-unavailable/> or
            // <item-not-found/>": the same one as for an account that does not exist.
            Ok(None) => {
                return self.iq_error(origin, iq, StanzaError::new(Cond::ServiceUnavailable));
            }
            Err(e) => {
                warn!(error = %e, user = target, "vCard read failed");
                return self.iq_error(origin, iq, StanzaError::new(Cond::InternalServerError));
            }
        };
        let reply = iq
            .result(Some(vcard))
            .to_element(ns::CLIENT)
            .to_bytes(ns::CLIENT);
        if let Some(ip) = origin.network() {
            self.reads.charge(ip, reply.len());
        }
        self.reply_frame(origin, Frame::Stanza(StanzaKind::Iq, reply.into()));
    }

    async fn vcard_set(&self, origin: Origin<'_>, user: &str, iq: &Iq) {
        let Some(vcard) = iq.payload.as_ref() else {
            return;
        };
        let xml = vcard.to_bytes("");
        let max = self.cfg.max_vcard_bytes;
        if xml.len() > max {
            return self.iq_error(
                origin,
                iq,
                StanzaError::new(Cond::NotAcceptable)
                    .with_text(format!("a vCard may have at most {max} bytes")),
            );
        }
        let sha1 = photo_sha1(vcard);
        let avatar = sha1.clone().map_or(VcardAvatar::NoPhoto, VcardAvatar::Sha1);
        let u = user.to_owned();
        match self
            .db
            .run(move |s| s.set_vcard(&u, &xml, sha1.as_deref()))
            .await
        {
            Ok(before) => {
                self.reply(origin, &iq.result(None).to_element(ns::CLIENT));
                if before != avatar {
                    self.avatar_changed(user, &avatar).await;
                }
            }
            Err(e) => {
                if !matches!(e, StorageError::NotFound) {
                    warn!(error = %e, user, "vCard write failed");
                }
                self.iq_error(origin, iq, StanzaError::new(Cond::InternalServerError));
            }
        }
    }
}

/// The lower-case hex SHA-1 of the vCard photo's binary data (XEP-0153 3.1: "the SHA1
/// hash of the avatar image data itself (not the base64-encoded version)"); `None` when
/// there is no photo, an empty one (XEP-0153 4.4: "If the BINVAL is empty or missing",
/// there is no image to advertise), only an
/// EXTVAL, or data that is not base64.
pub fn photo_sha1(vcard: &Element) -> Option<String> {
    let binval = vcard
        .get_child("PHOTO", ns::VCARD)?
        .get_child("BINVAL", ns::VCARD)?
        .text();
    let b64: String = binval
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if b64.is_empty() {
        return None;
    }
    let data = BASE64.decode(b64.as_bytes()).ok()?;
    let mut hex = String::with_capacity(40);
    for b in Sha1::digest(&data) {
        let _ = write!(hex, "{b:02x}");
    }
    Some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vcard_with(photo: Option<Element>) -> Element {
        let mut v = Element::new("vCard", ns::VCARD)
            .with_child(Element::new("FN", ns::VCARD).with_text("Juliet"));
        if let Some(p) = photo {
            v.append_child(p);
        }
        v
    }

    fn photo(binval: &str) -> Element {
        Element::new("PHOTO", ns::VCARD)
            .with_child(Element::new("TYPE", ns::VCARD).with_text("image/png"))
            .with_child(Element::new("BINVAL", ns::VCARD).with_text(binval))
    }

    #[test]
    fn hash_of_the_decoded_photo_ignoring_whitespace_and_padding() {
        // SHA-1("abc") (RFC 3174 test vector 1); "abc" is "YWJj" in base64.
        let abc = "a9993e364706816aba3e25717850c26c9cd0d89d";
        assert_eq!(
            photo_sha1(&vcard_with(Some(photo("YWJj")))).as_deref(),
            Some(abc)
        );
        assert_eq!(
            photo_sha1(&vcard_with(Some(photo("\n  YW\r\nJj \n")))).as_deref(),
            Some(abc)
        );
        // "ab" is "YWI=" padded, "YWI" unpadded.
        let ab = photo_sha1(&vcard_with(Some(photo("YWI=")))).unwrap();
        assert_eq!(photo_sha1(&vcard_with(Some(photo("YWI")))), Some(ab));
    }

    #[test]
    fn no_hash_without_usable_photo_data() {
        assert_eq!(photo_sha1(&vcard_with(None)), None);
        assert_eq!(photo_sha1(&vcard_with(Some(photo("  ")))), None);
        assert_eq!(photo_sha1(&vcard_with(Some(photo("not base64!")))), None);
        let extval = Element::new("PHOTO", ns::VCARD)
            .with_child(Element::new("EXTVAL", ns::VCARD).with_text("https://x/a.png"));
        assert_eq!(photo_sha1(&vcard_with(Some(extval))), None);
    }
}
