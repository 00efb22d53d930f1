//! The block `index` file, Prometheus index format v2.
//!
//! Layout: `magic 0xBAAAD700 | version 2`, symbol table, series (each
//! 16-byte aligned; a series' id is its offset / 16), label indices, label
//! offset table, postings (one list per label pair, plus the all-series list
//! under the empty pair), postings offset table, TOC. Fixed-width integers
//! are big-endian; every section ends with a CRC32-Castagnoli of its body.
//! Symbol references in v2 are positions in the sorted symbol table.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use croaring::Bitmap;
use ember_model::{Labels, Timestamp};
use memmap2::Mmap;

use super::encoding::{crc32, section_be32, section_uvarint, Decbuf, Encbuf};
use super::BlockError;

pub const MAGIC_INDEX: u32 = 0xBAAA_D700;
pub const INDEX_FORMAT_V2: u8 = 2;
const TOC_LEN: usize = 6 * 8 + 4;

/// Where a chunk of a series lives and which time span it covers
/// (both ends inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkMeta {
    pub mint: Timestamp,
    pub maxt: Timestamp,
    pub chunk_ref: u64,
}

/// The TOC: offsets of the sections (0 = absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Toc {
    symbols: u64,
    series: u64,
    label_indices: u64,
    label_indices_table: u64,
    postings: u64,
    postings_table: u64,
}

/// A writer that tracks its position.
struct PosWriter {
    w: BufWriter<File>,
    pos: u64,
}

impl PosWriter {
    fn write(&mut self, b: &[u8]) -> Result<(), BlockError> {
        self.w.write_all(b)?;
        self.pos += b.len() as u64;
        Ok(())
    }
    fn align(&mut self, n: u64) -> Result<(), BlockError> {
        let pad = (n - self.pos % n) % n;
        if pad > 0 {
            self.write(&vec![0u8; pad as usize])?;
        }
        Ok(())
    }
}

/// Writes `len <4b> | body | crc`, where the body is `b` from `body_from`.
fn finish_be32_section(e: &mut Encbuf) {
    let body_len = (e.len() - 4) as u32;
    e.b[..4].copy_from_slice(&body_len.to_be_bytes());
    e.put_crc_of_tail(4);
}

