//! Gorilla-style XOR chunks, byte-compatible with Prometheus's XOR chunk
//! (encoding 1 in the chunks file format).
//!
//! Layout (bits are written most significant first, the last byte is padded
//! with zero bits):
//!
//! ```text
//! u16 BE sample count
//! sample 0: varint(t0) (zig-zag, as Go's binary.PutVarint), 64 bits of v0
//! sample 1: uvarint(t1 - t0), value as below
//! sample n: delta-of-delta d = (tn - tn-1) - (tn-1 - tn-2):
//!             d == 0             '0'
//!             d in [-8191, 8192]   '10'   + 14 bits
//!             d in [-65535, 65536] '110'  + 17 bits
//!             d in [-524287, 524288] '1110' + 20 bits
//!             otherwise          '1111' + 64 bits
//!           value as below
//! value: x = bits(v) ^ bits(previous v)
//!           x == 0                                   '0'
//!           x fits the previous leading/trailing window '10' + meaningful bits
//!           otherwise '11' + 5 bits leading zeros (clamped to 31)
//!                     + 6 bits significant-bit count (64 written as 0)
//!                     + the significant bits
//! ```
//!
//! The varints of samples 0 and 1 are written byte by byte into the bit
//! stream, so they need not be byte aligned.

use ember_model::Timestamp;

/// Chunk encodings as numbered in Prometheus's chunks file format.
pub const ENCODING_XOR: u8 = 1;

/// Why a chunk could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("chunk too short: {0} bytes")]
    TooShort(usize),
    #[error("unexpected end of chunk data after {read} of {total} samples")]
    UnexpectedEnd { read: u16, total: u16 },
}

/// Appends bits to a byte vector, most significant bit first.
#[derive(Debug, Clone, Default)]
struct BitWriter {
    buf: Vec<u8>,
    /// Unused low bits in the last byte of `buf` (0 means the next bit
    /// starts a new byte).
    free: u32,
}

impl BitWriter {
    #[inline]
    fn write_bit(&mut self, bit: bool) {
        if self.free == 0 {
            self.buf.push(0);
            self.free = 8;
        }
        self.free -= 1;
        if bit {
            // `buf` is non-empty: a byte was pushed above if needed.
            if let Some(last) = self.buf.last_mut() {
                *last |= 1 << self.free;
            }
        }
    }

    /// Writes the low `n` bits of `v` (n ≤ 64).
    #[inline]
    fn write_bits(&mut self, v: u64, mut n: u32) {
        if n == 0 {
            return;
        }
        let v = if n == 64 { v } else { v & ((1u64 << n) - 1) };
        // Fill the partial last byte first, then whole bytes, then the rest.
        if self.free > 0 {
            let take = n.min(self.free);
            let bits = ((v >> (n - take)) & ((1u64 << take) - 1)) as u8;
            if let Some(last) = self.buf.last_mut() {
                *last |= bits << (self.free - take);
            }
            self.free -= take;
            n -= take;
        }
        while n >= 8 {
            n -= 8;
            self.buf.push((v >> n) as u8);
        }
        if n > 0 {
            self.buf.push((v << (8 - n)) as u8);
            self.free = 8 - n;
        }
    }

    #[inline]
    fn write_byte(&mut self, b: u8) {
        self.write_bits(b as u64, 8);
    }
}

/// Reads bits from a byte slice, most significant bit first.
#[derive(Debug, Clone)]
struct BitReader {
    /// Position in bits from the start of the stream.
    pos: usize,
    /// Total bits available.
    len: usize,
}

impl BitReader {
    /// Reads `n` bits (1..=56) as the low bits of the result.
    #[inline]
    fn read_small(&mut self, data: &[u8], n: u32) -> Option<u64> {
        debug_assert!(n > 0 && n <= 56);
        if self.pos + n as usize > self.len {
            return None;
        }
        let byte = self.pos / 8;
        let shift = (self.pos % 8) as u32;
        // Load up to 8 bytes big-endian; bytes past the end read as zero
        // (they are never part of the result thanks to the length check).
        let word = match data.get(byte..byte + 8) {
            Some(w) => {
                let mut a = [0u8; 8];
                a.copy_from_slice(w);
                u64::from_be_bytes(a)
            }
            None => {
                let mut a = [0u8; 8];
                let avail = data.len() - byte;
                a[..avail].copy_from_slice(&data[byte..]);
                u64::from_be_bytes(a)
            }
        };
        self.pos += n as usize;
        Some((word << shift) >> (64 - n))
    }

