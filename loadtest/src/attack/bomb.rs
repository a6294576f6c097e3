//! `bomb`: a stream header, then issue 8's namespace bomb (~130 KB, one stanza,
//! before any authentication); read until the server ends the connection; again.

use std::sync::Arc;

use super::{Env, Tally};
use crate::xmpp::conn::Stage;

pub async fn run(env: Arc<Env>, tally: Arc<Tally>, bomb: Arc<Vec<u8>>) {
    loop {
        tokio::select! {
            () = env.stop.cancelled() => return,
            () = once(&env, &tally, &bomb) => {}
        }
    }
}

/// One connection: open, bomb, read until the end (counted by how it ended).
async fn once(env: &Env, tally: &Tally, bomb: &[u8]) {
    let Some(mut conn) = env.open(tally).await else {
        return;
    };
    let _open = tally.opened();
    tally.attempt(bomb.len());
    if let Err(e) = conn.send_raw(Stage::Attack, bomb).await {
        tally.answer(e.reason());
        return;
    }
    loop {
        match conn.next_element(Stage::Attack).await {
            // A stanza error or anything else: the stream goes on; wait for its end.
            Ok(elem) => tally.received(elem.len()),
            Err(e) => {
                tally.answer(e.reason());
                return;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::attack::{Attack, payload};
    use crate::target::Sources;
    use crate::xmpp::conn::{Target, TlsMode};
    use crate::xmpp::sasl::Mechanism;

    pub(crate) fn env(server: std::net::SocketAddr) -> Env {
        let target = Target {
            server,
            domain: "load.test".into(),
            tls: TlsMode::None,
            tls_config: None,
            mechanism: Mechanism::Plain,
            password: "pw".into(),
            resource: "hl".into(),
            presence: false,
            timeout: Duration::from_secs(5),
            recv_buffer: None,
            zlib: false,
        };
        Env::new(
            Arc::new(target),
            Sources::parse("127.0.0.1").unwrap(),
            CancellationToken::new(),
            "load0".into(),
            "pubsub.load.test".into(),
            "n".into(),
            500,
            10,
            Duration::from_secs(1),
        )
    }

    /// A scripted server that reads the whole bomb, then ends the stream with
    /// `<policy-violation/>`: one attempt, answered, counted by its condition.
    #[tokio::test]
    async fn a_bomb_is_sent_whole_and_the_stream_error_counted() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let env = env(listener.local_addr().unwrap());
        let bomb = payload::namespace_bomb();
        let want = payload::stream_header("load.test").len() + bomb.len();
        let server = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = vec![0u8; 65536];
            let mut answered = false;
            while got.len() < want {
                let n = sock.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed early");
                got.extend_from_slice(&buf[..n]);
                if !answered && got.ends_with(b"xml:lang='en'>") {
                    sock.write_all(
                        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                          xmlns:stream='http://etherx.jabber.org/streams' id='s' \
                          from='load.test' version='1.0'><stream:features/>",
                    )
                    .await
                    .unwrap();
                    answered = true;
                }
            }
            assert!(got.ends_with(b"<a/></x>"));
            sock.write_all(
                b"<stream:error><policy-violation \
                  xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>",
            )
            .await
            .unwrap();
            got.len()
        });
        let tally = Tally::default();
        once(&env, &tally, &bomb).await;
        assert_eq!(server.await.unwrap(), want);
        let r = tally.result(Attack::Bomb, 1, 1.0);
        assert_eq!((r.connections, r.attempts, r.unanswered), (1, 1, 0));
        assert_eq!(r.bytes_sent, bomb.len() as u64);
        assert_eq!(
            r.outcomes.into_iter().collect::<Vec<_>>(),
            [("attack: stream error <policy-violation/>".to_owned(), 1)]
        );
        assert_eq!(tally.open.load(Ordering::Relaxed), 0);
        assert_eq!(r.peak_open, 1);
    }
}
