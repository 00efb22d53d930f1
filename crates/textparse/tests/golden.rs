//! Golden tests on real pages captured into `testdata/exposition/`:
//!
//! * `node_exporter.txt`, `prometheus.txt`: Debian's node_exporter 1.5 and
//!   Prometheus 2.42 `/metrics` (text 0.0.4; neither build offers
//!   OpenMetrics);
//! * `node_exporter.om.txt`, `prometheus.om.txt`: the same pages re-rendered
//!   as OpenMetrics 1.0 by the official Python client (`prometheus_client`
//!   0.26 `text_string_to_metric_families` + `openmetrics.exposition`);
//! * `python_client.om.txt`, `python_client.txt`: a small exporter built
//!   on the Python client (counters with exemplars and `_created`, a gauge
//!   with a unit and escaped label values, histogram, summary, info,
//!   stateset, gaugehistogram), captured over HTTP in both formats.
//!
//! Each page is parsed completely, and every entry is cross-checked against
//! a simple line-based reference reader written here.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use ember_textparse::{Entry, Format, LabelScratch, MetricType, Parser, SampleEntry};

fn page(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/exposition").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    help: usize,
    types: usize,
    units: usize,
    comments: usize,
    samples: usize,
    exemplars: usize,
    timestamps: usize,
}

/// What a naive line reader sees: kinds of lines and, per sample line, the
/// series text and the value token. Good enough for these pages, whose
/// label values contain no `" # {"` and which have no timestamps except in
/// exemplars.
fn reference(text: &str, format: Format) -> (Counts, Vec<(String, String)>) {
    let mut c = Counts::default();
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() || line == "# EOF" {
            continue;
        }
        if line.starts_with("# HELP ") {
            c.help += 1;
        } else if line.starts_with("# TYPE ") {
            c.types += 1;
        } else if line.starts_with("# UNIT ") {
            c.units += 1;
        } else if line.starts_with('#') {
            c.comments += 1;
        } else {
            c.samples += 1;
            let main = match line.split_once(" # {") {
                Some((m, _)) if format == Format::OpenMetrics => {
                    c.exemplars += 1;
                    m
                }
                _ => line,
            };
            let (series, value) = main.rsplit_once(' ').unwrap();
            samples.push((series.to_owned(), value.to_owned()));
        }
    }
    (c, samples)
}

fn reference_value(s: &str) -> f64 {
    match s {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        _ => s.parse().unwrap(),
    }
}

fn parse_all(input: &[u8], format: Format) -> (Counts, Vec<SampleEntry<'_>>, Vec<Entry<'_>>) {
    let mut c = Counts::default();
    let mut samples = Vec::new();
    let mut meta = Vec::new();
    for e in Parser::new(input, format) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        match e {
            Entry::Help { .. } => {
                c.help += 1;
                meta.push(e);
            }
            Entry::Type { .. } => {
                c.types += 1;
                meta.push(e);
            }
            Entry::Unit { .. } => {
                c.units += 1;
                meta.push(e);
            }
            Entry::Comment(_) => c.comments += 1,
            Entry::Sample(s) => {
                c.samples += 1;
                c.exemplars += usize::from(s.exemplar.is_some());
                c.timestamps += usize::from(s.timestamp.is_some());
                samples.push(s);
            }
        }
    }
    (c, samples, meta)
}

fn check_page(name: &str, format: Format) -> usize {
    let input = page(name);
    let text = std::str::from_utf8(&input).unwrap();
    let (want, ref_samples) = reference(text, format);
    let (got, samples, _) = parse_all(&input, format);
    assert_eq!(got, want, "{name}");
    assert!(got.samples > 0);
    let mut scratch = LabelScratch::new();
    for (s, (series, value)) in samples.iter().zip(&ref_samples) {
        assert_eq!(s.series, series, "{name}");
        let v = reference_value(value);
        assert!(s.value == v || (s.value.is_nan() && v.is_nan()), "{name}: {} {} vs {v}", s.series, s.value);
        // The label set has the metric name plus every label once.
        let l = s.to_labels(&mut scratch);
        assert_eq!(l.metric_name(), Some(&*s.name));
        assert_eq!(l.len(), 1 + s.labels.iter().count(), "{}", s.series);
        assert!(s.series.starts_with(&*s.name));
    }
    got.samples
}

#[test]
fn node_exporter_text() {
    assert!(check_page("node_exporter.txt", Format::PrometheusText) > 500);
}

#[test]
fn node_exporter_openmetrics() {
    assert!(check_page("node_exporter.om.txt", Format::OpenMetrics) > 500);
}

#[test]
fn prometheus_text() {
    assert!(check_page("prometheus.txt", Format::PrometheusText) > 300);
}

#[test]
fn prometheus_openmetrics() {
    assert!(check_page("prometheus.om.txt", Format::OpenMetrics) > 300);
}

