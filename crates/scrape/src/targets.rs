//! Building scrape targets from target groups (`scrape/target.go`:
//! `PopulateLabels`, `TargetsFromGroup`, `Target.URL`).

use std::collections::{BTreeMap, HashSet};

use ember_config::ScrapeConfig;
use ember_model::{Labels, LabelsBuilder};

use crate::discovery::{TargetGroup, ADDRESS_LABEL};
use crate::relabel::process_builder;

pub const JOB_LABEL: &str = "job";
pub const INSTANCE_LABEL: &str = "instance";
pub const SCHEME_LABEL: &str = "__scheme__";
pub const METRICS_PATH_LABEL: &str = "__metrics_path__";
pub const SCRAPE_INTERVAL_LABEL: &str = "__scrape_interval__";
pub const SCRAPE_TIMEOUT_LABEL: &str = "__scrape_timeout__";
pub const PARAM_LABEL_PREFIX: &str = "__param_";
pub const META_LABEL_PREFIX: &str = "__meta_";
pub const RESERVED_LABEL_PREFIX: &str = "__";

/// Why a discovered target was rejected (Prometheus's messages).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("no address")]
    NoAddress,
    #[error("{0:?} is not a valid hostname")]
    InvalidAddress(String),
    #[error("error parsing scrape interval: {0}")]
    BadInterval(String),
    #[error("scrape interval cannot be 0")]
    ZeroInterval,
    #[error("error parsing scrape timeout: {0}")]
    BadTimeout(String),
    #[error("scrape timeout cannot be 0")]
    ZeroTimeout,
    #[error("scrape timeout cannot be greater than scrape interval ({timeout:?} > {interval:?})")]
    TimeoutAboveInterval { timeout: String, interval: String },
}

/// A scrape target: its final labels (with the `__` labels that shape the
/// scrape) and the labels it was discovered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    labels: Labels,
    discovered: Labels,
    params: BTreeMap<String, Vec<String>>,
}

impl Target {
    /// All labels after relabelling, `__address__`, `__scheme__` and the
    /// other internal ones included.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The labels before relabelling (`discoveredLabels` in the API).
    pub fn discovered_labels(&self) -> &Labels {
        &self.discovered
    }

    /// The labels attached to scraped series: those not starting with `__`.
    pub fn public_labels(&self) -> Labels {
        let mut lb = LabelsBuilder::from_labels(&self.labels);
        lb.retain(|n, _| !n.starts_with(RESERVED_LABEL_PREFIX));
        lb.build()
    }

    pub fn job(&self) -> &str {
        self.labels.get(JOB_LABEL).unwrap_or("")
    }

    /// The scrape URL: scheme, address and path from the labels; query
    /// parameters from `params`, the first value of each overridden by a
    /// `__param_<name>` label.
    pub fn url(&self) -> String {
        let mut params = self.params.clone();
        for l in self.labels.iter() {
            if let Some(name) = l.name.strip_prefix(PARAM_LABEL_PREFIX) {
                match params.get_mut(name) {
                    Some(v) if !v.is_empty() => v[0] = l.value.to_owned(),
                    _ => {
                        params.insert(name.to_owned(), vec![l.value.to_owned()]);
                    }
                }
            }
        }
        let scheme = self.labels.get(SCHEME_LABEL).unwrap_or("http");
        let host = self.labels.get(ADDRESS_LABEL).unwrap_or("");
        let path = self.labels.get(METRICS_PATH_LABEL).unwrap_or("");
        let mut out = format!("{scheme}://{host}");
        if !path.is_empty() && !path.starts_with('/') {
            out.push('/');
        }
        out.push_str(&escape_path(path));
        let mut first = true;
        for (k, vs) in &params {
            for v in vs {
                out.push(if first { '?' } else { '&' });
                first = false;
                query_escape(&mut out, k);
                out.push('=');
                query_escape(&mut out, v);
            }
        }
        out
    }

