//! Query control: deadline and cancellation stop a running evaluation, and
//! annotations come back with the result.

#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_model::{memory::MemStorage, Labels};
use ember_promql::engine::{Engine, EngineOptions, EvalError, QueryControl};
use ember_promql::{parse_with_options, ParseOptions};

fn storage() -> MemStorage {
    let s = MemStorage::new();
    let l = Labels::from_pairs(&[("__name__", "x")]);
    for i in 0..2000 {
        s.add(&l, i * 60_000, i as f64).unwrap();
    }
    s
}

/// Nested subqueries over 30 days at 1s resolution: 2.6 M outer steps each
/// summing a 3600-point window, billions of operations, far longer than the
/// limits used below on any machine.
const HEAVY: &str = "sum_over_time((sum_over_time(x[1h:1s]))[30d:1s])";
/// Evaluation time of `HEAVY`: 30 days.
const HEAVY_AT: i64 = 30 * 86_400_000;

fn engine() -> Engine {
    Engine::new(EngineOptions { timeout: None, ..EngineOptions::default() })
}

#[test]
fn deadline_stops_evaluation() {
    let s = storage();
    let expr = parse_with_options(HEAVY, ParseOptions::default()).unwrap();
    let ctl =
        QueryControl { deadline: Some(Instant::now() + Duration::from_millis(50)), ..Default::default() };
    let started = Instant::now();
    let r = engine().instant_query_full(&s, &expr, HEAVY_AT, Some(&ctl));
    assert_eq!(r.unwrap_err(), EvalError::Timeout);
    assert_eq!(EvalError::Timeout.to_string(), "query timed out in expression evaluation");
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[test]
fn cancel_flag_stops_evaluation() {
    let s = Arc::new(storage());
    let cancel = Arc::new(AtomicBool::new(false));
    let ctl = QueryControl { cancel: Some(cancel.clone()), ..Default::default() };
    let worker = {
        let s = s.clone();
        std::thread::spawn(move || {
            let expr = parse_with_options(HEAVY, ParseOptions::default()).unwrap();
            let started = Instant::now();
            let r = engine().instant_query_full(&*s, &expr, HEAVY_AT, Some(&ctl));
            (r, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    let cancelled_at = Instant::now();
    cancel.store(true, Ordering::Relaxed);
    let (r, _) = worker.join().unwrap();
    assert_eq!(r.unwrap_err(), EvalError::Canceled);
    assert_eq!(EvalError::Canceled.to_string(), "query was canceled in expression evaluation");
    assert!(cancelled_at.elapsed() < Duration::from_secs(2), "stopped after {:?}", cancelled_at.elapsed());
}

#[test]
fn annotations_carry_positions() {
    let s = storage();
    let q = "quantile(1.5, x) + rate(x[5m])";
    let expr = parse_with_options(q, ParseOptions::default()).unwrap();
    let ctl = QueryControl { query: q.into(), ..Default::default() };
    let r = engine().instant_query_full(&s, &expr, 600_000, Some(&ctl)).unwrap();
    assert_eq!(r.warnings, vec!["PromQL warning: quantile value should be between 0 and 1, got 1.5 (1:10)"]);
    assert_eq!(
        r.infos,
        vec!["PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\" (1:25)"]
    );
    // Range queries warn that sorting is ineffective; instant ones don't.
    let q = "sort(x)";
    let expr = parse_with_options(q, ParseOptions::default()).unwrap();
    let ctl = QueryControl { query: q.into(), ..Default::default() };
    let r = engine().range_query_full(&s, &expr, 0, 120_000, 60_000, Some(&ctl)).unwrap();
    assert_eq!(
        r.warnings,
        vec!["PromQL warning: sort is ineffective for range queries since results are always ordered by labels (1:1)"]
    );
    let r = engine().instant_query_full(&s, &expr, 0, Some(&ctl)).unwrap();
    assert!(r.warnings.is_empty());
}

#[test]
fn step_duration_expression() {
    let s = storage();
    let opts = ParseOptions { duration_expressions: true, ..ParseOptions::default() };
    let expr = parse_with_options("count_over_time(x[step() * 2])", opts).unwrap();
    assert_eq!(expr.to_string(), "count_over_time(x[(step() * 2)])");
    // step 3m: windows of 6m hold 6 one-minute samples.
    let r = engine().range_query(&s, &expr, 600_000, 780_000, 180_000).unwrap();
    assert_eq!(r[0].points, vec![(600_000, 6.0), (780_000, 6.0)]);
    // Constant expressions fold at parse time.
    let expr = parse_with_options("x[(1 + 2) * 1m] offset (10m / 2)", opts).unwrap();
    assert_eq!(expr.to_string(), "x[3m] offset 5m");
    assert!(parse_with_options("x[1m - 1m]", opts)
        .unwrap_err()
        .to_string()
        .contains("duration must be greater than 0"));
    assert!(parse_with_options("x[1m * 2]", ParseOptions::default()).is_err());
}
