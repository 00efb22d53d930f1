//! Command-line flags, spelled as Prometheus spells them (`--config.file`,
//! `--storage.tsdb.path`, ...) so that existing unit files and scripts work.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use ember_model::time::{parse_duration, Duration};

/// A Prometheus-compatible monitoring server.
#[derive(Debug, Clone, Parser)]
#[command(name = "ember", version = crate::VERSION, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Flags {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Prometheus configuration file path.
    #[arg(long = "config.file", default_value = "prometheus.yml")]
    pub config_file: PathBuf,

    /// Address to listen on for UI, API, and telemetry.
    #[arg(long = "web.listen-address", default_value = "0.0.0.0:9090")]
    pub web_listen_address: String,

    /// Maximum duration before timing out read of the request, and closing idle connections.
    #[arg(long = "web.read-timeout", default_value = "5m", value_parser = duration)]
    pub web_read_timeout: Duration,

    /// Maximum number of simultaneous connections.
    #[arg(long = "web.max-connections", default_value_t = 512)]
    pub web_max_connections: usize,

    /// The URL under which ember is externally reachable.
    #[arg(long = "web.external-url", default_value = "")]
    pub web_external_url: String,

    /// Prefix for the internal routes of web endpoints. Defaults to the path of --web.external-url.
    #[arg(long = "web.route-prefix", default_value = "")]
    pub web_route_prefix: String,

    /// Enable shutdown and reload via HTTP request.
    #[arg(long = "web.enable-lifecycle")]
    pub web_enable_lifecycle: bool,

    /// Enable API endpoints for admin control actions.
    #[arg(long = "web.enable-admin-api")]
    pub web_enable_admin_api: bool,

    /// Enable API endpoint accepting remote write requests.
    #[arg(long = "web.enable-remote-write-receiver")]
    pub web_enable_remote_write_receiver: bool,

    /// Regex for CORS origin. It is fully anchored.
    #[arg(long = "web.cors.origin", default_value = ".*")]
    pub web_cors_origin: String,

    /// Document title of the web UI.
    #[arg(
        long = "web.page-title",
        default_value = "Prometheus Time Series Collection and Processing Server"
    )]
    pub web_page_title: String,

    /// Base path for metrics storage.
    #[arg(long = "storage.tsdb.path", default_value = "data/")]
    pub storage_tsdb_path: PathBuf,

    /// How long to retain samples in storage (default 15d when no size limit is set either).
    #[arg(long = "storage.tsdb.retention.time", value_parser = duration)]
    pub storage_tsdb_retention_time: Option<Duration>,

    /// Maximum number of bytes that can be stored for blocks (units B, KB, MB, GB, TB, PB, EB; powers of 2).
    #[arg(long = "storage.tsdb.retention.size", value_parser = byte_size)]
    pub storage_tsdb_retention_size: Option<u64>,

    /// Do not create a lockfile in the data directory.
    #[arg(long = "storage.tsdb.no-lockfile")]
    pub storage_tsdb_no_lockfile: bool,

    /// Minimum duration of a data block before being persisted (for tests and benchmarks).
    #[arg(long = "storage.tsdb.min-block-duration", default_value = "2h", value_parser = duration, hide = true)]
    pub storage_tsdb_min_block_duration: Duration,

    /// Maximum duration compacted blocks may span (default: 10% of retention, at most 31d).
    #[arg(long = "storage.tsdb.max-block-duration", value_parser = duration, hide = true)]
    pub storage_tsdb_max_block_duration: Option<Duration>,

    /// The maximum lookback duration for retrieving metrics during expression evaluations and federation.
    #[arg(long = "query.lookback-delta", default_value = "5m", value_parser = duration)]
    pub query_lookback_delta: Duration,

    /// Maximum time a query may take before being aborted.
    #[arg(long = "query.timeout", default_value = "2m", value_parser = duration)]
    pub query_timeout: Duration,

    /// Maximum number of queries executed concurrently.
    #[arg(long = "query.max-concurrency", default_value_t = 20)]
    pub query_max_concurrency: usize,

    /// Maximum number of samples a single query can load into memory.
    #[arg(long = "query.max-samples", default_value_t = 50_000_000)]
    pub query_max_samples: usize,

    /// Comma separated feature names to enable.
    #[arg(long = "enable-feature", value_delimiter = ',')]
    pub enable_feature: Vec<String>,

    /// Only log messages with the given severity or above. One of: [debug, info, warn, error]
    #[arg(long = "log.level", default_value = "info", value_parser = ["debug", "info", "warn", "error"])]
    pub log_level: String,

    /// Output format of log messages. One of: [logfmt, json]
    #[arg(long = "log.format", default_value = "logfmt", value_parser = ["logfmt", "json"])]
    pub log_format: String,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Check the resources for validity.
    #[command(subcommand)]
    Check(CheckCommand),
}

