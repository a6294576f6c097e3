//! iq routing (RFC 6120 8.2.3, RFC 6121 8.5) and the server's own services: XEP-0030
//! disco, XEP-0199 ping, XEP-0092 version, XEP-0077 account management after login;
//! XEP-0049 private XML (`private.rs`) and XEP-0054 vCards (`vcard.rs`) are routed here.

use hydrant_proto::{
    Element, ErrorType, Iq, IqPayload, IqType, StanzaError, StanzaErrorCondition as Cond,
    StreamError, StreamErrorCondition, ns,
};
use tracing::{info, warn};

use std::sync::Arc;

use crate::pubsub::ServiceKey;
use crate::router::Router;
use crate::router::origin::Origin;
use crate::router::sessions::{LocalSession, username};

/// Features the server advertises in disco#info: exactly what is implemented.
const SERVER_FEATURES: &[&str] = &[
    ns::DISCO_INFO,
    ns::DISCO_ITEMS,
    ns::PING,
    ns::VERSION,
    ns::REGISTER,
    "msgoffline",
    crate::im::adhoc::COMMANDS,
    ns::CARBONS,
    ns::BLOCKING,
    ns::PRIVATE,
    ns::VCARD,
];

/// With PEP on (`[pubsub] pep`): XEP-0223 4, a client checks the server for PEP and
/// publish-options before it stores private data on PEP ("The server MUST return an
/// identity of pubsub/pep and include the publish-options feature"); the account's bare
/// JID lists every PEP feature (`account_iq`).
const SERVER_PEP_FEATURES: &[&str] = &[hydrant_pubsub::xep0060::forms::PUBLISH_OPTIONS];

/// What an account's bare JID answers in disco#info: its PEP service's features
/// (XEP-0163 with `auto-create`, and `publish-options`, which XEP-0223 4 and XEP-0402
/// clients look for here; not MAM, which only the nodes answer), and vcard-temp
/// (XEP-0054 3: the account's vCard is answered at its bare JID).
fn account_features(pep: bool) -> Vec<&'static str> {
    let mut out = vec![ns::DISCO_INFO, ns::DISCO_ITEMS, ns::VCARD];
    if pep {
        out.extend_from_slice(&[ns::PUBSUB, ns::RSM]);
        out.extend_from_slice(hydrant_pubsub::FEATURES);
        out.push(hydrant_pubsub::AUTO_CREATE);
    }
    out.sort_unstable();
    out
}

impl Router {
    pub async fn outbound_iq(&self, me: &Arc<LocalSession>, iq: Iq) {
        let to = iq.to.clone();
        let dest = self.classify(to.as_ref());
        self.iq_to(me.into(), dest, iq).await;
    }

    /// A pubsub payload, a disco query with a node, or a MAM request naming a node
    /// (XEP-0442), for an account: its PEP service. (A MAM query without a node would be
    /// for the account's own message archive, which hydrant does not keep.)
    fn is_pep_request(iq: &Iq) -> bool {
        iq.payload.as_ref().is_some_and(|p| {
            p.ns() == ns::PUBSUB
                || p.ns() == ns::PUBSUB_OWNER
                || (p.is("query", ns::DISCO_INFO) && p.attr("node").is_some())
                || p.is("query", ns::DISCO_ITEMS)
                || Self::is_pep_mam(p)
        })
    }

    fn is_pep_mam(p: &Element) -> bool {
        p.ns() == crate::pubsub::mam::MAM && p.attr("node").is_some()
    }

