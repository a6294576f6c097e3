//! XEP-0153 vCard-based avatars in presence: the server puts the hash of the account's
//! vCard photo into its clients' available presence, so contacts learn of the avatar
//! (and of a new one) without every client downloading its own vCard at each login.
//!
//! XEP-0153 leaves the hash to clients; the server side is XEP-0398 4 ("services MUST
//! include the hash on behalf of their users in every available presence that does not
//! contain an empty photo element ... Empty x elements ... MUST be overwritten.
//! Presences where the content of the photo element is not empty and not equal to the
//! hash calculated by the service MAY be overwritten"), followed here without the rest
//! of XEP-0398 (no PEP/vCard conversion, so its feature is not advertised):
//!
//! - a presence whose `<x xmlns='vcard-temp:x:update'/>` has a `<photo/>`, empty or not,
//!   is the client's statement and left as it is;
//! - otherwise (no update element, or one without `<photo/>`), once the account has a
//!   vCard, the server writes `<x><photo>SHA1</photo></x>`, or `<photo/>` for a vCard
//!   without a photo (XEP-0153 4.1: "If there is no avatar image to be advertised, the
//!   photo element MUST be empty"); an account that never stored a vCard is left alone.
//!
//! The same goes for directed available presence (XEP-0398 4: "The hash MUST also be
//! injected into directed presences such as MUC joins"). When a vCard set changes the
//! photo, each available session whose broadcast presence carries the server's hash
//! broadcasts it again with the new one (as ejabberd does); directed presence is not
//! repeated (XEP-0398 5 leaves that to the client).

use hydrant_proto::{Element, ns};
use hydrant_storage::VcardAvatar;
use tracing::warn;

use crate::router::Router;

impl Router {
    /// Puts the account's avatar hash in an available presence one of its clients sent,
    /// unless the client stated a photo itself. Returns whether the photo is the
    /// server's to keep up to date (the client stated none).
    pub(crate) async fn add_avatar_hash(&self, user: &str, presence: &mut Element) -> bool {
        if states_photo(presence) {
            return false;
        }
        let u = user.to_owned();
        let avatar = match self.db.run(move |s| s.vcard_avatar(&u)).await {
            Ok(a) => a,
            Err(e) => {
                // The presence goes out without a hash rather than not at all.
                warn!(error = %e, user, "vCard avatar lookup failed");
                VcardAvatar::NoVcard
            }
        };
        set_photo(presence, &avatar);
        true
    }

    /// A vCard set changed the account's avatar: every available session whose
    /// broadcast presence carries the server's hash sends it again with the new one.
    pub(crate) async fn avatar_changed(&self, user: &str, avatar: &VcardAvatar) {
        for s in self.sessions.of_user(user) {
            let presence = {
                let mut st = s.state();
                if !st.available || !st.avatar_from_server {
                    continue;
                }
                let Some(last) = st.last.as_deref_mut() else {
                    continue;
                };
                if !set_photo(last, avatar) {
                    continue;
                }
                last.clone()
            };
            self.broadcast_presence(&s, presence).await;
        }
    }
}

/// Whether the presence carries the client's own `<photo/>` (empty or not).
fn states_photo(presence: &Element) -> bool {
    presence
        .get_child("x", ns::VCARD_UPDATE)
        .is_some_and(|x| x.get_child("photo", ns::VCARD_UPDATE).is_some())
}

/// Replaces any update element with the server's; false (presence untouched) when the
/// account has no vCard.
fn set_photo(presence: &mut Element, avatar: &VcardAvatar) -> bool {
    let photo = Element::new("photo", ns::VCARD_UPDATE);
    let photo = match avatar {
        VcardAvatar::NoVcard => return false,
        VcardAvatar::NoPhoto => photo,
        VcardAvatar::Sha1(h) => photo.with_text(h.as_str()),
    };
    while presence.remove_child("x", ns::VCARD_UPDATE).is_some() {}
    presence.append_child(Element::new("x", ns::VCARD_UPDATE).with_child(photo));
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(photo: Option<&str>) -> Element {
        let mut x = Element::new("x", ns::VCARD_UPDATE);
        if let Some(p) = photo {
            x.append_child(Element::new("photo", ns::VCARD_UPDATE).with_text(p));
        }
        x
    }

    fn photo_of(p: &Element) -> Vec<Option<String>> {
        p.children()
            .filter(|c| c.is("x", ns::VCARD_UPDATE))
            .map(|x| x.get_child("photo", ns::VCARD_UPDATE).map(Element::text))
            .collect()
    }

    #[test]
    fn a_photo_the_client_states_is_its_own() {
        for stated in ["", "abc"] {
            let p = Element::new("presence", ns::CLIENT).with_child(update(Some(stated)));
            assert!(states_photo(&p));
        }
        assert!(!states_photo(&Element::new("presence", ns::CLIENT)));
        // XEP-0153 4.1: an empty update element only says "not ready".
        let not_ready = Element::new("presence", ns::CLIENT).with_child(update(None));
        assert!(!states_photo(&not_ready));
    }

    #[test]
    fn the_server_hash_replaces_an_update_element_without_photo() {
        let mut p = Element::new("presence", ns::CLIENT)
            .with_child(Element::new("show", ns::CLIENT).with_text("away"))
            .with_child(update(None));
        assert!(set_photo(&mut p, &VcardAvatar::Sha1("f00".into())));
        assert_eq!(photo_of(&p), [Some("f00".to_owned())]);
        assert!(p.get_child("show", ns::CLIENT).is_some());
        // Again, with the next hash: still one update element.
        assert!(set_photo(&mut p, &VcardAvatar::NoPhoto));
        assert_eq!(photo_of(&p), [Some(String::new())]);
    }

    #[test]
    fn no_vcard_leaves_the_presence_alone() {
        let mut p = Element::new("presence", ns::CLIENT).with_child(update(None));
        let before = p.clone();
        assert!(!set_photo(&mut p, &VcardAvatar::NoVcard));
        assert_eq!(p, before);
    }
}