#[derive(Debug, Clone, Subcommand)]
pub enum CheckCommand {
    /// Check if the config files are valid or not.
    Config {
        /// The config files to check.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s).map_err(|e| e.to_string())
}

/// Parses Prometheus's byte sizes: a number and a unit among B, KB, MB, GB,
/// TB, PB, EB, in powers of two (`512MB` is 512 MiB).
pub fn byte_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("not a valid size: {s:?}"))?;
    let shift = match unit {
        "B" => 0,
        "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        "PB" => 50,
        "EB" => 60,
        _ => return Err(format!("not a valid size unit in {s:?}: use B, KB, MB, GB, TB, PB or EB")),
    };
    n.checked_mul(1u64 << shift).ok_or_else(|| format!("size out of range: {s:?}"))
}

impl Flags {
    /// Retention time as Prometheus resolves it: 15d unless a size limit
    /// alone was given.
    pub fn retention_time(&self) -> Option<Duration> {
        match (self.storage_tsdb_retention_time, self.storage_tsdb_retention_size) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some(Duration::from_secs(15 * 24 * 3600)),
        }
    }

    /// Every flag by its long name with its effective value, as
    /// `/api/v1/status/flags` reports them.
    pub fn as_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: String| {
            m.insert(k.to_owned(), v);
        };
        put("config.file", self.config_file.display().to_string());
        put("web.listen-address", self.web_listen_address.clone());
        put("web.read-timeout", self.web_read_timeout.to_string());
        put("web.max-connections", self.web_max_connections.to_string());
        put("web.external-url", self.web_external_url.clone());
        put("web.route-prefix", self.web_route_prefix.clone());
        put("web.enable-lifecycle", self.web_enable_lifecycle.to_string());
        put("web.enable-admin-api", self.web_enable_admin_api.to_string());
        put("web.enable-remote-write-receiver", self.web_enable_remote_write_receiver.to_string());
        put("web.cors.origin", self.web_cors_origin.clone());
        put("web.page-title", self.web_page_title.clone());
        put("storage.tsdb.path", self.storage_tsdb_path.display().to_string());
        put(
            "storage.tsdb.retention.time",
            self.retention_time().map(|d| d.to_string()).unwrap_or_else(|| "0s".into()),
        );
        put(
            "storage.tsdb.retention.size",
            self.storage_tsdb_retention_size.map(|b| format!("{b}B")).unwrap_or_else(|| "0B".into()),
        );
        put("storage.tsdb.no-lockfile", self.storage_tsdb_no_lockfile.to_string());
        put("storage.tsdb.min-block-duration", self.storage_tsdb_min_block_duration.to_string());
        put(
            "storage.tsdb.max-block-duration",
            self.storage_tsdb_max_block_duration.map(|d| d.to_string()).unwrap_or_default(),
        );
        put("query.lookback-delta", self.query_lookback_delta.to_string());
        put("query.timeout", self.query_timeout.to_string());
        put("query.max-concurrency", self.query_max_concurrency.to_string());
        put("query.max-samples", self.query_max_samples.to_string());
        put("enable-feature", self.enable_feature.join(","));
        put("log.level", self.log_level.clone());
        put("log.format", self.log_format.clone());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_spellings_and_defaults() {
        let f = Flags::try_parse_from(["ember"]).unwrap();
        assert_eq!(f.web_listen_address, "0.0.0.0:9090");
        assert_eq!(f.query_lookback_delta, Duration::from_secs(300));
        assert_eq!(f.query_timeout, Duration::from_secs(120));
        assert_eq!(f.query_max_samples, 50_000_000);
        assert_eq!(f.query_max_concurrency, 20);
        assert_eq!(f.retention_time(), Some(Duration::from_secs(15 * 86400)));
        assert_eq!(f.as_map()["storage.tsdb.retention.time"], "15d");

        let f = Flags::try_parse_from([
            "ember",
            "--config.file=x.yml",
            "--storage.tsdb.path",
            "/tmp/d",
            "--storage.tsdb.retention.size=512MB",
            "--query.timeout=30s",
            "--web.enable-lifecycle",
            "--log.format=json",
            "--enable-feature=a,b",
        ])
        .unwrap();
        assert_eq!(f.config_file, PathBuf::from("x.yml"));
        assert_eq!(f.storage_tsdb_path, PathBuf::from("/tmp/d"));
        assert_eq!(f.storage_tsdb_retention_size, Some(512 << 20));
        assert_eq!(f.retention_time(), None, "size alone disables the 15d default");
        assert_eq!(f.query_timeout, Duration::from_secs(30));
        assert!(f.web_enable_lifecycle);
        assert_eq!(f.enable_feature, vec!["a", "b"]);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(Flags::try_parse_from(["ember", "--query.timeout=2x"]).is_err());
        assert!(Flags::try_parse_from(["ember", "--log.level=loud"]).is_err());
        assert!(Flags::try_parse_from(["ember", "--storage.tsdb.retention.size=5"]).is_err());
        assert!(Flags::try_parse_from(["ember", "--no.such-flag"]).is_err());
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size("1KB"), Ok(1024));
        assert_eq!(byte_size("3B"), Ok(3));
        assert!(byte_size("1kb").is_err());
        assert!(byte_size("99999999EB").is_err());
    }

    #[test]
    fn check_config_subcommand() {
        let f = Flags::try_parse_from(["ember", "check", "config", "a.yml"]).unwrap();
        assert!(
            matches!(f.command, Some(Command::Check(CheckCommand::Config { files })) if files.len() == 1)
        );
    }
}
