//! The head: the in-memory, appendable part of the database.
//!
//! Invariants:
//! * Series ids are assigned here and nowhere else, monotonically from 1
//!   (ids read back from the WAL keep their value; new ids continue after the
//!   largest seen).
//! * A series' chunks are ordered and non-overlapping; the newest one (the
//!   head chunk) is the only one that grows. Samples inside a series are in
//!   strictly increasing timestamp order.
//! * A batch becomes visible only at commit, and (with a WAL) only after its
//!   records were handed to the WAL: the WAL order is the order in which
//!   batches were applied, because commits hold the WAL lock while applying.
//!
//! * Deletions (tombstones) are logged to the WAL before they take effect,
//!   under the WAL lock like commits, and cover only samples that existed
//!   when they were made (the interval is clamped to the series' samples).
//!
//! Locks: the series maps are striped `RwLock`s; each series has its own
//! mutex; the postings have one `RwLock`; the tombstones one `RwLock`. No
//! code holds two series locks at once, and neither the postings lock nor
//! the tombstones lock is taken while holding a series lock.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use croaring::Bitmap64;
use ember_model::storage::CommitStats;
use ember_model::{
    AppendError, Appendable, Appender, LabelHints, Labels, Matcher, Metadata, Querier, Queryable,
    SampleIterator, SelectHints, Series, SeriesRef, SeriesSet, StorageError, Timestamp,
};
use parking_lot::{Mutex, RwLock};

use crate::chunkenc::{XorChunk, XorIterator};
use crate::deleted::{self, DeletedFilter, Intervals};
use crate::index::MemPostings;
use crate::metrics::TsdbMetrics;
use crate::record;
use crate::wal::Wal;

/// Tunables of the head.
#[derive(Debug, Clone)]
pub struct HeadOptions {
    /// Width of a chunk range in ms (Prometheus: 2h). Chunks never span a
    /// range boundary, and samples older than half a range before the
    /// head's newest sample are out of bounds.
    pub chunk_range: i64,
    /// Target samples per chunk (Prometheus: 120).
    pub samples_per_chunk: u16,
    /// Number of lock stripes for the series maps (a power of two).
    pub stripe_size: usize,
}

impl Default for HeadOptions {
    fn default() -> Self {
        HeadOptions { chunk_range: 2 * 3600 * 1000, samples_per_chunk: 120, stripe_size: 1024 }
    }
}

/// Head cardinality statistics ([`Head::stats`]): `(name, count)` lists,
/// largest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: i64,
    pub min_time: Timestamp,
    pub max_time: Timestamp,
    pub series_count_by_metric_name: Vec<(String, u64)>,
    pub label_value_count_by_label_name: Vec<(String, u64)>,
    pub memory_in_bytes_by_label_name: Vec<(String, u64)>,
    pub series_count_by_label_value_pair: Vec<(String, u64)>,
}

/// A multiplicative hasher for u64 keys (ids and precomputed label hashes):
/// sequential ids would leave the top bits, which hashbrown uses as tags,
/// all zero under an identity hash.
#[derive(Default, Clone, Copy)]
pub(crate) struct U64Hasher(u64);

