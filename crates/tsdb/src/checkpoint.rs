//! WAL checkpoints: after the head is truncated, the closed WAL segments
//! are condensed into `wal/checkpoint.NNNNNNNN` (a directory of segments in
//! the WAL format) holding only what the head still needs — series records
//! of live series, their samples at or after the truncation time, their
//! metadata — and the segments are deleted. Replay reads the newest
//! checkpoint, then the segments after it.
//!
//! The checkpoint is written to `checkpoint.NNNNNNNN.tmp` and renamed, so a
//! crash leaves either the old state (segments intact) or the new one;
//! segments are deleted only after the rename. Leftover `.tmp` directories
//! are removed at the next checkpoint.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ember_model::Timestamp;

use crate::head::Head;
use crate::metrics::TsdbMetrics;
use crate::record::{self, Record};
use crate::wal::{self, list_segments, SyncPolicy, Wal, WalError, WalOptions};

const PREFIX: &str = "checkpoint.";

/// The newest complete checkpoint in `wal_dir`: its directory and the last
/// segment it covers.
pub fn last_checkpoint(wal_dir: &Path) -> Result<Option<(PathBuf, u32)>, WalError> {
    let mut best: Option<(PathBuf, u32)> = None;
    let rd = match fs::read_dir(wal_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(WalError::Io { context: format!("read dir {}", wal_dir.display()), source })
        }
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(n) = name.strip_prefix(PREFIX).and_then(|n| n.parse::<u32>().ok()) else { continue };
        if best.as_ref().is_none_or(|(_, b)| n > *b) {
            best = Some((e.path(), n));
        }
    }
    Ok(best)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> WalError {
    move |source| WalError::Io { context, source }
}

/// What a checkpoint did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    pub last_segment: u32,
    pub series_kept: u64,
    pub samples_kept: u64,
    pub segments_deleted: usize,
}

/// Removes the temporaries of interrupted checkpoints
/// (`checkpoint.NNNNNNNN.tmp`), returning what it removed. Readers ignore
/// them, but they hold disk space until the next checkpoint.
pub fn remove_temporaries(wal_dir: &Path) -> Result<Vec<std::path::PathBuf>, WalError> {
    let mut removed = Vec::new();
    for e in fs::read_dir(wal_dir).map_err(io(format!("read dir {}", wal_dir.display())))?.flatten() {
        if e.file_name().to_str().is_some_and(|n| n.starts_with(PREFIX) && n.ends_with(".tmp")) {
            fs::remove_dir_all(e.path()).map_err(io(format!("remove {}", e.path().display())))?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

/// Condenses every closed segment (all but the one being written) and the
/// previous checkpoint into a new checkpoint, keeping records of series
/// still in `head` and samples at or after `mint`; then deletes the
/// condensed segments and older checkpoints. `current` is the segment being
/// written (cut just before, so all older ones are closed).
pub fn checkpoint(
    wal_dir: &Path,
    current: u32,
    head: &Head,
    mint: Timestamp,
    metrics: &Arc<TsdbMetrics>,
) -> Result<Option<CheckpointStats>, WalError> {
    let segments: Vec<u32> = list_segments(wal_dir)?.into_iter().filter(|s| *s < current).collect();
    let Some(&last) = segments.last() else { return Ok(None) };
    let prev = last_checkpoint(wal_dir)?;
    remove_temporaries(wal_dir)?;
    let final_dir = wal_dir.join(format!("{PREFIX}{last:08}"));
    let tmp_dir = wal_dir.join(format!("{PREFIX}{last:08}.tmp"));
    let opts = WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() };
    let mut out = Wal::open(&tmp_dir, opts, Arc::new(TsdbMetrics::new()))?;
    let mut stats = CheckpointStats { last_segment: last, ..Default::default() };
    let mut buf = Vec::new();
    let mut keep = |rec: &[u8], out: &mut Wal| -> Result<(), WalError> {
        let r = match record::decode(rec) {
            Ok(r) => r,
            // Undecodable records were already skipped at replay.
            Err(_) => return Ok(()),
        };
        buf.clear();
        match r {
            Record::Series(series) => {
                let live: Vec<_> = series.iter().filter(|s| head.series(s.id).is_some()).collect();
                if live.is_empty() {
                    return Ok(());
                }
                stats.series_kept += live.len() as u64;
                record::encode_series(live.iter().map(|s| (s.id, &s.labels)), &mut buf);
            }
            Record::Samples(samples) => {
                let live: Vec<_> =
                    samples.iter().filter(|s| s.t >= mint && head.series(s.id).is_some()).collect();
                if live.is_empty() {
                    return Ok(());
                }
                stats.samples_kept += live.len() as u64;
                record::encode_samples(live.iter().map(|s| (s.id, s.t, s.v)), &mut buf);
            }
            Record::Metadata(metas) => {
                let live: Vec<_> = metas.iter().filter(|m| head.series(m.id).is_some()).collect();
                if live.is_empty() {
                    return Ok(());
                }
                record::encode_metadata(live.iter().map(|m| (m.id, &m.meta)), &mut buf);
            }
            Record::Tombstones(stones) => {
                // Deletions wholly before `mint` concern data that is gone.
                let live: Vec<_> =
                    stones.into_iter().filter(|t| t.maxt >= mint && head.series(t.id).is_some()).collect();
                if live.is_empty() {
                    return Ok(());
                }
                record::encode_tombstones(&live, &mut buf);
            }
            Record::Unknown(_) => return Ok(()),
        }
        out.log(&[&buf])
    };
    if let Some((dir, _)) = &prev {
        let r = wal::read_all(dir, |_, rec| keep(rec, &mut out))?;
        if let Ok(Some(c)) = &r {
            return Err(WalError::Io {
                context: format!("previous checkpoint {} is corrupt: {}", dir.display(), c.reason),
                source: std::io::Error::other("corrupt checkpoint"),
            });
        }
        r?;
    }
    let first = segments[0];
    let r = wal::read_segments(wal_dir, first..=last, |_, rec| keep(rec, &mut out))?;
    if let Ok(Some(c)) = &r {
        return Err(WalError::Io {
            context: format!("WAL segment {} is corrupt at {}: {}", c.segment, c.offset, c.reason),
            source: std::io::Error::other("corrupt segment"),
        });
    }
    r?;
    out.close()?;
    fs::rename(&tmp_dir, &final_dir).map_err(io(format!("rename {}", tmp_dir.display())))?;
    fs::File::open(wal_dir).and_then(|f| f.sync_all()).map_err(io(format!("fsync {}", wal_dir.display())))?;
    metrics.checkpoint_creations_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    // Only now is it safe to delete what the checkpoint replaces.
    for seg in segments {
        let p = wal_dir.join(wal::segment_name(seg));
        fs::remove_file(&p).map_err(io(format!("remove {}", p.display())))?;
        stats.segments_deleted += 1;
    }
    if let Some((dir, n)) = prev {
        if n < last {
            fs::remove_dir_all(&dir).map_err(io(format!("remove {}", dir.display())))?;
        }
    }
    tracing::info!(
        last_segment = last,
        series = stats.series_kept,
        samples = stats.samples_kept,
        "WAL checkpoint complete"
    );
    Ok(Some(stats))
}
