//! The TSDB's self-monitoring metrics, under Prometheus's names so existing
//! dashboards work. Plain atomics: the hot paths add to them without locks,
//! and [`TsdbMetrics::render`] writes text exposition format 0.0.4.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Durations as a summary without quantiles (`_sum` and `_count`), which
/// is how dashboards use Prometheus's fsync summary (rate of sum over rate
/// of count).
#[derive(Debug, Default)]
pub struct DurationSummary {
    count: AtomicU64,
    /// Sum in nanoseconds, to keep it an integer atomic.
    sum_nanos: AtomicU64,
}

impl DurationSummary {
    /// Records one observation.
    pub fn observe(&self, d: std::time::Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9
    }
}

/// Counters and gauges of the head and the WAL.
#[derive(Debug)]
pub struct TsdbMetrics {
    pub head_series: AtomicI64,
    pub head_chunks: AtomicI64,
    pub head_chunks_created_total: AtomicU64,
    pub head_series_created_total: AtomicU64,
    pub head_samples_appended_total: AtomicU64,
    pub out_of_order_samples_total: AtomicU64,
    pub out_of_bounds_samples_total: AtomicU64,
    pub duplicate_samples_total: AtomicU64,
    pub head_min_time: AtomicI64,
    pub head_max_time: AtomicI64,
    pub wal_fsync_duration_seconds: DurationSummary,
    pub wal_corruptions_total: AtomicU64,
    pub wal_writes_failed_total: AtomicU64,
    pub wal_segment_current: AtomicI64,
    pub head_series_removed_total: AtomicU64,
    pub head_truncations_total: AtomicU64,
    pub checkpoint_creations_total: AtomicU64,
    pub checkpoint_creations_failed_total: AtomicU64,
    pub compactions_total: AtomicU64,
    pub compactions_failed_total: AtomicU64,
    pub blocks_loaded: AtomicI64,
    pub storage_blocks_bytes: AtomicI64,
    pub lowest_timestamp: AtomicI64,
    pub time_retentions_total: AtomicU64,
    pub size_retentions_total: AtomicU64,
    pub reloads_total: AtomicU64,
}

impl Default for TsdbMetrics {
    fn default() -> Self {
        TsdbMetrics::new()
    }
}

impl TsdbMetrics {
    pub fn new() -> TsdbMetrics {
        TsdbMetrics {
            head_series: AtomicI64::new(0),
            head_chunks: AtomicI64::new(0),
            head_chunks_created_total: AtomicU64::new(0),
            head_series_created_total: AtomicU64::new(0),
            head_samples_appended_total: AtomicU64::new(0),
            out_of_order_samples_total: AtomicU64::new(0),
            out_of_bounds_samples_total: AtomicU64::new(0),
            duplicate_samples_total: AtomicU64::new(0),
            head_min_time: AtomicI64::new(i64::MAX),
            head_max_time: AtomicI64::new(i64::MIN),
            wal_fsync_duration_seconds: DurationSummary::default(),
            wal_corruptions_total: AtomicU64::new(0),
            wal_writes_failed_total: AtomicU64::new(0),
            wal_segment_current: AtomicI64::new(0),
            head_series_removed_total: AtomicU64::new(0),
            head_truncations_total: AtomicU64::new(0),
            checkpoint_creations_total: AtomicU64::new(0),
            checkpoint_creations_failed_total: AtomicU64::new(0),
            compactions_total: AtomicU64::new(0),
            compactions_failed_total: AtomicU64::new(0),
            blocks_loaded: AtomicI64::new(0),
            storage_blocks_bytes: AtomicI64::new(0),
            lowest_timestamp: AtomicI64::new(i64::MAX),
            time_retentions_total: AtomicU64::new(0),
            size_retentions_total: AtomicU64::new(0),
            reloads_total: AtomicU64::new(0),
        }
    }

