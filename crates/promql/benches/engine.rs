//! Range-query evaluation over an in-memory columnar storage: 10k counter
//! series and 1k classic-histogram bucket series, 24h at 15s.
//!
//! `cargo bench -p ember-promql --bench engine`. Throughput is reported as
//! samples read by the query per second.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_model::{
    LabelHints, Labels, Matcher, Querier, Queryable, Sample, SelectHints, Series, SeriesSet, StorageError,
    Timestamp, VecSampleIterator,
};
use ember_promql::engine::{Engine, EngineOptions};
use ember_promql::parse;

const DAY: i64 = 86_400_000;
const SCRAPE: i64 = 15_000;

/// Series stored as label sets and immutable sample arrays.
struct Columnar {
    series: Vec<(Labels, Arc<[Sample]>)>,
}

struct ColumnarQuerier<'a> {
    db: &'a Columnar,
    mint: Timestamp,
    maxt: Timestamp,
}

struct Set<'a> {
    q: &'a ColumnarQuerier<'a>,
    matchers: Vec<Matcher>,
    next: usize,
}

impl Iterator for Set<'_> {
    type Item = Result<Series, StorageError>;
    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.q.db.series.len() {
            let (l, s) = &self.q.db.series[self.next];
            self.next += 1;
            if self.matchers.iter().all(|m| m.matches(l.get_or_empty(&m.name))) {
                let from = s.partition_point(|x| x.t < self.q.mint);
                let to = s.partition_point(|x| x.t <= self.q.maxt);
                if from < to {
                    return Some(Ok(Series {
                        labels: l.clone(),
                        samples: Box::new(VecSampleIterator::with_bounds(s.clone(), from, to)),
                    }));
                }
            }
        }
        None
    }
}

impl SeriesSet for Set<'_> {}

impl Querier for ColumnarQuerier<'_> {
    fn select(
        &self,
        _sorted: bool,
        _hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + '_>, StorageError> {
        Ok(Box::new(Set { q: self, matchers: matchers.to_vec(), next: 0 }))
    }
    fn label_values(&self, _: &str, _: &LabelHints, _: &[Matcher]) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
    fn label_names(&self, _: &LabelHints, _: &[Matcher]) -> Result<Vec<String>, StorageError> {
        Ok(Vec::new())
    }
}

impl Queryable for Columnar {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(ColumnarQuerier { db: self, mint, maxt }))
    }
}

fn counter(seed: u64, n: usize) -> Arc<[Sample]> {
    let mut v = 0.0;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|i| {
            // xorshift: increments of 0..15.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v += (x % 16) as f64;
            Sample { t: i as i64 * SCRAPE, v }
        })
        .collect()
}

fn build() -> Columnar {
    let n = (DAY / SCRAPE) as usize + 1;
    let mut series = Vec::new();
    for i in 0..10_000u64 {
        let job = format!("job{}", i % 10);
        let inst = format!("i{i}");
        let code = if i % 4 == 0 { "500" } else { "200" };
        let l = Labels::from_pairs(&[
            ("__name__", "x_total"),
            ("job", &job),
            ("instance", &inst),
            ("code", code),
        ]);
        series.push((l, counter(i, n)));
    }
    let les = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"];
    for i in 0..100u64 {
        let inst = format!("i{i}");
        let base = counter(1_000_000 + i, n);
        for (k, le) in les.iter().enumerate() {
            // Cumulative buckets: bucket k holds (k+1)/10 of the total.
            let frac = (k + 1) as f64 / les.len() as f64;
            let s: Arc<[Sample]> = base.iter().map(|s| Sample { t: s.t, v: (s.v * frac).floor() }).collect();
            let l = Labels::from_pairs(&[("__name__", "h_bucket"), ("instance", &inst), ("le", le)]);
            series.push((l, s));
        }
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    Columnar { series }
}

fn bench(c: &mut Criterion) {
    let db = build();
    let engine =
        Engine::new(EngineOptions { max_samples: usize::MAX, timeout: None, ..EngineOptions::default() });
    let samples_per_series = (DAY / SCRAPE) as u64 + 1;
    let mut g = c.benchmark_group("range_24h_1m");
    g.sample_size(10).measurement_time(Duration::from_secs(20)).warm_up_time(Duration::from_secs(1));
    for (name, q, series) in [
        ("sum_rate", "sum by (job) (rate(x_total[5m]))", 10_000u64),
        ("histogram_quantile", "histogram_quantile(0.99, sum by (le) (rate(h_bucket[5m])))", 1_000),
        ("rate_ratio", "sum(rate(x_total{code=\"500\"}[5m])) / sum(rate(x_total[5m]))", 12_500),
    ] {
        let expr = parse(q).unwrap();
        g.throughput(Throughput::Elements(series * samples_per_series));
        g.bench_function(name, |b| {
            b.iter(|| {
                let r = engine.range_query(&db, &expr, 0, DAY, 60_000).unwrap();
                assert!(!r.is_empty());
                r
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
