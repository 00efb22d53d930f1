//! Reading a block through the storage traits: select by matchers over a
//! time range, with tombstoned samples hidden.

use std::sync::Arc;

use ember_model::{
    LabelHints, Labels, Matcher, Querier, SampleIterator, SelectHints, Series, SeriesSet, StorageError,
    Timestamp,
};

use super::{Block, BlockError, ChunkBytes, ChunkMeta, ENCODING_XOR};
use crate::chunkenc::XorIterator;
use crate::deleted::{self, DeletedFilter};

fn storage_err(e: BlockError) -> StorageError {
    match e {
        BlockError::Corrupt(m) => StorageError::Corruption(m),
        other => StorageError::Io(other.to_string()),
    }
}

/// A read view of one block over `[mint, maxt]` (inclusive).
#[derive(Debug)]
pub struct BlockQuerier {
    block: Arc<Block>,
    mint: Timestamp,
    maxt: Timestamp,
}

impl BlockQuerier {
    pub fn new(block: Arc<Block>, mint: Timestamp, maxt: Timestamp) -> BlockQuerier {
        BlockQuerier { block, mint, maxt }
    }

    fn overlaps(&self) -> bool {
        let m = self.block.meta();
        m.min_time <= self.maxt && self.mint < m.max_time
    }

    /// Labels of every series matching `matchers` with data in range.
    fn matching_labels(&self, matchers: &[Matcher]) -> Result<Vec<Labels>, StorageError> {
        let ids = self.block.postings(matchers).map_err(storage_err)?;
        let mut metas = Vec::new();
        let mut out = Vec::new();
        for id in ids.iter() {
            let l = self.block.index().series(id, &mut metas).map_err(storage_err)?;
            if metas.iter().any(|c| c.maxt >= self.mint && c.mint <= self.maxt) {
                out.push(l);
            }
        }
        Ok(out)
    }
}

struct BlockSeriesSet {
    block: Arc<Block>,
    ids: std::vec::IntoIter<u32>,
    mint: Timestamp,
    maxt: Timestamp,
    limit: usize,
    yielded: usize,
    metas: Vec<ChunkMeta>,
}

impl Iterator for BlockSeriesSet {
    type Item = Result<Series, StorageError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.limit > 0 && self.yielded >= self.limit {
            return None;
        }
        for id in self.ids.by_ref() {
            let labels = match self.block.index().series(id, &mut self.metas) {
                Ok(l) => l,
                Err(e) => return Some(Err(storage_err(e))),
            };
            let chunks: Vec<ChunkMeta> =
                self.metas.iter().filter(|c| c.maxt >= self.mint && c.mint <= self.maxt).copied().collect();
            if chunks.is_empty() {
                continue;
            }
            let deleted = self.block.tombstones().get(&u64::from(id)).cloned().unwrap_or_default();
            // A series whose chunks in range are all deleted is not there.
            if chunks
                .iter()
                .all(|c| deleted::is_subrange(&deleted, c.mint.max(self.mint), c.maxt.min(self.maxt)))
            {
                continue;
            }
            self.yielded += 1;
            let it = BlockSeriesIterator {
                block: self.block.clone(),
                chunks,
                idx: 0,
                cur: None,
                mint: self.mint,
                maxt: self.maxt,
                started: false,
                done: false,
                err: None,
            };
            // Tombstones are applied the way the head applies its own.
            let samples: Box<dyn SampleIterator> =
                if deleted.is_empty() { Box::new(it) } else { Box::new(DeletedFilter::new(it, deleted)) };
            return Some(Ok(Series { labels, samples }));
        }
        None
    }
}

impl SeriesSet for BlockSeriesSet {}

/// Iterates a block series' chunks within `[mint, maxt]` (tombstones are a
/// [`DeletedFilter`] around it). Chunk bytes are read from the memory map
/// lazily.
struct BlockSeriesIterator {
    block: Arc<Block>,
    chunks: Vec<ChunkMeta>,
    idx: usize,
    cur: Option<XorIterator<ChunkBytes>>,
    mint: Timestamp,
    maxt: Timestamp,
    started: bool,
    done: bool,
    err: Option<StorageError>,
}

