//! Matcher throughput: fast paths versus the general regex engine.
#![allow(clippy::unwrap_used)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use ember_model::{MatchOp, Matcher};

fn bench(c: &mut Criterion) {
    let values: Vec<String> = (0..1000).map(|i| format!("value-{i}-suffix")).collect();
    let cases = [
        ("literal", "value-500-suffix"),
        ("set", "value-1-suffix|value-2-suffix|value-3-suffix"),
        ("prefix", "value-5.*"),
        ("contains", ".*-50.*"),
        ("general", "value-[0-9]+-suf+ix"),
    ];
    for (name, re) in cases {
        let m = Matcher::new(MatchOp::RegexMatch, "a", re).unwrap();
        c.bench_function(&format!("matcher/{name}/1000_values"), |b| {
            b.iter(|| values.iter().filter(|v| m.matches(black_box(v))).count())
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
