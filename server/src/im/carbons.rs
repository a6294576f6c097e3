//! XEP-0280 Message Carbons: every carbons-enabled session of an account sees both sides
//! of the account's conversations.
//!
//! - Enabling and disabling (4, 5): an iq set without `to` (or to the account's bare
//!   JID) from the session itself; repeating either is not an error (10.1). Another
//!   domain gets `<not-allowed/>` (4.1).
//! - Received (7): after a message eligible for carbons is delivered to a local account
//!   by RFC 6121 8.5 (from a local user or another domain), each carbons-enabled session
//!   that did not get the message itself gets a copy wrapped in `<received/>` and
//!   XEP-0297 `<forwarded/>`, from the account's bare JID. A message to the bare JID
//!   delivered to several sessions makes no copy for them.
//! - Sent (8): a message a session sends (to a local account or another domain) is
//!   copied in `<sent/>` to the account's other carbons-enabled sessions, whether or not
//!   the sender enabled carbons.
//! - Eligible (6.1): not `<private/>` nor XEP-0334 `<no-copy/>` (9), not groupchat, not
//!   an error (6.1 allows copying an error answering an eligible message, which would
//!   need every message tracked); then type chat, type normal with a body, or an IM
//!   payload (XEP-0085 chat states, XEP-0184 receipts, XEP-0333 markers), or a MUC
//!   invitation (XEP-0249, mediated); a private message from a MUC occupant (received,
//!   with a `muc#user` element and no invitation) is not copied. Messages between the
//!   account's own resources are not copied: every device involved is the account's.
//!   "urn:xmpp:carbons:rules:0" (6.2) is therefore not advertised.
//! - Security (11): a client accepts a carbon only from its own bare JID. Only the server
//!   writes that address (c2s stamps every client stanza with its full JID), and a
//!   `<sent/>` or `<received/>` wrapper in a message someone else sent is removed before
//!   the message goes anywhere ([`strip_forged`]), so no client is ever handed a wrapper
//!   it did not get from its server. A carbon a session never acknowledged (XEP-0198) is
//!   dropped with the session, not handed to the others (10.3: the copy's failure never
//!   goes back, and each other session had its own copy).

use std::sync::Arc;

use hydrant_proto::{
    Element, Iq, IqType, Jid, MessageType, StanzaError, StanzaErrorCondition as Cond, ns,
};
use tracing::debug;

use crate::router::Router;
use crate::router::origin::Origin;
use crate::router::sessions::{LocalSession, username};

/// Which of the two copies (XEP-0280 7, 8).
#[derive(Clone, Copy)]
pub enum Direction {
    Sent,
    Received,
}

impl Router {
    /// XEP-0280 4 and 5: `<enable/>` or `<disable/>` for the asking session.
    pub(crate) fn carbons_iq(&self, origin: Origin<'_>, iq: &Iq) {
        let Some(me) = origin.session() else {
            // 4.1, 5.1: "<not-allowed/> if the request is from a client that is not
            // hosted on this server".
            return self.iq_error(origin, iq, StanzaError::new(Cond::NotAllowed));
        };
        let enable = match iq.payload.as_ref().map(Element::name) {
            Some("enable") if iq.kind == IqType::Set => true,
            Some("disable") if iq.kind == IqType::Set => false,
            _ => {
                return self.iq_error(
                    origin,
                    iq,
                    StanzaError::new(Cond::BadRequest).with_text("enable or disable, as a set"),
                );
            }
        };
        // 10.1: enabling twice (or disabling twice) is answered with a result again.
        me.state().carbons = enable;
        debug!(jid = %me.info.jid, enable, "message carbons");
        me.send(&iq.result(None).to_element(ns::CLIENT));
    }

    /// XEP-0280 7: a copy of a message delivered to local `user` for each of its
    /// carbons-enabled sessions other than those in `delivered` (the session ids that
    /// got the message itself).
    pub(crate) fn carbons_received(&self, user: &str, el: &Element, delivered: &[u64]) {
        if !eligible(el, Direction::Received) || from_own_account(self, user, el) {
            return;
        }
        self.carbon_copies(user, el, Direction::Received, |s| {
            !delivered.contains(&s.info.id)
        });
    }