impl BlockSeriesIterator {
    fn finish(&mut self) -> bool {
        self.done = true;
        self.started = false;
        false
    }

    /// Accepts the current sample unless it lies past `maxt`; false at end.
    fn settle(&mut self) -> bool {
        let Some(it) = self.cur.as_ref() else { return self.open_next(self.mint) };
        if it.at().0 > self.maxt {
            return self.finish();
        }
        self.started = true;
        true
    }

    /// Opens the next chunk that may hold samples ≥ `t` and positions on
    /// its first such sample.
    fn open_next(&mut self, t: Timestamp) -> bool {
        let t = t.max(self.mint);
        loop {
            while self.idx < self.chunks.len() && self.chunks[self.idx].maxt < t {
                self.idx += 1;
            }
            let Some(c) = self.chunks.get(self.idx).copied() else { return self.finish() };
            self.idx += 1;
            let (enc, bytes) = match self.block.chunks().chunk(c.chunk_ref) {
                Ok(x) => x,
                Err(e) => {
                    self.err = Some(storage_err(e));
                    return self.finish();
                }
            };
            if enc != ENCODING_XOR {
                // Native histogram chunks: not supported yet, skipped.
                continue;
            }
            let mut it = XorIterator::new(bytes);
            if it.seek(t) {
                self.cur = Some(it);
                return self.settle();
            }
            if let Some(e) = it.err() {
                self.err = Some(StorageError::Corruption(e.to_string()));
                return self.finish();
            }
        }
    }
}

impl SampleIterator for BlockSeriesIterator {
    fn next(&mut self) -> bool {
        if self.done {
            return false;
        }
        if !self.started {
            return self.open_next(self.mint);
        }
        let Some(it) = self.cur.as_mut() else { return self.finish() };
        if it.next() {
            return self.settle();
        }
        if let Some(e) = it.err() {
            self.err = Some(StorageError::Corruption(e.to_string()));
            return self.finish();
        }
        self.cur = None;
        self.open_next(self.mint)
    }

    fn seek(&mut self, t: Timestamp) -> bool {
        if self.done {
            return false;
        }
        if self.started {
            if let Some(it) = self.cur.as_mut() {
                if it.at().0 >= t {
                    return true;
                }
                if it.seek(t) {
                    return self.settle();
                }
                if let Some(e) = it.err() {
                    self.err = Some(StorageError::Corruption(e.to_string()));
                    return self.finish();
                }
                self.cur = None;
            }
        }
        self.open_next(t)
    }

    fn at(&self) -> (Timestamp, f64) {
        self.cur.as_ref().map_or((0, 0.0), |it| it.at())
    }

    fn started(&self) -> bool {
        self.started && !self.done
    }

    fn err(&self) -> Option<StorageError> {
        self.err.clone()
    }
}

impl Querier for BlockQuerier {
    fn select(
        &self,
        _sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + '_>, StorageError> {
        // Series ids are in label order, so results are always sorted.
        let ids: Vec<u32> = if self.overlaps() {
            self.block.postings(matchers).map_err(storage_err)?.iter().collect()
        } else {
            Vec::new()
        };
        Ok(Box::new(BlockSeriesSet {
            block: self.block.clone(),
            ids: ids.into_iter(),
            mint: self.mint,
            maxt: self.maxt,
            limit: hints.limit,
            yielded: 0,
            metas: Vec::new(),
        }))
    }

    fn label_values(
        &self,
        name: &str,
        hints: &LabelHints,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        if !self.overlaps() {
            return Ok(Vec::new());
        }
        let mut out: Vec<String> = if matchers.is_empty() {
            self.block.index().label_values(name).into_iter().map(str::to_owned).collect()
        } else {
            let mut v: Vec<String> = self
                .matching_labels(matchers)?
                .iter()
                .filter_map(|l| l.get(name).map(str::to_owned))
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
        if !self.overlaps() {
            return Ok(Vec::new());
        }
        let mut out: Vec<String> = if matchers.is_empty() {
            self.block.index().label_names().into_iter().map(str::to_owned).collect()
        } else {
            let mut v: Vec<String> = Vec::new();
            for l in self.matching_labels(matchers)? {
                v.extend(l.iter().map(|x| x.name.to_owned()));
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