    /// Renders every metric in text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let ld = |a: &AtomicI64| a.load(Ordering::Relaxed) as f64;
        let lu = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let float = Some(("type", "float"));
        gauge(
            &mut out,
            "prometheus_tsdb_head_series",
            "Total number of series in the head block.",
            ld(&self.head_series),
        );
        gauge(
            &mut out,
            "prometheus_tsdb_head_chunks",
            "Total number of chunks in the head block.",
            ld(&self.head_chunks),
        );
        counter(
            &mut out,
            "prometheus_tsdb_head_chunks_created_total",
            "Total number of chunks created in the head",
            None,
            lu(&self.head_chunks_created_total),
        );
        counter(
            &mut out,
            "prometheus_tsdb_head_series_created_total",
            "Total number of series created in the head",
            None,
            lu(&self.head_series_created_total),
        );
        counter(
            &mut out,
            "prometheus_tsdb_head_samples_appended_total",
            "Total number of appended samples.",
            float,
            lu(&self.head_samples_appended_total),
        );
        counter(&mut out, "prometheus_tsdb_out_of_order_samples_total", "Total number of out of order samples ingestion failed attempts due to out of order being disabled.", float, lu(&self.out_of_order_samples_total));
        counter(&mut out, "prometheus_tsdb_out_of_bound_samples_total", "Total number of out of bound samples ingestion failed attempts with out of order support disabled.", float, lu(&self.out_of_bounds_samples_total));
        // Prometheus counts these only at the scrape layer; the TSDB-level
        // count is ember's own, hence the ember_ prefix.
        counter(
            &mut out,
            "ember_tsdb_duplicate_samples_total",
            "Total number of samples rejected for a duplicate timestamp with a different value.",
            None,
            lu(&self.duplicate_samples_total),
        );
        // An empty head reports 0/0 rather than the sentinels, so the
        // values stay well-formed numbers.
        let (mint, maxt) =
            (self.head_min_time.load(Ordering::Relaxed), self.head_max_time.load(Ordering::Relaxed));
        let (mint, maxt) = if mint > maxt { (0, 0) } else { (mint, maxt) };
        gauge(
            &mut out,
            "prometheus_tsdb_head_min_time",
            "Minimum time bound of the head block.",
            mint as f64,
        );
        gauge(&mut out, "prometheus_tsdb_head_max_time", "Maximum timestamp of the head block.", maxt as f64);
        let h = &self.wal_fsync_duration_seconds;
        let _ =
            writeln!(out, "# HELP prometheus_tsdb_wal_fsync_duration_seconds Duration of write log fsync.");
        let _ = writeln!(out, "# TYPE prometheus_tsdb_wal_fsync_duration_seconds summary");
        let _ = writeln!(out, "prometheus_tsdb_wal_fsync_duration_seconds_sum {}", fmt_f64(h.sum_seconds()));
        let _ = writeln!(out, "prometheus_tsdb_wal_fsync_duration_seconds_count {}", h.count());
        counter(
            &mut out,
            "prometheus_tsdb_wal_corruptions_total",
            "Total number of WAL corruptions.",
            None,
            lu(&self.wal_corruptions_total),
        );
        counter(
            &mut out,
            "prometheus_tsdb_wal_writes_failed_total",
            "Total number of write log writes that failed.",
            None,
            lu(&self.wal_writes_failed_total),
        );
        gauge(
            &mut out,
            "prometheus_tsdb_wal_segment_current",
            "Write log segment index that TSDB is currently writing to.",
            ld(&self.wal_segment_current),
        );
        let counters: [(&str, &str, &AtomicU64); 9] = [
            ("prometheus_tsdb_head_series_removed_total", "Total number of series removed in the head", &self.head_series_removed_total),
            ("prometheus_tsdb_head_truncations_total", "Total number of head truncations attempted.", &self.head_truncations_total),
            ("prometheus_tsdb_checkpoint_creations_total", "Total number of checkpoint creations attempted.", &self.checkpoint_creations_total),
            ("prometheus_tsdb_checkpoint_creations_failed_total", "Total number of checkpoint creations that failed.", &self.checkpoint_creations_failed_total),
            ("prometheus_tsdb_compactions_total", "Total number of compactions that were executed for the partition.", &self.compactions_total),
            ("prometheus_tsdb_compactions_failed_total", "Total number of compactions that failed for the partition.", &self.compactions_failed_total),
            ("prometheus_tsdb_time_retentions_total", "The number of times that blocks were deleted because the maximum time limit was exceeded.", &self.time_retentions_total),
            ("prometheus_tsdb_size_retentions_total", "The number of times that blocks were deleted because the maximum number of bytes was exceeded.", &self.size_retentions_total),
            ("prometheus_tsdb_reloads_total", "Number of times the database reloaded block data from disk.", &self.reloads_total),
        ];
        for (name, help, v) in counters {
            counter(&mut out, name, help, None, lu(v));
        }
        gauge(
            &mut out,
            "prometheus_tsdb_blocks_loaded",
            "Number of currently loaded data blocks",
            ld(&self.blocks_loaded),
        );
        gauge(
            &mut out,
            "prometheus_tsdb_storage_blocks_bytes",
            "The number of bytes that are currently used for local storage by all blocks.",
            ld(&self.storage_blocks_bytes),
        );
        let lowest = self.lowest_timestamp.load(Ordering::Relaxed);
        gauge(
            &mut out,
            "prometheus_tsdb_lowest_timestamp",
            "Lowest timestamp value stored in the database. The unit is decided by the library consumer.",
            if lowest == i64::MAX { 0.0 } else { lowest as f64 },
        );
        out
    }
}

fn fmt_f64(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn gauge(out: &mut String, name: &str, help: &str, v: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", fmt_f64(v));
}

fn counter(out: &mut String, name: &str, help: &str, label: Option<(&str, &str)>, v: u64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    match label {
        Some((k, lv)) => {
            let _ = writeln!(out, "{name}{{{k}=\"{lv}\"}} {v}");
        }
        None => {
            let _ = writeln!(out, "{name} {v}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_format() {
        let m = TsdbMetrics::new();
        m.head_series.store(3, Ordering::Relaxed);
        m.head_samples_appended_total.store(42, Ordering::Relaxed);
        m.wal_fsync_duration_seconds.observe(std::time::Duration::from_millis(2));
        let s = m.render();
        assert!(s.contains("# TYPE prometheus_tsdb_head_series gauge\nprometheus_tsdb_head_series 3\n"));
        assert!(s.contains("prometheus_tsdb_head_samples_appended_total{type=\"float\"} 42\n"));
        assert!(s.contains("# TYPE prometheus_tsdb_wal_fsync_duration_seconds summary\n"));
        assert!(s.contains("prometheus_tsdb_out_of_order_samples_total{type=\"float\"} 0\n"));
        assert!(s.contains("prometheus_tsdb_wal_fsync_duration_seconds_count 1\n"));
        assert!(s.contains("prometheus_tsdb_wal_fsync_duration_seconds_sum 0.002\n"));
        assert!(s.contains("prometheus_tsdb_head_min_time 0\n"), "empty head shows 0");
        // Every non-comment line is `name{labels} value` with a numeric value.
        for line in s.lines().filter(|l| !l.starts_with('#')) {
            let v = line.rsplit(' ').next().unwrap();
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
    }
}
