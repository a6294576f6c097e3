//! Our own small DOM for stanzas.
//!
//! Names are local names with a resolved namespace; element prefixes from the wire are not
//! kept, and the writer emits every element in default-namespace form (`xmlns='..'` only
//! where the namespace changes). Attributes keep the name they were written with:
//! `xml:lang` stays `xml:lang`, and an attribute with another prefix (`p:a`) is stored
//! together with the `xmlns:p` declaration it needs (the reader adds it to the element that
//! carries the attribute), so it keeps its meaning through parse → write.

use std::fmt;
use std::sync::Arc;

use crate::writer::{escape_attr_into, escape_text_into};

/// An XML element: local name, namespace, attributes in order, child nodes.
///
/// The namespace is shared (`Arc<str>`): every element of a parsed stanza that inherits
/// a namespace points at the one string its declaration produced, so a long namespace
/// URI costs its length once, not once per descendant (the namespace bomb of the
/// hardening issue: 64 KiB URI × 16,000 children was 1 GB).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Element {
    name: String,
    ns: Arc<str>,
    attrs: Vec<(String, String)>,
    nodes: Vec<Node>,
}

/// A child node: an element or character data (already unescaped).
///
/// The element is boxed so that a node is 24 bytes, not 88: a stanza of many small
/// children (`<a/>` is 4 bytes on the wire) costs far less, and a growing child vector
/// copies less.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    Element(Box<Element>),
    Text(String),
}

