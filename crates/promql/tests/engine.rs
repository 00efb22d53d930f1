//! Evaluation against the in-memory storage. Expected values are worked
//! out by hand from Prometheus's documented semantics.

#![allow(clippy::unwrap_used)]

use ember_model::{memory::MemStorage, stale_nan, Labels};
use ember_promql::engine::{Engine, EngineOptions, EvalError, Value};
use ember_promql::parse;

const M: i64 = 60_000;

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

/// `http_requests{job, instance}` counters increasing by 1 every 10s from
/// 0s to 600s (value = t/10 * factor), a gauge `g` and a few odd series.
fn storage() -> MemStorage {
    let s = MemStorage::new();
    for (job, inst, factor) in [("api", "a", 1.0), ("api", "b", 2.0), ("db", "a", 3.0)] {
        let lb = l(&[("__name__", "http_requests"), ("job", job), ("instance", inst)]);
        for t in (0..=600).step_by(10) {
            s.add(&lb, t * 1000, t as f64 / 10.0 * factor).unwrap();
        }
    }
    // Gauge sampled every minute: 0..=10.
    for i in 0..=10 {
        s.add(&l(&[("__name__", "g")]), i * M, i as f64).unwrap();
    }
    // A series that goes stale at 5m.
    let st = l(&[("__name__", "stale_me")]);
    s.add(&st, 0, 1.0).unwrap();
    s.add(&st, 4 * M, 2.0).unwrap();
    s.add(&st, 5 * M, stale_nan()).unwrap();
    // A counter with a reset.
    let r = l(&[("__name__", "resets_me")]);
    for (i, v) in [0.0, 10.0, 20.0, 5.0, 15.0].into_iter().enumerate() {
        s.add(&r, i as i64 * 15_000, v).unwrap();
    }
    // One-side series for vector matching.
    s.add(&l(&[("__name__", "job_info"), ("job", "api"), ("team", "x")]), 0, 1.0).unwrap();
    s.add(&l(&[("__name__", "job_info"), ("job", "db"), ("team", "y")]), 0, 1.0).unwrap();
    s
}

fn instant(s: &MemStorage, q: &str, t: i64) -> Result<Value, EvalError> {
    Engine::default().instant_query(s, &parse(q).unwrap(), t)
}