impl Hasher for U64Hasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(5) ^ *b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (i ^ (i >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

pub(crate) type U64Map<V> = HashMap<u64, V, BuildHasherDefault<U64Hasher>>;

/// A closed chunk: immutable bytes shared with readers.
#[derive(Debug, Clone)]
pub struct ChunkMeta {
    pub mint: Timestamp,
    pub maxt: Timestamp,
    pub data: Arc<[u8]>,
}

/// A chunk of [`Head::block_chunks`]: a reference to a head chunk that is
/// written whole, or one re-encoded because it crossed the range's edge or
/// held deleted samples.
#[derive(Debug)]
enum BlockChunk {
    Whole(ChunkMeta),
    Cut(crate::block::ChunkToWrite),
}

/// The head's series in a block range, sorted by labels, yielding each
/// series' chunks (bytes copied only when taken); see
/// [`Head::block_chunks`].
#[derive(Debug)]
pub struct HeadBlockChunks {
    series: std::vec::IntoIter<(Labels, Vec<BlockChunk>)>,
}

impl HeadBlockChunks {
    /// Series left to yield.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    pub fn is_empty(&self) -> bool {
        self.series.len() == 0
    }
}

impl Iterator for HeadBlockChunks {
    type Item = (Labels, Vec<crate::block::ChunkToWrite>);

    fn next(&mut self) -> Option<Self::Item> {
        let (labels, chunks) = self.series.next()?;
        let chunks = chunks
            .into_iter()
            .map(|c| match c {
                BlockChunk::Whole(c) => crate::block::ChunkToWrite {
                    mint: c.mint,
                    maxt: c.maxt,
                    encoding: crate::block::ENCODING_XOR,
                    data: c.data.to_vec(),
                },
                BlockChunk::Cut(w) => w,
            })
            .collect();
        Some((labels, chunks))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.series.size_hint()
    }
}

#[derive(Debug)]
struct HeadChunk {
    mint: Timestamp,
    chunk: XorChunk,
}

#[derive(Debug, Default)]
struct SeriesData {
    closed: Vec<ChunkMeta>,
    head: Option<HeadChunk>,
    /// Timestamp at which the head chunk will be cut.
    next_at: Timestamp,
    /// The appender (by id) that last added a pending sample to this
    /// series, and that sample: later samples of the same batch are
    /// classified against it. Stale entries of finished appenders are
    /// ignored because appender ids are never reused.
    pending_owner: u64,
    pending: (Timestamp, u64),
}

enum Appended {
    Ok { chunk_created: bool },
    OutOfOrder,
    Duplicate,
    Identical,
}

/// `(t / width) * width + width` with Go's truncating division, as
/// Prometheus's `rangeForTimestamp`.
fn range_end(t: Timestamp, width: i64) -> Timestamp {
    (t / width).saturating_mul(width).saturating_add(width)
}

/// Prometheus's `computeChunkEndTime`: once a chunk holds a quarter of its
/// target samples, predict an end time that spreads the range's samples
/// evenly over chunks of about the target size.
fn compute_chunk_end(start: Timestamp, cur: Timestamp, max: Timestamp, ratio_to_full: f64) -> Timestamp {
    let n = (max - start) as f64 / ((cur - start + 1) as f64 * ratio_to_full);
    if n <= 1.0 {
        return max;
    }
    (start as f64 + (max - start) as f64 / n.floor()) as Timestamp
}

impl SeriesData {
    fn last(&self) -> Option<(Timestamp, u64)> {
        self.head
            .as_ref()
            .filter(|h| h.chunk.num_samples() > 0)
            .map(|h| (h.chunk.last_t(), h.chunk.last_v().to_bits()))
    }

    fn append(&mut self, t: Timestamp, v: f64, opts: &HeadOptions) -> Appended {
        if let Some((lt, lv)) = self.last() {
            if t < lt {
                return Appended::OutOfOrder;
            }
            if t == lt {
                return if lv == v.to_bits() { Appended::Identical } else { Appended::Duplicate };
            }
        }
        let mut chunk_created = false;
        let spc = opts.samples_per_chunk.max(4);
        let cut = match &mut self.head {
            None => true,
            Some(h) => {
                let n = h.chunk.num_samples();
                if n == spc / 4 {
                    self.next_at = compute_chunk_end(h.mint, h.chunk.last_t(), self.next_at, 4.0);
                }
                // Twice the target means the rate changed since the
                // prediction: cut conservatively.
                t >= self.next_at || n >= spc.saturating_mul(2)
            }
        };
        if cut {
            if let Some(old) = self.head.take() {
                let maxt = old.chunk.last_t();
                let data: Arc<[u8]> = Arc::from(old.chunk.into_bytes().into_boxed_slice());
                self.closed.push(ChunkMeta { mint: old.mint, maxt, data });
            }
            self.head = Some(HeadChunk { mint: t, chunk: XorChunk::new() });
            self.next_at = range_end(t, opts.chunk_range);
            chunk_created = true;
        }
        if let Some(h) = &mut self.head {
            h.chunk.append(t, v);
        }
        Appended::Ok { chunk_created }
    }

    /// Chunks overlapping `[mint, maxt]`; the head chunk is copied so the
    /// reader owns a consistent snapshot.
    fn chunks_in(&self, mint: Timestamp, maxt: Timestamp) -> Vec<ChunkMeta> {
        let mut out = Vec::new();
        for c in &self.closed {
            if c.maxt >= mint && c.mint <= maxt {
                out.push(c.clone());
            }
        }
        if let Some(h) = &self.head {
            if h.chunk.num_samples() > 0 && h.chunk.last_t() >= mint && h.mint <= maxt {
                out.push(ChunkMeta {
                    mint: h.mint,
                    maxt: h.chunk.last_t(),
                    data: Arc::from(h.chunk.bytes()),
                });
            }
        }
        out
    }

    fn has_samples_in(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        self.head
            .as_ref()
            .is_some_and(|h| h.chunk.num_samples() > 0 && h.chunk.last_t() >= mint && h.mint <= maxt)
            || self.closed.iter().any(|c| c.maxt >= mint && c.mint <= maxt)
    }

    fn num_chunks(&self) -> usize {
        self.closed.len() + usize::from(self.head.is_some())
    }

    /// Oldest and newest sample, if any.
    fn time_range(&self) -> Option<(Timestamp, Timestamp)> {
        let head = self.head.as_ref().filter(|h| h.chunk.num_samples() > 0);
        let min = self.closed.first().map(|c| c.mint).or(head.map(|h| h.mint))?;
        let max = head.map(|h| h.chunk.last_t()).or(self.closed.last().map(|c| c.maxt))?;
        Some((min, max))
    }

    /// Whether every chunk overlapping `[mint, maxt]` is deleted there
    /// (Prometheus's rule: a series is left out of a select when each of
    /// its chunks, cut to the query range, lies inside one deleted
    /// interval).
    fn all_deleted_in(&self, mint: Timestamp, maxt: Timestamp, ivs: &[(Timestamp, Timestamp)]) -> bool {
        let covered = |a: Timestamp, b: Timestamp| {
            b < mint || a > maxt || deleted::is_subrange(ivs, a.max(mint), b.min(maxt))
        };
        self.closed.iter().all(|c| covered(c.mint, c.maxt))
            && self
                .head
                .as_ref()
                .filter(|h| h.chunk.num_samples() > 0)
                .is_none_or(|h| covered(h.mint, h.chunk.last_t()))
    }
}

/// One series in the head.
#[derive(Debug)]
pub struct MemSeries {
    id: u64,
    labels: Labels,
    /// Whether a series record for this series is in the WAL.
    logged: AtomicBool,
    /// Set (under the data lock) when head truncation removed the series
    /// from the indexes; a commit that still holds it re-creates it.
    deleted: AtomicBool,
    data: Mutex<SeriesData>,
}

impl MemSeries {
    pub fn id(&self) -> u64 {
        self.id
    }
    pub fn labels(&self) -> &Labels {
        &self.labels
    }
    /// Chunks overlapping `[mint, maxt]` (a snapshot).
    pub fn chunks(&self, mint: Timestamp, maxt: Timestamp) -> Vec<ChunkMeta> {
        self.data.lock().chunks_in(mint, maxt)
    }
}

/// Series looked up by label hash, with a side table for the (rare) label
/// sets whose 64-bit hashes collide.
#[derive(Default)]
struct HashStripe {
    by_hash: U64Map<Arc<MemSeries>>,
    collisions: HashMap<Labels, Arc<MemSeries>>,
}

impl HashStripe {
    fn get(&self, hash: u64, labels: &Labels) -> Option<&Arc<MemSeries>> {
        match self.by_hash.get(&hash) {
            Some(s) if s.labels == *labels => Some(s),
            Some(_) => self.collisions.get(labels),
            None => None,
        }
    }
    fn remove(&mut self, hash: u64, s: &Arc<MemSeries>) {
        if self.by_hash.get(&hash).is_some_and(|x| Arc::ptr_eq(x, s)) {
            self.by_hash.remove(&hash);
            // Promote a colliding series with the same hash, if any.
            let promoted =
                self.collisions.iter().find(|(l, _)| l.stable_hash() == hash).map(|(l, _)| l.clone());
            if let Some(l) = promoted {
                if let Some(x) = self.collisions.remove(&l) {
                    self.by_hash.insert(hash, x);
                }
            }
        } else if self.collisions.get(&s.labels).is_some_and(|x| Arc::ptr_eq(x, s)) {
            self.collisions.remove(&s.labels);
        }
    }

    fn insert(&mut self, hash: u64, s: Arc<MemSeries>) {
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => {
                self.collisions.insert(s.labels.clone(), s);
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(s);
            }
        }
    }
}

const SEG_BITS: u32 = 16;
const SEG_LEN: usize = 1 << SEG_BITS;
const DIR_LEN: usize = 1 << 16;

type Slot = RwLock<Option<Arc<MemSeries>>>;

/// Series by id. Ids are dense (assigned from 1), so a two-level array
/// replaces hashing: a lookup is one atomic load of the directory entry,
/// one read lock on the slot itself (no shared lock), and the slot. This is
/// the hottest lookup of appends with cached refs, WAL replay and selects.
/// Ids beyond 2^32 (never reached in practice) go to a hash map.
struct SeriesById {
    dir: Box<[OnceLock<Box<[Slot]>>]>,
    overflow: RwLock<U64Map<Arc<MemSeries>>>,
}