    /// The effective scrape interval and timeout (from the labels, which
    /// relabelling may have changed).
    pub fn interval_and_timeout(&self) -> (std::time::Duration, std::time::Duration) {
        let d = |name| {
            self.labels
                .get(name)
                .and_then(|v| ember_model::time::parse_duration(v).ok())
                .map(|d| d.as_std())
                .unwrap_or_default()
        };
        (d(SCRAPE_INTERVAL_LABEL), d(SCRAPE_TIMEOUT_LABEL))
    }
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, space as `+`,
/// everything else `%XX`.
fn query_escape(out: &mut String, s: &str) {
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

/// Percent-encodes what Go's `url.URL.EscapedPath` would, keeping `/`.
fn escape_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The discovered label set of one target: target labels, then group
/// labels not already set, then the scrape config's defaults for whatever
/// is still unset (`PopulateDiscoveredLabels`).
fn discovered_labels(
    cfg: &ScrapeConfig,
    target: &BTreeMap<String, String>,
    group: &BTreeMap<String, String>,
) -> LabelsBuilder {
    let mut lb = LabelsBuilder::new();
    for (n, v) in target {
        lb.set(n, v);
    }
    for (n, v) in group {
        if !target.contains_key(n) {
            lb.set(n, v);
        }
    }
    let interval = cfg.scrape_interval.to_string();
    let timeout = cfg.scrape_timeout.to_string();
    for (n, v) in [
        (JOB_LABEL, cfg.job_name.as_str()),
        (SCRAPE_INTERVAL_LABEL, interval.as_str()),
        (SCRAPE_TIMEOUT_LABEL, timeout.as_str()),
        (METRICS_PATH_LABEL, cfg.metrics_path.as_str()),
        (SCHEME_LABEL, cfg.scheme.as_str()),
    ] {
        if lb.get(n).unwrap_or("").is_empty() {
            lb.set(n, v);
        }
    }
    for (k, v) in &cfg.params {
        let name = format!("{PARAM_LABEL_PREFIX}{k}");
        if let Some(first) = v.first() {
            if lb.get(&name).unwrap_or("").is_empty() {
                lb.set(&name, first);
            }
        }
    }
    lb
}

/// `PopulateLabels`: returns the discovered labels and, unless relabelling
/// dropped the target, its final labels.
pub fn populate_labels(
    cfg: &ScrapeConfig,
    target: &BTreeMap<String, String>,
    group: &BTreeMap<String, String>,
) -> (Labels, Result<Option<Labels>, TargetError>) {
    let mut lb = discovered_labels(cfg, target, group);
    let discovered = lb.build();
    if !process_builder(&mut lb, &cfg.relabel_configs) {
        return (discovered, Ok(None));
    }
    (discovered, finish_labels(lb))
}

fn finish_labels(mut lb: LabelsBuilder) -> Result<Option<Labels>, TargetError> {
    let addr = lb.get(ADDRESS_LABEL).unwrap_or("").to_owned();
    if addr.is_empty() {
        return Err(TargetError::NoAddress);
    }
    if addr.contains('/') {
        return Err(TargetError::InvalidAddress(addr));
    }
    let interval = lb.get(SCRAPE_INTERVAL_LABEL).unwrap_or("").to_owned();
    let iv =
        ember_model::time::parse_duration(&interval).map_err(|e| TargetError::BadInterval(e.to_string()))?;
    if iv.as_millis() == 0 {
        return Err(TargetError::ZeroInterval);
    }
    let timeout = lb.get(SCRAPE_TIMEOUT_LABEL).unwrap_or("").to_owned();
    let to =
        ember_model::time::parse_duration(&timeout).map_err(|e| TargetError::BadTimeout(e.to_string()))?;
    if to.as_millis() == 0 {
        return Err(TargetError::ZeroTimeout);
    }
    if to > iv {
        return Err(TargetError::TimeoutAboveInterval { timeout, interval });
    }
    // Meta labels go after relabelling; the other `__` labels stay on the
    // target, which uses them to build the scrape.
    lb.retain(|n, _| !n.starts_with(META_LABEL_PREFIX));
    if lb.get(INSTANCE_LABEL).unwrap_or("").is_empty() {
        lb.set(INSTANCE_LABEL, &addr);
    }
    Ok(Some(lb.build()))
}

/// The targets of one scrape config.
#[derive(Debug, Clone, Default)]
pub struct TargetSet {
    /// Targets to scrape, deduplicated by label set.
    pub active: Vec<Target>,
    /// Targets dropped by relabelling (discovered labels only), at most
    /// `keep_dropped_targets` of them when that is non-zero.
    pub dropped: Vec<Target>,
    /// How many targets were dropped in total (the API reports it).
    pub dropped_total: usize,
    /// Rejected targets: `instance N in group SOURCE: reason`.
    pub errors: Vec<String>,
}

/// `TargetsFromGroup` over all groups of a scrape config.
pub fn build_targets(cfg: &ScrapeConfig, groups: &[TargetGroup]) -> TargetSet {
    let mut set = TargetSet::default();
    let mut seen = HashSet::new();
    for g in groups {
        for (i, t) in g.targets.iter().enumerate() {
            let (discovered, res) = populate_labels(cfg, t, &g.labels);
            match res {
                Ok(Some(labels)) => {
                    if seen.insert(labels.clone()) {
                        set.active.push(Target { labels, discovered, params: cfg.params.clone() });
                    }
                }
                Ok(None) => {
                    set.dropped_total += 1;
                    let limit = cfg.keep_dropped_targets as usize;
                    if limit == 0 || set.dropped.len() < limit {
                        set.dropped.push(Target {
                            labels: Labels::empty(),
                            discovered,
                            params: cfg.params.clone(),
                        });
                    }
                }
                Err(e) => set.errors.push(format!("instance {i} in group {}: {e}", g.source)),
            }
        }
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::static_groups;
    use ember_model::labels;

    fn job(yaml: &str) -> ScrapeConfig {
        let indented: String = yaml.lines().map(|l| format!("    {l}\n")).collect();
        let doc = format!("global:\n  scrape_interval: 30s\nscrape_configs:\n  - job_name: j\n{indented}");
        ember_config::parse_str(&doc).unwrap().scrape_configs.remove(0)
    }

    fn targets(cfg: &ScrapeConfig) -> TargetSet {
        build_targets(cfg, &static_groups(&cfg.static_configs))
    }

    #[test]
    fn default_labels_instance_and_url() {
        let cfg = job("static_configs:\n  - targets: ['h:9100']\n    labels: {env: prod}\n");
        let set = targets(&cfg);
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        let t = &set.active[0];
        assert_eq!(
            *t.labels(),
            labels!(
                "__address__" => "h:9100",
                "__metrics_path__" => "/metrics",
                "__scheme__" => "http",
                "__scrape_interval__" => "30s",
                "__scrape_timeout__" => "10s",
                "env" => "prod",
                "instance" => "h:9100",
                "job" => "j"
            )
        );
        assert_eq!(t.public_labels(), labels!("env" => "prod", "instance" => "h:9100", "job" => "j"));
        assert_eq!(t.url(), "http://h:9100/metrics");
        assert_eq!(t.job(), "j");
        assert_eq!(
            t.interval_and_timeout(),
            (std::time::Duration::from_secs(30), std::time::Duration::from_secs(10))
        );
        // Discovered labels are the pre-relabelling set, without instance.
        assert_eq!(t.discovered_labels().get("instance"), None);
        assert_eq!(t.discovered_labels().get("__address__"), Some("h:9100"));
    }

    #[test]
    fn params_become_labels_and_query() {
        let cfg = job(
            "params:\n  module: [http_2xx, ignored]\n  target: [a b]\nmetrics_path: /probe\nscheme: https\nstatic_configs:\n  - targets: ['bb:9115']\n",
        );
        let t = &targets(&cfg).active[0];
        assert_eq!(t.labels().get("__param_module"), Some("http_2xx"));
        assert_eq!(t.labels().get("__param_target"), Some("a b"));
        assert_eq!(t.url(), "https://bb:9115/probe?module=http_2xx&module=ignored&target=a+b");
    }

    #[test]
    fn param_label_from_relabelling_overrides_first_value() {
        let cfg = job(
            "params:\n  module: [m1]\nstatic_configs:\n  - targets: ['example.com']\nrelabel_configs:\n  - source_labels: [__address__]\n    target_label: __param_target\n  - target_label: __address__\n    replacement: 'bb:9115'\n",
        );
        let t = &targets(&cfg).active[0];
        assert_eq!(t.url(), "http://bb:9115/metrics?module=m1&target=example.com");
        let cfg = job("params:\n  q: ['a:b~*/é']\nstatic_configs:\n  - targets: ['h:1']\n");
        assert_eq!(targets(&cfg).active[0].url(), "http://h:1/metrics?q=a%3Ab~%2A%2F%C3%A9");
        // instance defaults to the *final* address.
        assert_eq!(t.labels().get("instance"), Some("bb:9115"));
    }

    #[test]
    fn group_labels_do_not_override_target_labels_and_config_defaults_fill_gaps() {
        let cfg = job("metrics_path: /m\n");
        let target = BTreeMap::from([
            ("__address__".to_owned(), "a:1".to_owned()),
            ("x".to_owned(), "from-target".to_owned()),
            ("__metrics_path__".to_owned(), "/custom".to_owned()),
        ]);
        let group =
            BTreeMap::from([("x".to_owned(), "from-group".to_owned()), ("y".to_owned(), "g".to_owned())]);
        let (_, res) = populate_labels(&cfg, &target, &group);
        let l = res.unwrap().unwrap();
        assert_eq!(l.get("x"), Some("from-target"));
        assert_eq!(l.get("y"), Some("g"));
        assert_eq!(l.get("__metrics_path__"), Some("/custom"), "a discovered value wins over the config");
    }

    #[test]
    fn meta_labels_removed_after_relabelling() {
        let cfg = job("relabel_configs:\n  - source_labels: [__meta_filepath]\n    target_label: file\n");
        let target = BTreeMap::from([("__address__".to_owned(), "a:1".to_owned())]);
        let group = BTreeMap::from([("__meta_filepath".to_owned(), "/t.json".to_owned())]);
        let (disc, res) = populate_labels(&cfg, &target, &group);
        let l = res.unwrap().unwrap();
        assert_eq!(l.get("file"), Some("/t.json"), "usable during relabelling");
        assert_eq!(l.get("__meta_filepath"), None, "gone afterwards");
        assert_eq!(disc.get("__meta_filepath"), Some("/t.json"), "kept in discovered labels");
    }

    #[test]
    fn explicit_instance_is_kept() {
        let cfg = job("static_configs:\n  - targets: ['a:1']\n    labels: {instance: mine}\n");
        assert_eq!(targets(&cfg).active[0].labels().get("instance"), Some("mine"));
    }

    #[test]
    fn dropped_targets_are_kept_with_discovered_labels_up_to_the_limit() {
        let cfg = job(
            "keep_dropped_targets: 2\nstatic_configs:\n  - targets: ['a:1', 'b:1', 'c:1', 'keep:1']\nrelabel_configs:\n  - source_labels: [__address__]\n    regex: 'keep:.*'\n    action: keep\n",
        );
        let set = targets(&cfg);
        assert_eq!(set.active.len(), 1);
        assert_eq!(set.dropped_total, 3);
        assert_eq!(set.dropped.len(), 2);
        assert_eq!(set.dropped[0].discovered_labels().get("__address__"), Some("a:1"));
        assert!(set.dropped[0].labels().is_empty());
        let unlimited = job("static_configs:\n  - targets: ['a:1', 'b:1']\nrelabel_configs:\n  - action: drop\n    source_labels: [job]\n");
        assert_eq!(targets(&unlimited).dropped.len(), 2);
    }

    #[test]
    fn missing_or_bad_address_is_an_error() {
        let cfg = job("static_configs:\n  - targets: ['a:1']\nrelabel_configs:\n  - target_label: __address__\n    replacement: ''\n");
        let set = targets(&cfg);
        assert!(set.active.is_empty());
        assert_eq!(set.errors, ["instance 0 in group 0: no address"]);

        let cfg = job("static_configs:\n  - targets: ['a:1']\nrelabel_configs:\n  - target_label: __address__\n    replacement: 'http://x/y'\n");
        assert_eq!(targets(&cfg).errors, ["instance 0 in group 0: \"http://x/y\" is not a valid hostname"]);
    }

    #[test]
    fn relabelled_interval_and_timeout_are_checked() {
        let cfg = job("static_configs:\n  - targets: ['a:1']\nrelabel_configs:\n  - target_label: __scrape_timeout__\n    replacement: 1m\n");
        assert_eq!(
            targets(&cfg).errors,
            ["instance 0 in group 0: scrape timeout cannot be greater than scrape interval (\"1m\" > \"30s\")"]
        );
        let cfg = job("static_configs:\n  - targets: ['a:1']\nrelabel_configs:\n  - target_label: __scrape_interval__\n    replacement: '0'\n");
        assert_eq!(targets(&cfg).errors, ["instance 0 in group 0: scrape interval cannot be 0"]);
        let cfg = job("static_configs:\n  - targets: ['a:1']\nrelabel_configs:\n  - target_label: __scrape_interval__\n    replacement: 'soon'\n");
        assert!(targets(&cfg).errors[0].contains("error parsing scrape interval"));
        // A shorter relabelled interval is honoured by the target.
        let cfg = job("static_configs:\n  - targets: ['a:1']\nrelabel_configs:\n  - target_label: __scrape_interval__\n    replacement: 15s\n");
        let set = targets(&cfg);
        assert_eq!(set.active[0].interval_and_timeout().0, std::time::Duration::from_secs(15));
    }

    #[test]
    fn duplicate_targets_are_scraped_once() {
        let cfg = job("static_configs:\n  - targets: ['a:1', 'a:1']\n  - targets: ['a:1']\n");
        assert_eq!(targets(&cfg).active.len(), 1);
    }

    #[test]
    fn relabelled_scheme_and_path_shape_the_url() {
        let cfg = job("static_configs:\n  - targets: ['a:1']\nrelabel_configs:\n  - target_label: __scheme__\n    replacement: https\n  - target_label: __metrics_path__\n    replacement: '/x y'\n");
        assert_eq!(targets(&cfg).active[0].url(), "https://a:1/x%20y");
    }
}
