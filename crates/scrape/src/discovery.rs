//! Target groups from `static_configs` and `file_sd_configs`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ember_config::{FileSdConfig, StaticConfig};
use serde::Deserialize;

/// The label Prometheus sets to the file a group came from.
pub const META_FILEPATH: &str = "__meta_filepath";
pub const ADDRESS_LABEL: &str = "__address__";

/// A group of targets sharing labels (`targetgroup.Group`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetGroup {
    /// Identifies the group within its provider (`0`, `file.json:1`).
    pub source: String,
    /// One label set per target; each has at least `__address__`.
    pub targets: Vec<BTreeMap<String, String>>,
    /// Labels shared by every target of the group.
    pub labels: BTreeMap<String, String>,
}

/// Why a file_sd file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("error reading file {path:?}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("error parsing file {path:?}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid file extension for {0:?}: must be .json, .yml or .yaml")]
    Extension(PathBuf),
    #[error("{0}")]
    Glob(String),
}

fn address_group(targets: &[String]) -> Vec<BTreeMap<String, String>> {
    targets.iter().map(|t| BTreeMap::from([(ADDRESS_LABEL.to_owned(), t.clone())])).collect()
}

/// The groups of `static_configs`, sourced by their index as in Prometheus.
pub fn static_groups(configs: &[StaticConfig]) -> Vec<TargetGroup> {
    configs
        .iter()
        .enumerate()
        .map(|(i, sc)| TargetGroup {
            source: i.to_string(),
            targets: address_group(&sc.targets),
            labels: sc.labels.clone(),
        })
        .collect()
}

/// One entry of a file_sd file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileGroup {
    #[serde(default)]
    targets: Option<Vec<String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Option<String>>>,
}

/// Reads one file_sd file (JSON by `.json`, YAML by `.yml`/`.yaml`). Each
/// group gets `__meta_filepath` and the source `<path>:<index>`.
pub fn read_file_groups(path: &Path) -> Result<Vec<TargetGroup>, DiscoveryError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| DiscoveryError::Io { path: path.to_path_buf(), source: e })?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let parse_err = |message: String| DiscoveryError::Parse { path: path.to_path_buf(), message };
    let groups: Vec<Option<FileGroup>> = match ext.as_deref() {
        Some("json") => serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?,
        Some("yml") | Some("yaml") => {
            if text.trim().is_empty() {
                Vec::new()
            } else {
                serde_saphyr::from_str::<Option<Vec<Option<FileGroup>>>>(&text)
                    .map_err(|e| parse_err(e.to_string()))?
                    .unwrap_or_default()
            }
        }
        _ => return Err(DiscoveryError::Extension(path.to_path_buf())),
    };
    let filepath = path.to_string_lossy().into_owned();
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.into_iter().enumerate() {
        let Some(g) = g else {
            return Err(parse_err("nil target group item found".into()));
        };
        let mut labels: BTreeMap<String, String> =
            g.labels.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect();
        if let Some(bad) = labels.keys().find(|k| k.is_empty()) {
            return Err(parse_err(format!("{bad:?} is not a valid label name")));
        }
        labels.insert(META_FILEPATH.to_owned(), filepath.clone());
        out.push(TargetGroup {
            source: format!("{filepath}:{i}"),
            targets: address_group(&g.targets.unwrap_or_default()),
            labels,
        });
    }
    Ok(out)
}

/// file_sd for one `file_sd_configs` entry: expands the globs, reads the
/// files, and re-reads them when their modification time or the set of
/// matching files changes, or every `refresh_interval`.
#[derive(Debug)]
pub struct FileDiscovery {
    patterns: Vec<String>,
    refresh_interval: Duration,
    /// Last seen modification time per file.
    seen: HashMap<PathBuf, Option<SystemTime>>,
    /// Last good groups per file; kept when a re-read fails.
    groups: BTreeMap<PathBuf, Vec<TargetGroup>>,
    last_full_read: Option<std::time::Instant>,
    /// Errors of the last refresh (Prometheus logs them and counts
    /// `prometheus_sd_file_read_errors_total`).
    pub last_errors: Vec<String>,
}

impl FileDiscovery {
    pub fn new(cfg: &FileSdConfig) -> FileDiscovery {
        FileDiscovery {
            patterns: cfg.files.clone(),
            refresh_interval: cfg.refresh_interval.as_std(),
            seen: HashMap::new(),
            groups: BTreeMap::new(),
            last_full_read: None,
            last_errors: Vec::new(),
        }
    }

