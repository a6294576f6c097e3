//! XEP-0060 stanzas the load scenarios send, and the scan of received notifications.
//!
//! Items carry their own measurement: the item id is `{seq}-{ns}`, the publish
//! sequence number and the `CLOCK_MONOTONIC` instant it was sent, so a subscriber
//! (in any generator process on the machine) gets loss and latency from the id alone,
//! without parsing the payload.

use super::scan;

pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_DATA: &str = "jabber:x:data";

/// `<create/>` with a `<configure/>` form: no retraction notices, payloads delivered,
/// open access, and `max_items` if given (servers differ in their own default).
pub fn create_payload(node: &str, max_items: Option<u32>) -> String {
    let field =
        |var: &str, value: &str| format!("<field var='{var}'><value>{value}</value></field>");
    let mut form = format!(
        "<field var='FORM_TYPE' type='hidden'><value>{NS_PUBSUB}#node_config</value></field>{}{}{}",
        field("pubsub#notify_retract", "0"),
        field("pubsub#deliver_payloads", "1"),
        field("pubsub#access_model", "open"),
    );
    if let Some(n) = max_items {
        form.push_str(&field("pubsub#max_items", &n.to_string()));
    }
    format!(
        "<pubsub xmlns='{NS_PUBSUB}'><create node='{}'/><configure>\
         <x xmlns='{NS_DATA}' type='submit'>{form}</x></configure></pubsub>",
        scan::escape(node)
    )
}

pub fn subscribe_payload(node: &str, jid: &str) -> String {
    format!(
        "<pubsub xmlns='{NS_PUBSUB}'><subscribe node='{}' jid='{}'/></pubsub>",
        scan::escape(node),
        scan::escape(jid)
    )
}

/// Builds publish requests with an Atom entry (a photo upload) padded to a size.
#[derive(Debug, Clone)]
pub struct ItemTemplate {
    /// Text of `<content>` that brings the whole `<item>` to the requested size.
    padding: String,
}

impl ItemTemplate {
    /// Items of about `item_bytes` bytes each (`<item>` to `</item>`; never smaller
    /// than the entry's fixed parts, ~700 bytes).
    pub fn new(item_bytes: usize) -> Self {
        let probe = Self {
            padding: String::new(),
        };
        // Ids of the run's largest size, so sizes do not drift with the sequence.
        let base = probe.item(9_999_999, u64::MAX / 2).len();
        let words = "golden light over the harbour, long exposure, ferries and gulls; ";
        let padding = words
            .chars()
            .cycle()
            .take(item_bytes.saturating_sub(base))
            .collect();
        Self { padding }
    }

    /// The `<item>` element for publish `seq` sent at `sent_ns`.
    pub fn item(&self, seq: u64, sent_ns: u64) -> String {
        format!(
            "<item id='{seq}-{sent_ns}'><entry xmlns='http://www.w3.org/2005/Atom'>\
             <title type='text'>Photo {seq}: evening ferry</title>\
             <id>tag:photos.example.com,2024:photo/{seq}</id>\
             <link rel='alternate' type='text/html' href='https://photos.example.com/u/hydrant-load/{seq}/'/>\
             <link rel='enclosure' type='image/jpeg' length='482113' href='https://img.photos.example.com/{seq}_b.jpg'/>\
             <published>2024-05-01T12:00:00Z</published><updated>2024-05-01T12:00:00Z</updated>\
             <author><name>hydrant-load</name><uri>https://photos.example.com/u/hydrant-load/</uri></author>\
             <category term='harbour'/><category term='sunset'/>\
             <content type='html'>&lt;p&gt;{}&lt;/p&gt;</content></entry></item>",
            self.padding
        )
    }

    /// The whole publish iq (id `p{seq}`).
    pub fn publish(&self, service: &str, node: &str, seq: u64, sent_ns: u64) -> String {
        format!(
            "<iq type='set' to='{}' id='p{seq}'><pubsub xmlns='{NS_PUBSUB}'>\
             <publish node='{}'>{}</publish></pubsub></iq>",
            scan::escape(service),
            scan::escape(node),
            self.item(seq, sent_ns)
        )
    }
}

/// The publish sequence number of a publish reply's id (`p{seq}`).
pub fn publish_seq(iq_id: &str) -> Option<u64> {
    iq_id.strip_prefix('p')?.parse().ok()
}

/// Call `f(seq, sent_ns)` for every `<item id='{seq}-{ns}'>` inside `elem` (a
/// notification message). Items with other ids are skipped.
pub fn for_each_item(elem: &[u8], mut f: impl FnMut(u64, u64)) {
    let mut pos = 0;
    while let Some(i) = find(&elem[pos..], b"<item") {
        let at = pos + i;
        pos = at + 5;
        match elem.get(pos) {
            Some(b' ' | b'\t' | b'\n' | b'\r' | b'>' | b'/') => {}
            _ => continue, // <items ...
        }
        if let Some((seq, ns)) = scan::attr(&elem[at..], "id").as_deref().and_then(parse_id) {
            f(seq, ns);
        }
    }
}

fn parse_id(id: &str) -> Option<(u64, u64)> {
    let (seq, ns) = id.split_once('-')?;
    Some((seq.parse().ok()?, ns.parse().ok()?))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut from = 0;
    while let Some(i) = hay[from..].iter().position(|&b| b == first) {
        let at = from + i;
        if hay[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_have_the_requested_size_and_round_trip() {
        let t = ItemTemplate::new(2048);
        let item = t.item(42, 1_234_567_890_123);
        assert!((2000..2100).contains(&item.len()), "{}", item.len());
        let msg = format!(
            "<message from='pubsub.x' to='a@x/r'><event xmlns='{NS_PUBSUB}#event'>\
             <items node='n'>{item}</items></event></message>"
        );
        let mut got = Vec::new();
        for_each_item(msg.as_bytes(), |s, ns| got.push((s, ns)));
        assert_eq!(got, [(42, 1_234_567_890_123)]);
        assert!(ItemTemplate::new(10).item(1, 1).len() < 1000);
        let iq = t.publish("pubsub.x", "n&1", 7, 9);
        assert!(iq.contains("id='p7'") && iq.contains("node='n&amp;1'"));
        assert_eq!(publish_seq("p7"), Some(7));
    }

    #[test]
    fn several_items_double_quotes_and_foreign_ids() {
        let msg = br#"<message><event><items node="n"><item publisher="p" id="3-30"/><item id='x'/><item id='4-40'>x</item></items></event></message>"#;
        let mut got = Vec::new();
        for_each_item(msg, |s, ns| got.push((s, ns)));
        assert_eq!(got, [(3, 30), (4, 40)]);
    }

    #[test]
    fn forms() {
        let c = create_payload("feed1", Some(256));
        assert!(c.contains("<create node='feed1'/>"));
        assert!(c.contains("pubsub#max_items'><value>256<"));
        assert!(!create_payload("f", None).contains("max_items"));
        assert!(subscribe_payload("f", "a@b/c").contains("jid='a@b/c'"));
    }
}
