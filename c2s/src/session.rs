//! A bound session: every stanza is validated, stamped and handed to the router.

use hydrant_proto::{
    Element, Jid, Stanza, StanzaParseError, StreamError, StreamErrorCondition as Cond, ns,
};
use hydrant_proto::{IqType, StanzaError, StanzaErrorCondition};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::backend::Backend;
use crate::stream::Stream;

impl<S, B> Stream<'_, S, B>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    B: Backend,
{
    pub(crate) async fn on_bound_element(&mut self, el: Element) {
        let info = self.bound.clone().expect("called only when bound");
        if el.ns() == hydrant_stream::sm::NS {
            return self.on_sm_element(&el);
        }
        if el.ns() == hydrant_stream::csi::NS && self.cfg().csi {
            // XEP-0352: nonzas, not stanzas; nothing is answered.
            match el.name() {
                "inactive" => self.conn.set_inactive(hydrant_stream::csi::CsiLimits {
                    max_held_bytes: self.cfg().csi_max_held_bytes,
                    max_delay: self.cfg().csi_max_delay,
                }),
                "active" => self.conn.set_active(),
                _ => self.stream_error(StreamError::new(Cond::UnsupportedStanzaType)),
            }
            return;
        }
        if let Some(sm) = self.conn.sm_mut()
            && matches!(el.name(), "message" | "presence" | "iq")
        {
            // XEP-0198 4: every stanza received counts as handled once processed;
            // stanzas are processed in order, so an <a/> answered later covers it.
            sm.handled();
        }
        let mut stanza = match Stanza::parse(el, ns::CLIENT) {
            Ok(s) => s,
            // RFC 6120 4.9.3.24: a first-level element that is not a stanza.
            Err(StanzaParseError::NotAStanza(_)) => {
                return self.stream_error(StreamError::new(Cond::UnsupportedStanzaType));
            }
            Err(StanzaParseError::Invalid(el, err)) => return self.reply_error(&el, err),
        };
        // RFC 6120 8.1.2.1: the server stamps 'from' with the full JID; a client-supplied
        // value must be that full JID or its bare JID, anything else is <invalid-from/>.
        let full: Jid = info.jid.clone().into();
        let bare = info.jid.to_bare();
        if let Some(from) = stanza.from()
            && *from != full
            && from.as_str() != bare.as_str()
        {
            return self.stream_error(StreamError::new(Cond::InvalidFrom));
        }
        stanza.set_from(Some(full));
        if let Stanza::Iq(iq) = &stanza {
            let to_server = iq
                .to
                .as_ref()
                .is_none_or(|t| t.as_str() == self.cfg().domain);
            if to_server
                && iq.kind == IqType::Set
                && let Some(p) = &iq.payload
            {
                if p.is("session", ns::SESSION) {
                    // RFC 3921 session establishment is a no-op today (RFC 6121 erratum).
                    let reply = iq.result(None);
                    return self.send_element(&reply.to_element(ns::CLIENT));
                }
                if p.is("bind", ns::BIND) {
                    // One resource per stream: hydrant does not implement multiple
                    // bound resources (RFC 6120 7.6.2.2: <not-allowed/>).
                    let err = StanzaError::new(StanzaErrorCondition::NotAllowed);
                    return self.send_element(&hydrant_proto::error_reply(
                        &iq.to_element(ns::CLIENT),
                        &err,
                    ));
                }
            }
        }
        self.shared.backend.stanza(&info, stanza).await;
    }
}
