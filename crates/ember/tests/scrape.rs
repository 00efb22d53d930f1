//! End to end: the real `ember` binary scraping itself and Debian's
//! `prometheus-node-exporter`, config reloads (SIGHUP and `/-/reload`),
//! and `ember check config`.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod compat_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compat_support::free_port;
use serde_json::Value;

const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";

/// One exchange: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    compat_support::http(addr, method, path, &[], b"").map(|r| (r.status, r.body))
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (st, body) = http(addr, "GET", path).unwrap();
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Percent-encodes a PromQL expression for a query string.
fn enc(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn query(addr: SocketAddr, q: &str) -> Vec<Value> {
    let v = get_json(addr, &format!("/api/v1/query?query={}", enc(q)));
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}");
}

fn signal(pid: u32, sig: &str) {
    // std has no signal API; kill(1) sends it.
    let st = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap();
    assert!(st.success());
}

/// A child process killed (by its PID) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Ember {
    proc: Proc,
    addr: SocketAddr,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

impl Ember {
    /// Starts ember with `config` (where `{self}` stands for its own
    /// address) and waits for /-/ready.
    fn start(config: &str, extra: &[&str]) -> Ember {
        let dir = tempfile::tempdir().unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, config.replace("{self}", &addr.to_string())).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ember"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let e = Ember { proc: Proc(child), addr, config: cfg, _dir: dir };
        wait_until("ember ready", Duration::from_secs(20), || {
            matches!(http(addr, "GET", "/-/ready"), Ok((200, _)))
        });
        e
    }

    fn pid(&self) -> u32 {
        self.proc.0.id()
    }

    fn rewrite(&self, config: &str) {
        std::fs::write(&self.config, config.replace("{self}", &self.addr.to_string())).unwrap();
    }

    fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = http(self.addr, "GET", "/metrics").unwrap();
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
    }

    fn up(&self, job: &str) -> Option<f64> {
        let r = query(self.addr, &format!("up{{job=\"{job}\"}}"));
        r.first().and_then(|s| s["value"][1].as_str()).and_then(|v| v.parse().ok())
    }

    /// Raw sample timestamps (seconds) of `selector` over the last `range`.
    fn sample_times(&self, selector: &str, range: &str) -> Vec<f64> {
        let r = query(self.addr, &format!("{selector}[{range}]"));
        assert_eq!(r.len(), 1, "{selector}: {r:?}");
        r[0]["values"].as_array().unwrap().iter().map(|p| p[0].as_f64().unwrap()).collect()
    }
}

const SELF_ONLY: &str = "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ember\n    static_configs:\n      - targets: ['{self}']\n";

fn node_exporter() -> Option<(Proc, SocketAddr)> {
    if !Path::new(NODE_EXPORTER).exists() {
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{NODE_EXPORTER} is missing under CI");
        eprintln!("skipping: {NODE_EXPORTER} is not installed");
        return None;
    }
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let child = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let p = Proc(child);
    wait_until("node exporter", Duration::from_secs(10), || {
        matches!(http(addr, "GET", "/metrics"), Ok((200, _)))
    });
    Some((p, addr))
}

#[test]
fn scrapes_node_exporter_and_itself() {
    let Some((_ne, ne_addr)) = node_exporter() else { return };
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ember\n    static_configs:\n      - targets: ['{{self}}']\n  - job_name: node\n    static_configs:\n      - targets: ['{ne_addr}']\n"
    );
    let e = Ember::start(&cfg, &[]);
    wait_until("up{job=node} == 1", Duration::from_secs(10), || e.up("node") == Some(1.0));
    wait_until("up{job=ember} == 1", Duration::from_secs(10), || e.up("ember") == Some(1.0));

    let cpu = query(e.addr, "node_cpu_seconds_total{mode=\"idle\"}");
    assert!(!cpu.is_empty(), "node_cpu_seconds_total is not stored");
    for s in &cpu {
        let m = &s["metric"];
        assert_eq!(m["job"], "node");
        assert_eq!(m["instance"], ne_addr.to_string());
        assert_eq!(m["mode"], "idle");
        assert!(m["cpu"].as_str().is_some_and(|c| c.parse::<u32>().is_ok()), "{m}");
    }

    let t = get_json(e.addr, "/api/v1/targets");
    let active = t["data"]["activeTargets"].as_array().unwrap();
    assert_eq!(active.len(), 2, "{t}");
    let mut urls: Vec<(String, String)> = active
        .iter()
        .map(|a| {
            assert_eq!(a["health"], "up", "{a}");
            assert_eq!(a["lastError"], "");
            assert_eq!(a["scrapeInterval"], "1s");
            assert!(a["lastScrapeDuration"].as_f64().unwrap() > 0.0);
            assert!(a["lastScrape"].as_str().unwrap().ends_with('Z'));
            assert_eq!(a["labels"]["job"], a["scrapePool"]);
            assert_eq!(a["discoveredLabels"]["job"], a["scrapePool"]);
            (a["scrapePool"].as_str().unwrap().to_owned(), a["scrapeUrl"].as_str().unwrap().to_owned())
        })
        .collect();
    urls.sort();
    assert_eq!(
        urls,
        vec![
            ("ember".to_owned(), format!("http://{}/metrics", e.addr)),
            ("node".to_owned(), format!("http://{ne_addr}/metrics")),
        ]
    );
    let only_node = get_json(e.addr, "/api/v1/targets?state=active&scrapePool=node");
    assert_eq!(only_node["data"]["activeTargets"].as_array().unwrap().len(), 1);
    assert_eq!(only_node["data"]["droppedTargets"], serde_json::json!([]));
}

