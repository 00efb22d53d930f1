//! Bytes per sample of a server's persisted, compressed storage, as opposed
//! to its whole data dir (which in a short run is mostly WAL, or
//! fixed-size index and cache files).
//!
//! * Prometheus-format servers (Prometheus, ember): the blocks the server
//!   itself wrote into its data dir, i.e. the directories named by a ULID
//!   holding a `meta.json` (blocks still being written have a temporary
//!   name and are not counted). Bytes are everything in those directories
//!   (`chunks/*`, `index`, `meta.json`, `tombstones`); samples and series
//!   are the sums of `stats.numSamples` / `stats.numSeries` of their
//!   `meta.json`. Only runs with a small block range
//!   (`--storage.tsdb.min-block-duration`) write blocks within minutes.
//! * VictoriaMetrics: `GET /internal/force_flush` first (rows still in its
//!   memory buffers go into parts on disk), then all files under its data
//!   dir (`data/` sample parts + `indexdb/` + small metadata files) over
//!   the rows its `/metrics` reports in `storage/*` parts (`vm_rows`).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::{http, procfs};

/// How a server's stored bytes per sample are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockProbe {
    /// ULID-named block dirs in the data dir (Prometheus, ember).
    BlockDirs,
    /// Force a flush, then the whole data dir over `vm_rows`.
    VictoriaMetricsFlush,
}

/// Bytes, samples and series of the persisted storage.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BlockFigures {
    /// Blocks counted (0 for VictoriaMetrics, which has parts, not blocks).
    pub blocks: usize,
    /// All counted bytes.
    pub bytes: u64,
    /// Sample data only: `chunks/` of every block; VictoriaMetrics `data/`.
    pub chunk_bytes: u64,
    /// Index only: every block's `index`; VictoriaMetrics `indexdb/`.
    pub index_bytes: u64,
    /// Samples the counted bytes hold (all series, `up` & co. included).
    pub samples: f64,
    /// Sum of the blocks' `numSeries` (a series in three blocks counts
    /// three times: each block has its own index); `None` for
    /// VictoriaMetrics, whose index is global.
    pub series_in_blocks: Option<f64>,
    /// Time range covered by the blocks (ms), for the report.
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
}

impl BlockFigures {
    pub fn bytes_per_sample(&self) -> Option<f64> {
        (self.samples > 0.0).then(|| self.bytes as f64 / self.samples)
    }

