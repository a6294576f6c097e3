//! The null server behind `limit`: the least an XMPP server can do for the pubsub
//! scenarios, so that the same client measures what this machine can carry at all.
//!
//! It accepts any PLAIN login, binds any resource, answers every iq with a result,
//! remembers subscriptions (node → (connection, JID)), and for a publish serializes the
//! notification once (the part before the recipient's address and the part after)
//! and queues it to every subscriber's connection; a writer task per connection
//! drains its queue with one `write` for as many queued notifications as fit in 64 KiB.
//! Queues are bounded: a full queue holds up the publish (and so its acknowledgement),
//! which is how the publisher's in-flight window turns into "as fast as the sockets
//! allow". No TLS, no storage, no routing: a ceiling, not a server.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use clap::Args;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::xmpp::pubsub::NS_PUBSUB;
use crate::xmpp::scan::{self, Event, Scanner};

#[derive(Debug, Clone, Args)]
pub struct NullServerArgs {
    /// Address to listen on (port 0: any; the address is printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Domain in stream headers.
    #[arg(long, default_value = "limit.test")]
    pub domain: String,
    /// Notifications queued per connection before a publish waits.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
}

/// A notification serialized once: `head` + recipient JID + `tail`.
#[derive(Debug)]
struct Note {
    head: Box<[u8]>,
    tail: Box<[u8]>,
}

#[derive(Debug)]
enum Out {
    Raw(Vec<u8>),
    Note(Arc<Note>, Arc<str>),
}

type Subscribers = Arc<Vec<(mpsc::Sender<Out>, Arc<str>)>>;

#[derive(Debug, Default)]
struct State {
    // std Mutex: held for a lookup or an insert, never across an .await.
    nodes: Mutex<HashMap<String, Subscribers>>,
}

pub async fn run(args: NullServerArgs) -> Result<(), String> {
    crate::sys::raise_nofile_limit().map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("listen {}: {e}", args.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("listening on {addr}");
    let _ = std::io::stdout().flush();
    let state = Arc::new(State::default());
    let args = Arc::new(args);
    loop {
        let (sock, _) = listener
            .accept()
            .await
            .map_err(|e| format!("accept: {e}"))?;
        let _ = sock.set_nodelay(true);
        let (state, args) = (state.clone(), args.clone());
        tokio::spawn(async move {
            let _ = serve(sock, &state, &args).await;
        });
    }
}

async fn serve(sock: TcpStream, state: &State, args: &NullServerArgs) -> std::io::Result<()> {
    let (mut rd, mut wr) = sock.into_split();
    let (tx, mut rx) = mpsc::channel::<Out>(args.queue);
    let writer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(64 * 1024);
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            while let Some(out) = next.take() {
                match out {
                    Out::Raw(b) => buf.extend_from_slice(&b),
                    Out::Note(n, to) => {
                        buf.extend_from_slice(&n.head);
                        buf.extend_from_slice(to.as_bytes());
                        buf.extend_from_slice(&n.tail);
                    }
                }
                if buf.len() < 64 * 1024 {
                    next = rx.try_recv().ok();
                }
            }
            if wr.write_all(&buf).await.is_err() {
                return;
            }
            buf.clear();
        }
        let _ = wr.shutdown().await;
    });
    let send = |b: String| {
        let tx = tx.clone();
        async move { tx.send(Out::Raw(b.into_bytes())).await.is_ok() }
    };
    let mut scanner = Scanner::default();
    let mut rbuf = vec![0u8; 16 * 1024];
    let mut user = String::new();
    let mut jid = String::new();
    let domain = scan::escape(&args.domain);
    'read: loop {
        let n = rd.read(&mut rbuf).await?;
        if n == 0 {
            break;
        }
        scanner.feed(&rbuf[..n]);
        loop {
            let reply = match scanner.next_event() {
                Ok(Some(Event::StreamOpen(_))) => {
                    let features = if user.is_empty() {
                        "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                         <mechanism>PLAIN</mechanism></mechanisms>"
                    } else {
                        "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                    };
                    format!(
                        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                         xmlns:stream='http://etherx.jabber.org/streams' id='null' \
                         from='{domain}' version='1.0'><stream:features>{features}</stream:features>"
                    )
                }
                Ok(Some(Event::Element(elem))) => match scan::root_name(elem) {
                    b"auth" => {
                        let raw = B64.decode(scan::root_text(elem)).unwrap_or_default();
                        user = raw
                            .split(|&b| b == 0)
                            .nth(1)
                            .map(|u| String::from_utf8_lossy(u).into_owned())
                            .unwrap_or_default();
                        if user.is_empty() {
                            "anonymous".clone_into(&mut user);
                        }
                        // The next bytes are a new stream: reset before reading them.
                        let ok = send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>".into())
                            .await;
                        scanner.reset();
                        if !ok {
                            break 'read;
                        }
                        continue 'read;
                    }
                    b"iq" => {
                        let elem = elem.to_vec();
                        iq(&elem, state, &tx, &mut jid, &user, &args.domain).await
                    }
                    _ => continue,
                },
                Ok(Some(Event::StreamClose)) => {
                    let _ = send("</stream:stream>".into()).await;
                    break 'read;
                }
                Ok(None) => break,
                Err(_) => break 'read,
            };
            if !send(reply).await {
                break 'read;
            }
        }
    }
    drop(tx);
    let _ = writer.await;
    Ok(())
}

