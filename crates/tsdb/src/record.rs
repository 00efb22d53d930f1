//! WAL record encoding, byte-compatible with Prometheus's `tsdb/record`
//! package (see `tsdb/docs/format/wal.md`).
//!
//! ```text
//! series (1):     per series: ref u64 BE, uvarint #labels,
//!                 per label uvarint len + name, uvarint len + value
//! samples (2):    first ref u64 BE, first t i64 BE, then per sample:
//!                 varint(ref - first ref), varint(t - first t), value u64 BE
//! tombstones (3): per interval: ref u64 BE, varint mint, varint maxt
//! metadata (6):   per entry: uvarint ref, type byte, uvarint #fields (2),
//!                 "UNIT", unit, "HELP", help (each uvarint len + bytes)
//! ```

use ember_model::{Labels, Metadata, MetricType, Timestamp};

pub const SERIES: u8 = 1;
pub const SAMPLES: u8 = 2;
pub const TOMBSTONES: u8 = 3;
pub const METADATA: u8 = 6;

/// A record that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("empty record")]
    Empty,
    #[error("invalid record type {0}")]
    BadType(u8),
    #[error("unexpected end of record")]
    Truncated,
    #[error("invalid varint")]
    BadVarint,
    #[error("invalid UTF-8 in label")]
    BadUtf8,
    #[error("labels not sorted or not unique")]
    UnsortedLabels,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RefSeries {
    pub id: u64,
    pub labels: Labels,
}

#[derive(Debug, Clone, Copy)]
pub struct RefSample {
    pub id: u64,
    pub t: Timestamp,
    pub v: f64,
}

impl PartialEq for RefSample {
    fn eq(&self, o: &Self) -> bool {
        self.id == o.id && self.t == o.t && self.v.to_bits() == o.v.to_bits()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefTombstone {
    pub id: u64,
    pub mint: Timestamp,
    pub maxt: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefMetadata {
    pub id: u64,
    pub meta: Metadata,
}

/// A decoded record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Series(Vec<RefSeries>),
    Samples(Vec<RefSample>),
    Tombstones(Vec<RefTombstone>),
    Metadata(Vec<RefMetadata>),
    /// A record type this version does not replay (exemplars, histograms…).
    Unknown(u8),
}

fn put_uvarint(b: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        b.push((x as u8) | 0x80);
        x >>= 7;
    }
    b.push(x as u8);
}

fn put_varint(b: &mut Vec<u8>, x: i64) {
    put_uvarint(b, ((x as u64) << 1) ^ ((x >> 63) as u64));
}

fn put_str(b: &mut Vec<u8>, s: &str) {
    put_uvarint(b, s.len() as u64);
    b.extend_from_slice(s.as_bytes());
}

/// Appends a series record to `b`.
pub fn encode_series<'a>(series: impl IntoIterator<Item = (u64, &'a Labels)>, b: &mut Vec<u8>) {
    b.push(SERIES);
    for (id, labels) in series {
        b.extend_from_slice(&id.to_be_bytes());
        put_uvarint(b, labels.len() as u64);
        for l in labels.iter() {
            put_str(b, l.name);
            put_str(b, l.value);
        }
    }
}

/// Appends a samples record to `b`.
pub fn encode_samples(samples: impl IntoIterator<Item = (u64, Timestamp, f64)>, b: &mut Vec<u8>) {
    b.push(SAMPLES);
    let mut first: Option<(u64, Timestamp)> = None;
    for (id, t, v) in samples {
        let (fid, ft) = match first {
            Some(f) => f,
            None => {
                b.extend_from_slice(&id.to_be_bytes());
                b.extend_from_slice(&t.to_be_bytes());
                first = Some((id, t));
                (id, t)
            }
        };
        put_varint(b, (id as i64).wrapping_sub(fid as i64));
        put_varint(b, t.wrapping_sub(ft));
        b.extend_from_slice(&v.to_bits().to_be_bytes());
    }
}

/// Appends a tombstones record to `b`.
pub fn encode_tombstones(stones: &[RefTombstone], b: &mut Vec<u8>) {
    b.push(TOMBSTONES);
    for s in stones {
        b.extend_from_slice(&s.id.to_be_bytes());
        put_varint(b, s.mint);
        put_varint(b, s.maxt);
    }
}

