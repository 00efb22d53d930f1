//! Property test: generated families (legacy and quoted UTF-8 names, label
//! values with escapes, special floats, timestamps, exemplars) are rendered
//! as text 0.0.4 and as OpenMetrics, parsed back, and must come out equal.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fmt::Write;

use ember_model::names::{is_valid_legacy_label_name, is_valid_legacy_metric_name};
use ember_model::NORMAL_NAN_BITS;
use ember_textparse::{Entry, Format, LabelScratch, MetricType, Parser};
use proptest::prelude::*;

#[derive(Debug, Clone)]
struct Sample {
    suffix: &'static str,
    labels: BTreeMap<String, String>,
    value: f64,
    /// Milliseconds; multiples of 125 so that OpenMetrics' float seconds
    /// convert back exactly.
    ts: Option<i64>,
    exemplar: Option<(BTreeMap<String, String>, f64, Option<i64>)>,
}

#[derive(Debug, Clone)]
struct Family {
    name: String,
    help: Option<String>,
    mtype: Option<MetricType>,
    samples: Vec<Sample>,
}

fn metric_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z_:][a-zA-Z0-9_:]{0,12}",
        1 => "[a-z.\\-é \"\\\\{}=,]{1,10}",
    ]
}

fn label_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z_][a-zA-Z0-9_]{0,8}",
        1 => "[a-z.\\-é \"\\\\{}=,]{1,8}",
    ]
    // `le`/`quantile` values are normalised in histograms/summaries;
    // tests/semantics.rs covers that.
    .prop_filter("reserved", |n| !matches!(n.as_str(), "__name__" | "le" | "quantile"))
}

fn label_value() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 \\\\\"\n\t.,={}#é日本]{0,12}"
}

fn labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(label_name(), label_value(), 0..4)
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(0.0),
        Just(-0.0),
        (0u32..100_000).prop_map(f64::from),
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
    ]
}

fn timestamp() -> impl Strategy<Value = Option<i64>> {
    // Text timestamps cannot be negative (Prometheus's lexer takes digits
    // only), so both renderings share non-negative values.
    prop::option::of((0i64..(1 << 40)).prop_map(|t| t * 125))
}

fn sample() -> impl Strategy<Value = Sample> {
    (
        prop::sample::select(vec!["", "_total", "_bucket", "_count", "_sum", "_created"]),
        labels(),
        value(),
        timestamp(),
        prop::option::of((
            prop::collection::btree_map("[a-zA-Z_][a-zA-Z0-9_]{0,6}", label_value(), 0..3),
            value(),
            timestamp(),
        )),
    )
        .prop_map(|(suffix, labels, value, ts, exemplar)| Sample { suffix, labels, value, ts, exemplar })
}

fn family() -> impl Strategy<Value = Family> {
    (
        metric_name(),
        prop::option::of("[a-zA-Z0-9 \\\\\"\n.é]{0,20}"),
        prop::option::of(prop::sample::select(vec![
            MetricType::Counter,
            MetricType::Gauge,
            MetricType::Histogram,
            MetricType::Summary,
            MetricType::Unknown,
        ])),
        prop::collection::vec(sample(), 0..4),
    )
        .prop_map(|(name, help, mtype, samples)| Family {
            name,
            // A HELP text of blanks only reads back as empty (Prometheus
            // drops the separator and treats a blank rest as no text).
            help: help.map(|h| if h.chars().all(|c| c == ' ') { String::new() } else { h }),
            mtype,
            samples,
        })
}

