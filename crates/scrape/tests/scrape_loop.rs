#![allow(clippy::unwrap_used)]
//! The scrape loop against local HTTP servers, into the in-memory storage.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember_model::memory::MemStorage;
use ember_model::{is_stale_nan, Labels, Matcher, Queryable, SelectHints};
use ember_scrape::discovery::static_groups;
use ember_scrape::{build_targets, Health, ScrapeLoop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone)]
struct Resp {
    status: &'static str,
    content_type: &'static str,
    body: String,
    delay: Duration,
}

fn ok(body: &str) -> Resp {
    Resp {
        status: "200 OK",
        content_type: "text/plain; version=0.0.4",
        body: body.into(),
        delay: Duration::ZERO,
    }
}

/// A tiny HTTP/1.1 server: answers queued responses in order (the last
/// one repeats) and records every request head.
struct Server {
    port: u16,
    queue: Arc<Mutex<Vec<Resp>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(first: Resp) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let queue = Arc::new(Mutex::new(vec![first]));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (q, r) = (queue.clone(), requests.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (q, r) = (q.clone(), r.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    r.lock().unwrap().push(String::from_utf8_lossy(&buf).into_owned());
                    let resp = {
                        let mut q = q.lock().unwrap();
                        if q.len() > 1 {
                            q.remove(0)
                        } else {
                            q[0].clone()
                        }
                    };
                    tokio::time::sleep(resp.delay).await;
                    let head = format!(
                        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        resp.status,
                        resp.content_type,
                        resp.body.len()
                    );
                    let _ = sock.write_all(head.as_bytes()).await;
                    let _ = sock.write_all(resp.body.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Server { port, queue, requests }
    }

    fn then(&self, r: Resp) {
        self.queue.lock().unwrap().push(r);
    }

    fn last_request(&self) -> String {
        self.requests.lock().unwrap().last().cloned().unwrap_or_default()
    }
}

fn scrape_loop(port: u16, extra: &str, storage: &MemStorage) -> ScrapeLoop {
    let yaml = format!(
        "scrape_configs:\n  - job_name: test\n    scrape_interval: 1s\n    scrape_timeout: 500ms\n{extra}    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    );
    let cfg = ember_config::parse_str(&yaml).unwrap();
    let sc = Arc::new(cfg.scrape_configs[0].clone());
    let set = build_targets(&sc, &static_groups(&sc.static_configs));
    let target = set.active.into_iter().next().unwrap();
    ScrapeLoop::new(sc, target, Arc::new(storage.clone()))
}

fn series(s: &MemStorage, name: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
    let q = s.querier(i64::MIN, i64::MAX).unwrap();
    let set = q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", name)]).unwrap();
    set.map(|r| {
        let mut s = r.unwrap();
        let mut v = Vec::new();
        while s.samples.next() {
            v.push(s.samples.at());
        }
        (s.labels, v)
    })
    .collect()
}

#[tokio::test(flavor = "current_thread")]
async fn scrapes_page_with_prometheus_headers_and_reports_up() {
    let srv = Server::start(ok("# TYPE a counter\na_total 3\nb{x=\"1\"} 2.5\n")).await;
    let storage = MemStorage::new();
    let mut sl = scrape_loop(srv.port, "    basic_auth: {username: user, password: pw}\n", &storage);
    let report = sl.scrape_once().await;
    assert!(report.up);
    assert_eq!((report.stats.scraped, report.stats.post_relabel, report.stats.series_added), (2, 2, 2));

    let a = series(&storage, "a_total");
    assert_eq!(a[0].0.get("job"), Some("test"));
    assert_eq!(a[0].0.get("instance"), Some(format!("127.0.0.1:{}", srv.port).as_str()));
    assert_eq!(a[0].1[0].1, 3.0);
    assert_eq!(series(&storage, "up")[0].1[0].1, 1.0);
    assert_eq!(series(&storage, "scrape_samples_scraped")[0].1[0].1, 2.0);

    let req = srv.last_request().to_lowercase();
    assert!(req.starts_with("get /metrics http/1.1"), "{req}");
    assert!(
        req.contains("accept: application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"),
        "{req}"
    );
    assert!(req.contains("x-prometheus-scrape-timeout-seconds: 0.5"), "{req}");
    // base64("user:pw")
    assert!(req.contains("authorization: basic dxnlcjpwdw=="), "{req}");
    let h = sl.health();
    let h = h.lock().unwrap();
    assert_eq!(h.health, Health::Up);
    assert!(h.last_error.is_empty());
    assert!(h.last_scrape.is_some());
}

#[tokio::test(flavor = "current_thread")]
async fn failed_scrape_reports_down_and_marks_series_stale() {
    let srv = Server::start(ok("a 1\n")).await;
    srv.then(Resp { status: "404 Not Found", ..ok("") });
    let storage = MemStorage::new();
    let mut sl = scrape_loop(srv.port, "", &storage);
    assert!(sl.scrape_once().await.up);
    let report = sl.scrape_once().await;
    assert!(!report.up);
    let up: Vec<f64> = series(&storage, "up")[0].1.iter().map(|s| s.1).collect();
    assert_eq!(up, vec![1.0, 0.0]);
    let a = &series(&storage, "a")[0].1;
    assert_eq!(a.len(), 2);
    assert!(is_stale_nan(a[1].1), "the failed scrape marks a stale");
    let h = sl.health();
    let h = h.lock().unwrap();
    assert_eq!(h.health, Health::Down);
    assert_eq!(h.last_error, "server returned HTTP status 404 Not Found");
}

#[tokio::test(flavor = "current_thread")]
async fn openmetrics_content_type_selects_the_openmetrics_parser() {
    let srv = Server::start(Resp {
        content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
        // OpenMetrics timestamps are float seconds.
        ..ok("# TYPE c counter\nc_total 7 1700000000.5\n# EOF\n")
    })
    .await;
    let storage = MemStorage::new();
    let mut sl = scrape_loop(srv.port, "", &storage);
    assert!(sl.scrape_once().await.up);
    assert_eq!(series(&storage, "c_total")[0].1, vec![(1_700_000_000_500, 7.0)]);
}

#[tokio::test(flavor = "current_thread")]
async fn limits_and_timeouts_fail_the_scrape() {
    let srv = Server::start(ok(&"x 1\n".repeat(100))).await;
    let storage = MemStorage::new();
    let mut sl = scrape_loop(srv.port, "    body_size_limit: 100B\n", &storage);
    assert!(!sl.scrape_once().await.up);
    assert_eq!(sl.health().lock().unwrap().last_error, "body size limit exceeded");
    assert!(series(&storage, "x").is_empty());

    let mut sl = scrape_loop(srv.port, "    sample_limit: 1\n", &storage);
    assert!(!sl.scrape_once().await.up);
    assert_eq!(sl.health().lock().unwrap().last_error, "sample limit exceeded");

    let slow = Server::start(Resp { delay: Duration::from_secs(2), ..ok("a 1\n") }).await;
    let mut sl = scrape_loop(slow.port, "", &storage);
    let started = std::time::Instant::now();
    assert!(!sl.scrape_once().await.up);
    assert!(started.elapsed() < Duration::from_millis(1500), "the 500ms timeout applies");
    assert_eq!(sl.health().lock().unwrap().last_error, "context deadline exceeded");
}

#[tokio::test(flavor = "current_thread")]
async fn missing_content_type_needs_a_fallback_protocol() {
    let srv = Server::start(Resp { content_type: "", ..ok("a 1\n") }).await;
    let storage = MemStorage::new();
    let mut sl = scrape_loop(srv.port, "", &storage);
    assert!(!sl.scrape_once().await.up);
    assert!(sl.health().lock().unwrap().last_error.contains("blank Content-Type"));
    let mut sl = scrape_loop(srv.port, "    fallback_scrape_protocol: PrometheusText0.0.4\n", &storage);
    assert!(sl.scrape_once().await.up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_scrapes_periodically_and_goes_stale_on_stop() {
    let srv = Server::start(ok("a 1\n")).await;
    let storage = MemStorage::new();
    let sl = scrape_loop(srv.port, "", &storage);
    let (tx, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(sl.run(rx));
    // The first scrape lands within one interval (1s), the next a second later.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while series(&storage, "up").first().map_or(0, |s| s.1.len()) < 2 {
        assert!(std::time::Instant::now() < deadline, "no second scrape");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task).await.unwrap().unwrap();
    let a = &series(&storage, "a")[0].1;
    assert!(is_stale_nan(a.last().unwrap().1), "stopped target's series are stale");
    let up = &series(&storage, "up")[0].1;
    assert!(is_stale_nan(up.last().unwrap().1), "and so are its report series");
    let t: Vec<i64> = up.iter().map(|s| s.0).collect();
    // Wide bounds: a loaded machine delays timers, not the schedule.
    assert!(t[1] - t[0] >= 500 && t[1] - t[0] <= 1600, "1s interval: {t:?}");
}

#[tokio::test(flavor = "current_thread")]
async fn malformed_page_marks_the_target_down_with_the_parser_position() {
    // The second line has an unterminated label value.
    let srv = Server::start(ok("good 1\nbad{a=\"x} 2\nlater 3\n")).await;
    let storage = MemStorage::new();
    let mut sl = scrape_loop(srv.port, "", &storage);
    let report = sl.scrape_once().await;
    assert!(!report.up);
    let h = sl.health();
    let err = h.lock().unwrap().last_error.clone();
    assert!(err.contains("line 2, column"), "last error names the line and column: {err}");
    assert_eq!(h.lock().unwrap().health, Health::Down);
    // One bad line fails the whole page: nothing of it is stored.
    assert!(series(&storage, "good").is_empty());
    assert!(series(&storage, "later").is_empty());
    assert_eq!(series(&storage, "up")[0].1[0].1, 0.0);
}

#[tokio::test(flavor = "current_thread")]
async fn bearer_token_from_a_file_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let srv = Server::start(ok("a 1\n")).await;
    let storage = MemStorage::new();
    let extra = format!("    authorization: {{credentials_file: '{}'}}\n", token.display());
    let mut sl = scrape_loop(srv.port, &extra, &storage);
    assert!(sl.scrape_once().await.up);
    let req = srv.last_request().to_lowercase();
    assert!(req.contains("authorization: bearer s3cret\r\n"), "{req}");
}