    #[inline]
    fn read_bits(&mut self, data: &[u8], n: u32) -> Option<u64> {
        if n == 0 {
            return Some(0);
        }
        if n <= 56 {
            return self.read_small(data, n);
        }
        let hi = self.read_small(data, n - 32)?;
        let lo = self.read_small(data, 32)?;
        Some((hi << 32) | lo)
    }

    #[inline]
    fn read_bit(&mut self, data: &[u8]) -> Option<bool> {
        if self.pos >= self.len {
            return None;
        }
        let b = data[self.pos / 8] & (0x80 >> (self.pos % 8));
        self.pos += 1;
        Some(b != 0)
    }

    fn read_uvarint(&mut self, data: &[u8]) -> Option<u64> {
        let mut x = 0u64;
        let mut shift = 0u32;
        for i in 0..10 {
            let b = self.read_small(data, 8)? as u8;
            if b < 0x80 {
                // The tenth byte may only contribute one bit.
                if i == 9 && b > 1 {
                    return None;
                }
                return Some(x | (b as u64) << shift);
            }
            x |= ((b & 0x7f) as u64) << shift;
            shift += 7;
        }
        None
    }

    fn read_varint(&mut self, data: &[u8]) -> Option<i64> {
        let ux = self.read_uvarint(data)?;
        let x = (ux >> 1) as i64;
        Some(if ux & 1 != 0 { !x } else { x })
    }
}

/// Whether `x` is representable in the `nbits` bucket. The range is
/// asymmetric (`-(2^(n-1)-1) ..= 2^(n-1)`) exactly as Prometheus's, which
/// matters for byte compatibility at the edges.
#[inline]
fn bit_range(x: i64, nbits: u32) -> bool {
    -((1i64 << (nbits - 1)) - 1) <= x && x <= 1i64 << (nbits - 1)
}

/// An XOR chunk being appended to. Samples must be appended in strictly
/// increasing timestamp order; the head enforces that before calling.
#[derive(Debug, Clone)]
pub struct XorChunk {
    w: BitWriter,
    num: u16,
    t: Timestamp,
    v: u64,
    t_delta: u64,
    /// 0xff until the first XOR control block has been written.
    leading: u8,
    trailing: u8,
}

impl Default for XorChunk {
    fn default() -> Self {
        XorChunk::new()
    }
}

impl XorChunk {
    pub fn new() -> XorChunk {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&[0, 0]);
        XorChunk { w: BitWriter { buf, free: 0 }, num: 0, t: 0, v: 0, t_delta: 0, leading: 0xff, trailing: 0 }
    }

    /// Number of samples in the chunk.
    pub fn num_samples(&self) -> u16 {
        self.num
    }

    /// The encoded chunk, header included.
    pub fn bytes(&self) -> &[u8] {
        &self.w.buf
    }

    /// Timestamp of the last appended sample (meaningless when empty).
    pub fn last_t(&self) -> Timestamp {
        self.t
    }

    /// Value of the last appended sample (meaningless when empty).
    pub fn last_v(&self) -> f64 {
        f64::from_bits(self.v)
    }

    /// Drops spare capacity once the chunk will not grow any more.
    pub fn shrink_to_fit(&mut self) {
        self.w.buf.shrink_to_fit();
    }

    /// Consumes the chunk, returning its bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.w.buf
    }

    /// Appends one sample. A chunk holds at most `u16::MAX` samples; the head
    /// cuts chunks long before that.
    pub fn append(&mut self, t: Timestamp, v: f64) {
        let vb = v.to_bits();
        let mut t_delta = 0u64;
        match self.num {
            0 => {
                let mut tmp = [0u8; 10];
                let n = put_varint(&mut tmp, t);
                for &b in &tmp[..n] {
                    self.w.write_byte(b);
                }
                self.w.write_bits(vb, 64);
            }
            1 => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let mut tmp = [0u8; 10];
                let n = put_uvarint(&mut tmp, t_delta);
                for &b in &tmp[..n] {
                    self.w.write_byte(b);
                }
                self.write_value(vb);
            }
            _ => {
                t_delta = t.wrapping_sub(self.t) as u64;
                let dod = t_delta.wrapping_sub(self.t_delta) as i64;
                if dod == 0 {
                    self.w.write_bit(false);
                } else if bit_range(dod, 14) {
                    self.w.write_bits(0b10, 2);
                    self.w.write_bits(dod as u64, 14);
                } else if bit_range(dod, 17) {
                    self.w.write_bits(0b110, 3);
                    self.w.write_bits(dod as u64, 17);
                } else if bit_range(dod, 20) {
                    self.w.write_bits(0b1110, 4);
                    self.w.write_bits(dod as u64, 20);
                } else {
                    self.w.write_bits(0b1111, 4);
                    self.w.write_bits(dod as u64, 64);
                }
                self.write_value(vb);
            }
        }
        self.t = t;
        self.v = vb;
        self.t_delta = t_delta;
        self.num = self.num.wrapping_add(1);
        let [hi, lo] = self.num.to_be_bytes();
        self.w.buf[0] = hi;
        self.w.buf[1] = lo;
    }

    #[inline]
    fn write_value(&mut self, vb: u64) {
        let delta = vb ^ self.v;
        if delta == 0 {
            self.w.write_bit(false);
            return;
        }
        // Five bits hold the leading-zero count, so it is clamped to 31.
        let leading = (delta.leading_zeros() as u8).min(31);
        let trailing = delta.trailing_zeros() as u8;
        if self.leading != 0xff && leading >= self.leading && trailing >= self.trailing {
            // '10' + the bits inside the previous window; one write when
            // it fits in 64 bits.
            let n = 64 - self.leading as u32 - self.trailing as u32;
            let bits = delta >> self.trailing;
            if n <= 62 {
                self.w.write_bits((0b10 << n) | bits, n + 2);
            } else {
                self.w.write_bits(0b10, 2);
                self.w.write_bits(bits, n);
            }
        } else {
            self.leading = leading;
            self.trailing = trailing;
            let sig = 64 - leading as u32 - trailing as u32;
            // '11' + 5 bits leading + 6 bits significant count. 64
            // significant bits do not fit in 6 bits and are written as 0;
            // 0 cannot occur (that is the delta == 0 case).
            let control = (0b11 << 11) | ((leading as u64) << 6) | (sig & 0x3f) as u64;
            let bits = delta >> trailing;
            if sig <= 51 {
                self.w.write_bits((control << sig) | bits, sig + 13);
            } else {
                self.w.write_bits(control, 13);
                self.w.write_bits(bits, sig);
            }
        }
    }

    /// An iterator over a snapshot of this chunk's bytes.
    pub fn iter(&self) -> XorIterator<Vec<u8>> {
        XorIterator::new(self.w.buf.clone())
    }
}