impl Element {
    pub fn new(name: impl Into<String>, ns: impl Into<Arc<str>>) -> Self {
        Element {
            name: name.into(),
            ns: ns.into(),
            attrs: Vec::new(),
            nodes: Vec::new(),
        }
    }

    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    pub fn with_child(mut self, child: Element) -> Self {
        self.append_child(child);
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.append_text(text);
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && &*self.ns == ns
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets an attribute, replacing an existing value in place (order is kept).
    ///
    /// The name `xmlns` is not an attribute here: the namespace is [`Element::ns`], and
    /// the writer ignores a stored `xmlns` attribute.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        if let Some(slot) = self.attrs.iter_mut().find(|(n, _)| *n == name) {
            slot.1 = value;
        } else {
            self.attrs.push((name, value));
        }
    }

    /// Sets all attributes at once (the reader: an exactly sized vector, no growth slack).
    pub(crate) fn set_attrs(&mut self, attrs: Vec<(String, String)>) {
        self.attrs = attrs;
    }

    pub fn remove_attr(&mut self, name: &str) -> Option<String> {
        let i = self.attrs.iter().position(|(n, _)| n == name)?;
        Some(self.attrs.remove(i).1)
    }

    pub fn attrs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.attrs.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Element children only, in document order.
    pub fn children(&self) -> impl Iterator<Item = &Element> {
        self.nodes.iter().filter_map(|n| match n {
            Node::Element(e) => Some(&**e),
            Node::Text(_) => None,
        })
    }

    /// Mutable access to the element children.
    pub fn children_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.nodes.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(&mut **e),
            Node::Text(_) => None,
        })
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn append_child(&mut self, child: Element) {
        self.nodes.push(Node::Element(Box::new(child)));
    }

    /// Appends character data, merging with a preceding text node so that equal documents
    /// give equal trees however their text was chunked. Empty text is not stored.
    pub fn append_text(&mut self, text: impl Into<String>) {
        let text = text.into();
        if text.is_empty() {
            return;
        }
        if let Some(Node::Text(last)) = self.nodes.last_mut() {
            last.push_str(&text);
        } else {
            self.nodes.push(Node::Text(text));
        }
    }

    pub fn get_child(&self, name: &str, ns: &str) -> Option<&Element> {
        self.children().find(|c| c.is(name, ns))
    }

    pub fn get_child_mut(&mut self, name: &str, ns: &str) -> Option<&mut Element> {
        self.children_mut().find(|c| c.is(name, ns))
    }

    /// Removes and returns the first child element with this name and namespace.
    pub fn remove_child(&mut self, name: &str, ns: &str) -> Option<Element> {
        let i = self
            .nodes
            .iter()
            .position(|n| matches!(n, Node::Element(e) if e.is(name, ns)))?;
        match self.nodes.remove(i) {
            Node::Element(e) => Some(*e),
            Node::Text(_) => unreachable!("position() matched an element"),
        }
    }

    /// Consumes the element, returning its child nodes.
    pub fn into_nodes(self) -> Vec<Node> {
        self.nodes
    }

    /// Removes all child nodes (elements and text).
    pub fn clear_nodes(&mut self) {
        self.nodes.clear();
    }

    /// Concatenation of the direct text children.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            if let Node::Text(t) = n {
                out.push_str(t);
            }
        }
        out
    }

    /// Moves this element, and every descendant reachable through elements still in
    /// namespace `from`, into namespace `to`.
    ///
    /// Used when a stanza crosses from a `jabber:client` stream to a `jabber:server` one:
    /// `<body/>` inherited the stream's content namespace and must follow it, while a
    /// `<message xmlns='jabber:client'/>` wrapped in `<forwarded xmlns='urn:xmpp:forward:0'/>`
    /// (XEP-0297) must stay `jabber:client`, hence the walk stops at foreign namespaces.
    pub fn rename_ns(&mut self, from: &str, to: &str) {
        if &*self.ns != from || from == to {
            return;
        }
        self.rename_ns_shared(from, &Arc::from(to));
    }

    fn rename_ns_shared(&mut self, from: &str, to: &Arc<str>) {
        if &*self.ns != from {
            return;
        }
        self.ns = to.clone();
        for child in self.children_mut() {
            child.rename_ns_shared(from, to);
        }
    }

    /// Releases spare capacity of the attribute and child vectors (the parser calls it
    /// when an element ends, so a parsed stanza holds no growth slack).
    pub(crate) fn shrink(&mut self) {
        self.attrs.shrink_to_fit();
        self.nodes.shrink_to_fit();
    }

    /// Serializes into `out`. `parent_ns` is the namespace in scope where the element is
    /// written (for a stanza: the stream's content namespace); `xmlns` is emitted only
    /// when the element's namespace differs from it.
    pub fn write_to(&self, out: &mut Vec<u8>, parent_ns: &str) {
        out.push(b'<');
        out.extend_from_slice(self.name.as_bytes());
        if &*self.ns != parent_ns {
            out.extend_from_slice(b" xmlns='");
            escape_attr_into(out, &self.ns);
            out.push(b'\'');
        }
        for (name, value) in &self.attrs {
            if name == "xmlns" {
                continue;
            }
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"='");
            escape_attr_into(out, value);
            out.push(b'\'');
        }
        if self.nodes.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for node in &self.nodes {
            match node {
                Node::Element(e) => e.write_to(out, &self.ns),
                Node::Text(t) => escape_text_into(out, t),
            }
        }
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    pub fn to_bytes(&self, parent_ns: &str) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out, parent_ns);
        out
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Everything written is either our ASCII markup or escaped `String` content.
        f.write_str(&String::from_utf8_lossy(&self.to_bytes("")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ns;

    #[test]
    fn builds_and_queries() {
        let mut el = Element::new("iq", ns::CLIENT)
            .with_attr("type", "get")
            .with_attr("id", "1")
            .with_child(Element::new("ping", ns::PING))
            .with_text("a")
            .with_text("b");
        assert!(el.is("iq", ns::CLIENT));
        assert_eq!(el.attr("type"), Some("get"));
        el.set_attr("type", "set");
        assert_eq!(
            el.attrs().collect::<Vec<_>>(),
            [("type", "set"), ("id", "1")]
        );
        assert_eq!(el.text(), "ab");
        assert_eq!(el.nodes().len(), 2, "adjacent text is merged");
        assert!(el.get_child("ping", ns::PING).is_some());
        assert!(el.get_child("ping", ns::CLIENT).is_none());
        assert_eq!(el.remove_attr("id").as_deref(), Some("1"));
        assert!(el.remove_child("ping", ns::PING).is_some());
        assert_eq!(el.children().count(), 0);
    }

    #[test]
    fn writes_xmlns_only_on_namespace_change() {
        let el = Element::new("message", ns::CLIENT)
            .with_attr("to", "a@b")
            .with_attr("xml:lang", "en")
            .with_child(Element::new("body", ns::CLIENT).with_text("1 < 2 & 3"))
            .with_child(Element::new("x", "urn:x").with_child(Element::new("y", "urn:x")))
            .with_child(Element::new("z", ""));
        assert_eq!(
            el.to_bytes(ns::CLIENT),
            b"<message to='a@b' xml:lang='en'><body>1 &lt; 2 &amp; 3</body>\
              <x xmlns='urn:x'><y/></x><z xmlns=''/></message>"
        );
        assert_eq!(
            el.to_string(),
            String::from_utf8(el.to_bytes("")).unwrap(),
            "Display is to_bytes(\"\")"
        );
        assert!(
            el.to_string()
                .starts_with("<message xmlns='jabber:client' ")
        );
    }

    #[test]
    fn rename_ns_stops_at_foreign_namespaces() {
        let mut el = Element::new("message", ns::CLIENT)
            .with_child(Element::new("body", ns::CLIENT))
            .with_child(
                Element::new("forwarded", ns::FORWARD)
                    .with_child(Element::new("message", ns::CLIENT)),
            );
        el.rename_ns(ns::CLIENT, ns::SERVER);
        assert_eq!(el.ns(), ns::SERVER);
        assert!(el.get_child("body", ns::SERVER).is_some());
        let fwd = el.get_child("forwarded", ns::FORWARD).unwrap();
        assert!(fwd.get_child("message", ns::CLIENT).is_some());
    }
}
