//! The block `tombstones` file: `magic 0x0130BA30 | version 1`, then
//! `series ref <uvarint64> | mint <varint64> | maxt <varint64>` entries,
//! then a CRC32 of the entries. An empty file is 9 bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;

use ember_model::Timestamp;

use super::encoding::{crc32, Decbuf, Encbuf};
use super::BlockError;

pub const MAGIC_TOMBSTONE: u32 = 0x0130_BA30;
pub const TOMBSTONES_FORMAT_V1: u8 = 1;
pub const TOMBSTONES_FILENAME: &str = "tombstones";

/// Deleted time ranges (inclusive) per series id.
pub type Tombstones = BTreeMap<u64, Vec<(Timestamp, Timestamp)>>;

pub fn encode(t: &Tombstones) -> Vec<u8> {
    let mut e = Encbuf::new();
    e.put_be32(MAGIC_TOMBSTONE);
    e.put_byte(TOMBSTONES_FORMAT_V1);
    for (r, ivs) in t {
        for (mint, maxt) in ivs {
            e.put_uvarint(*r);
            e.put_varint(*mint);
            e.put_varint(*maxt);
        }
    }
    e.put_crc_of_tail(5);
    e.b
}

pub fn decode(b: &[u8]) -> Result<Tombstones, BlockError> {
    if b.len() < 9 {
        return Err(BlockError::Corrupt("tombstones: file too short".into()));
    }
    let mut d = Decbuf::new(b);
    if d.be32()? != MAGIC_TOMBSTONE {
        return Err(BlockError::Corrupt("tombstones: invalid magic number".into()));
    }
    if d.byte()? != TOMBSTONES_FORMAT_V1 {
        return Err(BlockError::Corrupt("tombstones: unsupported version".into()));
    }
    let body = &b[5..b.len() - 4];
    let want = u32::from_be_bytes([b[b.len() - 4], b[b.len() - 3], b[b.len() - 2], b[b.len() - 1]]);
    if crc32(body) != want {
        return Err(BlockError::Corrupt("tombstones: checksum mismatch".into()));
    }
    let mut out = Tombstones::new();
    let mut d = Decbuf::new(body);
    while d.remaining() > 0 {
        let r = d.uvarint()?;
        let mint = d.varint()?;
        let maxt = d.varint()?;
        out.entry(r).or_default().push((mint, maxt));
    }
    Ok(out)
}

pub fn write_file(dir: &Path, t: &Tombstones) -> Result<(), BlockError> {
    let mut f = File::create(dir.join(TOMBSTONES_FILENAME))?;
    f.write_all(&encode(t))?;
    f.sync_all()?;
    Ok(())
}

/// Reads `dir/tombstones`; a missing file means no tombstones.
pub fn read_file(dir: &Path) -> Result<Tombstones, BlockError> {
    match std::fs::read(dir.join(TOMBSTONES_FILENAME)) {
        Ok(b) => decode(&b),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Tombstones::new()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_nine_bytes() {
        let b = encode(&Tombstones::new());
        assert_eq!(b, vec![0x01, 0x30, 0xBA, 0x30, 0x01, 0, 0, 0, 0]);
        assert!(decode(&b).unwrap().is_empty());
    }

    #[test]
    fn roundtrip_and_corruption() {
        let mut t = Tombstones::new();
        t.insert(3, vec![(-5, 10), (20, 30)]);
        t.insert(1 << 40, vec![(0, i64::MAX)]);
        let mut b = encode(&t);
        assert_eq!(decode(&b).unwrap(), t);
        b[6] ^= 1;
        assert!(decode(&b).is_err());
        assert!(decode(&b[..4]).is_err());
    }
}
