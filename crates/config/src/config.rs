//! The configuration sections and their cross-section rules.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use ember_model::names::{is_valid_label_name, NameValidation};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};

use crate::checked::{checked, checked_vec, Check};
use crate::relabel::RelabelConfig;
use crate::types::{de_label_map, de_null_default, is_false, is_zero_u64, ByteSize, Duration, LabelMap, Url};
use crate::{ConfigError, Pos};

/// Scrape protocol names and the media type each one asks for.
pub const SCRAPE_PROTOCOLS: [(&str, &str); 5] = [
    ("OpenMetricsText0.0.1", "application/openmetrics-text;version=0.0.1"),
    ("OpenMetricsText1.0.0", "application/openmetrics-text;version=1.0.0"),
    (
        "PrometheusProto",
        "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
    ),
    ("PrometheusText0.0.4", "text/plain;version=0.0.4"),
    ("PrometheusText1.0.0", "text/plain;version=1.0.0"),
];

/// Prometheus 3's default `scrape_protocols`, most preferred first.
pub const DEFAULT_SCRAPE_PROTOCOLS: [&str; 4] =
    ["OpenMetricsText1.0.0", "OpenMetricsText0.0.1", "PrometheusText1.0.0", "PrometheusText0.0.4"];

/// The `Accept` media type of a scrape protocol name.
pub fn scrape_protocol_header(name: &str) -> Option<&'static str> {
    SCRAPE_PROTOCOLS.iter().find(|(n, _)| *n == name).map(|(_, h)| *h)
}

fn validate_scrape_protocol(p: &str) -> Result<(), String> {
    if scrape_protocol_header(p).is_some() {
        return Ok(());
    }
    let names: Vec<&str> = SCRAPE_PROTOCOLS.iter().map(|(n, _)| *n).collect();
    Err(format!("unknown scrape protocol {p}, supported: [{}]", names.join(" ")))
}

fn validate_scrape_protocols(ps: &[String]) -> Result<(), String> {
    if ps.is_empty() {
        return Err("scrape_protocols cannot be empty".into());
    }
    let mut seen = HashSet::new();
    for p in ps {
        if !seen.insert(p.to_lowercase()) {
            return Err(format!("duplicated protocol in scrape_protocols, got [{}]", ps.join(" ")));
        }
        validate_scrape_protocol(p).map_err(|e| format!("scrape_protocols: {e}"))?;
    }
    Ok(())
}

fn parse_validation_scheme(s: &str) -> Result<Option<NameValidation>, String> {
    match s {
        "" => Ok(None),
        "utf8" => Ok(Some(NameValidation::Utf8)),
        "legacy" => Ok(Some(NameValidation::Legacy)),
        _ => Err(format!("unrecognized ValidationScheme: {s:?}")),
    }
}

const ESCAPING_SCHEMES: [&str; 4] = ["allow-utf-8", "underscores", "dots", "values"];

/// `^[^*]*(\*[^/]*)?$`: at most one `*`, only in the last path element.
fn is_valid_rule_path(p: &str) -> bool {
    match p.find('*') {
        None => true,
        Some(i) => !p[i + 1..].contains('*') && !p[i + 1..].contains('/'),
    }
}

/// `config.JoinDir`: relative paths are taken from the config's directory.
fn join_dir(dir: &Path, p: &mut String) {
    if p.is_empty() || Path::new(p.as_str()).is_absolute() {
        return;
    }
    *p = dir.join(p.as_str()).to_string_lossy().into_owned();
}

fn de_validation_scheme<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s: String = de_null_default(d)?;
    parse_validation_scheme(&s).map_err(D::Error::custom)?;
    Ok(s)
}

fn de_escaping_scheme<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    de_null_default(d)
}

// ---------------------------------------------------------------- global

/// `global`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default = "GlobalConfig::unset")]
pub struct GlobalConfig {
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub scrape_interval: Duration,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub scrape_timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub evaluation_interval: Duration,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub rule_query_offset: Duration,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
    pub query_log_file: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
    pub scrape_failure_log_file: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "de_label_map")]
    pub external_labels: LabelMap,
    #[serde(skip_serializing_if = "ByteSize::is_zero")]
    pub body_size_limit: ByteSize,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub sample_limit: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub target_limit: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub label_limit: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub label_name_length_limit: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub label_value_length_limit: u64,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub keep_dropped_targets: u64,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_validation_scheme")]
    pub metric_name_validation_scheme: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_escaping_scheme")]
    pub metric_name_escaping_scheme: String,
    #[serde(skip_serializing_if = "is_false")]
    pub convert_classic_histograms_to_nhcb: bool,
    #[serde(skip_serializing_if = "is_false")]
    pub always_scrape_classic_histograms: bool,
}

pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(60);
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);

