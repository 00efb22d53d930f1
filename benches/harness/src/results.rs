//! The result model of one run: serialised as JSON, rendered as markdown.
//! Every figure is an `Option`: `None` is reported as "n/a" (with the reason
//! in `errors`), so a server that cannot do a step never fails the run.

use serde::Serialize;

use crate::blocks::BlockFigures;
use crate::load::LoadFigures;
use crate::queries::Kind;

#[derive(Debug, Clone, Serialize)]
pub struct Params {
    pub targets: usize,
    pub series: usize,
    pub interval_s: u64,
    pub duration_s: u64,
    pub query_runs: usize,
    /// Repeats of the query and restart measurements.
    pub repeats: usize,
    /// Block range given to Prometheus and ember (min = max), if any.
    pub block_range_s: Option<u64>,
    /// How far back range queries reach (from the end, at most from the
    /// server's readiness).
    pub range_window_s: u64,
    pub load_clients: usize,
    pub load_duration_s: u64,
    pub servers: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub cpus: usize,
    pub loadavg_start: String,
    pub loadavg_end: String,
    /// The harness's own peak RSS (`VmHWM`), to show it stays small.
    pub harness_peak_rss_bytes: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExporterFigures {
    /// Scrapes served during the ingestion window (all servers, all targets).
    pub scrapes: u64,
    pub cpu_seconds: f64,
    pub cpu_us_per_scrape: Option<f64>,
    /// Exporter CPU as a fraction of one core over the window.
    pub core_share: f64,
    pub mib_served: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Ingest {
    /// Seconds from the server's readiness to the end of ingestion.
    pub window_s: f64,
    /// Samples scraped from the exporter in the window
    /// (`sum(sum_over_time(scrape_samples_scraped[window]))`).
    pub samples: Option<f64>,
    pub cpu_seconds: Option<f64>,
    pub cpu_s_per_million_samples: Option<f64>,
    /// `VmHWM` at the end of ingestion.
    pub peak_rss_bytes: Option<u64>,
    /// Median `VmRSS` over the second half of the window.
    pub steady_rss_bytes: Option<u64>,
    /// `count({__name__=~"bench_.+"})` at the end.
    pub active_series: Option<f64>,
    pub expected_series: usize,
    pub steady_rss_bytes_per_series: Option<f64>,
    pub peak_rss_bytes_per_series: Option<f64>,
    /// `sum(count_over_time(up[window]))` and K × window / interval.
    pub scrapes_seen: Option<f64>,
    pub scrapes_expected: f64,
    pub max_scrape_duration_s: Option<f64>,
    pub min_up: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryFigures {
    pub name: String,
    pub kind: Kind,
    pub text: String,
    /// Median across repeats of each repeat's median (and p90) of its runs.
    pub median_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    /// Each repeat's latencies (ms) of its successful runs.
    pub repeat_latencies_ms: Vec<Vec<f64>>,
    pub ok_runs: usize,
    pub failed_runs: usize,
    /// Series (or values) in the answer of the first successful run.
    pub result_len: Option<usize>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Restart {
    pub signal: String,
    /// Which repeat (0-based) this restart belongs to.
    pub repeat: usize,
    pub stop_s: Option<f64>,
    pub ready_s: Option<f64>,
    pub ready_cpu_s: Option<f64>,
    /// Samples of `bench_http_requests_total` of the first target over the
    /// server's life at a fixed time just before the signal, queried before
    /// and after the restart (see `run::loss_exprs`).
    pub samples_before: Option<f64>,
    pub samples_after: Option<f64>,
    pub samples_lost: Option<f64>,
    /// The same for `up` of every target: scrapes lost.
    pub scrapes_before: Option<f64>,
    pub scrapes_after: Option<f64>,
    pub scrapes_lost: Option<f64>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// Bytes of all files in the data dir after a graceful stop.
    pub bytes: u64,
    /// Exporter samples scraped over the server's life before the stop.
    pub samples: Option<f64>,
    pub bytes_per_sample: Option<f64>,
}

/// Persisted storage at the end of ingestion (see `blocks`), or why
/// there is no figure.
#[derive(Debug, Clone, Serialize)]
pub struct Stored {
    pub figures: Option<BlockFigures>,
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerResult {
    pub name: String,
    pub version: Option<String>,
    pub command: Vec<String>,
    pub startup_s: Option<f64>,
    pub startup_cpu_s: Option<f64>,
    pub ingest: Option<Ingest>,
    pub queries: Vec<QueryFigures>,
    pub load: Option<LoadFigures>,
    pub restarts: Vec<Restart>,
    pub disk: Option<Disk>,
    pub stored: Option<Stored>,
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub started_at: String,
    pub params: Params,
    pub host: Host,
    pub exporter: Option<ExporterFigures>,
    pub servers: Vec<ServerResult>,
    pub notes: Vec<String>,
}