    /// XEP-0280 8: a copy of a message `me` sent for the account's other
    /// carbons-enabled sessions.
    pub(crate) fn carbons_sent(&self, me: &Arc<LocalSession>, el: &Element) {
        let user = username(&me.info.jid);
        if !eligible(el, Direction::Sent) || to_own_account(self, &user, el) {
            return;
        }
        self.carbon_copies(&user, el, Direction::Sent, |s| s.info.id != me.info.id);
    }

    fn carbon_copies(
        &self,
        user: &str,
        el: &Element,
        dir: Direction,
        wanted: impl Fn(&LocalSession) -> bool,
    ) {
        let mut bare = None;
        for s in self.sessions.of_user(user) {
            if !wanted(&s) || !s.state().carbons {
                continue;
            }
            let bare = bare.get_or_insert_with(|| self.bare_of(user));
            s.send(&wrap(dir, bare, &s.info.jid.to_string(), el));
        }
    }
}

/// XEP-0280 6.1 (and 9): whether a message is copied.
pub fn eligible(el: &Element, dir: Direction) -> bool {
    if el.get_child("private", ns::CARBONS).is_some()
        || el.get_child("no-copy", ns::HINTS).is_some()
        || is_carbon(el)
    {
        return false;
    }
    let kind = MessageType::from_attr(el.attr("type"));
    if matches!(kind, MessageType::Groupchat | MessageType::Error) {
        return false;
    }
    let muc_user = el.get_child("x", ns::MUC_USER);
    let mediated_invite = muc_user.is_some_and(|x| x.get_child("invite", ns::MUC_USER).is_some());
    if matches!(dir, Direction::Received) && muc_user.is_some() && !mediated_invite {
        // "A private <message/> from a MUC participant (received from a full JID) to a
        // local user SHOULD NOT be carbon-copied."
        return false;
    }
    kind == MessageType::Chat
        || (kind == MessageType::Normal && el.get_child("body", el.ns()).is_some())
        || el
            .children()
            .any(|c| matches!(c.ns(), ns::CHATSTATES | ns::RECEIPTS | ns::CHAT_MARKERS))
        || el.get_child("x", ns::CONFERENCE).is_some()
        || mediated_invite
}

/// Whether a message carries a carbons wrapper (`<sent/>` or `<received/>`) at its top
/// level.
pub fn is_carbon(el: &Element) -> bool {
    el.get_child("sent", ns::CARBONS).is_some() || el.get_child("received", ns::CARBONS).is_some()
}

/// XEP-0280 11: removes carbons wrappers from a message the server did not write (from a
/// client or another domain), so that whatever it carries can never be taken for a
/// copy from the server. True when something was removed.
pub fn strip_forged(el: &mut Element) -> bool {
    let mut stripped = false;
    while el.remove_child("sent", ns::CARBONS).is_some()
        || el.remove_child("received", ns::CARBONS).is_some()
    {
        stripped = true;
    }
    stripped
}

/// The copy for one session: from the account's bare JID, to the session's full JID,
/// the original's type kept (7, 8: "SHOULD maintain the same 'type' attribute value").
fn wrap(dir: Direction, bare: &str, to: &str, original: &Element) -> Element {
    let mut copy = Element::new("message", ns::CLIENT)
        .with_attr("from", bare)
        .with_attr("to", to);
    if let Some(t) = original.attr("type") {
        copy.set_attr("type", t);
    }
    let name = match dir {
        Direction::Sent => "sent",
        Direction::Received => "received",
    };
    copy.with_child(
        Element::new(name, ns::CARBONS)
            .with_child(Element::new("forwarded", ns::FORWARD).with_child(original.clone())),
    )
}

/// The message comes from one of the account's own resources.
fn from_own_account(router: &Router, user: &str, el: &Element) -> bool {
    el.attr("from").is_some_and(|f| is_account(router, user, f))
}

/// The message is for the sending account itself (no `to`, RFC 6120 10.3.1, or its bare
/// or a full JID).
fn to_own_account(router: &Router, user: &str, el: &Element) -> bool {
    el.attr("to").is_none_or(|t| is_account(router, user, t))
}

