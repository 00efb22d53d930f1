//! Property tests: type-correct expressions built from a grammar always
//! parse, and print back to text that parses to the same tree.

use ember_model::{memory::MemStorage, stale_nan, Labels};
use ember_promql::engine::{Engine, Value};
use ember_promql::parse;
use proptest::prelude::*;

fn metric() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("up".to_owned()),
        Just("http_requests_total".to_owned()),
        Just("a:b:c".to_owned()),
        Just("sum".to_owned()),
        Just("offset".to_owned()),
    ]
}

fn matcher() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("job"), Just("instance"), Just("\"my.label\""), Just("le"), Just("on")],
        prop_oneof![Just("="), Just("!="), Just("=~"), Just("!~")],
        prop_oneof![Just("\"x\""), Just("'y.*'"), Just("`a|b`"), Just("\"\\n\\\"é\"")],
    )
        .prop_map(|(n, o, v)| format!("{n}{o}{v}"))
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("5m"),
        Just("1h30m"),
        Just("30s"),
        Just("1d"),
        Just("90"),
        Just("1.5"),
        Just("2w"),
        Just("100ms")
    ]
    .prop_map(str::to_owned)
}

fn selector() -> impl Strategy<Value = String> {
    (
        prop::option::of(metric()),
        prop::collection::vec(matcher(), 0..3),
        prop::option::of(prop_oneof![
            duration().prop_map(|d| format!(" offset {d}")),
            duration().prop_map(|d| format!(" offset -{d}")),
        ]),
        prop::option::of(prop_oneof![Just(" @ 100"), Just(" @ start()"), Just(" @ end()"), Just(" @ -1.5")]),
    )
        .prop_map(|(name, ms, off, at)| {
            let mut ms = ms;
            if name.is_none() {
                ms.push("job=\"must\"".to_owned());
            }
            let mut s = name.unwrap_or_default();
            if !ms.is_empty() || s.is_empty() {
                s.push('{');
                s.push_str(&ms.join(", "));
                s.push('}');
            }
            s.push_str(at.unwrap_or(""));
            s.push_str(&off.unwrap_or_default());
            s
        })
}

fn scalar() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("1".to_owned()),
        Just("0.5".to_owned()),
        Just("-2".to_owned()),
        Just("0x1f".to_owned()),
        Just("Inf".to_owned()),
        Just("NaN".to_owned()),
        Just("5m".to_owned()),
        Just("time()".to_owned()),
        Just("pi()".to_owned()),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![Just("+"), Just("-"), Just("*"), Just("/"), Just("%"), Just("^"), Just("atan2")],
                inner.clone()
            )
                .prop_map(|(a, o, b)| format!("({a}) {o} ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} == bool ({b})")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.prop_map(|a| format!("-{a}")),
        ]
    })
}

fn vector() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        selector(),
        (
            selector().prop_filter("no modifiers before a range", |s| !s.contains(" @ ")
                && !s.contains(" offset ")),
            duration()
        )
            .prop_map(|(s, d)| format!("rate({s}[{d}])")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let labels =
            prop::collection::vec(prop_oneof![Just("job"), Just("le"), Just("\"a.b\""), Just("by")], 0..3)
                .prop_map(|v| v.join(", "));
        prop_oneof![
            (
                inner.clone(),
                prop_oneof![
                    Just("+"),
                    Just("-"),
                    Just("*"),
                    Just("/"),
                    Just("^"),
                    Just(">"),
                    Just("== bool"),
                    Just("and"),
                    Just("or"),
                    Just("unless")
                ],
                inner.clone()
            )
                .prop_map(|(a, o, b)| format!("({a}) {o} ({b})")),
            (inner.clone(), labels.clone(), inner.clone())
                .prop_map(|(a, l, b)| format!("({a}) * on({l}) group_left(x) ({b})")),
            (inner.clone(), labels.clone(), inner.clone())
                .prop_map(|(a, l, b)| format!("({a}) / ignoring({l}) ({b})")),
            (inner.clone(), scalar()).prop_map(|(a, s)| format!("({a}) - ({s})")),
            (scalar(), inner.clone()).prop_map(|(s, a)| format!("({s}) < bool ({a})")),
            (
                prop_oneof![
                    Just("sum"),
                    Just("avg"),
                    Just("max"),
                    Just("count"),
                    Just("stddev"),
                    Just("group")
                ],
                labels.clone(),
                inner.clone()
            )
                .prop_map(|(op, l, a)| format!("{op} by ({l}) ({a})")),
            (labels.clone(), inner.clone()).prop_map(|(l, a)| format!("sum({a}) without ({l})")),
            (scalar(), inner.clone()).prop_map(|(s, a)| format!("topk({s}, {a})")),
            inner.clone().prop_map(|a| format!("count_values(\"v\", {a})")),
            inner.clone().prop_map(|a| format!("({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            inner.clone().prop_map(|a| format!("abs({a})")),
            (inner.clone(), duration()).prop_map(|(a, d)| format!("max_over_time(({a})[{d}:])")),
            (inner.clone(), duration(), duration())
                .prop_map(|(a, d, s)| format!("avg_over_time(({a})[{d}:{s}] offset {s})")),
            inner.clone().prop_map(|a| format!("label_replace({a}, \"dst\", \"$1\", \"src\", \"(.*)\")")),
            (scalar(), inner).prop_map(|(s, a)| format!("histogram_quantile({s}, {a})")),
        ]
    })
}

