//! Scenarios: each one is a subcommand of `hydrant-load` with its own options,
//! phases and result. They share `target` (options), `xmpp` (connections) and
//! `report` (counters, progress, JSON).

pub mod connect;
