//! `guess`: SASL logins to a subscriber's account with wrong passwords, as many as
//! the server answers on one stream (RFC 6120 6.4.5 lets a client retry after a
//! `<failure/>`), then on a new one.

use std::sync::Arc;

use super::{Env, Tally, payload};
use crate::xmpp::conn::{ConnError, ErrorKind};
use crate::xmpp::sasl::Mechanism;
use crate::xmpp::scan;

pub async fn run(env: Arc<Env>, tally: Arc<Tally>) {
    loop {
        tokio::select! {
            () = env.stop.cancelled() => return,
            () = once(&env, &tally) => {}
        }
    }
}

/// The cheapest mechanism for the attacker among those offered: PLAIN costs the
/// server a key derivation per guess and the client nothing.
pub fn cheapest(features: &[u8], configured: Mechanism) -> Mechanism {
    let offered = scan::child_texts(features, "mechanism");
    [
        Mechanism::Plain,
        Mechanism::ScramSha1,
        Mechanism::ScramSha256,
    ]
    .into_iter()
    .find(|m| offered.iter().any(|o| o == m.name()))
    .unwrap_or(configured)
}

async fn once(env: &Env, tally: &Tally) {
    let Some(mut conn) = env.open(tally).await else {
        return;
    };
    let _open = tally.opened();
    let mech = cheapest(conn.features(), env.target.mechanism);
    loop {
        let password = payload::random_name("guess-");
        tally.attempt(password.len());
        match conn.sasl_attempt(mech, &env.victim, &password).await {
            Ok(()) => {
                // Never expected: the password is random.
                tally.answer("auth: SUCCESS (a guess was accepted)");
                return;
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_is_preferred_then_scram() {
        let f = b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                  <mechanism>SCRAM-SHA-256</mechanism><mechanism>PLAIN</mechanism>\
                  </mechanisms></stream:features>";
        assert_eq!(cheapest(f, Mechanism::ScramSha1), Mechanism::Plain);
        let f = b"<stream:features><mechanisms><mechanism>SCRAM-SHA-256</mechanism>\
                  </mechanisms></stream:features>";
        assert_eq!(cheapest(f, Mechanism::ScramSha1), Mechanism::ScramSha256);
        assert_eq!(
            cheapest(b"<features/>", Mechanism::ScramSha1),
            Mechanism::ScramSha1
        );
    }
}
