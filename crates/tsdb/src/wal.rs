//! The write-ahead log, in Prometheus's on-disk format (`wal.md`).
//!
//! A WAL is a directory of segment files named by 8-digit sequence numbers
//! (`00000000`, `00000001`, …), each at most 128 MiB. A segment is a
//! sequence of 32 KiB pages; a record is split into fragments that never
//! cross a page, each with a 7-byte header:
//!
//! ```text
//! type u8 (1 full, 2 first, 3 middle, 4 last; bit 3 = snappy) | len u16 BE | CRC32-Castagnoli u32 BE of the data
//! ```
//!
//! A page whose remaining space is too small for a header is zero-padded;
//! a zero type byte means "rest of page is padding". Records never cross a
//! segment boundary. On open, writing always starts a fresh segment, as
//! Prometheus does, so an existing segment is never appended to.
//!
//! # Durability ("acknowledged")
//!
//! [`Wal::log`] writes a batch's records to the segment file with
//! `write(2)` before the head applies the batch, so a commit that returned
//! `Ok` survives a crash of the process (the data is in the kernel's page
//! cache). Surviving a crash of the machine depends on [`SyncPolicy`]:
//! `Always` fsyncs before `log` returns; `Interval(d)` (the default, 1 s)
//! fsyncs within a commit when the last fsync is older than `d`, and
//! [`Wal::sync`] lets the owner fsync on a timer, so at most about `d` of
//! acknowledged data can be lost on power failure; `Never` leaves it to the
//! kernel and to segment rotation (Prometheus's behaviour: it fsyncs only
//! when a segment is closed).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::metrics::TsdbMetrics;

pub const PAGE_SIZE: usize = 32 * 1024;
pub const DEFAULT_SEGMENT_SIZE: usize = 128 * 1024 * 1024;
const HEADER_SIZE: usize = 7;

const REC_PAGE_TERM: u8 = 0;
const REC_FULL: u8 = 1;
const REC_FIRST: u8 = 2;
const REC_MIDDLE: u8 = 3;
const REC_LAST: u8 = 4;
const SNAPPY_MASK: u8 = 1 << 3;
const ZSTD_MASK: u8 = 1 << 4;
const TYPE_MASK: u8 = 0x07;

/// When the WAL fsyncs; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPolicy {
    /// fsync every commit before acknowledging it.
    Always,
    /// fsync during a commit if the last fsync is older than this.
    Interval(Duration),
    /// Only when a segment is closed.
    Never,
}

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// Segment size in bytes; a multiple of the page size.
    pub segment_size: usize,
    pub sync: SyncPolicy,
    /// Snappy-compress records (when that makes them smaller).
    pub compress: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: DEFAULT_SEGMENT_SIZE,
            sync: SyncPolicy::Interval(Duration::from_secs(1)),
            compress: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WalError {
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("corruption in segment {segment} at offset {offset}: {reason}")]
    Corruption { segment: u32, offset: u64, reason: String },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> WalError {
    let context = context.into();
    move |source| WalError::Io { context, source }
}

/// Segment file name for index `i`.
pub fn segment_name(i: u32) -> String {
    format!("{i:08}")
}

