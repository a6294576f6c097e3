//! vCards (XEP-0054) and the avatar hash of their photo (XEP-0153).

use hydrant_proto::Element;

use crate::Result;

/// What an account's vCard says about its avatar, for the XEP-0153 hash the server puts
/// in its presence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VcardAvatar {
    /// The account never stored a vCard.
    NoVcard,
    /// A vCard without a photo.
    NoPhoto,
    /// The lower-case hex SHA-1 of the photo's binary data.
    Sha1(String),
}

/// One vCard per account.
pub trait VcardStore: Send + Sync {
    /// The stored `<vCard xmlns='vcard-temp'/>`, or `None`.
    fn vcard(&self, username: &str) -> Result<Option<Element>>;

    /// The avatar of the stored vCard: a short read, for presence broadcasts.
    fn vcard_avatar(&self, username: &str) -> Result<VcardAvatar>;

    /// Stores a vCard (`Element::to_bytes("")` of the `<vCard/>`) and its photo's hash
    /// in place of the previous one; returns the previous one's avatar. `NotFound` if
    /// there is no such account.
    fn set_vcard(
        &self,
        username: &str,
        vcard: &[u8],
        photo_sha1: Option<&str>,
    ) -> Result<VcardAvatar>;
}