/// Prometheus's numbering of metric types in metadata records.
pub fn metric_type_code(t: MetricType) -> u8 {
    match t {
        MetricType::Unknown => 0,
        MetricType::Counter => 1,
        MetricType::Gauge => 2,
        MetricType::Histogram => 3,
        MetricType::GaugeHistogram => 4,
        MetricType::Summary => 5,
        MetricType::Info => 6,
        MetricType::StateSet => 7,
    }
}

fn metric_type_from_code(c: u8) -> MetricType {
    match c {
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 => MetricType::Histogram,
        4 => MetricType::GaugeHistogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::StateSet,
        _ => MetricType::Unknown,
    }
}

/// Appends a metadata record to `b`.
pub fn encode_metadata<'a>(entries: impl IntoIterator<Item = (u64, &'a Metadata)>, b: &mut Vec<u8>) {
    b.push(METADATA);
    for (id, m) in entries {
        put_uvarint(b, id);
        b.push(metric_type_code(m.metric_type));
        put_uvarint(b, 2);
        put_str(b, "UNIT");
        put_str(b, &m.unit);
        put_str(b, "HELP");
        put_str(b, &m.help);
    }
}

struct Dec<'a> {
    b: &'a [u8],
}

impl<'a> Dec<'a> {
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.b.len() < n {
            return Err(RecordError::Truncated);
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn byte(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }
    fn be64(&mut self) -> Result<u64, RecordError> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    fn uvarint(&mut self) -> Result<u64, RecordError> {
        let mut x = 0u64;
        let mut shift = 0u32;
        for i in 0..10 {
            let b = self.byte()?;
            if b < 0x80 {
                if i == 9 && b > 1 {
                    return Err(RecordError::BadVarint);
                }
                return Ok(x | (b as u64) << shift);
            }
            x |= ((b & 0x7f) as u64) << shift;
            shift += 7;
        }
        Err(RecordError::BadVarint)
    }
    fn varint(&mut self) -> Result<i64, RecordError> {
        let ux = self.uvarint()?;
        let x = (ux >> 1) as i64;
        Ok(if ux & 1 != 0 { !x } else { x })
    }
    fn str(&mut self) -> Result<&'a str, RecordError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| RecordError::Truncated)?;
        std::str::from_utf8(self.take(n)?).map_err(|_| RecordError::BadUtf8)
    }
}

