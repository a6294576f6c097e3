//! Standing in for s2s: a transport that records what the server sends to other
//! domains, and stanzas injected as an authenticated peer would deliver them (through
//! `Router::route` with `Origin::Remote`, what s2s calls once it checked a `from`).

use std::time::Duration;

use hydrant_proto::{Element, Jid, Stanza, ns};
use hydrant_server::router::origin::Origin;
use hydrant_server::router::remote::{Refused, RemoteDomains};
use tokio::sync::mpsc;

use super::Server;

/// Records every stanza the server hands to "other domains".
pub struct Capture(pub mpsc::UnboundedSender<Element>);

impl RemoteDomains for Capture {
    fn send(&self, _to: &Jid, stanza: Element) -> Result<(), Box<Refused>> {
        let _ = self.0.send(stanza);
        Ok(())
    }
}

/// What the server sent to other domains.
pub struct Peer {
    pub rx: mpsc::UnboundedReceiver<Element>,
}

impl Peer {
    /// Installs a recording transport on `server` (once per server).
    pub fn install(server: &Server) -> Peer {
        let (tx, rx) = mpsc::unbounded_channel();
        assert!(
            server.router.set_remote(Box::new(Capture(tx))).is_ok(),
            "a transport was installed already"
        );
        Peer { rx }
    }

    /// The next stanza sent out that matches `pred` (others are skipped).
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Element) -> bool) -> Element {
        let wait = async {
            loop {
                let el = self.rx.recv().await.expect("the transport stays installed");
                if pred(&el) {
                    return el;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), wait)
            .await
            .unwrap_or_else(|_| panic!("nothing sent out for: {what}"))
    }

    /// Everything sent out so far that matches `pred`, without waiting (call after an
    /// event proving it would have been sent, e.g. a client's `sync`).
    pub fn sent_so_far(&mut self, pred: impl Fn(&Element) -> bool) -> Vec<Element> {
        let mut out = Vec::new();
        while let Ok(el) = self.rx.try_recv() {
            if pred(&el) {
                out.push(el);
            }
        }
        out
    }
}

/// Delivers `xml` as a peer server would, from `from`.
pub async fn inject(server: &Server, from: &str, xml: &str) {
    let el = parse(xml);
    let stanza = Stanza::parse(el, ns::SERVER).expect("a valid stanza");
    let from = Jid::new(from).expect("a valid JID");
    server.router.route(Origin::Remote(&from), stanza).await;
}

/// One stanza from its XML, as a `jabber:server` stream would carry it.
pub fn parse(xml: &str) -> Element {
    let mut r = hydrant_proto::StreamReader::new(hydrant_proto::Limits::default());
    r.feed(
        format!(
            "<stream:stream xmlns='jabber:server' xmlns:stream='{}'>{xml}",
            ns::STREAM
        )
        .as_bytes(),
    )
    .unwrap();
    loop {
        if let hydrant_proto::StreamEvent::Stanza(el) =
            r.next_event().unwrap().expect("a whole stanza")
        {
            return el;
        }
    }
}
