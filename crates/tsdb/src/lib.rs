//! ember-tsdb: ember's time series database.
//!
//! * [`block`]: persistent blocks in Prometheus's v2 format, compaction
//!   planning and merging, retention.
//! * [`checkpoint`]: WAL checkpoints after head truncation.
//! * [`chunkenc`]: Gorilla/XOR chunks, byte-compatible with Prometheus.
//! * [`head`]: the in-memory head (series, chunks, postings), its appender
//!   and querier.
//! * [`index`]: the head's inverted index (roaring bitmaps).
//! * [`record`], [`wal`]: the write-ahead log in Prometheus's format.
//! * [`db`]: a data directory (blocks, WAL, lock), opened with replay and
//!   maintained by [`Db::compact`]; what the binary uses.
//! * [`querier`]: merged reads over blocks and head.
//! * [`metrics`]: self-monitoring under Prometheus's metric names.
//! * [`sort`]: fast label-set ordering for sorted selects.
//! * [`deleted`]: deleted intervals (tombstones) as reads apply them.
//! * [`snapshot`]: hard-linking blocks into a snapshot directory.
//!
//! # Storage contract (part 1: head + WAL)
//!
//! * A batch ([`ember_model::Appender`]) is validated per sample at
//!   `append` (out of bounds, out of order, duplicate timestamp; identical
//!   duplicates are accepted and dropped), and at `commit` its records
//!   (series, samples, metadata) are written to the WAL with `write(2)`
//!   *before* the head changes. `commit` returning `Ok` means the batch
//!   survives a crash of the process; surviving a power failure depends on
//!   [`SyncPolicy`] (default: fsync at most 1 s after the data was written;
//!   see [`wal`]).
//! * Opening a [`Db`] replays `wal/` into a new head. A torn or corrupt
//!   tail is truncated at the last complete record (logged, counted in
//!   `prometheus_tsdb_wal_corruptions_total`) and the database opens.
//! * Disk formats are Prometheus's: XOR chunks (checked byte for byte
//!   against blocks written by promtool), WAL segments/pages/fragments and
//!   records (promtool reads ember's WAL; ember replays Prometheus's).
//!
//! # Storage contract (part 2: blocks)
//!
//! * [`block`]: Prometheus v2 blocks (`meta.json`, `index` v2, `chunks/`,
//!   `tombstones`), written into `<ulid>.tmp-for-creation`, fsynced and
//!   renamed; read through `memmap2`. `promtool tsdb list/analyze/dump`
//!   read ember's data directory (blocks, WAL checkpoint and WAL), and
//!   ember reads blocks written by `promtool tsdb create-blocks-from`.
//! * [`Db::compact`]: once the head spans 1.5 block ranges its oldest
//!   range becomes a block; only after that block is durable is the head
//!   truncated and the WAL condensed into a [`checkpoint`]. Blocks merge
//!   by Prometheus's leveled plan; the parents are deleted (rename, then
//!   remove) only after the merged block is durable. Retention deletes
//!   whole blocks by time and by size.
//! * Reads merge blocks and head ([`querier`]); a series in several sources
//!   is read once, duplicates by timestamp dropped.
//!
//! # Deletion and snapshots
//!
//! * [`Db::delete`] marks a time range of the series matching some
//!   matchers as deleted: tombstones in each block's `tombstones` file and,
//!   for the head, in memory after a tombstones record reached the WAL
//!   (replayed at open, kept in checkpoints while their series live).
//!   Queries skip deleted samples at once; writing the head to a block
//!   leaves them out; [`Db::clean_tombstones`] rewrites blocks without
//!   them. See [`deleted`].
//! * [`Db::snapshot`] hard-links every block into a directory and can add
//!   the head as one more block ([`snapshot`]).
//!
//! Not yet: isolation of in-flight commits from readers, out-of-order
//! ingestion.

pub mod block;
pub mod checkpoint;
pub mod chunkenc;
pub mod db;
pub mod deleted;
pub mod head;
pub mod index;
pub mod metrics;
pub mod querier;
pub mod record;
pub mod snapshot;
pub mod sort;
pub mod wal;

pub use db::{Db, DbError, DbOptions, ReplayStats};
pub use head::{Head, HeadBlockChunks, HeadOptions, HeadStats};
pub use metrics::TsdbMetrics;
pub use wal::{SyncPolicy, WalOptions};
