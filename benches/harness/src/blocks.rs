//! Bytes per sample of a server's compressed sample storage, as opposed to
//! its whole data dir (which in a short run is mostly WAL or fixed-size
//! index and cache files).
//!
//! * Prometheus-format servers (Prometheus, ember): a head snapshot through
//!   `POST /api/v1/admin/tsdb/snapshot` writes the head as v2 blocks under
//!   `<data>/snapshots/<name>/`; the figure is the bytes of those blocks over
//!   the `stats.numSamples` of their `meta.json`. The snapshot is deleted
//!   afterwards.
//! * VictoriaMetrics: its own `/metrics` gauges, `vm_data_size_bytes` over
//!   `vm_rows` for the `storage/*` part types (index excluded).

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::{http, procfs, queries};

/// How a server's block bytes per sample are measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockProbe {
    PrometheusSnapshot,
    VictoriaMetricsGauges,
}

/// Bytes and samples of the compressed sample storage.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BlockFigures {
    pub bytes: u64,
    pub samples: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error(transparent)]
    Api(#[from] queries::ApiError),
    #[error(transparent)]
    Proc(#[from] procfs::ProcError),
    #[error("{0}")]
    Other(String),
}

/// `stats.numSamples` of a block's `meta.json`.
pub fn meta_num_samples(meta_json: &str) -> Result<u64, BlockError> {
    let v: Value =
        serde_json::from_str(meta_json).map_err(|e| BlockError::Other(format!("meta.json: {e}")))?;
    v.pointer("/stats/numSamples")
        .and_then(Value::as_u64)
        .ok_or_else(|| BlockError::Other("meta.json has no stats.numSamples".to_owned()))
}

/// Sums `vm_data_size_bytes` and `vm_rows` over the `storage/*` types in a
/// VictoriaMetrics `/metrics` page.
pub fn vm_storage_figures(page: &str) -> Result<BlockFigures, BlockError> {
    let (mut bytes, mut rows, mut seen) = (0f64, 0f64, (false, false));
    for line in page.lines() {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        if !series.contains("type=\"storage/") {
            continue;
        }
        let Ok(v) = value.parse::<f64>() else { continue };
        if series.starts_with("vm_data_size_bytes{") {
            bytes += v;
            seen.0 = true;
        } else if series.starts_with("vm_rows{") {
            rows += v;
            seen.1 = true;
        }
    }
    if !(seen.0 && seen.1) {
        return Err(BlockError::Other(
            "no vm_data_size_bytes / vm_rows for storage/* in /metrics".to_owned(),
        ));
    }
    Ok(BlockFigures { bytes: bytes as u64, samples: rows })
}

/// Measures the running server at `api` with data dir `data`.
pub fn measure(
    probe: BlockProbe,
    api: &str,
    data: &Path,
    timeout: Duration,
) -> Result<BlockFigures, BlockError> {
    match probe {
        BlockProbe::VictoriaMetricsGauges => {
            let r = http::get(&format!("{api}/metrics"), timeout)?;
            vm_storage_figures(&String::from_utf8_lossy(&r.body))
        }
        BlockProbe::PrometheusSnapshot => {
            let r = http::post_empty(&format!("{api}/api/v1/admin/tsdb/snapshot"), timeout)?;
            let body = String::from_utf8_lossy(&r.body);
            if r.status != 200 {
                let body: String = body.chars().take(200).collect();
                return Err(queries::ApiError::Status { status: r.status, body }.into());
            }
            let v: Value = serde_json::from_str(&body).map_err(|e| queries::ApiError::Json(e.to_string()))?;
            let data_field = queries::data_of(v)?;
            let name = data_field
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty() && !n.contains('/') && !n.contains(".."))
                .ok_or_else(|| {
                    BlockError::Other(format!("snapshot answer without a usable name: {data_field}"))
                })?;
            let dir = data.join("snapshots").join(name);
            let figures = snapshot_figures(&dir);
            // The snapshot is only for measuring; it must not count in the
            // data dir's size afterwards.
            let _ = std::fs::remove_dir_all(&dir);
            figures
        }
    }
}

/// Bytes of every block under a snapshot dir, and their samples.
pub fn snapshot_figures(dir: &Path) -> Result<BlockFigures, BlockError> {
    let io = |e: std::io::Error| BlockError::Other(format!("{}: {e}", dir.display()));
    let mut samples = 0u64;
    let mut blocks = 0;
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let meta = entry.path().join("meta.json");
        if meta.is_file() {
            samples += meta_num_samples(&std::fs::read_to_string(&meta).map_err(io)?)?;
            blocks += 1;
        }
    }
    if blocks == 0 {
        return Err(BlockError::Other(format!("no blocks in {}", dir.display())));
    }
    Ok(BlockFigures { bytes: procfs::dir_bytes(dir)?, samples: samples as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_json_samples() {
        let meta = r#"{"ulid":"01X","minTime":1,"maxTime":2,"stats":{"numSamples":4242,"numSeries":3,"numChunks":5},"compaction":{"level":1},"version":1}"#;
        assert_eq!(meta_num_samples(meta).unwrap(), 4242);
        assert!(meta_num_samples(r#"{"version":1}"#).is_err());
        assert!(meta_num_samples("not json").is_err());
    }

    #[test]
    fn vm_gauges_sum_storage_types_only() {
        let page = "vm_data_size_bytes{type=\"indexdb\"} 1000\n\
                    vm_data_size_bytes{type=\"storage/big\"} 300\n\
                    vm_data_size_bytes{type=\"storage/small\"} 700\n\
                    vm_rows{type=\"indexdb\"} 99\n\
                    vm_rows{type=\"storage/big\"} 1000\n\
                    vm_rows{type=\"storage/small\"} 1500\n\
                    vm_rows_added_to_storage_total 9999\n";
        let f = vm_storage_figures(page).unwrap();
        assert_eq!(f, BlockFigures { bytes: 1000, samples: 2500.0 });
        assert!(vm_storage_figures("vm_rows{type=\"indexdb\"} 1\n").is_err());
    }

    #[test]
    fn snapshot_dir_with_blocks() {
        let dir = std::env::temp_dir().join(format!("ember-bench-snap-{}", std::process::id()));
        for (b, n) in [("01A", 100), ("01B", 50)] {
            std::fs::create_dir_all(dir.join(b).join("chunks")).unwrap();
            std::fs::write(dir.join(b).join("meta.json"), format!("{{\"stats\":{{\"numSamples\":{n}}}}}"))
                .unwrap();
            std::fs::write(dir.join(b).join("chunks/000001"), vec![0u8; 1000]).unwrap();
        }
        let f = snapshot_figures(&dir).unwrap();
        assert_eq!(f.samples, 150.0);
        let meta_bytes: u64 = ["01A", "01B"]
            .iter()
            .map(|b| std::fs::metadata(dir.join(b).join("meta.json")).unwrap().len())
            .sum();
        assert_eq!(f.bytes, 2000 + meta_bytes);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(snapshot_figures(&dir).is_err());
    }
}
