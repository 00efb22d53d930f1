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