impl SeriesById {
    fn new() -> SeriesById {
        SeriesById { dir: (0..DIR_LEN).map(|_| OnceLock::new()).collect(), overflow: RwLock::default() }
    }

    #[inline]
    fn get(&self, id: u64) -> Option<Arc<MemSeries>> {
        let d = (id >> SEG_BITS) as usize;
        if d >= DIR_LEN {
            return self.overflow.read().get(&id).cloned();
        }
        self.dir[d].get()?[(id as usize) & (SEG_LEN - 1)].read().clone()
    }

    /// The read guard of `id`'s slot (`None` for ids outside the array,
    /// including unallocated segments).
    #[inline]
    fn slot(&self, id: u64) -> Option<parking_lot::RwLockReadGuard<'_, Option<Arc<MemSeries>>>> {
        let d = (id >> SEG_BITS) as usize;
        if d >= DIR_LEN {
            return None;
        }
        // Recursive: a replay window may hold this slot already, and a
        // writer queued on it must not block the second read.
        Some(self.dir[d].get()?[(id as usize) & (SEG_LEN - 1)].read_recursive())
    }

    fn insert(&self, id: u64, s: Arc<MemSeries>) {
        let d = (id >> SEG_BITS) as usize;
        if d >= DIR_LEN {
            self.overflow.write().insert(id, s);
            return;
        }
        let seg = self.dir[d].get_or_init(|| (0..SEG_LEN).map(|_| RwLock::new(None)).collect());
        *seg[(id as usize) & (SEG_LEN - 1)].write() = Some(s);
    }

    fn remove(&self, id: u64) {
        let d = (id >> SEG_BITS) as usize;
        if d >= DIR_LEN {
            self.overflow.write().remove(&id);
            return;
        }
        if let Some(seg) = self.dir[d].get() {
            *seg[(id as usize) & (SEG_LEN - 1)].write() = None;
        }
    }

    fn for_each(&self, mut f: impl FnMut(&Arc<MemSeries>)) {
        for seg in self.dir.iter().filter_map(|d| d.get()) {
            for slot in seg.iter() {
                if let Some(s) = &*slot.read() {
                    f(s);
                }
            }
        }
        for s in self.overflow.read().values() {
            f(s);
        }
    }
}

/// The head block.
pub struct Head {
    opts: HeadOptions,
    by_hash: Box<[RwLock<HashStripe>]>,
    by_id: SeriesById,
    postings: RwLock<MemPostings>,
    /// Deleted intervals by series id (merged, sorted).
    tombstones: RwLock<U64Map<Intervals>>,
    metadata: RwLock<HashMap<String, Metadata>>,
    last_id: AtomicU64,
    last_appender_id: AtomicU64,
    min_time: AtomicI64,
    max_time: AtomicI64,
    min_valid_time: AtomicI64,
    metrics: Arc<TsdbMetrics>,
    wal: Option<Mutex<Wal>>,
}

impl std::fmt::Debug for Head {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Head")
            .field("series", &self.num_series())
            .field("min_time", &self.min_time())
            .field("max_time", &self.max_time())
            .finish_non_exhaustive()
    }
}

impl Head {
    /// An in-memory head without a WAL.
    pub fn new(opts: HeadOptions) -> Head {
        Head::with_wal(opts, None, Arc::new(TsdbMetrics::new()))
    }

    pub(crate) fn with_wal(opts: HeadOptions, wal: Option<Wal>, metrics: Arc<TsdbMetrics>) -> Head {
        let n = opts.stripe_size.max(1).next_power_of_two();
        Head {
            by_hash: (0..n).map(|_| RwLock::new(HashStripe::default())).collect(),
            by_id: SeriesById::new(),
            opts,
            postings: RwLock::new(MemPostings::new()),
            tombstones: RwLock::new(U64Map::default()),
            metadata: RwLock::new(HashMap::new()),
            last_id: AtomicU64::new(0),
            last_appender_id: AtomicU64::new(0),
            min_time: AtomicI64::new(i64::MAX),
            max_time: AtomicI64::new(i64::MIN),
            min_valid_time: AtomicI64::new(i64::MIN),
            metrics,
            wal: wal.map(Mutex::new),
        }
    }

    pub(crate) fn set_wal(&mut self, wal: Wal) {
        self.wal = Some(Mutex::new(wal));
    }

    pub(crate) fn wal(&self) -> Option<&Mutex<Wal>> {
        self.wal.as_ref()
    }

    pub fn options(&self) -> &HeadOptions {
        &self.opts
    }

    pub fn metrics(&self) -> &Arc<TsdbMetrics> {
        &self.metrics
    }

    pub fn num_series(&self) -> u64 {
        self.postings.read().num_series()
    }

    /// Oldest sample timestamp in the head (`i64::MAX` when empty).
    pub fn min_time(&self) -> Timestamp {
        self.min_time.load(Ordering::Acquire)
    }

    /// Newest sample timestamp in the head (`i64::MIN` when empty).
    pub fn max_time(&self) -> Timestamp {
        self.max_time.load(Ordering::Acquire)
    }

    /// Samples older than this are refused as out of bounds (part 2 raises
    /// it when the head is truncated into a block).
    pub fn set_min_valid_time(&self, t: Timestamp) {
        self.min_valid_time.fetch_max(t, Ordering::AcqRel);
    }

    /// The lower bound an appender enforces: Prometheus's
    /// `appendableMinValidTime`, i.e. the larger of the head's min valid time
    /// and half a chunk range before its newest sample.
    pub fn appendable_min_valid_time(&self) -> Timestamp {
        let mvt = self.min_valid_time.load(Ordering::Acquire);
        let maxt = self.max_time();
        if maxt == i64::MIN {
            return mvt;
        }
        mvt.max(maxt.saturating_sub(self.opts.chunk_range / 2))
    }

    fn stripe_of(&self, x: u64) -> usize {
        (x as usize) & (self.by_hash.len() - 1)
    }

    /// The series with id `id`.
    pub fn series(&self, id: u64) -> Option<Arc<MemSeries>> {
        self.by_id.get(id)
    }

    /// The series with these labels.
    pub fn series_by_labels(&self, labels: &Labels) -> Option<Arc<MemSeries>> {
        let h = labels.stable_hash();
        self.by_hash[self.stripe_of(h)].read().get(h, labels).cloned()
    }

