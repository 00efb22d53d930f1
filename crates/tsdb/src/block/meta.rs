//! `meta.json`: a block's identity, time range (maxTime exclusive), stats
//! and compaction lineage, as Prometheus's `BlockMeta`.

use std::fs::File;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::BlockError;

pub const META_FILENAME: &str = "meta.json";
pub const META_VERSION_1: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockMeta {
    pub ulid: String,
    pub min_time: i64,
    /// Exclusive: one past the last sample's timestamp.
    pub max_time: i64,
    #[serde(default)]
    pub stats: BlockStats,
    pub compaction: BlockCompaction,
    pub version: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockStats {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_samples: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_series: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_chunks: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub num_tombstones: u64,
}

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockCompaction {
    pub level: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<BlockDesc>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deletable: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockDesc {
    pub ulid: String,
    pub min_time: i64,
    pub max_time: i64,
}

impl BlockMeta {
    pub fn read(dir: &Path) -> Result<BlockMeta, BlockError> {
        let b = std::fs::read(dir.join(META_FILENAME))?;
        let m: BlockMeta =
            serde_json::from_slice(&b).map_err(|e| BlockError::Corrupt(format!("meta.json: {e}")))?;
        if m.version != META_VERSION_1 {
            return Err(BlockError::Corrupt(format!("meta.json: unexpected version {}", m.version)));
        }
        Ok(m)
    }

    /// Writes `meta.json` via a temporary file and rename, tab-indented as
    /// Prometheus writes it.
    pub fn write(&self, dir: &Path) -> Result<(), BlockError> {
        let mut out = Vec::new();
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, fmt);
        self.serialize(&mut ser).map_err(|e| BlockError::Invalid(e.to_string()))?;
        let tmp = dir.join(format!("{META_FILENAME}.tmp"));
        let mut f = File::create(&tmp)?;
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(META_FILENAME))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prometheus_meta() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{
	"ulid": "01EM6Q6A1YPX4G9TEB20J22B2R",
	"minTime": 1602237600000,
	"maxTime": 1602244800000,
	"stats": {"numSamples": 5, "numSeries": 2, "numChunks": 2, "numFloatSamples": 5},
	"compaction": {"level": 2, "sources": ["01EM65SHSX4VARXBBHBF0M0FDS"], "parents": [{"ulid": "01EM65SHSX4VARXBBHBF0M0FDS", "minTime": 1, "maxTime": 2}]},
	"version": 1
}"#;
        std::fs::write(dir.path().join(META_FILENAME), text).unwrap();
        let m = BlockMeta::read(dir.path()).unwrap();
        assert_eq!(m.max_time, 1602244800000);
        assert_eq!(m.stats.num_series, 2);
        assert_eq!(m.compaction.parents.len(), 1);
        m.write(dir.path()).unwrap();
        let again = BlockMeta::read(dir.path()).unwrap();
        assert_eq!(again, m);
        let written = std::fs::read_to_string(dir.path().join(META_FILENAME)).unwrap();
        assert!(written.contains("\n\t\"ulid\""), "tab indented: {written}");
        assert!(!written.contains("deletable"));
    }
}
