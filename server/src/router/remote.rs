//! Other domains: the one place that decides what happens to a stanza whose `to` is
//! outside this server (RFC 6120 10.4).
//!
//! Every path that can address another domain (messages, iqs, presence, pubsub
//! notifications, replies the server generates) ends in [`Router::route_remote`]. The
//! transport behind it is a [`RemoteDomains`]: s2s implements it (Federation issue), and
//! so will cluster peers. Until s2s exists, [`NoFederation`] refuses everything with
//! `<remote-server-not-found/>`, which RFC 6120 10.4.3 prescribes when the remote domain
//! cannot be resolved or reached, and the router returns that error to the sender.

use hydrant_proto::{Element, Jid, StanzaError, StanzaErrorCondition as Cond, error_reply};
use hydrant_stream::Frame;

use super::Router;

/// A transport to other domains.
pub trait RemoteDomains: Send + Sync {
    /// Takes `stanza` (its `to` is `to`, in another domain) for delivery. `Err` gives
    /// the stanza back with the reason it cannot be taken at all; failures found later
    /// (a peer that cannot be reached after retries) come back as error stanzas.
    fn send(&self, to: &Jid, stanza: Element) -> Result<(), Box<Refused>>;

    /// Takes a pubsub notification serialised once for all its recipients (a
    /// [`Frame::Addressed`] whose shared parts are not copied per recipient) from
    /// `service` to `to`. `Ok` may carry the other server's backlog: the publisher waits
    /// on it before going on (a firehose is paced by the slower server instead of losing
    /// notifications). `Err`: refused at once (the caller tells the service).
    fn send_notification(
        &self,
        service: &Jid,
        to: &Jid,
        frame: Frame,
    ) -> Result<Option<Box<dyn Backpressure>>, Box<Refused>> {
        let _ = service;
        match frame.stanza_element() {
            Some(el) => self.send(to, el).map(|()| None),
            None => Ok(None),
        }
    }
}

/// The backlog of the stream to another server, as a publisher sees it.
pub trait Backpressure: Send + Sync + std::fmt::Debug {
    /// Whether the other server is behind (waiting would be needed now).
    fn over(&self) -> bool;
    /// Waits until it is no longer behind (bounded by the transport's own give-up time).
    fn wait(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>>;
}

/// A stanza a transport would not take, and why.
pub struct Refused {
    pub stanza: Element,
    pub error: StanzaError,
}

/// No federation: every domain is unreachable.
pub struct NoFederation;

impl RemoteDomains for NoFederation {
    fn send(&self, _to: &Jid, stanza: Element) -> Result<(), Box<Refused>> {
        Err(Box::new(Refused {
            stanza,
            error: StanzaError::new(Cond::RemoteServerNotFound)
                .with_text("server-to-server delivery is not available on this server yet"),
        }))
    }
}

/// What to do with a stanza the transport refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnRefusal {
    /// Return the error to the stanza's sender (RFC 6120 8.3.1), unless the stanza is an
    /// error itself.
    Bounce,
    /// Return the error to the pubsub service that sent the stanza (a notification):
    /// never to the sessions behind the service's address, which for PEP is the owner's
    /// bare JID (XEP-0163) and would otherwise get one error per unreachable subscriber.
    ToService,
    /// Nothing: presence broadcasts (RFC 6121 4.2.2, 4.4.2: the user's server sends them
    /// on the user's behalf and a contact's server being away is not the user's error;
    /// the user's client would otherwise get one error per unreachable contact at every
    /// presence change).
    Drop,
}

impl Router {
    /// Installs the transport to other domains (once, at start-up: s2s, or a test's).
    /// `Err` gives it back when one is installed already.
    pub fn set_remote(
        &self,
        transport: Box<dyn RemoteDomains>,
    ) -> Result<(), Box<dyn RemoteDomains>> {
        self.remote.set(transport)
    }

    fn remote(&self) -> &dyn RemoteDomains {
        match self.remote.get() {
            Some(t) => &**t,
            None => &NoFederation,
        }
    }

    /// Hands a stanza for another domain to the transport; on refusal, bounces it to its
    /// sender (which may be a local session, a pubsub service or the server) or drops it,
    /// as `on_refusal` says.
    pub fn route_remote(&self, to: &Jid, stanza: Element, on_refusal: OnRefusal) {
        let kind = stanza_kind(&stanza);
        let Err(refused) = self.remote().send(to, stanza) else {
            return;
        };
        let Refused { stanza, error: err } = *refused;
        metrics::counter!("hydrant_router_remote_refused_total", "kind" => kind).increment(1);
        tracing::debug!(%to, kind, condition = err.condition.as_str(), "stanza for another domain refused");
        self.refused(&stanza, err, on_refusal);
    }

    /// What happens to a stanza for another domain that could not be delivered, at once
    /// or later (s2s gave up on it): `on_refusal` says who learns of it.
    pub fn refused(&self, stanza: &Element, err: StanzaError, on_refusal: OnRefusal) {
        match on_refusal {
            OnRefusal::Bounce => self.bounce(stanza, err),
            OnRefusal::ToService => {
                if stanza.attr("type") != Some("error") {
                    let reply = error_reply(stanza, &err);
                    self.to_service(stanza.attr("from").unwrap_or_default(), &reply);
                }
            }
            OnRefusal::Drop => {}
        }
    }
}

impl Router {
    /// [`Router::route_remote`] for a notification frame: refused, its error goes to the
    /// service that sent it (`OnRefusal::ToService`), never to a subscriber.
    pub fn route_remote_notification(
        &self,
        service: &Jid,
        to: &Jid,
        frame: Frame,
    ) -> Option<Box<dyn Backpressure>> {
        let refused = match self.remote().send_notification(service, to, frame) {
            Ok(queue) => return queue,
            Err(r) => r,
        };
        let Refused { stanza, error: err } = *refused;
        metrics::counter!("hydrant_router_remote_refused_total", "kind" => "message").increment(1);
        self.refused(&stanza, err, OnRefusal::ToService);
        None
    }
}

/// The metric label of a stanza.
fn stanza_kind(el: &Element) -> &'static str {
    match el.name() {
        "message" => "message",
        "presence" => "presence",
        "iq" => "iq",
        _ => "other",
    }
}