impl Default for GlobalConfig {
    /// `DefaultGlobalConfig`.
    fn default() -> Self {
        GlobalConfig {
            scrape_interval: DEFAULT_SCRAPE_INTERVAL,
            scrape_timeout: DEFAULT_SCRAPE_TIMEOUT,
            scrape_protocols: None,
            evaluation_interval: DEFAULT_EVALUATION_INTERVAL,
            rule_query_offset: Duration::default(),
            query_log_file: String::new(),
            scrape_failure_log_file: String::new(),
            external_labels: LabelMap::new(),
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: "utf8".into(),
            metric_name_escaping_scheme: String::new(),
            convert_classic_histograms_to_nhcb: false,
            always_scrape_classic_histograms: false,
        }
    }
}

impl GlobalConfig {
    /// All intervals unset, as Go starts decoding a `global` block; the
    /// defaults are filled in by the check once the block is read, so that
    /// a short `scrape_interval` also shortens the default timeout.
    fn unset() -> GlobalConfig {
        GlobalConfig {
            scrape_interval: Duration::default(),
            scrape_timeout: Duration::default(),
            evaluation_interval: Duration::default(),
            metric_name_validation_scheme: String::new(),
            ..GlobalConfig::default()
        }
    }

    /// The name validation scheme in force (UTF-8 unless `legacy`).
    pub fn name_validation(&self) -> NameValidation {
        parse_validation_scheme(&self.metric_name_validation_scheme).ok().flatten().unwrap_or_default()
    }
}

