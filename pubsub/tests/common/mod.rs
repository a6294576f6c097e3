//! Test harness: drives a `Service` with XML strings, as a server would, and records
//! the effects (like Prosody's spec with its broadcaster spy).

#![allow(dead_code)]

use std::fmt::Write as _;

use hydrant_proto::{
    BareJid, Element, IqType, Jid, Limits, StanzaError, StreamEvent, StreamReader,
};
use hydrant_pubsub::xep0060::{self, error::to_stanza_error};
use hydrant_pubsub::{
    Effect, Event, MemoryStore, NodeName, Notification, Request, Service, ServiceConfig,
    StaticRelations,
};

pub const PS: &str = "http://jabber.org/protocol/pubsub";
pub const OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
pub const SERVICE: &str = "pubsub.example.com";

/// Parses one XML element from a string (through proto's stream reader).
pub fn xml(s: &str) -> Element {
    let mut r = StreamReader::new(Limits::default());
    r.feed(
        format!(
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>{s}"
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(matches!(
        r.next_event().unwrap(),
        Some(StreamEvent::Open(_))
    ));
    match r.next_event().unwrap() {
        Some(StreamEvent::Stanza(el)) => el,
        other => panic!("no element in {s}: {other:?}"),
    }
}

/// `<pubsub xmlns=pubsub>inner</pubsub>`
pub fn ps(inner: &str) -> String {
    format!("<pubsub xmlns='{PS}'>{inner}</pubsub>")
}

/// `<pubsub xmlns=pubsub#owner>inner</pubsub>`
pub fn owner(inner: &str) -> String {
    format!("<pubsub xmlns='{OWNER}'>{inner}</pubsub>")
}

/// A submitted data form with FORM_TYPE and fields.
pub fn form(form_type: &str, fields: &[(&str, &str)]) -> String {
    let mut s = format!(
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{form_type}</value></field>"
    );
    for (var, val) in fields {
        let _ = write!(s, "<field var='{var}'><value>{val}</value></field>");
    }
    s.push_str("</x>");
    s
}

pub fn config_form(fields: &[(&str, &str)]) -> String {
    form("http://jabber.org/protocol/pubsub#node_config", fields)
}

pub fn jid(s: &str) -> Jid {
    Jid::new(s).unwrap()
}

pub fn bare(s: &str) -> BareJid {
    BareJid::new(s).unwrap()
}

/// A wire error, flattened for assertions.
#[derive(Debug, PartialEq, Eq)]
pub struct WireError {
    pub kind: String,
    pub condition: String,
    pub pubsub: Option<String>,
    pub feature: Option<String>,
}

impl WireError {
    fn from(e: &StanzaError) -> Self {
        WireError {
            kind: e.kind.as_str().to_owned(),
            condition: e.condition.as_str().to_owned(),
            pubsub: e.app.as_ref().map(|a| {
                assert_eq!(a.ns(), "http://jabber.org/protocol/pubsub#errors");
                a.name().to_owned()
            }),
            feature: e
                .app
                .as_ref()
                .and_then(|a| a.attr("feature"))
                .map(str::to_owned),
        }
    }

    /// Asserts the stanza condition and the pubsub#errors condition.
    #[track_caller]
    pub fn is(&self, condition: &str, pubsub: Option<&str>) {
        assert_eq!(
            (self.condition.as_str(), self.pubsub.as_deref()),
            (condition, pubsub),
            "{self:?}"
        );
    }
}

pub struct Harness {
    pub svc: Service<MemoryStore>,
    pub rel: StaticRelations,
    pub now: u64,
    /// Effects of the last successful request.
    pub effects: Vec<Effect>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with(ServiceConfig::default(), SERVICE)
    }

    pub fn with(cfg: ServiceConfig, address: &str) -> Self {
        Harness {
            svc: Service::open(jid(address), MemoryStore::new(), cfg).unwrap(),
            rel: StaticRelations::default(),
            now: 1_000_000,
            effects: Vec::new(),
        }
    }

    /// Parses and handles an iq payload; Ok(reply) or the wire error. Parse errors go
    /// through the same mapping as service errors.
    pub fn iq(
        &mut self,
        from: &str,
        kind: IqType,
        payload: &str,
    ) -> Result<Option<Element>, WireError> {
        self.now += 1;
        self.effects.clear();
        let req = xep0060::parse(kind, &xml(payload))
            .map_err(|e| WireError::from(&to_stanza_error(&e)))?;
        self.request(from, req)
    }

    pub fn request(&mut self, from: &str, req: Request) -> Result<Option<Element>, WireError> {
        match self.svc.handle(&jid(from), req, &self.rel, self.now) {
            Ok(out) => {
                self.effects = out.effects;
                Ok(out.reply)
            }
            Err(e) => Err(WireError::from(&to_stanza_error(&e))),
        }
    }

    pub fn set(&mut self, from: &str, payload: &str) -> Result<Option<Element>, WireError> {
        self.iq(from, IqType::Set, payload)
    }

    pub fn get(&mut self, from: &str, payload: &str) -> Result<Option<Element>, WireError> {
        self.iq(from, IqType::Get, payload)
    }

    /// Expects success.
    #[track_caller]
    pub fn ok_set(&mut self, from: &str, payload: &str) -> Option<Element> {
        self.set(from, payload)
            .unwrap_or_else(|e| panic!("{payload}: {e:?}"))
    }

    #[track_caller]
    pub fn ok_get(&mut self, from: &str, payload: &str) -> Option<Element> {
        self.get(from, payload)
            .unwrap_or_else(|e| panic!("{payload}: {e:?}"))
    }

    #[track_caller]
    pub fn err_set(&mut self, from: &str, payload: &str) -> WireError {
        self.set(from, payload).expect_err(payload)
    }

    #[track_caller]
    pub fn err_get(&mut self, from: &str, payload: &str) -> WireError {
        self.get(from, payload).expect_err(payload)
    }

    pub fn create(&mut self, from: &str, node: &str) {
        self.ok_set(from, &ps(&format!("<create node='{node}'/>")));
    }

    pub fn create_with(&mut self, from: &str, node: &str, fields: &[(&str, &str)]) {
        self.ok_set(
            from,
            &ps(&format!(
                "<create node='{node}'/><configure>{}</configure>",
                config_form(fields)
            )),
        );
    }

    pub fn publish(
        &mut self,
        from: &str,
        node: &str,
        id: &str,
        body: &str,
    ) -> Result<Option<Element>, WireError> {
        self.set(
            from,
            &ps(&format!(
                "<publish node='{node}'><item id='{id}'><entry xmlns='urn:test'>{body}</entry></item></publish>"
            )),
        )
    }

    pub fn subscribe(&mut self, from: &str, node: &str) -> Result<Option<Element>, WireError> {
        self.set(
            from,
            &ps(&format!("<subscribe node='{node}' jid='{from}'/>")),
        )
    }

    /// The notifications among the last effects.
    pub fn notifications(&self) -> Vec<&Notification> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// The single notification of the last request.
    #[track_caller]
    pub fn notification(&self) -> &Notification {
        let n = self.notifications();
        assert_eq!(n.len(), 1, "{:?}", self.effects);
        n[0]
    }

    /// Recipients' JIDs of a notification, as strings.
    pub fn recipients(n: &Notification) -> Vec<String> {
        n.recipients.iter().map(|s| s.jid.to_string()).collect()
    }

    /// Item ids currently stored in a node, newest first (via the owner-free store API).
    pub fn stored_ids(&self, node: &str) -> Vec<String> {
        use hydrant_pubsub::{ItemQuery, Store};
        self.svc
            .store()
            .query_items(
                &NodeName::from(node),
                &ItemQuery {
                    newest_first: true,
                    ..ItemQuery::default()
                },
            )
            .unwrap()
            .iter()
            .map(|i| i.id.to_string())
            .collect()
    }

    /// The ids in an items reply, in order.
    pub fn reply_item_ids(reply: &Element) -> Vec<String> {
        reply
            .get_child("items", PS)
            .expect("items")
            .children()
            .map(|i| i.attr("id").unwrap().to_owned())
            .collect()
    }
}

/// The event of a notification, as the server would render it.
pub fn rendered(n: &Notification) -> String {
    xep0060::event::render(n).to_string()
}

pub fn is_items_event(n: &Notification) -> bool {
    matches!(n.event, Event::Items { .. })
}

/// A [`MemoryStore`] that counts the items it hands out with their payloads
/// (`get_item`, `query_items`): what a backend has to read and parse. Metadata
/// (`item_meta`) and counts are free.
#[derive(Debug, Default)]
pub struct CountingStore {
    pub inner: MemoryStore,
    pub items_read: std::cell::Cell<usize>,
}

mod counting {
    use std::sync::Arc;

    use hydrant_proto::BareJid;
    use hydrant_pubsub::{
        Affiliation, Item, ItemId, ItemMeta, ItemQuery, NodeConfig, NodeName, NodeRecord, Store,
        StoreError, SubChange,
    };

    impl Store for super::CountingStore {
        fn load_nodes(&mut self) -> Result<Vec<NodeRecord>, StoreError> {
            self.inner.load_nodes()
        }
        fn create_node(&mut self, node: &NodeRecord) -> Result<(), StoreError> {
            self.inner.create_node(node)
        }
        fn delete_node(&mut self, node: &NodeName) -> Result<(), StoreError> {
            self.inner.delete_node(node)
        }
        fn set_config(
            &mut self,
            node: &NodeName,
            config: &NodeConfig,
            keep: u32,
        ) -> Result<Vec<ItemId>, StoreError> {
            self.inner.set_config(node, config, keep)
        }
        fn set_affiliations(
            &mut self,
            node: &NodeName,
            changes: &[(BareJid, Affiliation)],
        ) -> Result<(), StoreError> {
            self.inner.set_affiliations(node, changes)
        }
        fn update_subscriptions(
            &mut self,
            node: &NodeName,
            changes: &[SubChange],
        ) -> Result<(), StoreError> {
            self.inner.update_subscriptions(node, changes)
        }
        fn put_item(
            &mut self,
            node: &NodeName,
            item: &Arc<Item>,
            keep: u32,
        ) -> Result<Vec<ItemId>, StoreError> {
            self.inner.put_item(node, item, keep)
        }
        fn delete_items(&mut self, node: &NodeName, ids: &[ItemId]) -> Result<(), StoreError> {
            self.inner.delete_items(node, ids)
        }
        fn purge_items(&mut self, node: &NodeName) -> Result<(), StoreError> {
            self.inner.purge_items(node)
        }
        fn get_item(&self, node: &NodeName, id: &ItemId) -> Result<Option<Arc<Item>>, StoreError> {
            let r = self.inner.get_item(node, id)?;
            self.items_read
                .set(self.items_read.get() + usize::from(r.is_some()));
            Ok(r)
        }
        fn item_meta(&self, node: &NodeName, ids: &[ItemId]) -> Result<Vec<ItemMeta>, StoreError> {
            self.inner.item_meta(node, ids)
        }
        fn query_items(
            &self,
            node: &NodeName,
            q: &ItemQuery,
        ) -> Result<Vec<Arc<Item>>, StoreError> {
            let r = self.inner.query_items(node, q)?;
            self.items_read.set(self.items_read.get() + r.len());
            Ok(r)
        }
        fn count_items(&self, node: &NodeName, q: &ItemQuery) -> Result<u64, StoreError> {
            self.inner.count_items(node, q)
        }
    }
}
