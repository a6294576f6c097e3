//! One account's XEP-0191 blocklist in memory, and XEP-0191 section 6 matching.
//!
//! Loaded when the account's first session binds and kept with its sessions
//! (`router/sessions.rs`) until the last one ends, so the delivery paths ask memory, never
//! the store; an empty list is not kept at all, so an account that blocks nobody costs
//! every delivery one pointer test.

use std::collections::HashSet;
use std::sync::Arc;

use hydrant_proto::Jid;

/// The blocked JIDs of one account, as normalised strings in the form each was blocked
/// in (full JID, bare JID, `domain/resource`, domain).
#[derive(Debug, Clone, Default)]
pub struct Blocklist {
    /// The account's own localpart and domain: its own resources are never blocked
    /// (XEP-0191 5: "An implementation MUST NOT block communications from one of a
    /// user's resources to another"), whatever the list says.
    owner: (String, String),
    items: HashSet<String>,
    /// Whether any item is a `domain/resource`, the one form whose key a JID does not
    /// carry as a substring: only then is that key built.
    domain_resource: bool,
}

impl Blocklist {
    /// The list of account `user@domain` with these items; `None` when there are none
    /// (nothing is kept for an empty list).
    pub fn new(
        user: &str,
        domain: &str,
        items: impl IntoIterator<Item = String>,
    ) -> Option<Arc<Blocklist>> {
        let items: HashSet<String> = items.into_iter().collect();
        if items.is_empty() {
            return None;
        }
        let domain_resource = items.iter().any(|i| is_domain_resource(i));
        Some(Arc::new(Blocklist {
            owner: (user.to_owned(), domain.to_owned()),
            items,
            domain_resource,
        }))
    }

    /// The list of account `user@domain`, `list`, with `add` blocked too and `remove`
    /// unblocked.
    pub fn changed(
        user: &str,
        domain: &str,
        list: Option<&Blocklist>,
        add: &[String],
        remove: &[String],
    ) -> Option<Arc<Blocklist>> {
        let mut items = list.map(|l| l.items.clone()).unwrap_or_default();
        items.extend(add.iter().cloned());
        for r in remove {
            items.remove(r);
        }
        Blocklist::new(user, domain, items)
    }

    /// Whether `jid` is blocked. XEP-0191 6 (consistent with XEP-0016 2.1) is an order of
    /// keys taken from the sender's address: `user@domain/resource` ("only that resource
    /// matches"), `user@domain` ("any resource matches"), `domain/resource`, `domain`
    /// ("the domain itself matches, as does any user@domain or domain/resource"). So a
    /// `domain/resource` item matches that address and, read as the third key, that
    /// resource of any user at the domain (as ejabberd reads it).
    pub fn blocks(&self, jid: &Jid) -> bool {
        let domain = jid.domain().as_str();
        if domain == self.owner.1 && jid.node().is_some_and(|n| n.as_str() == self.owner.0) {
            return false;
        }
        if self.items.contains(domain) || self.items.contains(jid.as_str()) {
            return true;
        }
        if jid.node().is_some()
            && jid.resource().is_some()
            && self.items.contains(jid.to_bare().as_str())
        {
            return true;
        }
        if self.domain_resource
            && jid.node().is_some()
            && let Some(res) = jid.resource()
        {
            return self.items.contains(&format!("{domain}/{}", res.as_str()));
        }
        false
    }

    /// [`Blocklist::blocks`] for an address attribute; an address that does not parse is
    /// not blocked (it cannot be delivered either).
    pub fn blocks_str(&self, jid: &str) -> bool {
        Jid::new(jid).is_ok_and(|j| self.blocks(&j))
    }

    /// Whether any of these items is in the list.
    pub fn contains_any(&self, items: &[String]) -> bool {
        items.iter().any(|i| self.items.contains(i))
    }

