//! hydrant-load: a load generator that speaks XMPP over real sockets.
fn main() {}
