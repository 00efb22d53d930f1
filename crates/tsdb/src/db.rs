//! A database directory, as Prometheus lays it out: persistent blocks
//! (`<ulid>/`), the head's write-ahead log (`wal/`, with checkpoints) and a
//! `lock` file. Opening it removes half-written blocks, opens the blocks,
//! and replays the newest checkpoint and the WAL into a fresh head. This is
//! the type the binary uses.
//!
//! [`Db::compact`] is the maintenance step the owner runs regularly
//! (Prometheus: every minute): once the head spans 1.5 block ranges, its
//! oldest aligned range becomes a block, the head is truncated and the WAL
//! checkpointed; adjacent blocks are merged into larger ones; blocks beyond
//! the retention are deleted. Each step makes its result durable before the
//! data it replaces is dropped, so a crash at any point loses nothing and
//! leaves no half block visible.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use ember_model::{Appendable, Appender, Matcher, Querier, Queryable, StorageError, Timestamp};
use parking_lot::{Mutex, RwLock};

use crate::block::compact::{self, exponential_ranges};
use crate::block::querier::BlockQuerier;
use crate::block::{self, Block, BlockCompaction, BlockError};
use crate::checkpoint;
use crate::head::{Head, HeadOptions, U64Map};
use crate::metrics::TsdbMetrics;
use crate::querier::MergeQuerier;
use crate::record::{self, Record};
use crate::wal::{self, Wal, WalError, WalOptions};

/// Two hours: Prometheus's default minimum block duration.
pub const DEFAULT_BLOCK_RANGE: i64 = 2 * 3600 * 1000;

#[derive(Debug, Clone)]
pub struct DbOptions {
    pub head: HeadOptions,
    pub wal: WalOptions,
    /// `--storage.tsdb.min-block-duration`: the range of blocks cut from the
    /// head (also the head's chunk range).
    pub min_block_duration: i64,
    /// `--storage.tsdb.max-block-duration` (default: 10 % of retention,
    /// at most 31 days).
    pub max_block_duration: Option<i64>,
    /// `--storage.tsdb.retention.time` in ms (`None`: no time limit).
    pub retention_time: Option<i64>,
    /// `--storage.tsdb.retention.size` in bytes (`None`: no size limit).
    pub retention_size: Option<u64>,
    /// `--storage.tsdb.no-lockfile`.
    pub no_lockfile: bool,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            head: HeadOptions::default(),
            wal: WalOptions::default(),
            min_block_duration: DEFAULT_BLOCK_RANGE,
            max_block_duration: None,
            retention_time: Some(15 * 24 * 3600 * 1000),
            retention_size: None,
            no_lockfile: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("open {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lock DB directory: {0}")]
    Locked(String),
    #[error("WAL: {0}")]
    Wal(#[from] WalError),
    #[error("{0}")]
    Block(#[from] BlockError),
    #[error("{0}")]
    Head(String),
    #[error("{0}")]
    Snapshot(String),
}

/// What replay found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayStats {
    pub segments: usize,
    pub series: u64,
    pub samples: u64,
    /// Samples whose series record was missing.
    pub unknown_refs: u64,
    /// Records that passed the checksum but did not decode.
    pub bad_records: u64,
    /// Where the WAL was cut because of a corrupt or torn tail.
    pub truncated_at: Option<wal::CorruptionPoint>,
    /// The checkpoint replayed first, if any (last segment it covers).
    pub checkpoint: Option<u32>,
}

/// What one [`Db::compact`] run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactStats {
    /// Blocks written from the head.
    pub head_blocks: usize,
    /// Blocks written by merging blocks.
    pub merged_blocks: usize,
    /// Blocks deleted (merged away or beyond retention).
    pub deleted_blocks: usize,
}