/// Decodes one record.
pub fn decode(rec: &[u8]) -> Result<Record, RecordError> {
    let mut d = Dec { b: rec };
    if d.is_empty() {
        return Err(RecordError::Empty);
    }
    let typ = d.byte()?;
    match typ {
        SERIES => {
            let mut out = vec![];
            let mut pairs: Vec<(&str, &str)> = vec![];
            while !d.is_empty() {
                let id = d.be64()?;
                let n = d.uvarint()?;
                pairs.clear();
                for _ in 0..n {
                    let name = d.str()?;
                    let value = d.str()?;
                    if pairs.last().is_some_and(|(p, _)| *p >= name) {
                        return Err(RecordError::UnsortedLabels);
                    }
                    pairs.push((name, value));
                }
                out.push(RefSeries { id, labels: Labels::from_sorted_unique(pairs.iter().copied()) });
            }
            Ok(Record::Series(out))
        }
        SAMPLES => {
            let mut out = Vec::with_capacity(d.b.len() / 10);
            if d.is_empty() {
                return Ok(Record::Samples(out));
            }
            let base_id = d.be64()?;
            let base_t = d.be64()? as i64;
            while !d.is_empty() {
                let did = d.varint()?;
                let dt = d.varint()?;
                let v = f64::from_bits(d.be64()?);
                out.push(RefSample {
                    id: (base_id as i64).wrapping_add(did) as u64,
                    t: base_t.wrapping_add(dt),
                    v,
                });
            }
            Ok(Record::Samples(out))
        }
        TOMBSTONES => {
            let mut out = vec![];
            while !d.is_empty() {
                let id = d.be64()?;
                let mint = d.varint()?;
                let maxt = d.varint()?;
                out.push(RefTombstone { id, mint, maxt });
            }
            Ok(Record::Tombstones(out))
        }
        METADATA => {
            let mut out = vec![];
            while !d.is_empty() {
                let id = d.uvarint()?;
                let typ = d.byte()?;
                let nfields = d.uvarint()?;
                let mut meta = Metadata { metric_type: metric_type_from_code(typ), ..Default::default() };
                for _ in 0..nfields {
                    let name = d.str()?;
                    let value = d.str()?;
                    match name {
                        "UNIT" => meta.unit = value.to_owned(),
                        "HELP" => meta.help = value.to_owned(),
                        // Unknown fields are skipped, as Prometheus does.
                        _ => {}
                    }
                }
                out.push(RefMetadata { id, meta });
            }
            Ok(Record::Metadata(out))
        }
        4 | 5 | 7..=10 => Ok(Record::Unknown(typ)),
        other => Err(RecordError::BadType(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn samples_layout_matches_prometheus() {
        let mut b = vec![];
        encode_samples([(5u64, 1000i64, 1.0f64), (3, 999, 2.0)], &mut b);
        let mut want = vec![2u8];
        want.extend_from_slice(&5u64.to_be_bytes());
        want.extend_from_slice(&1000i64.to_be_bytes());
        want.extend_from_slice(&[0, 0]); // deltas 0, 0 (zig-zag)
        want.extend_from_slice(&1.0f64.to_bits().to_be_bytes());
        want.extend_from_slice(&[3, 1]); // ref delta -2 -> 3, t delta -1 -> 1
        want.extend_from_slice(&2.0f64.to_bits().to_be_bytes());
        assert_eq!(b, want);
        let Record::Samples(s) = decode(&b).unwrap() else { panic!() };
        assert_eq!(s, vec![RefSample { id: 5, t: 1000, v: 1.0 }, RefSample { id: 3, t: 999, v: 2.0 }]);
    }

    #[test]
    fn series_and_metadata_layout() {
        let l = Labels::from_pairs(&[("__name__", "up"), ("job", "a")]);
        let mut b = vec![];
        encode_series([(7u64, &l)], &mut b);
        let mut want = vec![1u8];
        want.extend_from_slice(&7u64.to_be_bytes());
        want.push(2);
        want.extend_from_slice(b"\x08__name__\x02up\x03job\x01a");
        assert_eq!(b, want);
        assert_eq!(decode(&b).unwrap(), Record::Series(vec![RefSeries { id: 7, labels: l }]));

        let m = Metadata { metric_type: MetricType::Gauge, help: "h".into(), unit: "s".into() };
        let mut b = vec![];
        encode_metadata([(300u64, &m)], &mut b);
        assert_eq!(b, b"\x06\xac\x02\x02\x02\x04UNIT\x01s\x04HELP\x01h".to_vec());
        assert_eq!(decode(&b).unwrap(), Record::Metadata(vec![RefMetadata { id: 300, meta: m }]));
    }

    #[test]
    fn corrupt_records_are_errors() {
        assert_eq!(decode(&[]), Err(RecordError::Empty));
        assert_eq!(decode(&[99]), Err(RecordError::BadType(99)));
        let mut b = vec![];
        encode_samples([(1u64, 1i64, 1.0f64)], &mut b);
        assert_eq!(decode(&b[..b.len() - 1]), Err(RecordError::Truncated));
        assert_eq!(decode(&[2]).unwrap(), Record::Samples(vec![]));
    }

    proptest! {
        #[test]
        fn samples_round_trip(s in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<u64>()), 0..50)) {
            let mut b = vec![];
            encode_samples(s.iter().map(|(i, t, v)| (*i, *t, f64::from_bits(*v))), &mut b);
            let Record::Samples(got) = decode(&b).unwrap() else { panic!() };
            let want: Vec<RefSample> = s.iter().map(|(i, t, v)| RefSample { id: *i, t: *t, v: f64::from_bits(*v) }).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn tombstones_round_trip(s in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..20)) {
            let stones: Vec<RefTombstone> = s.iter().map(|(id, a, b)| RefTombstone { id: *id, mint: *a, maxt: *b }).collect();
            let mut b = vec![];
            encode_tombstones(&stones, &mut b);
            prop_assert_eq!(decode(&b).unwrap(), Record::Tombstones(stones));
        }
    }
}