    /// Finds or creates the series. `id` forces the id (WAL replay);
    /// otherwise a new one is assigned. Returns whether it was created.
    pub(crate) fn get_or_create(&self, labels: &Labels, id: Option<u64>) -> (Arc<MemSeries>, bool) {
        let h = labels.stable_hash();
        let stripe = &self.by_hash[self.stripe_of(h)];
        if let Some(s) = stripe.read().get(h, labels) {
            return (s.clone(), false);
        }
        let mut g = stripe.write();
        if let Some(s) = g.get(h, labels) {
            return (s.clone(), false);
        }
        let id = match id {
            // A WAL naming one id for two label sets is corrupt; the second
            // set gets a fresh id rather than replacing the first series.
            Some(id) if id != 0 && self.by_id.get(id).is_none() => {
                self.last_id.fetch_max(id, Ordering::AcqRel);
                id
            }
            Some(id) => {
                tracing::warn!(id, labels = %labels, "series id reused or zero in WAL; assigning a new id");
                self.last_id.fetch_max(id, Ordering::AcqRel);
                self.last_id.fetch_add(1, Ordering::AcqRel) + 1
            }
            None => self.last_id.fetch_add(1, Ordering::AcqRel) + 1,
        };
        let s = Arc::new(MemSeries {
            id,
            labels: labels.clone(),
            logged: AtomicBool::new(false),
            deleted: AtomicBool::new(false),
            data: Mutex::new(SeriesData::default()),
        });
        g.insert(h, s.clone());
        self.by_id.insert(id, s.clone());
        // Index while still holding the stripe lock, so a series is in the
        // postings before anyone else can find it by labels.
        self.postings.write().add(id, labels);
        drop(g);
        self.metrics.head_series.fetch_add(1, Ordering::Relaxed);
        self.metrics.head_series_created_total.fetch_add(1, Ordering::Relaxed);
        (s, true)
    }

    /// Calls `f` for every series in the head (in id order).
    pub fn for_each_series(&self, f: impl FnMut(&Arc<MemSeries>)) {
        self.by_id.for_each(f)
    }

    /// Everything of the head in `[mint, maxt)` as chunks to write into a
    /// block, sorted by labels. Chunks wholly inside the range are copied
    /// as they are; a chunk crossing an edge is re-encoded with only its
    /// samples inside (the head cuts chunks at range boundaries, so this is
    /// rare). Deleted samples are left out.
    ///
    /// The series and references to their chunks are gathered first; the
    /// chunk bytes are copied one series at a time as the block writer
    /// takes them, so writing a block does not hold a second copy of the
    /// head's chunks (at 1 M series that copy was 1.4 GB).
    pub fn block_chunks(&self, mint: Timestamp, maxt: Timestamp) -> HeadBlockChunks {
        use crate::block::ChunkToWrite;
        let mut out = Vec::new();
        let tombstones = self.tombstones.read();
        self.by_id.for_each(|s| {
            let deleted: &[(Timestamp, Timestamp)] = tombstones.get(&s.id).map_or(&[], |v| v.as_slice());
            let chunks = s.chunks(mint, maxt - 1);
            if chunks.is_empty() {
                return;
            }
            let mut w = Vec::with_capacity(chunks.len());
            for c in chunks {
                if c.mint >= mint && c.maxt < maxt && !deleted::overlaps(deleted, c.mint, c.maxt) {
                    w.push(BlockChunk::Whole(c));
                    continue;
                }
                let mut it = XorIterator::new(c.data.clone());
                let mut kept = Vec::new();
                while it.next() {
                    let (t, v) = it.at();
                    // Deleted samples are not written (Prometheus applies
                    // the head's tombstones when it persists the head).
                    if t >= mint && t < maxt && !deleted::covers(deleted, t) {
                        kept.push((t, v));
                    }
                }
                w.extend(ChunkToWrite::encode_xor(&kept).into_iter().map(BlockChunk::Cut));
            }
            if !w.is_empty() {
                out.push((s.labels.clone(), w));
            }
        });
        drop(tombstones);
        crate::sort::sort_by_labels(&mut out, |x| &x.0);
        HeadBlockChunks { series: out.into_iter() }
    }

    /// Drops everything older than `mint` (now persisted in blocks):
    /// chunks that end before it, then series left without chunks, which
    /// leave the indexes. Samples older than `mint` are refused from now
    /// on. Returns (chunks removed, series removed).
    pub fn truncate(&self, mint: Timestamp) -> (u64, u64) {
        self.set_min_valid_time(mint);
        let mut removed_chunks = 0u64;
        let mut empty: Vec<Arc<MemSeries>> = Vec::new();
        let mut new_min = i64::MAX;
        self.by_id.for_each(|s| {
            let mut d = s.data.lock();
            let before = d.closed.len();
            d.closed.retain(|c| c.maxt >= mint);
            removed_chunks += (before - d.closed.len()) as u64;
            if d.head.as_ref().is_some_and(|h| h.chunk.num_samples() == 0 || h.chunk.last_t() < mint) {
                d.head = None;
                removed_chunks += 1;
            }
            match (d.closed.first(), &d.head) {
                (Some(c), _) => new_min = new_min.min(c.mint),
                (None, Some(h)) => new_min = new_min.min(h.mint),
                (None, None) => empty.push(s.clone()),
            }
        });
        // Removal happens with no commit in flight (commits hold the WAL
        // lock while applying), and each series is re-checked under its
        // own lock, so a sample committed meanwhile keeps its series.
        let wal_guard = self.wal().map(|w| w.lock());
        let mut removed_series = 0u64;
        let mut tombstones = self.tombstones.write();
        for s in empty {
            let d = s.data.lock();
            if !d.closed.is_empty() || d.head.is_some() {
                continue;
            }
            s.deleted.store(true, Ordering::Release);
            drop(d);
            let h = s.labels.stable_hash();
            self.by_hash[self.stripe_of(h)].write().remove(h, &s);
            self.by_id.remove(s.id);
            self.postings.write().delete(s.id, &s.labels);
            tombstones.remove(&s.id);
            removed_series += 1;
        }
        // What lies before `mint` is gone from the head, so are its
        // deletions (Prometheus: `TruncateBefore`).
        tombstones.retain(|_, ivs| {
            deleted::truncate_before(ivs, mint);
            !ivs.is_empty()
        });
        drop(tombstones);
        drop(wal_guard);
        self.metrics.head_series.fetch_sub(removed_series as i64, Ordering::Relaxed);
        self.metrics.head_series_removed_total.fetch_add(removed_series, Ordering::Relaxed);
        self.metrics.head_chunks.fetch_sub(removed_chunks as i64, Ordering::Relaxed);
        self.metrics.head_truncations_total.fetch_add(1, Ordering::Relaxed);
        // The head now starts at `mint` (or is empty).
        let min = if new_min == i64::MAX { i64::MAX } else { new_min.max(mint) };
        self.min_time.store(min, Ordering::Release);
        self.metrics.head_min_time.store(min, Ordering::Relaxed);
        (removed_chunks, removed_series)
    }