fn put_uvarint(buf: &mut [u8; 10], mut x: u64) -> usize {
    let mut i = 0;
    while x >= 0x80 {
        buf[i] = (x as u8) | 0x80;
        x >>= 7;
        i += 1;
    }
    buf[i] = x as u8;
    i + 1
}

fn put_varint(buf: &mut [u8; 10], x: i64) -> usize {
    let ux = ((x as u64) << 1) ^ ((x >> 63) as u64);
    put_uvarint(buf, ux)
}

/// Decodes an XOR chunk. `B` owns or borrows the bytes, so query results can
/// hold the chunk data they read (`Arc<[u8]>`).
#[derive(Debug, Clone)]
pub struct XorIterator<B> {
    data: B,
    r: BitReader,
    total: u16,
    read: u16,
    t: Timestamp,
    v: u64,
    t_delta: u64,
    leading: u8,
    trailing: u8,
    err: Option<ChunkError>,
}

impl<B: AsRef<[u8]>> XorIterator<B> {
    /// An iterator over a complete chunk (header included).
    pub fn new(data: B) -> XorIterator<B> {
        let d = data.as_ref();
        let (total, len, err) = if d.len() < 2 {
            (0, 0, Some(ChunkError::TooShort(d.len())))
        } else {
            (u16::from_be_bytes([d[0], d[1]]), d.len() * 8, None)
        };
        XorIterator {
            data,
            // The sample stream starts after the two header bytes.
            r: BitReader { pos: 16, len },
            total,
            read: 0,
            t: Timestamp::MIN,
            v: 0,
            t_delta: 0,
            leading: 0,
            trailing: 0,
            err,
        }
    }

    /// Number of samples the header announces.
    pub fn num_samples(&self) -> u16 {
        self.total
    }

    /// The error that stopped iteration, if any.
    pub fn err(&self) -> Option<&ChunkError> {
        self.err.as_ref()
    }

    /// The current sample (valid after `next` returned true).
    #[inline]
    pub fn at(&self) -> (Timestamp, f64) {
        (self.t, f64::from_bits(self.v))
    }

    /// Number of samples decoded so far.
    pub fn position(&self) -> u16 {
        self.read
    }

    fn fail(&mut self) -> bool {
        self.err = Some(ChunkError::UnexpectedEnd { read: self.read, total: self.total });
        false
    }