/// The instant result as sorted `(labels, value)` strings.
fn vec_at(s: &MemStorage, q: &str, t: i64) -> Vec<(String, f64)> {
    match instant(s, q, t).unwrap() {
        Value::Vector(v) => {
            for x in &v {
                assert_eq!(x.t, t, "instant samples carry the evaluation time");
            }
            let mut out: Vec<(String, f64)> = v.into_iter().map(|x| (x.metric.to_string(), x.v)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("{q}: expected a vector, got {other:?}"),
    }
}

fn one(s: &MemStorage, q: &str, t: i64) -> f64 {
    let v = vec_at(s, q, t);
    assert_eq!(v.len(), 1, "{q}: {v:?}");
    v[0].1
}

fn scalar(s: &MemStorage, q: &str, t: i64) -> f64 {
    match instant(s, q, t).unwrap() {
        Value::Scalar(st, v) => {
            assert_eq!(st, t);
            v
        }
        other => panic!("{q}: expected a scalar, got {other:?}"),
    }
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

#[test]
fn lookback_excludes_its_left_boundary() {
    let s = storage();
    assert_eq!(one(&s, "g", 10 * M), 10.0);
    assert_eq!(one(&s, "g", 10 * M + 30_000), 10.0);
    assert_eq!(one(&s, "g", 15 * M - 1), 10.0);
    assert!(vec_at(&s, "g", 15 * M).is_empty(), "sample exactly lookback old is out");
    let opts = EngineOptions { lookback_delta: 60_000, ..EngineOptions::default() };
    let v = Engine::new(opts).instant_query(&s, &parse("g").unwrap(), 10 * M + 61_000).unwrap();
    assert_eq!(v, Value::Vector(vec![]));
}

#[test]
fn staleness_marker_ends_a_series() {
    let s = storage();
    assert_eq!(one(&s, "stale_me", 4 * M + 30_000), 2.0);
    assert!(vec_at(&s, "stale_me", 5 * M).is_empty());
    assert!(vec_at(&s, "stale_me", 5 * M + 30_000).is_empty());
    // Range selectors drop the marker itself.
    assert_eq!(one(&s, "count_over_time(stale_me[10m])", 6 * M), 2.0);
}

#[test]
fn offset_and_at() {
    let s = storage();
    assert_eq!(one(&s, "g offset 5m", 10 * M), 5.0);
    assert_eq!(one(&s, "g offset -2m", 3 * M), 5.0);
    assert_eq!(one(&s, "g @ 120", 10 * M), 2.0);
    assert_eq!(one(&s, "g @ 180 offset 1m", 0), 2.0);
    assert_eq!(one(&s, "g @ start()", 7 * M), 7.0);
    assert_eq!(one(&s, "sum_over_time(g[3m] @ 300)", 9 * M), 3.0 + 4.0 + 5.0);
}

#[test]
fn selectors_and_names() {
    let s = storage();
    let v = vec_at(&s, r#"http_requests{job="api"}"#, 300_000);
    assert_eq!(
        v,
        vec![
            (r#"{__name__="http_requests", instance="a", job="api"}"#.to_owned(), 30.0),
            (r#"{__name__="http_requests", instance="b", job="api"}"#.to_owned(), 60.0),
        ]
    );
    assert_eq!(vec_at(&s, r#"{__name__=~"http_.*", instance="a"}"#, 300_000).len(), 2);
    assert!(vec_at(&s, "nonexistent", 300_000).is_empty());
    // Arithmetic drops the name, comparisons keep it.
    assert_eq!(vec_at(&s, "g + 1", 2 * M), vec![("{}".to_owned(), 3.0)]);
    assert_eq!(vec_at(&s, "-g", 2 * M), vec![("{}".to_owned(), -2.0)]);
    assert_eq!(vec_at(&s, "g > 1", 2 * M), vec![(r#"{__name__="g"}"#.to_owned(), 2.0)]);
    assert_eq!(vec_at(&s, "g > bool 1", 2 * M), vec![("{}".to_owned(), 1.0)]);
    assert_eq!(vec_at(&s, "g < bool 1", 2 * M), vec![("{}".to_owned(), 0.0)]);
    assert!(vec_at(&s, "g > 5", 2 * M).is_empty());
    // The vector's value is kept when the scalar is on the left.
    assert_eq!(vec_at(&s, "1 < g", 2 * M), vec![(r#"{__name__="g"}"#.to_owned(), 2.0)]);
}

#[test]
fn scalars_and_literals() {
    let s = storage();
    assert_eq!(scalar(&s, "1 + 2 * 3", 0), 7.0);
    assert_eq!(scalar(&s, "2 ^ 3 ^ 2", 0), 512.0);
    assert_eq!(scalar(&s, "-2 ^ 2", 0), -4.0);
    assert_eq!(scalar(&s, "7 % 4", 0), 3.0);
    assert_eq!(scalar(&s, "-7 % 4", 0), -3.0);
    assert_eq!(scalar(&s, "1 == bool 1", 0), 1.0);
    assert_eq!(scalar(&s, "5m", 0), 300.0);
    assert_eq!(scalar(&s, "time()", 90_500), 90.5);
    assert_eq!(scalar(&s, "scalar(g)", 3 * M), 3.0);
    assert!(scalar(&s, "scalar(http_requests)", 3 * M).is_nan());
    assert_eq!(instant(&s, "\"hi\"", 5).unwrap(), Value::String(5, "hi".into()));
}

#[test]
fn counters() {
    let s = storage();
    // Window (240s, 300s]: samples 25..30 at 250..300s; extrapolated to
    // the window start: 5 * (50 + 10) / 50 = 6 over 60s.
    assert!(approx(one(&s, r#"rate(http_requests{job="db"}[1m])"#, 300_000), 0.3));
    assert!(approx(one(&s, r#"increase(http_requests{instance="b"}[1m])"#, 300_000), 12.0));
    assert!(approx(one(&s, r#"irate(http_requests{job="db"}[1m])"#, 300_000), 0.3));
    assert!(approx(one(&s, r#"idelta(http_requests{job="db"}[1m])"#, 300_000), 3.0));
    assert!(approx(one(&s, "delta(g[3m])", 5 * M), 2.0 * (120.0 + 60.0) / 120.0));
    // Reset: 0 10 20 5 15 at 0..60s counts as 0 -> 35; a counter starting
    // at 0 is not extrapolated before its first sample.
    assert!(approx(one(&s, "increase(resets_me[61s])", 60_000), 35.0));
    // Starting at 10 (window from 15s): 25 over 45s, extrapolated by 1s at
    // the start (not the 4.5s to zero).
    assert!(approx(one(&s, "increase(resets_me[46s])", 60_000), 25.0 * (45.0 + 1.0) / 45.0));
    assert_eq!(one(&s, "resets(resets_me[2m])", 60_000), 1.0);
    assert_eq!(one(&s, "changes(resets_me[2m])", 60_000), 4.0);
    // Fewer than two samples: no result.
    assert!(vec_at(&s, "rate(g[1m])", 5 * M).is_empty());
    assert!(approx(one(&s, "deriv(g[5m])", 5 * M), 1.0 / 60.0));
    assert!(approx(one(&s, "predict_linear(g[5m], 60)", 5 * M), 6.0));
}

#[test]
fn over_time_functions() {
    let s = storage();
    // g at 2..=5 minutes for window (1m, 5m].
    assert_eq!(one(&s, "sum_over_time(g[4m])", 5 * M), 14.0);
    assert_eq!(one(&s, "avg_over_time(g[4m])", 5 * M), 3.5);
    assert_eq!(one(&s, "count_over_time(g[4m])", 5 * M), 4.0);
    assert_eq!(one(&s, "min_over_time(g[4m])", 5 * M), 2.0);
    assert_eq!(one(&s, "max_over_time(g[4m])", 5 * M), 5.0);
    assert_eq!(one(&s, "present_over_time(g[4m])", 5 * M), 1.0);
    assert!(approx(one(&s, "stdvar_over_time(g[4m])", 5 * M), 1.25));
    assert!(approx(one(&s, "stddev_over_time(g[4m])", 5 * M), 1.25f64.sqrt()));
    assert_eq!(one(&s, "quantile_over_time(0.5, g[4m])", 5 * M), 3.5);
    assert_eq!(vec_at(&s, "last_over_time(g[4m])", 5 * M), vec![(r#"{__name__="g"}"#.to_owned(), 5.0)]);
    assert_eq!(vec_at(&s, "max_over_time(g[4m])", 5 * M)[0].0, "{}");
    assert!(vec_at(&s, "absent_over_time(g[4m])", 5 * M).is_empty());
    assert_eq!(
        vec_at(&s, r#"absent_over_time(nope{a="b"}[4m])"#, 5 * M),
        vec![(r#"{a="b"}"#.to_owned(), 1.0)]
    );
}

#[test]
fn instant_functions() {
    let s = storage();
    assert_eq!(one(&s, "abs(-g)", 3 * M), 3.0);
    assert_eq!(one(&s, "sqrt(g)", 4 * M), 2.0);
    assert_eq!(one(&s, "clamp(g, 2, 4)", 9 * M), 4.0);
    assert_eq!(one(&s, "clamp_min(g, 5)", M), 5.0);
    assert!(vec_at(&s, "clamp(g, 5, 1)", M).is_empty());
    assert_eq!(one(&s, "round(g / 4)", 3 * M), 1.0);
    assert_eq!(one(&s, "round(g / 3, 0.5)", 4 * M), 1.5);
    assert_eq!(one(&s, "timestamp(g)", 3 * M + 20_000), 180.0);
    assert_eq!(one(&s, "timestamp(g + 1)", 3 * M + 20_000), 200.0);
    assert_eq!(one(&s, "vector(2)", 0), 2.0);
    assert_eq!(one(&s, "year(vector(0))", 0), 1970.0);
    assert_eq!(one(&s, "day_of_week(vector(0))", 0), 4.0);
    assert_eq!(one(&s, "days_in_month(vector(1709251200))", 0), 31.0);
    assert_eq!(one(&s, "month(vector(1709164800))", 0), 2.0);
    assert_eq!(one(&s, "day_of_year(vector(1709164800))", 0), 60.0);
    assert_eq!(one(&s, "hour()", 7_500_000), 2.0);
    assert_eq!(vec_at(&s, "absent(nope{job=\"x\", a=~\"y\"})", 0), vec![(r#"{job="x"}"#.to_owned(), 1.0)]);
    assert!(vec_at(&s, "absent(g)", 0).is_empty());
    assert_eq!(
        vec_at(&s, r#"label_replace(g, "dst", "x-$1", "__name__", "(.)")"#, M)[0].0,
        r#"{__name__="g", dst="x-g"}"#
    );
    assert_eq!(
        vec_at(&s, r#"label_replace(g, "dst", "x-$1", "__name__", "nomatch")"#, M)[0].0,
        r#"{__name__="g"}"#
    );
    assert_eq!(
        vec_at(&s, r#"label_join(job_info, "both", "/", "job", "team")"#, M),
        vec![
            (r#"{__name__="job_info", both="api/x", job="api", team="x"}"#.to_owned(), 1.0),
            (r#"{__name__="job_info", both="db/y", job="db", team="y"}"#.to_owned(), 1.0)
        ]
    );
    match instant(&s, "sort_desc(http_requests)", 100_000).unwrap() {
        Value::Vector(v) => assert_eq!(v.iter().map(|x| x.v).collect::<Vec<_>>(), vec![30.0, 20.0, 10.0]),
        other => panic!("{other:?}"),
    }
    match instant(&s, "sort(http_requests)", 100_000).unwrap() {
        Value::Vector(v) => assert_eq!(v.iter().map(|x| x.v).collect::<Vec<_>>(), vec![10.0, 20.0, 30.0]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn duplicate_labelsets_are_errors() {
    let s = storage();
    let err = instant(&s, "rate(http_requests[1m]) or abs(http_requests)", 300_000);
    assert!(err.is_ok(), "or keeps the left side only for matching signatures");
    let err = instant(&s, r#"abs({__name__=~"g|stale_me"})"#, 2 * M).unwrap_err();
    assert_eq!(err.to_string(), "vector cannot contain metrics with the same labelset");
}

#[test]
fn aggregations() {
    let s = storage();
    let t = 100_000; // values: api/a 10, api/b 20, db/a 30
    assert_eq!(vec_at(&s, "sum(http_requests)", t), vec![("{}".to_owned(), 60.0)]);
    assert_eq!(
        vec_at(&s, "sum by (job) (http_requests)", t),
        vec![(r#"{job="api"}"#.to_owned(), 30.0), (r#"{job="db"}"#.to_owned(), 30.0)]
    );
    assert_eq!(
        vec_at(&s, "sum without (instance) (http_requests)", t),
        vec![(r#"{job="api"}"#.to_owned(), 30.0), (r#"{job="db"}"#.to_owned(), 30.0)]
    );
    assert_eq!(vec_at(&s, "avg(http_requests)", t), vec![("{}".to_owned(), 20.0)]);
    assert_eq!(vec_at(&s, "count(http_requests)", t), vec![("{}".to_owned(), 3.0)]);
    assert_eq!(vec_at(&s, "min(http_requests)", t), vec![("{}".to_owned(), 10.0)]);
    assert_eq!(vec_at(&s, "max by (instance) (http_requests)", t)[0], (r#"{instance="a"}"#.to_owned(), 30.0));
    assert_eq!(vec_at(&s, "group by (job) (http_requests)", t).len(), 2);
    assert!(approx(vec_at(&s, "stdvar(http_requests)", t)[0].1, 200.0 / 3.0));
    assert!(approx(vec_at(&s, "stddev(http_requests)", t)[0].1, (200.0f64 / 3.0).sqrt()));
    assert_eq!(vec_at(&s, "quantile(0.5, http_requests)", t)[0].1, 20.0);
    assert_eq!(vec_at(&s, "quantile(0.25, http_requests)", t)[0].1, 15.0);
    let top = vec_at(&s, "topk(2, http_requests)", t);
    assert_eq!(top.iter().map(|x| x.1).collect::<Vec<_>>(), vec![30.0, 20.0]);
    assert!(top[0].0.contains("__name__"), "topk keeps the input labels");
    assert_eq!(vec_at(&s, "bottomk by (job) (1, http_requests)", t).len(), 2);
    assert!(vec_at(&s, "topk(0, http_requests)", t).is_empty());
    assert_eq!(vec_at(&s, r#"count_values("v", job_info)"#, t), vec![(r#"{v="1"}"#.to_owned(), 2.0)]);
}

#[test]
fn vector_matching() {
    let s = storage();
    let t = 100_000;
    assert_eq!(
        vec_at(&s, r#"http_requests{instance="a"} + on(job) group_left(team) job_info"#, t),
        vec![
            (r#"{instance="a", job="api", team="x"}"#.to_owned(), 11.0),
            (r#"{instance="a", job="db", team="y"}"#.to_owned(), 31.0)
        ]
    );
    assert_eq!(
        vec_at(&s, r#"job_info * on(job) group_right http_requests{job="db"}"#, t),
        vec![(r#"{instance="a", job="db"}"#.to_owned(), 30.0)]
    );
    assert_eq!(
        vec_at(&s, r#"http_requests{instance="a"} - ignoring(instance) http_requests{instance="b"}"#, t),
        vec![(r#"{job="api"}"#.to_owned(), -10.0)]
    );
    assert_eq!(vec_at(&s, r#"sum(http_requests) / on() sum(job_info)"#, t), vec![("{}".to_owned(), 30.0)]);
    let err = instant(&s, "http_requests + on(job) job_info", t).unwrap_err();
    assert_eq!(
        err.to_string(),
        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
    );
    let err = instant(&s, "job_info + on(job) group_left http_requests", t).unwrap_err();
    assert!(err.to_string().starts_with(
        r#"found duplicate series for the match group {job="api"} on the right hand-side of the operation: "#
    ));
    // Set operators.
    assert_eq!(vec_at(&s, r#"http_requests and on(job) job_info{team="y"}"#, t).len(), 1);
    assert_eq!(vec_at(&s, r#"http_requests unless on(job) job_info{team="y"}"#, t).len(), 2);
    assert_eq!(vec_at(&s, r#"http_requests{job="db"} or g"#, t).len(), 2);
    assert_eq!(vec_at(&s, r#"http_requests > on(job) group_left job_info * 15"#, t).len(), 2);
}

#[test]
fn range_queries() {
    let s = storage();
    let e = Engine::default();
    let r = e.range_query(&s, &parse("g").unwrap(), 0, 10 * M, 2 * M).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].points, (0..=5).map(|i| (i * 2 * M, (i * 2) as f64)).collect::<Vec<_>>());
    // Steps between samples see the previous sample through the lookback.
    let r = e.range_query(&s, &parse("g").unwrap(), 30_000, 150_000, 60_000).unwrap();
    assert_eq!(r[0].points, vec![(30_000, 0.0), (90_000, 1.0), (150_000, 2.0)]);
    // Staleness within a range query.
    let r = e.range_query(&s, &parse("stale_me").unwrap(), 0, 6 * M, M).unwrap();
    assert_eq!(r[0].points.iter().map(|p| p.0 / M).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    // Scalars give one series without labels.
    let r = e.range_query(&s, &parse("time() * 2").unwrap(), 0, 2000, 1000).unwrap();
    assert_eq!(
        r,
        vec![ember_promql::engine::RangeSeries {
            metric: Labels::empty(),
            points: vec![(0, 0.0), (1000, 2.0), (2000, 4.0)]
        }]
    );
    // A rate over every step equals the instant rate at that time.
    let q = parse(r#"rate(http_requests[1m])"#).unwrap();
    let r = e.range_query(&s, &q, 120_000, 600_000, 30_000).unwrap();
    assert_eq!(r.len(), 3);
    for series in &r {
        assert_eq!(series.points.len(), 17);
        for &(t, v) in &series.points {
            match e.instant_query(&s, &q, t).unwrap() {
                Value::Vector(iv) => {
                    let x = iv.iter().find(|x| x.metric == series.metric).unwrap();
                    assert!(approx(x.v, v), "at {t}: {v} vs {}", x.v);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    // Results are sorted by labels.
    let names: Vec<String> = r.iter().map(|s| s.metric.to_string()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    let err = e.range_query(&s, &parse("g[5m]").unwrap(), 0, 10, 1).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
    assert!(e.range_query(&s, &parse("g").unwrap(), 0, 10, 0).is_err());
}

#[test]
fn subqueries() {
    let s = storage();
    // Inner steps at 1m multiples in (5m, 10m]: g = 6..10.
    assert_eq!(one(&s, "max_over_time(g[5m:1m])", 10 * M), 10.0);
    assert_eq!(one(&s, "min_over_time(g[5m:1m])", 10 * M), 6.0);
    assert_eq!(one(&s, "count_over_time(g[5m:1m])", 10 * M), 5.0);
    assert_eq!(one(&s, "count_over_time(g[5m:30s])", 10 * M), 10.0);
    assert_eq!(one(&s, "min_over_time(g[5m:1m] offset 2m)", 10 * M), 4.0);
    assert_eq!(one(&s, "max_over_time((g * 2)[3m:])", 10 * M), 20.0);
    assert!(approx(one(&s, "max_over_time(rate(http_requests{job=\"db\"}[1m])[5m:1m])", 10 * M), 0.3));
    match instant(&s, "g[3m]", 5 * M).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].points, vec![(3 * M, 3.0), (4 * M, 4.0), (5 * M, 5.0)]);
        }
        other => panic!("{other:?}"),
    }
    let e = Engine::default();
    let r = e.range_query(&s, &parse("max_over_time(g[2m:1m])").unwrap(), 3 * M, 6 * M, M).unwrap();
    assert_eq!(r[0].points, vec![(3 * M, 3.0), (4 * M, 4.0), (5 * M, 5.0), (6 * M, 6.0)]);
}

#[test]
fn sample_limit() {
    let s = storage();
    let e = Engine::new(EngineOptions { max_samples: 50, ..EngineOptions::default() });
    let err = e.instant_query(&s, &parse("http_requests[10m]").unwrap(), 600_000).unwrap_err();
    assert_eq!(err, EvalError::TooManySamples);
    assert!(e.instant_query(&s, &parse("g").unwrap(), 600_000).is_ok());
}

#[test]
fn histogram_quantile_over_classic_buckets() {
    let s = MemStorage::new();
    // Cumulative counts 2, 5, 7, 8 for le 0.1, 0.5, 1, +Inf.
    for (le, v) in [("0.1", 2.0), ("0.5", 5.0), ("1", 7.0), ("+Inf", 8.0)] {
        s.add(&l(&[("__name__", "d_bucket"), ("job", "x"), ("le", le)]), 0, v).unwrap();
    }
    // rank 4 falls in (0.1, 0.5]: 0.1 + 0.4 * (4 - 2) / 3.
    assert!(approx(one(&s, "histogram_quantile(0.5, d_bucket)", 1000), 0.1 + 0.4 * 2.0 / 3.0));
    // rank 7.2 is in the +Inf bucket: the highest finite bound.
    assert_eq!(one(&s, "histogram_quantile(0.9, d_bucket)", 1000), 1.0);
    // Within the first bucket, interpolated from 0.
    assert!(approx(one(&s, "histogram_quantile(0.1, d_bucket)", 1000), 0.1 * 0.8 / 2.0));
    assert_eq!(one(&s, "histogram_quantile(2, d_bucket)", 1000), f64::INFINITY);
    assert!(one(&s, r#"histogram_quantile(0.5, d_bucket{le!="+Inf"})"#, 1000).is_nan());
    assert_eq!(vec_at(&s, "histogram_quantile(0.5, d_bucket)", 1000)[0].0, r#"{job="x"}"#);
    // Prometheus 3 computes histogram_fraction over classic buckets too:
    // up to 0.3 is 2 + 3 * (0.2 / 0.4) = 3.5 of 8 observations.
    assert!(approx(one(&s, "histogram_fraction(0, 0.3, d_bucket)", 1000), 3.5 / 8.0));
    assert!(approx(one(&s, "histogram_fraction(0.5, +Inf, d_bucket)", 1000), 3.0 / 8.0));
    assert_eq!(one(&s, "histogram_fraction(0.5, 0.2, d_bucket)", 1000), 0.0);
    // Native-histogram functions have nothing to work on.
    assert!(vec_at(&s, "histogram_count(d_bucket)", 1000).is_empty());
}

#[test]
fn timeout() {
    let s = storage();
    let e =
        Engine::new(EngineOptions { timeout: Some(std::time::Duration::ZERO), ..EngineOptions::default() });
    let err = e.instant_query(&s, &parse("sum(rate(http_requests[5m]))").unwrap(), 300_000).unwrap_err();
    assert_eq!(err, EvalError::Timeout);
    assert_eq!(err.to_string(), "query timed out in expression evaluation");
    let e = Engine::new(EngineOptions { timeout: None, ..EngineOptions::default() });
    assert!(e.instant_query(&s, &parse("sum(rate(http_requests[5m]))").unwrap(), 300_000).is_ok());
}
