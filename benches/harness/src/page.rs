//! The synthetic exposition page: a fixed set of series whose label text is
//! rendered once, so that a scrape only formats numbers. This keeps the
//! exporter far cheaper than any server scraping it.
//!
//! Families (per target; `S` series in total, split roughly 25/10/20/15/30 %):
//! * `bench_http_requests_total` counter, labels method, code, path, shard (4)
//! * `bench_http_errors_total` counter, labels method, path, shard (3)
//! * `bench_queue_depth` gauge, labels queue, shard, zone, pod, region, tier (6)
//! * `bench_memory_bytes` gauge, labels area, shard, zone, pod, node (5)
//! * `bench_request_duration_seconds` classic histogram, labels method, path,
//!   shard (+ `le`), 10 finite buckets + `+Inf`, `_sum`, `_count` = 13 series
//!   per histogram.
//!
//! Values are pure functions of (series, target, scrape number), so every
//! value changes on every scrape, counters and buckets only grow, and a
//! histogram's buckets stay cumulative.

use std::fmt::Write as _;

/// Series of one classic histogram: 10 finite buckets, `+Inf`, `_sum`, `_count`.
pub const SERIES_PER_HISTOGRAM: usize = 13;

/// Upper bounds of the finite buckets.
pub const BUCKETS: [&str; 10] = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5"];

const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const CODES: [&str; 3] = ["200", "404", "500"];
const PATHS: [&str; 8] = [
    "/api/v1/items",
    "/api/v1/users",
    "/api/v2/items",
    "/api/v2/orders",
    "/static/app.js",
    "/static/app.css",
    "/healthz",
    "/login",
];
const ZONES: [&str; 3] = ["z1", "z2", "z3"];
const REGIONS: [&str; 2] = ["eu", "us"];
const TIERS: [&str; 2] = ["gold", "silver"];
const AREAS: [&str; 3] = ["heap", "stack", "mmap"];

/// How a series' value evolves with the scrape number `n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// `base + n * rate`, an integer.
    Counter { base: u64, rate: u64 },
    /// `((seed + n * 7919) mod 10007) / 10`, one decimal: changes every scrape
    /// because 7919 is not a multiple of the prime 10007.
    Gauge { seed: u64 },
    /// `(base + n * inc) / 1000`, three decimals (histogram `_sum`).
    Milli { base: u64, inc: u64 },
}

/// One series line: its precomputed text up to the value (including any
/// `# HELP`/`# TYPE` lines before it and the separating space), and its value.
#[derive(Debug, Clone)]
struct Line {
    prefix: String,
    value: Value,
}

/// All series of one target page, ready to render.
#[derive(Debug, Clone)]
pub struct PageTemplate {
    lines: Vec<Line>,
    /// Rendered size estimate, to allocate each page once.
    capacity: usize,
}

/// How many series of each family a page with `series` series has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FamilySizes {
    pub requests: usize,
    pub errors: usize,
    pub queue_depth: usize,
    pub memory: usize,
    pub histograms: usize,
}

impl FamilySizes {
    /// Splits `series` over the families; the counter family absorbs the
    /// rounding so the total is exact for every `series`.
    pub fn for_series(series: usize) -> FamilySizes {
        let histograms = series * 30 / 100 / SERIES_PER_HISTOGRAM;
        let errors = series * 10 / 100;
        let queue_depth = series * 20 / 100;
        let memory = series * 15 / 100;
        let used = histograms * SERIES_PER_HISTOGRAM + errors + queue_depth + memory;
        FamilySizes { requests: series - used, errors, queue_depth, memory, histograms }
    }

    pub fn total(&self) -> usize {
        self.requests + self.errors + self.queue_depth + self.memory + self.histograms * SERIES_PER_HISTOGRAM
    }
}

/// Picks `values[j mod len]` and divides `j` by `len` (mixed-radix digits),
/// so that the last label (`shard` = what is left of `j`) makes every label
/// set of a family unique.
fn digit<'a>(j: &mut usize, values: &[&'a str]) -> &'a str {
    let v = values[*j % values.len()];
    *j /= values.len();
    v
}