    /// Advances to the next sample.
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> bool {
        if self.err.is_some() || self.read == self.total {
            return false;
        }
        let data = self.data.as_ref();
        if self.read == 0 {
            let Some(t) = self.r.read_varint(data) else {
                return self.fail();
            };
            let Some(v) = self.r.read_bits(data, 64) else {
                return self.fail();
            };
            self.t = t;
            self.v = v;
            self.read = 1;
            return true;
        }
        if self.read == 1 {
            let Some(d) = self.r.read_uvarint(data) else {
                return self.fail();
            };
            self.t_delta = d;
            self.t = self.t.wrapping_add(d as i64);
            return self.read_value();
        }
        // Delta-of-delta prefix: up to four bits, stopping at the first 0.
        let mut prefix = 0u8;
        for _ in 0..4 {
            prefix <<= 1;
            let Some(bit) = self.r.read_bit(data) else {
                return self.fail();
            };
            if !bit {
                break;
            }
            prefix |= 1;
        }
        let size = match prefix {
            0b0 => 0,
            0b10 => 14,
            0b110 => 17,
            0b1110 => 20,
            _ => 64,
        };
        let dod = if size == 0 {
            0i64
        } else {
            let Some(mut bits) = self.r.read_bits(data, size) else {
                return self.fail();
            };
            if size < 64 && bits > (1u64 << (size - 1)) {
                // Negative values come back as large unsigned numbers.
                bits = bits.wrapping_sub(1u64 << size);
            }
            bits as i64
        };
        self.t_delta = (self.t_delta as i64).wrapping_add(dod) as u64;
        self.t = self.t.wrapping_add(self.t_delta as i64);
        self.read_value()
    }

    #[inline]
    fn read_value(&mut self) -> bool {
        let data = self.data.as_ref();
        let Some(changed) = self.r.read_bit(data) else {
            return self.fail();
        };
        if changed {
            let Some(new_window) = self.r.read_bit(data) else {
                return self.fail();
            };
            if new_window {
                let (Some(leading), Some(sig)) = (self.r.read_bits(data, 5), self.r.read_bits(data, 6))
                else {
                    return self.fail();
                };
                let sig = if sig == 0 { 64 } else { sig as u8 };
                let leading = leading as u8;
                if leading as u32 + sig as u32 > 64 {
                    // Corrupt control bits; refuse rather than shift by a
                    // negative amount.
                    return self.fail();
                }
                self.leading = leading;
                self.trailing = 64 - leading - sig;
            }
            let n = 64 - self.leading as u32 - self.trailing as u32;
            let Some(bits) = self.r.read_bits(data, n) else {
                return self.fail();
            };
            self.v ^= bits << self.trailing;
        }
        self.read += 1;
        true
    }

