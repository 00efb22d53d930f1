//! Persistent blocks in Prometheus's v2 on-disk format.
//!
//! A block is a directory named by its ULID holding `meta.json`, `index`,
//! `chunks/000001…` and `tombstones`. Blocks are written into
//! `<ulid>.tmp-for-creation`, fsynced, and renamed into place, so a crash
//! never leaves a half-written block under a block's name; leftovers with the
//! temporary suffix are removed at startup. A merged block lists its
//! sources in `meta.json` (`compaction.parents`); the sources are deleted
//! only after it is durable, and a crash in between is resolved at startup
//! by deleting the parents, so no sample is ever visible twice
//! ([`remove_incomplete_blocks`]). Readers memory-map the index and chunk
//! segments and never copy them into memory.

pub mod chunks;
pub mod compact;
pub mod encoding;
pub mod index;
pub mod meta;
pub mod querier;
pub mod tombstones;

use std::fs;
use std::path::{Path, PathBuf};

use croaring::Bitmap;
use ember_model::{Labels, MatchOp, Matcher, Timestamp};

pub use chunks::{ChunkBytes, ChunkReader, ChunkWriter};
pub use index::{ChunkMeta, IndexReader};
pub use meta::{BlockCompaction, BlockDesc, BlockMeta, BlockStats};
pub use tombstones::Tombstones;

/// Suffix of a block directory still being written.
pub const TMP_CREATION_SUFFIX: &str = ".tmp-for-creation";
/// Suffix of a block directory being deleted.
pub const TMP_DELETION_SUFFIX: &str = ".tmp-for-deletion";
pub const INDEX_FILENAME: &str = "index";
pub const CHUNKS_DIRNAME: &str = "chunks";
/// Chunk encoding of float XOR chunks.
pub const ENCODING_XOR: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("corrupt block: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Invalid(String),
}

/// One chunk to write: its time span (inclusive), encoding and data.
#[derive(Debug, Clone)]
pub struct ChunkToWrite {
    pub mint: Timestamp,
    pub maxt: Timestamp,
    pub encoding: u8,
    pub data: Vec<u8>,
}

/// Samples per chunk when samples are (re-)encoded, as the head cuts them.
pub const SAMPLES_PER_CHUNK: usize = 120;

impl ChunkToWrite {
    /// Encodes time-ordered samples as XOR chunks of at most
    /// [`SAMPLES_PER_CHUNK`] samples each.
    pub fn encode_xor(samples: &[(Timestamp, f64)]) -> Vec<ChunkToWrite> {
        samples
            .chunks(SAMPLES_PER_CHUNK)
            .map(|part| {
                let mut c = crate::chunkenc::XorChunk::new();
                for &(t, v) in part {
                    c.append(t, v);
                }
                ChunkToWrite {
                    mint: part[0].0,
                    maxt: part[part.len() - 1].0,
                    encoding: ENCODING_XOR,
                    data: c.into_bytes(),
                }
            })
            .collect()
    }
}

/// Writes a block from series sorted by labels. `min_time`/`max_time` are
/// the block's range (`max_time` exclusive). Returns the new block's meta;
/// the block is visible under `parent/<ulid>` only once complete.
pub fn write_block<I>(
    parent: &Path,
    min_time: Timestamp,
    max_time: Timestamp,
    compaction: BlockCompaction,
    series: I,
) -> Result<BlockMeta, BlockError>
where
    I: IntoIterator<Item = (Labels, Vec<ChunkToWrite>)>,
{
    prepare_block(parent, min_time, max_time, compaction, series)?.commit()
}

/// A block written and fsynced under its temporary name, not yet visible.
/// Dropping it without [`PendingBlock::commit`] removes it, so a block that
/// turns out unwanted (empty, or missing a series that failed to merge) is
/// never visible under its name, not even for a moment.
#[derive(Debug)]
pub struct PendingBlock {
    parent: PathBuf,
    tmp: PathBuf,
    meta: Option<BlockMeta>,
}

