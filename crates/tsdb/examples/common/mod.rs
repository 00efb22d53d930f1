//! What the block examples (`disk_usage`, `scale`) both measure.

use std::path::Path;

use ember_tsdb::block;
pub use ember_tsdb::db::dir_size;

/// (whole block dirs, chunks only, samples) over the blocks in `data`.
pub fn block_bytes(data: &Path) -> (u64, u64, u64) {
    let (mut total, mut chunks, mut samples) = (0, 0, 0);
    for d in block::block_dirs(data).unwrap() {
        total += dir_size(&d);
        chunks += dir_size(&d.join("chunks"));
        samples += block::BlockMeta::read(&d).unwrap().stats.num_samples;
    }
    (total, chunks, samples)
}