/// The blocks, the head and its WAL in one directory.
#[derive(Debug)]
pub struct Db {
    head: Arc<Head>,
    dir: PathBuf,
    replay: ReplayStats,
    opts: DbOptions,
    /// Open blocks, sorted by min time. Readers clone the `Arc`s, so a
    /// block deleted meanwhile stays readable until they finish.
    blocks: RwLock<Vec<Arc<Block>>>,
    /// One maintenance run at a time.
    compacting: Mutex<()>,
    /// Held for the life of the database (`lock` in the directory).
    _lock: Option<fs::File>,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DbError + '_ {
    move |source| DbError::Io { path: path.display().to_string(), source }
}

impl Db {
    /// Opens (creating if needed) the database in `dir`: removes leftovers
    /// of interrupted block writes and checkpoints, opens the blocks, replays the newest
    /// checkpoint and the WAL. A corrupt or torn WAL tail is truncated at
    /// the last good record, logged and counted; the database opens anyway.
    pub fn open(dir: &Path, mut opts: DbOptions) -> Result<Db, DbError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let lock = if opts.no_lockfile {
            None
        } else {
            let p = dir.join("lock");
            let f = fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&p)
                .map_err(io_err(&p))?;
            f.try_lock().map_err(|e| DbError::Locked(e.to_string()))?;
            Some(f)
        };
        for p in block::remove_incomplete_blocks(dir)? {
            tracing::info!(path = %p.display(), "removed a half-written or half-deleted block");
        }
        let blocks = open_blocks(dir, &[])?;
        // The head's chunks never cross a block boundary.
        opts.head.chunk_range = opts.min_block_duration;
        let wal_dir = dir.join("wal");
        let metrics = Arc::new(TsdbMetrics::new());
        let mut head = Head::with_wal(opts.head.clone(), None, metrics.clone());
        // Nothing may be appended into time already persisted in blocks.
        if let Some(maxt) = blocks.iter().map(|b| b.meta().max_time).max() {
            head.set_min_valid_time(maxt);
        }
        if wal_dir.is_dir() {
            for p in checkpoint::remove_temporaries(&wal_dir)? {
                tracing::info!(path = %p.display(), "removed a half-written WAL checkpoint");
            }
        }
        let replay = if wal_dir.is_dir() { replay_wal(&head, &wal_dir)? } else { ReplayStats::default() };
        head.set_wal(Wal::open(&wal_dir, opts.wal.clone(), metrics)?);
        let db = Db {
            head: Arc::new(head),
            dir: dir.to_path_buf(),
            replay,
            opts,
            blocks: RwLock::new(blocks),
            compacting: Mutex::new(()),
            _lock: lock,
        };
        db.update_block_metrics();
        Ok(db)
    }

    pub fn head(&self) -> &Arc<Head> {
        &self.head
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn metrics(&self) -> &Arc<TsdbMetrics> {
        self.head.metrics()
    }

    /// What the replay at open found.
    pub fn replay_stats(&self) -> &ReplayStats {
        &self.replay
    }

    /// The open blocks, sorted by min time.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        self.blocks.read().clone()
    }

    /// fsyncs the WAL (call on a timer with `SyncPolicy::Interval`, and at
    /// shutdown).
    pub fn sync(&self) -> Result<(), StorageError> {
        if let Some(w) = self.head.wal() {
            w.lock().sync().map_err(|e| StorageError::Io(e.to_string()))?;
        }
        Ok(())
    }

    fn update_block_metrics(&self) {
        let blocks = self.blocks.read();
        let m = self.metrics();
        m.blocks_loaded.store(blocks.len() as i64, Ordering::Relaxed);
        m.storage_blocks_bytes.store(blocks.iter().map(|b| b.size() as i64).sum(), Ordering::Relaxed);
        let lowest = blocks.first().map(|b| b.meta().min_time).unwrap_or(self.head.min_time());
        m.lowest_timestamp.store(lowest, Ordering::Relaxed);
    }

    /// Re-reads the block directories (after writing or deleting blocks).
    fn reload_blocks(&self) -> Result<(), DbError> {
        let current = self.blocks.read().clone();
        self.install_blocks(open_blocks(&self.dir, &current)?);
        Ok(())
    }

    fn install_blocks(&self, open: Vec<Arc<Block>>) {
        *self.blocks.write() = open;
        self.metrics().reloads_total.fetch_add(1, Ordering::Relaxed);
        self.update_block_metrics();
    }

    /// Deletes block directories: renamed first, so a crash midway leaves a
    /// `.tmp-for-deletion` directory that the next open removes, never a
    /// half-deleted block under its name.
    fn delete_blocks(&self, dirs: &[PathBuf]) -> Result<(), DbError> {
        for d in dirs {
            let Some(name) = d.file_name().and_then(|n| n.to_str()) else { continue };
            let tmp = self.dir.join(format!("{name}{}", block::TMP_DELETION_SUFFIX));
            fs::rename(d, &tmp).map_err(io_err(d))?;
            fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
        }
        fs::File::open(&self.dir).and_then(|f| f.sync_all()).map_err(io_err(&self.dir))?;
        Ok(())
    }

    /// Runs the maintenance steps: head to block, block merging, retention.
    pub fn compact(&self) -> Result<CompactStats, DbError> {
        let _g = self.compacting.lock();
        let mut stats = CompactStats::default();
        let r = self.compact_head(&mut stats).and_then(|_| self.compact_blocks(&mut stats));
        if r.is_err() {
            self.metrics().compactions_failed_total.fetch_add(1, Ordering::Relaxed);
        }
        r?;
        self.apply_retention(&mut stats)?;
        Ok(stats)
    }

    /// Persists the head's oldest block range while the head spans more
    /// than 1.5 ranges (Prometheus's rule), then truncates the head and
    /// checkpoints the WAL.
    fn compact_head(&self, stats: &mut CompactStats) -> Result<(), DbError> {
        let range = self.opts.min_block_duration;
        loop {
            let (hmin, hmax) = (self.head.min_time(), self.head.max_time());
            if hmin > hmax || hmax - hmin <= range / 2 * 3 {
                return Ok(());
            }
            let mint = hmin.div_euclid(range) * range;
            let maxt = mint + range;
            let started = Instant::now();
            let chunks = self.head.block_chunks(mint, maxt);
            if !chunks.is_empty() {
                let meta = block::write_block(&self.dir, mint, maxt, BlockCompaction::default(), chunks)?;
                self.metrics().compactions_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    ulid = %meta.ulid,
                    mint,
                    maxt,
                    series = meta.stats.num_series,
                    samples = meta.stats.num_samples,
                    duration = ?started.elapsed(),
                    "write block"
                );
                stats.head_blocks += 1;
                self.reload_blocks()?;
            }
            let (chunks_removed, series_removed) = self.head.truncate(maxt);
            tracing::info!(mint = maxt, chunks_removed, series_removed, "head GC completed");
            self.truncate_wal(maxt)?;
        }
    }

    /// Cuts a new WAL segment and condenses the older ones into a
    /// checkpoint of what the head still holds.
    fn truncate_wal(&self, mint: Timestamp) -> Result<(), DbError> {
        let Some(w) = self.head.wal() else { return Ok(()) };
        let current = {
            let mut g = w.lock();
            g.next_segment()?;
            g.current_segment()
        };
        let wal_dir = self.dir.join("wal");
        if let Err(e) = checkpoint::checkpoint(&wal_dir, current, &self.head, mint, self.metrics()) {
            self.metrics().checkpoint_creations_failed_total.fetch_add(1, Ordering::Relaxed);
            return Err(e.into());
        }
        Ok(())
    }

    fn ranges(&self) -> Vec<i64> {
        let max = self.opts.max_block_duration.unwrap_or_else(|| {
            compact::default_max_block_duration(self.opts.retention_time, self.opts.min_block_duration)
        });
        exponential_ranges(self.opts.min_block_duration, max.max(self.opts.min_block_duration))
    }

    /// Merges blocks as the leveled planner picks them, until nothing is
    /// left to merge.
    fn compact_blocks(&self, stats: &mut CompactStats) -> Result<(), DbError> {
        let ranges = self.ranges();
        loop {
            let blocks = self.blocks();
            let metas: Vec<&block::BlockMeta> = blocks.iter().map(|b| b.meta()).collect();
            let pick = compact::plan(&metas, &ranges);
            if pick.len() < 2 {
                return Ok(());
            }
            let chosen: Vec<&Block> = pick.iter().map(|&i| &*blocks[i]).collect();
            let started = Instant::now();
            let meta = compact::compact(&self.dir, &chosen)?;
            self.metrics().compactions_total.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &meta {
                tracing::info!(ulid = %m.ulid, sources = chosen.len(), duration = ?started.elapsed(), "compact blocks");
                stats.merged_blocks += 1;
            }
            // The new block is durable; now its parents go.
            let dirs: Vec<PathBuf> = chosen.iter().map(|b| b.dir().to_path_buf()).collect();
            self.delete_blocks(&dirs)?;
            stats.deleted_blocks += dirs.len();
            self.reload_blocks()?;
        }
    }

    /// Deletes blocks beyond the time or size retention.
    fn apply_retention(&self, stats: &mut CompactStats) -> Result<(), DbError> {
        let blocks = self.blocks();
        let listed: Vec<(PathBuf, block::BlockMeta, u64)> =
            blocks.iter().map(|b| (b.dir().to_path_buf(), b.meta().clone(), b.size())).collect();
        let wal_bytes = dir_size(&self.dir.join("wal"));
        let victims = compact::retention_victims(
            &listed,
            self.opts.retention_time,
            self.opts.retention_size,
            wal_bytes,
        );
        if victims.is_empty() {
            return Ok(());
        }
        let newest_end = listed.iter().map(|b| b.1.max_time).max().unwrap_or(0);
        let by_time = listed
            .iter()
            .filter(|b| victims.contains(&b.0))
            .any(|b| self.opts.retention_time.is_some_and(|r| newest_end - b.1.max_time > r));
        let counter = if by_time {
            &self.metrics().time_retentions_total
        } else {
            &self.metrics().size_retentions_total
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::info!(blocks = victims.len(), "deleting blocks beyond retention");
        self.delete_blocks(&victims)?;
        stats.deleted_blocks += victims.len();
        self.reload_blocks()
    }

    /// Marks samples in `[mint, maxt]` of series matching `matchers` as
    /// deleted, in the blocks (their `tombstones` files) and in the head
    /// (WAL first), as Prometheus's `DB.Delete`. Queries stop seeing them
    /// at once; the data goes from disk when the blocks are compacted or
    /// [`Db::clean_tombstones`] runs, and from the head when it is
    /// persisted. Returns the number of (block or head) series affected.
    pub fn delete(&self, mint: Timestamp, maxt: Timestamp, matchers: &[Matcher]) -> Result<usize, DbError> {
        // Under the maintenance lock: a head range being written to a block
        // must not miss a deletion made between its read and the head's
        // truncation.
        let _g = self.compacting.lock();
        let mut n = self.delete_in_blocks_locked(mint, maxt, matchers)?;
        n += self.head.delete(mint, maxt, matchers).map_err(|e| DbError::Head(e.to_string()))?;
        Ok(n)
    }

    /// The block half of [`Db::delete`]: tombstones in every block.
    pub fn delete_in_blocks(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        matchers: &[Matcher],
    ) -> Result<usize, DbError> {
        let _g = self.compacting.lock();
        self.delete_in_blocks_locked(mint, maxt, matchers)
    }

    fn delete_in_blocks_locked(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        matchers: &[Matcher],
    ) -> Result<usize, DbError> {
        let mut n = 0;
        // Each block is reopened to take its new tombstones; the reopened
        // set replaces the old one in one step, so readers never see a
        // directory without blocks.
        let mut reopened = Vec::new();
        for b in self.blocks() {
            let mut fresh = Block::open(b.dir())?;
            n += fresh.delete(mint, maxt, matchers)?;
            reopened.push(Arc::new(fresh));
        }
        self.install_blocks(reopened);
        Ok(n)
    }

    /// Rewrites every block that has tombstones without the deleted data
    /// (a compaction of that one block; a block left empty is just
    /// deleted), then removes the old block, as Prometheus's
    /// `DB.CleanTombstones`. Returns the number of blocks rewritten.
    pub fn clean_tombstones(&self) -> Result<usize, DbError> {
        let _g = self.compacting.lock();
        let started = Instant::now();
        let mut cleaned = 0;
        for b in self.blocks() {
            if b.tombstones().values().all(Vec::is_empty) {
                continue;
            }
            let meta = compact::compact(&self.dir, &[&*b])?;
            self.metrics().compactions_total.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                block = %b.meta().ulid,
                new_block = meta.as_ref().map_or("(none: everything deleted)", |m| m.ulid.as_str()),
                "rewrote block without its deleted data"
            );
            // The rewritten block is durable; the old one goes.
            self.delete_blocks(&[b.dir().to_path_buf()])?;
            self.reload_blocks()?;
            cleaned += 1;
        }
        tracing::info!(blocks = cleaned, duration = ?started.elapsed(), "tombstones cleaned");
        Ok(cleaned)
    }

    /// Writes a consistent copy of the database into `dir`, as Prometheus's
    /// `DB.Snapshot`: every block is hard-linked (copied where linking
    /// fails, e.g. across file systems) into `dir/<ulid>/`, and with
    /// `with_head` the head's current contents (deletions applied) become
    /// one more block. `dir` opens as a database and in promtool.
    pub fn snapshot(&self, dir: &Path, with_head: bool) -> Result<(), DbError> {
        if dir == self.dir {
            return Err(DbError::Snapshot("cannot snapshot into base directory".into()));
        }
        if dir.file_name().and_then(|n| n.to_str()).is_some_and(|n| ulid::Ulid::from_string(n).is_ok()) {
            return Err(DbError::Snapshot("dir must not be a valid ULID".into()));
        }
        // No compaction may delete a block while it is being linked.
        let _g = self.compacting.lock();
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        for b in self.blocks() {
            tracing::info!(block = %b.meta().ulid, "snapshotting block");
            crate::snapshot::link_block(b.dir(), &dir.join(&b.meta().ulid)).map_err(|e| {
                DbError::Snapshot(format!("error snapshotting block: {}: {e}", b.dir().display()))
            })?;
        }
        if !with_head {
            return Ok(());
        }
        let (mint, maxt) = (self.head.min_time(), self.head.max_time());
        if mint > maxt {
            return Ok(());
        }
        // Block ranges are half-open: the newest sample needs maxt + 1.
        let end = maxt.saturating_add(1);
        let chunks = self.head.block_chunks(mint, end);
        if !chunks.is_empty() {
            block::write_block(dir, mint, end, BlockCompaction::default(), chunks)
                .map_err(|e| DbError::Snapshot(format!("snapshot head block: {e}")))?;
        }
        Ok(())
    }
}

