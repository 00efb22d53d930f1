//! Concurrent query load (issue 8, item 5): N clients loop over the query
//! set against one server for a fixed time while it keeps scraping. The
//! loop is bounded: each client waits for its answer before sending the
//! next request, so at most N requests are in flight.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::queries::{self, Outcome, Timed};
use crate::stats;

/// What the clients saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadFigures {
    pub clients: usize,
    /// Seconds from the first request to the last answer.
    pub seconds: f64,
    pub requests: u64,
    pub ok: u64,
    /// Answers per second (all kinds) and successful answers per second.
    pub requests_per_s: f64,
    pub ok_per_s: f64,
    /// Errors by kind (`HTTP 503 / unavailable`, `transport: timed out`).
    pub errors: BTreeMap<String, u64>,
    /// Latency of successful answers (ms).
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Whether scraping kept up during the load (see `run::load_phase`).
    pub scrapes_seen: Option<f64>,
    pub scrapes_expected: f64,
    pub max_scrape_duration_s: Option<f64>,
    pub min_up: Option<f64>,
}

/// Sums up the calls of all clients over `seconds`.
pub fn summarize(clients: usize, seconds: f64, calls: &[Timed]) -> LoadFigures {
    let mut errors = BTreeMap::new();
    let mut ok_ms = Vec::new();
    for c in calls {
        match &c.outcome {
            Outcome::Ok => ok_ms.push(c.seconds * 1000.0),
            other => *errors.entry(other.kind()).or_insert(0) += 1,
        }
    }
    let per_s = |n: usize| if seconds > 0.0 { n as f64 / seconds } else { 0.0 };
    LoadFigures {
        clients,
        seconds,
        requests: calls.len() as u64,
        ok: ok_ms.len() as u64,
        requests_per_s: per_s(calls.len()),
        ok_per_s: per_s(ok_ms.len()),
        errors,
        p50_ms: stats::median(&ok_ms),
        p90_ms: stats::quantile(&ok_ms, 0.9),
        max_ms: ok_ms.iter().copied().reduce(f64::max),
        ..LoadFigures::default()
    }
}

/// Runs `clients` threads against `base` for `duration`, each looping over
/// `paths` (client i starts at path i, so the clients do not all send the
/// same query at once). A request sent before the deadline is waited for.
/// Returns the seconds it took and every call.
pub fn drive(
    base: &str,
    paths: &[String],
    clients: usize,
    duration: Duration,
    timeout: Duration,
) -> (f64, Vec<Timed>) {
    if paths.is_empty() || clients == 0 {
        return (0.0, Vec::new());
    }
    let t0 = Instant::now();
    let deadline = t0 + duration;
    let calls = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    let mut i = c % paths.len();
                    while Instant::now() < deadline {
                        out.push(queries::call_timed(base, &paths[i], timeout));
                        i = (i + 1) % paths.len();
                    }
                    out
                })
            })
            .collect();
        // A client thread cannot panic on a server's answer (errors are
        // values); should one panic anyway, its calls are lost, not the run.
        handles.into_iter().filter_map(|h| h.join().ok()).flatten().collect::<Vec<_>>()
    });
    (t0.elapsed().as_secs_f64(), calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn t(ms: f64, outcome: Outcome) -> Timed {
        Timed { seconds: ms / 1000.0, outcome }
    }

    #[test]
    fn summary_counts_errors_by_kind_and_latency_of_successes_only() {
        let unavailable = || Outcome::Status { status: 503, error_type: Some("unavailable".into()) };
        let calls = vec![
            t(10.0, Outcome::Ok),
            t(20.0, Outcome::Ok),
            t(30.0, Outcome::Ok),
            t(5000.0, unavailable()),
            t(1.0, unavailable()),
            t(2.0, Outcome::Status { status: 422, error_type: None }),
            t(9.0, Outcome::Transport("timed out".into())),
            t(40.0, Outcome::Ok),
        ];
        let f = summarize(8, 2.0, &calls);
        assert_eq!((f.clients, f.requests, f.ok), (8, 8, 4));
        assert_eq!(f.requests_per_s, 4.0);
        assert_eq!(f.ok_per_s, 2.0);
        assert_eq!(f.errors.get("HTTP 503 / unavailable"), Some(&2));
        assert_eq!(f.errors.get("HTTP 422"), Some(&1));
        assert_eq!(f.errors.get("transport: timed out"), Some(&1));
        assert_eq!(f.errors.len(), 3);
        // 10, 20, 30, 40: the slow error answer does not count.
        assert!((f.p50_ms.unwrap() - 25.0).abs() < 1e-9);
        assert!((f.p90_ms.unwrap() - 37.0).abs() < 1e-9);
        assert!((f.max_ms.unwrap() - 40.0).abs() < 1e-9);
        let none = summarize(1, 0.0, &[]);
        assert_eq!((none.requests, none.requests_per_s, none.p50_ms), (0, 0.0, None));
    }

    /// A loopback listener that answers every request, alternating 200 and
    /// 503 with an errorType, counting the requests it saw at once.
    #[test]
    fn clients_are_bounded_and_classify_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop2 = stop.clone();
        let server = std::thread::spawn(move || {
            listener.set_nonblocking(true).unwrap();
            let mut served = 0u64;
            while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if req.starts_with("GET /bad") {
                    ("503 Service Unavailable", r#"{"status":"error","errorType":"unavailable","error":"x"}"#)
                } else {
                    ("200 OK", r#"{"status":"success","data":[]}"#)
                };
                let answer = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                let _ = s.write_all(answer.as_bytes());
                served += 1;
            }
            served
        });
        let base = format!("http://127.0.0.1:{port}");
        let paths = vec!["/good".to_owned(), "/bad".to_owned()];
        let (secs, calls) = drive(&base, &paths, 2, Duration::from_millis(200), Duration::from_secs(5));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let served = server.join().unwrap();
        assert!(secs >= 0.2);
        assert_eq!(calls.len() as u64, served, "every request was answered before the next");
        let f = summarize(2, secs, &calls);
        assert!(f.ok > 0);
        assert_eq!(f.errors.keys().collect::<Vec<_>>(), ["HTTP 503 / unavailable"]);
        // Clients alternate paths, so successes and errors balance within one per client.
        let bad = f.errors["HTTP 503 / unavailable"];
        assert!(f.ok.abs_diff(bad) <= 2, "ok {} bad {bad}", f.ok);
    }
}
