//! Snapshots ([`crate::Db::snapshot`]): blocks are immutable once written
//! (a deletion replaces `tombstones` and `meta.json` by rename, never in
//! place), so a hard link is a consistent copy that costs no space.

use std::fs;
use std::io;
use std::path::Path;

use crate::block::{CHUNKS_DIRNAME, INDEX_FILENAME};

/// Links (or copies, where linking fails) one block's files into `dst`,
/// which must not exist yet: `meta.json`, `index`, `tombstones` and the
/// chunk segments, as Prometheus's `Block.Snapshot`.
pub fn link_block(src: &Path, dst: &Path) -> io::Result<()> {
    let chunks_dst = dst.join(CHUNKS_DIRNAME);
    fs::create_dir_all(&chunks_dst)?;
    for name in
        [crate::block::meta::META_FILENAME, crate::block::tombstones::TOMBSTONES_FILENAME, INDEX_FILENAME]
    {
        let from = src.join(name);
        // Blocks written by older tools may lack a tombstones file.
        if name == crate::block::tombstones::TOMBSTONES_FILENAME && !from.exists() {
            continue;
        }
        link_or_copy(&from, &dst.join(name))?;
    }
    for e in fs::read_dir(src.join(CHUNKS_DIRNAME))? {
        let e = e?;
        if e.file_type()?.is_file() {
            link_or_copy(&e.path(), &chunks_dst.join(e.file_name()))?;
        }
    }
    fs::File::open(dst)?.sync_all()?;
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(_) => fs::copy(from, to).map(|_| ()),
    }
}

/// A snapshot directory name as Prometheus's API makes them:
/// `<UTC time as 20060102T150405Z>-<16 hex digits of a random 63-bit
/// number>`.
pub fn snapshot_name(now_ms: i64) -> String {
    let stamp: String = ember_model::time::format_rfc3339(now_ms.div_euclid(1000) * 1000)
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    // The ULID's 80 random bits are a ready source of randomness.
    let random = (ulid::Ulid::new().random() as u64) & (i64::MAX as u64);
    format!("{stamp}-{random:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_has_prometheus_shape() {
        // 2026-11-28T02:45:04.123Z
        let n = snapshot_name(1_795_833_904_123);
        let (stamp, hex) = n.split_once('-').unwrap();
        assert_eq!(stamp, "20261128T024504Z");
        assert_eq!(hex.len(), 16);
        assert!(hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(snapshot_name(0), snapshot_name(0), "random part differs");
    }
}
