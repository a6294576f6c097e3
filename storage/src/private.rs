//! Private XML storage (XEP-0049): XML an account keeps on the server for itself, one
//! fragment per namespace.

use hydrant_proto::Element;

use crate::Result;

/// What one account may keep, checked by [`PrivateStore::set_private_xml`] in the same
/// transaction as the write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrivateQuota {
    /// Bytes of stored XML, over all namespaces.
    pub max_bytes: usize,
    /// Namespaces stored.
    pub max_namespaces: usize,
}

/// The outcome of a write that did not fail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivateWrite {
    Stored,
    /// Nothing was written: the account would hold more than `max_bytes`.
    OverBytes,
    /// Nothing was written: the account would hold more than `max_namespaces`.
    OverNamespaces,
}

/// XEP-0049 storage. The caller checks and serialises the XML; the store keys it by
/// namespace and hands back what was stored, parsed.
pub trait PrivateStore: Send + Sync {
    /// What is stored under `namespace` (the `<query xmlns='jabber:iq:private'/>` given
    /// to [`PrivateStore::set_private_xml`]), or `None`.
    fn private_xml(&self, username: &str, namespace: &str) -> Result<Option<Element>>;

    /// Stores each `(namespace, xml)` in place of what that namespace held, all or
    /// nothing: not at all when the account would then exceed `quota` (what the
    /// replaced namespaces held does not count). `xml` is a serialised
    /// `<query xmlns='jabber:iq:private'/>` (`Element::to_bytes("")`). `NotFound` if
    /// there is no such account.
    fn set_private_xml(
        &self,
        username: &str,
        items: &[(String, Vec<u8>)],
        quota: PrivateQuota,
    ) -> Result<PrivateWrite>;
}
