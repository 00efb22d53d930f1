//! Compaction planning, block merging and retention.
//!
//! Planning follows Prometheus's leveled scheme: block ranges grow by ×3
//! from the minimum block duration (2h → 6h → 18h → …) up to the maximum
//! block duration (10 % of the retention, at most 31 days). Overlapping
//! blocks are merged first; otherwise blocks that together fill an aligned
//! range of the next level (or that lie wholly before the newest block) are
//! merged. The newest block is never picked by the range rule, which gives
//! one block-length of time to back up fresh blocks before they change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ember_model::{Labels, Timestamp};

use super::{
    prepare_block, Block, BlockCompaction, BlockDesc, BlockError, BlockMeta, ChunkMeta, ChunkToWrite,
    ENCODING_XOR,
};
use crate::chunkenc::XorIterator;

/// The level ranges: `min`, `min×3`, `min×9`, … up to `max` (inclusive).
pub fn exponential_ranges(min: i64, max: i64) -> Vec<i64> {
    let mut out = vec![min];
    let mut r = min;
    while let Some(next) = r.checked_mul(3) {
        if next > max {
            break;
        }
        out.push(next);
        r = next;
    }
    out
}

/// Prometheus's default maximum block duration: 10 % of the retention, at
/// most 31 days, at least the minimum block duration.
pub fn default_max_block_duration(retention_ms: Option<i64>, min_block: i64) -> i64 {
    let cap = 31 * 24 * 3600 * 1000;
    match retention_ms {
        Some(r) if r > 0 => (r / 10).clamp(min_block, cap),
        _ => cap,
    }
}

/// Groups blocks (sorted by min time) into aligned windows of width `tr`;
/// a block that does not fit inside one window is left out.
fn split_by_range(metas: &[&BlockMeta], tr: i64) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut i = 0;
    while i < metas.len() {
        let m = metas[i];
        let t0 = m.min_time.div_euclid(tr) * tr;
        if m.max_time > t0 + tr {
            i += 1;
            continue;
        }
        let mut group = Vec::new();
        while i < metas.len() && metas[i].min_time >= t0 && metas[i].max_time <= t0 + tr {
            group.push(i);
            i += 1;
        }
        if !group.is_empty() {
            out.push(group);
        }
    }
    out
}

/// Picks the blocks to compact next, by index into `metas` (which must be
/// sorted by min time). Empty: nothing to do.
pub fn plan(metas: &[&BlockMeta], ranges: &[i64]) -> Vec<usize> {
    // Overlapping blocks first (vertical compaction).
    let mut overlapping: Vec<usize> = Vec::new();
    let mut global_max = i64::MIN;
    for (i, m) in metas.iter().enumerate() {
        if i > 0 && m.min_time < global_max {
            if overlapping.is_empty() {
                overlapping.push(i - 1);
            }
            overlapping.push(i);
        } else if !overlapping.is_empty() {
            break;
        }
        global_max = global_max.max(m.max_time);
    }
    if overlapping.len() > 1 {
        return overlapping;
    }
    if metas.len() < 2 || ranges.len() < 2 {
        return Vec::new();
    }
    // Leave the newest block alone.
    let candidates = &metas[..metas.len() - 1];
    let high_time = metas[metas.len() - 1].min_time;
    for &tr in &ranges[1..] {
        for group in split_by_range(candidates, tr) {
            if group.len() < 2 || group.iter().any(|&i| candidates[i].compaction.failed) {
                continue;
            }
            let mint = candidates[group[0]].min_time;
            let maxt = candidates[group[group.len() - 1]].max_time;
            if maxt - mint == tr || maxt <= high_time {
                return group;
            }
        }
    }
    Vec::new()
}

/// One series' chunks from one block, with the block's tombstones for it.
struct SeriesPart {
    metas: Vec<ChunkMeta>,
    deleted: Vec<(Timestamp, Timestamp)>,
    block: usize,
}