/// Writes a complete index for `series`, which must be sorted by labels
/// and have unique label sets. Chunk metas must be sorted by time.
pub fn write_index(path: &Path, series: &[(Labels, Vec<ChunkMeta>)]) -> Result<(), BlockError> {
    for w in series.windows(2) {
        if w[0].0 >= w[1].0 {
            return Err(BlockError::Invalid(format!("series out of order: {} before {}", w[0].0, w[1].0)));
        }
    }
    // Symbols: every name and value, sorted and unique.
    let mut symset: BTreeSet<&str> = BTreeSet::new();
    for (l, _) in series {
        for x in l.iter() {
            symset.insert(x.name);
            symset.insert(x.value);
        }
    }
    let symbols: Vec<&str> = symset.into_iter().collect();
    let sym_index = |s: &str| -> u32 { symbols.binary_search(&s).map(|i| i as u32).unwrap_or(0) };

    let mut w = PosWriter { w: BufWriter::with_capacity(1 << 20, File::create(path)?), pos: 0 };
    let mut toc = Toc::default();
    let mut e = Encbuf::new();
    e.put_be32(MAGIC_INDEX);
    e.put_byte(INDEX_FORMAT_V2);
    w.write(&e.b)?;

    // Symbol table.
    toc.symbols = w.pos;
    e.reset();
    e.put_be32(0);
    e.put_be32(symbols.len() as u32);
    for s in &symbols {
        e.put_uvarint_str(s);
    }
    finish_be32_section(&mut e);
    w.write(&e.b)?;

    // Series, each 16-byte aligned; collect postings as we go.
    let mut postings: BTreeMap<(&str, &str), Vec<u32>> = BTreeMap::new();
    let mut all: Vec<u32> = Vec::with_capacity(series.len());
    w.align(16)?;
    toc.series = w.pos;
    let mut body = Encbuf::new();
    for (labels, chunks) in series {
        w.align(16)?;
        let id = u32::try_from(w.pos / 16).map_err(|_| BlockError::Invalid("index too large".into()))?;
        all.push(id);
        body.reset();
        body.put_uvarint(labels.len() as u64);
        for l in labels.iter() {
            body.put_uvarint(u64::from(sym_index(l.name)));
            body.put_uvarint(u64::from(sym_index(l.value)));
            postings.entry((l.name, l.value)).or_default().push(id);
        }
        body.put_uvarint(chunks.len() as u64);
        let mut prev: Option<&ChunkMeta> = None;
        for c in chunks {
            if c.maxt < c.mint || prev.is_some_and(|p| c.mint <= p.maxt) {
                return Err(BlockError::Invalid(format!("chunks of {labels} overlap or are out of order")));
            }
            match prev {
                None => {
                    body.put_varint(c.mint);
                    body.put_uvarint((c.maxt - c.mint) as u64);
                    body.put_uvarint(c.chunk_ref);
                }
                Some(p) => {
                    body.put_uvarint((c.mint - p.maxt) as u64);
                    body.put_uvarint((c.maxt - c.mint) as u64);
                    body.put_varint(c.chunk_ref as i64 - p.chunk_ref as i64);
                }
            }
            prev = Some(c);
        }
        e.reset();
        e.put_uvarint(body.len() as u64);
        e.put_bytes(&body.b);
        e.put_be32(crc32(&body.b));
        w.write(&e.b)?;
    }

    // Label indices (unused by v2 readers, written for completeness): one
    // per label name with its sorted values.
    let mut values_by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (n, v) in postings.keys() {
        values_by_name.entry(n).or_default().push(v);
    }
    w.align(4)?;
    toc.label_indices = w.pos;
    let mut label_index_offsets: Vec<(&str, u64)> = Vec::new();
    for (name, values) in &values_by_name {
        w.align(4)?;
        label_index_offsets.push((name, w.pos));
        e.reset();
        e.put_be32(0);
        e.put_be32(1);
        e.put_be32(values.len() as u32);
        for v in values {
            e.put_be32(sym_index(v));
        }
        finish_be32_section(&mut e);
        w.write(&e.b)?;
    }
    // Label offset table.
    w.align(4)?;
    toc.label_indices_table = w.pos;
    e.reset();
    e.put_be32(0);
    e.put_be32(label_index_offsets.len() as u32);
    for (name, off) in &label_index_offsets {
        e.put_byte(1);
        e.put_uvarint_str(name);
        e.put_uvarint(*off);
    }
    finish_be32_section(&mut e);
    w.write(&e.b)?;

    // Postings: the all-series list under ("", "") first, then each pair in
    // name/value order.
    w.align(4)?;
    toc.postings = w.pos;
    let mut postings_offsets: Vec<(&str, &str, u64)> = Vec::with_capacity(postings.len() + 1);
    let lists = std::iter::once((("", ""), &all)).chain(postings.iter().map(|(k, v)| (*k, v)));
    for ((name, value), ids) in lists {
        w.align(4)?;
        postings_offsets.push((name, value, w.pos));
        e.reset();
        e.put_be32(0);
        e.put_be32(ids.len() as u32);
        for id in ids {
            e.put_be32(*id);
        }
        finish_be32_section(&mut e);
        w.write(&e.b)?;
    }

    // Postings offset table.
    w.align(4)?;
    toc.postings_table = w.pos;
    e.reset();
    e.put_be32(0);
    e.put_be32(postings_offsets.len() as u32);
    for (n, v, off) in &postings_offsets {
        e.put_byte(2);
        e.put_uvarint_str(n);
        e.put_uvarint_str(v);
        e.put_uvarint(*off);
    }
    finish_be32_section(&mut e);
    w.write(&e.b)?;

    // TOC.
    e.reset();
    for v in [
        toc.symbols,
        toc.series,
        toc.label_indices,
        toc.label_indices_table,
        toc.postings,
        toc.postings_table,
    ] {
        e.put_be64(v);
    }
    e.put_crc_of_tail(0);
    w.write(&e.b)?;
    let f = w.w.into_inner().map_err(|e| BlockError::Io(e.into_error()))?;
    f.sync_all()?;
    Ok(())
}