/// `addr` is local account `user`'s bare JID or one of its full JIDs.
fn is_account(router: &Router, user: &str, addr: &str) -> bool {
    Jid::new(addr).is_ok_and(|j| {
        j.domain().as_str() == router.domain && j.node().is_some_and(|n| n.as_str() == user)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(kind: Option<&str>, children: Vec<Element>) -> Element {
        let mut m = Element::new("message", ns::CLIENT);
        if let Some(k) = kind {
            m.set_attr("type", k);
        }
        for c in children {
            m.append_child(c);
        }
        m
    }

    fn body() -> Element {
        Element::new("body", ns::CLIENT).with_text("hi")
    }

    /// XEP-0280 6.1, rule by rule.
    #[test]
    fn eligibility_follows_section_6_1() {
        use Direction::{Received, Sent};
        assert!(eligible(&msg(Some("chat"), vec![]), Received));
        assert!(eligible(&msg(None, vec![body()]), Received));
        assert!(eligible(&msg(Some("normal"), vec![body()]), Sent));
        assert!(!eligible(&msg(None, vec![]), Received));
        assert!(!eligible(&msg(Some("headline"), vec![body()]), Received));
        assert!(!eligible(&msg(Some("groupchat"), vec![body()]), Received));
        assert!(!eligible(&msg(Some("error"), vec![body()]), Received));
        let state = Element::new("active", ns::CHATSTATES);
        assert!(eligible(&msg(None, vec![state]), Received));
        let receipt = Element::new("received", ns::RECEIPTS);
        assert!(eligible(&msg(None, vec![receipt]), Received));
        let marker = Element::new("displayed", ns::CHAT_MARKERS);
        assert!(eligible(&msg(None, vec![marker]), Received));
        let invite = Element::new("x", ns::CONFERENCE);
        assert!(eligible(&msg(None, vec![invite]), Received));
        // 9 and XEP-0334.
        let private = Element::new("private", ns::CARBONS);
        assert!(!eligible(&msg(Some("chat"), vec![body(), private]), Sent));
        let no_copy = Element::new("no-copy", ns::HINTS);
        assert!(!eligible(
            &msg(Some("chat"), vec![body(), no_copy]),
            Received
        ));
        // MUC: a private message from an occupant is not copied, one to an occupant is.
        let pm = || Element::new("x", ns::MUC_USER);
        assert!(!eligible(&msg(Some("chat"), vec![body(), pm()]), Received));
        assert!(eligible(&msg(Some("chat"), vec![body(), pm()]), Sent));
        let mediated = pm().with_child(Element::new("invite", ns::MUC_USER));
        assert!(eligible(&msg(None, vec![mediated]), Received));
        // A carbon is never copied again.
        let wrapped = Element::new("received", ns::CARBONS);
        assert!(!eligible(&msg(Some("chat"), vec![wrapped]), Received));
    }

    #[test]
    fn forged_wrappers_are_removed() {
        let mut m = msg(
            Some("chat"),
            vec![
                body(),
                Element::new("sent", ns::CARBONS),
                Element::new("received", ns::CARBONS),
                Element::new("received", ns::CARBONS),
            ],
        );
        assert!(strip_forged(&mut m));
        assert!(!is_carbon(&m));
        assert!(m.get_child("body", ns::CLIENT).is_some());
        assert!(!strip_forged(&mut m));
    }

    #[test]
    fn copy_shape() {
        let original = msg(Some("chat"), vec![body()])
            .with_attr("from", "juliet@capulet.lit/balcony")
            .with_attr("to", "romeo@montague.lit/garden");
        let c = wrap(
            Direction::Received,
            "romeo@montague.lit",
            "romeo@montague.lit/home",
            &original,
        );
        let xml = String::from_utf8(c.to_bytes(ns::CLIENT)).unwrap();
        assert!(
            xml.starts_with(
                "<message from='romeo@montague.lit' to='romeo@montague.lit/home' type='chat'>\
                 <received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>\
                 <message xmlns='jabber:client' type='chat' from='juliet@capulet.lit/balcony' \
                 to='romeo@montague.lit/garden'><body>hi</body></message>"
            ),
            "{xml}"
        );
    }
}