/// Indices of the segment files in `dir`, ascending. Other files (e.g.
/// `checkpoint.NNNNNN` directories) are ignored.
pub fn list_segments(dir: &Path) -> Result<Vec<u32>, WalError> {
    let mut out = vec![];
    let rd = fs::read_dir(dir).map_err(io_err(format!("read dir {}", dir.display())))?;
    for e in rd {
        let e = e.map_err(io_err("read dir entry"))?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.len() == 8 && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(i) = name.parse::<u32>() {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|f| f.sync_all()).map_err(io_err(format!("fsync dir {}", dir.display())))
}

/// The WAL writer.
pub struct Wal {
    dir: PathBuf,
    opts: WalOptions,
    metrics: Arc<TsdbMetrics>,
    file: File,
    segment: u32,
    /// Full pages already written to the current segment.
    done_pages: usize,
    page: Box<[u8]>,
    /// Bytes used in the current page.
    alloc: usize,
    /// Bytes of the current page already written to the file.
    flushed: usize,
    last_sync: Instant,
    dirty: bool,
    /// Set when a failed batch could not be rolled back: the segment may
    /// end in garbage, and writing on (even in a new segment) would let a
    /// later repair delete acknowledged records, so every later batch
    /// fails until the WAL is reopened (which repairs it).
    broken: Option<String>,
    snappy: snap::raw::Encoder,
    compressed: Vec<u8>,
}

impl std::fmt::Debug for Wal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wal").field("dir", &self.dir).field("segment", &self.segment).finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens `dir` for writing, creating it if needed, and starts a new
    /// segment after the existing ones.
    pub fn open(dir: &Path, opts: WalOptions, metrics: Arc<TsdbMetrics>) -> Result<Wal, WalError> {
        fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
        let next = match list_segments(dir)?.last() {
            Some(i) => i + 1,
            None => 0,
        };
        let opts = WalOptions { segment_size: (opts.segment_size / PAGE_SIZE).max(1) * PAGE_SIZE, ..opts };
        let file = Self::create_segment(dir, next)?;
        metrics.wal_segment_current.store(next as i64, Ordering::Relaxed);
        Ok(Wal {
            dir: dir.to_path_buf(),
            opts,
            metrics,
            file,
            segment: next,
            done_pages: 0,
            page: vec![0u8; PAGE_SIZE].into_boxed_slice(),
            alloc: 0,
            flushed: 0,
            last_sync: Instant::now(),
            dirty: false,
            broken: None,
            snappy: snap::raw::Encoder::new(),
            compressed: Vec::new(),
        })
    }

    fn create_segment(dir: &Path, i: u32) -> Result<File, WalError> {
        let path = dir.join(segment_name(i));
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("create segment {}", path.display())))?;
        sync_dir(dir)?;
        Ok(f)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Index of the segment being written.
    pub fn current_segment(&self) -> u32 {
        self.segment
    }

    fn pages_per_segment(&self) -> usize {
        self.opts.segment_size / PAGE_SIZE
    }

    /// Writes the unwritten part of the current page; with `pad`, the page
    /// is completed with zeros and a new page starts.
    fn flush_page(&mut self, pad: bool) -> Result<(), WalError> {
        let end = if pad { PAGE_SIZE } else { self.alloc };
        if end > self.flushed {
            self.file.write_all(&self.page[self.flushed..end]).map_err(io_err("write WAL page"))?;
            self.dirty = true;
        }
        if pad {
            self.page.fill(0);
            self.alloc = 0;
            self.flushed = 0;
            self.done_pages += 1;
        } else {
            self.flushed = end;
        }
        Ok(())
    }

    fn fsync(&mut self) -> Result<(), WalError> {
        let start = Instant::now();
        self.file.sync_data().map_err(io_err("fsync WAL segment"))?;
        self.metrics.wal_fsync_duration_seconds.observe(start.elapsed());
        self.last_sync = Instant::now();
        self.dirty = false;
        Ok(())
    }

    /// Closes the current segment (padding its last page, fsyncing it) and
    /// starts the next one. A checkpoint cuts the segment first so that
    /// every segment it reads is closed.
    pub(crate) fn next_segment(&mut self) -> Result<(), WalError> {
        if self.alloc > 0 {
            self.flush_page(true)?;
        }
        self.fsync()?;
        self.segment += 1;
        self.file = Self::create_segment(&self.dir, self.segment)?;
        self.done_pages = 0;
        self.metrics.wal_segment_current.store(self.segment as i64, Ordering::Relaxed);
        Ok(())
    }

    /// Writes records as one batch (written out before returning, fsynced
    /// per the sync policy). If writing fails, the segment is cut back to
    /// where the batch started, so a failed batch leaves no partial record
    /// behind (unless the batch had rotated into a new segment: then its
    /// records in the previous segment stay, complete).
    pub fn log(&mut self, records: &[&[u8]]) -> Result<(), WalError> {
        if let Some(why) = &self.broken {
            return Err(WalError::Io {
                context: "WAL unusable after an earlier write failure".into(),
                source: io::Error::other(why.clone()),
            });
        }
        // `log` always ends with the page flushed, so this is the file's
        // length.
        let (segment, start) = (self.segment, (self.done_pages * PAGE_SIZE + self.flushed) as u64);
        let r = self.log_batch(records);
        if r.is_err() {
            let offset = if self.segment == segment { start } else { 0 };
            if let Err(e) = self.rollback_to(offset) {
                tracing::error!(err = %e, "cannot roll back a failed WAL write; refusing further writes");
                self.broken = Some(e.to_string());
            }
        }
        r
    }

    /// Truncates the current segment to `offset` and reloads the partial
    /// page before it.
    fn rollback_to(&mut self, offset: u64) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        self.file.set_len(offset)?;
        self.file.seek(SeekFrom::Start(offset))?;
        let page_start = offset - offset % PAGE_SIZE as u64;
        let in_page = (offset - page_start) as usize;
        self.page.fill(0);
        if in_page > 0 {
            self.file.seek(SeekFrom::Start(page_start))?;
            self.file.read_exact(&mut self.page[..in_page])?;
        }
        self.done_pages = (page_start / PAGE_SIZE as u64) as usize;
        self.alloc = in_page;
        self.flushed = in_page;
        Ok(())
    }

    fn log_batch(&mut self, records: &[&[u8]]) -> Result<(), WalError> {
        for rec in records {
            self.log_one(rec)?;
        }
        if self.alloc > self.flushed {
            self.flush_page(false)?;
        }
        match self.opts.sync {
            SyncPolicy::Always => self.fsync()?,
            SyncPolicy::Interval(d) if self.dirty && self.last_sync.elapsed() >= d => self.fsync()?,
            _ => {}
        }
        Ok(())
    }

    /// Makes everything written durable and closes the segment.
    pub fn close(mut self) -> Result<(), WalError> {
        self.fsync()
    }

    /// fsyncs the current segment if anything was written since the last
    /// fsync. The owner calls this on a timer under `SyncPolicy::Interval`.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.fsync()?;
        }
        Ok(())
    }

    fn log_one(&mut self, rec: &[u8]) -> Result<(), WalError> {
        if PAGE_SIZE - self.alloc < HEADER_SIZE {
            self.flush_page(true)?;
        }
        let mut compressed = false;
        let mut comp = std::mem::take(&mut self.compressed);
        if self.opts.compress && !rec.is_empty() {
            comp.resize(snap::raw::max_compress_len(rec.len()), 0);
            if let Ok(n) = self.snappy.compress(rec, &mut comp) {
                comp.truncate(n);
                compressed = n < rec.len();
            }
        }
        let result = self.write_fragments(if compressed { &comp } else { rec }, compressed);
        self.compressed = comp;
        result
    }

    fn write_fragments(&mut self, mut rec: &[u8], compressed: bool) -> Result<(), WalError> {
        // Start a new segment if the record does not fit in this one.
        let left = (PAGE_SIZE - self.alloc - HEADER_SIZE)
            + (PAGE_SIZE - HEADER_SIZE) * (self.pages_per_segment().saturating_sub(self.done_pages + 1));
        if rec.len() > left {
            self.next_segment()?;
        }
        let mut first = true;
        loop {
            let room = PAGE_SIZE - self.alloc - HEADER_SIZE;
            let l = rec.len().min(room);
            let (part, rest) = rec.split_at(l);
            let mut typ = match (first, rest.is_empty()) {
                (true, true) => REC_FULL,
                (false, true) => REC_LAST,
                (true, false) => REC_FIRST,
                (false, false) => REC_MIDDLE,
            };
            if compressed {
                typ |= SNAPPY_MASK;
            }
            let buf = &mut self.page[self.alloc..];
            buf[0] = typ;
            buf[1..3].copy_from_slice(&(l as u16).to_be_bytes());
            buf[3..7].copy_from_slice(&crc32c::crc32c(part).to_be_bytes());
            buf[HEADER_SIZE..HEADER_SIZE + l].copy_from_slice(part);
            self.alloc += HEADER_SIZE + l;
            if PAGE_SIZE - self.alloc < HEADER_SIZE {
                self.flush_page(true)?;
            }
            rec = rest;
            first = false;
            if rec.is_empty() {
                return Ok(());
            }
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        // Best effort: a clean shutdown leaves nothing unsynced. A broken
        // WAL's page holds a failed batch that must not reach the file.
        if self.broken.is_some() {
            return;
        }
        if self.alloc > self.flushed {
            let _ = self.flush_page(false);
        }
        let _ = self.sync();
    }
}