impl Check for GlobalConfig {
    /// `GlobalConfig.UnmarshalYAML`: fills interval defaults and checks the
    /// timeout against the interval.
    fn check(&mut self) -> Result<(), String> {
        if self.metric_name_validation_scheme.is_empty() {
            self.metric_name_validation_scheme = "utf8".into();
        }
        let scheme = self.name_validation();
        for name in self.external_labels.keys() {
            if !is_valid_label_name(name, scheme) {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
        if self.scrape_interval.is_zero() {
            self.scrape_interval = DEFAULT_SCRAPE_INTERVAL;
        }
        if self.scrape_timeout > self.scrape_interval {
            return Err("global scrape timeout greater than scrape interval".into());
        }
        if self.scrape_timeout.is_zero() {
            self.scrape_timeout = DEFAULT_SCRAPE_TIMEOUT.min(self.scrape_interval);
        }
        if self.evaluation_interval.is_zero() {
            self.evaluation_interval = DEFAULT_EVALUATION_INTERVAL;
        }
        if let Some(ps) = &self.scrape_protocols {
            validate_scrape_protocols(ps).map_err(|e| format!("{e} for global config"))?;
        }
        if !self.metric_name_escaping_scheme.is_empty()
            && !ESCAPING_SCHEMES.contains(&self.metric_name_escaping_scheme.as_str())
        {
            return Err(format!(
                "unknown global name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {:?}",
                self.metric_name_escaping_scheme
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- discovery configs

/// One `static_configs` entry: a target group.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticConfig {
    #[serde(deserialize_with = "de_null_default")]
    pub targets: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "de_label_map")]
    pub labels: LabelMap,
}

impl Check for StaticConfig {
    fn check(&mut self) -> Result<(), String> {
        for name in self.labels.keys() {
            if name.is_empty() {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
        Ok(())
    }
}

pub const DEFAULT_FILE_SD_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

fn default_file_sd_refresh() -> Duration {
    DEFAULT_FILE_SD_REFRESH_INTERVAL
}

/// One `file_sd_configs` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    #[serde(default, deserialize_with = "de_null_default")]
    pub files: Vec<String>,
    #[serde(default = "default_file_sd_refresh")]
    pub refresh_interval: Duration,
}

/// `^[^*]*(\*[^/]*)?\.(json|yml|yaml|JSON|YML|YAML)$`
fn is_valid_file_sd_name(p: &str) -> bool {
    let ext_ok = ["json", "yml", "yaml", "JSON", "YML", "YAML"]
        .iter()
        .any(|e| p.len() > e.len() && p.ends_with(e) && p.as_bytes()[p.len() - e.len() - 1] == b'.');
    ext_ok && is_valid_rule_path(p)
}

impl Check for FileSdConfig {
    fn check(&mut self) -> Result<(), String> {
        if self.files.is_empty() {
            return Err("file service discovery config must contain at least one path name".into());
        }
        for f in &self.files {
            if !is_valid_file_sd_name(f) {
                return Err(format!("path name {f:?} is not valid for file discovery"));
            }
        }
        Ok(())
    }
}

/// `CheckTargetAddress`: catches URLs put where `host:port` belongs.
pub fn check_target_address(addr: &str) -> Result<(), String> {
    if addr.contains('/') {
        return Err(format!("{addr:?} is not a valid hostname"));
    }
    Ok(())
}

fn check_static_targets(statics: &[StaticConfig]) -> Result<(), String> {
    statics.iter().flat_map(|s| s.targets.iter()).try_for_each(|t| check_target_address(t))
}

// ---------------------------------------------------------------- scrape configs

http_client_struct! {
    /// One `scrape_configs` entry.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct ScrapeConfig {
        #[serde(deserialize_with = "de_null_default")]
        pub job_name: String,
        #[serde(skip_serializing_if = "is_false")]
        pub honor_labels: bool,
        pub honor_timestamps: bool,
        pub track_timestamps_staleness: bool,
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "de_null_default")]
        pub params: BTreeMap<String, Vec<String>>,
        #[serde(skip_serializing_if = "Duration::is_zero")]
        pub scrape_interval: Duration,
        #[serde(skip_serializing_if = "Duration::is_zero")]
        pub scrape_timeout: Duration,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub scrape_protocols: Option<Vec<String>>,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub fallback_scrape_protocol: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub always_scrape_classic_histograms: Option<bool>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub convert_classic_histograms_to_nhcb: Option<bool>,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub scrape_failure_log_file: String,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub metrics_path: String,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub scheme: String,
        pub enable_compression: bool,
        #[serde(skip_serializing_if = "ByteSize::is_zero")]
        pub body_size_limit: ByteSize,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub sample_limit: u64,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub target_limit: u64,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub label_limit: u64,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub label_name_length_limit: u64,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub label_value_length_limit: u64,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub keep_dropped_targets: u64,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_validation_scheme")]
        pub metric_name_validation_scheme: String,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_escaping_scheme")]
        pub metric_name_escaping_scheme: String,
    }
    tail {
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub relabel_configs: Vec<RelabelConfig>,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub metric_relabel_configs: Vec<RelabelConfig>,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub static_configs: Vec<StaticConfig>,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub file_sd_configs: Vec<FileSdConfig>,
        /// Where this scrape config starts in its file.
        #[serde(skip)]
        pub pos: Pos,
    }
}

impl Default for ScrapeConfig {
    /// `DefaultScrapeConfig`; intervals and limits come from `global` later.
    fn default() -> Self {
        let h = crate::http::HttpClientConfig::default();
        ScrapeConfig {
            job_name: String::new(),
            honor_labels: false,
            honor_timestamps: true,
            track_timestamps_staleness: false,
            params: BTreeMap::new(),
            scrape_interval: Duration::default(),
            scrape_timeout: Duration::default(),
            scrape_protocols: None,
            fallback_scrape_protocol: String::new(),
            always_scrape_classic_histograms: None,
            convert_classic_histograms_to_nhcb: None,
            scrape_failure_log_file: String::new(),
            metrics_path: "/metrics".into(),
            scheme: "http".into(),
            enable_compression: true,
            body_size_limit: ByteSize(0),
            sample_limit: 0,
            target_limit: 0,
            label_limit: 0,
            label_name_length_limit: 0,
            label_value_length_limit: 0,
            keep_dropped_targets: 0,
            metric_name_validation_scheme: String::new(),
            metric_name_escaping_scheme: String::new(),
            basic_auth: h.basic_auth,
            authorization: h.authorization,
            oauth2: h.oauth2,
            bearer_token: h.bearer_token,
            bearer_token_file: h.bearer_token_file,
            tls_config: h.tls_config,
            proxy_url: h.proxy_url,
            no_proxy: h.no_proxy,
            proxy_from_environment: h.proxy_from_environment,
            follow_redirects: h.follow_redirects,
            enable_http2: h.enable_http2,
            relabel_configs: Vec::new(),
            metric_relabel_configs: Vec::new(),
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            pos: Pos::default(),
        }
    }
}

impl Check for ScrapeConfig {
    fn set_pos(&mut self, pos: Pos) {
        self.pos = pos;
    }

    /// `ScrapeConfig.UnmarshalYAML`: the rules that need no global config.
    fn check(&mut self) -> Result<(), String> {
        if self.job_name.is_empty() {
            return Err("job_name is empty".into());
        }
        self.validate_http_client()?;
        if self.relabel_configs.is_empty() {
            check_static_targets(&self.static_configs)?;
        }
        Ok(())
    }
}

impl ScrapeConfig {
    /// The name validation scheme in force for this job.
    pub fn name_validation(&self) -> NameValidation {
        parse_validation_scheme(&self.metric_name_validation_scheme).ok().flatten().unwrap_or_default()
    }

    /// `ScrapeConfig.Validate(global)`: inherits the global settings and
    /// checks what depends on them.
    pub fn validate(&mut self, g: &GlobalConfig) -> Result<(), ConfigError> {
        let here = |e: String| ConfigError::msg(e);
        if self.scrape_interval.is_zero() {
            self.scrape_interval = g.scrape_interval;
        }
        if self.scrape_timeout > self.scrape_interval {
            return Err(here(format!(
                "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                self.job_name
            )));
        }
        if self.scrape_timeout.is_zero() {
            self.scrape_timeout = g.scrape_timeout.min(self.scrape_interval);
        }
        if self.body_size_limit.is_zero() {
            self.body_size_limit = g.body_size_limit;
        }
        for (mine, global) in [
            (&mut self.sample_limit, g.sample_limit),
            (&mut self.target_limit, g.target_limit),
            (&mut self.label_limit, g.label_limit),
            (&mut self.label_name_length_limit, g.label_name_length_limit),
            (&mut self.label_value_length_limit, g.label_value_length_limit),
            (&mut self.keep_dropped_targets, g.keep_dropped_targets),
        ] {
            if *mine == 0 {
                *mine = global;
            }
        }
        if self.scrape_failure_log_file.is_empty() {
            self.scrape_failure_log_file = g.scrape_failure_log_file.clone();
        }
        if self.scrape_protocols.is_none() {
            self.scrape_protocols = Some(match &g.scrape_protocols {
                Some(p) => p.clone(),
                None => DEFAULT_SCRAPE_PROTOCOLS.iter().map(|s| s.to_string()).collect(),
            });
        }
        if let Some(ps) = &self.scrape_protocols {
            validate_scrape_protocols(ps)
                .map_err(|e| here(format!("{e} for scrape config with job name {:?}", self.job_name)))?;
        }
        if !self.fallback_scrape_protocol.is_empty() {
            validate_scrape_protocol(&self.fallback_scrape_protocol).map_err(|e| {
                here(format!(
                    "invalid fallback_scrape_protocol for scrape config with job name {:?}: {e}",
                    self.job_name
                ))
            })?;
        }
        let local_unset = self.metric_name_validation_scheme.is_empty();
        if local_unset {
            self.metric_name_validation_scheme = g.metric_name_validation_scheme.clone();
        }
        let global_escaping = match g.metric_name_escaping_scheme.as_str() {
            "" if g.name_validation() == NameValidation::Legacy => "underscores".to_owned(),
            "" => "allow-utf-8".to_owned(),
            s => s.to_owned(),
        };
        if self.metric_name_escaping_scheme.is_empty() {
            self.metric_name_escaping_scheme = if local_unset {
                global_escaping
            } else if self.name_validation() == NameValidation::Legacy {
                "underscores".into()
            } else {
                "allow-utf-8".into()
            };
        }
        match self.metric_name_escaping_scheme.as_str() {
            "allow-utf-8" => {
                if self.name_validation() != NameValidation::Utf8 {
                    return Err(here(
                        "utf8 metric names requested but validation scheme is not set to UTF8".into(),
                    ));
                }
            }
            "underscores" | "dots" | "values" => {}
            other => {
                return Err(here(format!(
                    "unknown scrape config name escaping method specified, must be one of 'allow-utf-8', 'underscores', 'dots', or 'values', got {other:?}"
                )))
            }
        }
        if self.convert_classic_histograms_to_nhcb.is_none() {
            self.convert_classic_histograms_to_nhcb = Some(g.convert_classic_histograms_to_nhcb);
        }
        if self.always_scrape_classic_histograms.is_none() {
            self.always_scrape_classic_histograms = Some(g.always_scrape_classic_histograms);
        }
        let scheme = self.name_validation();
        for (kind, rules) in [
            ("relabel_configs", &self.relabel_configs),
            ("metric_relabel_configs", &self.metric_relabel_configs),
        ] {
            for (i, rc) in rules.iter().enumerate() {
                rc.validate(scheme).map_err(|e| ConfigError::msg(e).at(rc.pos, format!("{kind}[{i}]")))?;
            }
        }
        Ok(())
    }

    fn set_directory(&mut self, dir: &Path) {
        for f in &mut self.file_sd_configs {
            for p in &mut f.files {
                join_dir(dir, p);
            }
        }
        http_set_directory(
            dir,
            &mut self.tls_config,
            &mut self.basic_auth,
            &mut self.authorization,
            &mut self.oauth2,
        );
        join_dir(dir, &mut self.bearer_token_file);
        join_dir(dir, &mut self.scrape_failure_log_file);
    }
}

fn http_set_directory(
    dir: &Path,
    tls: &mut crate::http::TlsConfig,
    basic: &mut Option<crate::http::BasicAuth>,
    auth: &mut Option<crate::http::Authorization>,
    oauth2: &mut Option<crate::http::OAuth2>,
) {
    join_dir(dir, &mut tls.ca_file);
    join_dir(dir, &mut tls.cert_file);
    join_dir(dir, &mut tls.key_file);
    if let Some(o) = oauth2 {
        join_dir(dir, &mut o.client_secret_file);
        join_dir(dir, &mut o.tls_config.ca_file);
        join_dir(dir, &mut o.tls_config.cert_file);
        join_dir(dir, &mut o.tls_config.key_file);
    }
    if let Some(b) = basic {
        join_dir(dir, &mut b.username_file);
        join_dir(dir, &mut b.password_file);
    }
    if let Some(a) = auth {
        join_dir(dir, &mut a.credentials_file);
    }
}

/// The top level of a file listed in `scrape_config_files`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ScrapeConfigsFile {
    #[serde(deserialize_with = "checked_vec")]
    scrape_configs: Vec<ScrapeConfig>,
}

// ---------------------------------------------------------------- alerting

/// `alerting`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingConfig {
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
    pub alert_relabel_configs: Vec<RelabelConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
    pub alertmanagers: Vec<AlertmanagerConfig>,
}