/// The blocks in `dir`, sorted by time; blocks already open in `reuse` are
/// kept as they are, others are opened (a corrupt one names its directory).
fn open_blocks(dir: &Path, reuse: &[Arc<Block>]) -> Result<Vec<Arc<Block>>, DbError> {
    let mut open: Vec<Arc<Block>> = Vec::new();
    for d in block::block_dirs(dir)? {
        match reuse.iter().find(|b| b.dir() == d) {
            Some(b) => open.push(b.clone()),
            None => {
                let b = Block::open(&d).map_err(|e| match e {
                    BlockError::Corrupt(m) => BlockError::Corrupt(format!("{}: {m}", d.display())),
                    other => other,
                })?;
                open.push(Arc::new(b));
            }
        }
    }
    open.sort_by_key(|b| (b.meta().min_time, b.meta().max_time));
    Ok(open)
}

/// Bytes of the files under `p` (0 for what cannot be read).
pub fn dir_size(p: &Path) -> u64 {
    let Ok(rd) = fs::read_dir(p) else { return 0 };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_size(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

impl Appendable for Db {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(self.head.head_appender())
    }
}

impl Queryable for Db {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> Result<Box<dyn Querier + '_>, StorageError> {
        let mut sources: Vec<Box<dyn Querier + '_>> = Vec::new();
        for b in self.blocks.read().iter() {
            let m = b.meta();
            if m.min_time <= maxt && mint < m.max_time {
                sources.push(Box::new(BlockQuerier::new(b.clone(), mint, maxt)));
            }
        }
        sources.push(Box::new(self.head.head_querier(mint, maxt)));
        Ok(Box::new(MergeQuerier::new(sources)))
    }
}

