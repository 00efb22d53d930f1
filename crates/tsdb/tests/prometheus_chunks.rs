//! Byte compatibility of XOR chunks with Prometheus: promtool writes a block
//! from OpenMetrics input; every chunk in it must decode to the input
//! samples, and re-encoding those samples must reproduce the chunk bytes
//! exactly. Skipped when promtool is not installed.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use ember_tsdb::chunkenc::{XorChunk, XorIterator, ENCODING_XOR};

fn uvarint(b: &[u8], pos: &mut usize) -> u64 {
    let mut x = 0u64;
    let mut s = 0;
    loop {
        let c = b[*pos];
        *pos += 1;
        x |= ((c & 0x7f) as u64) << s;
        if c < 0x80 {
            return x;
        }
        s += 7;
    }
}

#[test]
fn promtool_block_chunks_round_trip_bytewise() {
    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Values exercise every XOR control case; timestamps have irregular
    // gaps so every delta-of-delta bucket is used.
    let mut input = String::from("# TYPE m gauge\n");
    let mut want: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for series in 0..4 {
        let mut t = 1_700_000_000_000i64;
        let mut v = 100.0f64;
        for i in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += match x % 7 {
                0 => 15_000,
                1 => 15_001,
                2 => 14_000,
                3 => 30_000 + (x % 3000) as i64,
                4 => 15_000 - (x % 9000) as i64,
                5 => 600_000,
                _ => 15_000,
            };
            v = match (series, x % 5) {
                (0, _) => v + 1.0,
                (1, 0) => v,
                (1, _) => v * 1.0001 + (i as f64) * 0.25,
                (2, k) => (k as f64) * 1e-3 - 7.5,
                _ => f64::from_bits(x >> 2) % 1e12,
            };
            let _ = writeln!(input, "m{{s=\"{series}\"}} {v:?} {}.{:03}", t / 1000, t % 1000);
            want.entry(series.to_string()).or_default().push((t, v.to_bits()));
        }
    }
    input.push_str("# EOF\n");
    let om = dir.path().join("in.om");
    std::fs::write(&om, input).unwrap();
    let out_dir = dir.path().join("blocks");
    let out = std::process::Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let mut chunks = 0;
    let mut samples: Vec<(i64, u64)> = vec![];
    for block in std::fs::read_dir(&out_dir).unwrap() {
        let seg = block.unwrap().path().join("chunks/000001");
        let b = std::fs::read(&seg).unwrap();
        assert_eq!(&b[..4], &0x85BD_40DDu32.to_be_bytes(), "chunks file magic");
        let mut pos = 8;
        while pos < b.len() {
            let len = uvarint(&b, &mut pos) as usize;
            let enc = b[pos];
            pos += 1;
            let data = &b[pos..pos + len];
            pos += len + 4; // data + CRC32
            assert_eq!(enc, ENCODING_XOR);
            let mut it = XorIterator::new(data);
            let mut re = XorChunk::new();
            while it.next() {
                let (t, v) = it.at();
                re.append(t, v);
                samples.push((t, v.to_bits()));
            }
            assert!(it.err().is_none());
            assert_eq!(re.bytes(), data, "re-encoding chunk {chunks} gives Prometheus's bytes");
            chunks += 1;
        }
    }
    assert!(chunks >= 8, "several chunks per series: {chunks}");
    let mut all: Vec<(i64, u64)> = want.into_values().flatten().collect();
    all.sort_unstable();
    samples.sort_unstable();
    assert_eq!(samples, all);
}