impl AlertingConfig {
    pub fn is_empty(&self) -> bool {
        self.alert_relabel_configs.is_empty() && self.alertmanagers.is_empty()
    }
}

impl Check for AlertingConfig {}

fn default_api_version() -> String {
    "v2".into()
}

fn de_api_version<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s: String = de_null_default(d)?;
    if s != "v2" {
        return Err(D::Error::custom(format!(
            "expected Alertmanager api version to be one of [v2] but got {s}"
        )));
    }
    Ok(s)
}

http_client_struct! {
    /// One `alerting.alertmanagers` entry.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct AlertmanagerConfig {}
    tail {
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub scheme: String,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub path_prefix: String,
        #[serde(skip_serializing_if = "Duration::is_zero")]
        pub timeout: Duration,
        #[serde(deserialize_with = "de_api_version")]
        pub api_version: String,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub relabel_configs: Vec<RelabelConfig>,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub alert_relabel_configs: Vec<RelabelConfig>,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub static_configs: Vec<StaticConfig>,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub file_sd_configs: Vec<FileSdConfig>,
        #[serde(skip)]
        pub pos: Pos,
    }
}

impl Default for AlertmanagerConfig {
    /// `DefaultAlertmanagerConfig`.
    fn default() -> Self {
        let h = crate::http::HttpClientConfig::default();
        AlertmanagerConfig {
            basic_auth: h.basic_auth,
            authorization: h.authorization,
            oauth2: h.oauth2,
            bearer_token: h.bearer_token,
            bearer_token_file: h.bearer_token_file,
            tls_config: h.tls_config,
            proxy_url: h.proxy_url,
            no_proxy: h.no_proxy,
            proxy_from_environment: h.proxy_from_environment,
            follow_redirects: h.follow_redirects,
            enable_http2: h.enable_http2,
            scheme: "http".into(),
            path_prefix: String::new(),
            timeout: Duration::from_secs(10),
            api_version: default_api_version(),
            relabel_configs: Vec::new(),
            alert_relabel_configs: Vec::new(),
            static_configs: Vec::new(),
            file_sd_configs: Vec::new(),
            pos: Pos::default(),
        }
    }
}