    fn payload(&self, origin: Origin<'_>, iq: &Iq) -> Option<IqPayload> {
        if !matches!(iq.kind, IqType::Get | IqType::Set) {
            return None; // results and errors addressed to the server end here
        }
        let p = iq.payload.as_ref()?;
        match IqPayload::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                self.iq_error(origin, iq, e);
                None
            }
        }
    }

    /// An iq for the server itself, from a local session or another domain.
    pub(crate) async fn server_iq(&self, origin: Origin<'_>, iq: Iq) {
        let me = origin.session();
        if !iq.kind.is_request() {
            match origin {
                Origin::Session(me) => {
                    self.caps_answer(me, &iq);
                }
                Origin::Remote(from) => {
                    self.multicast_answer(from, &iq);
                }
            }
            return;
        }
        let pubsub_payload = iq.payload.as_ref().is_some_and(|p| {
            p.ns() == ns::PUBSUB || p.ns() == ns::PUBSUB_OWNER || Self::is_pep_mam(p)
        });
        if let Some(me) = me
            && iq.to.is_none()
        {
            // RFC 6120 10.3.3: no 'to' means the account itself: its PEP service, its
            // private XML (XEP-0049), its vCard (XEP-0054 2.1, 2.2).
            let user = username(&me.info.jid);
            if pubsub_payload && self.cfg.pep {
                let own = ServiceKey::Pep(self.bare_of(&user));
                return self.pubsub_iq(origin, iq, own).await;
            }
            match iq.payload.as_ref() {
                Some(p) if p.is("query", ns::PRIVATE) => return self.private_iq(me, iq).await,
                Some(p) if p.is("vCard", ns::VCARD) => {
                    return self.vcard_iq(origin, &user, true, iq).await;
                }
                _ => {}
            }
        }
        if iq
            .payload
            .as_ref()
            .is_some_and(|p| p.is("command", crate::im::adhoc::COMMANDS))
        {
            return self.adhoc_command(origin, iq).await;
        }
        if iq.payload.as_ref().is_some_and(|p| p.ns() == ns::CARBONS) {
            return self.carbons_iq(origin, &iq);
        }
        if let Some(me) = me
            && iq.payload.as_ref().is_some_and(|p| p.ns() == ns::BLOCKING)
        {
            return self.blocking_iq(me, iq).await;
        }
        let Some(payload) = self.payload(origin, &iq) else {
            return;
        };
        // The roster and account management are the account's own client's business
        // (RFC 6121 2.1.5, XEP-0077): another domain is answered as for an unknown
        // namespace below.
        let payload = match (payload, me) {
            (IqPayload::Roster(q), Some(me)) => return self.roster_iq(me, iq, q).await,
            (IqPayload::Register(q), Some(me)) => {
                return self.register_iq(me, &username(&me.info.jid), iq, &q).await;
            }
            (p, _) => p,
        };
        let get = iq.kind == IqType::Get;
        match payload {
            IqPayload::Ping if get => {
                self.reply(origin, &iq.result(None).to_element(ns::CLIENT));
            }
            IqPayload::Version if get => {
                // XEP-0092: name and version; the OS is withheld on purpose (it helps
                // attackers more than users).
                let q = Element::new("query", ns::VERSION)
                    .with_child(Element::new("name", ns::VERSION).with_text("hydrant"))
                    .with_child(
                        Element::new("version", ns::VERSION).with_text(env!("CARGO_PKG_VERSION")),
                    );
                self.reply(origin, &iq.result(Some(q)).to_element(ns::CLIENT));
            }
            IqPayload::DiscoInfo { node: None } if get => {
                let mut q = Element::new("query", ns::DISCO_INFO).with_child(
                    Element::new("identity", ns::DISCO_INFO)
                        .with_attr("category", "server")
                        .with_attr("type", "im")
                        .with_attr("name", "hydrant"),
                );
                let mut pep: &[&str] = &[];
                if self.cfg.pep {
                    // XEP-0223 4 (see SERVER_PEP_FEATURES).
                    q.append_child(
                        Element::new("identity", ns::DISCO_INFO)
                            .with_attr("category", "pubsub")
                            .with_attr("type", "pep"),
                    );
                    pep = SERVER_PEP_FEATURES;
                }
                let multicast = self.cfg.multicast.enabled.then_some(ns::ADDRESS);
                for f in SERVER_FEATURES.iter().chain(pep).copied().chain(multicast) {
                    q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
                }
                self.reply(origin, &iq.result(Some(q)).to_element(ns::CLIENT));
            }
            IqPayload::DiscoItems { node: None } if get => {
                let mut q = Element::new("query", ns::DISCO_ITEMS);
                for addr in self.pubsub.component_addresses() {
                    q.append_child(
                        Element::new("item", ns::DISCO_ITEMS).with_attr("jid", addr.as_str()),
                    );
                }
                self.reply(origin, &iq.result(Some(q)).to_element(ns::CLIENT));
            }
            IqPayload::DiscoItems { node: Some(n) } if get && n == crate::im::adhoc::COMMANDS => {
                self.adhoc_items(origin, &iq);
            }
            IqPayload::DiscoInfo { node: Some(n) } if get && self.adhoc_info(origin, &iq, &n) => {}
            IqPayload::DiscoInfo { .. } | IqPayload::DiscoItems { .. } if get => {
                self.iq_error(origin, &iq, StanzaError::new(Cond::ItemNotFound));
            }
            IqPayload::Unknown(_)
            | IqPayload::Bind { .. }
            | IqPayload::Session
            | IqPayload::Roster(_)
            | IqPayload::Register(_) => {
                // RFC 6120 8.4: an iq for a namespace the entity does not understand.
                self.iq_error(origin, &iq, StanzaError::new(Cond::ServiceUnavailable));
            }
            _ => self.iq_error(
                origin,
                &iq,
                StanzaError::new(Cond::BadRequest).with_type(ErrorType::Modify),
            ),
        }
    }

    /// An iq to a local bare JID is answered by the server on the account's behalf
    /// (RFC 6121 8.5.2.1.3 / RFC 6120 10.5.4).
    pub(crate) async fn account_iq(&self, origin: Origin<'_>, target: &str, iq: Iq) {
        let own = origin
            .session()
            .is_some_and(|me| username(&me.info.jid) == target);
        // The roster, carbons and the blocklist of the account's own client, addressed
        // to its bare JID rather than without 'to': the same requests.
        let own_request = iq.payload.as_ref().is_some_and(|p| {
            p.ns() == ns::CARBONS
                || p.ns() == ns::BLOCKING
                || matches!(IqPayload::parse(p), Ok(IqPayload::Roster(_)))
        });
        if own && own_request {
            return self.server_iq(origin, iq).await;
        }
        if !own && self.blocks(target, &origin.jid()).await {
            // XEP-0191 3.3: from a blocked JID, a get or set gets <service-unavailable/>
            // (what an unknown account's would), anything else is dropped; that covers
            // its requests to the account's PEP service.
            return self.iq_error(origin, &iq, StanzaError::new(Cond::ServiceUnavailable));
        }
        if !matches!(iq.kind, IqType::Get | IqType::Set) {
            // Maybe the answer to a caps query the server sent on the account's behalf.
            if let Origin::Remote(from) = origin {
                self.remote_caps_answer(target, from, &iq).await;
            }
            return;
        }
        if !own && !self.account_exists(target).await {
            return self.iq_error(origin, &iq, StanzaError::new(Cond::ServiceUnavailable));
        }
        match iq.payload.as_ref() {
            Some(p) if p.is("query", ns::PRIVATE) => {
                // XEP-0049 2.3: another entity asking for the account's private data
                // gets "Forbidden" ("preferable" to "Service Unavailable").
                return match origin.session().filter(|_| own) {
                    Some(me) => self.private_iq(me, iq).await,
                    None => self.iq_error(origin, &iq, StanzaError::new(Cond::Forbidden)),
                };
            }
            Some(p) if p.is("vCard", ns::VCARD) => {
                return self.vcard_iq(origin, target, own, iq).await;
            }
            _ => {}
        }
        // With PEP off, a pubsub request to an account falls through to the answer
        // for a namespace nobody serves there.
        if self.cfg.pep && Self::is_pep_request(&iq) {
            return self
                .pubsub_iq(origin, iq, ServiceKey::Pep(self.bare_of(target)))
                .await;
        }
        let Some(payload) = self.payload(origin, &iq) else {
            return;
        };
        let get = iq.kind == IqType::Get;
        match payload {
            IqPayload::DiscoInfo { node: None } if get => {
                let mut q = Element::new("query", ns::DISCO_INFO).with_child(
                    Element::new("identity", ns::DISCO_INFO)
                        .with_attr("category", "account")
                        .with_attr("type", "registered"),
                );
                if self.cfg.pep {
                    q.append_child(
                        Element::new("identity", ns::DISCO_INFO)
                            .with_attr("category", "pubsub")
                            .with_attr("type", "pep"),
                    );
                }
                for f in account_features(self.cfg.pep) {
                    q.append_child(Element::new("feature", ns::DISCO_INFO).with_attr("var", f));
                }
                self.reply(origin, &iq.result(Some(q)).to_element(ns::CLIENT));
            }
            IqPayload::DiscoItems { node: None } if get => {
                self.reply(
                    origin,
                    &iq.result(Some(Element::new("query", ns::DISCO_ITEMS)))
                        .to_element(ns::CLIENT),
                );
            }
            IqPayload::Ping if get => {
                self.reply(origin, &iq.result(None).to_element(ns::CLIENT));
            }
            _ => self.iq_error(origin, &iq, StanzaError::new(Cond::ServiceUnavailable)),
        }
    }

    /// XEP-0077 sections 3.2 (cancel) and 3.3 (password change) for a logged-in user.
    async fn register_iq(&self, me: &Arc<LocalSession>, user: &str, iq: Iq, q: &Element) {
        match iq.kind {
            IqType::Get => {
                let reply = Element::new("query", ns::REGISTER)
                    .with_child(Element::new("registered", ns::REGISTER))
                    .with_child(Element::new("username", ns::REGISTER).with_text(user))
                    .with_child(Element::new("password", ns::REGISTER));
                me.send(&iq.result(Some(reply)).to_element(ns::CLIENT));
            }
            IqType::Set if q.get_child("remove", ns::REGISTER).is_some() => {
                // XEP-0077 3.2: the result first, then every session of the account ends
                // with <not-authorized/> (`remove_account` does that, and the rest).
                me.send(&iq.result(None).to_element(ns::CLIENT));
                match self.remove_account(user).await {
                    Ok(_) => info!(user, "account removed in-band"),
                    Err(e) => {
                        // Nothing was deleted; the client was told otherwise, so end its
                        // sessions anyway rather than leave it believing it is gone.
                        warn!(error = %e, user, "in-band account removal failed");
                        self.end_sessions(
                            user,
                            None,
                            &StreamError::new(StreamErrorCondition::InternalServerError),
                        );
                    }
                }
            }
            IqType::Set => {
                let name = q
                    .get_child("username", ns::REGISTER)
                    .map(hydrant_proto::Element::text);
                let password = q
                    .get_child("password", ns::REGISTER)
                    .map(hydrant_proto::Element::text);
                let same_user = name
                    .as_deref()
                    .is_none_or(|n| jid::NodePart::new(n.trim()).is_ok_and(|n| n.as_str() == user));
                match password {
                    Some(p) if same_user && p.chars().count() >= self.cfg.min_password_length => {
                        match self.set_password(user, &p, false).await {
                            Ok(()) => {
                                info!(user, "password changed in-band");
                                me.send(&iq.result(None).to_element(ns::CLIENT));
                                // The account's other sessions end (`accounts.rs`).
                                self.password_changed(user, Some(me.info.id));
                            }
                            Err(_) => {
                                self.iq_error(
                                    me.into(),
                                    &iq,
                                    StanzaError::new(Cond::InternalServerError),
                                );
                            }
                        }
                    }
                    _ => self.iq_error(
                        me.into(),
                        &iq,
                        StanzaError::new(Cond::NotAcceptable).with_type(ErrorType::Modify),
                    ),
                }
            }
            IqType::Result | IqType::Error => {}
        }
    }
}
