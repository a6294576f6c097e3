//! `items`: an authenticated account asks for the firehose node's items by id,
//! `--item-ids` ids per request (the newest items' ids again and again, plus ids
//! that do not exist), the next request as soon as the reply is in. The ids are
//! learnt from a plain retrieval of the newest items every few requests.

use std::sync::Arc;
use std::time::Duration;

use super::{Env, Tally, payload};
use crate::xmpp::conn::{Conn, ConnError, ErrorKind, Stage};

/// Requests between two refreshes of the known item ids: often, as the node keeps
/// only its newest `max_items` and the firehose replaces them quickly.
const REFRESH_EVERY: u32 = 4;
/// Items asked for when refreshing the ids.
const NEWEST: u32 = 20;

/// An items attacker: its account, and its connection (logged in during setup,
/// before the guessing starts to throttle logins from the attacker's address).
#[derive(Debug)]
pub struct ItemsAttacker {
    pub user: String,
    pub index: u64,
    pub conn: Option<Conn>,
}

pub async fn run(env: Arc<Env>, tally: Arc<Tally>, mut attacker: ItemsAttacker) {
    let mut known: Vec<String> = Vec::new();
    let mut sent = 0u32;
    loop {
        if attacker.conn.is_none() {
            // Lost: log in again (the guessing may make this slow or refused).
            let login = async {
                tally
                    .connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Conn::open(env.target.clone(), env.source())
                    .await?
                    .login(&attacker.user, attacker.index)
                    .await
            };
            let r = tokio::select! {
                () = env.stop.cancelled() => return,
                r = login => r,
            };
            match r {
                Ok(c) => attacker.conn = Some(c),
                Err(e) => {
                    tally.outcome(format!("re-login: {}", e.reason()));
                    env.pause(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some(conn) = attacker.conn.as_mut() else {
            continue;
        };
        let _open = tally.opened();
        let r = tokio::select! {
            () = env.stop.cancelled() => return,
            r = round(&env, &tally, conn, &mut known, &mut sent) => r,
        };
        if r.is_err() {
            attacker.conn = None;
        }
    }
}

/// Requests on one connection until it fails.
async fn round(
    env: &Env,
    tally: &Tally,
    conn: &mut Conn,
    known: &mut Vec<String>,
    sent: &mut u32,
) -> Result<(), ConnError> {
    loop {
        if known.is_empty() || sent.is_multiple_of(REFRESH_EVERY) {
            let query = payload::newest_items(&env.node, NEWEST);
            tally.sent(query.len());
            match conn.iq(Stage::Pubsub, "get", &env.service, &query).await {
                Ok(reply) => {
                    tally.received(reply.len());
                    let ids = payload::item_ids(&reply);
                    if !ids.is_empty() {
                        *known = ids;
                    }
                }
                Err(ConnError {
                    kind: ErrorKind::Refused(cond),
                    ..
                }) => tally.outcome(format!("newest items: <{cond}/>")),
                Err(e) => {
                    tally.outcome(e.reason());
                    return Err(e);
                }
            }
        }
        *sent = sent.wrapping_add(1);
        let query = payload::items_by_id(&env.node, known, env.item_ids);
        tally.attempt(query.len());
        match conn.iq(Stage::Pubsub, "get", &env.service, &query).await {
            Ok(reply) => {
                tally.received(reply.len());
                let n = payload::item_ids(&reply).len();
                tally.answer(format!("result: {}", bucket(n)));
            }
            Err(ConnError {
                kind: ErrorKind::Refused(cond),
                stage,
            }) => tally.answer(format!("{stage}: <{cond}/>")),
            Err(e) => {
                tally.answer(e.reason());
                return Err(e);
            }
        }
    }
}

/// Items in a reply, as a coarse bucket for the outcome counts.
fn bucket(n: usize) -> &'static str {
    match n {
        0 => "0 items",
        1..=20 => "1-20 items",
        21..=100 => "21-100 items",
        101..=499 => "101-499 items",
        _ => "500+ items",
    }
}