    fn matching_files(&mut self) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for p in &self.patterns {
            match ember_config::expand_glob(p) {
                Ok(f) => files.extend(f),
                Err(e) => self.last_errors.push(format!("error expanding glob {p:?}: {e}")),
            }
        }
        files.sort();
        files.dedup();
        files
    }

    /// Checks the files; returns the full current group list when anything
    /// changed (a vanished file's groups are sent once, emptied, so that
    /// consumers drop its targets), `None` when nothing did.
    pub fn refresh(&mut self) -> Option<Vec<TargetGroup>> {
        self.last_errors.clear();
        let files = self.matching_files();
        let due = self.last_full_read.is_none_or(|t| t.elapsed() >= self.refresh_interval);
        let mut changed = false;
        let mut cleared = Vec::new();
        // Files that no longer match: their groups are emptied.
        let gone: Vec<PathBuf> = self.groups.keys().filter(|p| !files.contains(p)).cloned().collect();
        for p in gone {
            if let Some(old) = self.groups.remove(&p) {
                cleared
                    .extend(old.into_iter().map(|g| TargetGroup { source: g.source, ..Default::default() }));
            }
            self.seen.remove(&p);
            changed = true;
        }
        // Forget files that no longer match, read successfully or not.
        self.seen.retain(|p, _| files.contains(p));
        for f in &files {
            let mtime = std::fs::metadata(f).and_then(|m| m.modified()).ok();
            let known = self.seen.get(f);
            if !due && known == Some(&mtime) {
                continue;
            }
            self.seen.insert(f.clone(), mtime);
            match read_file_groups(f) {
                Ok(new) => match self.groups.insert(f.clone(), new.clone()) {
                    Some(old) => {
                        if old != new {
                            changed = true;
                        }
                        // Groups that disappeared from the file are cleared.
                        for g in old.into_iter().skip(new.len()) {
                            cleared.push(TargetGroup { source: g.source, ..Default::default() });
                        }
                    }
                    None => changed = true,
                },
                // Keep the previous groups of a file that cannot be read now.
                Err(e) => self.last_errors.push(e.to_string()),
            }
        }
        if due {
            self.last_full_read = Some(std::time::Instant::now());
        }
        if !changed && cleared.is_empty() {
            return None;
        }
        let mut all: Vec<TargetGroup> = self.groups.values().flatten().cloned().collect();
        all.extend(cleared);
        Some(all)
    }

    /// Polls every `poll` until the receiver goes away, sending the group
    /// list whenever it changes (the first list is always sent).
    pub async fn run(mut self, poll: Duration, tx: tokio::sync::mpsc::Sender<Vec<TargetGroup>>) {
        let mut first = true;
        let mut ticker = tokio::time::interval(poll);
        loop {
            ticker.tick().await;
            if tx.is_closed() {
                return;
            }
            let update = self.refresh();
            let groups = match (update, first) {
                (Some(g), _) => g,
                (None, true) => self.groups.values().flatten().cloned().collect(),
                (None, false) => continue,
            };
            first = false;
            if tx.send(groups).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn static_groups_carry_address_and_index_source() {
        let cfg = ember_config::parse_str(
            "scrape_configs:\n  - job_name: a\n    static_configs:\n      - targets: [h1:1, h2:2]\n        labels: {env: p}\n      - targets: [h3:3]\n",
        )
        .unwrap();
        let g = static_groups(&cfg.scrape_configs[0].static_configs);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].source, "0");
        assert_eq!(g[1].source, "1");
        assert_eq!(g[0].targets[1][ADDRESS_LABEL], "h2:2");
        assert_eq!(g[0].labels["env"], "p");
        assert!(g[1].labels.is_empty());
    }

    #[test]
    fn reads_json_and_yaml_files() {
        let dir = tempfile::tempdir().unwrap();
        let j = write(
            dir.path(),
            "t.json",
            r#"[{"targets":["a:1","b:2"],"labels":{"env":"prod"}},{"targets":["c:3"]}]"#,
        );
        let g = read_file_groups(&j).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].source, format!("{}:0", j.display()));
        assert_eq!(g[1].source, format!("{}:1", j.display()));
        assert_eq!(g[0].labels["env"], "prod");
        assert_eq!(g[0].labels[META_FILEPATH], j.to_string_lossy());
        assert_eq!(g[1].labels[META_FILEPATH], j.to_string_lossy());
        assert_eq!(g[0].targets.len(), 2);

        let y = write(dir.path(), "t.yml", "- targets: [x:1]\n  labels:\n    team: no\n");
        let g = read_file_groups(&y).unwrap();
        assert_eq!(g[0].targets[0][ADDRESS_LABEL], "x:1");
        assert_eq!(g[0].labels["team"], "no", "YAML 1.1 booleans stay strings");
        let empty = write(dir.path(), "e.yaml", "");
        assert!(read_file_groups(&empty).unwrap().is_empty());
    }

    #[test]
    fn rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "b.json", r#"[{"targets":["a:1"],"lables":{}}]"#);
        assert!(matches!(read_file_groups(&bad), Err(DiscoveryError::Parse { .. })));
        let bad = write(dir.path(), "b.yml", "- targets: [a:1]\n  extra: 1\n");
        assert!(matches!(read_file_groups(&bad), Err(DiscoveryError::Parse { .. })));
        let bad = write(dir.path(), "b.txt", "[]");
        assert!(matches!(read_file_groups(&bad), Err(DiscoveryError::Extension(_))));
        let bad = write(dir.path(), "n.json", "[null]");
        assert!(read_file_groups(&bad).unwrap_err().to_string().contains("nil target group"));
        assert!(matches!(read_file_groups(&dir.path().join("missing.json")), Err(DiscoveryError::Io { .. })));
    }

    fn discovery(dir: &Path, refresh: &str) -> FileDiscovery {
        let yaml = format!(
            "scrape_configs:\n  - job_name: a\n    file_sd_configs:\n      - files: ['{}/*.json']\n        refresh_interval: {refresh}\n",
            dir.display()
        );
        FileDiscovery::new(&ember_config::parse_str(&yaml).unwrap().scrape_configs[0].file_sd_configs[0])
    }

    fn bump_mtime(p: &Path, secs: u64) {
        let f = std::fs::File::options().write(true).open(p).unwrap();
        f.set_modified(SystemTime::now() + Duration::from_secs(secs)).unwrap();
    }

    #[test]
    fn file_discovery_reports_changes_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", r#"[{"targets":["a:1"]}]"#);
        let mut d = discovery(dir.path(), "1h");
        let first = d.refresh().expect("first refresh reports the groups");
        assert_eq!(first.len(), 1);
        assert!(d.refresh().is_none(), "nothing changed");

        // A new file matching the glob is picked up.
        write(dir.path(), "b.json", r#"[{"targets":["b:1"]},{"targets":["b:2"]}]"#);
        let g = d.refresh().unwrap();
        assert_eq!(g.len(), 3);

        // A modified file is re-read.
        std::fs::write(&a, r#"[{"targets":["a:1","a:2"]}]"#).unwrap();
        bump_mtime(&a, 5);
        let g = d.refresh().unwrap();
        let ga = g.iter().find(|g| g.source.ends_with("a.json:0")).unwrap();
        assert_eq!(ga.targets.len(), 2);

        // A removed file's groups are sent emptied, then forgotten.
        std::fs::remove_file(dir.path().join("b.json")).unwrap();
        let g = d.refresh().unwrap();
        let cleared: Vec<_> = g.iter().filter(|g| g.source.contains("b.json")).collect();
        assert_eq!(cleared.len(), 2);
        assert!(cleared.iter().all(|g| g.targets.is_empty()));
        assert!(d.refresh().is_none());
    }

    #[test]
    fn file_discovery_keeps_last_good_groups_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", r#"[{"targets":["a:1"]}]"#);
        let mut d = discovery(dir.path(), "1h");
        d.refresh().unwrap();
        std::fs::write(&a, "{not json").unwrap();
        bump_mtime(&a, 5);
        assert!(d.refresh().is_none(), "a broken file changes nothing");
        assert_eq!(d.last_errors.len(), 1);
        assert!(d.last_errors[0].contains("error parsing file"), "{:?}", d.last_errors);
        assert_eq!(d.groups.values().flatten().count(), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn watcher_sends_initial_and_changed_groups() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.json", r#"[{"targets":["a:1"]}]"#);
        let d = discovery(dir.path(), "1h");
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let task = tokio::spawn(d.run(Duration::from_millis(20), tx));
        let first = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(first[0].targets[0][ADDRESS_LABEL], "a:1");
        std::fs::write(&a, r#"[{"targets":["a:9"]}]"#).unwrap();
        bump_mtime(&a, 5);
        let next = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.unwrap().unwrap();
        assert_eq!(next[0].targets[0][ADDRESS_LABEL], "a:9");
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    }
}