/// Merges `blocks` into one new block under `parent`. Returns `None` when
/// the result would be empty (every sample deleted); the caller then just
/// deletes the sources.
pub fn compact(parent: &Path, blocks: &[&Block]) -> Result<Option<BlockMeta>, BlockError> {
    if blocks.is_empty() {
        return Ok(None);
    }
    let min_time = blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(0);
    let max_time = blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0);
    let mut sources: Vec<String> =
        blocks.iter().flat_map(|b| b.meta().compaction.sources.iter().cloned()).collect();
    sources.sort();
    sources.dedup();
    let level = blocks.iter().map(|b| b.meta().compaction.level).max().unwrap_or(0) + 1;
    let parents = blocks
        .iter()
        .map(|b| BlockDesc {
            ulid: b.meta().ulid.clone(),
            min_time: b.meta().min_time,
            max_time: b.meta().max_time,
        })
        .collect();

    // Gather every series' parts, keyed and ordered by labels. The label
    // sets and chunk metas are small; chunk data stays mapped until written.
    let mut series: BTreeMap<Labels, Vec<SeriesPart>> = BTreeMap::new();
    for (bi, b) in blocks.iter().enumerate() {
        let mut metas = Vec::new();
        for id in b.index().all_postings()?.iter() {
            let labels = b.index().series(id, &mut metas)?;
            let deleted = b.tombstones().get(&u64::from(id)).cloned().unwrap_or_default();
            series.entry(labels).or_default().push(SeriesPart { metas: metas.clone(), deleted, block: bi });
        }
    }

    let mut err: Option<BlockError> = None;
    let iter = series.into_iter().filter_map(|(labels, parts)| match merge_series(blocks, &parts) {
        Ok(chunks) if chunks.is_empty() => None,
        Ok(chunks) => Some((labels, chunks)),
        Err(e) => {
            err.get_or_insert(e);
            None
        }
    });
    let compaction = BlockCompaction { level, sources, parents, deletable: false, failed: false };
    let pending = prepare_block(parent, min_time, max_time, compaction, iter);
    // A series that failed to merge, or a result with no series, means the
    // block is not wanted: dropping `pending` removes it before it was ever
    // visible under its name.
    if let Some(e) = err {
        return Err(e);
    }
    let pending = pending?;
    if pending.meta().is_none_or(|m| m.stats.num_series == 0) {
        return Ok(None);
    }
    pending.commit().map(Some)
}

/// The chunks of one series across blocks. Chunks are copied untouched
/// when nothing overlaps and nothing is deleted; otherwise the samples are
/// merged (a timestamp present twice keeps the first block's sample) and
/// re-encoded.
fn merge_series(blocks: &[&Block], parts: &[SeriesPart]) -> Result<Vec<ChunkToWrite>, BlockError> {
    let mut all: Vec<(usize, ChunkMeta)> =
        parts.iter().flat_map(|p| p.metas.iter().map(move |m| (p.block, *m))).collect();
    all.sort_by_key(|(_, m)| (m.mint, m.maxt));
    let overlaps = all.windows(2).any(|w| w[1].1.mint <= w[0].1.maxt);
    let any_deleted = parts.iter().any(|p| !p.deleted.is_empty());
    if !overlaps && !any_deleted {
        return all
            .iter()
            .map(|(bi, m)| {
                let (encoding, data) = blocks[*bi].chunks().chunk(m.chunk_ref)?;
                Ok(ChunkToWrite { mint: m.mint, maxt: m.maxt, encoding, data: data.as_ref().to_vec() })
            })
            .collect();
    }
    let mut samples: Vec<(Timestamp, f64, usize)> = Vec::new();
    for p in parts {
        for m in &p.metas {
            let (encoding, data) = blocks[p.block].chunks().chunk(m.chunk_ref)?;
            if encoding != ENCODING_XOR {
                return Err(BlockError::Invalid(format!("cannot re-encode chunk encoding {encoding}")));
            }
            let mut it = XorIterator::new(data);
            while it.next() {
                let (t, v) = it.at();
                if !p.deleted.iter().any(|&(a, b)| t >= a && t <= b) {
                    samples.push((t, v, p.block));
                }
            }
            if let Some(e) = it.err() {
                return Err(BlockError::Corrupt(format!("chunk {:#x}: {e}", m.chunk_ref)));
            }
        }
    }
    samples.sort_by_key(|&(t, _, b)| (t, b));
    samples.dedup_by_key(|s| s.0);
    let samples: Vec<(Timestamp, f64)> = samples.into_iter().map(|(t, v, _)| (t, v)).collect();
    Ok(ChunkToWrite::encode_xor(&samples))
}