    /// Marks the samples in `[mint, maxt]` of the series matching
    /// `matchers` as deleted, as Prometheus's `Head.Delete`: the range is
    /// clamped to the head's and then to each series' samples (so samples
    /// appended later are not affected), logged to the WAL as a tombstones
    /// record, then applied. Returns the number of series affected.
    pub fn delete(
        &self,
        mint: Timestamp,
        maxt: Timestamp,
        matchers: &[Matcher],
    ) -> Result<usize, StorageError> {
        let (mint, maxt) = (mint.max(self.min_time()), maxt.min(self.max_time()));
        if mint > maxt {
            return Ok(0);
        }
        let ids = self.postings.read().postings_for_matchers(matchers);
        let mut stones = Vec::new();
        for id in ids.iter() {
            let Some(s) = self.series(id) else { continue };
            let Some((t0, t1)) = s.data.lock().time_range() else { continue };
            let (a, b) = (mint.max(t0), maxt.min(t1));
            if a <= b {
                stones.push(record::RefTombstone { id, mint: a, maxt: b });
            }
        }
        if stones.is_empty() {
            return Ok(0);
        }
        // Logged and applied under the WAL lock, so a replay sees the
        // deletion in the same order relative to commits.
        let guard = match self.wal() {
            Some(w) => {
                let mut g = w.lock();
                let mut buf = Vec::new();
                record::encode_tombstones(&stones, &mut buf);
                if let Err(e) = g.log(&[&buf]) {
                    self.metrics.wal_writes_failed_total.fetch_add(1, Ordering::Relaxed);
                    return Err(StorageError::Io(format!("write to WAL: {e}")));
                }
                Some(g)
            }
            None => None,
        };
        let mut t = self.tombstones.write();
        for st in &stones {
            deleted::add_interval(t.entry(st.id).or_default(), st.mint, st.maxt);
        }
        drop(t);
        drop(guard);
        Ok(stones.len())
    }

    /// Applies tombstones read back from the WAL; those of unknown series
    /// are dropped. Returns how many were dropped.
    pub(crate) fn replay_tombstones(&self, stones: &[record::RefTombstone]) -> u64 {
        let mut unknown = 0;
        let mut t = self.tombstones.write();
        for st in stones {
            if self.by_id.get(st.id).is_none() {
                unknown += 1;
                continue;
            }
            deleted::add_interval(t.entry(st.id).or_default(), st.mint, st.maxt);
        }
        unknown
    }

    /// The deleted intervals of series `id` (empty: nothing deleted).
    pub fn deleted_intervals(&self, id: u64) -> Intervals {
        self.tombstones.read().get(&id).cloned().unwrap_or_default()
    }

    /// Number of series with deleted intervals.
    pub fn num_tombstoned_series(&self) -> usize {
        self.tombstones.read().len()
    }

    /// Cardinality statistics of the head's index, as Prometheus's
    /// `Head.Stats(__name__, limit)` computes them for
    /// `/api/v1/status/tsdb`. Each list holds the `limit` largest entries,
    /// largest first; ties are ordered by name (Prometheus leaves their
    /// order unspecified).
    pub fn stats(&self, limit: usize) -> HeadStats {
        let p = self.postings.read();
        let names: Vec<String> = p.label_names().into_iter().filter(|n| !n.is_empty()).collect();
        let mut metrics = Vec::new();
        let mut labels = Vec::new();
        let mut memory = Vec::new();
        // Label pairs can number in the millions: only the top ones are
        // turned into strings.
        let mut pairs: Vec<(u64, usize, &str)> = Vec::new();
        let mut num_label_pairs = 0u64;
        for (ni, name) in names.iter().enumerate() {
            let Some(values) = p.values(name) else { continue };
            labels.push((name.clone(), values.len() as u64));
            num_label_pairs += values.len() as u64;
            let mut size = 0u64;
            for (value, ids) in values {
                let n = ids.cardinality();
                if name == ember_model::METRIC_NAME {
                    metrics.push((value.clone(), n));
                }
                pairs.push((n, ni, value.as_str()));
                // Prometheus 3.0: the bytes of the value once per series.
                size += value.len() as u64 * n;
            }
            memory.push((name.clone(), size));
        }
        // Largest first, ties by the `name=value` text.
        let pair_order = |a: &(u64, usize, &str), b: &(u64, usize, &str)| {
            b.0.cmp(&a.0).then_with(|| {
                let ka = names[a.1].bytes().chain(*b"=").chain(a.2.bytes());
                ka.cmp(names[b.1].bytes().chain(*b"=").chain(b.2.bytes()))
            })
        };
        if limit > 0 && pairs.len() > limit {
            pairs.select_nth_unstable_by(limit - 1, pair_order);
            pairs.truncate(limit);
        }
        pairs.sort_unstable_by(pair_order);
        let pairs: Vec<(String, u64)> =
            pairs.into_iter().take(limit).map(|(n, ni, v)| (format!("{}={v}", names[ni]), n)).collect();
        let num_series = p.num_series();
        drop(p);
        let top = |mut v: Vec<(String, u64)>| {
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            v.truncate(limit);
            v
        };
        HeadStats {
            num_series,
            num_label_pairs,
            chunk_count: self.metrics.head_chunks.load(Ordering::Relaxed),
            min_time: self.min_time(),
            max_time: self.max_time(),
            series_count_by_metric_name: top(metrics),
            label_value_count_by_label_name: top(labels),
            memory_in_bytes_by_label_name: top(memory),
            series_count_by_label_value_pair: pairs,
        }
    }

    /// Makes sure `id` is never assigned to a new series (every id named in
    /// the WAL stays reserved, even one that was remapped).
    pub(crate) fn reserve_id(&self, id: u64) {
        self.last_id.fetch_max(id, Ordering::AcqRel);
    }

    /// Metadata recorded for a metric family.
    pub fn metadata(&self, metric: &str) -> Option<Metadata> {
        self.metadata.read().get(metric).cloned()
    }

