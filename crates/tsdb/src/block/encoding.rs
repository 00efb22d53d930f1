//! Byte-level helpers for the block formats: big-endian fixed-width
//! integers, Go-style varints (`encoding/binary`), CRC32-Castagnoli, and a
//! bounds-checked decoder that turns every short read into an error instead
//! of a panic (block files come from disk and may be damaged).

use super::BlockError;

/// CRC32 with the Castagnoli polynomial, as every Prometheus format uses.
pub fn crc32(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// Appends to a growing byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Encbuf {
    pub b: Vec<u8>,
}

impl Encbuf {
    pub fn new() -> Encbuf {
        Encbuf::default()
    }
    pub fn len(&self) -> usize {
        self.b.len()
    }
    pub fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    pub fn reset(&mut self) {
        self.b.clear();
    }
    pub fn put_byte(&mut self, v: u8) {
        self.b.push(v);
    }
    pub fn put_be32(&mut self, v: u32) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_be64(&mut self, v: u64) {
        self.b.extend_from_slice(&v.to_be_bytes());
    }
    pub fn put_uvarint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.b.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.b.push(v as u8);
    }
    /// Zig-zag signed varint, as Go's `binary.PutVarint`.
    pub fn put_varint(&mut self, v: i64) {
        self.put_uvarint(((v << 1) ^ (v >> 63)) as u64);
    }
    pub fn put_uvarint_str(&mut self, s: &str) {
        self.put_uvarint(s.len() as u64);
        self.b.extend_from_slice(s.as_bytes());
    }
    pub fn put_bytes(&mut self, s: &[u8]) {
        self.b.extend_from_slice(s);
    }
    /// Appends the CRC32 of `self.b[from..]`.
    pub fn put_crc_of_tail(&mut self, from: usize) {
        let c = crc32(&self.b[from..]);
        self.put_be32(c);
    }
}

/// Reads from a byte slice; every read is bounds-checked.
#[derive(Debug, Clone, Copy)]
pub struct Decbuf<'a> {
    b: &'a [u8],
}

fn short() -> BlockError {
    BlockError::Corrupt("unexpected end of data".into())
}

