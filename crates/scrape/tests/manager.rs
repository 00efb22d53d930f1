#![allow(clippy::unwrap_used)]
//! The manager over all jobs: reloads keep unchanged jobs, restart changed
//! ones, stop removed ones; file_sd feeds the pools.

mod common;

use std::sync::Arc;
use std::time::Duration;

use ember_model::is_stale_nan;
use ember_model::memory::MemStorage;
use ember_scrape::{Health, Manager};

fn job(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  - job_name: {name}\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n{extra}    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_unchanged_restarts_changed_and_stops_removed() {
    let port = common::exporter("# TYPE m gauge\nm 1\n").await;
    let storage = Arc::new(MemStorage::new());
    let m = Manager::new(storage.clone());
    let cfg =
        |jobs: &[String]| ember_config::parse_str(&format!("scrape_configs:\n{}", jobs.concat())).unwrap();

    let s =
        m.apply_config(&cfg(&[job("a", port, ""), job("b", port, ""), job("c", port, "")])).await.unwrap();
    assert_eq!(s.started, vec!["a", "b", "c"]);
    common::wait_for(Duration::from_secs(10), "all up", || {
        m.active_targets(None).iter().filter(|t| t.health == Health::Up).count() == 3
    })
    .await;
    let a_scraped = m.active_targets(Some("a"))[0].last_scrape;

    // a unchanged, b changed, c removed, d new.
    let s = m
        .apply_config(&cfg(&[
            job("a", port, ""),
            job("b", port, "    honor_labels: true\n"),
            job("d", port, ""),
        ]))
        .await
        .unwrap();
    assert_eq!(s.kept, vec!["a"]);
    assert_eq!(s.restarted, vec!["b"]);
    assert_eq!(s.stopped, vec!["c"]);
    assert_eq!(s.started, vec!["d"]);
    assert_eq!(m.pools(), vec!["a", "b", "d"]);

    // The kept job's loop is the same one: its health is not reset.
    let a = &m.active_targets(Some("a"))[0];
    assert!(a.last_scrape >= a_scraped && a.last_scrape.is_some());
    assert_eq!(a.health, Health::Up);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let up = common::up_by(&storage, "job");
    // The removed job's series end with a staleness marker; the kept one's
    // have none.
    assert!(is_stale_nan(*up["c"].last().unwrap()), "{:?}", up["c"]);
    assert!(up["a"].iter().all(|v| *v == 1.0), "{:?}", up["a"]);
    assert!(up.contains_key("d"));

    let stats = m.stats();
    assert_eq!(stats["a"].active, 1);
    assert!(!stats.contains_key("c"));

    // A config whose scrape_config_files repeat a job name is refused
    // as a whole: nothing changes.
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("more.yml");
    std::fs::write(&extra, "scrape_configs:\n  - job_name: a\n").unwrap();
    let mut bad = cfg(&[job("a", port, "")]);
    bad.scrape_config_files = vec![extra.display().to_string()];
    assert!(m.apply_config(&bad).await.is_err());
    assert_eq!(m.pools(), vec!["a", "b", "d"]);

    // Shutdown writes no staleness markers.
    let before = common::up_by(&storage, "job");
    m.shutdown();
    tokio::time::sleep(Duration::from_millis(250)).await;
    let after = common::up_by(&storage, "job");
    for j in ["a", "b", "d"] {
        assert!(!is_stale_nan(*after[j].last().unwrap()), "{j}: {:?}", after[j]);
        assert_eq!(before[j].len(), after[j].len(), "{j} kept scraping after shutdown");
    }
    assert!(m.pools().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_sd_targets_follow_the_file() {
    let port = common::exporter("# TYPE m gauge\nm 1\n").await;
    let dir = tempfile::tempdir().unwrap();
    let sd = dir.path().join("targets.json");
    std::fs::write(&sd, format!(r#"[{{"targets":["127.0.0.1:{port}"],"labels":{{"team":"x"}}}}]"#)).unwrap();
    let storage = Arc::new(MemStorage::new());
    let m = Manager::new(storage.clone());
    let cfg = ember_config::parse_str(&format!(
        "scrape_configs:\n  - job_name: f\n    scrape_interval: 100ms\n    scrape_timeout: 100ms\n    file_sd_configs:\n      - files: ['{}']\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: 'localhost:.*'\n        action: drop\n",
        sd.display()
    ))
    .unwrap();
    m.apply_config(&cfg).await.unwrap();
    common::wait_for(Duration::from_secs(10), "file_sd target", || m.active_targets(Some("f")).len() == 1)
        .await;
    let t = &m.active_targets(Some("f"))[0];
    assert_eq!(t.labels.get("team"), Some("x"));
    assert_eq!(t.scrape_url, format!("http://127.0.0.1:{port}/metrics"));
    assert_eq!(t.discovered_labels.get("__meta_filepath"), Some(sd.to_str().unwrap()));

    // A second, dropped target appears in the dropped list.
    std::fs::write(
        &sd,
        format!(r#"[{{"targets":["127.0.0.1:{port}","localhost:{port}"],"labels":{{"team":"x"}}}}]"#),
    )
    .unwrap();
    common::wait_for(Duration::from_secs(10), "dropped target", || m.dropped_targets(Some("f")).len() == 1)
        .await;
    assert_eq!(m.active_targets(None).len(), 1);
    assert_eq!(m.stats()["f"].discovered, 2);
    m.shutdown();
}

/// Every series named `name`: (value of label `key`, samples).
fn samples(s: &MemStorage, name: &str, key: &str) -> std::collections::BTreeMap<String, Vec<(i64, f64)>> {
    use ember_model::{Matcher, Queryable, SelectHints};
    let q = s.querier(i64::MIN, i64::MAX).unwrap();
    let set = q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", name)]).unwrap();
    let mut out = std::collections::BTreeMap::new();
    for r in set {
        let mut series = r.unwrap();
        let mut v = Vec::new();
        while series.samples.next() {
            v.push(series.samples.at());
        }
        out.entry(series.labels.get(key).unwrap_or("").to_owned()).or_insert_with(Vec::new).extend(v);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_job_is_reloaded_in_place() {
    let p1 = common::exporter("# TYPE m gauge\nm 1\n").await;
    let p2 = common::exporter("# TYPE m gauge\nm 2\n").await;
    let storage = Arc::new(MemStorage::new());
    let m = Manager::new(storage.clone());
    let cfg = |interval: &str, extra: &str, ports: &[u16]| {
        let targets: Vec<String> = ports.iter().map(|p| format!("'127.0.0.1:{p}'")).collect();
        ember_config::parse_str(&format!(
            "scrape_configs:\n  - job_name: j\n    scrape_interval: {interval}\n    scrape_timeout: 100ms\n{extra}    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        ))
        .unwrap()
    };
    let inst = |p: u16| format!("127.0.0.1:{p}");
    let no_stale = |what: &str| {
        let all = samples(&storage, "m", "instance");
        for (i, v) in &all {
            assert!(v.iter().all(|(_, x)| !is_stale_nan(*x)), "{what}: {i} got a staleness marker: {v:?}");
        }
        let up = samples(&storage, "up", "instance");
        for (i, v) in &up {
            assert!(v.iter().all(|(_, x)| !is_stale_nan(*x)), "{what}: up of {i} went stale");
        }
    };

    m.apply_config(&cfg("100ms", "", &[p1, p2])).await.unwrap();
    common::wait_for(Duration::from_secs(10), "both up", || {
        let up = common::up_by(&storage, "instance");
        up.len() == 2 && up.values().all(|v| v.len() >= 3)
    })
    .await;

    // A new interval: the loops restart with it, the series carry on.
    let s = m.apply_config(&cfg("400ms", "", &[p1, p2])).await.unwrap();
    assert_eq!(s.restarted, vec!["j"]);
    assert_eq!(m.active_targets(Some("j"))[0].scrape_interval, Duration::from_millis(400));
    assert_eq!(m.active_targets(None)[0].health, Health::Up, "health carries over");
    let before = samples(&storage, "m", "instance")[&inst(p1)].len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    no_stale("interval change");
    let m1 = &samples(&storage, "m", "instance")[&inst(p1)];
    let new: Vec<i64> = m1[before..].iter().map(|s| s.0).collect();
    assert!(new.len() >= 2, "{new:?}");
    for w in new.windows(2) {
        assert!(w[1] - w[0] >= 300, "new interval in effect: {new:?}");
    }
    // The series cache was kept: nothing counted as added after the reload.
    let added = samples(&storage, "scrape_series_added", "instance");
    let tail: Vec<f64> = added[&inst(p1)].iter().rev().take(new.len()).map(|s| s.1).collect();
    assert!(tail.iter().all(|v| *v == 0.0), "{tail:?}");

    // A changed request header (authorization): still no markers.
    let s =
        m.apply_config(&cfg("400ms", "    authorization: {credentials: abc}\n", &[p1, p2])).await.unwrap();
    assert_eq!(s.restarted, vec!["j"]);
    tokio::time::sleep(Duration::from_millis(900)).await;
    no_stale("header change");

    // One target removed: only its series end with a marker.
    let s = m.apply_config(&cfg("400ms", "    authorization: {credentials: abc}\n", &[p1])).await.unwrap();
    assert_eq!(s.restarted, vec!["j"]);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let all = samples(&storage, "m", "instance");
    assert!(is_stale_nan(all[&inst(p2)].last().unwrap().1), "removed target's series are stale");
    assert!(!all[&inst(p1)].iter().any(|s| is_stale_nan(s.1)), "the remaining one's are not");
    let up = samples(&storage, "up", "instance");
    assert!(is_stale_nan(up[&inst(p2)].last().unwrap().1));
    assert_eq!(m.active_targets(Some("j")).len(), 1);

    // Metric relabelling changed: the cache's mapping is rebuilt (series
    // count as added again) and the old-labelled series end.
    let relabel = "    metric_relabel_configs:\n      - target_label: extra\n        replacement: x\n";
    m.apply_config(&cfg("400ms", relabel, &[p1])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(900)).await;
    let by_extra = samples(&storage, "m", "extra");
    assert!(by_extra.contains_key("x"), "{by_extra:?}");
    assert!(is_stale_nan(by_extra[""].last().unwrap().1), "the series without the label ended");
    let added = samples(&storage, "scrape_series_added", "instance");
    assert!(added[&inst(p1)].iter().any(|s| s.1 == 1.0), "{:?}", added[&inst(p1)]);
    m.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interval_lengths_are_summarised() {
    let port = common::exporter("m 1\n").await;
    let storage = Arc::new(MemStorage::new());
    let m = Manager::new(storage.clone());
    m.apply_config(&ember_config::parse_str(&format!("scrape_configs:\n{}", job("a", port, ""))).unwrap())
        .await
        .unwrap();
    common::wait_for(Duration::from_secs(10), "five intervals", || {
        m.interval_summaries().snapshot().first().is_some_and(|s| s.3 >= 5)
    })
    .await;
    let snap = m.interval_summaries().snapshot();
    assert_eq!(snap.len(), 1);
    let (label, qs, sum, count) = &snap[0];
    assert_eq!(label, "100ms");
    let median = qs.iter().find(|(q, _)| *q == 0.5).unwrap().1;
    assert!((0.05..0.3).contains(&median), "median interval {median}");
    assert!(*sum > 0.05 * *count as f64 && *sum < 0.5 * *count as f64, "sum {sum} of {count}");
    let mut out = String::new();
    m.interval_summaries().render(&mut out);
    assert!(out.contains("prometheus_target_interval_length_seconds{interval=\"100ms\",quantile=\"0.99\"} "));
    m.shutdown();
}
