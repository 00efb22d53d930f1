//! Chunk segment files (`chunks/000001`, ...): header `magic 0x85BD40DD |
//! version 1 | 3 zero bytes`, then chunks `len <uvarint> | encoding <1b> |
//! data | CRC32(encoding, data) <4b>`. A chunk reference is
//! `segment sequence << 32 | offset`, where the sequence is the file's
//! position among the segments (0 for `000001`).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use super::encoding::{crc32, Decbuf, Encbuf};
use super::BlockError;

pub const MAGIC_CHUNKS: u32 = 0x85BD_40DD;
pub const CHUNKS_FORMAT_V1: u8 = 1;
const SEGMENT_HEADER_SIZE: u64 = 8;
/// Prometheus's maximum segment size.
pub const DEFAULT_MAX_SEGMENT_SIZE: u64 = 512 << 20;

pub fn segment_file_name(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("{:06}", seq + 1))
}

/// Writes chunks into numbered segment files.
#[derive(Debug)]
pub struct ChunkWriter {
    dir: PathBuf,
    max_segment_size: u64,
    files: Vec<PathBuf>,
    cur: Option<BufWriter<File>>,
    cur_size: u64,
    buf: Encbuf,
}

impl ChunkWriter {
    pub fn new(dir: &Path) -> Result<ChunkWriter, BlockError> {
        ChunkWriter::with_segment_size(dir, DEFAULT_MAX_SEGMENT_SIZE)
    }

    pub fn with_segment_size(dir: &Path, max_segment_size: u64) -> Result<ChunkWriter, BlockError> {
        fs::create_dir_all(dir)?;
        Ok(ChunkWriter {
            dir: dir.to_owned(),
            max_segment_size,
            files: Vec::new(),
            cur: None,
            cur_size: 0,
            buf: Encbuf::new(),
        })
    }

    fn cut(&mut self) -> Result<(), BlockError> {
        self.finish_segment()?;
        let seq = self.files.len() as u32;
        let path = segment_file_name(&self.dir, seq);
        let mut f = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut h = [0u8; SEGMENT_HEADER_SIZE as usize];
        h[..4].copy_from_slice(&MAGIC_CHUNKS.to_be_bytes());
        h[4] = CHUNKS_FORMAT_V1;
        f.write_all(&h)?;
        self.files.push(path);
        self.cur = Some(f);
        self.cur_size = SEGMENT_HEADER_SIZE;
        Ok(())
    }

    fn finish_segment(&mut self) -> Result<(), BlockError> {
        if let Some(f) = self.cur.take() {
            let f = f.into_inner().map_err(|e| BlockError::Io(e.into_error()))?;
            f.sync_all()?;
        }
        Ok(())
    }

    /// Appends one chunk and returns its reference.
    pub fn write_chunk(&mut self, encoding: u8, data: &[u8]) -> Result<u64, BlockError> {
        self.buf.reset();
        self.buf.put_uvarint(data.len() as u64);
        let crc_from = self.buf.len();
        self.buf.put_byte(encoding);
        self.buf.put_bytes(data);
        self.buf.put_crc_of_tail(crc_from);
        let size = self.buf.len() as u64;
        if self.cur.is_none() || self.cur_size + size > self.max_segment_size {
            self.cut()?;
        }
        let seq = (self.files.len() - 1) as u64;
        let off = self.cur_size;
        if off > u32::MAX as u64 {
            return Err(BlockError::Invalid("chunk segment exceeds 4 GiB".into()));
        }
        if let Some(f) = self.cur.as_mut() {
            f.write_all(&self.buf.b)?;
        }
        self.cur_size += size;
        Ok((seq << 32) | off)
    }

    /// Flushes and fsyncs every segment and the directory.
    pub fn close(mut self) -> Result<(), BlockError> {
        self.finish_segment()?;
        File::open(&self.dir)?.sync_all()?;
        Ok(())
    }
}

/// A chunk's bytes kept alive by the segment's memory map, so sample
/// iterators can own what they read.
#[derive(Debug, Clone)]
pub struct ChunkBytes {
    map: Arc<Mmap>,
    start: usize,
    end: usize,
}

impl AsRef<[u8]> for ChunkBytes {
    fn as_ref(&self) -> &[u8] {
        &self.map[self.start..self.end]
    }
}

/// Reads chunks from memory-mapped segments.
#[derive(Debug)]
pub struct ChunkReader {
    segments: Vec<Arc<Mmap>>,
    size: u64,
}

