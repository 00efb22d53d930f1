//! ember-bench: side-by-side benchmark of ember, Prometheus and
//! VictoriaMetrics on one machine. See `benches/README.md`.

mod blocks;
mod exporter;
mod http;
mod load;
mod page;
mod procfs;
mod queries;
mod report;
mod results;
mod run;
mod servers;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ember-bench", about = "Side-by-side benchmark: ember vs Prometheus vs VictoriaMetrics")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    ember_model::time::parse_duration(s).map(|d| d.as_std()).map_err(|e| e.to_string())
}

// One value per process, parsed once: the size difference between the
// variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Cmd {
    /// Serve K synthetic targets of S series each on ports P..P+K-1.
    Exporter {
        #[arg(long, default_value_t = 10)]
        targets: usize,
        #[arg(long, default_value_t = 1000)]
        series: usize,
        #[arg(long, default_value_t = 29100)]
        port_base: u16,
        /// How often to print scrapes served and CPU per scrape to stderr.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        report_every: Duration,
    },
    /// Run the benchmark and write target/bench-results/<timestamp>.{md,json}.
    Run {
        #[arg(long, default_value_t = 10)]
        targets: usize,
        #[arg(long, default_value_t = 1000)]
        series: usize,
        /// Scrape interval (Prometheus duration syntax).
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        interval: Duration,
        /// How long the servers ingest before queries and restarts.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        duration: Duration,
        /// Measured runs per query (after one warm-up run).
        #[arg(long, default_value_t = 10)]
        query_runs: usize,
        /// Repeats of the query and restart measurements; figures are
        /// medians across repeats (of each repeat's median / p90).
        #[arg(long, default_value_t = 1)]
        repeats: usize,
        /// Block range (min = max block duration) for Prometheus and ember,
        /// so that blocks are written during the run (e.g. 5m); without it
        /// they keep the default 2h.
        #[arg(long, value_parser = parse_duration)]
        block_range: Option<Duration>,
        /// How far back range queries reach (at most to the server's start).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        range_window: Duration,
        /// Concurrent query clients in the load phase (0: no load phase).
        #[arg(long, default_value_t = 8)]
        load_clients: usize,
        /// How long the load phase lasts on each server.
        #[arg(long, default_value = "1m", value_parser = parse_duration)]
        load_duration: Duration,
        /// Servers to run, comma-separated: prometheus, victoriametrics, ember.
        /// The first is the baseline of the ratio columns.
        #[arg(long, value_delimiter = ',', default_value = "prometheus,victoriametrics")]
        servers: Vec<String>,
        /// Add ember to --servers (same as listing it there).
        #[arg(long)]
        with_ember: bool,
        #[arg(long, default_value = "/usr/bin/prometheus")]
        prometheus_bin: String,
        #[arg(long, default_value = "/usr/bin/victoria-metrics")]
        victoriametrics_bin: String,
        #[arg(long, default_value = "target/release/ember")]
        ember_bin: String,
        #[arg(long, default_value_t = 29100)]
        exporter_port_base: u16,
        /// Servers listen on this port and the next ones, in --servers order.
        #[arg(long, default_value_t = 29090)]
        server_port_base: u16,
        #[arg(long, default_value = "target/bench-results")]
        out_dir: PathBuf,
        /// Keep the servers' data dirs (under the run's work dir).
        #[arg(long)]
        keep_data: bool,
        #[arg(long, default_value = "5m", value_parser = parse_duration)]
        ready_timeout: Duration,
        #[arg(long, default_value = "2m", value_parser = parse_duration)]
        query_timeout: Duration,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Exporter { targets, series, port_base, report_every } => {
            let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("ember-bench: cannot start runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(exporter::serve(targets, series, port_base, Some(report_every))) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("ember-bench exporter: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Cmd::Run {
            targets,
            series,
            interval,
            duration,
            query_runs,
            repeats,
            block_range,
            range_window,
            load_clients,
            load_duration,
            mut servers,
            with_ember,
            prometheus_bin,
            victoriametrics_bin,
            ember_bin,
            exporter_port_base,
            server_port_base,
            out_dir,
            keep_data,
            ready_timeout,
            query_timeout,
        } => {
            if with_ember && !servers.iter().any(|s| s == "ember") {
                servers.push("ember".to_owned());
            }
            let cfg = run::RunConfig {
                targets,
                series,
                interval,
                duration,
                query_runs,
                repeats,
                block_range,
                range_window,
                load_clients,
                load_duration,
                servers,
                prometheus_bin,
                victoriametrics_bin,
                ember_bin,
                exporter_port_base,
                server_port_base,
                out_dir,
                keep_data,
                ready_timeout,
                query_timeout,
            };
            match run::run(&cfg) {
                Ok((md, json)) => {
                    eprintln!("ember-bench: wrote {} and {}", md.display(), json.display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ember-bench: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