/// A small deterministic mix so that bases and rates differ between series.
fn mix(i: usize, salt: u64) -> u64 {
    let mut x = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 29)
}

impl PageTemplate {
    /// The template for a target page with exactly `series` series. One
    /// template serves every target: the label text is the same (the
    /// scraping server adds `instance`), values differ by target.
    pub fn new(series: usize) -> PageTemplate {
        let sizes = FamilySizes::for_series(series);
        debug_assert_eq!(sizes.total(), series);
        let salt = 1;
        let mut lines = Vec::with_capacity(series);
        let mut header = String::new();

        let mut push = |header: &mut String, series_text: String, value: Value| {
            let mut prefix = std::mem::take(header);
            prefix.push_str(&series_text);
            prefix.push(' ');
            lines.push(Line { prefix, value });
        };
        let counter =
            |i: usize, k: u64| Value::Counter { base: mix(i, salt + k) % 100_000, rate: 1 + mix(i, k) % 50 };

        header.push_str("# HELP bench_http_requests_total Synthetic requests served.\n");
        header.push_str("# TYPE bench_http_requests_total counter\n");
        for i in 0..sizes.requests {
            let mut j = i;
            let (m, c, p) = (digit(&mut j, &METHODS), digit(&mut j, &CODES), digit(&mut j, &PATHS));
            let text = format!(
                "bench_http_requests_total{{method=\"{m}\",code=\"{c}\",path=\"{p}\",shard=\"{j}\"}}"
            );
            push(&mut header, text, counter(i, 1));
        }

        header.push_str("# HELP bench_http_errors_total Synthetic failed requests.\n");
        header.push_str("# TYPE bench_http_errors_total counter\n");
        for i in 0..sizes.errors {
            let mut j = i;
            let (m, p) = (digit(&mut j, &METHODS), digit(&mut j, &PATHS));
            let text = format!("bench_http_errors_total{{method=\"{m}\",path=\"{p}\",shard=\"{j}\"}}");
            push(&mut header, text, counter(i, 2));
        }

        header.push_str("# HELP bench_queue_depth Synthetic queue depth.\n");
        header.push_str("# TYPE bench_queue_depth gauge\n");
        for i in 0..sizes.queue_depth {
            let mut j = i;
            let q = i % 16;
            let (z, r, t) = (digit(&mut j, &ZONES), digit(&mut j, &REGIONS), digit(&mut j, &TIERS));
            let pod = i % 50;
            let text = format!(
                "bench_queue_depth{{queue=\"q{q}\",shard=\"{j}\",zone=\"{z}\",pod=\"pod-{pod}\",region=\"{r}\",tier=\"{t}\"}}"
            );
            push(&mut header, text, Value::Gauge { seed: mix(i, salt + 3) % 10_007 });
        }

        header.push_str("# HELP bench_memory_bytes Synthetic memory use.\n");
        header.push_str("# TYPE bench_memory_bytes gauge\n");
        for i in 0..sizes.memory {
            let mut j = i;
            let (a, z) = (digit(&mut j, &AREAS), digit(&mut j, &ZONES));
            let (pod, node) = (i % 50, i % 7);
            let text = format!(
                "bench_memory_bytes{{area=\"{a}\",shard=\"{j}\",zone=\"{z}\",pod=\"pod-{pod}\",node=\"n{node}\"}}"
            );
            push(&mut header, text, Value::Gauge { seed: mix(i, salt + 4) % 10_007 });
        }

        header.push_str("# HELP bench_request_duration_seconds Synthetic request latency.\n");
        header.push_str("# TYPE bench_request_duration_seconds histogram\n");
        for i in 0..sizes.histograms {
            let mut j = i;
            let (m, p) = (digit(&mut j, &METHODS), digit(&mut j, &PATHS));
            let labels = format!("method=\"{m}\",path=\"{p}\",shard=\"{j}\"");
            // Per-bucket increments are positive, so cumulative sums grow
            // with `le` and the page stays a valid histogram at every scrape.
            let (mut base, mut inc) = (0u64, 0u64);
            for (b, le) in BUCKETS.iter().chain(std::iter::once(&"+Inf")).enumerate() {
                base += mix(i, salt + 10 + b as u64) % 1000;
                inc += 1 + mix(i, 20 + b as u64) % 3;
                let text = format!("bench_request_duration_seconds_bucket{{{labels},le=\"{le}\"}}");
                push(&mut header, text, Value::Counter { base, rate: inc });
            }
            let text = format!("bench_request_duration_seconds_sum{{{labels}}}");
            push(&mut header, text, Value::Milli { base: base * 37, inc: inc * 41 });
            let text = format!("bench_request_duration_seconds_count{{{labels}}}");
            push(&mut header, text, Value::Counter { base, rate: inc });
        }

        // Value text is at most ~24 bytes plus the newline.
        let capacity = lines.iter().map(|l| l.prefix.len() + 25).sum();
        PageTemplate { lines, capacity }
    }