    pub fn chunk_bytes_per_sample(&self) -> Option<f64> {
        (self.samples > 0.0).then(|| self.chunk_bytes as f64 / self.samples)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(transparent)]
    Proc(#[from] procfs::ProcError),
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The data dir has no block yet (the run's report says why).
    #[error("no block directory in {0}")]
    NoBlocks(String),
    #[error("{0}")]
    Other(String),
}

/// What a block's `meta.json` says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub num_samples: u64,
    pub num_series: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// Parses the fields of a block's `meta.json` the figures need.
pub fn parse_meta(meta_json: &str) -> Result<Meta, BlockError> {
    let v: Value =
        serde_json::from_str(meta_json).map_err(|e| BlockError::Other(format!("meta.json: {e}")))?;
    let u = |p: &str| {
        v.pointer(p).and_then(Value::as_u64).ok_or_else(|| BlockError::Other(format!("meta.json has no {p}")))
    };
    let i = |p: &str| {
        v.pointer(p).and_then(Value::as_i64).ok_or_else(|| BlockError::Other(format!("meta.json has no {p}")))
    };
    Ok(Meta {
        num_samples: u("/stats/numSamples")?,
        num_series: u("/stats/numSeries")?,
        min_time: i("/minTime")?,
        max_time: i("/maxTime")?,
    })
}

/// Whether `name` is a ULID as block directories are named: 26 characters
/// of Crockford's base32 (upper case, no I, L, O, U), the first at most
/// `7` (48-bit time). `01HX….tmp-for-creation` and the like are not.
pub fn is_ulid(name: &str) -> bool {
    name.len() == 26
        && name.as_bytes()[0] <= b'7'
        && name.bytes().all(|b| b.is_ascii_digit() || (b.is_ascii_uppercase() && !b"ILOU".contains(&b)))
}

/// Sums `vm_rows` over the `storage/*` part types of a VictoriaMetrics
/// `/metrics` page: the rows (samples) in its sample parts.
pub fn vm_storage_rows(page: &str) -> Result<f64, BlockError> {
    let (mut rows, mut seen) = (0f64, false);
    for line in page.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        if !(series.starts_with("vm_rows{") && series.contains("type=\"storage/")) {
            continue;
        }
        let Ok(v) = value.parse::<f64>() else { continue };
        rows += v;
        seen = true;
    }
    if !seen {
        return Err(BlockError::Other("no vm_rows for storage/* in /metrics".to_owned()));
    }
    Ok(rows)
}

/// Measures the running server at `api` with data dir `data`.
pub fn measure(
    probe: BlockProbe,
    api: &str,
    data: &Path,
    timeout: Duration,
) -> Result<BlockFigures, BlockError> {
    match probe {
        BlockProbe::BlockDirs => block_dirs(data),
        BlockProbe::VictoriaMetricsFlush => {
            let r = http::get(&format!("{api}/internal/force_flush"), timeout)?;
            if r.status != 200 {
                let body: String = String::from_utf8_lossy(&r.body).chars().take(200).collect();
                return Err(BlockError::Other(format!("force_flush: HTTP {}: {body}", r.status)));
            }
            let page = http::get(&format!("{api}/metrics"), timeout)?;
            let samples = vm_storage_rows(&String::from_utf8_lossy(&page.body))?;
            let sub = |name: &str| {
                let p = data.join(name);
                if p.is_dir() {
                    procfs::dir_bytes(&p)
                } else {
                    Ok(0)
                }
            };
            Ok(BlockFigures {
                blocks: 0,
                bytes: procfs::dir_bytes(data)?,
                chunk_bytes: sub("data")?,
                index_bytes: sub("indexdb")?,
                samples,
                series_in_blocks: None,
                min_time: None,
                max_time: None,
            })
        }
    }
}

/// The blocks in a Prometheus-format data dir (see the module comment).
/// A block that disappears while being read (deleted by compaction or
/// retention) is skipped.
pub fn block_dirs(data: &Path) -> Result<BlockFigures, BlockError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| BlockError::Io { path, source }
    };
    let mut f = BlockFigures::default();
    let (mut samples, mut series) = (0u64, 0u64);
    for entry in std::fs::read_dir(data).map_err(io(data))? {
        let entry = entry.map_err(io(data))?;
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_ulid) || !entry.file_type().map_err(io(data))?.is_dir() {
            continue;
        }
        let dir = entry.path();
        let meta = match std::fs::read_to_string(dir.join("meta.json")) {
            Ok(text) => parse_meta(&text)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io(&dir)(e)),
        };
        let (bytes, chunk_bytes, index_bytes) = match (
            procfs::dir_bytes(&dir),
            procfs::dir_bytes(&dir.join("chunks")),
            dir.join("index").metadata(),
        ) {
            (Ok(b), Ok(c), Ok(i)) => (b, c, i.len()),
            // Gone since the listing: not a block of this measurement.
            _ if !dir.exists() => continue,
            (Err(e), _, _) | (_, Err(e), _) => return Err(e.into()),
            (_, _, Err(e)) => return Err(io(&dir.join("index"))(e)),
        };
        f.blocks += 1;
        f.bytes += bytes;
        f.chunk_bytes += chunk_bytes;
        f.index_bytes += index_bytes;
        samples += meta.num_samples;
        series += meta.num_series;
        f.min_time = Some(f.min_time.map_or(meta.min_time, |t| t.min(meta.min_time)));
        f.max_time = Some(f.max_time.map_or(meta.max_time, |t| t.max(meta.max_time)));
    }
    if f.blocks == 0 {
        return Err(BlockError::NoBlocks(data.display().to_string()));
    }
    f.samples = samples as f64;
    f.series_in_blocks = Some(series as f64);
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    const META: &str = r#"{"ulid":"01X","minTime":1000,"maxTime":301000,"stats":{"numSamples":4242,"numSeries":3,"numChunks":5},"compaction":{"level":1},"version":1}"#;

    #[test]
    fn meta_json_fields() {
        let m = parse_meta(META).unwrap();
        assert_eq!(m, Meta { num_samples: 4242, num_series: 3, min_time: 1000, max_time: 301000 });
        assert!(parse_meta(r#"{"version":1}"#).is_err());
        assert!(parse_meta(r#"{"minTime":1,"maxTime":2,"stats":{"numSeries":3}}"#).is_err());
        assert!(parse_meta(r#"{"minTime":1,"maxTime":2,"stats":{"numSamples":-1,"numSeries":3}}"#).is_err());
        assert!(parse_meta("not json").is_err());
    }

    #[test]
    fn ulid_names() {
        assert!(is_ulid("01HZX3K9QW8R7T6Y5V4B3N2M1C"));
        assert!(!is_ulid("01HZX3K9QW8R7T6Y5V4B3N2M1C.tmp-for-creation"));
        assert!(!is_ulid("01hzx3k9qw8r7t6y5v4b3n2m1c"), "lower case");
        assert!(!is_ulid("01HZX3K9QW8R7T6Y5V4B3N2M1I"), "I is not Crockford");
        assert!(!is_ulid("81HZX3K9QW8R7T6Y5V4B3N2M1C"), "beyond 48-bit time");
        assert!(!is_ulid("wal") && !is_ulid("chunks_head"));
    }

    #[test]
    fn vm_rows_of_storage_parts_only() {
        let page = "vm_data_size_bytes{type=\"storage/big\"} 300\n\
                    vm_rows{type=\"indexdb\"} 99\n\
                    vm_rows{type=\"storage/big\"} 1000\n\
                    vm_rows{type=\"storage/small\"} 1500\n\
                    vm_rows_added_to_storage_total 9999\n";
        assert_eq!(vm_storage_rows(page).unwrap(), 2500.0);
        assert!(vm_storage_rows("vm_rows{type=\"indexdb\"} 1\n").is_err());
    }

    fn write_block(dir: &Path, name: &str, samples: u64, series: u64, chunk: usize, index: usize) -> u64 {
        let b = dir.join(name);
        std::fs::create_dir_all(b.join("chunks")).unwrap();
        let meta = format!(
            r#"{{"minTime":{},"maxTime":{},"stats":{{"numSamples":{samples},"numSeries":{series}}}}}"#,
            samples * 10,
            samples * 20
        );
        std::fs::write(b.join("meta.json"), &meta).unwrap();
        std::fs::write(b.join("chunks/000001"), vec![0u8; chunk]).unwrap();
        std::fs::write(b.join("index"), vec![0u8; index]).unwrap();
        meta.len() as u64
    }

    #[test]
    fn block_dirs_count_only_finished_ulid_blocks() {
        let dir = std::env::temp_dir().join(format!("ember-bench-blocks-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("wal")).unwrap();
        std::fs::write(dir.join("wal/00000000"), vec![0u8; 5000]).unwrap();
        // No block yet: an error value the report explains, not a number.
        assert!(matches!(block_dirs(&dir), Err(BlockError::NoBlocks(_))));
        let m1 = write_block(&dir, "01HZX3K9QW8R7T6Y5V4B3N2M1A", 100, 4, 1000, 300);
        let m2 = write_block(&dir, "01HZX3K9QW8R7T6Y5V4B3N2M1B", 50, 2, 400, 200);
        // Being written (temporary name) and a ULID dir without meta.json.
        write_block(&dir, "01HZX3K9QW8R7T6Y5V4B3N2M1C.tmp-for-creation", 7, 1, 99999, 9999);
        std::fs::create_dir_all(dir.join("01HZX3K9QW8R7T6Y5V4B3N2M1D/chunks")).unwrap();
        let f = block_dirs(&dir).unwrap();
        assert_eq!(f.blocks, 2);
        assert_eq!(f.samples, 150.0);
        assert_eq!(f.series_in_blocks, Some(6.0));
        assert_eq!(f.chunk_bytes, 1400);
        assert_eq!(f.index_bytes, 500);
        assert_eq!(f.bytes, 1900 + m1 + m2);
        assert_eq!((f.min_time, f.max_time), (Some(500), Some(2000)));
        assert!((f.bytes_per_sample().unwrap() - (1900 + m1 + m2) as f64 / 150.0).abs() < 1e-9);
        assert!((f.chunk_bytes_per_sample().unwrap() - 1400.0 / 150.0).abs() < 1e-9);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(matches!(block_dirs(&dir), Err(BlockError::Io { .. })));
    }

    #[test]
    fn empty_figures_have_no_ratio() {
        assert_eq!(BlockFigures::default().bytes_per_sample(), None);
    }
}
