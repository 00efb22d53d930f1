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

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ember-bench", about = "Side-by-side benchmark: ember vs Prometheus vs VictoriaMetrics")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
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
        #[command(flatten)]
        cfg: run::RunConfig,
        /// Add ember to --servers (same as listing it there).
        #[arg(long)]
        with_ember: bool,
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
        Cmd::Run { mut cfg, with_ember } => {
            if with_ember && !cfg.servers.iter().any(|s| s == "ember") {
                cfg.servers.push("ember".to_owned());
            }
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