fn quote(s: &str) -> String {
    format!("\"{}\"", escape(s))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn meta_name(n: &str) -> String {
    if is_valid_legacy_metric_name(n) {
        n.to_owned()
    } else {
        quote(n)
    }
}

fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn label_set(out: &mut String, name: Option<&str>, labels: &BTreeMap<String, String>, sep: &str) {
    let mut parts = Vec::new();
    if let Some(n) = name {
        parts.push(quote(n));
    }
    for (k, v) in labels {
        let k = if is_valid_legacy_label_name(k) { k.clone() } else { quote(k) };
        parts.push(format!("{k}={}", quote(v)));
    }
    out.push('{');
    out.push_str(&parts.join(sep));
    out.push('}');
}

fn series(out: &mut String, name: &str, labels: &BTreeMap<String, String>, sep: &str) {
    if is_valid_legacy_metric_name(name) {
        out.push_str(name);
        if !labels.is_empty() {
            label_set(out, None, labels, sep);
        }
    } else {
        label_set(out, Some(name), labels, sep);
    }
}

fn render(families: &[Family], format: Format) -> String {
    let om = format == Format::OpenMetrics;
    let mut out = String::new();
    for f in families {
        if let Some(h) = &f.help {
            let h = if om { escape(h) } else { h.replace('\\', "\\\\").replace('\n', "\\n") };
            writeln!(out, "# HELP {} {h}", meta_name(&f.name)).unwrap();
        }
        if let Some(t) = f.mtype {
            let word = if t == MetricType::Unknown && !om { "untyped" } else { t.as_str() };
            writeln!(out, "# TYPE {} {word}", meta_name(&f.name)).unwrap();
        }
        for s in &f.samples {
            // Text pages may use blanks liberally; OpenMetrics may not.
            series(&mut out, &format!("{}{}", f.name, s.suffix), &s.labels, if om { "," } else { ", " });
            write!(out, " {}", float(s.value)).unwrap();
            if let Some(ts) = s.ts {
                if om {
                    write!(out, " {}", float(ts as f64 / 1000.0)).unwrap();
                } else {
                    write!(out, " {ts}").unwrap();
                }
            }
            if let (true, Some((l, v, ts))) = (om, &s.exemplar) {
                out.push_str(" # ");
                label_set(&mut out, None, l, ",");
                write!(out, " {}", float(*v)).unwrap();
                if let Some(ts) = ts {
                    write!(out, " {}", float(*ts as f64 / 1000.0)).unwrap();
                }
            }
            out.push('\n');
        }
    }
    if om {
        out.push_str("# EOF\n");
    }
    out
}

type Got =
    (String, Vec<(String, String)>, u64, Option<i64>, Option<(Vec<(String, String)>, u64, Option<i64>)>);

fn bits(v: f64) -> u64 {
    if v.is_nan() {
        NORMAL_NAN_BITS
    } else {
        v.to_bits()
    }
}

fn pairs(l: &BTreeMap<String, String>) -> Vec<(String, String)> {
    l.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn expected(families: &[Family], format: Format) -> (Vec<Entry<'static>>, Vec<Got>) {
    let mut meta = Vec::new();
    let mut samples = Vec::new();
    for f in families {
        if let Some(h) = &f.help {
            meta.push(Entry::Help { metric: f.name.clone().into(), text: h.clone().into() });
        }
        if let Some(t) = f.mtype {
            meta.push(Entry::Type { metric: f.name.clone().into(), metric_type: t });
        }
        for s in &f.samples {
            let ex = match (&s.exemplar, format) {
                (Some((l, v, ts)), Format::OpenMetrics) => Some((pairs(l), bits(*v), *ts)),
                _ => None,
            };
            samples.push((format!("{}{}", f.name, s.suffix), pairs(&s.labels), bits(s.value), s.ts, ex));
        }
    }
    (meta, samples)
}

fn parse(page: &str, format: Format) -> (Vec<Entry<'static>>, Vec<Got>) {
    let mut meta = Vec::new();
    let mut samples = Vec::new();
    let mut scratch = LabelScratch::new();
    for e in Parser::new(page.as_bytes(), format) {
        match e.unwrap_or_else(|e| panic!("{e}\n{page}")) {
            Entry::Help { metric, text } => {
                meta.push(Entry::Help { metric: metric.into_owned().into(), text: text.into_owned().into() })
            }
            Entry::Type { metric, metric_type } => {
                meta.push(Entry::Type { metric: metric.into_owned().into(), metric_type })
            }
            Entry::Sample(s) => {
                let labels = s.labels.iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                // The Labels built from the entry agree with the iterator.
                let built = s.to_labels(&mut scratch);
                assert_eq!(built.metric_name(), Some(&*s.name));
                assert_eq!(built.len(), 1 + s.labels.iter().count());
                let ex = s.exemplar.map(|e| {
                    let l = e.labels.iter().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
                    (l, e.value.to_bits(), e.timestamp)
                });
                samples.push((s.name.into_owned(), labels, s.value.to_bits(), s.timestamp, ex));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    (meta, samples)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn text_round_trip(families in prop::collection::vec(family(), 0..6)) {
        let page = render(&families, Format::PrometheusText);
        prop_assert_eq!(parse(&page, Format::PrometheusText), expected(&families, Format::PrometheusText), "{}", page);
    }

    #[test]
    fn openmetrics_round_trip(families in prop::collection::vec(family(), 0..6)) {
        let page = render(&families, Format::OpenMetrics);
        prop_assert_eq!(parse(&page, Format::OpenMetrics), expected(&families, Format::OpenMetrics), "{}", page);
    }
}