/// Replays the newest checkpoint, then the WAL segments after it.
fn replay_wal(head: &Head, wal_dir: &Path) -> Result<ReplayStats, WalError> {
    let mut stats = ReplayStats::default();
    let mut from = 0;
    if let Some((cp, n)) = checkpoint::last_checkpoint(wal_dir)? {
        tracing::info!(checkpoint = %cp.display(), "replaying WAL checkpoint");
        let s = replay_range(head, &cp, 0..=u32::MAX)?;
        stats.series += s.series;
        stats.samples += s.samples;
        stats.unknown_refs += s.unknown_refs;
        stats.bad_records += s.bad_records;
        stats.checkpoint = Some(n);
        from = n + 1;
    }
    let s = replay_range(head, wal_dir, from..=u32::MAX)?;
    stats.segments = s.segments;
    stats.series += s.series;
    stats.samples += s.samples;
    stats.unknown_refs += s.unknown_refs;
    stats.bad_records += s.bad_records;
    stats.truncated_at = s.truncated_at;
    Ok(stats)
}

const REPLAY_BATCH: usize = 4096;

/// Replays the WAL in `dir` into `head`, repairing a corrupt tail.
///
/// Records are read and decoded on the calling thread; series records are
/// applied there too (so a series exists before any of its samples), and
/// samples are sharded by series id over worker threads, which keeps each
/// series' samples in WAL order.
///
/// Workers: one fewer than the available cores (the reading thread needs
/// one), between 1 and 8; with one, samples are applied inline.
pub fn replay(head: &Head, dir: &Path) -> Result<ReplayStats, WalError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).clamp(1, 8);
    replay_with_workers(head, dir, workers)
}

