//! Resource binding (RFC 6120 section 7).

use std::fmt::Write as _;

use hydrant_proto::{
    Element, ErrorType, Iq, IqType, StanzaError, StanzaErrorCondition as Cond, ns,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::info;

use crate::backend::{Backend, SessionInfo};
use crate::stream::Stream;

impl<S, B> Stream<'_, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    pub(crate) async fn on_bind(&mut self, el: Element) {
        let iq = match Iq::try_from_element(el.clone()) {
            Ok(iq) if iq.kind == IqType::Set => iq,
            Ok(_) => return self.reply_error(&el, StanzaError::new(Cond::BadRequest)),
            Err(e) => return self.reply_error(&el, e),
        };
        let username = self
            .username
            .clone()
            .expect("bind only after authentication");
        let requested = iq
            .payload
            .as_ref()
            .and_then(|b| b.get_child("resource", ns::BIND))
            .map(|r| r.text().trim().to_owned())
            .filter(|r| !r.is_empty());
        let resource = requested.unwrap_or_else(generate_resource);
        let bare = format!("{username}@{}", self.cfg().domain);
        // RFC 6120 7.7.2.1: a resource that cannot be processed (e.g. fails
        // resourceprep) is <bad-request/> of type modify.
        let Ok(jid) =
            hydrant_proto::BareJid::new(&bare).and_then(|b| b.with_resource_str(&resource))
        else {
            return self.reply_error(
                &el,
                StanzaError::new(Cond::BadRequest).with_type(ErrorType::Modify),
            );
        };
        let info = SessionInfo {
            id: self.shared.session_id(),
            jid: jid.clone(),
            peer: self.peer,
            secure: self.secure,
        };
        // The backend queues the result before the session becomes reachable, so it is
        // the first thing the client reads after binding.
        let reply = iq
            .result(Some(Element::new("bind", ns::BIND).with_child(
                Element::new("jid", ns::BIND).with_text(jid.to_string()),
            )));
        // RFC 6120 7.7.2.2 allows either refusing a conflicting resource or replacing the
        // old session; hydrant replaces it (the old one gets <conflict/>), which is what
        // a user reconnecting from the same device expects.
        let bound = self
            .shared
            .backend
            .bind(
                &info,
                self.conn.outbox.clone(),
                reply.to_element(ns::CLIENT).to_bytes(ns::CLIENT).into(),
            )
            .await;
        if let Err(e) = bound {
            // The stream stays open, unbound: the client may close it or try again.
            info!(peer = %self.peer, jid = %info.jid, error = ?e.condition, "bind refused");
            return self.reply_error(&el, e);
        }
        info!(peer = %self.peer, jid = %info.jid, "resource bound");
        self.bound = Some(info);
    }
}

/// A server-generated resource (RFC 6120 7.6.2.1): random, unguessable.
fn generate_resource() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the OS random source is available");
    let mut s = String::from("hydrant-");
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}