#[test]
fn sighup_reload_adds_a_job_without_a_gap_for_the_old_one() {
    let e = Ember::start(SELF_ONLY, &[]);
    wait_until("up{job=ember} == 1", Duration::from_secs(10), || e.up("ember") == Some(1.0));
    std::thread::sleep(Duration::from_secs(2));
    // A second job scraping ember under another name.
    e.rewrite(&format!(
        "{SELF_ONLY}  - job_name: again\n    static_configs:\n      - targets: ['localhost:{}']\n",
        e.addr.port()
    ));
    signal(e.pid(), "HUP");
    wait_until("the new job's target", Duration::from_secs(10), || e.up("again") == Some(1.0));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(e.metric("prometheus_config_last_reload_successful"), Some(1.0));
    assert_eq!(e.metric("prometheus_target_scrape_pool_targets{scrape_job=\"again\"}"), Some(1.0));

    // The old target's samples run on at their interval through the reload:
    // the loop was not restarted (a restart would change the phase and
    // leave a gap or a doubled sample).
    let ts = e.sample_times("up{job=\"ember\"}", "30s");
    assert!(ts.len() >= 6, "{ts:?}");
    for w in ts.windows(2) {
        let d = w[1] - w[0];
        assert!((0.7..=1.3).contains(&d), "samples spaced by {d}s: {ts:?}");
    }
    // And no staleness marker in between: evaluated every 100ms, the
    // series is present at every step (a marker would hide it until the
    // next scrape).
    let (first, last) = (ts[0], ts[ts.len() - 1]);
    let r = get_json(
        e.addr,
        &format!("/api/v1/query_range?query={}&start={first}&end={last}&step=0.1", enc("up{job=\"ember\"}")),
    );
    let points = r["data"]["result"][0]["values"].as_array().unwrap();
    let expected = ((last - first) / 0.1).round() as usize + 1;
    assert!(points.len() + 1 >= expected, "{} of {expected} steps present", points.len());
    for w in points.windows(2) {
        let d = w[1][0].as_f64().unwrap() - w[0][0].as_f64().unwrap();
        assert!(d < 0.15, "series missing for {d}s");
    }
}

#[test]
fn bad_config_reload_keeps_the_old_config_running() {
    let e = Ember::start(SELF_ONLY, &[]);
    wait_until("up{job=ember} == 1", Duration::from_secs(10), || e.up("ember") == Some(1.0));
    let good_time = e.metric("prometheus_config_last_reload_success_timestamp_seconds").unwrap();
    e.rewrite(&format!("{SELF_ONLY}not_a_field: 1\n"));
    signal(e.pid(), "HUP");
    wait_until("reload failure", Duration::from_secs(5), || {
        e.metric("prometheus_config_last_reload_successful") == Some(0.0)
    });
    assert_eq!(e.metric("prometheus_config_last_reload_success_timestamp_seconds"), Some(good_time));
    let rt = get_json(e.addr, "/api/v1/status/runtimeinfo");
    assert_eq!(rt["data"]["reloadConfigSuccess"], false);
    // Still scraping: new samples keep arriving.
    let before = e.sample_times("up{job=\"ember\"}", "1m").len();
    std::thread::sleep(Duration::from_millis(2500));
    let after = e.sample_times("up{job=\"ember\"}", "1m").len();
    assert!(after >= before + 2, "{before} -> {after}");
    let yaml = get_json(e.addr, "/api/v1/status/config");
    assert!(yaml["data"]["yaml"].as_str().unwrap().contains("job_name: ember"));
}