    /// Number of series on the page.
    pub fn series(&self) -> usize {
        self.lines.len()
    }

    /// Renders the page of `target` for its scrape number `n` into `out`
    /// (cleared first).
    pub fn render_into(&self, target: usize, n: u64, out: &mut String) {
        // Targets are far apart on the same value curves, so their values
        // differ while each one still changes (and counters grow) per scrape.
        let n = n.wrapping_add((target as u64).wrapping_mul(1_000_003));
        out.clear();
        out.reserve(self.capacity);
        for line in &self.lines {
            out.push_str(&line.prefix);
            // Writing to a String cannot fail.
            let _ = match line.value {
                Value::Counter { base, rate } => write!(out, "{}", base.wrapping_add(n.wrapping_mul(rate))),
                Value::Gauge { seed } => {
                    let v = (seed + (n % 10_007) * 7919) % 10_007;
                    write!(out, "{}.{}", v / 10, v % 10)
                }
                Value::Milli { base, inc } => {
                    let v = base.wrapping_add(n.wrapping_mul(inc));
                    write!(out, "{}.{:03}", v / 1000, v % 1000)
                }
            };
            out.push('\n');
        }
    }

    /// Renders the page of `target` for its scrape number `n`.
    pub fn render(&self, target: usize, n: u64) -> String {
        let mut s = String::new();
        self.render_into(target, n, &mut s);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_textparse::{Entry, Format, MetricType, Parser};
    use std::collections::{BTreeMap, HashMap, HashSet};

    /// Parses a page with ember-textparse: (series text -> (name, labels, value)),
    /// and the declared TYPE per family.
    #[allow(clippy::type_complexity)]
    fn parse(page: &str) -> (Vec<(String, String, Vec<(String, String)>, f64)>, HashMap<String, MetricType>) {
        let mut samples = Vec::new();
        let mut types = HashMap::new();
        let mut helps = HashSet::new();
        for entry in Parser::new(page.as_bytes(), Format::PrometheusText) {
            match entry.unwrap() {
                Entry::Sample(s) => {
                    let labels =
                        s.labels.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<Vec<_>>();
                    assert!(s.timestamp.is_none());
                    samples.push((s.series.to_string(), s.name.to_string(), labels, s.value));
                }
                Entry::Type { metric, metric_type } => {
                    assert!(types.insert(metric.to_string(), metric_type).is_none(), "TYPE twice");
                }
                Entry::Help { metric, .. } => assert!(helps.insert(metric.to_string()), "HELP twice"),
                other => panic!("unexpected entry {other:?}"),
            }
        }
        assert_eq!(helps.len(), types.len(), "every family has HELP and TYPE");
        (samples, types)
    }

    #[test]
    fn family_sizes_add_up_exactly() {
        for s in [0, 1, 12, 13, 50, 99, 100, 1000, 1001, 12345, 100_000] {
            let sizes = FamilySizes::for_series(s);
            assert_eq!(sizes.total(), s, "series {s}: {sizes:?}");
        }
        let sizes = FamilySizes::for_series(1000);
        assert_eq!(sizes.histograms, 23);
        assert!(sizes.requests > 0 && sizes.errors > 0 && sizes.queue_depth > 0 && sizes.memory > 0);
    }

    #[test]
    fn page_is_valid_text_format_with_exact_unique_series() {
        for series in [1, 13, 100, 1000, 2500] {
            let t = PageTemplate::new(series);
            assert_eq!(t.series(), series);
            let page = t.render(3, 7);
            let (samples, types) = parse(&page);
            assert_eq!(samples.len(), series);
            let unique: HashSet<_> = samples.iter().map(|s| s.0.clone()).collect();
            assert_eq!(unique.len(), series, "label sets are unique");
            for (_, name, labels, value) in &samples {
                let family = name
                    .trim_end_matches("_bucket")
                    .trim_end_matches("_sum")
                    .trim_end_matches("_count")
                    .to_string();
                assert!(types.contains_key(&family), "{name} has a TYPE");
                assert!((3..=6).contains(&labels.len()), "{name} has {} labels", labels.len());
                assert!(value.is_finite() && *value >= 0.0);
            }
        }
    }

    #[test]
    fn families_have_expected_types_and_label_counts() {
        let (samples, types) = parse(&PageTemplate::new(1000).render(0, 1));
        assert_eq!(types["bench_http_requests_total"], MetricType::Counter);
        assert_eq!(types["bench_queue_depth"], MetricType::Gauge);
        assert_eq!(types["bench_request_duration_seconds"], MetricType::Histogram);
        let count = |n: &str| samples.iter().filter(|s| s.1 == n).count();
        let sizes = FamilySizes::for_series(1000);
        assert_eq!(count("bench_http_requests_total"), sizes.requests);
        assert_eq!(count("bench_request_duration_seconds_bucket"), sizes.histograms * 11);
        assert_eq!(count("bench_request_duration_seconds_count"), sizes.histograms);
        let q = samples.iter().find(|s| s.1 == "bench_queue_depth").unwrap();
        assert_eq!(q.2.len(), 6);
    }

    #[test]
    fn values_change_every_scrape_and_counters_grow() {
        let t = PageTemplate::new(500);
        let (a, types) = parse(&t.render(1, 10));
        let (b, _) = parse(&t.render(1, 11));
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0, "same series order");
            assert_ne!(x.3, y.3, "{} changed", x.0);
            let gauge = types.get(&x.1).is_some_and(|t| *t == MetricType::Gauge);
            if !gauge {
                assert!(y.3 > x.3, "{} grows", x.0);
            }
        }
        // Targets differ in values, not in label text.
        let (c, _) = parse(&t.render(2, 10));
        assert!(a.iter().zip(&c).all(|(x, z)| x.0 == z.0));
        assert!(a.iter().zip(&c).any(|(x, z)| x.3 != z.3));
    }

    #[test]
    fn histograms_are_cumulative_and_count_matches_inf() {
        for n in [0, 1, 1000] {
            let (samples, _) = parse(&PageTemplate::new(300).render(5, n));
            let mut buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            let mut counts = HashMap::new();
            for (_, name, labels, value) in &samples {
                let key: String =
                    labels.iter().filter(|(k, _)| k != "le").map(|(k, v)| format!("{k}={v},")).collect();
                if name == "bench_request_duration_seconds_bucket" {
                    let le = &labels.iter().find(|(k, _)| k == "le").unwrap().1;
                    let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap() };
                    buckets.entry(key).or_default().push((le, *value));
                } else if name == "bench_request_duration_seconds_count" {
                    counts.insert(key, *value);
                }
            }
            assert_eq!(buckets.len(), FamilySizes::for_series(300).histograms);
            for (key, mut b) in buckets {
                assert_eq!(b.len(), 11);
                b.sort_by(|x, y| x.0.total_cmp(&y.0));
                assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "{key} cumulative: {b:?}");
                assert_eq!(b[10].1, counts[&key], "{key} count == +Inf bucket");
            }
        }
    }
}