/// Blocks to delete for retention, oldest first: those ending more than
/// `retention_ms` before the newest block's end, then the oldest ones while
/// the total size (blocks plus `other_bytes`, e.g. WAL and head) exceeds
/// `max_bytes`. `blocks` must be sorted by min time.
pub fn retention_victims(
    blocks: &[(PathBuf, BlockMeta, u64)],
    retention_ms: Option<i64>,
    max_bytes: Option<u64>,
    other_bytes: u64,
) -> Vec<PathBuf> {
    let mut victims = Vec::new();
    let Some(newest_end) = blocks.iter().map(|(_, m, _)| m.max_time).max() else {
        return victims;
    };
    let mut kept: Vec<&(PathBuf, BlockMeta, u64)> = Vec::new();
    for b in blocks {
        match retention_ms {
            Some(r) if r > 0 && newest_end - b.1.max_time > r => victims.push(b.0.clone()),
            _ => kept.push(b),
        }
    }
    if let Some(limit) = max_bytes.filter(|&l| l > 0) {
        let mut total: u64 = other_bytes + kept.iter().map(|b| b.2).sum::<u64>();
        for b in kept {
            if total <= limit {
                break;
            }
            total = total.saturating_sub(b.2);
            victims.push(b.0.clone());
        }
    }
    victims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::write_block;
    use crate::chunkenc::XorChunk;
    use ember_model::labels;

    const H: i64 = 3600 * 1000;

    fn meta(min: i64, max: i64) -> BlockMeta {
        BlockMeta {
            ulid: format!("{min}-{max}"),
            min_time: min,
            max_time: max,
            stats: Default::default(),
            compaction: BlockCompaction { level: 1, ..Default::default() },
            version: 1,
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(
            exponential_ranges(2 * H, 31 * 24 * H),
            vec![2 * H, 6 * H, 18 * H, 54 * H, 162 * H, 486 * H]
        );
        assert_eq!(exponential_ranges(2 * H, 2 * H), vec![2 * H]);
        assert_eq!(default_max_block_duration(Some(15 * 24 * H), 2 * H), 36 * H);
        assert_eq!(default_max_block_duration(Some(H), 2 * H), 2 * H);
        assert_eq!(default_max_block_duration(None, 2 * H), 31 * 24 * H);
    }

    #[test]
    fn plans_like_the_leveled_compactor() {
        let r = exponential_ranges(2 * H, 54 * H);
        // Three 2h blocks filling [0,6h) plus a newer one: the three merge.
        let ms = [meta(0, 2 * H), meta(2 * H, 4 * H), meta(4 * H, 6 * H), meta(6 * H, 8 * H)];
        let refs: Vec<&BlockMeta> = ms.iter().collect();
        assert_eq!(plan(&refs, &r), vec![0, 1, 2]);
        // Two blocks of an unfinished 6h range, the second being the newest: wait.
        let ms = [meta(0, 2 * H), meta(2 * H, 4 * H)];
        let refs: Vec<&BlockMeta> = ms.iter().collect();
        assert!(plan(&refs, &r).is_empty());
        // Two blocks of a 6h range that ends before the newest block: merge.
        let ms = [meta(0, 2 * H), meta(2 * H, 4 * H), meta(6 * H, 8 * H)];
        let refs: Vec<&BlockMeta> = ms.iter().collect();
        assert_eq!(plan(&refs, &r), vec![0, 1]);
        // Overlaps win over everything.
        let ms = [meta(0, 2 * H), meta(H, 3 * H), meta(6 * H, 8 * H)];
        let refs: Vec<&BlockMeta> = ms.iter().collect();
        assert_eq!(plan(&refs, &r), vec![0, 1]);
        // A failed block is never picked.
        let mut ms = [meta(0, 2 * H), meta(2 * H, 4 * H), meta(4 * H, 6 * H), meta(6 * H, 8 * H)];
        ms[1].compaction.failed = true;
        let refs: Vec<&BlockMeta> = ms.iter().collect();
        assert!(plan(&refs, &r).is_empty());
    }

    #[test]
    fn retention_by_time_and_size() {
        let bs: Vec<(PathBuf, BlockMeta, u64)> =
            (0..5).map(|i| (PathBuf::from(format!("b{i}")), meta(i * 2 * H, (i + 1) * 2 * H), 100)).collect();
        assert_eq!(
            retention_victims(&bs, Some(5 * H), None, 0),
            vec![PathBuf::from("b0"), PathBuf::from("b1")]
        );
        assert_eq!(
            retention_victims(&bs, None, Some(350), 0),
            vec![PathBuf::from("b0"), PathBuf::from("b1")]
        );
        assert_eq!(
            retention_victims(&bs, None, Some(350), 60).len(),
            3,
            "WAL and head count toward the size"
        );
        assert!(retention_victims(&bs, Some(100 * H), Some(10_000), 0).is_empty());
    }

    fn block_with(dir: &Path, series: &[(Labels, Vec<(i64, f64)>)]) -> Block {
        let mint = series.iter().flat_map(|s| s.1.iter().map(|x| x.0)).min().unwrap();
        let maxt = series.iter().flat_map(|s| s.1.iter().map(|x| x.0)).max().unwrap() + 1;
        let iter = series.iter().map(|(l, s)| {
            let mut c = XorChunk::new();
            for &(t, v) in s {
                c.append(t, v);
            }
            (
                l.clone(),
                vec![ChunkToWrite {
                    mint: s[0].0,
                    maxt: s[s.len() - 1].0,
                    encoding: ENCODING_XOR,
                    data: c.into_bytes(),
                }],
            )
        });
        let m = write_block(dir, mint, maxt, BlockCompaction::default(), iter).unwrap();
        Block::open(&dir.join(m.ulid)).unwrap()
    }

    fn all_samples(b: &Block) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let mut out = vec![];
        let mut metas = vec![];
        for id in b.index().all_postings().unwrap().iter() {
            let l = b.index().series(id, &mut metas).unwrap();
            let mut s = vec![];
            for m in &metas {
                let (_, d) = b.chunks().chunk(m.chunk_ref).unwrap();
                let mut it = XorIterator::new(d);
                while it.next() {
                    s.push(it.at());
                }
            }
            out.push((l, s));
        }
        out
    }

    #[test]
    fn merges_adjacent_and_overlapping_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let a = labels!("__name__" => "a");
        let b = labels!("__name__" => "b");
        let b1 =
            block_with(dir.path(), &[(a.clone(), vec![(0, 1.0), (10, 2.0)]), (b.clone(), vec![(5, 5.0)])]);
        let b2 = block_with(dir.path(), &[(a.clone(), vec![(20, 3.0)])]);
        let b3 = block_with(dir.path(), &[(b.clone(), vec![(5, 9.0), (6, 6.0)])]);
        let m = compact(dir.path(), &[&b1, &b2, &b3]).unwrap().unwrap();
        assert_eq!(m.compaction.level, 2);
        assert_eq!(m.compaction.sources.len(), 3);
        assert_eq!(m.compaction.parents.len(), 3);
        assert_eq!((m.min_time, m.max_time), (0, 21));
        let merged = Block::open(&dir.path().join(&m.ulid)).unwrap();
        let got = all_samples(&merged);
        assert_eq!(got[0], (a, vec![(0, 1.0), (10, 2.0), (20, 3.0)]));
        assert_eq!(
            got[1],
            (b, vec![(5, 5.0), (6, 6.0)]),
            "duplicate timestamp keeps the first block's sample"
        );
        assert_eq!(m.stats.num_samples, 5);
    }

    #[test]
    fn compaction_applies_tombstones() {
        let dir = tempfile::tempdir().unwrap();
        let a = labels!("__name__" => "a");
        let b = labels!("__name__" => "b");
        let mut b1 = block_with(
            dir.path(),
            &[(a.clone(), vec![(0, 1.0), (10, 2.0), (20, 3.0)]), (b.clone(), vec![(5, 5.0)])],
        );
        assert_eq!(b1.delete(5, 15, &[ember_model::Matcher::equal("__name__", "a")]).unwrap(), 1);
        assert_eq!(b1.delete(100, 200, &[]).unwrap(), 0, "outside the block");
        assert_eq!(b1.meta().stats.num_tombstones, 1);
        // Tombstones survive reopening.
        let reopened = Block::open(b1.dir()).unwrap();
        assert_eq!(reopened.tombstones().len(), 1);
        let m = compact(dir.path(), &[&reopened]).unwrap().unwrap();
        let got = all_samples(&Block::open(&dir.path().join(&m.ulid)).unwrap());
        assert_eq!(got, vec![(a, vec![(0, 1.0), (20, 3.0)]), (b.clone(), vec![(5, 5.0)])]);

        // Deleting everything leaves nothing to write.
        let mut b2 = block_with(dir.path(), &[(b, vec![(1, 1.0)])]);
        b2.delete(i64::MIN, i64::MAX, &[]).unwrap();
        assert!(compact(dir.path(), &[&b2]).unwrap().is_none());
    }

    #[test]
    fn interval_merging() {
        let mut v = vec![(10, 20), (0, 5), (6, 8), (30, 40), (15, 25)];
        super::super::merge_intervals(&mut v);
        assert_eq!(v, vec![(0, 8), (10, 25), (30, 40)]);
    }
}
