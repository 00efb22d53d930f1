#![allow(clippy::unwrap_used)]
//! Scrape pools against a local exporter, into the in-memory storage.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ember_model::is_stale_nan;
use ember_model::memory::MemStorage;
use ember_scrape::{Health, ScrapePool, TargetGroup};

fn group(addrs: &[String]) -> Vec<TargetGroup> {
    vec![TargetGroup {
        source: "0".into(),
        targets: addrs.iter().map(|a| BTreeMap::from([("__address__".to_owned(), a.clone())])).collect(),
        labels: BTreeMap::new(),
    }]
}

fn pool_config(extra: &str) -> Arc<ember_config::ScrapeConfig> {
    let yaml = format!(
        "scrape_configs:\n  - job_name: p\n    scrape_interval: 1s\n    scrape_timeout: 500ms\n{extra}"
    );
    Arc::new(ember_config::parse_str(&yaml).unwrap().scrape_configs.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_starts_keeps_and_stops_loops() {
    let (p1, p2) = (common::exporter("m 1\n").await, common::exporter("m 1\n").await);
    let (a, b) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let storage = MemStorage::new();
    let mut pool = ScrapePool::new(pool_config(""), Arc::new(storage.clone()));

    pool.sync(&group(&[a.clone(), b.clone()]));
    assert_eq!(pool.active_targets().len(), 2);
    common::wait_for(Duration::from_secs(5), "condition", || common::up_by(&storage, "instance").len() == 2)
        .await;
    common::wait_for(Duration::from_secs(5), "condition", || {
        pool.active_targets().iter().all(|(_, h)| h.health == Health::Up)
    })
    .await;

    // b goes away: its loop stops and its series go stale; a keeps running.
    let a_before = common::up_by(&storage, "instance")[&a].len();
    pool.sync(&group(std::slice::from_ref(&a)));
    assert_eq!(pool.active_targets().len(), 1);
    common::wait_for(Duration::from_secs(5), "condition", || {
        common::up_by(&storage, "instance")[&b].last().is_some_and(|v| is_stale_nan(*v))
    })
    .await;
    common::wait_for(Duration::from_secs(5), "condition", || {
        common::up_by(&storage, "instance")[&a].len() > a_before
    })
    .await;
    assert!(
        common::up_by(&storage, "instance")[&a].iter().all(|v| *v == 1.0),
        "a was not restarted (no stale marker in between)"
    );

    pool.stop().await;
    assert!(common::up_by(&storage, "instance")[&a].last().is_some_and(|v| is_stale_nan(*v)));
}

#[tokio::test(flavor = "current_thread")]
async fn dropped_targets_errors_and_target_limit() {
    let storage = MemStorage::new();
    let cfg = pool_config(
        "    target_limit: 1\n    relabel_configs:\n      - source_labels: [__address__]\n        regex: 'drop.*'\n        action: drop\n",
    );
    let mut pool = ScrapePool::new(cfg, Arc::new(storage.clone()));
    pool.sync(&group(&["drop:1".into(), "127.0.0.1:1".into(), "http://bad/x".into()]));
    assert_eq!(pool.dropped_targets().1, 1);
    assert_eq!(pool.dropped_targets().0[0].discovered_labels().get("__address__"), Some("drop:1"));
    assert_eq!(pool.errors(), ["instance 2 in group 0: \"http://bad/x\" is not a valid hostname"]);
    assert_eq!(pool.active_targets().len(), 1);

    pool.sync(&group(&["127.0.0.1:1".into(), "127.0.0.1:2".into()]));
    assert!(pool.active_targets().is_empty());
    assert_eq!(pool.errors(), ["target_limit exceeded (number of targets: 2, limit: 1)"]);
    pool.stop().await;
}
