//! Parse throughput: the captured node_exporter page and a synthetic page
//! of 10k series with histograms, in both formats.
//!
//! Run: `cargo bench -p ember-textparse --bench parse`. Throughput is
//! reported in samples/s; page sizes are printed so MB/s follows.
#![allow(clippy::unwrap_used)]

use std::fmt::Write;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_textparse::{Entry, Format, LabelScratch, Parser};

fn read_page(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/exposition").join(name);
    std::fs::read(p).unwrap()
}

/// 10,000 series: 40 histogram families with 10 label combinations and 12
/// buckets + sum + count + created (150 series each) → 6,000, plus 4,000
/// gauges with two labels.
fn synthetic(format: Format) -> Vec<u8> {
    let om = format == Format::OpenMetrics;
    let mut s = String::new();
    let bounds = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf"];
    for f in 0..40 {
        let name = format!("http_request_duration_seconds_{f}");
        writeln!(s, "# HELP {name} Request latency in seconds.").unwrap();
        writeln!(s, "# TYPE {name} histogram").unwrap();
        for c in 0..10 {
            let labels = format!("handler=\"/api/v1/endpoint_{c}\",method=\"GET\",code=\"200\"");
            let mut cum = 0u64;
            for (i, b) in bounds.iter().enumerate() {
                cum += (i as u64 * 7919 + c) % 1000;
                writeln!(s, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}").unwrap();
            }
            writeln!(s, "{name}_sum{{{labels}}} {}", cum as f64 * 0.137).unwrap();
            writeln!(s, "{name}_count{{{labels}}} {cum}").unwrap();
            writeln!(s, "{name}_created{{{labels}}} 1.7e9").unwrap();
        }
    }
    for g in 0..4000 {
        writeln!(
            s,
            "node_resource_usage_bytes{{device=\"dev{}\",kind=\"k{}\"}} {}",
            g,
            g % 7,
            g as f64 * 1.5e3
        )
        .unwrap();
    }
    if om {
        s.push_str("# EOF\n");
    }
    s.into_bytes()
}

fn count_samples(input: &[u8], format: Format) -> u64 {
    Parser::new(input, format).filter(|e| matches!(e, Ok(Entry::Sample(_)))).count() as u64
}

/// The scrape loop's hot path on a cache hit: series text and value only.
fn parse_page(input: &[u8], format: Format) -> f64 {
    let mut sum = 0.0;
    for e in Parser::new(input, format) {
        if let Entry::Sample(s) = e.unwrap() {
            sum += s.value + s.series.len() as f64;
        }
    }
    sum
}

/// The cache-miss path: also build the label set of every sample.
fn parse_page_with_labels(input: &[u8], format: Format, scratch: &mut LabelScratch) -> usize {
    let mut n = 0;
    for e in Parser::new(input, format) {
        if let Entry::Sample(s) = e.unwrap() {
            n += s.to_labels(scratch).len();
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let pages = [
        ("node_exporter/text", read_page("node_exporter.txt"), Format::PrometheusText),
        ("node_exporter/openmetrics", read_page("node_exporter.om.txt"), Format::OpenMetrics),
        ("synthetic_10k/text", synthetic(Format::PrometheusText), Format::PrometheusText),
        ("synthetic_10k/openmetrics", synthetic(Format::OpenMetrics), Format::OpenMetrics),
    ];
    let mut g = c.benchmark_group("parse");
    for (name, input, format) in &pages {
        let samples = count_samples(input, *format);
        eprintln!("{name}: {} bytes, {samples} samples", input.len());
        g.throughput(Throughput::Elements(samples));
        g.bench_function(*name, |b| b.iter(|| parse_page(black_box(input), *format)));
    }
    g.finish();

    let mut g = c.benchmark_group("parse_and_build_labels");
    let mut scratch = LabelScratch::new();
    for (name, input, format) in &pages[2..] {
        g.throughput(Throughput::Elements(count_samples(input, *format)));
        g.bench_function(*name, |b| {
            b.iter(|| parse_page_with_labels(black_box(input), *format, &mut scratch))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
