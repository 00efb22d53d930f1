#![allow(clippy::unwrap_used)]
//! Scrape pools against a local exporter, into the in-memory storage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ember_model::memory::MemStorage;
use ember_model::{is_stale_nan, Matcher, Queryable, SelectHints};
use ember_scrape::{Health, ScrapePool, TargetGroup};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An exporter answering every request with `m 1`.
async fn exporter() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let body = "m 1\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

fn group(addrs: &[String]) -> Vec<TargetGroup> {
    vec![TargetGroup {
        source: "0".into(),
        targets: addrs.iter().map(|a| BTreeMap::from([("__address__".to_owned(), a.clone())])).collect(),
        labels: BTreeMap::new(),
    }]
}

fn up_series(s: &MemStorage) -> BTreeMap<String, Vec<f64>> {
    let q = s.querier(i64::MIN, i64::MAX).unwrap();
    let set = q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", "up")]).unwrap();
    set.map(|r| {
        let mut s = r.unwrap();
        let mut v = Vec::new();
        while s.samples.next() {
            v.push(s.samples.at().1);
        }
        (s.labels.get("instance").unwrap().to_owned(), v)
    })
    .collect()
}

async fn wait_for(mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "condition not reached in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pool_config(extra: &str) -> Arc<ember_config::ScrapeConfig> {
    let yaml = format!(
        "scrape_configs:\n  - job_name: p\n    scrape_interval: 1s\n    scrape_timeout: 500ms\n{extra}"
    );
    Arc::new(ember_config::parse_str(&yaml).unwrap().scrape_configs.remove(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_starts_keeps_and_stops_loops() {
    let (p1, p2) = (exporter().await, exporter().await);
    let (a, b) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));
    let storage = MemStorage::new();
    let mut pool = ScrapePool::new(pool_config(""), Arc::new(storage.clone()));

    pool.sync(&group(&[a.clone(), b.clone()]));
    assert_eq!(pool.active_targets().len(), 2);
    wait_for(|| up_series(&storage).len() == 2).await;
    wait_for(|| pool.active_targets().iter().all(|(_, h)| h.health == Health::Up)).await;

    // b goes away: its loop stops and its series go stale; a keeps running.
    let a_before = up_series(&storage)[&a].len();
    pool.sync(&group(std::slice::from_ref(&a)));
    assert_eq!(pool.active_targets().len(), 1);
    wait_for(|| up_series(&storage)[&b].last().is_some_and(|v| is_stale_nan(*v))).await;
    wait_for(|| up_series(&storage)[&a].len() > a_before).await;
    assert!(
        up_series(&storage)[&a].iter().all(|v| *v == 1.0),
        "a was not restarted (no stale marker in between)"
    );

    pool.stop().await;
    assert!(up_series(&storage)[&a].last().is_some_and(|v| is_stale_nan(*v)));
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