#[test]
fn reload_endpoint_needs_the_lifecycle_flag() {
    let e = Ember::start(SELF_ONLY, &[]);
    let (st, body) = http(e.addr, "POST", "/-/reload").unwrap();
    assert_eq!((st, body.as_str()), (403, "Lifecycle API is not enabled."));

    let e = Ember::start(SELF_ONLY, &["--web.enable-lifecycle"]);
    e.rewrite(&format!(
        "{SELF_ONLY}  - job_name: extra\n    static_configs:\n      - targets: ['{}']\n",
        e.addr
    ));
    let (st, _) = http(e.addr, "POST", "/-/reload").unwrap();
    assert_eq!(st, 200);
    let t = get_json(e.addr, "/api/v1/targets?scrapePool=extra");
    assert_eq!(t["data"]["activeTargets"].as_array().unwrap().len(), 1, "{t}");

    e.rewrite("scrape_configs:\n  - job_name: [\n");
    let (st, body) = http(e.addr, "POST", "/-/reload").unwrap();
    assert_eq!(st, 500);
    assert!(body.starts_with("failed to reload config: "), "{body}");
    assert!(body.contains("prometheus.yml"), "{body}");
    assert_eq!(e.metric("prometheus_config_last_reload_successful"), Some(0.0));
    // The running jobs are those of the last good config.
    let t = get_json(e.addr, "/api/v1/targets");
    assert_eq!(t["data"]["activeTargets"].as_array().unwrap().len(), 2, "{t}");
}

#[test]
fn bad_config_at_start_exits_with_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yml");
    std::fs::write(&cfg, "scrape_configs:\n  - job_name: a\n    scrape_interval: nope\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{}", free_port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let log = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(log.contains("Error loading config"), "{log}");
    assert!(log.contains("line 3"), "{log}");
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/config").join(name)
}

#[test]
fn check_config_reports_like_promtool() {
    let good = testdata("good_minimal.yml");
    let out =
        Command::new(env!("CARGO_BIN_EXE_ember")).args(["check", "config"]).arg(&good).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        format!("Checking {0}\n SUCCESS: {0} is valid prometheus config file syntax\n\n", good.display())
    );

    let bad = testdata("bad_regex.yml");
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["check", "config"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("Checking {}", bad.display())), "{stdout}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("  FAILED: "), "{stderr}");
    assert!(stderr.contains("regexp"), "{stderr}");
}

/// `GET /api/v1/targets/metadata` entries as comparable tuples:
/// (job, metric, type, help, unit).
fn target_metadata(addr: SocketAddr, query: &str) -> Vec<(String, String, String, String, String)> {
    let v = get_json(addr, &format!("/api/v1/targets/metadata{query}"));
    assert_eq!(v["status"], "success", "{v}");
    let s = |x: &Value| x.as_str().unwrap_or("").to_owned();
    let mut out: Vec<_> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (s(&e["target"]["job"]), s(&e["metric"]), s(&e["type"]), s(&e["help"]), s(&e["unit"])))
        .collect();
    out.sort();
    out
}

