//! `ember-bench exporter`: one process serving K synthetic targets on
//! consecutive loopback ports. Each `GET /metrics` renders the target's page
//! for its next scrape number; `GET /stats` (on any port) reports the
//! scrapes served and the exporter's own CPU time, so the harness can show
//! that the exporter is never the bottleneck.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::page::PageTemplate;
use crate::procfs;

#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind { port: u16, source: std::io::Error },
    #[error("serving: {0}")]
    Serve(std::io::Error),
    #[error("ports {base}..{base}+{targets} do not fit below 65536")]
    Ports { base: u16, targets: usize },
}

#[derive(Debug)]
struct Shared {
    template: PageTemplate,
    /// Scrapes served per target (the next scrape number).
    scrapes: Vec<AtomicU64>,
    /// Bytes of page text served, all targets.
    bytes: AtomicU64,
}

#[derive(Debug, Clone)]
struct TargetState {
    shared: Arc<Shared>,
    target: usize,
}

async fn metrics(State(st): State<TargetState>) -> impl IntoResponse {
    let n = st.shared.scrapes[st.target].fetch_add(1, Ordering::Relaxed);
    let body = st.shared.template.render(st.target, n);
    st.shared.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], body)
}

/// Totals since the exporter started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExporterStats {
    pub scrapes: u64,
    pub bytes: u64,
    pub cpu_seconds: f64,
}

impl ExporterStats {
    /// The `/stats` body: one `key value` per line.
    pub fn to_text(self) -> String {
        format!("scrapes {}\nbytes {}\ncpu_seconds {}\n", self.scrapes, self.bytes, self.cpu_seconds)
    }

    /// Parses a `/stats` body.
    pub fn parse(text: &str) -> Option<ExporterStats> {
        let get = |key: &str| {
            text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(' ')).map(str::trim))
        };
        Some(ExporterStats {
            scrapes: get("scrapes")?.parse().ok()?,
            bytes: get("bytes")?.parse().ok()?,
            cpu_seconds: get("cpu_seconds")?.parse().ok()?,
        })
    }

    /// Exporter CPU microseconds per scrape served.
    pub fn cpu_us_per_scrape(&self) -> Option<f64> {
        (self.scrapes > 0).then(|| self.cpu_seconds * 1e6 / self.scrapes as f64)
    }
}

fn stats_now(shared: &Shared) -> ExporterStats {
    ExporterStats {
        scrapes: shared.scrapes.iter().map(|s| s.load(Ordering::Relaxed)).sum(),
        bytes: shared.bytes.load(Ordering::Relaxed),
        cpu_seconds: procfs::cpu(std::process::id()).map(|c| c.seconds()).unwrap_or(f64::NAN),
    }
}

async fn stats(State(st): State<TargetState>) -> String {
    stats_now(&st.shared).to_text()
}

/// Serves `targets` pages of `series` series on ports `port_base..`, until
/// the process is stopped. Every `report_every` the totals go to stderr.
pub async fn serve(
    targets: usize,
    series: usize,
    port_base: u16,
    report_every: Option<Duration>,
) -> Result<(), ExporterError> {
    if usize::from(port_base) + targets > 65536 {
        return Err(ExporterError::Ports { base: port_base, targets });
    }
    let mut listeners = Vec::with_capacity(targets);
    for target in 0..targets {
        // Checked above: the sum fits in u16.
        let port = port_base + target as u16;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|source| ExporterError::Bind { port, source })?;
        listeners.push(listener);
    }
    serve_on(listeners, series, report_every).await
}

/// Serves target `i` on `listeners[i]`, until the process is stopped.
pub async fn serve_on(
    listeners: Vec<tokio::net::TcpListener>,
    series: usize,
    report_every: Option<Duration>,
) -> Result<(), ExporterError> {
    let targets = listeners.len();
    let port_base = listeners.first().and_then(|l| l.local_addr().ok()).map_or(0, |a| a.port());
    let shared = Arc::new(Shared {
        template: PageTemplate::new(series),
        scrapes: (0..targets).map(|_| AtomicU64::new(0)).collect(),
        bytes: AtomicU64::new(0),
    });
    let mut servers = tokio::task::JoinSet::new();
    for (target, listener) in listeners.into_iter().enumerate() {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .route("/stats", get(stats))
            .with_state(TargetState { shared: shared.clone(), target });
        servers.spawn(async move { axum::serve(listener, app).await });
    }
    eprintln!(
        "exporter: {targets} targets x {} series on 127.0.0.1:{port_base}..{}",
        shared.template.series(),
        (usize::from(port_base) + targets).saturating_sub(1)
    );
    if let Some(every) = report_every {
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = stats_now(&shared);
                let per = s.cpu_us_per_scrape().map_or("n/a".to_owned(), |u| format!("{u:.0} µs"));
                eprintln!(
                    "exporter: {} scrapes, {:.1} MiB served, {:.2} CPU s, {per} CPU per scrape",
                    s.scrapes,
                    s.bytes as f64 / 1048576.0,
                    s.cpu_seconds
                );
            }
        });
    }
    match servers.join_next().await {
        Some(Ok(Err(e))) => Err(ExporterError::Serve(e)),
        Some(Err(e)) => Err(ExporterError::Serve(std::io::Error::other(e))),
        Some(Ok(Ok(()))) | None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_text_round_trip() {
        let s = ExporterStats { scrapes: 1200, bytes: 99, cpu_seconds: 0.6 };
        let back = ExporterStats::parse(&s.to_text()).unwrap();
        assert_eq!(back, s);
        assert!((back.cpu_us_per_scrape().unwrap() - 500.0).abs() < 1e-9);
        assert_eq!(ExporterStats { scrapes: 0, ..s }.cpu_us_per_scrape(), None);
        assert_eq!(ExporterStats::parse("scrapes 1\n"), None);
    }

    #[test]
    fn serves_pages_and_counts_scrapes() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        // Two listeners on free ports, bound before serving: no port races.
        let (a, b) = rt.block_on(async {
            let a = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let b = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            (a, b)
        });
        let (base, second) = (a.local_addr().unwrap().port(), b.local_addr().unwrap().port());
        rt.spawn(serve_on(vec![a, b], 50, None));
        let t = Duration::from_secs(5);
        let mut got = None;
        for _ in 0..100 {
            if let Ok(r) = crate::http::get(&format!("http://127.0.0.1:{second}/metrics"), t) {
                got = Some(r);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let r = got.expect("exporter answers");
        assert_eq!(r.status, 200);
        assert_eq!(String::from_utf8(r.body).unwrap(), PageTemplate::new(50).render(1, 0));
        let again = crate::http::get(&format!("http://127.0.0.1:{second}/metrics"), t).unwrap();
        assert_eq!(String::from_utf8(again.body).unwrap(), PageTemplate::new(50).render(1, 1));
        let st = crate::http::get(&format!("http://127.0.0.1:{base}/stats"), t).unwrap();
        let st = ExporterStats::parse(&String::from_utf8(st.body).unwrap()).unwrap();
        assert_eq!(st.scrapes, 2);
        assert!(st.bytes > 0);
    }
}
