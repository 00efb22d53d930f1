//! Head hot paths: appends into existing series, selection by matchers,
//! and WAL replay.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ember_model::{Appendable, Labels, Matcher, Queryable, SelectHints, SeriesRef};
use ember_tsdb::{Db, DbOptions, Head, HeadOptions, SyncPolicy, WalOptions};

fn series_labels(i: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", format!("metric_{}", i % 10)),
        ("group", format!("g{}", (i / 10) % 10)),
        ("instance", format!("host-{i}.example.org:9100")),
        ("job", "node".to_string()),
    ])
}

const APPEND_SERIES: usize = 10_000;

fn append(c: &mut Criterion) {
    let mut g = c.benchmark_group("head_append");
    g.throughput(Throughput::Elements(APPEND_SERIES as u64));
    let labels: Vec<Labels> = (0..APPEND_SERIES).map(series_labels).collect();

    let head = Head::new(HeadOptions::default());
    let mut refs: Vec<SeriesRef> = Vec::new();
    let mut app = head.appender();
    for l in &labels {
        refs.push(app.append(None, l, 0, 0.0).unwrap());
    }
    app.commit().unwrap();
    let mut t = 0i64;
    g.bench_function("existing_series_no_wal", |b| {
        b.iter(|| {
            t += 15_000;
            let mut app = head.appender();
            for (r, l) in refs.iter().zip(&labels) {
                app.append(Some(*r), l, t, t as f64).unwrap();
            }
            black_box(app.commit().unwrap())
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        wal: WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() },
        ..DbOptions::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let mut refs: Vec<SeriesRef> = Vec::new();
    let mut app = db.appender();
    for l in &labels {
        refs.push(app.append(None, l, 0, 0.0).unwrap());
    }
    app.commit().unwrap();
    let mut t = 0i64;
    g.bench_function("existing_series_wal", |b| {
        b.iter(|| {
            t += 15_000;
            let mut app = db.appender();
            for (r, l) in refs.iter().zip(&labels) {
                app.append(Some(*r), l, t, t as f64).unwrap();
            }
            black_box(app.commit().unwrap())
        })
    });
    g.finish();
}

fn select(c: &mut Criterion) {
    let n: usize =
        std::env::var("EMBER_BENCH_SELECT_SERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let head = Head::new(HeadOptions::default());
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let mut app = head.appender();
        for &i in chunk {
            app.append(None, &series_labels(i), 1000, 1.0).unwrap();
        }
        app.commit().unwrap();
    }
    eprintln!("select setup: {n} series in {:?}", start.elapsed());
    // metric_3 (n/10 series) ∩ group g5 (n/10 series) = n/100 series.
    let ms = [Matcher::equal("__name__", "metric_3"), Matcher::equal("group", "g5")];
    let q = head.querier(0, 2000).unwrap();
    assert_eq!(q.select(true, &SelectHints::default(), &ms).unwrap().count(), n / 100);
    let mut g = c.benchmark_group("head_select");
    g.sample_size(20);
    g.bench_function(format!("{}_of_{n}_two_matchers_sorted", n / 100), |b| {
        b.iter(|| {
            let set = q.select(true, &SelectHints::default(), &ms).unwrap();
            black_box(set.count())
        })
    });
    let ms_re = [
        Matcher::equal("__name__", "metric_3"),
        Matcher::new(ember_model::MatchOp::RegexMatch, "group", "g5|g6").unwrap(),
    ];
    g.bench_function(format!("{}_of_{n}_eq_and_regex_set_sorted", n / 50), |b| {
        b.iter(|| {
            let set = q.select(true, &SelectHints::default(), &ms_re).unwrap();
            black_box(set.count())
        })
    });
    g.finish();
}

fn replay(c: &mut Criterion) {
    let series: usize =
        std::env::var("EMBER_BENCH_REPLAY_SERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    // 30 minutes at a 15s interval.
    let samples_per_series = 120i64;
    let dir = tempfile::tempdir().unwrap();
    let opts = DbOptions {
        wal: WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() },
        ..DbOptions::default()
    };
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        let labels: Vec<Labels> = (0..series).map(series_labels).collect();
        let mut refs: Vec<Option<SeriesRef>> = vec![None; series];
        for s in 0..samples_per_series {
            // One scrape-sized batch per 1000 series.
            for (chunk_l, chunk_r) in labels.chunks(1000).zip(refs.chunks_mut(1000)) {
                let mut app = db.appender();
                for (l, r) in chunk_l.iter().zip(chunk_r.iter_mut()) {
                    *r = Some(app.append(*r, l, s * 15_000, (s * 3) as f64).unwrap());
                }
                app.commit().unwrap();
            }
        }
    }
    let total = series as u64 * samples_per_series as u64;
    let mut g = c.benchmark_group("wal_replay");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(total));
    let wal = dir.path().join("wal");
    for workers in [1usize, 2] {
        g.bench_function(format!("{series}_series_x_{samples_per_series}_samples_{workers}_workers"), |b| {
            b.iter_custom(|iters| {
                let mut d = Duration::ZERO;
                for _ in 0..iters {
                    let head = Head::new(HeadOptions::default());
                    let start = Instant::now();
                    let stats = ember_tsdb::db::replay_with_workers(&head, &wal, workers).unwrap();
                    d += start.elapsed();
                    assert_eq!(stats.samples, total);
                    drop(head);
                }
                d
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append, select, replay);
criterion_main!(benches);