/// Series for the generated selectors: irregular samples, a counter reset
/// and a staleness marker.
fn storage() -> MemStorage {
    let s = MemStorage::new();
    let series: [&[(&str, &str)]; 5] = [
        &[("__name__", "up"), ("job", "x"), ("instance", "1")],
        &[("__name__", "up"), ("job", "must"), ("instance", "2")],
        &[("__name__", "http_requests_total"), ("job", "must"), ("le", "0.5"), ("my.label", "x")],
        &[("__name__", "a:b:c"), ("job", "must"), ("on", "y")],
        &[("__name__", "sum"), ("instance", "1")],
    ];
    for (k, pairs) in series.iter().enumerate() {
        let l = Labels::from_pairs(pairs);
        let mut v = 0.0;
        for i in 0..200i64 {
            let t = i * 7_000 + (k as i64) * 1_300 + (i % 5) * 400;
            v += ((i * (k as i64 + 3)) % 11) as f64;
            if i == 120 && k == 1 {
                v = 1.0;
            }
            let val = if i == 150 && k == 0 { stale_nan() } else { v };
            let _ = s.add(&l, t, val);
        }
    }
    s
}

/// Sorted (labels, value) pairs of an instant result; scalars as one pair.
fn points(v: Value) -> Vec<(String, f64)> {
    let mut out = match v {
        Value::Vector(v) => v.into_iter().map(|s| (s.metric.to_string(), s.v)).collect(),
        Value::Scalar(_, v) => vec![("{}".to_owned(), v)],
        other => panic!("unexpected {other:?}"),
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn same_value(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn generated_vectors_roundtrip(q in vector()) {
        let e = parse(&q).map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
        let printed = e.to_string();
        let again = parse(&printed).map_err(|err| TestCaseError::fail(format!("{q} -> {printed}: {err}")))?;
        prop_assert_eq!(&again, &e, "{} -> {}", q, printed);
        prop_assert_eq!(again.to_string(), printed);
    }

    #[test]
    fn generated_scalars_roundtrip(q in scalar()) {
        let e = parse(&q).map_err(|e| TestCaseError::fail(format!("{q}: {e}")))?;
        prop_assert_eq!(e.value_type(), ember_promql::ValueType::Scalar);
        let printed = e.to_string();
        let again = parse(&printed).map_err(|err| TestCaseError::fail(format!("{q} -> {printed}: {err}")))?;
        prop_assert_eq!(&again, &e);
    }

    /// Arbitrary text never panics the parser.
    #[test]
    fn arbitrary_text_never_panics(q in "[a-z0-9 (){}\\[\\]:,.@+\\-*/^%=!~<>\"'`#\\\\_]{0,40}") {
        if let Ok(e) = parse(&q) {
            let printed = e.to_string();
            let again = parse(&printed).map_err(|err| TestCaseError::fail(format!("{q} -> {printed}: {err}")))?;
            prop_assert_eq!(&again, &e);
        }
    }

}

proptest! {
    // Each case runs 12 queries on a debug build: keep the count modest.
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// A range query agrees with instant queries at each of its steps:
    /// the step-by-step evaluation over preloaded series is equivalent to
    /// evaluating each time on its own.
    #[test]
    fn range_query_matches_instant_queries(q in vector(), start in 0i64..900_000, step in 1_000i64..120_000) {
        // `@ start()` and `@ end()` depend on the query's range.
        prop_assume!(!q.contains("start()") && !q.contains("end()"));
        let s = storage();
        let Ok(expr) = parse(&q) else { return Ok(()) };
        let engine = Engine::default();
        let end = start + 10 * step;
        let Ok(range) = engine.range_query(&s, &expr, start, end, step) else { return Ok(()) };
        for k in 0..=10 {
            let t = start + k * step;
            let Ok(inst) = engine.instant_query(&s, &expr, t) else { continue };
            let want = points(inst);
            let mut got: Vec<(String, f64)> = range
                .iter()
                .filter_map(|r| r.points.iter().find(|p| p.0 == t).map(|p| (r.metric.to_string(), p.1)))
                .collect();
            got.sort_by(|a, b| a.0.cmp(&b.0));
            prop_assert_eq!(got.len(), want.len(), "{} at {}: {:?} vs {:?}", q, t, got, want);
            for (g, w) in got.iter().zip(&want) {
                prop_assert_eq!(&g.0, &w.0, "{} at {}", q, t);
                prop_assert!(same_value(g.1, w.1), "{} at {}: {} vs {}", q, t, g.1, w.1);
            }
        }
    }
}
