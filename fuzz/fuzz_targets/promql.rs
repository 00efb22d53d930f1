//! PromQL fuzzing. Parsing arbitrary input must never panic, and a
//! successfully parsed expression, printed and parsed again, must give the
//! same tree (and print identically); so must its multi-line pretty form.
//! Parsed expressions are then evaluated, as instant and range queries,
//! over a small in-memory storage: evaluation must not panic either.
#![no_main]

use std::sync::OnceLock;

use ember_model::{memory::MemStorage, stale_nan, Labels};
use ember_promql::engine::{Engine, EngineOptions};
use ember_promql::{parse_metric_selector, parse_with_options, Expr, ParseOptions};
use libfuzzer_sys::fuzz_target;

fn storage() -> &'static MemStorage {
    static S: OnceLock<MemStorage> = OnceLock::new();
    S.get_or_init(|| {
        let s = MemStorage::new();
        let series: [&[(&str, &str)]; 4] = [
            &[("__name__", "foo"), ("a", "1")],
            &[("__name__", "foo"), ("a", "2"), ("le", "0.5")],
            &[("__name__", "bar"), ("le", "+Inf")],
            &[("__name__", "x"), ("b", "y")],
        ];
        for (k, pairs) in series.iter().enumerate() {
            let l = Labels::from_pairs(pairs);
            for i in 0..40i64 {
                let v = if i == 30 && k == 0 { stale_nan() } else { (i * (k as i64 + 1) % 7) as f64 };
                let _ = s.add(&l, i * 15_000, v);
            }
        }
        s
    })
}

fn evaluate(expr: &Expr) {
    // A small sample limit keeps pathological subqueries cheap.
    let engine = Engine::new(EngineOptions { max_samples: 20_000, ..EngineOptions::default() });
    let _ = engine.instant_query(storage(), expr, 300_000);
    let _ = engine.range_query(storage(), expr, 0, 600_000, 60_000);
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let _ = parse_metric_selector(input);
    for experimental_functions in [false, true] {
        let opts = ParseOptions { experimental_functions, ..ParseOptions::default() };
        let Ok(expr) = parse_with_options(input, opts) else { continue };
        let printed = expr.to_string();
        let again = match parse_with_options(&printed, opts) {
            Ok(e) => e,
            Err(err) => panic!("{input:?} printed as {printed:?} does not parse: {err}"),
        };
        assert_eq!(expr, again, "{input:?} printed as {printed:?} parses to a different tree");
        assert_eq!(printed, again.to_string(), "printing is not stable for {input:?}");
        let pretty = expr.pretty();
        match parse_with_options(&pretty, opts) {
            Ok(p) => assert_eq!(expr, p, "{input:?} pretty-printed as {pretty:?} parses to a different tree"),
            Err(err) => panic!("{input:?} pretty-printed as {pretty:?} does not parse: {err}"),
        }
        if !experimental_functions {
            evaluate(&expr);
        }
    }
});
