//! ember-remote: Prometheus remote write 1.0 (protobuf + snappy). The
//! receiver is here now; the sender (queue manager, shards, retries) comes
//! with the remote-write issue.

pub mod proto;
pub mod receiver;

pub use receiver::{decode_write_request, encode_write_request, write, DecodeError, WriteOutcome};