/// Where a corruption was found and how much of the WAL is good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorruptionPoint {
    pub segment: u32,
    /// Offset in the segment of the first byte not covered by a complete
    /// record.
    pub offset: u64,
    pub reason: String,
}

/// Reads every record of the WAL in `dir`, in order, calling `f` for each
/// (decompressed) record with its segment index. Stops at the first
/// corruption and returns where it is; `f`'s errors abort reading.
pub fn read_all<E>(
    dir: &Path,
    f: impl FnMut(u32, &[u8]) -> Result<(), E>,
) -> Result<Result<Option<CorruptionPoint>, E>, WalError> {
    read_segments(dir, 0..=u32::MAX, f)
}

/// Like [`read_all`], for the segments whose index is in `range` only
/// (a checkpoint covers the ones before it; a checkpoint in progress reads
/// only closed segments).
pub fn read_segments<E>(
    dir: &Path,
    range: std::ops::RangeInclusive<u32>,
    mut f: impl FnMut(u32, &[u8]) -> Result<(), E>,
) -> Result<Result<Option<CorruptionPoint>, E>, WalError> {
    let segments: Vec<u32> = list_segments(dir)?.into_iter().filter(|s| range.contains(s)).collect();
    let mut data = Vec::new();
    let mut rec = Vec::new();
    let mut decoded = Vec::new();
    let mut decoder = snap::raw::Decoder::new();
    for (n, &seg) in segments.iter().enumerate() {
        if n > 0 && segments[n - 1] + 1 != seg {
            return Ok(Ok(Some(CorruptionPoint {
                segment: segments[n - 1],
                offset: u64::MAX,
                reason: format!("segments not sequential: {} then {}", segments[n - 1], seg),
            })));
        }
        data.clear();
        let path = dir.join(segment_name(seg));
        File::open(&path)
            .and_then(|mut file| file.read_to_end(&mut data))
            .map_err(io_err(format!("read segment {}", path.display())))?;
        let mut pos = 0usize;
        // Offset where the record being assembled started.
        let mut rec_start = 0usize;
        let mut in_record = false;
        let mut rec_snappy = false;
        let corrupt =
            |offset: usize, reason: String| CorruptionPoint { segment: seg, offset: offset as u64, reason };
        while pos < data.len() {
            let page_end = (pos / PAGE_SIZE + 1) * PAGE_SIZE;
            if page_end - pos < HEADER_SIZE {
                // Too small for a header: the writer padded it.
                if data[pos..page_end.min(data.len())].iter().any(|b| *b != 0) {
                    return Ok(Ok(Some(corrupt(
                        rec_start_or(in_record, rec_start, pos),
                        "non-zero page padding".into(),
                    ))));
                }
                pos = page_end;
                continue;
            }
            let typ = data[pos];
            if typ == REC_PAGE_TERM {
                let end = page_end.min(data.len());
                if data[pos..end].iter().any(|b| *b != 0) {
                    return Ok(Ok(Some(corrupt(
                        rec_start_or(in_record, rec_start, pos),
                        "non-zero page padding".into(),
                    ))));
                }
                pos = page_end;
                continue;
            }
            if pos + HEADER_SIZE > data.len() {
                return Ok(Ok(Some(corrupt(
                    rec_start_or(in_record, rec_start, pos),
                    "truncated fragment header".into(),
                ))));
            }
            let len = u16::from_be_bytes([data[pos + 1], data[pos + 2]]) as usize;
            let crc = u32::from_be_bytes([data[pos + 3], data[pos + 4], data[pos + 5], data[pos + 6]]);
            let body = pos + HEADER_SIZE;
            if body + len > page_end {
                return Ok(Ok(Some(corrupt(
                    rec_start_or(in_record, rec_start, pos),
                    "fragment crosses page".into(),
                ))));
            }
            if body + len > data.len() {
                return Ok(Ok(Some(corrupt(
                    rec_start_or(in_record, rec_start, pos),
                    "truncated fragment".into(),
                ))));
            }
            let part = &data[body..body + len];
            if crc32c::crc32c(part) != crc {
                return Ok(Ok(Some(corrupt(
                    rec_start_or(in_record, rec_start, pos),
                    "checksum mismatch".into(),
                ))));
            }
            if typ & ZSTD_MASK != 0 || typ & !(TYPE_MASK | SNAPPY_MASK | ZSTD_MASK) != 0 {
                return Ok(Ok(Some(corrupt(
                    rec_start_or(in_record, rec_start, pos),
                    format!("unsupported fragment type {typ:#x}"),
                ))));
            }
            let kind = typ & TYPE_MASK;
            let snappy = typ & SNAPPY_MASK != 0;
            let complete = match kind {
                REC_FULL | REC_FIRST => {
                    if in_record {
                        return Ok(Ok(Some(corrupt(rec_start, "record not terminated".into()))));
                    }
                    rec.clear();
                    rec.extend_from_slice(part);
                    rec_start = pos;
                    rec_snappy = snappy;
                    in_record = kind == REC_FIRST;
                    kind == REC_FULL
                }
                REC_MIDDLE | REC_LAST => {
                    if !in_record {
                        return Ok(Ok(Some(corrupt(pos, "continuation without first fragment".into()))));
                    }
                    rec.extend_from_slice(part);
                    in_record = kind == REC_MIDDLE;
                    kind == REC_LAST
                }
                _ => {
                    return Ok(Ok(Some(corrupt(
                        rec_start_or(in_record, rec_start, pos),
                        format!("invalid fragment type {kind}"),
                    ))));
                }
            };
            pos = body + len;
            if complete {
                let out: &[u8] = if rec_snappy {
                    let n = match snap::raw::decompress_len(&rec) {
                        Ok(n) => n,
                        Err(e) => return Ok(Ok(Some(corrupt(rec_start, format!("snappy: {e}"))))),
                    };
                    decoded.resize(n, 0);
                    match decoder.decompress(&rec, &mut decoded) {
                        Ok(n) => &decoded[..n],
                        Err(e) => return Ok(Ok(Some(corrupt(rec_start, format!("snappy: {e}"))))),
                    }
                } else {
                    &rec
                };
                if let Err(e) = f(seg, out) {
                    return Ok(Err(e));
                }
            }
        }
        if in_record {
            return Ok(Ok(Some(corrupt(rec_start, "last record of segment is incomplete".into()))));
        }
    }
    Ok(Ok(None))
}

