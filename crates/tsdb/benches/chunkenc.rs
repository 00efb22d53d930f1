//! XOR chunk encode/decode cost per sample.
#![allow(clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ember_tsdb::chunkenc::{XorChunk, XorIterator};

/// A realistic 120-sample chunk: 15s scrape with jitter, a counter-like
/// value with varying increments.
fn samples() -> Vec<(i64, f64)> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut t = 1_700_000_000_000i64;
    let mut v = 1000.0;
    (0..120)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += 15_000 + (x % 5) as i64 - 2;
            v += (x % 100) as f64;
            (t, v)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let s = samples();
    let mut g = c.benchmark_group("xor_chunk");
    g.throughput(Throughput::Elements(s.len() as u64));
    g.bench_function("encode_120", |b| {
        b.iter(|| {
            let mut c = XorChunk::new();
            for (t, v) in &s {
                c.append(*t, *v);
            }
            black_box(c.bytes().len())
        })
    });
    let mut c = XorChunk::new();
    for (t, v) in &s {
        c.append(*t, *v);
    }
    let bytes = c.bytes().to_vec();
    eprintln!(
        "xor chunk: {} samples in {} bytes ({:.2} bytes/sample)",
        s.len(),
        bytes.len(),
        bytes.len() as f64 / s.len() as f64
    );
    g.bench_function("decode_120", |b| {
        b.iter(|| {
            let mut it = XorIterator::new(&bytes[..]);
            let mut sum = 0.0;
            while it.next() {
                sum += it.at().1;
            }
            black_box(sum)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
