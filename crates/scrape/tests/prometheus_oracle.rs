#![allow(clippy::unwrap_used)]
//! Runs Debian's Prometheus (when installed) on a config full of relabel
//! rules and compares its `/api/v1/targets` answer with ember's targets:
//! discovered labels, final labels, scrape URLs and dropped targets.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ember_scrape::discovery::static_groups;
use ember_scrape::{build_targets, FileDiscovery, TargetGroup};

/// Every target has a port: Prometheus 2.42 appends the scheme's default
/// port to `instance` for port-less addresses, which 3.x (and ember) no
/// longer do.
const CONFIG: &str = r#"
global:
  scrape_interval: 1h
scrape_configs:
  - job_name: relabel
    scrape_timeout: 7s
    params:
      module: [m1, m2]
    static_configs:
      - targets: ['foo:1', 'bar:80', 'baz:1', 'Qux:9']
        labels: {env: Prod, team: "a b"}
      - targets: ['drop-me:1']
    relabel_configs:
      - source_labels: [__address__]
        action: hashmod
        modulus: 1000
        target_label: shard
      - source_labels: [env]
        action: lowercase
        target_label: env_l
      - source_labels: [__address__]
        action: uppercase
        target_label: addr_u
      - source_labels: [__address__]
        target_label: __param_target
      - source_labels: [__address__]
        regex: '(baz|drop-me):.*'
        action: drop
      - source_labels: [__address__, env]
        separator: '@'
        regex: '([^:]+):(\d+)@(.*)'
        target_label: 'combo_${2}'
        replacement: '$1-$3'
      - action: labelmap
        regex: '(te)(am)'
        replacement: 'x_${2}_$1'
      - source_labels: [shard]
        regex: '.*[05]'
        target_label: __scheme__
        replacement: https
      - source_labels: [team]
        action: keepequal
        target_label: team
  - job_name: files
    scrape_interval: 30s
    metrics_path: /probe
    file_sd_configs:
      - files: ['FILES/*.json', 'FILES/*.yml']
    relabel_configs:
      - source_labels: [__meta_filepath]
        regex: '.*/(.*)'
        target_label: from_file
      - source_labels: [__address__]
        regex: 'skip.*'
        action: drop
      - action: labeldrop
        regex: 'unwanted'
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.split_once("\r\n\r\n").map(|(_, body)| body.to_owned())
}

struct Prom(Child);
impl Drop for Prom {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

type LabelMap = BTreeMap<String, String>;

fn labels_json(v: &serde_json::Value) -> LabelMap {
    v.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned())).collect()
}

fn to_map(l: &ember_model::Labels) -> LabelMap {
    l.iter().map(|l| (l.name.to_owned(), l.value.to_owned())).collect()
}

#[test]
fn targets_match_prometheus() {
    if !std::path::Path::new("/usr/bin/prometheus").exists() {
        eprintln!("prometheus not installed; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(
        files.join("a.json"),
        r#"[{"targets":["f1:9100","skip1:1"],"labels":{"unwanted":"x","zone":"z1"}},{"targets":["f2:9100"]}]"#,
    )
    .unwrap();
    std::fs::write(files.join("b.yml"), "- targets: ['f3:9100']\n  labels:\n    zone: no\n").unwrap();
    let config = CONFIG.replace("FILES", &files.to_string_lossy());
    let cfg_path = dir.path().join("prometheus.yml");
    std::fs::write(&cfg_path, &config).unwrap();

    let port = free_port();
    let _prom = Prom(
        Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", cfg_path.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // ember's view of the same config.
    let cfg = ember_config::load_file(&cfg_path).unwrap();
    let mut ours_active: BTreeMap<String, (LabelMap, LabelMap, String)> = BTreeMap::new();
    let mut ours_dropped: Vec<LabelMap> = Vec::new();
    for sc in &cfg.scrape_configs {
        let mut groups: Vec<TargetGroup> = static_groups(&sc.static_configs);
        for f in &sc.file_sd_configs {
            groups.extend(FileDiscovery::new(f).refresh().unwrap_or_default());
        }
        let set = build_targets(sc, &groups);
        assert!(set.errors.is_empty(), "{:?}", set.errors);
        for t in &set.active {
            ours_active.insert(t.url(), (to_map(t.discovered_labels()), to_map(&t.public_labels()), t.url()));
        }
        ours_dropped.extend(set.dropped.iter().map(|t| to_map(t.discovered_labels())));
    }

    assert_eq!(ours_active.len(), 6, "foo, bar, Qux and f1-f3 stay");
    let (_, foo_labels, _) = ours_active.values().find(|(d, _, _)| d["__address__"] == "foo:1").unwrap();
    assert_eq!(foo_labels["combo_1"], "foo-Prod");
    assert_eq!(foo_labels["x_am_te"], "a b");

    // Prometheus's view, once both jobs' targets are there.
    let deadline = Instant::now() + Duration::from_secs(30);
    let data = loop {
        assert!(Instant::now() < deadline, "prometheus did not report targets in time");
        std::thread::sleep(Duration::from_millis(300));
        let Some(body) = http_get(port, "/api/v1/targets") else { continue };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else { continue };
        let active = v["data"]["activeTargets"].as_array().map(|a| a.len()).unwrap_or(0);
        if active == ours_active.len() {
            break v["data"].clone();
        }
    };
    let mut theirs_active = BTreeMap::new();
    for t in data["activeTargets"].as_array().unwrap() {
        let url = t["scrapeUrl"].as_str().unwrap().to_owned();
        theirs_active
            .insert(url.clone(), (labels_json(&t["discoveredLabels"]), labels_json(&t["labels"]), url));
    }
    assert_eq!(ours_active, theirs_active);
    let mut theirs_dropped: Vec<LabelMap> = data["droppedTargets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| labels_json(&t["discoveredLabels"]))
        .collect();
    theirs_dropped.sort();
    ours_dropped.sort();
    assert_eq!(ours_dropped, theirs_dropped);
    assert!(ours_dropped.len() >= 3, "the config drops baz, drop-me and skip1");
}