/// Decodes a postings offset table entry's value and offset at `pos` of
/// `map`. Only called with positions whose entry was decoded successfully
/// at open, so the fallbacks (empty value, offset 0) are unreachable for a
/// mapped file that does not change; they keep a bad position from
/// panicking.
fn entry_at(map: &[u8], pos: u64) -> (&str, u64) {
    let Some(b) = usize::try_from(pos).ok().and_then(|p| map.get(p..)) else { return ("", 0) };
    let mut d = Decbuf::new(b);
    let v = d.uvarint_str().unwrap_or("");
    let off = d.uvarint().unwrap_or(0);
    (v, off)
}

/// A memory-mapped index.
#[derive(Debug)]
pub struct IndexReader {
    map: Mmap,
    /// Offset of each symbol's length prefix, by symbol index.
    symbols: Vec<u32>,
    /// Label name → where each of its postings offset table entries'
    /// value starts in the map (uvarint length, value, uvarint postings
    /// offset), sorted by value. Positions instead of owned strings: a
    /// label with a value per series (an `id`, a pod name) has as many
    /// entries as series, and 8 bytes each keeps an opened block's memory
    /// small (≈ 60 bytes per entry as a `String` and offset).
    postings: BTreeMap<String, Vec<u64>>,
    all_postings_offset: Option<u64>,
}

impl IndexReader {
    pub fn open(path: &Path) -> Result<IndexReader, BlockError> {
        let f = File::open(path)?;
        // SAFETY: see ChunkReader::open; index files are immutable.
        let map = unsafe { Mmap::map(&f)? };
        let mut d = Decbuf::new(&map);
        if map.len() < 5 + TOC_LEN || d.be32()? != MAGIC_INDEX {
            return Err(BlockError::Corrupt("index: invalid magic number".into()));
        }
        let version = d.byte()?;
        if version != INDEX_FORMAT_V2 {
            return Err(BlockError::Corrupt(format!("index: unsupported version {version}")));
        }
        let toc_bytes = &map[map.len() - TOC_LEN..];
        if crc32(&toc_bytes[..48])
            != u32::from_be_bytes([toc_bytes[48], toc_bytes[49], toc_bytes[50], toc_bytes[51]])
        {
            return Err(BlockError::Corrupt("index: TOC checksum mismatch".into()));
        }
        let mut t = Decbuf::new(toc_bytes);
        let toc = Toc {
            symbols: t.be64()?,
            series: t.be64()?,
            label_indices: t.be64()?,
            label_indices_table: t.be64()?,
            postings: t.be64()?,
            postings_table: t.be64()?,
        };

        // Symbols: remember where each starts.
        let mut symbols = Vec::new();
        if toc.symbols != 0 {
            let body = section_be32(&map, toc.symbols as usize, "index symbols")?;
            let base = toc.symbols as usize + 4;
            let mut d = Decbuf::new(body);
            let n = d.be32()? as usize;
            symbols.reserve(n);
            for _ in 0..n {
                let off = base + (body.len() - d.remaining());
                symbols.push(u32::try_from(off).map_err(|_| BlockError::Corrupt("index too large".into()))?);
                d.uvarint_bytes()?;
            }
        }

        let mut postings: BTreeMap<String, Vec<u64>> = BTreeMap::new();
        let mut all_postings_offset = None;
        if toc.postings_table != 0 {
            let body = section_be32(&map, toc.postings_table as usize, "index postings offset table")?;
            let base = toc.postings_table + 4;
            let mut d = Decbuf::new(body);
            let n = d.be32()?;
            // Entries arrive sorted by name, then value (the format's
            // order); the sortedness check needs only the previous one.
            let mut prev: Option<(&str, &str)> = None;
            let mut unsorted = false;
            for _ in 0..n {
                if d.byte()? != 2 {
                    return Err(BlockError::Corrupt("index: postings offset entry without 2 keys".into()));
                }
                let name = d.uvarint_str()?;
                let pos = base + (body.len() - d.remaining()) as u64;
                // Validated here (UTF-8, bounds), so reading it again later
                // through `entry` cannot fail on a well-formed map.
                let value = d.uvarint_str()?;
                let off = d.uvarint()?;
                if name.is_empty() && value.is_empty() {
                    all_postings_offset = Some(off);
                    continue;
                }
                let same_name = prev.is_some_and(|(n, _)| n == name);
                if same_name && prev.is_some_and(|(_, v)| v >= value) {
                    unsorted = true;
                }
                prev = Some((name, value));
                match postings.get_mut(name) {
                    Some(v) => {
                        // A name seen again after another one: its values
                        // are not in one sorted run.
                        unsorted |= !same_name;
                        v.push(pos);
                    }
                    None => {
                        postings.insert(name.to_owned(), vec![pos]);
                    }
                }
            }
            if unsorted {
                for v in postings.values_mut() {
                    v.sort_by(|a, b| entry_at(&map, *a).0.cmp(entry_at(&map, *b).0));
                }
            }
        }
        for v in postings.values_mut() {
            v.shrink_to_fit();
        }
        Ok(IndexReader { map, symbols, postings, all_postings_offset })
    }