impl Check for AlertmanagerConfig {
    fn set_pos(&mut self, pos: Pos) {
        self.pos = pos;
    }

    fn check(&mut self) -> Result<(), String> {
        self.validate_http_client()?;
        if self.relabel_configs.is_empty() {
            check_static_targets(&self.static_configs)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- remote write / read

const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "content-encoding",
    "content-length",
    "content-type",
    "user-agent",
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "www-authenticate",
    "accept-encoding",
    "x-prometheus-remote-write-version",
    "x-prometheus-remote-read-version",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

fn validate_headers(headers: &BTreeMap<String, String>) -> Result<(), String> {
    for h in headers.keys() {
        let lower = h.to_lowercase();
        if lower == "authorization" {
            return Err("authorization header must be changed via the basic_auth, authorization, oauth2, sigv4, azuread or google_iam parameter".into());
        }
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!("{h} is a reserved header. It must not be changed"));
        }
    }
    Ok(())
}

/// `queue_config` with Prometheus's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueConfig {
    pub capacity: i64,
    pub max_shards: i64,
    pub min_shards: i64,
    pub max_samples_per_send: i64,
    pub batch_send_deadline: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    #[serde(rename = "retry_on_http_429", skip_serializing_if = "is_false")]
    pub retry_on_http_429: bool,
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub sample_age_limit: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: 10000,
            max_shards: 50,
            min_shards: 1,
            max_samples_per_send: 2000,
            batch_send_deadline: Duration::from_secs(5),
            min_backoff: Duration::from_millis(30),
            max_backoff: Duration::from_secs(5),
            retry_on_http_429: false,
            sample_age_limit: Duration::default(),
        }
    }
}

/// `metadata_config` with Prometheus's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetadataConfig {
    pub send: bool,
    pub send_interval: Duration,
    pub max_samples_per_send: i64,
}

impl Default for MetadataConfig {
    fn default() -> Self {
        MetadataConfig { send: true, send_interval: Duration::from_secs(60), max_samples_per_send: 2000 }
    }
}

const PROTOBUF_MESSAGES: [&str; 2] = ["prometheus.WriteRequest", "io.prometheus.write.v2.Request"];

http_client_struct! {
    /// One `remote_write` entry.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RemoteWriteConfig {
        pub url: Option<Url>,
        pub remote_timeout: Duration,
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "de_label_map")]
        pub headers: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
        pub write_relabel_configs: Vec<RelabelConfig>,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub name: String,
        #[serde(skip_serializing_if = "is_false")]
        pub send_exemplars: bool,
        #[serde(skip_serializing_if = "is_false")]
        pub send_native_histograms: bool,
        #[serde(skip_serializing_if = "is_false")]
        pub round_robin_dns: bool,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub protobuf_message: String,
    }
    tail {
        pub queue_config: QueueConfig,
        pub metadata_config: MetadataConfig,
        #[serde(skip)]
        pub pos: Pos,
    }
}