    /// Every metric family with metadata, sorted by name.
    pub fn all_metadata(&self) -> Vec<(String, Metadata)> {
        let mut v: Vec<_> = self.metadata.read().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub(crate) fn set_metadata(&self, series: &MemSeries, meta: &Metadata) {
        if let Some(name) = series.labels.metric_name() {
            let mut g = self.metadata.write();
            if g.get(name) != Some(meta) {
                g.insert(name.to_owned(), meta.clone());
            }
        }
    }

    /// Appends one sample directly to a series (commit and WAL replay).
    /// Updates the chunk metrics; time bounds are the caller's job.
    fn apply(&self, s: &MemSeries, t: Timestamp, v: f64) -> Appended {
        let r = s.data.lock().append(t, v, &self.opts);
        if let Appended::Ok { chunk_created } = r {
            if chunk_created {
                // A cut head chunk stays in memory (closed) until the head
                // is truncated, so every creation adds one.
                self.metrics.head_chunks_created_total.fetch_add(1, Ordering::Relaxed);
                self.metrics.head_chunks.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }

    fn update_time_bounds(&self, mint: Timestamp, maxt: Timestamp) {
        if mint <= maxt {
            let old = self.min_time.fetch_min(mint, Ordering::AcqRel);
            self.metrics.head_min_time.store(old.min(mint), Ordering::Relaxed);
            let old = self.max_time.fetch_max(maxt, Ordering::AcqRel);
            self.metrics.head_max_time.store(old.max(maxt), Ordering::Relaxed);
        }
    }

    /// Replays WAL samples of series this caller owns (replay shards by
    /// id): out-of-order and duplicate samples are dropped, as they were
    /// when first committed. Returns (samples applied, unknown ids).
    pub(crate) fn replay_samples(&self, samples: &[crate::record::RefSample]) -> (u64, u64) {
        let (mut applied, mut unknown) = (0u64, 0u64);
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        let min_valid = self.min_valid_time.load(Ordering::Acquire);
        // Replay is bound by cache misses on series (each sample usually
        // belongs to another series). Locked instructions serialise those
        // misses, so for a window of samples the series are first reached
        // through their slots' read guards (no reference count traffic),
        // touched with plain loads (misses overlap), then appended to.
        const WINDOW: usize = 16;
        for window in samples.chunks(WINDOW) {
            let guards: Vec<_> = window.iter().map(|rs| self.by_id.slot(rs.id)).collect();
            let mut touch = 0u64;
            for g in &guards {
                if let Some(Some(s)) = g.as_deref() {
                    touch = touch.wrapping_add(s.id);
                }
            }
            std::hint::black_box(touch);
            for (rs, g) in window.iter().zip(&guards) {
                // Already persisted in a block (a crash came between the
                // block's rename and the WAL checkpoint): as Prometheus,
                // drop it rather than store it twice.
                if rs.t < min_valid {
                    continue;
                }
                let r = match g.as_deref() {
                    Some(Some(s)) => Some(self.apply(s, rs.t, rs.v)),
                    Some(None) => None,
                    // Ids beyond the array (or in an unallocated segment)
                    // take the slow path.
                    None => self.by_id.get(rs.id).map(|s| self.apply(&s, rs.t, rs.v)),
                };
                let Some(r) = r else {
                    unknown += 1;
                    continue;
                };
                if let Appended::Ok { .. } = r {
                    applied += 1;
                    mint = mint.min(rs.t);
                    maxt = maxt.max(rs.t);
                }
            }
        }
        self.update_time_bounds(mint, maxt);
        (applied, unknown)
    }

    pub(crate) fn mark_logged(s: &MemSeries) {
        s.logged.store(true, Ordering::Relaxed);
    }

    /// Total number of chunks (for tests and accounting).
    pub fn num_chunks(&self) -> usize {
        let mut n = 0;
        self.by_id.for_each(|s| n += s.data.lock().num_chunks());
        n
    }

    /// A head appender.
    pub fn head_appender(&self) -> HeadAppender<'_> {
        HeadAppender {
            head: self,
            min_valid_time: self.appendable_min_valid_time(),
            samples: Vec::new(),
            id: self.last_appender_id.fetch_add(1, Ordering::Relaxed) + 1,
            meta: Vec::new(),
            created: 0,
            buf: Vec::new(),
        }
    }

    /// A querier over `[mint, maxt]`.
    pub fn head_querier(&self, mint: Timestamp, maxt: Timestamp) -> HeadQuerier<'_> {
        HeadQuerier { head: self, mint, maxt }
    }

    fn overlaps(&self, mint: Timestamp, maxt: Timestamp) -> bool {
        let (hmin, hmax) = (self.min_time(), self.max_time());
        hmin <= hmax && hmin <= maxt && mint <= hmax
    }
}

struct Pending {
    series: Arc<MemSeries>,
    t: Timestamp,
    v: f64,
}

/// A batch of appends to the head; see [`Appender`].
pub struct HeadAppender<'a> {
    head: &'a Head,
    min_valid_time: Timestamp,
    samples: Vec<Pending>,
    /// Unique per appender; marks this batch's pending samples in series.
    id: u64,
    meta: Vec<(Arc<MemSeries>, Metadata)>,
    created: u64,
    buf: Vec<u8>,
}

impl std::fmt::Debug for HeadAppender<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadAppender").field("pending", &self.samples.len()).finish_non_exhaustive()
    }
}

impl HeadAppender<'_> {
    fn resolve(&mut self, r: Option<SeriesRef>, labels: &Labels) -> Result<Arc<MemSeries>, AppendError> {
        if let Some(s) = r.and_then(|r| self.head.series(r.get())) {
            return Ok(s);
        }
        if labels.is_empty() {
            return Err(AppendError::InvalidLabels("empty labelset".into()));
        }
        let (s, created) = self.head.get_or_create(labels, None);
        if created {
            self.created += 1;
        }
        Ok(s)
    }

    /// Series removed by head truncation since `append` resolved them are
    /// re-created (a new id and series record), so no committed sample
    /// lands in a series nobody can find. Called with the WAL lock held,
    /// which excludes truncation.
    fn revive_deleted(&mut self) {
        for i in 0..self.samples.len() {
            if self.samples[i].series.deleted.load(Ordering::Acquire) {
                let labels = self.samples[i].series.labels.clone();
                let (s, created) = self.head.get_or_create(&labels, None);
                if created {
                    self.created += 1;
                }
                self.samples[i].series = s;
            }
        }
        for i in 0..self.meta.len() {
            if self.meta[i].0.deleted.load(Ordering::Acquire) {
                let labels = self.meta[i].0.labels.clone();
                self.meta[i].0 = self.head.get_or_create(&labels, None).0;
            }
        }
    }

    fn clear(&mut self) {
        // A fresh id orphans the pending marks this batch left in series.
        self.id = self.head.last_appender_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.samples.clear();
        self.meta.clear();
        self.created = 0;
    }

    /// Encodes this batch's WAL records into `self.buf`, returning the
    /// record boundaries.
    fn encode_records(&mut self) -> Vec<std::ops::Range<usize>> {
        let mut ranges = Vec::with_capacity(3);
        self.buf.clear();
        let mut new_series: Vec<&Arc<MemSeries>> = Vec::new();
        let mut seen = U64Map::<()>::default();
        for s in self.samples.iter().map(|p| &p.series).chain(self.meta.iter().map(|m| &m.0)) {
            if !s.logged.load(Ordering::Relaxed) && seen.insert(s.id, ()).is_none() {
                new_series.push(s);
            }
        }
        if !new_series.is_empty() {
            let start = self.buf.len();
            record::encode_series(new_series.iter().map(|s| (s.id, &s.labels)), &mut self.buf);
            ranges.push(start..self.buf.len());
        }
        if !self.samples.is_empty() {
            let start = self.buf.len();
            record::encode_samples(self.samples.iter().map(|p| (p.series.id, p.t, p.v)), &mut self.buf);
            ranges.push(start..self.buf.len());
        }
        if !self.meta.is_empty() {
            let start = self.buf.len();
            record::encode_metadata(self.meta.iter().map(|(s, m)| (s.id, m)), &mut self.buf);
            ranges.push(start..self.buf.len());
        }
        ranges
    }

    fn apply(&mut self) -> CommitStats {
        let head = self.head;
        let mut appended = 0u64;
        let (mut mint, mut maxt) = (i64::MAX, i64::MIN);
        for p in &self.samples {
            match head.apply(&p.series, p.t, p.v) {
                Appended::Ok { .. } => {
                    appended += 1;
                    mint = mint.min(p.t);
                    maxt = maxt.max(p.t);
                }
                // Another appender committed newer samples for this series
                // since `append` checked: counted, as Prometheus does.
                Appended::OutOfOrder => {
                    head.metrics.out_of_order_samples_total.fetch_add(1, Ordering::Relaxed);
                }
                Appended::Duplicate => {
                    head.metrics.duplicate_samples_total.fetch_add(1, Ordering::Relaxed);
                }
                Appended::Identical => {}
            }
        }
        head.update_time_bounds(mint, maxt);
        for (s, m) in &self.meta {
            head.set_metadata(s, m);
        }
        head.metrics.head_samples_appended_total.fetch_add(appended, Ordering::Relaxed);
        CommitStats { samples_appended: appended, series_created: self.created }
    }
}