    /// The value and postings offset of the postings offset table entry
    /// whose value starts at `pos` (validated at open).
    fn entry(&self, pos: u64) -> (&str, u64) {
        entry_at(&self.map, pos)
    }

    pub fn size(&self) -> u64 {
        self.map.len() as u64
    }

    fn symbol(&self, i: u32) -> Result<&str, BlockError> {
        let off = *self
            .symbols
            .get(i as usize)
            .ok_or_else(|| BlockError::Corrupt(format!("index: unknown symbol {i}")))?;
        Decbuf::new(&self.map[off as usize..]).uvarint_str()
    }

    fn read_postings(&self, off: u64) -> Result<Bitmap, BlockError> {
        let body = section_be32(&self.map, off as usize, "index postings")?;
        let mut d = Decbuf::new(body);
        let n = d.be32()? as usize;
        let raw = d.bytes(n * 4)?;
        let ids: Vec<u32> =
            raw.chunks_exact(4).map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect();
        Ok(Bitmap::of(&ids))
    }

    /// Every series id.
    pub fn all_postings(&self) -> Result<Bitmap, BlockError> {
        match self.all_postings_offset {
            Some(off) => self.read_postings(off),
            None => Ok(Bitmap::new()),
        }
    }

    /// Series ids with `name="value"`.
    pub fn postings(&self, name: &str, value: &str) -> Result<Bitmap, BlockError> {
        let Some(values) = self.postings.get(name) else {
            return Ok(Bitmap::new());
        };
        match values.binary_search_by(|&p| self.entry(p).0.cmp(value)) {
            Ok(i) => self.read_postings(self.entry(values[i]).1),
            Err(_) => Ok(Bitmap::new()),
        }
    }

    /// Union of the postings of every value of `name` accepted by `f`.
    pub fn postings_for_values(
        &self,
        name: &str,
        mut f: impl FnMut(&str) -> bool,
    ) -> Result<Bitmap, BlockError> {
        let mut out = Bitmap::new();
        if let Some(values) = self.postings.get(name) {
            for &p in values {
                let (v, off) = self.entry(p);
                if f(v) {
                    out.or_inplace(&self.read_postings(off)?);
                }
            }
        }
        Ok(out)
    }

    /// Sorted label names.
    pub fn label_names(&self) -> Vec<&str> {
        self.postings.keys().map(String::as_str).collect()
    }

    /// Sorted values of `name`.
    pub fn label_values(&self, name: &str) -> Vec<&str> {
        self.postings.get(name).map(|v| v.iter().map(|&p| self.entry(p).0).collect()).unwrap_or_default()
    }

