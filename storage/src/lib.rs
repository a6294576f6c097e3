//! hydrant-storage: durable stores (accounts, rosters, offline messages; pubsub later).