impl Default for RemoteWriteConfig {
    /// `DefaultRemoteWriteConfig`; HTTP/2 is off for remote write.
    fn default() -> Self {
        let h = crate::http::HttpClientConfig::default();
        RemoteWriteConfig {
            url: None,
            remote_timeout: Duration::from_secs(30),
            headers: BTreeMap::new(),
            write_relabel_configs: Vec::new(),
            name: String::new(),
            send_exemplars: false,
            send_native_histograms: false,
            round_robin_dns: false,
            protobuf_message: PROTOBUF_MESSAGES[0].into(),
            basic_auth: h.basic_auth,
            authorization: h.authorization,
            oauth2: h.oauth2,
            bearer_token: h.bearer_token,
            bearer_token_file: h.bearer_token_file,
            tls_config: h.tls_config,
            proxy_url: h.proxy_url,
            no_proxy: h.no_proxy,
            proxy_from_environment: h.proxy_from_environment,
            follow_redirects: true,
            enable_http2: false,
            queue_config: QueueConfig::default(),
            metadata_config: MetadataConfig::default(),
            pos: Pos::default(),
        }
    }
}

impl Check for RemoteWriteConfig {
    fn set_pos(&mut self, pos: Pos) {
        self.pos = pos;
    }

    fn check(&mut self) -> Result<(), String> {
        if self.url.is_none() {
            return Err("url for remote_write is empty".into());
        }
        validate_headers(&self.headers)?;
        if !PROTOBUF_MESSAGES.contains(&self.protobuf_message.as_str()) {
            return Err(format!(
                "invalid protobuf_message value: unknown type for remote write protobuf message {}, supported: {}",
                self.protobuf_message,
                PROTOBUF_MESSAGES.join(", ")
            ));
        }
        self.validate_http_client()?;
        let mut configured = Vec::new();
        if self.basic_auth.is_some() {
            configured.push("basic_auth");
        }
        if self.authorization.is_some() {
            configured.push("authorization");
        }
        if self.oauth2.is_some() {
            configured.push("oauth2");
        }
        if configured.len() > 1 {
            return Err(format!(
                "at most one of basic_auth, authorization, oauth2, sigv4, azuread or google_iam must be configured. Currently configured: [{}]",
                configured.join(" ")
            ));
        }
        Ok(())
    }
}

fn default_true() -> bool {
    true
}

http_client_struct! {
    /// One `remote_read` entry.
    #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
    #[serde(deny_unknown_fields, default)]
    pub struct RemoteReadConfig {
        pub url: Option<Url>,
        pub remote_timeout: Duration,
        #[serde(skip_serializing_if = "is_zero_u64")]
        pub chunked_read_limit: u64,
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "de_label_map")]
        pub headers: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "is_false")]
        pub read_recent: bool,
        #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "de_null_default")]
        pub name: String,
    }
    tail {
        #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "de_label_map")]
        pub required_matchers: LabelMap,
        #[serde(default = "default_true")]
        pub filter_external_labels: bool,
        #[serde(skip)]
        pub pos: Pos,
    }
}

impl Default for RemoteReadConfig {
    /// `DefaultRemoteReadConfig`.
    fn default() -> Self {
        let h = crate::http::HttpClientConfig::default();
        RemoteReadConfig {
            url: None,
            remote_timeout: Duration::from_secs(60),
            chunked_read_limit: 50_000_000,
            headers: BTreeMap::new(),
            read_recent: false,
            name: String::new(),
            basic_auth: h.basic_auth,
            authorization: h.authorization,
            oauth2: h.oauth2,
            bearer_token: h.bearer_token,
            bearer_token_file: h.bearer_token_file,
            tls_config: h.tls_config,
            proxy_url: h.proxy_url,
            no_proxy: h.no_proxy,
            proxy_from_environment: h.proxy_from_environment,
            follow_redirects: h.follow_redirects,
            enable_http2: h.enable_http2,
            required_matchers: LabelMap::new(),
            filter_external_labels: true,
            pos: Pos::default(),
        }
    }
}

impl Check for RemoteReadConfig {
    fn set_pos(&mut self, pos: Pos) {
        self.pos = pos;
    }

    fn check(&mut self) -> Result<(), String> {
        if self.url.is_none() {
            return Err("url for remote_read is empty".into());
        }
        validate_headers(&self.headers)?;
        self.validate_http_client()
    }
}

// ---------------------------------------------------------------- storage, runtime

/// `storage.tsdb`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbConfig {
    #[serde(skip_serializing_if = "Duration::is_zero")]
    pub out_of_order_time_window: Duration,
}

/// `storage.exemplars`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExemplarsConfig {
    pub max_exemplars: i64,
}

impl Default for ExemplarsConfig {
    fn default() -> Self {
        ExemplarsConfig { max_exemplars: 100_000 }
    }
}

/// `storage`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tsdb: Option<TsdbConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemplars: Option<ExemplarsConfig>,
}

impl StorageConfig {
    pub fn is_empty(&self) -> bool {
        self.tsdb.is_none() && self.exemplars.is_none()
    }
}

/// `runtime`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    pub gogc: i64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig { gogc: 75 }
    }
}

// ---------------------------------------------------------------- top level