    /// Labels and chunk metas of series `id`.
    pub fn series(&self, id: u32, chunks: &mut Vec<ChunkMeta>) -> Result<Labels, BlockError> {
        let body = section_uvarint(&self.map, id as usize * 16, "index series")?;
        let mut d = Decbuf::new(body);
        let n = d.uvarint()? as usize;
        let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(n.min(64));
        for _ in 0..n {
            let name = self.symbol(d.uvarint32()?)?;
            let value = self.symbol(d.uvarint32()?)?;
            pairs.push((name, value));
        }
        if !pairs.windows(2).all(|w| w[0].0 < w[1].0) {
            return Err(BlockError::Corrupt(format!("index: labels of series {id} not sorted")));
        }
        let labels = Labels::from_sorted_unique(pairs);
        chunks.clear();
        let k = d.uvarint()? as usize;
        let mut prev: Option<ChunkMeta> = None;
        for _ in 0..k {
            let c = match prev {
                None => {
                    let mint = d.varint()?;
                    let maxt = mint.wrapping_add(d.uvarint()? as i64);
                    ChunkMeta { mint, maxt, chunk_ref: d.uvarint()? }
                }
                Some(p) => {
                    let mint = p.maxt.wrapping_add(d.uvarint()? as i64);
                    let maxt = mint.wrapping_add(d.uvarint()? as i64);
                    ChunkMeta { mint, maxt, chunk_ref: p.chunk_ref.wrapping_add(d.varint()? as u64) }
                }
            };
            chunks.push(c);
            prev = Some(c);
        }
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::labels;

    fn sample_series() -> Vec<(Labels, Vec<ChunkMeta>)> {
        let mut v = vec![
            (
                labels!("__name__" => "up", "job" => "a", "instance" => "x:1"),
                vec![
                    ChunkMeta { mint: 0, maxt: 100, chunk_ref: 8 },
                    ChunkMeta { mint: 115, maxt: 200, chunk_ref: 40 },
                ],
            ),
            (
                labels!("__name__" => "up", "job" => "b", "instance" => "x:2"),
                vec![ChunkMeta { mint: -50, maxt: -10, chunk_ref: 1 << 32 | 8 }],
            ),
            (
                labels!("__name__" => "go_goroutines", "job" => "a"),
                vec![ChunkMeta { mint: 7, maxt: 7, chunk_ref: 77 }],
            ),
        ];
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    #[test]
    fn roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index");
        let series = sample_series();
        write_index(&p, &series).unwrap();
        let r = IndexReader::open(&p).unwrap();
        assert_eq!(r.label_names(), vec!["__name__", "instance", "job"]);
        assert_eq!(r.label_values("job"), vec!["a", "b"]);
        let all: Vec<u32> = r.all_postings().unwrap().iter().collect();
        assert_eq!(all.len(), 3);
        let mut chunks = vec![];
        for (i, id) in all.iter().enumerate() {
            let l = r.series(*id, &mut chunks).unwrap();
            assert_eq!(l, series[i].0, "ids in postings order are in label order");
            assert_eq!(chunks, series[i].1);
        }
        let a: Vec<u32> = r.postings("job", "a").unwrap().iter().collect();
        assert_eq!(a.len(), 2);
        assert!(r.postings("job", "zzz").unwrap().is_empty());
        assert!(r.postings("nope", "a").unwrap().is_empty());
        let re = r.postings_for_values("instance", |v| v.starts_with("x:")).unwrap();
        assert_eq!(re.cardinality(), 2);
    }

    #[test]
    fn refuses_unsorted_input() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sample_series();
        s.reverse();
        assert!(matches!(write_index(&dir.path().join("i"), &s), Err(BlockError::Invalid(_))));
    }

    #[test]
    fn corruption_detected_not_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("index");
        write_index(&p, &sample_series()).unwrap();
        let good = std::fs::read(&p).unwrap();
        // Flip every byte in turn: opening and reading must return errors or
        // data, never panic.
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x5a;
            std::fs::write(&p, &b).unwrap();
            if let Ok(r) = IndexReader::open(&p) {
                if let Ok(all) = r.all_postings() {
                    let mut c = vec![];
                    for id in all.iter().take(10) {
                        let _ = r.series(id, &mut c);
                    }
                }
            }
        }
        std::fs::write(&p, &good[..good.len() - 3]).unwrap();
        assert!(IndexReader::open(&p).is_err());
    }
}
