//! Helpers shared by the federation wire tests (two servers on loopback).

use hydrant_proto::Element;

use super::pubsub::PW;
use super::{Client, Server};

/// A port free on 127.0.0.1 now (bound, then released), for listeners a peer's
/// configuration must name before both servers are up.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `<message/>` from exactly `from`.
pub fn message_from(from: &str) -> impl Fn(&Element) -> bool + '_ {
    move |e| e.name() == "message" && e.attr("from") == Some(from)
}

/// Creates `user` and brings it online (roster requested, initial presence sent).
pub async fn online(server: &Server, user: &str) -> Client {
    server.add_user(user, PW);
    server.online(user, PW, "phone").await
}

/// `[s2s]` for a server listening on `port` that finds `other` (and its pubsub service)
/// on `other_port`.
pub fn s2s(port: u16, other: &str, other_port: u16) -> String {
    s2s_with(port, other, other_port, "")
}

/// [`s2s`] with more `[s2s]` keys (one per line).
pub fn s2s_with(port: u16, other: &str, other_port: u16, keys: &str) -> String {
    format!(
        "[s2s]\n\
         listen = [\"127.0.0.1:{port}\"]\n\
         negotiate_timeout_secs = 10\n\
         {keys}\n\
         [s2s.overrides]\n\
         \"{other}\" = [\"127.0.0.1:{other_port}\"]\n\
         \"pubsub.{other}\" = [\"127.0.0.1:{other_port}\"]\n"
    )
}