pub fn replay_with_workers(head: &Head, dir: &Path, workers: usize) -> Result<ReplayStats, WalError> {
    replay_range_with_workers(head, dir, 0..=u32::MAX, workers)
}

/// Replays the segments of `dir` whose index is in `range`.
fn replay_range(
    head: &Head,
    dir: &Path,
    range: std::ops::RangeInclusive<u32>,
) -> Result<ReplayStats, WalError> {
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).clamp(1, 8);
    replay_range_with_workers(head, dir, range, workers)
}

fn replay_range_with_workers(
    head: &Head,
    dir: &Path,
    range: std::ops::RangeInclusive<u32>,
    workers: usize,
) -> Result<ReplayStats, WalError> {
    let start = Instant::now();
    let segments: Vec<u32> = wal::list_segments(dir)?.into_iter().filter(|s| range.contains(s)).collect();
    let last_segment = segments.last().copied();
    tracing::info!(segments = segments.len(), workers, dir = %dir.display(), "replaying WAL, this may take a while");
    let mut stats = ReplayStats { segments: segments.len(), ..Default::default() };
    let workers = workers.max(1);
    let result = std::thread::scope(|scope| {
        // One bounded queue per worker: backpressure keeps memory flat.
        let mut senders = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        if workers > 1 {
            for _ in 0..workers {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<record::RefSample>>(8);
                senders.push(tx);
                handles.push(scope.spawn(move || {
                    let (mut applied, mut unknown) = (0u64, 0u64);
                    for batch in rx {
                        let (a, u) = head.replay_samples(&batch);
                        applied += a;
                        unknown += u;
                    }
                    (applied, unknown)
                }));
            }
        }
        let mut pending: Vec<Vec<record::RefSample>> = (0..workers).map(|_| Vec::new()).collect();
        let (mut applied, mut unknown) = (0u64, 0u64);
        // Ids of series records whose labels were already known under
        // another id (possible after an unclean shutdown raced a series
        // creation): their samples go to the surviving series.
        let mut remap: U64Map<u64> = U64Map::default();
        let mut current_segment = None;
        let result = wal::read_segments::<()>(dir, range.clone(), |seg, rec| {
            if current_segment != Some(seg) {
                if let Some(prev) = current_segment {
                    tracing::info!(segment = prev, max_segment = ?last_segment, "WAL segment loaded");
                }
                current_segment = Some(seg);
            }
            match record::decode(rec) {
                Ok(Record::Series(series)) => {
                    for rs in series {
                        head.reserve_id(rs.id);
                        let (s, _) = head.get_or_create(&rs.labels, Some(rs.id));
                        Head::mark_logged(&s);
                        // Labels already known under another id: that id's
                        // samples belong to the known series. (An id already
                        // taken by other labels keeps naming its first
                        // series.)
                        if s.id() != rs.id && head.series(rs.id).is_none() {
                            remap.insert(rs.id, s.id());
                        }
                        stats.series += 1;
                    }
                }
                Ok(Record::Samples(mut samples)) => {
                    if !remap.is_empty() {
                        for rs in &mut samples {
                            if let Some(id) = remap.get(&rs.id) {
                                rs.id = *id;
                            }
                        }
                    }
                    if workers == 1 {
                        let (a, u) = head.replay_samples(&samples);
                        applied += a;
                        unknown += u;
                        return Ok(());
                    }
                    for rs in samples {
                        let w = (rs.id % workers as u64) as usize;
                        pending[w].push(rs);
                        if pending[w].len() >= REPLAY_BATCH {
                            let batch = std::mem::replace(&mut pending[w], Vec::with_capacity(REPLAY_BATCH));
                            // A worker only stops by panicking; its panic
                            // is re-raised at join below.
                            let _ = senders[w].send(batch);
                        }
                    }
                }
                Ok(Record::Metadata(metas)) => {
                    for m in metas {
                        let id = remap.get(&m.id).copied().unwrap_or(m.id);
                        if let Some(s) = head.series(id) {
                            head.set_metadata(&s, &m.meta);
                        }
                    }
                }
                Ok(Record::Tombstones(mut stones)) => {
                    for st in &mut stones {
                        if let Some(id) = remap.get(&st.id) {
                            st.id = *id;
                        }
                    }
                    // The series records came first (they were applied on
                    // this thread), so every live series is known here.
                    unknown += head.replay_tombstones(&stones);
                }
                // Other record kinds (exemplars, histograms) are not
                // written by ember.
                Ok(Record::Unknown(_)) => {}
                Err(e) => {
                    tracing::warn!(segment = seg, err = %e, "undecodable WAL record skipped");
                    stats.bad_records += 1;
                }
            }
            Ok(())
        });
        for (w, batch) in pending.into_iter().enumerate() {
            if !batch.is_empty() {
                let _ = senders[w].send(batch);
            }
        }
        drop(senders);
        for h in handles {
            match h.join() {
                Ok((a, u)) => {
                    applied += a;
                    unknown += u;
                }
                Err(p) => std::panic::resume_unwind(p),
            }
        }
        if let Some(seg) = current_segment {
            tracing::info!(segment = seg, max_segment = ?last_segment, "WAL segment loaded");
        }
        stats.samples = applied;
        stats.unknown_refs = unknown;
        result
    })?;
    // The callback never fails, so only the corruption result remains.
    if let Ok(Some(c)) = result {
        tracing::warn!(segment = c.segment, offset = c.offset, reason = %c.reason, "WAL corruption detected; truncating at the last good record");
        head.metrics().wal_corruptions_total.fetch_add(1, Ordering::Relaxed);
        wal::repair(dir, &c)?;
        stats.truncated_at = Some(c);
    }
    tracing::info!(
        duration = ?start.elapsed(),
        series = stats.series,
        samples = stats.samples,
        "WAL replay completed"
    );
    Ok(stats)
}
