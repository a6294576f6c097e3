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
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::attack::Attack;
    use crate::attack::bomb::tests::env;
    use crate::xmpp::scan::{Event, Scanner};

    /// A scripted server offering SCRAM and PLAIN that refuses two guesses on one
    /// stream, then ends it with `<policy-violation/>`: three attempts, each answered,
    /// all PLAIN for the victim.
    #[tokio::test]
    async fn guesses_are_retried_on_one_stream_until_the_server_ends_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let env = env(listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut sc = Scanner::default();
            let mut buf = [0u8; 1024];
            let mut auths = Vec::new();
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed early");
                sc.feed(&buf[..n]);
                while let Some(ev) = sc.next_event().unwrap() {
                    let reply = match ev {
                        Event::StreamOpen(_) => {
                            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                             xmlns:stream='http://etherx.jabber.org/streams' id='s' \
                             from='load.test' version='1.0'><stream:features>\
                             <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                             <mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism>\
                             </mechanisms></stream:features>"
                        }
                        Event::Element(e) => {
                            assert_eq!(scan::attr(e, "mechanism").as_deref(), Some("PLAIN"));
                            auths.push(B64.decode(scan::root_text(e)).unwrap());
                            if auths.len() < 3 {
                                "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
                                 <not-authorized/></failure>"
                            } else {
                                "<stream:error><policy-violation \
                                 xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
                                 </stream:error></stream:stream>"
                            }
                        }
                        Event::StreamClose => unreachable!(),
                    };
                    sock.write_all(reply.as_bytes()).await.unwrap();
                    if auths.len() == 3 {
                        return auths;
                    }
                }
            }
        });
        let tally = Tally::default();
        once(&env, &tally).await;
        let auths = server.await.unwrap();
        assert!(auths.iter().all(|a| a.starts_with(b"\0load0\0guess-")));
        assert_ne!(auths[0], auths[1], "a new password each time");
        let r = tally.result(Attack::Guess, 1, 1.0);
        assert_eq!((r.connections, r.attempts, r.unanswered), (1, 3, 0));
        assert_eq!(
            r.outcomes.into_iter().collect::<Vec<_>>(),
            [
                ("auth: <not-authorized/>".to_owned(), 2),
                ("auth: stream error <policy-violation/>".to_owned(), 1)
            ]
        );
    }

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