#[test]
fn python_client_text() {
    check_page("python_client.txt", Format::PrometheusText);
}

#[test]
fn python_client_openmetrics() {
    check_page("python_client.om.txt", Format::OpenMetrics);
}

/// Both renderings of a page carry the same samples (the Python client
/// writes `36.0` for `36` and sorts label names; values and label sets
/// must agree exactly).
#[test]
fn text_and_openmetrics_renderings_agree() {
    for name in ["node_exporter", "prometheus"] {
        let t = page(&format!("{name}.txt"));
        let o = page(&format!("{name}.om.txt"));
        let (_, ts, _) = parse_all(&t, Format::PrometheusText);
        let (_, os, _) = parse_all(&o, Format::OpenMetrics);
        // The Python client sorts label names, so compare label sets.
        let mut scratch = LabelScratch::new();
        let mut key = |s: &SampleEntry<'_>| (s.to_labels(&mut scratch).to_string(), s.value.to_bits());
        let mut tv: Vec<(String, u64)> = ts.iter().map(&mut key).collect();
        let mut ov: Vec<(String, u64)> = os.iter().map(&mut key).collect();
        tv.sort();
        ov.sort();
        assert_eq!(tv.len(), ov.len(), "{name}");
        for (a, b) in tv.iter().zip(&ov) {
            assert_eq!(a, b, "{name}");
        }
    }
}

/// Specific values, checked against the page text independently of the
/// parser: the line is found with a plain string search.
#[test]
fn specific_samples_match_grep() {
    let input = page("node_exporter.txt");
    let text = std::str::from_utf8(&input).unwrap();
    let (_, samples, _) = parse_all(&input, Format::PrometheusText);
    for prefix in ["node_uname_info{", "process_start_time_seconds ", "go_goroutines ", "node_load1 "] {
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap();
        let (series, value) = line.rsplit_once(' ').unwrap();
        let s = samples.iter().find(|s| s.series == series).unwrap();
        assert_eq!(s.value, value.parse::<f64>().unwrap());
    }
    let uname = samples.iter().find(|s| s.name == "node_uname_info").unwrap();
    let line = text.lines().find(|l| l.starts_with("node_uname_info{")).unwrap();
    let sysname = line.split("sysname=\"").nth(1).unwrap().split('"').next().unwrap();
    assert_eq!(uname.labels.iter().find(|(n, _)| n == "sysname").unwrap().1, sysname);
}

#[test]
fn python_client_openmetrics_details() {
    let input = page("python_client.om.txt");
    let (_, samples, meta) = parse_all(&input, Format::OpenMetrics);
    let find = |series: &str| samples.iter().find(|s| s.series == series).unwrap();

    let c = find(r#"http_requests_total{code="500",method="post"}"#);
    assert_eq!(c.value, 3.0);
    let ex = c.exemplar.as_ref().unwrap();
    assert_eq!(ex.labels.iter().collect::<Vec<_>>(), [("trace_id".into(), "abc123".into())]);
    assert_eq!((ex.value, ex.timestamp), (3.0, Some(1_795_824_747_390)));
    let mut scratch = LabelScratch::new();
    assert_eq!(ex.to_labels(&mut scratch).to_string(), r#"{trace_id="abc123"}"#);

    let created = find(r#"http_requests_created{code="200",method="get"}"#);
    assert_eq!(created.value, 1.795_824_747_390_381_8e9);

    let escaped = samples.iter().find(|s| s.name == "queue_depth_bytes").unwrap();
    assert_eq!(escaped.labels.iter().next().unwrap().1, "a\\b\"c\nd");
    assert_eq!(escaped.value, -12.5);
    assert_eq!(find(r#"queue_depth_bytes{queue="inf"}"#).value, f64::INFINITY);
    assert_eq!(find(r#"queue_depth_bytes{queue="nan"}"#).value.to_bits(), ember_model::NORMAL_NAN_BITS);

    let bucket = find(r#"request_latency_seconds_bucket{handler="/api",le="0.1"}"#);
    assert_eq!(bucket.exemplar.as_ref().unwrap().value, 0.07);

    assert!(meta.contains(&Entry::Unit { metric: "queue_depth_bytes".into(), unit: "bytes" }));
    assert!(meta.contains(&Entry::Help {
        metric: "queue_depth_bytes".into(),
        text: "Depth of the \"work\" queue\\with escapes\nand newline.".into()
    }));
    for (m, t) in [
        ("build", MetricType::Info),
        ("task_state", MetricType::StateSet),
        ("queue_wait_seconds", MetricType::GaugeHistogram),
        ("rpc_duration_seconds", MetricType::Summary),
    ] {
        assert!(meta.contains(&Entry::Type { metric: m.into(), metric_type: t }), "{m}");
    }
}