impl Appender for HeadAppender<'_> {
    fn append(
        &mut self,
        series: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        if t < self.min_valid_time {
            self.head.metrics.out_of_bounds_samples_total.fetch_add(1, Ordering::Relaxed);
            return Err(AppendError::OutOfBounds);
        }
        let s = self.resolve(series, labels)?;
        let r = SeriesRef::new(s.id).ok_or(AppendError::UnknownRef)?;
        let mut data = s.data.lock();
        let last = if data.pending_owner == self.id { Some(data.pending) } else { data.last() };
        if let Some((lt, lv)) = last {
            if t < lt {
                self.head.metrics.out_of_order_samples_total.fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::OutOfOrder);
            }
            if t == lt {
                if lv == v.to_bits() {
                    // An identical duplicate is accepted and dropped.
                    return Ok(r);
                }
                self.head.metrics.duplicate_samples_total.fetch_add(1, Ordering::Relaxed);
                return Err(AppendError::DuplicateTimestamp);
            }
        }
        data.pending_owner = self.id;
        data.pending = (t, v.to_bits());
        drop(data);
        self.samples.push(Pending { series: s, t, v });
        Ok(r)
    }

    fn update_metadata(
        &mut self,
        series: Option<SeriesRef>,
        labels: &Labels,
        meta: &Metadata,
    ) -> Result<(), AppendError> {
        let s = self.resolve(series, labels)?;
        // Only changes are logged and applied, as in Prometheus.
        if self.head.metadata(s.labels.metric_name().unwrap_or("")).as_ref() != Some(meta) {
            self.meta.push((s, meta.clone()));
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<CommitStats, StorageError> {
        if self.samples.is_empty() && self.meta.is_empty() {
            let stats = CommitStats { samples_appended: 0, series_created: self.created };
            self.clear();
            return Ok(stats);
        }
        let head = self.head;
        let stats = match head.wal() {
            Some(wal) => {
                let mut w = wal.lock();
                self.revive_deleted();
                let ranges = self.encode_records();
                let recs: Vec<&[u8]> = ranges.iter().map(|r| &self.buf[r.clone()]).collect();
                if let Err(e) = w.log(&recs) {
                    head.metrics.wal_writes_failed_total.fetch_add(1, Ordering::Relaxed);
                    self.clear();
                    return Err(StorageError::Io(format!("write to WAL: {e}")));
                }
                for p in &self.samples {
                    Head::mark_logged(&p.series);
                }
                for (s, _) in &self.meta {
                    Head::mark_logged(s);
                }
                // Applied under the WAL lock so that replay order equals
                // the order in which batches became visible.
                let stats = self.apply();
                drop(w);
                stats
            }
            None => self.apply(),
        };
        self.clear();
        Ok(stats)
    }

    fn rollback(&mut self) {
        self.clear();
    }
}

impl Appendable for Head {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(self.head_appender())
    }
}

/// A read view of the head over `[mint, maxt]`.
#[derive(Debug)]
pub struct HeadQuerier<'a> {
    head: &'a Head,
    mint: Timestamp,
    maxt: Timestamp,
}

impl HeadQuerier<'_> {
    fn postings(&self, matchers: &[Matcher]) -> Bitmap64 {
        self.head.postings.read().postings_for_matchers(matchers)
    }

    fn matching_series(&self, matchers: &[Matcher]) -> Vec<Arc<MemSeries>> {
        let p = self.postings(matchers);
        let mut out = Vec::with_capacity(p.cardinality() as usize);
        for id in p.iter() {
            if let Some(s) = self.head.series(id) {
                out.push(s);
            }
        }
        out
    }

    /// Matching series with samples in the querier's range. The range check
    /// happens here, while each series is being touched anyway, rather than
    /// in a second pass over (by then cold) series.
    /// Series wholly deleted in range are left out; the others carry their
    /// deleted intervals.
    fn matching_series_in_range(&self, matchers: &[Matcher]) -> Vec<(Arc<MemSeries>, Intervals)> {
        let p = self.postings(matchers);
        let mut out = Vec::with_capacity(p.cardinality() as usize);
        let tombstones = self.head.tombstones.read();
        for id in p.iter() {
            if let Some(s) = self.head.series(id) {
                let ivs = tombstones.get(&id);
                let d = s.data.lock();
                if !d.has_samples_in(self.mint, self.maxt) {
                    continue;
                }
                if let Some(ivs) = ivs {
                    if d.all_deleted_in(self.mint, self.maxt, ivs) {
                        continue;
                    }
                }
                drop(d);
                out.push((s, ivs.cloned().unwrap_or_default()));
            }
        }
        out
    }
}