impl ChunkReader {
    pub fn open(dir: &Path) -> Result<ChunkReader, BlockError> {
        let mut names: Vec<(u32, PathBuf)> = Vec::new();
        for e in fs::read_dir(dir)? {
            let e = e?;
            let name = e.file_name();
            let Some(n) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            names.push((n, e.path()));
        }
        names.sort();
        for (i, (n, _)) in names.iter().enumerate() {
            if *n != i as u32 + 1 {
                return Err(BlockError::Corrupt(format!(
                    "chunk segments are not numbered 1..{}: found {n:06}",
                    names.len()
                )));
            }
        }
        let mut segments = Vec::with_capacity(names.len());
        let mut size = 0;
        for (_, p) in names {
            let f = File::open(&p)?;
            // SAFETY: block files are immutable once written (written to a
            // temporary directory and renamed into place); nothing truncates
            // them while mapped except deletion, which keeps the pages alive.
            let map = unsafe { Mmap::map(&f)? };
            let mut d = Decbuf::new(&map);
            if map.len() < SEGMENT_HEADER_SIZE as usize || d.be32()? != MAGIC_CHUNKS {
                return Err(BlockError::Corrupt(format!("{}: invalid chunk segment header", p.display())));
            }
            if d.byte()? != CHUNKS_FORMAT_V1 {
                return Err(BlockError::Corrupt(format!(
                    "{}: unsupported chunk format version",
                    p.display()
                )));
            }
            size += map.len() as u64;
            segments.push(Arc::new(map));
        }
        Ok(ChunkReader { segments, size })
    }

    /// Total bytes of all segments.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The chunk at `r`: its encoding and data (checksum verified).
    pub fn chunk(&self, r: u64) -> Result<(u8, ChunkBytes), BlockError> {
        let seq = (r >> 32) as usize;
        let off = (r & 0xffff_ffff) as usize;
        let map = self
            .segments
            .get(seq)
            .ok_or_else(|| BlockError::Corrupt(format!("chunk ref {r:#x}: no segment {seq}")))?;
        let bad = || BlockError::Corrupt(format!("chunk ref {r:#x}: beyond segment end"));
        let mut d = Decbuf::new(map.get(off..).ok_or_else(bad)?);
        let len = d.uvarint()? as usize;
        let start = off + (map.len() - off - d.remaining());
        let enc_and_data = map.get(start..start + 1 + len).ok_or_else(bad)?;
        let crc = map.get(start + 1 + len..start + 5 + len).ok_or_else(bad)?;
        if crc32(enc_and_data) != u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]) {
            return Err(BlockError::Corrupt(format!("chunk ref {r:#x}: checksum mismatch")));
        }
        Ok((enc_and_data[0], ChunkBytes { map: Arc::clone(map), start: start + 1, end: start + 1 + len }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_read_and_cut_segments() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("chunks");
        let mut w = ChunkWriter::with_segment_size(&cdir, 64).unwrap();
        let mut refs = vec![];
        for i in 0..10u8 {
            refs.push(w.write_chunk(1, &[i; 20]).unwrap());
        }
        w.close().unwrap();
        assert_eq!(refs[0], 8, "first chunk right after the 8-byte header of segment 0");
        assert!(refs.iter().any(|r| r >> 32 > 0), "small segment size forces new segments");
        assert!(cdir.join("000001").exists() && cdir.join("000002").exists());
        let r = ChunkReader::open(&cdir).unwrap();
        for (i, rf) in refs.iter().enumerate() {
            let (enc, data) = r.chunk(*rf).unwrap();
            assert_eq!(enc, 1);
            assert_eq!(data.as_ref(), &vec![i as u8; 20][..]);
        }
        assert!(r.chunk(1 << 40).is_err());
        assert!(r.chunk(9999).is_err());
    }

    #[test]
    fn detects_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("chunks");
        let mut w = ChunkWriter::new(&cdir).unwrap();
        let r0 = w.write_chunk(1, b"hello").unwrap();
        w.close().unwrap();
        let p = cdir.join("000001");
        let mut b = fs::read(&p).unwrap();
        let last = b.len() - 6;
        b[last] ^= 0xff;
        fs::write(&p, &b).unwrap();
        let r = ChunkReader::open(&cdir).unwrap();
        assert!(matches!(r.chunk(r0), Err(BlockError::Corrupt(_))));
        fs::write(&p, b"nope").unwrap();
        assert!(ChunkReader::open(&cdir).is_err());
    }
}
