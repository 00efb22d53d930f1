//! Every expression here parses; printing it and parsing the output gives
//! the same tree, and printing is a fixed point. Where the canonical form
//! is known (Prometheus's `String()`), it is checked too.

use ember_promql::{parse, parse_with_options, ParseOptions};

/// (input, canonical form; "" = same as input).
const CASES: &[(&str, &str)] = &[
    // Literals.
    ("1", ""),
    ("-1", ""),
    ("+1", "1"),
    ("- -1", "1"),
    (".5", "0.5"),
    ("5.", "5"),
    ("1e3", "1000"),
    (".5e2", "50"),
    ("1e-3", "0.001"),
    ("0x1f", "31"),
    ("0X1F", "31"),
    ("017", "15"),
    ("1_000", "1000"),
    ("0x_1f", "31"),
    ("Inf", "+Inf"),
    ("inf", "+Inf"),
    ("-Inf", ""),
    ("NaN", ""),
    ("nAn", "NaN"),
    ("1e21", "1000000000000000000000"),
    ("5m", ""),
    ("1h30m", ""),
    ("-5m", ""),
    ("-0m", "-0s"),
    ("-----0m - -N > -:", "-0s - -N > -:"),
    // Found by fuzzing: positions must not take part in equality.
    ("o- -fo1 @ +5", "o - -fo1 @ 5.000"),
    ("foo[5] offset 1 @ 2", "foo[5s] @ 2.000 offset 1s"),
    ("90d", ""),
    ("2w", ""),
    ("1y", ""),
    ("1ms", ""),
    ("time() - 5m", ""),
    (r#""str""#, ""),
    ("'single'", r#""single""#),
    (r"`raw\n`", r#""raw\\n""#),
    (r#""a\tb\"c""#, ""),
    (r#"'it\'s'"#, r#""it's""#),
    (r#""\u00e9\x41\101""#, r#""éAA""#),
    // Selectors.
    ("foo", ""),
    ("foo:bar:baz", ""),
    ("foo{}", "foo"),
    (r#"foo{a="b"}"#, ""),
    (r#"foo{a="b",}"#, r#"foo{a="b"}"#),
    (r#"foo{c!="d", a=~"b|c", e!~"f"}"#, r#"foo{a=~"b|c",c!="d",e!~"f"}"#),
    (r#"{a="b"}"#, ""),
    (r#"{__name__="foo"}"#, ""),
    (r#"{__name__=~"foo.*"}"#, ""),
    (r#"{"my.metric", foo="bar"}"#, r#"{__name__="my.metric",foo="bar"}"#),
    (r#"foo{"a.b"="c"}"#, ""),
    (r#"foo{a='b'}"#, r#"foo{a="b"}"#),
    (r#"foo{a=`b\d`}"#, r#"foo{a="b\\d"}"#),
    ("sum", ""),
    ("by", ""),
    ("offset", ""),
    ("and", ""),
    ("start", ""),
    ("step", ""),
    ("sum{a=\"b\"}", ""),
    (r#"foo{by="x", on="y"}"#, r#"foo{by="x",on="y"}"#),
    ("foo # a comment\n", "foo"),
    ("foo offset 5m", ""),
    ("foo offset -5m", ""),
    ("foo offset 5", "foo offset 5s"),
    ("foo offset 1.5", "foo offset 1s500ms"),
    ("foo offset 0s", "foo"),
    ("foo @ 5", "foo @ 5.000"),
    ("foo @ -5", "foo @ -5.000"),
    ("foo @ +5", "foo @ 5.000"),
    ("foo @ 1.5", "foo @ 1.500"),
    ("foo @ 5m", "foo @ 300.000"),
    ("foo @ start()", ""),
    ("foo @ end()", ""),
    ("foo @ 1 offset 1m", "foo @ 1.000 offset 1m"),
    ("foo offset 1m @ 1", "foo @ 1.000 offset 1m"),
    ("foo OFFSET 1m", "foo offset 1m"),
    ("foo[5m]", ""),
    ("foo[5]", "foo[5s]"),
    ("foo[1.5]", "foo[1s500ms]"),
    ("foo[ 5m ]", "foo[5m]"),
    ("foo[1h30m]", ""),
    ("foo[5m] offset 1h", ""),
    ("foo[5m] @ end() offset -1m", ""),
    (r#"foo{a="b"}[5m] offset 1m"#, ""),
    // Subqueries.
    ("foo[5m:1m]", ""),
    ("foo[5m:]", ""),
    ("foo[5m:] @ 100", "foo[5m:] @ 100.000"),
    ("(foo)[5m:1m] offset 1h", ""),
    ("rate(foo[5m])[1h:5m]", ""),
    ("max_over_time(deriv(rate(x[5s])[30s:5s])[10m:])", ""),
    ("min_over_time(rate(foo{bar=\"baz\"}[2s])[5m:] offset 4m)[4m:3s]", ""),
    ("some_metric @ 123 offset 1m [10m:5s]", "some_metric @ 123.000 offset 1m[10m:5s]"),
    ("(foo + bar)[5m:]", ""),
    // Operators and precedence.
    ("1 + 2 * 3", ""),
    ("(1 + 2) * 3", ""),
    ("a + b * c ^ d ^ e", ""),
    ("a - b - c", ""),
    ("a ^ b ^ c", ""),
    ("-a ^ 2", ""),
    ("-1 ^ 2", ""),
    ("2 ^ -1", ""),
    ("Inf ^ 2", ""),
    ("-Inf ^ 2", ""),
    ("+Inf + 2", "+Inf + 2"),
    ("-a * b", ""),
    ("--a", ""),
    ("+foo", ""),
    ("a % b atan2 c", ""),
    ("a atan2 b", ""),
    ("1 atan2 2", ""),
    ("a == b", ""),
    ("a != b", ""),
    ("a > 1", ""),
    ("a >= 1 < 2", ""),
    ("a <= bool 1", ""),
    ("1 == bool 1", ""),
    ("1 > bool 2", ""),
    ("foo and bar or baz unless qux", ""),
    ("a or b and c", ""),
    ("a + on(b) c", "a + on (b) c"),
    ("a + on() c", "a + on () c"),
    ("a / ignoring(b) c", "a / ignoring (b) c"),
    ("a * on(b) group_left c", "a * on (b) group_left () c"),
    ("a * on(b) group_left(c, d) e", "a * on (b) group_left (c, d) e"),
    ("a == bool on(b) group_right(c) e", "a == bool on (b) group_right (c) e"),
    ("a * ignoring(b) group_left(c) e", "a * ignoring (b) group_left (c) e"),
    ("a and on(b) c", "a and on (b) c"),
    ("a unless ignoring(b) c", "a unless ignoring (b) c"),
    ("a or on() b", "a or on () b"),
    ("a + on(\"b.c\") d", "a + on (\"b.c\") d"),
    ("foo offset 5s - 8", "foo offset 5s - 8"),
    ("foo offset -1^1", "foo offset -1s ^ 1"),
    ("1 + -2 * 3", ""),
    ("a + b offset 5m", ""),
    // Aggregations.
    ("sum(x)", ""),
    ("sum by (a) (x)", ""),
    ("sum(x) by (a)", "sum by (a) (x)"),
    ("sum by (a,) (x)", "sum by (a) (x)"),
    ("sum without (a, b) (x)", ""),
    ("sum(x) without (a, b)", "sum without (a, b) (x)"),
    ("sum without () (x)", ""),
    ("sum by () (x)", "sum(x)"),
    ("SUM BY (a) (x)", "sum by (a) (x)"),
    ("sum by (sum, by, on, offset) (x)", ""),
    ("sum by (\"a.b\") (x)", ""),
    ("topk(5, x)", ""),
    ("topk(5, x) by (a)", "topk by (a) (5, x)"),
    ("bottomk(3, x)", ""),
    ("quantile(0.9, x)", ""),
    ("count_values(\"v\", x)", ""),
    ("avg(x)", ""),
    ("min by (a)(x)", "min by (a) (x)"),
    ("max(x)", ""),
    ("count(x)", ""),
    ("group(x)", ""),
    ("stddev(x)", ""),
    ("stdvar without (a) (x)", ""),
    ("sum(rate(foo[5m])) by (job) > 0", "sum by (job) (rate(foo[5m])) > 0"),
    // Functions.
    ("rate(foo[5m])", ""),
    ("histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))", ""),
    (r#"label_replace(up, "a", "$1", "b", "(.*)")"#, ""),
    (r#"label_join(up, "a", ",", "b", "c", "d")"#, ""),
    ("vector(1)", ""),
    ("scalar(up)", ""),
    ("time()", ""),
    ("pi()", ""),
    ("round(up)", ""),
    ("round(up, 5)", ""),
    ("days_in_month()", ""),
    ("clamp(up, 0, 1)", ""),
    ("predict_linear(x[1h], 3600)", ""),
    ("quantile_over_time(0.5, x[1h])", ""),
    ("absent(nonexistent{job=\"myjob\"})", ""),
    ("abs(-foo)", ""),
    ("sort_desc(sum by (a) (x))", ""),
    ("histogram_fraction(0, 0.5, x)", ""),
];

#[test]
fn canonical_forms_and_roundtrip() {
    let mut failures = Vec::new();
    for &(input, want) in CASES {
        let want = if want.is_empty() { input } else { want };
        let e = match parse(input) {
            Ok(e) => e,
            Err(err) => {
                failures.push(format!("{input:?}: {err}"));
                continue;
            }
        };
        let printed = e.to_string();
        if printed != want {
            failures.push(format!("{input:?}: printed {printed:?}, want {want:?}"));
        }
        match parse(&printed) {
            Ok(again) => {
                if again != e {
                    failures.push(format!("{input:?}: reparse differs: {e:?} vs {again:?}"));
                }
                if again.to_string() != printed {
                    failures.push(format!("{input:?}: printing not stable"));
                }
            }
            Err(err) => failures.push(format!("{input:?}: printed {printed:?} fails: {err}")),
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn types() {
    use ember_promql::ValueType::*;
    for (q, t) in [
        ("1", Scalar),
        ("\"a\"", String),
        ("foo", Vector),
        ("foo[5m]", Matrix),
        ("foo[5m:]", Matrix),
        ("1 + 1", Scalar),
        ("1 + foo", Vector),
        ("time()", Scalar),
        ("rate(x[1m])", Vector),
        ("(1)", Scalar),
        ("-foo", Vector),
        ("sum(foo)", Vector),
        ("scalar(foo)", Scalar),
    ] {
        assert_eq!(parse(q).unwrap().value_type(), t, "{q}");
    }
}

#[test]
fn experimental_functions_need_the_option() {
    let opts = ParseOptions { experimental_functions: true, ..ParseOptions::default() };
    for q in ["limitk(3, x)", "limit_ratio(0.5, x)", "mad_over_time(x[5m])", "sort_by_label(x, \"a\", \"b\")"]
    {
        assert!(parse(q).is_err(), "{q} must need the flag");
        let e = parse_with_options(q, opts).unwrap();
        assert_eq!(parse_with_options(&e.to_string(), opts).unwrap(), e);
    }
    let e = parse_with_options(r#"info(up, {k8s_cluster_name=~".+"})"#, opts).unwrap();
    assert_eq!(e.to_string(), r#"info(up, {k8s_cluster_name=~".+"})"#);
    let e = parse_with_options(r#"info(up, {a=""})"#, opts);
    assert!(e.is_ok(), "info's label selector may match everything: {e:?}");
}

#[test]
fn matchers_and_structure() {
    use ember_model::MatchOp;
    use ember_promql::Expr;
    let Expr::VectorSelector(vs) = parse(r#"foo{a=~"x.*", b!="y"}"#).unwrap() else { panic!() };
    assert_eq!(vs.name, "foo");
    assert_eq!(vs.matchers.len(), 3);
    assert_eq!(vs.matchers[0].op, MatchOp::RegexMatch);
    assert!(vs.matchers[0].matches("xyz"));
    assert!(!vs.matchers[0].matches("axyz"), "regexes are anchored");
    assert_eq!(vs.matchers[2].name, "__name__");
    assert_eq!(vs.matchers[2].value, "foo");

    let Expr::MatrixSelector(m) = parse("foo[1h30m] offset -5m @ 10.5").unwrap() else { panic!() };
    assert_eq!(m.range, 5_400_000);
    assert_eq!(m.vs.original_offset, -300_000);
    assert_eq!(m.vs.at, Some(ember_promql::AtModifier::Timestamp(10_500)));

    let Expr::Binary(b) = parse("a and b").unwrap() else { panic!() };
    assert_eq!(b.matching.unwrap().card, ember_promql::Cardinality::ManyToMany);
    let Expr::Binary(b) = parse("1 + foo").unwrap() else { panic!() };
    assert!(b.matching.is_none(), "no vector matching with a scalar side");
    let Expr::Binary(b) = parse("a + b * c").unwrap() else { panic!() };
    assert_eq!(b.op, ember_promql::BinaryOp::Add);
    let Expr::Binary(b) = parse("a ^ b ^ c").unwrap() else { panic!() };
    assert!(matches!(*b.rhs, Expr::Binary(_)), "^ is right-associative");
    let Expr::Unary(u) = parse("-a ^ b").unwrap() else { panic!() };
    assert!(matches!(*u.expr, Expr::Binary(_)), "^ binds tighter than unary minus");
}

#[test]
fn metric_selector_api() {
    let m = ember_promql::parse_metric_selector(r#"up{job="x"}"#).unwrap();
    assert_eq!(m.len(), 2);
    assert!(ember_promql::parse_metric_selector("up + 1").is_err());
    assert!(ember_promql::parse_metric_selector("rate(x[5m])").is_err());
}

/// `/api/v1/format_query` outputs of Prometheus 2.42 for the same queries.
const PRETTY: &[(&str, &str)] = &[
    (
        r#"sum by (job, instance) (rate(http_requests_total{job="api-server", handler="/api/v1/query", code=~"2.."}[5m])) / on (job) group_left (team) sum by (job) (rate(http_requests_total{job="api-server"}[5m]))"#,
        r#"  sum by (job, instance) (
    rate(http_requests_total{code=~"2..",handler="/api/v1/query",job="api-server"}[5m])
  )
/ on (job) group_left (team)
  sum by (job) (rate(http_requests_total{job="api-server"}[5m]))"#,
    ),
    (
        r#"histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{job="apiserver", verb!~"LIST|WATCH"}[5m])))"#,
        r#"histogram_quantile(
  0.99,
  sum by (le, job) (
    rate(http_request_duration_seconds_bucket{job="apiserver",verb!~"LIST|WATCH"}[5m])
  )
)"#,
    ),
    (
        r#"topk(10, sum without (instance, pod, container) (rate(container_cpu_usage_seconds_total{namespace="kube-system", container!=""}[5m])))"#,
        r#"topk(
  10,
  sum without (instance, pod, container) (
    rate(container_cpu_usage_seconds_total{container!="",namespace="kube-system"}[5m])
  )
)"#,
    ),
    (
        r#"max_over_time((sum by (job) (rate(some_really_long_metric_name_for_testing_total{label_one="value_one"}[5m])) > 100)[1h:5m])"#,
        r#"max_over_time(
  (
    sum by (job) (rate(some_really_long_metric_name_for_testing_total{label_one="value_one"}[5m])) > 100
  )[1h:5m]
)"#,
    ),
    (
        r#"-(sum(rate(node_cpu_seconds_total{mode="idle", instance="some.very.long.hostname.example.com:9100"}[5m])) by (instance))"#,
        r#"-(
  sum by (instance) (
    rate(node_cpu_seconds_total{instance="some.very.long.hostname.example.com:9100",mode="idle"}[5m])
  )
)"#,
    ),
    (
        r#"(sum(rate(node_cpu_seconds_total{mode="idle", instance="some.very.long.hostname.example.com:9100"}[5m])) + 1) * 100"#,
        r#"  (
      sum(
        rate(node_cpu_seconds_total{instance="some.very.long.hostname.example.com:9100",mode="idle"}[5m])
      )
    +
      1
  )
*
  100"#,
    ),
    (
        r#"label_replace(up{job="a-very-long-job-name-for-testing-purposes", instance="host.example.com:9100"}, "dst", "$1", "src", "(.*)")"#,
        r#"label_replace(
  up{instance="host.example.com:9100",job="a-very-long-job-name-for-testing-purposes"},
  "dst",
  "$1",
  "src",
  "(.*)"
)"#,
    ),
    (r#"foo"#, r#"foo"#),
    (r#"sum(rate(x[5m]))"#, r#"sum(rate(x[5m]))"#),
];

#[test]
fn pretty_matches_prometheus_format_query() {
    let mut failures = Vec::new();
    for &(q, want) in PRETTY {
        let e = parse(q).unwrap();
        let got = e.pretty();
        if got != want {
            failures.push(format!("{q}:\n got:\n{got}\n want:\n{want}"));
        }
        assert_eq!(parse(&got).unwrap(), e, "pretty form parses back to the same tree");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pretty_keeps_the_tree_for_long_expressions() {
    let long = "some_metric_with_a_really_long_name_to_force_line_splitting_in_the_prettier_output_total_and_then_some";
    for q in [
        format!("Inf ^ {long}"),
        format!("-{long} * on(a) group_left(b) ({long} + 1)"),
        format!("max_over_time(rate({long}[5m])[1h:1m] @ 100 offset 5m)"),
        format!("topk by (a) (5, {long} > bool 3)"),
        format!("-(-{long})"),
    ] {
        let e = parse(&q).unwrap();
        let pretty = e.pretty();
        assert!(pretty.contains('\n'), "{pretty}");
        assert_eq!(parse(&pretty).unwrap(), e, "{pretty}");
    }
}
