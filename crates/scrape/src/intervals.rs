//! `prometheus_target_interval_length_seconds`: the summary Prometheus
//! keeps of the actual time between two scrapes of a target, one series
//! set per configured interval (label `interval`, Go's duration text such
//! as `15s` or `1m0s`), with quantiles 0.01, 0.05, 0.5, 0.9 and 0.99.
//!
//! client_golang computes the quantiles over a sliding 10-minute window;
//! here the window's observations are kept (up to a bound per interval)
//! and the quantiles are exact over them. `_sum` and `_count` cover the
//! whole run, as a summary's do.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The quantiles Prometheus reports, with their objectives' order.
pub const QUANTILES: [f64; 5] = [0.01, 0.05, 0.5, 0.9, 0.99];

/// client_golang's `DefMaxAge`.
const MAX_AGE: Duration = Duration::from_secs(600);

/// At most this many observations per interval are kept for the
/// quantiles (the oldest go first); bounds memory with many targets.
const MAX_KEPT: usize = 50_000;

/// One interval's summary as read: its label, `(quantile, value)` pairs,
/// sum and count.
pub type SummarySnapshot = (String, Vec<(f64, f64)>, f64, u64);

#[derive(Debug, Default)]
struct Summary {
    window: VecDeque<(Instant, f64)>,
    sum: f64,
    count: u64,
}

/// All intervals' summaries; shared by every loop of a manager.
#[derive(Debug, Default)]
pub struct IntervalSummaries {
    by_interval: Mutex<BTreeMap<String, Summary>>,
}

/// Go's `time.Duration.String()` for the `interval` label (`1m0s`,
/// `15s`, `100ms`, `1.5s`).
pub fn go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        // Sub-second: the largest unit that keeps an integer part.
        let (unit, div) = if nanos < 1_000 {
            ("ns", 1u128)
        } else if nanos < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{}{unit}", frac(nanos, div));
    }
    let total_secs = nanos / 1_000_000_000;
    let h = total_secs / 3600;
    let m = (total_secs % 3600) / 60;
    let s_nanos = nanos % 60_000_000_000;
    let mut out = String::new();
    if h > 0 {
        let _ = write!(out, "{h}h");
    }
    if h > 0 || m > 0 {
        let _ = write!(out, "{m}m");
    }
    let _ = write!(out, "{}s", frac(s_nanos, 1_000_000_000));
    out
}

/// `n / div` with the fraction's trailing zeros cut.
fn frac(n: u128, div: u128) -> String {
    let int = n / div;
    let rest = n % div;
    if rest == 0 {
        return int.to_string();
    }
    let width = div.ilog10() as usize;
    let f = format!("{rest:0width$}");
    format!("{int}.{}", f.trim_end_matches('0'))
}

impl IntervalSummaries {
    pub fn new() -> IntervalSummaries {
        IntervalSummaries::default()
    }

    /// Records that a target configured for `interval` was scraped
    /// `actual` after its previous scrape.
    pub fn observe(&self, interval: Duration, actual: Duration) {
        self.observe_at(&go_duration(interval), actual.as_secs_f64(), Instant::now());
    }

    fn observe_at(&self, label: &str, v: f64, now: Instant) {
        let mut m = self.by_interval.lock().unwrap_or_else(|e| e.into_inner());
        let s = m.entry(label.to_owned()).or_default();
        s.sum += v;
        s.count += 1;
        s.window.push_back((now, v));
        if s.window.len() > MAX_KEPT {
            s.window.pop_front();
        }
    }

    /// `(interval label, [(quantile, value)], sum, count)` per interval;
    /// a quantile of an empty window is NaN, as client_golang reports it.
    pub fn snapshot(&self) -> Vec<SummarySnapshot> {
        let now = Instant::now();
        let mut m = self.by_interval.lock().unwrap_or_else(|e| e.into_inner());
        m.iter_mut()
            .map(|(label, s)| {
                while s.window.front().is_some_and(|(t, _)| now.duration_since(*t) > MAX_AGE) {
                    s.window.pop_front();
                }
                let mut vals: Vec<f64> = s.window.iter().map(|(_, v)| *v).collect();
                vals.sort_by(f64::total_cmp);
                let qs = QUANTILES
                    .iter()
                    .map(|q| {
                        if vals.is_empty() {
                            return (*q, f64::NAN);
                        }
                        // The rank-q element (nearest rank).
                        let idx = ((q * vals.len() as f64).ceil() as usize).clamp(1, vals.len()) - 1;
                        (*q, vals[idx])
                    })
                    .collect();
                (label.clone(), qs, s.sum, s.count)
            })
            .collect()
    }

    /// The summary in the text exposition format.
    pub fn render(&self, out: &mut String) {
        let snap = self.snapshot();
        if snap.is_empty() {
            return;
        }
        let name = "prometheus_target_interval_length_seconds";
        let _ = writeln!(out, "# HELP {name} Actual intervals between scrapes.");
        let _ = writeln!(out, "# TYPE {name} summary");
        for (label, qs, sum, count) in snap {
            let l = label.replace('\\', "\\\\").replace('"', "\\\"");
            for (q, v) in qs {
                let _ = writeln!(out, "{name}{{interval=\"{l}\",quantile=\"{q}\"}} {}", fmt_float(v));
            }
            let _ = writeln!(out, "{name}_sum{{interval=\"{l}\"}} {}", fmt_float(sum));
            let _ = writeln!(out, "{name}_count{{interval=\"{l}\"}} {count}");
        }
    }
}

fn fmt_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_text() {
        assert_eq!(go_duration(Duration::from_secs(15)), "15s");
        assert_eq!(go_duration(Duration::from_secs(60)), "1m0s");
        assert_eq!(go_duration(Duration::from_secs(3661)), "1h1m1s");
        assert_eq!(go_duration(Duration::from_millis(100)), "100ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_micros(1500)), "1.5ms");
        assert_eq!(go_duration(Duration::from_secs(7200)), "2h0m0s");
    }

    #[test]
    fn quantiles_sum_count_and_window() {
        let s = IntervalSummaries::new();
        let t0 = Instant::now();
        for i in 1..=100 {
            s.observe_at("1s", i as f64 / 100.0, t0);
        }
        let snap = s.snapshot();
        assert_eq!(snap.len(), 1);
        let (label, qs, sum, count) = &snap[0];
        assert_eq!(label, "1s");
        assert_eq!(*count, 100);
        assert!((sum - 50.5).abs() < 1e-9);
        assert_eq!(qs, &vec![(0.01, 0.01), (0.05, 0.05), (0.5, 0.5), (0.9, 0.9), (0.99, 0.99)]);
        let mut out = String::new();
        s.render(&mut out);
        assert!(out.contains("# TYPE prometheus_target_interval_length_seconds summary\n"), "{out}");
        assert!(
            out.contains("prometheus_target_interval_length_seconds{interval=\"1s\",quantile=\"0.5\"} 0.5\n")
        );
        assert!(out.contains("prometheus_target_interval_length_seconds_count{interval=\"1s\"} 100\n"));
    }
}