/// A whole `prometheus.yml`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    #[serde(deserialize_with = "checked")]
    pub global: GlobalConfig,
    #[serde(deserialize_with = "de_null_default")]
    pub runtime: RuntimeConfig,
    #[serde(skip_serializing_if = "AlertingConfig::is_empty", deserialize_with = "checked")]
    pub alerting: AlertingConfig,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "de_null_default")]
    pub rule_files: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "de_null_default")]
    pub scrape_config_files: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(skip_serializing_if = "StorageConfig::is_empty", deserialize_with = "de_null_default")]
    pub storage: StorageConfig,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
    pub remote_write: Vec<RemoteWriteConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "checked_vec")]
    pub remote_read: Vec<RemoteReadConfig>,
}

impl Config {
    /// The cross-section rules of `Config.UnmarshalYAML`, and the
    /// environment expansion of external label values done by `config.Load`.
    pub(crate) fn finalize(&mut self) -> Result<(), ConfigError> {
        for v in self.global.external_labels.values_mut() {
            *v = expand_env(v, |name| std::env::var(name).unwrap_or_default());
        }
        for rf in &self.rule_files {
            if !is_valid_rule_path(rf) {
                return Err(ConfigError::msg(format!("invalid rule file path {rf:?}"))
                    .at(Pos::default(), "rule_files"));
            }
        }
        for sf in &self.scrape_config_files {
            if !is_valid_rule_path(sf) {
                return Err(ConfigError::msg(format!("invalid scrape config file path {sf:?}"))
                    .at(Pos::default(), "scrape_config_files"));
            }
        }
        let mut jobs = HashSet::new();
        for (i, sc) in self.scrape_configs.iter_mut().enumerate() {
            let field = format!("scrape_configs[{i}]");
            sc.validate(&self.global).map_err(|e| locate(e, sc.pos, &field))?;
            if !jobs.insert(sc.job_name.clone()) {
                return Err(ConfigError::msg(format!(
                    "found multiple scrape configs with job name {:?}",
                    sc.job_name
                ))
                .at(sc.pos, field));
            }
        }
        let scheme = self.global.name_validation();
        for (i, rc) in self.alerting.alert_relabel_configs.iter().enumerate() {
            rc.validate(scheme).map_err(|e| {
                ConfigError::msg(e).at(rc.pos, format!("alerting.alert_relabel_configs[{i}]"))
            })?;
        }
        for (j, am) in self.alerting.alertmanagers.iter().enumerate() {
            for (kind, rules) in [
                ("alert_relabel_configs", &am.alert_relabel_configs),
                ("relabel_configs", &am.relabel_configs),
            ] {
                for (i, rc) in rules.iter().enumerate() {
                    rc.validate(scheme).map_err(|e| {
                        ConfigError::msg(e).at(rc.pos, format!("alerting.alertmanagers[{j}].{kind}[{i}]"))
                    })?;
                }
            }
        }
        let mut names = HashSet::new();
        for (j, rw) in self.remote_write.iter().enumerate() {
            if !rw.name.is_empty() && !names.insert(rw.name.clone()) {
                return Err(ConfigError::msg(format!(
                    "found multiple remote write configs with job name {:?}",
                    rw.name
                ))
                .at(rw.pos, format!("remote_write[{j}]")));
            }
            for (i, rc) in rw.write_relabel_configs.iter().enumerate() {
                rc.validate(scheme).map_err(|e| {
                    ConfigError::msg(e).at(rc.pos, format!("remote_write[{j}].write_relabel_configs[{i}]"))
                })?;
            }
        }
        let mut names = HashSet::new();
        for (j, rr) in self.remote_read.iter().enumerate() {
            if !rr.name.is_empty() && !names.insert(rr.name.clone()) {
                return Err(ConfigError::msg(format!(
                    "found multiple remote read configs with job name {:?}",
                    rr.name
                ))
                .at(rr.pos, format!("remote_read[{j}]")));
            }
        }
        Ok(())
    }

    /// Resolves relative paths against `dir` (`Config.SetDirectory`).
    pub fn set_directory(&mut self, dir: &Path) {
        join_dir(dir, &mut self.global.query_log_file);
        join_dir(dir, &mut self.global.scrape_failure_log_file);
        for p in self.rule_files.iter_mut().chain(self.scrape_config_files.iter_mut()) {
            join_dir(dir, p);
        }
        for sc in &mut self.scrape_configs {
            sc.set_directory(dir);
        }
        for am in &mut self.alerting.alertmanagers {
            for f in &mut am.file_sd_configs {
                for p in &mut f.files {
                    join_dir(dir, p);
                }
            }
            http_set_directory(
                dir,
                &mut am.tls_config,
                &mut am.basic_auth,
                &mut am.authorization,
                &mut am.oauth2,
            );
        }
        for rw in &mut self.remote_write {
            http_set_directory(
                dir,
                &mut rw.tls_config,
                &mut rw.basic_auth,
                &mut rw.authorization,
                &mut rw.oauth2,
            );
        }
        for rr in &mut self.remote_read {
            http_set_directory(
                dir,
                &mut rr.tls_config,
                &mut rr.basic_auth,
                &mut rr.authorization,
                &mut rr.oauth2,
            );
        }
    }