impl PendingBlock {
    pub fn meta(&self) -> Option<&BlockMeta> {
        self.meta.as_ref()
    }

    /// Renames the block into place and fsyncs the parent directory: from
    /// here on the block survives a crash.
    pub fn commit(mut self) -> Result<BlockMeta, BlockError> {
        let Some(meta) = self.meta.take() else {
            return Err(BlockError::Invalid("block already committed".into()));
        };
        let dst = self.parent.join(&meta.ulid);
        if let Err(e) = fs::rename(&self.tmp, &dst) {
            let _ = fs::remove_dir_all(&self.tmp);
            return Err(e.into());
        }
        fs::File::open(&self.parent)?.sync_all()?;
        Ok(meta)
    }
}

impl Drop for PendingBlock {
    fn drop(&mut self) {
        if self.meta.is_some() {
            // Best effort: a leftover is removed at the next open.
            let _ = fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Writes a block into `parent/<ulid>.tmp-for-creation` and fsyncs it; the
/// caller decides whether to [`PendingBlock::commit`] it.
pub fn prepare_block<I>(
    parent: &Path,
    min_time: Timestamp,
    max_time: Timestamp,
    compaction: BlockCompaction,
    series: I,
) -> Result<PendingBlock, BlockError>
where
    I: IntoIterator<Item = (Labels, Vec<ChunkToWrite>)>,
{
    let ulid = ulid::Ulid::new().to_string();
    let tmp = parent.join(format!("{ulid}{TMP_CREATION_SUFFIX}"));
    match write_block_into(&tmp, &ulid, min_time, max_time, compaction, series) {
        Ok(meta) => Ok(PendingBlock { parent: parent.to_owned(), tmp, meta: Some(meta) }),
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(e)
        }
    }
}

fn write_block_into<I>(
    dir: &Path,
    ulid: &str,
    min_time: Timestamp,
    max_time: Timestamp,
    mut compaction: BlockCompaction,
    series: I,
) -> Result<BlockMeta, BlockError>
where
    I: IntoIterator<Item = (Labels, Vec<ChunkToWrite>)>,
{
    fs::create_dir_all(dir)?;
    let mut cw = ChunkWriter::new(&dir.join(CHUNKS_DIRNAME))?;
    let mut stats = BlockStats::default();
    let mut index_series: Vec<(Labels, Vec<ChunkMeta>)> = Vec::new();
    for (labels, chunks) in series {
        if chunks.is_empty() {
            continue;
        }
        let mut metas = Vec::with_capacity(chunks.len());
        for c in chunks {
            if c.mint < min_time || c.maxt >= max_time {
                return Err(BlockError::Invalid(format!(
                    "chunk [{}, {}] of {labels} outside block range [{min_time}, {max_time})",
                    c.mint, c.maxt
                )));
            }
            let r = cw.write_chunk(c.encoding, &c.data)?;
            if c.encoding == ENCODING_XOR && c.data.len() >= 2 {
                stats.num_samples += u64::from(u16::from_be_bytes([c.data[0], c.data[1]]));
            }
            stats.num_chunks += 1;
            metas.push(ChunkMeta { mint: c.mint, maxt: c.maxt, chunk_ref: r });
        }
        stats.num_series += 1;
        index_series.push((labels, metas));
    }
    cw.close()?;
    index::write_index(&dir.join(INDEX_FILENAME), &index_series)?;
    tombstones::write_file(dir, &Tombstones::new())?;
    if compaction.sources.is_empty() {
        compaction.sources.push(ulid.to_owned());
    }
    if compaction.level == 0 {
        compaction.level = 1;
    }
    let meta = BlockMeta {
        ulid: ulid.to_owned(),
        min_time,
        max_time,
        stats,
        compaction,
        version: meta::META_VERSION_1,
    };
    meta.write(dir)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(meta)
}

/// An open, memory-mapped block.
#[derive(Debug)]
pub struct Block {
    dir: PathBuf,
    meta: BlockMeta,
    index: IndexReader,
    chunks: ChunkReader,
    tombstones: Tombstones,
}

impl Block {
    pub fn open(dir: &Path) -> Result<Block, BlockError> {
        let meta = BlockMeta::read(dir)?;
        let index = IndexReader::open(&dir.join(INDEX_FILENAME))?;
        let chunks = ChunkReader::open(&dir.join(CHUNKS_DIRNAME))?;
        let tombstones = tombstones::read_file(dir)?;
        Ok(Block { dir: dir.to_owned(), meta, index, chunks, tombstones })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn meta(&self) -> &BlockMeta {
        &self.meta
    }
    pub fn index(&self) -> &IndexReader {
        &self.index
    }
    pub fn chunks(&self) -> &ChunkReader {
        &self.chunks
    }
    pub fn tombstones(&self) -> &Tombstones {
        &self.tombstones
    }
    /// Bytes on disk of the index and chunks.
    pub fn size(&self) -> u64 {
        self.index.size() + self.chunks.size()
    }

    /// Marks samples of the series matching `matchers` in `[mint, maxt]` as
    /// deleted: rewrites `tombstones` (atomically) and the count in
    /// `meta.json`. Returns how many series were affected.
    pub fn delete(
        &mut self,
        mint: Timestamp,
        maxt: Timestamp,
        matchers: &[Matcher],
    ) -> Result<usize, BlockError> {
        if maxt < self.meta.min_time || mint >= self.meta.max_time {
            return Ok(0);
        }
        let ids = self.postings(matchers)?;
        let mut t = self.tombstones.clone();
        let mut metas = Vec::new();
        let mut n = 0;
        for id in ids.iter() {
            self.index.series(id, &mut metas)?;
            if !metas.iter().any(|c| c.mint <= maxt && c.maxt >= mint) {
                continue;
            }
            let ivs = t.entry(u64::from(id)).or_default();
            ivs.push((mint, maxt));
            merge_intervals(ivs);
            n += 1;
        }
        if n == 0 {
            return Ok(0);
        }
        let tmp = self.dir.join(format!("{}.tmp", tombstones::TOMBSTONES_FILENAME));
        std::fs::write(&tmp, tombstones::encode(&t))?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, self.dir.join(tombstones::TOMBSTONES_FILENAME))?;
        let mut meta = self.meta.clone();
        meta.stats.num_tombstones = t.values().map(|v| v.len() as u64).sum();
        meta.write(&self.dir)?;
        self.meta = meta;
        self.tombstones = t;
        Ok(n)
    }

    /// Series ids matching all `matchers`, in label order.
    pub fn postings(&self, matchers: &[Matcher]) -> Result<Bitmap, BlockError> {
        postings_for_matchers(&self.index, matchers)
    }
}

/// Sorts and merges overlapping or adjacent intervals in place.
pub fn merge_intervals(ivs: &mut Vec<(Timestamp, Timestamp)>) {
    ivs.sort_unstable();
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::with_capacity(ivs.len());
    for &(a, b) in ivs.iter() {
        match out.last_mut() {
            Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    *ivs = out;
}

/// The values of `m.name` that `m` selects, as a postings union.
fn postings_for_matcher(ix: &IndexReader, m: &Matcher) -> Result<Bitmap, BlockError> {
    if m.op == MatchOp::Equal {
        return ix.postings(&m.name, &m.value);
    }
    if let Some(set) = m.set_matches() {
        let mut out = Bitmap::new();
        for v in set {
            out.or_inplace(&ix.postings(&m.name, v)?);
        }
        return Ok(out);
    }
    ix.postings_for_values(&m.name, |v| m.matches(v))
}

/// The inverse of a matcher that accepts the empty string: the values it
/// rejects.
fn inverse(m: &Matcher) -> Result<Matcher, BlockError> {
    let op = match m.op {
        MatchOp::Equal => MatchOp::NotEqual,
        MatchOp::NotEqual => MatchOp::Equal,
        MatchOp::RegexMatch => MatchOp::RegexNoMatch,
        MatchOp::RegexNoMatch => MatchOp::RegexMatch,
    };
    Matcher::new(op, m.name.clone(), m.value.clone()).map_err(|e| BlockError::Invalid(e.to_string()))
}

/// Prometheus's `PostingsForMatchers`: intersect what the positive matchers
/// select, then subtract what matchers accepting "" reject (a series lacking
/// the label has the empty value, so such matchers cannot select by value).
pub fn postings_for_matchers(ix: &IndexReader, matchers: &[Matcher]) -> Result<Bitmap, BlockError> {
    let mut result: Option<Bitmap> = None;
    let mut subtract = Bitmap::new();
    for m in matchers {
        if m.matches_empty() {
            // `x=~".*"` rejects nothing: it constrains nothing.
            if m.op == MatchOp::RegexMatch && m.regex().is_some_and(|r| r.as_str() == ".*") {
                continue;
            }
            let inv = inverse(m)?;
            subtract.or_inplace(&postings_for_matcher(ix, &inv)?);
        } else {
            let p = postings_for_matcher(ix, m)?;
            result = Some(match result {
                None => p,
                Some(r) => r.and(&p),
            });
            if result.as_ref().is_some_and(Bitmap::is_empty) {
                return Ok(Bitmap::new());
            }
        }
    }
    let mut r = match result {
        Some(r) => r,
        None => ix.all_postings()?,
    };
    r.andnot_inplace(&subtract);
    Ok(r)
}

/// Removes leftovers of interrupted block writes and deletions in a data
/// directory, and blocks that a complete block names as its compaction
/// parents (a crash between renaming a merged block into place and deleting
/// its sources leaves both; the merged block holds everything, and keeping
/// both would store every sample twice). Returns the removed paths.
///
/// A parent is removed even when it would not open (Prometheus does the
/// same: a corrupt block superseded by a loadable one is not an error).
/// Superseded blocks are renamed to the deletion suffix before removal, so
/// a crash midway never leaves a half-deleted block under its name.
pub fn remove_incomplete_blocks(data_dir: &Path) -> Result<Vec<PathBuf>, BlockError> {
    let mut removed = Vec::new();
    for e in fs::read_dir(data_dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(TMP_CREATION_SUFFIX) || name.ends_with(TMP_DELETION_SUFFIX) {
            fs::remove_dir_all(e.path())?;
            removed.push(e.path());
        }
    }
    let dirs = block_dirs(data_dir)?;
    let mut superseded: Vec<String> = Vec::new();
    for d in &dirs {
        // An unreadable meta.json is reported when the block is opened;
        // here it just supersedes nothing.
        if let Ok(m) = BlockMeta::read(d) {
            superseded.extend(m.compaction.parents.into_iter().map(|p| p.ulid));
        }
    }
    let mut renamed = false;
    for d in dirs {
        let Some(name) = d.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !superseded.contains(&name) {
            continue;
        }
        let tmp = data_dir.join(format!("{name}{TMP_DELETION_SUFFIX}"));
        fs::rename(&d, &tmp)?;
        renamed = true;
        fs::remove_dir_all(&tmp)?;
        removed.push(d);
    }
    if renamed {
        fs::File::open(data_dir)?.sync_all()?;
    }
    Ok(removed)
}

/// Block directories (named by a valid ULID with a meta.json) in a data
/// directory, sorted by name.
pub fn block_dirs(data_dir: &Path) -> Result<Vec<PathBuf>, BlockError> {
    let mut out = Vec::new();
    for e in fs::read_dir(data_dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if ulid::Ulid::from_string(name).is_ok() && e.path().join(meta::META_FILENAME).exists() {
            out.push(e.path());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests;