    /// The items, sorted bytewise (as the store lists them).
    pub fn sorted(&self) -> Vec<String> {
        let mut v: Vec<String> = self.items.iter().cloned().collect();
        v.sort();
        v
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The keys a sender's address can be blocked under (XEP-0191 6), for asking the store
/// about an account whose list is not in memory.
pub fn match_keys(jid: &Jid) -> Vec<String> {
    let domain = jid.domain().as_str();
    let mut keys = vec![jid.as_str().to_owned(), domain.to_owned()];
    if jid.node().is_some()
        && let Some(res) = jid.resource()
    {
        keys.push(jid.to_bare().to_string());
        keys.push(format!("{domain}/{}", res.as_str()));
    }
    keys.dedup();
    keys
}

/// `domain/resource`: a resource but no localpart.
fn is_domain_resource(item: &str) -> bool {
    match item.split_once('/') {
        Some((head, _)) => !head.contains('@'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Arc<Blocklist> {
        Blocklist::new(
            "juliet",
            "capulet.lit",
            items.iter().map(|s| (*s).to_owned()),
        )
        .unwrap()
    }

    fn j(s: &str) -> Jid {
        Jid::new(s).unwrap()
    }

    #[test]
    fn empty_list_is_not_kept() {
        assert!(Blocklist::new("juliet", "capulet.lit", Vec::new()).is_none());
        let l = list(&["a@x"]);
        assert!(
            Blocklist::changed("juliet", "capulet.lit", Some(&l), &[], &["a@x".into()]).is_none()
        );
    }

    /// XEP-0191 6, each form in turn.
    #[test]
    fn matching_follows_xep_0191_section_6() {
        let full = list(&["romeo@montague.lit/garden"]);
        assert!(full.blocks(&j("romeo@montague.lit/garden")));
        assert!(!full.blocks(&j("romeo@montague.lit/home")));
        assert!(!full.blocks(&j("romeo@montague.lit")));

        let bare = list(&["romeo@montague.lit"]);
        assert!(bare.blocks(&j("romeo@montague.lit")));
        assert!(bare.blocks(&j("romeo@montague.lit/garden")));
        assert!(!bare.blocks(&j("benvolio@montague.lit")));
        assert!(!bare.blocks(&j("montague.lit")));

        let dres = list(&["montague.lit/garden"]);
        assert!(dres.blocks(&j("montague.lit/garden")));
        assert!(!dres.blocks(&j("montague.lit")));
        assert!(dres.blocks(&j("romeo@montague.lit/garden")));
        assert!(!dres.blocks(&j("romeo@montague.lit/home")));

        let domain = list(&["montague.lit"]);
        assert!(domain.blocks(&j("montague.lit")));
        assert!(domain.blocks(&j("montague.lit/garden")));
        assert!(domain.blocks(&j("romeo@montague.lit")));
        assert!(domain.blocks(&j("romeo@montague.lit/garden")));
        assert!(!domain.blocks(&j("pubsub.montague.lit")));
        assert!(!domain.blocks(&j("romeo@capulet.lit")));
    }

    /// XEP-0191 5: the account's own resources are never blocked, even by its domain.
    #[test]
    fn own_resources_are_never_blocked() {
        let l = list(&["capulet.lit", "juliet@capulet.lit"]);
        assert!(!l.blocks(&j("juliet@capulet.lit")));
        assert!(!l.blocks(&j("juliet@capulet.lit/balcony")));
        assert!(l.blocks(&j("nurse@capulet.lit")));
    }

    #[test]
    fn keys_cover_every_form() {
        let keys = match_keys(&j("romeo@montague.lit/garden"));
        for k in [
            "romeo@montague.lit/garden",
            "romeo@montague.lit",
            "montague.lit/garden",
            "montague.lit",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k}: {keys:?}");
        }
        assert_eq!(match_keys(&j("montague.lit")), ["montague.lit"]);
    }

    #[test]
    fn changes() {
        let l = list(&["a@x", "b@x"]);
        let l2 = Blocklist::changed(
            "juliet",
            "capulet.lit",
            Some(&l),
            &["c@x".into()],
            &["a@x".into()],
        )
        .unwrap();
        assert_eq!(l2.sorted(), ["b@x", "c@x"]);
        assert!(l2.contains_any(&["z@x".into(), "c@x".into()]));
        assert_eq!(l2.len(), 2);
    }
}