    /// All scrape configs: the inline ones, then those of the files matched
    /// by `scrape_config_files` (`Config.GetScrapeConfigs`), validated
    /// against `global`, job names unique across all of them.
    pub fn all_scrape_configs(&self) -> Result<Vec<ScrapeConfig>, ConfigError> {
        let mut out = self.scrape_configs.clone();
        let mut jobs: BTreeMap<String, String> =
            out.iter().map(|s| (s.job_name.clone(), "main config file".to_owned())).collect();
        for pattern in &self.scrape_config_files {
            let files = expand_glob(pattern).map_err(|e| {
                ConfigError::msg(format!("error retrieving scrape config files for {pattern:?}: {e}"))
            })?;
            for file in files {
                let text = std::fs::read_to_string(&file)
                    .map_err(|e| ConfigError::msg(format!("open {}: {e}", file.display())).in_file(&file))?;
                let parsed: ScrapeConfigsFile = if text.trim().is_empty() {
                    ScrapeConfigsFile::default()
                } else {
                    crate::decode(&text).map_err(|e| e.in_file(&file))?
                };
                for (i, mut sc) in parsed.scrape_configs.into_iter().enumerate() {
                    let field = format!("scrape_configs[{i}]");
                    sc.validate(&self.global).map_err(|e| locate(e, sc.pos, &field).in_file(&file))?;
                    if let Some(first) = jobs.get(&sc.job_name) {
                        return Err(ConfigError::msg(format!(
                            "found multiple scrape configs with job name {:?}, first found in {first}",
                            sc.job_name
                        ))
                        .at(sc.pos, field)
                        .in_file(&file));
                    }
                    jobs.insert(sc.job_name.clone(), format!("{:?}", file.display().to_string()));
                    if let Some(dir) = file.parent() {
                        sc.set_directory(dir);
                    }
                    out.push(sc);
                }
            }
        }
        Ok(out)
    }

    /// The configuration as YAML, defaults filled and secrets redacted, as
    /// `/api/v1/status/config` returns it.
    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_else(|e| format!("<error creating config string: {e}>"))
    }
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_yaml())
    }
}

fn is_shell_special(c: u8) -> bool {
    matches!(c, b'*' | b'#' | b'$' | b'@' | b'!' | b'?' | b'-') || c.is_ascii_digit()
}

/// Go's `os.Expand` with Prometheus's mapping: `$NAME` and `${NAME}` are
/// replaced by `env(NAME)`, `$$` by `$`; malformed `${` is eaten; a `$`
/// followed by nothing usable stays.
pub fn expand_env(s: &str, env: impl Fn(&str) -> String) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'$' || i + 1 >= b.len() {
            i += 1;
            continue;
        }
        out.push_str(&s[last..i]);
        let rest = &s[i + 1..];
        let rb = rest.as_bytes();
        let (name, width): (&str, usize) = if rb[0] == b'{' {
            if rb.len() > 2 && is_shell_special(rb[1]) && rb[2] == b'}' {
                (&rest[1..2], 3)
            } else {
                match rest.find('}') {
                    Some(1) => ("", 2),
                    Some(end) => (&rest[1..end], end + 1),
                    None => ("", 1),
                }
            }
        } else if is_shell_special(rb[0]) {
            (&rest[..1], 1)
        } else {
            let n = rb.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            (&rest[..n], n)
        };
        if (name.is_empty() && width == 0) || name == "$" {
            // `$` before a non-name stays; `$$` is a literal `$`.
            out.push('$');
        } else if !name.is_empty() {
            out.push_str(&env(name));
        }
        i += 1 + width;
        last = i;
    }
    out.push_str(&s[last..]);
    out
}

/// Gives an error without a position the position of its section.
fn locate(e: ConfigError, pos: Pos, field: &str) -> ConfigError {
    if e.line.is_some() || e.field.is_some() {
        let mut e = e;
        if let Some(f) = &e.field {
            e.field = Some(format!("{field}.{f}"));
        }
        if e.line.is_none() && pos.line > 0 {
            e.line = Some(pos.line);
            e.column = Some(pos.column);
        }
        e
    } else {
        e.at(pos, field)
    }
}

/// Expands a `*` glob in the last path element (the only form allowed).
pub fn expand_glob(pattern: &str) -> Result<Vec<std::path::PathBuf>, String> {
    let path = Path::new(pattern);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    if !name.contains('*') {
        return Ok(if path.exists() { vec![path.to_path_buf()] } else { Vec::new() });
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or_else(|| Path::new("."));
    let (prefix, suffix) = name.split_once('*').unwrap_or((name, ""));
    if suffix.contains('*') {
        return Err("syntax error in pattern".into());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(_) => return Ok(Vec::new()),
    };
    let mut out: Vec<_> = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name().to_str().is_some_and(|n| {
                n.len() >= prefix.len() + suffix.len() && n.starts_with(prefix) && n.ends_with(suffix)
            })
        })
        .map(|e| dir.join(e.file_name()))
        .collect();
    out.sort();
    Ok(out)
}
