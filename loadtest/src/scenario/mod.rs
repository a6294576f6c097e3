//! Scenarios: each one is a subcommand of `hydrant-load` with its own options,
//! phases and result. They share `target` (options), `xmpp` (connections) and
//! `report` (counters, progress, JSON); the pubsub ones share `pubsub` (the engine).

pub mod connect;
pub mod feeds;
pub mod firehose;
pub mod hostile;
pub mod limit;
pub mod mobile;
pub mod publishers;
pub mod pubsub;
pub mod storm;
