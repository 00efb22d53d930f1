//! `ember-bench run`: exporter + servers side by side, then ingestion,
//! queries and restarts, then the report.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::exporter::ExporterStats;
use crate::queries::{self, Span};
use crate::results::*;
use crate::servers::{self, Running, ServerSpec};
use crate::{blocks, http, load, procfs, report, stats};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("exporter: {0}")]
    Exporter(String),
    #[error("unknown server {0:?} (known: prometheus, victoriametrics, ember)")]
    UnknownServer(String),
    #[error("{0}")]
    Params(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> RunError {
    let what = what.into();
    move |source| RunError::Io { what, source }
}

/// Everything a run needs: the `run` subcommand's options.
#[derive(Debug, Clone, clap::Args)]
pub struct RunConfig {
    #[arg(long, default_value_t = 10)]
    pub targets: usize,
    #[arg(long, default_value_t = 1000)]
    pub series: usize,
    /// Scrape interval (Prometheus duration syntax).
    #[arg(long, default_value = "15s", value_parser = crate::parse_duration)]
    pub interval: Duration,
    /// How long the servers ingest before queries and restarts.
    #[arg(long, default_value = "10m", value_parser = crate::parse_duration)]
    pub duration: Duration,
    /// Measured runs per query (after one warm-up run).
    #[arg(long, default_value_t = 10)]
    pub query_runs: usize,
    /// Repeats of the query and restart measurements; figures are
    /// medians across repeats (of each repeat's median / p90).
    #[arg(long, default_value_t = 1)]
    pub repeats: usize,
    /// Block range (min = max block duration) for Prometheus and ember,
    /// so that blocks are written during the run (e.g. 5m); without it
    /// they keep the default 2h.
    #[arg(long, value_parser = crate::parse_duration)]
    pub block_range: Option<Duration>,
    /// How far back range queries reach (at most to the server's start).
    #[arg(long, default_value = "1h", value_parser = crate::parse_duration)]
    pub range_window: Duration,
    /// Concurrent query clients in the load phase (0: no load phase).
    #[arg(long, default_value_t = 8)]
    pub load_clients: usize,
    /// How long the load phase lasts on each server.
    #[arg(long, default_value = "1m", value_parser = crate::parse_duration)]
    pub load_duration: Duration,
    /// Servers to run, comma-separated: prometheus, victoriametrics, ember.
    /// The first is the baseline of the ratio columns.
    #[arg(long, value_delimiter = ',', default_value = "prometheus,victoriametrics")]
    pub servers: Vec<String>,
    #[arg(long, default_value = "/usr/bin/prometheus")]
    pub prometheus_bin: String,
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    pub victoriametrics_bin: String,
    #[arg(long, default_value = "target/release/ember")]
    pub ember_bin: String,
    #[arg(long, default_value_t = 29100)]
    pub exporter_port_base: u16,
    /// Servers listen on this port and the next ones, in --servers order.
    #[arg(long, default_value_t = 29090)]
    pub server_port_base: u16,
    #[arg(long, default_value = "target/bench-results")]
    pub out_dir: PathBuf,
    /// Keep the servers' data dirs (under the run's work dir).
    #[arg(long)]
    pub keep_data: bool,
    #[arg(long, default_value = "5m", value_parser = crate::parse_duration)]
    pub ready_timeout: Duration,
    #[arg(long, default_value = "2m", value_parser = crate::parse_duration)]
    pub query_timeout: Duration,
}

const API_TIMEOUT: Duration = Duration::from_secs(60);

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `20261128T012345Z` for file names.
pub fn stamp(unix: f64) -> String {
    let secs = unix as i64;
    let (y, m, d) = ember_model::time::civil_from_days(secs.div_euclid(86400));
    let sod = secs.rem_euclid(86400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

/// The Prometheus-style scrape config every server gets.
pub fn scrape_config(targets: usize, port_base: u16, interval: Duration) -> String {
    let secs = interval.as_secs().max(1);
    // Timeout a bit under the interval, as both servers require timeout ≤ interval.
    let timeout = secs.saturating_sub(1).clamp(1, 10);
    let mut s = format!(
        "global:\n  scrape_interval: {secs}s\n  scrape_timeout: {timeout}s\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets:\n"
    );
    for i in 0..targets {
        s.push_str(&format!("          - 127.0.0.1:{}\n", usize::from(port_base) + i));
    }
    s
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_owned())
}

fn version_of(spec: &ServerSpec) -> Option<String> {
    let flag = if spec.name == "victoriametrics" { "-version" } else { "--version" };
    let out = Command::new(&spec.bin).arg(flag).stdin(Stdio::null()).output().ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).map(str::to_owned);
    // Debian's VictoriaMetrics is built without version information; the
    // package that owns the binary still tells which release it is.
    line.or_else(|| package_version(&spec.bin))
}

fn package_version(bin: &str) -> Option<String> {
    let path = std::fs::canonicalize(bin).ok()?;
    let owner = Command::new("dpkg").arg("-S").arg(&path).stderr(Stdio::null()).output().ok()?;
    let owner = String::from_utf8_lossy(&owner.stdout);
    let package = owner.lines().next()?.split(':').next()?.trim().to_owned();
    let v = Command::new("dpkg-query").args(["-W", "-f=${Version}", &package]).output().ok()?;
    let v = String::from_utf8_lossy(&v.stdout).trim().to_owned();
    (!v.is_empty()).then(|| format!("Debian package {package} {v}"))
}

/// The exporter child process, stopped on drop.
struct ExporterProc {
    child: Child,
    stats_url: String,
}

impl ExporterProc {
    fn stats(&self) -> Result<(ExporterStats, f64), RunError> {
        let r = http::get(&self.stats_url, Duration::from_secs(5))
            .map_err(|e| RunError::Exporter(e.to_string()))?;
        let s = ExporterStats::parse(&String::from_utf8_lossy(&r.body))
            .ok_or_else(|| RunError::Exporter("malformed /stats".to_owned()))?;
        // Read CPU from outside too, so the figure is the same kind as the servers'.
        let cpu = procfs::cpu(self.child.id()).map(|c| c.seconds()).unwrap_or(s.cpu_seconds);
        Ok((s, cpu))
    }
}

impl Drop for ExporterProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_exporter(cfg: &RunConfig, work: &Path) -> Result<ExporterProc, RunError> {
    let exe = std::env::current_exe().map_err(io_err("locating ember-bench"))?;
    let log = std::fs::File::create(work.join("exporter.log")).map_err(io_err("exporter log"))?;
    let log2 = log.try_clone().map_err(io_err("exporter log"))?;
    let child = Command::new(exe)
        .args(["exporter", "--targets", &cfg.targets.to_string(), "--series", &cfg.series.to_string()])
        .args(["--port-base", &cfg.exporter_port_base.to_string()])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(io_err("starting exporter"))?;
    let mut proc =
        ExporterProc { child, stats_url: format!("http://127.0.0.1:{}/stats", cfg.exporter_port_base) };
    let t0 = Instant::now();
    loop {
        // All listeners bind before the first one serves, so /stats on the
        // first port answering means every target is up.
        if proc.stats().is_ok() {
            let last = usize::from(cfg.exporter_port_base) + cfg.targets - 1;
            if http::get(&format!("http://127.0.0.1:{last}/stats"), Duration::from_secs(5)).is_ok() {
                return Ok(proc);
            }
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            return Err(RunError::Exporter(format!(
                "exited with {status}; see {}/exporter.log",
                work.display()
            )));
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(RunError::Exporter("not serving after 60 s".to_owned()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One server's live state during the run.
struct Live {
    spec: ServerSpec,
    config: PathBuf,
    data: PathBuf,
    log: PathBuf,
    run: Option<Running>,
    /// Unix time the server first became ready, and its CPU seconds then.
    ready_at: Option<f64>,
    cpu_at_ready: Option<f64>,
    rss: Vec<(f64, u64)>,
    result: ServerResult,
}

impl Drop for Live {
    fn drop(&mut self) {
        if let Some(r) = self.run.as_mut() {
            let _ = r.child.kill();
            let _ = r.child.wait();
        }
    }
}

/// Runs the whole benchmark; returns the paths of the markdown and JSON.
pub fn run(cfg: &RunConfig) -> Result<(PathBuf, PathBuf), RunError> {
    if cfg.targets == 0 || cfg.series == 0 || cfg.query_runs == 0 || cfg.repeats == 0 {
        return Err(RunError::Params(
            "--targets, --series, --query-runs and --repeats must be > 0".to_owned(),
        ));
    }
    if cfg.block_range.is_some_and(|r| r.as_secs() < 60) {
        return Err(RunError::Params("--block-range must be at least 1m".to_owned()));
    }
    if let Some((i, dup)) = cfg.servers.iter().enumerate().find(|(i, s)| cfg.servers[..*i].contains(s)) {
        return Err(RunError::Params(format!("server {dup:?} listed twice (position {})", i + 1)));
    }
    if cfg.servers.is_empty() {
        return Err(RunError::Params("no servers given".to_owned()));
    }
    if cfg.interval.as_secs() == 0 {
        return Err(RunError::Params("--interval must be at least 1s".to_owned()));
    }
    if usize::from(cfg.exporter_port_base) + cfg.targets > 65536 {
        return Err(RunError::Params("exporter ports exceed 65535".to_owned()));
    }
    let started = now_unix();
    let stamp = stamp(started);
    let work = cfg.out_dir.join(format!("{stamp}-work"));
    std::fs::create_dir_all(&work).map_err(io_err(format!("creating {}", work.display())))?;
    // Absolute paths in the servers' command lines and in the report.
    let work = std::fs::canonicalize(&work).map_err(io_err(format!("resolving {}", work.display())))?;
    let out_dir = work.parent().map_or_else(|| cfg.out_dir.clone(), Path::to_path_buf);
    let config_path = work.join("scrape.yml");
    std::fs::write(&config_path, scrape_config(cfg.targets, cfg.exporter_port_base, cfg.interval))
        .map_err(io_err("writing scrape config"))?;
    let mut notes = vec![format!("work dir (logs, scrape config): {}", work.display())];
    let loadavg_start = loadavg();

    let mut lives = Vec::new();
    for (i, name) in cfg.servers.iter().enumerate() {
        let bin = match name.as_str() {
            "prometheus" => &cfg.prometheus_bin,
            "victoriametrics" => &cfg.victoriametrics_bin,
            "ember" => &cfg.ember_bin,
            other => return Err(RunError::UnknownServer(other.to_owned())),
        };
        let port = cfg
            .server_port_base
            .checked_add(i as u16)
            .ok_or_else(|| RunError::Params("server port".into()))?;
        let mut spec =
            ServerSpec::builtin(name, bin, port).ok_or_else(|| RunError::UnknownServer(name.clone()))?;
        if let Some(range) = cfg.block_range {
            spec = spec.with_block_range(range);
        }
        let (data, log) = servers::paths(&work, name);
        let result = ServerResult {
            name: name.clone(),
            version: version_of(&spec),
            command: spec.argv(&config_path, &data),
            startup_s: None,
            startup_cpu_s: None,
            ingest: None,
            queries: Vec::new(),
            load: None,
            restarts: Vec::new(),
            disk: None,
            stored: None,
            errors: Vec::new(),
        };
        lives.push(Live {
            spec,
            config: config_path.clone(),
            data,
            log,
            run: None,
            ready_at: None,
            cpu_at_ready: None,
            rss: Vec::new(),
            result,
        });
    }

    eprintln!("ember-bench: starting exporter ({} targets x {} series)", cfg.targets, cfg.series);
    let exporter = start_exporter(cfg, &work)?;

    // Start every server; they ingest side by side from the same exporter.
    for live in &mut lives {
        eprintln!("ember-bench: starting {}", live.spec.name);
        match servers::start(&live.spec, &config_path, &live.data, &live.log) {
            Ok(mut run) => match servers::wait_ready(&live.spec, &mut run, cfg.ready_timeout) {
                Ok((secs, cpu)) => {
                    live.result.startup_s = Some(secs);
                    live.result.startup_cpu_s = Some(cpu);
                    live.ready_at = Some(now_unix());
                    live.cpu_at_ready = Some(cpu);
                    live.run = Some(run);
                }
                Err(e) => {
                    live.result.errors.push(format!("{e}; log: {}", live.log.display()));
                    live.run = Some(run);
                    stop_quietly(live);
                }
            },
            Err(e) => live.result.errors.push(e.to_string()),
        }
    }

    // Ingestion: sample RSS every second for the configured duration.
    let (exp_start, exp_cpu_start) = exporter.stats()?;
    let ingest_start = Instant::now();
    eprintln!("ember-bench: ingesting for {:?}", cfg.duration);
    while ingest_start.elapsed() < cfg.duration {
        std::thread::sleep(Duration::from_secs(1));
        let t = now_unix();
        for live in &mut lives {
            if let Some(run) = &live.run {
                if let Ok(m) = procfs::memory(run.pid()) {
                    live.rss.push((t, m.rss));
                }
            }
        }
    }
    let ingest_end = now_unix();
    let (exp_end, exp_cpu_end) = exporter.stats()?;
    let window = ingest_start.elapsed().as_secs_f64();
    let exporter_figures = {
        let scrapes = exp_end.scrapes.saturating_sub(exp_start.scrapes);
        let cpu = exp_cpu_end - exp_cpu_start;
        ExporterFigures {
            scrapes,
            cpu_seconds: cpu,
            cpu_us_per_scrape: (scrapes > 0).then(|| cpu * 1e6 / scrapes as f64),
            core_share: cpu / window,
            mib_served: exp_end.bytes.saturating_sub(exp_start.bytes) as f64 / 1048576.0,
        }
    };

    for live in &mut lives {
        if live.run.is_some() {
            match ingest_figures(cfg, live, ingest_end) {
                Ok(ing) => live.result.ingest = Some(ing),
                Err(why) => {
                    live.result.errors.push(format!(
                        "does not ingest ({why}); ingestion, query, restart and disk figures skipped"
                    ));
                    stop_quietly(live);
                }
            }
        }
    }

    // Persisted storage, while every server still has the same history.
    for live in &mut lives {
        if live.run.is_some() {
            live.result.stored = Some(stored_figures(cfg, live, ingest_end));
        }
    }
    let out = Output { cfg, started, stamp: &stamp, out_dir: &out_dir, loadavg_start: &loadavg_start };
    out.checkpoint(&exporter_figures, &lives, &notes, "ingestion");

    // Queries: R repeats, each over every server in turn, so that noise
    // from other work on the machine spreads over all servers.
    let rate_window = (cfg.interval.as_secs() * 4).max(60);
    let set = queries::query_set(rate_window);
    for repeat in 0..cfg.repeats {
        for live in &mut lives {
            if live.run.is_some() {
                eprintln!(
                    "ember-bench: queries on {} (repeat {}/{})",
                    live.spec.name,
                    repeat + 1,
                    cfg.repeats
                );
                run_queries(cfg, live, &set, repeat);
            }
        }
    }
    for live in &mut lives {
        for q in &mut live.result.queries {
            q.median_ms = stats::median_of_quantiles(&q.repeat_latencies_ms, 0.5);
            q.p90_ms = stats::median_of_quantiles(&q.repeat_latencies_ms, 0.9);
        }
    }
    out.checkpoint(&exporter_figures, &lives, &notes, "queries");

    if cfg.load_clients > 0 && !cfg.load_duration.is_zero() {
        for live in &mut lives {
            if live.run.is_some() {
                eprintln!(
                    "ember-bench: load on {}: {} clients for {:?}",
                    live.spec.name, cfg.load_clients, cfg.load_duration
                );
                live.result.load = Some(load_phase(cfg, live, &set));
            }
        }
        out.checkpoint(&exporter_figures, &lives, &notes, "load");
    }

    // Restarts: per repeat, SIGTERM of every server in turn, then SIGKILL.
    for repeat in 0..cfg.repeats {
        for signal in ["TERM", "KILL"] {
            // Let fresh scrapes land so the signal hits recent data.
            std::thread::sleep(cfg.interval);
            for live in &mut lives {
                if live.run.is_some() {
                    eprintln!(
                        "ember-bench: SIG{signal} restart of {} (repeat {})",
                        live.spec.name,
                        repeat + 1
                    );
                    let r = restart(cfg, live, signal, repeat);
                    live.result.restarts.push(r);
                }
            }
        }
        out.checkpoint(&exporter_figures, &lives, &notes, &format!("restart repeat {}", repeat + 1));
    }
    for live in &mut lives {
        stop_quietly(live);
    }
    let exporter_final = exporter.stats().ok();
    drop(exporter);

    for live in &lives {
        if !cfg.keep_data {
            let _ = std::fs::remove_dir_all(&live.data);
        }
    }
    if let Some((s, _)) = exporter_final {
        notes.push(format!(
            "exporter over the whole run: {} scrapes, {:.2} CPU s (includes building the page template once)",
            s.scrapes, s.cpu_seconds
        ));
    }

    out.write(Some(exporter_figures), &lives, notes, "")
}

/// Where and how the report is written; it is written after every phase
/// too (marked partial), so that a run stopped early keeps what it measured.
struct Output<'a> {
    cfg: &'a RunConfig,
    started: f64,
    stamp: &'a str,
    out_dir: &'a Path,
    loadavg_start: &'a str,
}

impl Output<'_> {
    fn write(
        &self,
        exporter: Option<ExporterFigures>,
        lives: &[Live],
        mut notes: Vec<String>,
        partial: &str,
    ) -> Result<(PathBuf, PathBuf), RunError> {
        let cfg = self.cfg;
        if !partial.is_empty() {
            notes.insert(0, format!("PARTIAL REPORT: written after {partial}; the run had not finished"));
        }
        let result = BenchResult {
            started_at: ember_model::time::format_rfc3339((self.started * 1000.0) as i64),
            params: Params {
                targets: cfg.targets,
                series: cfg.series,
                interval_s: cfg.interval.as_secs(),
                duration_s: cfg.duration.as_secs(),
                query_runs: cfg.query_runs,
                repeats: cfg.repeats,
                block_range_s: cfg.block_range.map(|d| d.as_secs()),
                range_window_s: cfg.range_window.as_secs(),
                load_clients: cfg.load_clients,
                load_duration_s: cfg.load_duration.as_secs(),
                servers: cfg.servers.clone(),
            },
            host: Host {
                cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                loadavg_start: self.loadavg_start.to_owned(),
                loadavg_end: loadavg(),
                harness_peak_rss_bytes: procfs::memory(std::process::id()).ok().map(|m| m.hwm),
            },
            exporter,
            servers: lives.iter().map(|l| l.result.clone()).collect(),
            notes,
        };
        let md_path = self.out_dir.join(format!("{}.md", self.stamp));
        let json_path = self.out_dir.join(format!("{}.json", self.stamp));
        std::fs::write(&md_path, report::markdown(&result)).map_err(io_err("writing markdown"))?;
        let json = serde_json::to_string_pretty(&result)
            .map_err(|e| RunError::Io { what: "encoding JSON".into(), source: std::io::Error::other(e) })?;
        std::fs::write(&json_path, json).map_err(io_err("writing JSON"))?;
        Ok((md_path, json_path))
    }

    /// A partial report; failing to write it does not stop the run.
    fn checkpoint(&self, exporter: &ExporterFigures, lives: &[Live], notes: &[String], after: &str) {
        if let Err(e) = self.write(Some(exporter.clone()), lives, notes.to_vec(), after) {
            eprintln!("ember-bench: partial report: {e}");
        }
    }
}

fn stop_quietly(live: &mut Live) {
    if let Some(mut run) = live.run.take() {
        if let Err(e) = servers::stop(&live.spec, &mut run, "TERM", Duration::from_secs(60)) {
            live.result.errors.push(e.to_string());
        }
    }
}

/// The ingestion figures, or why the server has none: a server that
/// ingested no samples (ember before its scrape loop lands) is reported as
/// not ingesting, and its later phases are skipped.
fn ingest_figures(cfg: &RunConfig, live: &mut Live, end: f64) -> Result<Ingest, String> {
    let (Some(ready_at), Some(run)) = (live.ready_at, live.run.as_ref()) else {
        return Err("not running".to_owned());
    };
    let pid = run.pid();
    let base = live.spec.api();
    let window = end - ready_at;
    let w = window.floor().max(1.0) as u64;
    let expected_series = cfg.targets * cfg.series;
    let mut ing = Ingest {
        window_s: window,
        expected_series,
        scrapes_expected: (cfg.targets as f64) * window / cfg.interval.as_secs_f64(),
        ..Ingest::default()
    };
    let samples_expr = format!("sum(sum_over_time(scrape_samples_scraped[{w}s]))");
    match queries::instant_value(&base, &samples_expr, end, API_TIMEOUT) {
        Ok(Some(v)) if v > 0.0 => ing.samples = Some(v),
        Ok(_) => return Err(format!("`{samples_expr}` found no samples")),
        Err(e) => return Err(format!("`{samples_expr}`: {e}")),
    }
    let errors = &mut live.result.errors;
    let mut q = |what: &str, expr: String| match queries::instant_value(&base, &expr, end, API_TIMEOUT) {
        Ok(Some(v)) => Some(v),
        Ok(None) => {
            errors.push(format!("ingestion: {what}: `{expr}` returned no data"));
            None
        }
        Err(e) => {
            errors.push(format!("ingestion: {what}: `{expr}`: {e}"));
            None
        }
    };
    ing.scrapes_seen = q("scrapes", format!("sum(count_over_time(up[{w}s]))"));
    ing.max_scrape_duration_s =
        q("scrape duration", format!("max(max_over_time(scrape_duration_seconds[{w}s]))"));
    ing.min_up = q("up", format!("min(min_over_time(up[{w}s]))"));
    ing.active_series = q("series", "count({__name__=~\"bench_.+\"})".to_owned());

    let cpu_now = procfs::cpu(pid).map(|c| c.seconds()).ok();
    ing.cpu_seconds = cpu_now.zip(live.cpu_at_ready).map(|(a, b)| a - b);
    ing.cpu_s_per_million_samples =
        ing.cpu_seconds.zip(ing.samples.filter(|s| *s > 0.0)).map(|(c, s)| c / (s / 1e6));
    match procfs::memory(pid) {
        Ok(m) => ing.peak_rss_bytes = Some(m.hwm),
        Err(e) => live.result.errors.push(format!("ingestion: memory: {e}")),
    }
    let half = ready_at + window / 2.0;
    let late: Vec<f64> = live.rss.iter().filter(|(t, _)| *t >= half).map(|(_, r)| *r as f64).collect();
    ing.steady_rss_bytes = stats::median(&late).map(|v| v as u64);
    let series = ing.active_series.filter(|s| *s > 0.0);
    ing.steady_rss_bytes_per_series = ing.steady_rss_bytes.zip(series).map(|(r, s)| r as f64 / s);
    ing.peak_rss_bytes_per_series = ing.peak_rss_bytes.zip(series).map(|(r, s)| r as f64 / s);
    Ok(ing)
}

/// One repeat of the query set on one server: a warm-up call per query
/// in the first repeat (which also records the answer's size), then
/// `query_runs` timed calls whose answers are read and dropped.
fn run_queries(cfg: &RunConfig, live: &mut Live, set: &[queries::BenchQuery], repeat: usize) {
    let base = live.spec.api();
    let end = now_unix();
    let back = cfg.range_window.as_secs_f64();
    let start = live.ready_at.map_or(end - back, |r| r.max(end - back));
    let span = Span { start, end, step: cfg.interval.as_secs_f64() };
    if repeat == 0 {
        live.result.queries = set
            .iter()
            .map(|q| QueryFigures {
                name: q.name.to_owned(),
                kind: q.kind,
                text: q.text.clone(),
                median_ms: None,
                p90_ms: None,
                repeat_latencies_ms: Vec::new(),
                ok_runs: 0,
                failed_runs: 0,
                result_len: None,
                error: None,
            })
            .collect();
    }
    for (q, fig) in set.iter().zip(live.result.queries.iter_mut()) {
        let path = queries::path_for(q, span);
        if repeat == 0 {
            match queries::call_len(&base, &path, cfg.query_timeout) {
                Ok((_, n)) => fig.result_len = Some(n),
                Err(e) => fig.error = Some(format!("warm-up: {e}")),
            }
        }
        let mut lat = Vec::with_capacity(cfg.query_runs);
        for _ in 0..cfg.query_runs {
            let t = queries::call_timed(&base, &path, cfg.query_timeout);
            match t.outcome {
                queries::Outcome::Ok => lat.push(t.seconds * 1000.0),
                other => {
                    fig.failed_runs += 1;
                    fig.error.get_or_insert_with(|| other.kind());
                }
            }
        }
        fig.ok_runs += lat.len();
        fig.repeat_latencies_ms.push(lat);
    }
}

/// The persisted storage of a running server, or why there is none.
fn stored_figures(cfg: &RunConfig, live: &Live, end: f64) -> Stored {
    match blocks::measure(live.spec.block_probe, &live.spec.api(), &live.data, API_TIMEOUT) {
        Ok(f) => Stored { figures: Some(f), note: None },
        Err(blocks::BlockError::NoBlocks(_)) => {
            let window = live.ready_at.map_or(0.0, |r| end - r);
            Stored { figures: None, note: Some(no_block_reason(cfg.block_range, window)) }
        }
        Err(e) => Stored { figures: None, note: Some(format!("not measured: {e}")) },
    }
}

/// Why a Prometheus-format server has no block after `window` seconds:
/// a block is cut only once the head spans more than 1.5 block ranges, and
/// only when the compactor next runs (every minute).
pub fn no_block_reason(range: Option<Duration>, window: f64) -> String {
    let Some(range) = range else {
        return format!(
            "no block written: the run has no --block-range, and with the default 2 h range the first \
             block is cut after about 3 h; ingestion lasted {window:.0} s"
        );
    };
    let first = range.as_secs_f64() * 1.5;
    if window < first + 60.0 {
        format!(
            "no block written: ingestion lasted {window:.0} s, the first block of a {} s range is due once \
             the head spans {first:.0} s and the compactor runs (every 60 s)",
            range.as_secs()
        )
    } else {
        format!(
            "no block written although ingestion lasted {window:.0} s, past the {:.0} s by which the first \
             block of a {} s range is due: the server did not cut a block (see its log)",
            first + 60.0,
            range.as_secs()
        )
    }
}

/// Concurrent query load on one server while every server keeps scraping;
/// then whether its scraping kept up over the load window.
fn load_phase(cfg: &RunConfig, live: &Live, set: &[queries::BenchQuery]) -> load::LoadFigures {
    let base = live.spec.api();
    let end = now_unix();
    let back = cfg.range_window.as_secs_f64();
    let start = live.ready_at.map_or(end - back, |r| r.max(end - back));
    let span = Span { start, end, step: cfg.interval.as_secs_f64() };
    let paths: Vec<String> = set.iter().map(|q| queries::path_for(q, span)).collect();
    let t0 = now_unix();
    let (secs, calls) = load::drive(&base, &paths, cfg.load_clients, cfg.load_duration, cfg.query_timeout);
    let mut f = load::summarize(cfg.load_clients, secs, &calls);
    drop(calls);
    // Scrapes whose timestamps fall in the load window: a scrape carries
    // its start time, so wait out one scrape timeout for the last ones.
    let t1 = t0 + secs;
    std::thread::sleep(Duration::from_secs(cfg.interval.as_secs().saturating_sub(1).clamp(1, 10)));
    let w = secs.floor().max(1.0) as u64;
    f.scrapes_expected = cfg.targets as f64 * w as f64 / cfg.interval.as_secs_f64();
    let q = |expr: String| queries::instant_value(&base, &expr, t1, API_TIMEOUT).ok().flatten();
    f.scrapes_seen = q(format!("sum(count_over_time(up{{job=\"bench\"}}[{w}s]))"));
    f.max_scrape_duration_s =
        q(format!("max(max_over_time(scrape_duration_seconds{{job=\"bench\"}}[{w}s]))"));
    f.min_up = q(format!("min(min_over_time(up{{job=\"bench\"}}[{w}s]))"));
    f
}

/// Stops the server with `signal`, restarts it on the same data dir, and
/// checks how many samples before the signal survived.
fn restart(cfg: &RunConfig, live: &mut Live, signal: &'static str, repeat: usize) -> Restart {
    let mut r = Restart {
        signal: format!("SIG{signal}"),
        repeat,
        stop_s: None,
        ready_s: None,
        ready_cpu_s: None,
        samples_before: None,
        samples_after: None,
        samples_lost: None,
        scrapes_before: None,
        scrapes_after: None,
        scrapes_lost: None,
        error: None,
    };
    let base = live.spec.api();
    // The reference time is a second in the past so that appends in flight
    // (a scrape's samples carry its start time, and VictoriaMetrics makes
    // rows searchable about a second after ingestion) have landed before
    // the "before" count.
    let t0 = now_unix() - 1.0;
    let w = (t0 - live.ready_at.unwrap_or(t0 - 3600.0)).ceil().max(1.0) as u64 + cfg.interval.as_secs();
    let [series_expr, up_expr] = loss_exprs(cfg.exporter_port_base, w);
    // Cheap on purpose (one target's series, and `up`): at 200k series a
    // count over every series takes seconds, and data that arrives between
    // the reference time and the signal is not checked.
    let count = |expr: &str| queries::instant_value(&base, expr, t0, API_TIMEOUT);
    match (count(&series_expr), count(&up_expr)) {
        (Ok(v), Ok(u)) => (r.samples_before, r.scrapes_before) = (v, u),
        (Err(e), _) | (_, Err(e)) => r.error = Some(format!("query before: {e}")),
    }
    // The data dir after the first graceful stop: all exporter samples
    // over the server's life, for disk bytes per sample.
    let measure_disk = signal == "TERM" && live.result.disk.is_none();
    let total_samples = if measure_disk {
        let expr = format!("sum(sum_over_time(scrape_samples_scraped[{w}s]))");
        queries::instant_value(&base, &expr, t0, API_TIMEOUT).ok().flatten()
    } else {
        None
    };
    let Some(mut run) = live.run.take() else {
        r.error = Some("not running".to_owned());
        return r;
    };
    match servers::stop(&live.spec, &mut run, signal, Duration::from_secs(120)) {
        Ok(s) => r.stop_s = Some(s),
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    }
    if measure_disk {
        // Graceful stop: what is on disk now is what the server keeps.
        match procfs::dir_bytes(&live.data) {
            Ok(bytes) => {
                let bytes_per_sample = total_samples.filter(|s| *s > 0.0).map(|s| bytes as f64 / s);
                live.result.disk = Some(Disk { bytes, bytes_per_sample, samples: total_samples });
            }
            Err(e) => live.result.errors.push(format!("disk: {e}")),
        }
    }
    match servers::start(&live.spec, &live.config, &live.data, &live.log) {
        Ok(mut run) => match servers::wait_ready(&live.spec, &mut run, cfg.ready_timeout) {
            Ok((secs, cpu)) => {
                r.ready_s = Some(secs);
                r.ready_cpu_s = Some(cpu);
                live.run = Some(run);
            }
            Err(e) => {
                r.error = Some(e.to_string());
                live.run = Some(run);
                stop_quietly(live);
                return r;
            }
        },
        Err(e) => {
            r.error = Some(e.to_string());
            return r;
        }
    }
    match (count(&series_expr), count(&up_expr)) {
        (Ok(v), Ok(u)) => (r.samples_after, r.scrapes_after) = (v, u),
        (Err(e), _) | (_, Err(e)) => r.error = Some(format!("query after: {e}")),
    }
    r.samples_lost = r.samples_before.zip(r.samples_after).map(|(b, a)| b - a);
    r.scrapes_lost = r.scrapes_before.zip(r.scrapes_after).map(|(b, a)| b - a);
    r
}

/// The two counts compared across a restart, over the last `w` seconds:
/// the samples of `bench_http_requests_total` of the first target (a
/// partly lost scrape shows here) and the `up` samples of every target
/// (one per scrape: a lost scrape of any target shows here).
pub fn loss_exprs(first_port: u16, w: u64) -> [String; 2] {
    [
        format!(
            "sum(count_over_time(bench_http_requests_total{{instance=\"127.0.0.1:{first_port}\"}}[{w}s]))"
        ),
        format!("sum(count_over_time(up{{job=\"bench\"}}[{w}s]))"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(servers: &[&str]) -> RunConfig {
        RunConfig {
            targets: 1,
            series: 1,
            interval: Duration::from_secs(1),
            duration: Duration::from_secs(1),
            query_runs: 1,
            repeats: 1,
            block_range: None,
            range_window: Duration::from_secs(3600),
            load_clients: 0,
            load_duration: Duration::ZERO,
            servers: servers.iter().map(|s| s.to_string()).collect(),
            prometheus_bin: "p".into(),
            victoriametrics_bin: "v".into(),
            ember_bin: "e".into(),
            exporter_port_base: 1,
            server_port_base: 2,
            out_dir: PathBuf::from("/nonexistent/ember-bench-out"),
            keep_data: false,
            ready_timeout: Duration::from_secs(1),
            query_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn bad_parameters_are_rejected_before_anything_starts() {
        let dup = run(&config(&["prometheus", "ember", "prometheus"])).unwrap_err();
        assert!(dup.to_string().contains("\"prometheus\" listed twice"), "{dup}");
        assert!(matches!(run(&config(&[])), Err(RunError::Params(_))));
        let zero = RunConfig { targets: 0, ..config(&["prometheus"]) };
        assert!(matches!(run(&zero), Err(RunError::Params(_))));
        let fast = RunConfig { interval: Duration::from_millis(500), ..config(&["prometheus"]) };
        assert!(matches!(run(&fast), Err(RunError::Params(_))));
        let no_repeats = RunConfig { repeats: 0, ..config(&["prometheus"]) };
        assert!(matches!(run(&no_repeats), Err(RunError::Params(_))));
        let tiny_blocks = RunConfig { block_range: Some(Duration::from_secs(10)), ..config(&["prometheus"]) };
        assert!(matches!(run(&tiny_blocks), Err(RunError::Params(_))));
        // Nothing was created for the rejected runs.
        assert!(!Path::new("/nonexistent/ember-bench-out").exists());
    }

    #[test]
    fn stamp_is_utc_compact() {
        assert_eq!(stamp(0.0), "19700101T000000Z");
        // 2026-11-28T00:21:47Z
        assert_eq!(stamp(1_795_825_307.9), "20261128T002147Z");
    }

    #[test]
    fn scrape_config_lists_every_target_with_a_valid_timeout() {
        let c = scrape_config(3, 29100, Duration::from_secs(5));
        assert!(c.contains("scrape_interval: 5s\n  scrape_timeout: 4s\n"), "{c}");
        for port in [29100, 29101, 29102] {
            assert!(c.contains(&format!("- 127.0.0.1:{port}\n")));
        }
        assert!(!c.contains("29103"));
        // A 1s interval still gets a timeout that is not above it; a long
        // interval caps the timeout at Prometheus's default 10s.
        assert!(scrape_config(1, 1, Duration::from_secs(1)).contains("scrape_timeout: 1s"));
        assert!(scrape_config(1, 1, Duration::from_secs(60)).contains("scrape_timeout: 10s"));
    }

    #[test]
    fn no_block_reasons_say_why() {
        let none = no_block_reason(None, 600.0);
        assert!(none.contains("no --block-range") && none.contains("600 s"), "{none}");
        // 5 min range: due at 450 s of head span plus up to a minute.
        let early = no_block_reason(Some(Duration::from_secs(300)), 400.0);
        assert!(early.contains("ingestion lasted 400 s") && early.contains("spans 450 s"), "{early}");
        let late = no_block_reason(Some(Duration::from_secs(300)), 1200.0);
        assert!(late.contains("did not cut a block") && late.contains("past the 510 s"), "{late}");
    }

    #[test]
    fn loss_expressions_name_the_first_target_and_every_up() {
        let [series, up] = loss_exprs(29100, 600);
        assert_eq!(
            series,
            "sum(count_over_time(bench_http_requests_total{instance=\"127.0.0.1:29100\"}[600s]))"
        );
        assert_eq!(up, "sum(count_over_time(up{job=\"bench\"}[600s]))");
    }
}