impl Querier for HeadQuerier<'_> {
    fn select(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + '_>, StorageError> {
        let mut series = if self.head.overlaps(self.mint, self.maxt) {
            self.matching_series_in_range(matchers)
        } else {
            Vec::new()
        };
        if sorted {
            crate::sort::sort_by_labels(&mut series, |s| &s.0.labels);
        }
        Ok(Box::new(HeadSeriesSet {
            series: series.into_iter(),
            mint: self.mint,
            maxt: self.maxt,
            limit: hints.limit,
            yielded: 0,
        }))
    }

    fn label_values(
        &self,
        name: &str,
        hints: &LabelHints,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        if !self.head.overlaps(self.mint, self.maxt) {
            return Ok(Vec::new());
        }
        let mut out = if matchers.is_empty() {
            self.head.postings.read().label_values(name)
        } else {
            let mut v: Vec<String> = self
                .matching_series(matchers)
                .iter()
                .filter_map(|s| s.labels.get(name).map(str::to_owned))
                .collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        out.retain(|v| !v.is_empty());
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }

    fn label_names(&self, hints: &LabelHints, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        if !self.head.overlaps(self.mint, self.maxt) {
            return Ok(Vec::new());
        }
        let mut out = if matchers.is_empty() {
            self.head.postings.read().label_names()
        } else {
            let mut v: Vec<String> = Vec::new();
            for s in self.matching_series(matchers) {
                v.extend(s.labels.iter().map(|l| l.name.to_owned()));
            }
            v.sort_unstable();
            v.dedup();
            v
        };
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(out)
    }
}

impl Queryable for Head {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(self.head_querier(mint, maxt)))
    }
}

/// Series of a select, materialised lazily: a series' chunks are
/// snapshotted only when it is reached, and series without samples in range
/// are skipped.
struct HeadSeriesSet {
    series: std::vec::IntoIter<(Arc<MemSeries>, Intervals)>,
    mint: Timestamp,
    maxt: Timestamp,
    limit: usize,
    yielded: usize,
}

impl Iterator for HeadSeriesSet {
    type Item = Result<Series, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.limit > 0 && self.yielded >= self.limit {
            return None;
        }
        // Series were filtered to those with samples in range at select.
        if let Some((s, deleted)) = self.series.next() {
            self.yielded += 1;
            let lazy = LazySeriesIterator { series: s, mint: self.mint, maxt: self.maxt, inner: None };
            let labels = lazy.series.labels.clone();
            let samples: Box<dyn SampleIterator> =
                if deleted.is_empty() { Box::new(lazy) } else { Box::new(DeletedFilter::new(lazy, deleted)) };
            return Some(Ok(Series { labels, samples }));
        }
        None
    }
}

impl SeriesSet for HeadSeriesSet {}

/// Snapshots a series' chunks on first use, so selecting many series and
/// reading few of them (or only their labels) copies nothing.
struct LazySeriesIterator {
    series: Arc<MemSeries>,
    mint: Timestamp,
    maxt: Timestamp,
    inner: Option<ChunkSeriesIterator>,
}

impl LazySeriesIterator {
    fn inner(&mut self) -> &mut ChunkSeriesIterator {
        let (s, mint, maxt) = (&self.series, self.mint, self.maxt);
        self.inner.get_or_insert_with(|| ChunkSeriesIterator::new(s.chunks(mint, maxt), mint, maxt))
    }
}

impl SampleIterator for LazySeriesIterator {
    fn next(&mut self) -> bool {
        self.inner().next()
    }
    fn seek(&mut self, t: Timestamp) -> bool {
        self.inner().seek(t)
    }
    fn at(&self) -> (Timestamp, f64) {
        self.inner.as_ref().map_or((0, 0.0), |i| i.at())
    }
    fn started(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.started())
    }
    fn err(&self) -> Option<StorageError> {
        self.inner.as_ref().and_then(|i| i.err())
    }
}

/// Iterates the samples of a list of ordered, non-overlapping chunks,
/// restricted to `[mint, maxt]`. Owns the chunk bytes.
#[derive(Debug)]
pub struct ChunkSeriesIterator {
    chunks: Vec<ChunkMeta>,
    idx: usize,
    cur: Option<XorIterator<Arc<[u8]>>>,
    mint: Timestamp,
    maxt: Timestamp,
    started: bool,
    done: bool,
    err: Option<StorageError>,
}

impl ChunkSeriesIterator {
    pub fn new(chunks: Vec<ChunkMeta>, mint: Timestamp, maxt: Timestamp) -> ChunkSeriesIterator {
        ChunkSeriesIterator { chunks, idx: 0, cur: None, mint, maxt, started: false, done: false, err: None }
    }

    fn finish(&mut self) -> bool {
        self.done = true;
        self.started = false;
        false
    }

    /// Moves to the first sample ≥ `t` (and ≥ mint), across chunks.
    fn advance_to(&mut self, t: Timestamp) -> bool {
        let t = t.max(self.mint);
        loop {
            if self.cur.is_none() {
                // Skip whole chunks that end before `t`.
                while self.idx < self.chunks.len() && self.chunks[self.idx].maxt < t {
                    self.idx += 1;
                }
                let Some(c) = self.chunks.get(self.idx) else {
                    return self.finish();
                };
                self.cur = Some(XorIterator::new(c.data.clone()));
                self.idx += 1;
            }
            let Some(it) = self.cur.as_mut() else {
                return self.finish();
            };
            if it.seek(t) {
                if it.at().0 > self.maxt {
                    return self.finish();
                }
                self.started = true;
                return true;
            }
            if let Some(e) = it.err() {
                self.err = Some(StorageError::Corruption(e.to_string()));
                return self.finish();
            }
            self.cur = None;
        }
    }
}

impl SampleIterator for ChunkSeriesIterator {
    fn next(&mut self) -> bool {
        if self.done {
            return false;
        }
        if !self.started {
            return self.advance_to(self.mint);
        }
        let Some(it) = self.cur.as_mut() else {
            return self.finish();
        };
        if it.next() {
            if it.at().0 > self.maxt {
                return self.finish();
            }
            return true;
        }
        if let Some(e) = it.err() {
            self.err = Some(StorageError::Corruption(e.to_string()));
            return self.finish();
        }
        self.cur = None;
        self.advance_to(self.mint)
    }

    fn seek(&mut self, t: Timestamp) -> bool {
        if self.done {
            return false;
        }
        if self.started {
            if let Some(it) = &self.cur {
                if it.at().0 >= t {
                    return true;
                }
            }
        }
        self.advance_to(t)
    }

    fn at(&self) -> (Timestamp, f64) {
        self.cur.as_ref().map(|it| it.at()).unwrap_or((0, 0.0))
    }

    fn started(&self) -> bool {
        self.started && !self.done
    }

    fn err(&self) -> Option<StorageError> {
        self.err.clone()
    }
}
