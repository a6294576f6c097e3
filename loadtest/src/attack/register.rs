//! `register`: XEP-0077 registrations of random names before authentication, as
//! fast as the server answers, `--register-per-conn` per stream, then a new stream.

use std::sync::Arc;

use super::{Env, Tally, payload};
use crate::xmpp::conn::{ConnError, ErrorKind, Stage};

pub async fn run(env: Arc<Env>, tally: Arc<Tally>) {
    loop {
        tokio::select! {
            () = env.stop.cancelled() => return,
            () = once(&env, &tally) => {}
        }
    }
}

async fn once(env: &Env, tally: &Tally) {
    let Some(mut conn) = env.open(tally).await else {
        return;
    };
    let _open = tally.opened();
    for _ in 0..env.register_per_conn.max(1) {
        let query = payload::register_query(
            &payload::random_name("hl-reg-"),
            &payload::random_name("pw-"),
        );
        tally.attempt(query.len());
        match conn
            .iq(Stage::Register, "set", &env.target.domain, &query)
            .await
        {
            Ok(reply) => {
                tally.received(reply.len());
                tally.answer("register: created");
            }
            Err(ConnError {
                kind: ErrorKind::Refused(cond),
                stage,
            }) => tally.answer(format!("{stage}: <{cond}/>")),
            Err(e) => {
                tally.answer(e.reason());
                return;
            }
        }
    }
    conn.close().await;
}