    /// Advances to the first sample with timestamp ≥ `t`; stays put if the
    /// current sample already qualifies.
    pub fn seek(&mut self, t: Timestamp) -> bool {
        if self.err.is_some() {
            return false;
        }
        while self.read == 0 || self.t < t {
            if !self.next() {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Vec<(i64, u64)> {
        let mut it = XorIterator::new(bytes);
        let mut out = vec![];
        while it.next() {
            let (t, v) = it.at();
            out.push((t, v.to_bits()));
        }
        assert!(it.err().is_none(), "{:?}", it.err());
        out
    }

    /// Expected bytes derived by hand from the layout in the module docs.
    ///
    /// Samples: (1000, 1.0), (1015, 1.0), (1030, 2.0), (1046, 3.0).
    ///
    /// header: 4 samples                         -> 00 04
    /// s0: varint(1000) zig-zag = 2000 = 0x7d0
    ///     uvarint(2000): 0xd0 (low 7 bits 0x50 | 0x80), 0x0f -> d0 0f
    ///     1.0 = 0x3ff0000000000000                -> 3f f0 00 00 00 00 00 00
    /// s1: uvarint(15) = 0x0f                      -> 0f
    ///     value xor = 0 -> bit '0'
    /// s2: dod = 15 - 15 = 0 -> bit '0'
    ///     2.0 ^ 1.0 = 0x4000000000000000 ^ 0x3ff0000000000000
    ///               = 0x7ff0000000000000: leading 1, trailing 52, sig 11
    ///     '1' '1' leading=00001 sig=001011 bits=11111111111
    /// s3: dod = 16 - 15 = 1 -> '10' + 14 bits 00000000000001
    ///     3.0 ^ 2.0 = 0x4008000000000000 ^ 0x4000000000000000
    ///               = 0x0008000000000000: leading 12, trailing 51
    ///     12 >= 1 and 51 >= 52 fails -> new window:
    ///     '1' '1' leading=01100 sig=000001 bits=1
    ///
    /// Bit stream after the byte-aligned part (starting at byte 13), 56 bits:
    ///   s1 value '0', s2 dod '0', s2 value '11' 00001 001011 11111111111,
    ///   s3 dod '10' 00000000000001, s3 value '11' 01100 000001 1
    /// grouped in bytes:
    ///   0 0 11 0000       = 00110000 = 0x30
    ///   1 001011 1        = 10010111 = 0x97
    ///   11111111          = 0xff  (value bits 2..9)
    ///   11 10 0000        = 11100000 = 0xe0 (value bits 10..11, dod prefix)
    ///   00000000          = 0x00
    ///   01 11 0110        = 01110110 = 0x76
    ///   0 000001 1        = 00000011 = 0x03 (ends on a byte boundary)
    #[test]
    fn hand_derived_vector() {
        let samples = [(1000i64, 1.0f64), (1015, 1.0), (1030, 2.0), (1046, 3.0)];
        let mut c = XorChunk::new();
        for (t, v) in samples {
            c.append(t, v);
        }
        let expected: Vec<u8> = vec![
            0x00, 0x04, // count
            0xd0, 0x0f, // varint t0
            0x3f, 0xf0, 0, 0, 0, 0, 0, 0,    // v0
            0x0f, // uvarint delta
            0x30, 0x97, 0xff, 0xe0, 0x00, 0x76, 0x03,
        ];
        assert_eq!(c.bytes(), &expected[..]);
        let got = decode(&expected);
        let want: Vec<(i64, u64)> = samples.iter().map(|(t, v)| (*t, v.to_bits())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dod_bucket_edges() {
        // Deltas chosen so dods hit each bucket's asymmetric edges.
        let dods: [i64; 10] = [8192, -8191, 8193, 65536, -65535, 65537, 524288, -524287, 524289, -524288];
        let mut ts = vec![0i64, 10_000_000];
        let mut delta = 10_000_000i64;
        for d in dods {
            delta += d;
            let last = *ts.last().unwrap();
            ts.push(last + delta);
        }
        let mut c = XorChunk::new();
        for (i, t) in ts.iter().enumerate() {
            c.append(*t, i as f64);
        }
        let got: Vec<i64> = decode(c.bytes()).into_iter().map(|(t, _)| t).collect();
        assert_eq!(got, ts);
    }

    #[test]
    fn seek_and_truncated_data() {
        let mut c = XorChunk::new();
        for i in 0..100 {
            c.append(i * 15_000, i as f64 * 0.5);
        }
        let mut it = XorIterator::new(c.bytes().to_vec());
        assert!(it.seek(150_001));
        assert_eq!(it.at(), (165_000, 5.5));
        assert!(it.seek(0), "seek backwards stays");
        assert_eq!(it.at().0, 165_000);
        assert!(!it.seek(100 * 15_000));
        assert!(it.err().is_none());

        let bytes = c.bytes();
        let cut = &bytes[..bytes.len() - 5];
        let mut it = XorIterator::new(cut);
        let mut n = 0;
        while it.next() {
            n += 1;
        }
        assert!(n < 100);
        assert!(matches!(it.err(), Some(ChunkError::UnexpectedEnd { .. })));
        let mut it = XorIterator::new(&bytes[..1]);
        assert!(!it.next());
        assert_eq!(it.err(), Some(&ChunkError::TooShort(1)));
    }

    fn value_strategy() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(f64::NAN),
            Just(f64::from_bits(0x7ff0_0000_0000_0002)),
            Just(f64::INFINITY),
            Just(f64::NEG_INFINITY),
            Just(-0.0),
            Just(0.0),
            (0i64..1000).prop_map(|x| x as f64),
            any::<f64>(),
            any::<u64>().prop_map(f64::from_bits),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            start in any::<i64>().prop_map(|x| x >> 2),
            steps in proptest::collection::vec(prop_oneof![
                Just(15_000i64), 1i64..100, 1i64..100_000, 1i64..10_000_000_000
            ], 0..300),
            values in proptest::collection::vec(value_strategy(), 301),
        ) {
            let mut c = XorChunk::new();
            let mut want = vec![];
            let mut t = start;
            for (i, v) in values.iter().take(steps.len() + 1).enumerate() {
                if i > 0 {
                    t += steps[i - 1];
                }
                c.append(t, *v);
                want.push((t, v.to_bits()));
            }
            prop_assert_eq!(c.num_samples() as usize, want.len());
            prop_assert_eq!(decode(c.bytes()), want);
        }
    }
}