impl<'a> Decbuf<'a> {
    pub fn new(b: &'a [u8]) -> Decbuf<'a> {
        Decbuf { b }
    }
    pub fn remaining(&self) -> usize {
        self.b.len()
    }
    pub fn rest(&self) -> &'a [u8] {
        self.b
    }
    pub fn skip(&mut self, n: usize) -> Result<(), BlockError> {
        if n > self.b.len() {
            return Err(short());
        }
        self.b = &self.b[n..];
        Ok(())
    }
    pub fn byte(&mut self) -> Result<u8, BlockError> {
        let (&v, rest) = self.b.split_first().ok_or_else(short)?;
        self.b = rest;
        Ok(v)
    }
    pub fn be32(&mut self) -> Result<u32, BlockError> {
        let s = self.bytes(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
    pub fn be64(&mut self) -> Result<u64, BlockError> {
        let s = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }
    pub fn uvarint(&mut self) -> Result<u64, BlockError> {
        let mut v = 0u64;
        let mut shift = 0u32;
        for i in 0..10 {
            let c = *self.b.get(i).ok_or_else(short)?;
            if c < 0x80 {
                if i == 9 && c > 1 {
                    return Err(BlockError::Corrupt("varint overflows 64 bits".into()));
                }
                self.b = &self.b[i + 1..];
                return Ok(v | (u64::from(c) << shift));
            }
            v |= u64::from(c & 0x7f) << shift;
            shift += 7;
        }
        Err(BlockError::Corrupt("varint overflows 64 bits".into()))
    }
    pub fn varint(&mut self) -> Result<i64, BlockError> {
        let u = self.uvarint()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    pub fn uvarint32(&mut self) -> Result<u32, BlockError> {
        let v = self.uvarint()?;
        u32::try_from(v).map_err(|_| BlockError::Corrupt("value does not fit 32 bits".into()))
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], BlockError> {
        if n > self.b.len() {
            return Err(short());
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub fn uvarint_bytes(&mut self) -> Result<&'a [u8], BlockError> {
        let n = self.uvarint()?;
        let n = usize::try_from(n).map_err(|_| short())?;
        self.bytes(n)
    }
    pub fn uvarint_str(&mut self) -> Result<&'a str, BlockError> {
        let b = self.uvarint_bytes()?;
        std::str::from_utf8(b).map_err(|_| BlockError::Corrupt("string is not valid UTF-8".into()))
    }
}

/// Reads a `len <4b> | body | CRC32 <4b>` section at `off` and returns the
/// checked body.
pub fn section_be32<'a>(file: &'a [u8], off: usize, what: &str) -> Result<&'a [u8], BlockError> {
    let mut d = Decbuf::new(
        file.get(off..).ok_or_else(|| BlockError::Corrupt(format!("{what}: offset {off} beyond file")))?,
    );
    let len = d.be32()? as usize;
    let body =
        d.bytes(len).map_err(|_| BlockError::Corrupt(format!("{what}: section of {len} bytes truncated")))?;
    let want = d.be32().map_err(|_| BlockError::Corrupt(format!("{what}: checksum missing")))?;
    if crc32(body) != want {
        return Err(BlockError::Corrupt(format!("{what}: checksum mismatch")));
    }
    Ok(body)
}

/// Reads a `len <uvarint> | body | CRC32 <4b>` entry (a series) at `off`.
pub fn section_uvarint<'a>(file: &'a [u8], off: usize, what: &str) -> Result<&'a [u8], BlockError> {
    let mut d = Decbuf::new(
        file.get(off..).ok_or_else(|| BlockError::Corrupt(format!("{what}: offset {off} beyond file")))?,
    );
    let len = d.uvarint()? as usize;
    let body =
        d.bytes(len).map_err(|_| BlockError::Corrupt(format!("{what}: entry of {len} bytes truncated")))?;
    let want = d.be32()?;
    if crc32(body) != want {
        return Err(BlockError::Corrupt(format!("{what}: checksum mismatch")));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_match_go() {
        // Go: binary.PutUvarint(300) = [0xac, 0x02]; PutVarint(-1) = [0x01]; PutVarint(1) = [0x02].
        let mut e = Encbuf::new();
        e.put_uvarint(300);
        e.put_varint(-1);
        e.put_varint(1);
        e.put_varint(i64::MIN);
        e.put_uvarint(u64::MAX);
        assert_eq!(&e.b[..4], &[0xac, 0x02, 0x01, 0x02]);
        let mut d = Decbuf::new(&e.b);
        assert_eq!(d.uvarint().unwrap(), 300);
        assert_eq!(d.varint().unwrap(), -1);
        assert_eq!(d.varint().unwrap(), 1);
        assert_eq!(d.varint().unwrap(), i64::MIN);
        assert_eq!(d.uvarint().unwrap(), u64::MAX);
        assert!(d.byte().is_err());
    }

    #[test]
    fn short_reads_are_errors() {
        let mut d = Decbuf::new(&[0x80, 0x80]);
        assert!(d.uvarint().is_err());
        let mut d = Decbuf::new(&[1, 2, 3]);
        assert!(d.be32().is_err());
        let over = [0xffu8; 11];
        assert!(Decbuf::new(&over).uvarint().is_err());
    }

    #[test]
    fn castagnoli() {
        // Standard check value for CRC-32C.
        assert_eq!(crc32(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn checked_sections() {
        let mut e = Encbuf::new();
        e.put_be32(3);
        e.put_bytes(b"abc");
        e.put_crc_of_tail(4);
        assert_eq!(section_be32(&e.b, 0, "t").unwrap(), b"abc");
        e.b[5] ^= 1;
        assert!(section_be32(&e.b, 0, "t").is_err());
        assert!(section_be32(&e.b, 100, "t").is_err());
    }
}