fn rec_start_or(in_record: bool, rec_start: usize, pos: usize) -> usize {
    if in_record {
        rec_start
    } else {
        pos
    }
}

/// Repairs a WAL after a corruption: truncates the corrupt segment at the
/// last complete record and deletes every later segment.
pub fn repair(dir: &Path, at: &CorruptionPoint) -> Result<(), WalError> {
    for seg in list_segments(dir)? {
        if seg > at.segment {
            let p = dir.join(segment_name(seg));
            fs::remove_file(&p).map_err(io_err(format!("remove {}", p.display())))?;
        }
    }
    if at.offset != u64::MAX {
        let p = dir.join(segment_name(at.segment));
        let f = OpenOptions::new().write(true).open(&p).map_err(io_err(format!("open {}", p.display())))?;
        f.set_len(at.offset).map_err(io_err(format!("truncate {}", p.display())))?;
        f.sync_all().map_err(io_err(format!("fsync {}", p.display())))?;
    }
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(dir: &Path) -> (Vec<Vec<u8>>, Option<CorruptionPoint>) {
        let mut out = vec![];
        let r = read_all::<()>(dir, |_, r| {
            out.push(r.to_vec());
            Ok(())
        })
        .unwrap()
        .unwrap();
        (out, r)
    }

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn fragments_pages_and_segments() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions { segment_size: 3 * PAGE_SIZE, sync: SyncPolicy::Never, compress: true };
        let mut w = Wal::open(dir.path(), opts, Arc::new(TsdbMetrics::new())).unwrap();
        let mut want = vec![];
        // Sizes around page boundaries, incompressible and compressible,
        // and one record larger than a page (first/middle/last).
        for (i, n) in
            [1usize, 100, PAGE_SIZE - 14, 7, 0, 3 * PAGE_SIZE / 2, 20_000, 5].into_iter().enumerate()
        {
            let r = if i % 2 == 0 || n > PAGE_SIZE { pseudo_random(n, i as u64 + 1) } else { vec![b'a'; n] };
            w.log(&[&r]).unwrap();
            want.push(r);
        }
        drop(w);
        let segs = list_segments(dir.path()).unwrap();
        assert!(segs.len() > 1, "small segments force rotation: {segs:?}");
        for s in &segs {
            let len = fs::metadata(dir.path().join(segment_name(*s))).unwrap().len() as usize;
            assert!(len <= 3 * PAGE_SIZE);
        }
        let (got, corrupt) = records(dir.path());
        assert_eq!(corrupt, None);
        assert_eq!(got, want);

        // Reopening starts a new segment and keeps the old records.
        let mut w = Wal::open(dir.path(), WalOptions::default(), Arc::new(TsdbMetrics::new())).unwrap();
        assert_eq!(w.current_segment(), segs.last().unwrap() + 1);
        w.log(&[b"after reopen"]).unwrap();
        drop(w);
        let (got, _) = records(dir.path());
        assert_eq!(got.last().unwrap(), b"after reopen");
        assert_eq!(got.len(), want.len() + 1);
    }

    #[test]
    fn fragment_header_layout() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions { compress: false, ..WalOptions::default() };
        let mut w = Wal::open(dir.path(), opts, Arc::new(TsdbMetrics::new())).unwrap();
        w.log(&[b"hello"]).unwrap();
        drop(w);
        let bytes = fs::read(dir.path().join("00000000")).unwrap();
        let mut want = vec![REC_FULL, 0, 5];
        want.extend_from_slice(&crc32c::crc32c(b"hello").to_be_bytes());
        want.extend_from_slice(b"hello");
        assert_eq!(bytes, want);
    }

    #[test]
    fn corrupt_tail_is_found_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let opts = WalOptions { compress: false, ..WalOptions::default() };
        let mut w = Wal::open(dir.path(), opts, Arc::new(TsdbMetrics::new())).unwrap();
        for i in 0..10u8 {
            w.log(&[&[i; 1000]]).unwrap();
        }
        drop(w);
        let seg = dir.path().join("00000000");
        let good_len = fs::metadata(&seg).unwrap().len();
        // Flip a byte in the last record.
        let mut bytes = fs::read(&seg).unwrap();
        let n = bytes.len();
        bytes[n - 10] ^= 0xff;
        fs::write(&seg, &bytes).unwrap();
        let (got, corrupt) = records(dir.path());
        assert_eq!(got.len(), 9);
        let c = corrupt.unwrap();
        assert_eq!(c.offset, good_len - 1007);
        assert!(c.reason.contains("checksum"), "{}", c.reason);
        repair(dir.path(), &c).unwrap();
        let (got, corrupt) = records(dir.path());
        assert_eq!((got.len(), corrupt), (9, None));

        // A torn write: the first fragment of a multi-page record without
        // the rest.
        let mut w = Wal::open(dir.path(), opts_nocomp(), Arc::new(TsdbMetrics::new())).unwrap();
        w.log(&[&[7u8; 2 * PAGE_SIZE]]).unwrap();
        drop(w);
        let seg1 = dir.path().join("00000001");
        let f = OpenOptions::new().write(true).open(&seg1).unwrap();
        f.set_len(PAGE_SIZE as u64 + 100).unwrap();
        let (got, corrupt) = records(dir.path());
        assert_eq!(got.len(), 9);
        let c = corrupt.unwrap();
        assert_eq!((c.segment, c.offset), (1, 0));
    }

    #[test]
    fn failed_batch_is_rolled_back() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::open(dir.path(), opts_nocomp(), Arc::new(TsdbMetrics::new())).unwrap();
        w.log(&[&[1u8; 100]]).unwrap();
        // A batch whose write failed half-way left bytes behind.
        let start = (w.done_pages * PAGE_SIZE + w.flushed) as u64;
        w.log(&[&[2u8; 2 * PAGE_SIZE]]).unwrap();
        w.rollback_to(start).unwrap();
        w.log(&[&[3u8; 50]]).unwrap();
        let (got, corrupt) = records(dir.path());
        assert_eq!(corrupt, None);
        assert_eq!(got, vec![vec![1u8; 100], vec![3u8; 50]]);

        // A write error with no way to roll back (read-only handle): the
        // batch fails and so does every later one; the file holds only
        // complete records.
        let path = dir.path().join(segment_name(w.current_segment()));
        w.file = File::open(&path).unwrap();
        assert!(w.log(&[&[4u8; 10]]).is_err());
        assert!(w.log(&[&[5u8; 10]]).is_err(), "broken WAL refuses writes");
        drop(w);
        let (got, corrupt) = records(dir.path());
        assert_eq!(corrupt, None);
        assert_eq!(got.len(), 2);
    }

    fn opts_nocomp() -> WalOptions {
        WalOptions { compress: false, ..WalOptions::default() }
    }
}
