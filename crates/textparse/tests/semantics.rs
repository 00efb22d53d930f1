//! What the parsers accept and how they read it, case by case, following
//! Prometheus's own parsers (`model/textparse`).
#![allow(clippy::unwrap_used)]

use std::borrow::Cow;

use ember_textparse::{Entry, Format, LabelScratch, MetricType, Parser, SampleEntry};

fn entries(input: &str, format: Format) -> Vec<Entry<'_>> {
    Parser::new(input.as_bytes(), format).map(|e| e.unwrap_or_else(|e| panic!("{input:?}: {e}"))).collect()
}

fn samples(input: &str, format: Format) -> Vec<SampleEntry<'_>> {
    entries(input, format)
        .into_iter()
        .filter_map(|e| match e {
            Entry::Sample(s) => Some(s),
            _ => None,
        })
        .collect()
}

fn labels<'a>(s: &SampleEntry<'a>) -> Vec<(Cow<'a, str>, Cow<'a, str>)> {
    s.labels.iter().collect()
}

#[test]
fn quoted_utf8_names_in_both_formats() {
    for (format, page) in [
        (Format::PrometheusText, "{\"my.metric\", \"label.x\"=\"v\", job=\"a\"} 1\n"),
        (Format::OpenMetrics, "{\"my.metric\",\"label.x\"=\"v\",job=\"a\"} 1\n# EOF\n"),
    ] {
        let s = &samples(page, format)[0];
        assert_eq!(s.name, "my.metric");
        assert!(matches!(s.name, Cow::Borrowed(_)), "no copy without escapes");
        assert_eq!(s.series, page.split(" 1\n").next().unwrap());
        assert_eq!(labels(s), [("label.x".into(), "v".into()), ("job".into(), "a".into())]);
        let l = s.to_labels(&mut LabelScratch::new());
        assert_eq!(l.to_string(), r#"{__name__="my.metric", job="a", "label.x"="v"}"#);
    }
    // The quoted name may come after labels, and may carry escapes.
    let s = &samples("{a=\"1\", \"we\\\"ird\"} 2\n", Format::PrometheusText)[0];
    assert_eq!(s.name, "we\"ird");
    assert_eq!(labels(s), [("a".into(), "1".into())]);
}

#[test]
fn quoted_names_in_metadata() {
    let e = entries("# HELP \"my.metric\" Some help.\n# TYPE \"my.metric\" gauge\n", Format::PrometheusText);
    assert_eq!(
        e,
        [
            Entry::Help { metric: "my.metric".into(), text: "Some help.".into() },
            Entry::Type { metric: "my.metric".into(), metric_type: MetricType::Gauge },
        ]
    );
}

#[test]
fn text_help_escapes_only_backslash_and_newline() {
    let e = entries("# HELP m a\\\\b\\nc\\\"d\\te\n", Format::PrometheusText);
    assert_eq!(e, [Entry::Help { metric: "m".into(), text: "a\\b\nc\\\"d\\te".into() }]);
    let e = entries("# HELP m a\\\\b\\nc\\\"d\n# EOF\n", Format::OpenMetrics);
    assert_eq!(e, [Entry::Help { metric: "m".into(), text: "a\\b\nc\"d".into() }]);
}

#[test]
fn label_value_escapes() {
    let s = &samples("m{a=\"x\\\\y\\\"z\\nw\\tv\"} 1\n", Format::PrometheusText)[0];
    // Unknown escapes such as `\t` stay as written (Go's strings.Replacer).
    assert_eq!(labels(s), [("a".into(), "x\\y\"z\nw\\tv".into())]);
    assert_eq!(s.labels.raw(), "a=\"x\\\\y\\\"z\\nw\\tv\"");
    // Text format: a raw newline inside a quoted value is part of it.
    let s = &samples("m{a=\"x\ny\"} 1\nn 2\n", Format::PrometheusText);
    assert_eq!(labels(&s[0]), [("a".into(), "x\ny".into())]);
    assert_eq!(s[1].series, "n");
}

#[test]
fn text_blanks_and_separators() {
    let page = "  \t m \t{ a = \"1\" \t b=\"2\" , } \t 3 \t 4 \t\n\n\t\n";
    let s = &samples(page, Format::PrometheusText)[0];
    assert_eq!(s.series, "m \t{ a = \"1\" \t b=\"2\" , }");
    assert_eq!(labels(s), [("a".into(), "1".into()), ("b".into(), "2".into())]);
    assert_eq!((s.value, s.timestamp), (3.0, Some(4)));
    // `foo-1`: the value token starts right after the name, as in Prometheus.
    let s = &samples("foo-1\n", Format::PrometheusText)[0];
    assert_eq!((s.name.as_ref(), s.value), ("foo", -1.0));
}

#[test]
fn comments_and_repeated_types() {
    let page = "# just a comment\n#no space\n# HELPER not help\n# TYPE m counter\nm 1\n# TYPE m gauge\nm 2\n";
    let e = entries(page, Format::PrometheusText);
    assert_eq!(e[0], Entry::Comment(b"# just a comment"));
    assert_eq!(e[1], Entry::Comment(b"#no space"));
    assert_eq!(e[2], Entry::Comment(b"# HELPER not help"));
    // Prometheus does not care about repeated or late TYPE lines.
    assert_eq!(e[5], Entry::Type { metric: "m".into(), metric_type: MetricType::Gauge });
    assert_eq!(e.len(), 7);
}

#[test]
fn special_values() {
    let page = "a NaN\nb +Inf\nc -Inf\nd Inf\ne 1e3\nf .5\ng -0\nh 1.5E-3\ni infinity\n";
    let v: Vec<f64> = samples(page, Format::PrometheusText).iter().map(|s| s.value).collect();
    assert_eq!(v[0].to_bits(), ember_model::NORMAL_NAN_BITS);
    assert_eq!(&v[1..6], &[f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 1000.0, 0.5]);
    assert!(v[6] == 0.0 && v[6].is_sign_negative());
    assert_eq!(v[7], 0.0015);
    assert_eq!(v[8], f64::INFINITY);
}

#[test]
fn timestamps_per_format() {
    let s = &samples("m 1 1395066363000\n", Format::PrometheusText)[0];
    assert_eq!(s.timestamp, Some(1_395_066_363_000));
    let s = samples("m 1 1395066363.5\nm 1 -1.5\nm 1 1.0009\nm 1 1e3\n# EOF\n", Format::OpenMetrics);
    let ts: Vec<_> = s.iter().map(|s| s.timestamp.unwrap()).collect();
    // Float seconds, truncated toward zero to milliseconds like `int64(ts*1000)`.
    assert_eq!(ts, [1_395_066_363_500, -1500, 1000, 1_000_000]);
}

#[test]
fn openmetrics_families() {
    let page = "\
# TYPE foo_seconds counter
# UNIT foo_seconds seconds
foo_seconds_total 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67 1520879602.890
foo_seconds_created 1520430000.123
# TYPE s stateset
s{s=\"a\"} 1
# TYPE i info
i_info{version=\"1\"} 1
# TYPE g gaugehistogram
g_bucket{le=\"+Inf\"} 3
g_gcount 3
g_gsum 2
# EOF";
    let e = entries(page, Format::OpenMetrics);
    assert_eq!(e[1], Entry::Unit { metric: "foo_seconds".into(), unit: "seconds" });
    assert!(e.contains(&Entry::Type { metric: "s".into(), metric_type: MetricType::StateSet }));
    assert!(e.contains(&Entry::Type { metric: "i".into(), metric_type: MetricType::Info }));
    assert!(e.contains(&Entry::Type { metric: "g".into(), metric_type: MetricType::GaugeHistogram }));
    let s = samples(page, Format::OpenMetrics);
    assert_eq!(s.len(), 7);
    assert_eq!(
        (s[0].name.as_ref(), s[0].value, s[0].timestamp),
        ("foo_seconds_total", 17.0, Some(1_520_879_607_789))
    );
    let ex = s[0].exemplar.as_ref().unwrap();
    assert_eq!(ex.labels.iter().collect::<Vec<_>>(), [("trace_id".into(), "KOO5S4vxi0o".into())]);
    assert_eq!((ex.value, ex.timestamp), (0.67, Some(1_520_879_602_890)));
    // `_created` is an ordinary sample (Prometheus's default ingestion).
    assert_eq!(s[1].name, "foo_seconds_created");
    assert_eq!(s[1].value, 1_520_430_000.123);
}

#[test]
fn le_and_quantile_values_are_normalised_like_prometheus_3() {
    let text =
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"1000000\"} 1\nh_bucket{le=\"+Inf\"} 1\n\
                # TYPE s summary\ns{quantile=\"0.50\",le=\"1\"} 1\n\
                # TYPE g gauge\ng{le=\"1\"} 1\n";
    let om = format!("{}# EOF\n", text.replace("# TYPE g gauge", "# TYPE g gaugehistogram"));
    let mut scratch = LabelScratch::new();
    for (page, format) in [(text.to_owned(), Format::PrometheusText), (om, Format::OpenMetrics)] {
        let got: Vec<String> =
            samples(&page, format).iter().map(|s| s.to_labels(&mut scratch).to_string()).collect();
        assert_eq!(
            got,
            [
                r#"{__name__="h_bucket", le="1.0"}"#,
                r#"{__name__="h_bucket", le="1e+06"}"#,
                r#"{__name__="h_bucket", le="+Inf"}"#,
                r#"{__name__="s", le="1", quantile="0.5"}"#,
                r#"{__name__="g", le="1"}"#,
            ],
            "{format:?}"
        );
    }
    // The raw series text, the scrape cache key, is left as written.
    assert_eq!(samples(text, Format::PrometheusText)[0].series, "h_bucket{le=\"1\"}");
}