#[test]
fn targets_metadata_of_node_exporter_matches_prometheus() {
    let Some((_ne, ne_addr)) = node_exporter() else { return };
    let cfg = format!(
        "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ember\n    static_configs:\n      - targets: ['{{self}}']\n  - job_name: node\n    static_configs:\n      - targets: ['{ne_addr}']\n"
    );
    let e = Ember::start(&cfg, &[]);
    wait_until("up{job=node} == 1", Duration::from_secs(10), || e.up("node") == Some(1.0));

    // One named metric: no `metric` field, the HELP text the exporter serves.
    let sel = enc("{job=\"node\"}");
    let v = get_json(
        e.addr,
        &format!("/api/v1/targets/metadata?match_target={sel}&metric=node_cpu_seconds_total"),
    );
    let d = v["data"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{v}");
    assert!(d[0].get("metric").is_none());
    assert_eq!(d[0]["type"], "counter");
    assert_eq!(d[0]["target"], serde_json::json!({"instance": ne_addr.to_string(), "job": "node"}));
    let (_, page) = http(ne_addr, "GET", "/metrics").unwrap();
    let help = page.lines().find_map(|l| l.strip_prefix("# HELP node_cpu_seconds_total ")).unwrap();
    assert_eq!(d[0]["help"], help);

    // Every family of the target, and only that target's.
    let node = target_metadata(e.addr, &format!("?match_target={sel}"));
    let families = page.lines().filter(|l| l.starts_with("# TYPE ")).count();
    assert_eq!(node.len(), families);
    assert!(node.iter().all(|t| t.0 == "node"));
    assert!(node.iter().any(|t| t.1 == "node_cpu_seconds_total" && t.2 == "counter"));
    wait_until("ember's own metadata", Duration::from_secs(10), || {
        target_metadata(e.addr, "").iter().any(|t| t.0 == "ember")
    });
    let all = target_metadata(e.addr, "");
    assert!(all.len() > node.len());
    // The limit stops before the next target.
    let one = get_json(e.addr, "/api/v1/targets/metadata?limit=1");
    let first = one["data"].as_array().unwrap();
    assert!(!first.is_empty());
    let job = &first[0]["target"]["job"];
    assert!(first.iter().all(|x| &x["target"]["job"] == job));
    let (st, body) = http(e.addr, "GET", "/api/v1/targets/metadata?limit=abc").unwrap();
    assert_eq!(st, 400, "{body}");

    // The interval summary in /metrics, per configured interval.
    wait_until("interval observations", Duration::from_secs(10), || {
        e.metric("prometheus_target_interval_length_seconds_count{interval=\"1s\"}").is_some_and(|c| c >= 4.0)
    });
    let median =
        e.metric("prometheus_target_interval_length_seconds{interval=\"1s\",quantile=\"0.5\"}").unwrap();
    assert!((0.8..1.2).contains(&median), "median interval {median}");

    // Side by side: Prometheus scraping the same exporter reports the same
    // metadata.
    let prom = Path::new("/usr/bin/prometheus");
    if !prom.exists() {
        eprintln!("skipping the comparison: {} is not installed", prom.display());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let paddr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let pcfg = dir.path().join("prometheus.yml");
    std::fs::write(
        &pcfg,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: node\n    static_configs:\n      - targets: ['{ne_addr}']\n"),
    )
    .unwrap();
    let _p = Proc(
        Command::new(prom)
            .arg(format!("--config.file={}", pcfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={paddr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until(
        "prometheus has metadata",
        Duration::from_secs(30),
        || matches!(http(paddr, "GET", "/api/v1/targets/metadata"), Ok((200, b)) if b.contains("node_cpu_seconds_total")),
    );
    let theirs = target_metadata(paddr, &format!("?match_target={sel}"));
    let ours = target_metadata(e.addr, &format!("?match_target={sel}"));
    assert_eq!(ours, theirs);
    let q = format!("?match_target={sel}&metric=node_cpu_seconds_total");
    assert_eq!(target_metadata(e.addr, &q), target_metadata(paddr, &q));
}

#[test]
fn sighup_with_a_changed_interval_reloads_the_job_in_place() {
    let e = Ember::start(SELF_ONLY, &[]);
    wait_until("up{job=ember} == 1", Duration::from_secs(10), || e.up("ember") == Some(1.0));
    std::thread::sleep(Duration::from_secs(2));
    e.rewrite(&SELF_ONLY.replace(
        "scrape_configs:\n  - job_name: ember\n",
        "scrape_configs:\n  - job_name: ember\n    scrape_interval: 2s\n",
    ));
    signal(e.pid(), "HUP");
    wait_until("the new interval", Duration::from_secs(10), || {
        let t = get_json(e.addr, "/api/v1/targets");
        t["data"]["activeTargets"][0]["scrapeInterval"] == "2s"
    });
    let t = get_json(e.addr, "/api/v1/targets");
    assert_eq!(t["data"]["activeTargets"][0]["health"], "up", "health carried over: {t}");
    let reloaded = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    // Samples now 2 s apart (three after the reload: two gaps), and the
    // series never went stale: evaluated every 100 ms it is present at
    // every step from the first sample on.
    let mut ts = Vec::new();
    wait_until("three scrapes after the reload", Duration::from_secs(15), || {
        ts = e.sample_times("up{job=\"ember\"}", "30s");
        ts.iter().filter(|t| **t > reloaded).count() >= 3
    });
    let after: Vec<f64> = ts.iter().copied().filter(|t| *t > reloaded).collect();
    for w in after.windows(2) {
        assert!((1.6..=2.4).contains(&(w[1] - w[0])), "{ts:?}");
    }
    let (first, last) = (ts[0], ts[ts.len() - 1]);
    let r = get_json(
        e.addr,
        &format!("/api/v1/query_range?query={}&start={first}&end={last}&step=0.1", enc("up{job=\"ember\"}")),
    );
    let points = r["data"]["result"][0]["values"].as_array().unwrap();
    for w in points.windows(2) {
        let d = w[1][0].as_f64().unwrap() - w[0][0].as_f64().unwrap();
        assert!(d < 0.15, "series missing for {d}s around {}", w[0][0]);
    }
    // The summary has both intervals.
    assert!(e.metric("prometheus_target_interval_length_seconds_count{interval=\"1s\"}").is_some());
}
