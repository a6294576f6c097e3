//! The data directory (issue 8, item 15): one server at a time on it, and a corrupt row
//! found at start-up is an error naming its table and key, not a panic.

mod common;

use std::path::Path;

use common::pubsub::{PW, assert_result, users};
use common::{Server, config_text};
use hydrant_proto::ns;
use hydrant_server::config::Config;
use tokio_util::sync::CancellationToken;

/// Runs a second `serve` on `dir` to completion (it must fail before it serves).
async fn serve_once(dir: &Path) -> anyhow::Result<()> {
    let cfg = Config::parse(&config_text(dir, "", ""), Path::new("test")).expect("config");
    let token = CancellationToken::new();
    tokio::time::timeout(
        common::TIMEOUT,
        hydrant_server::serve::serve(cfg, token, None),
    )
    .await
    .expect("serve returns at once when it cannot start")
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_refuses_with_a_clear_error() {
    let server = Server::start().await;
    server.add_user("alice", "pw-alice");
    let err = serve_once(server.data_dir())
        .await
        .expect_err("the directory is in use");
    let msg = format!("{err:#}");
    assert!(msg.contains("in use by another hydrant server"), "{msg}");
    assert!(
        msg.contains(&server.data_dir().display().to_string()),
        "{msg}"
    );
    // The first server is unaffected.
    let mut a = server.online("alice", "pw-alice", "r").await;
    a.sync().await;
    // Once it stops, the directory is free again.
    let server = server.restart().await;
    server.online("alice", "pw-alice", "r").await.sync().await;
}

#[tokio::test]
async fn a_corrupt_row_at_start_up_is_reported_with_table_and_key() {
    let server = Server::start().await;
    users(&server, &["owner"]);
    let mut c = server.online("owner", PW, "r").await;
    let res = c
        .iq(
            "set",
            Some("pubsub.localhost"),
            &format!(
                "<pubsub xmlns='{}'><create node='photos'/></pubsub>",
                ns::PUBSUB
            ),
        )
        .await;
    assert_result(&res, "create");
    c.close().await;
    let dir = server.stop().await;

    // A value of the wrong type, as a hand edit or a bad restore could leave it.
    let raw = rusqlite::Connection::open(dir.path().join("hydrant.sqlite3")).expect("db");
    raw.execute(
        "UPDATE pubsub_nodes SET persist_items = 'maybe' WHERE node = 'photos'",
        [],
    )
    .expect("update");
    drop(raw);

    let err = serve_once(dir.path())
        .await
        .expect_err("start-up fails on the corrupt row");
    let msg = format!("{err:#}");
    for part in [
        "pubsub_nodes",
        "service=\"pubsub.localhost\"",
        "node=\"photos\"",
        "persist_items",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
}
