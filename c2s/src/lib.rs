//! hydrant-c2s: client-to-server streams.