/// The reply to an iq; a publish is fanned out first.
async fn iq(
    elem: &[u8],
    state: &State,
    tx: &mpsc::Sender<Out>,
    jid: &mut String,
    user: &str,
    domain: &str,
) -> String {
    let id = scan::escape(&scan::attr(elem, "id").unwrap_or_default());
    if scan::has_child(elem, "bind", None) {
        let resource = scan::child_texts(elem, "resource")
            .into_iter()
            .next()
            .unwrap_or_else(|| "null".to_owned());
        *jid = format!("{user}@{domain}/{resource}");
        return format!(
            "<iq type='result' id='{id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>{}</jid></bind></iq>",
            scan::escape(jid)
        );
    }
    if let Some(tag) = scan::child_tag(elem, "subscribe") {
        let node = scan::attr(tag, "node").unwrap_or_default();
        let who = scan::attr(tag, "jid").unwrap_or_else(|| jid.clone());
        let to: Arc<str> = scan::escape(&who).into();
        {
            let mut nodes = state.nodes.lock().expect("poisoned");
            let subs = nodes.entry(node.clone()).or_default();
            Arc::make_mut(subs).push((tx.clone(), to.clone()));
        }
        return format!(
            "<iq type='result' id='{id}'><pubsub xmlns='{NS_PUBSUB}'><subscription node='{}' \
             jid='{to}' subscription='subscribed'/></pubsub></iq>",
            scan::escape(&node)
        );
    }
    if let Some(tag) = scan::child_tag(elem, "publish") {
        let node = scan::attr(tag, "node").unwrap_or_default();
        let service = scan::escape(&scan::attr(elem, "to").unwrap_or_default());
        let item = item_of(elem);
        let note = Arc::new(Note {
            head: format!("<message from='{service}' to='")
                .into_bytes()
                .into(),
            tail: format!(
                "' type='headline'><event xmlns='{NS_PUBSUB}#event'><items node='{}'>{}</items>\
                 </event></message>",
                scan::escape(&node),
                String::from_utf8_lossy(item)
            )
            .into_bytes()
            .into(),
        });
        let subs = state.nodes.lock().expect("poisoned").get(&node).cloned();
        for (sub, to) in subs.iter().flat_map(|s| s.iter()) {
            // A closed subscriber is simply skipped.
            let _ = sub.send(Out::Note(note.clone(), to.clone())).await;
        }
        return format!("<iq type='result' id='{id}'/>");
    }
    format!("<iq type='result' id='{id}'/>")
}

/// The `<item>...</item>` (or `<item/>`) inside a publish request.
fn item_of(elem: &[u8]) -> &[u8] {
    let Some(start) = elem.windows(6).position(|w| w == b"<item ") else {
        return b"";
    };
    let end = elem
        .windows(7)
        .rposition(|w| w == b"</item>")
        .map(|e| e + 7)
        .filter(|&e| e > start)
        .unwrap_or(elem.len());
    &elem[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_is_cut_out_of_a_publish() {
        let iq = b"<iq><pubsub><publish node='n'><item id='1-2'><entry>x</entry></item></publish></pubsub></iq>";
        assert_eq!(item_of(iq), b"<item id='1-2'><entry>x</entry></item>");
        assert_eq!(item_of(b"<iq/>"), b"");
    }
}
