//! One target's scrape loop: HTTP fetch with Prometheus's headers and
//! limits, then [`crate::append`] into storage, on a fixed, per-target
//! offset schedule.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ember_config::ScrapeConfig;
use ember_model::{Appendable, Labels, Timestamp};
use ember_textparse::{
    accept_header_with_escaping, parser_for_content_type, EscapingScheme, Format, ScrapeProtocol,
};

use crate::append::{
    append_page, append_report, mark_all_stale, stale_report, AppendOptions, PageStats, Report, ScrapeCache,
    ScrapeError,
};
use crate::targets::Target;

/// A target's health as the targets API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The outcome of the last scrape of a target.
#[derive(Debug, Clone, Default)]
pub struct TargetHealth {
    pub health: Health,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_duration: Duration,
}

fn now_ms() -> Timestamp {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn read_secret_file(path: &str) -> Result<String, ScrapeError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| ScrapeError::Http(format!("unable to read file {path}: {e}")))
}

/// Fetches one target's page.
#[derive(Debug, Clone)]
pub struct HttpScraper {
    client: reqwest::Client,
    url: String,
    accept: String,
    timeout: Duration,
    body_limit: u64,
    fallback: Option<Format>,
    cfg: Arc<ScrapeConfig>,
}

impl HttpScraper {
    pub fn new(cfg: Arc<ScrapeConfig>, target: &Target) -> Result<HttpScraper, ScrapeError> {
        let (_, timeout) = target.interval_and_timeout();
        let protocols: Vec<ScrapeProtocol> = cfg
            .scrape_protocols
            .iter()
            .flatten()
            .filter_map(|p| p.parse().ok())
            .filter(|p: &ScrapeProtocol| p.format().is_some())
            .collect();
        let protocols = if protocols.is_empty() { ScrapeProtocol::DEFAULT.to_vec() } else { protocols };
        let escaping = match cfg.metric_name_escaping_scheme.as_str() {
            "underscores" => EscapingScheme::Underscores,
            "dots" => EscapingScheme::Dots,
            "values" => EscapingScheme::Values,
            _ => EscapingScheme::AllowUtf8,
        };
        let fallback = cfg.fallback_scrape_protocol.parse::<ScrapeProtocol>().ok().and_then(|p| p.format());
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("ember/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout.max(Duration::from_millis(1)))
            .danger_accept_invalid_certs(cfg.tls_config.insecure_skip_verify);
        if !cfg.enable_compression {
            b = b.no_gzip();
        }
        if !cfg.follow_redirects {
            b = b.redirect(reqwest::redirect::Policy::none());
        }
        if !cfg.enable_http2 {
            b = b.http1_only();
        }
        match &cfg.proxy_url {
            Some(p) => {
                let proxy = reqwest::Proxy::all(p.0.as_str())
                    .map_err(|e| ScrapeError::Http(format!("proxy_url: {e}")))?;
                b = b.proxy(proxy);
            }
            None if !cfg.proxy_from_environment => b = b.no_proxy(),
            None => {}
        }
        if !cfg.tls_config.ca_file.is_empty() {
            let pem = std::fs::read(&cfg.tls_config.ca_file)
                .map_err(|e| ScrapeError::Http(format!("unable to load specified CA cert: {e}")))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| ScrapeError::Http(format!("unable to use specified CA cert: {e}")))?;
            b = b.add_root_certificate(cert);
        }
        let client = b.build().map_err(|e| ScrapeError::Http(e.to_string()))?;
        Ok(HttpScraper {
            client,
            url: target.url(),
            accept: accept_header_with_escaping(&protocols, escaping),
            timeout,
            body_limit: cfg.body_size_limit.0,
            fallback,
            cfg,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// GETs the page; returns the (uncompressed) body and its format.
    pub async fn fetch(&self) -> Result<(Vec<u8>, Format), ScrapeError> {
        let mut req = self
            .client
            .get(&self.url)
            .header(reqwest::header::ACCEPT, &self.accept)
            .header("X-Prometheus-Scrape-Timeout-Seconds", format!("{}", self.timeout.as_secs_f64()));
        if let Some(b) = &self.cfg.basic_auth {
            let user = if b.username_file.is_empty() {
                b.username.clone()
            } else {
                read_secret_file(&b.username_file)?
            };
            let pass = if b.password_file.is_empty() {
                b.password.expose().to_owned()
            } else {
                read_secret_file(&b.password_file)?
            };
            req = req.basic_auth(user, Some(pass));
        }
        if let Some(a) = &self.cfg.authorization {
            let cred = if a.credentials_file.is_empty() {
                a.credentials.expose().to_owned()
            } else {
                read_secret_file(&a.credentials_file)?
            };
            req = req.header(reqwest::header::AUTHORIZATION, format!("{} {}", a.kind, cred));
        }
        let mut resp = req.send().await.map_err(classify)?;
        if !resp.status().is_success() {
            let s = resp.status();
            return Err(ScrapeError::Status(format!(
                "{} {}",
                s.as_u16(),
                s.canonical_reason().unwrap_or("")
            )));
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let format = parser_for_content_type(ct.as_deref(), self.fallback)
            .map_err(|e| ScrapeError::ContentType(e.to_string()))?
            .format;
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            body.extend_from_slice(&chunk);
            if self.body_limit > 0 && body.len() as u64 > self.body_limit {
                return Err(ScrapeError::BodySizeLimit);
            }
        }
        Ok((body, format))
    }
}

fn classify(e: reqwest::Error) -> ScrapeError {
    if e.is_timeout() {
        ScrapeError::Timeout
    } else {
        ScrapeError::Http(e.to_string())
    }
}

/// Scrapes one target into a storage.
pub struct ScrapeLoop {
    target: Target,
    public_labels: Labels,
    opts: AppendOptions,
    scraper: HttpScraper,
    storage: Arc<dyn Appendable>,
    cache: ScrapeCache,
    health: Arc<Mutex<TargetHealth>>,
}

impl std::fmt::Debug for ScrapeLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeLoop").field("url", &self.scraper.url).finish_non_exhaustive()
    }
}

impl ScrapeLoop {
    pub fn new(
        cfg: Arc<ScrapeConfig>,
        target: Target,
        storage: Arc<dyn Appendable>,
    ) -> Result<ScrapeLoop, ScrapeError> {
        let scraper = HttpScraper::new(cfg.clone(), &target)?;
        Ok(ScrapeLoop {
            public_labels: target.public_labels(),
            target,
            opts: AppendOptions::from_config(&cfg),
            scraper,
            storage,
            cache: ScrapeCache::new(),
            health: Arc::new(Mutex::new(TargetHealth::default())),
        })
    }

    /// Shared view of the target's health, for the API.
    pub fn health(&self) -> Arc<Mutex<TargetHealth>> {
        self.health.clone()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// One scrape: fetch, append (or stale-mark on failure), report,
    /// commit. Returns the report that was written.
    pub async fn scrape_once(&mut self) -> Report {
        let started = std::time::Instant::now();
        let wall = SystemTime::now();
        let ts = now_ms();
        let fetched = self.scraper.fetch().await;
        let duration = started.elapsed();
        let (report, err) = self.store(fetched, ts, duration);
        let mut h = self.health.lock().unwrap_or_else(|e| e.into_inner());
        h.health = if report.up { Health::Up } else { Health::Down };
        h.last_error = err.map(|e| e.to_string()).unwrap_or_default();
        h.last_scrape = Some(wall);
        h.last_duration = duration;
        report
    }

    fn store(
        &mut self,
        fetched: Result<(Vec<u8>, Format), ScrapeError>,
        ts: Timestamp,
        duration: Duration,
    ) -> (Report, Option<ScrapeError>) {
        let storage = self.storage.clone();
        let mut app = storage.appender();
        let mut err = None;
        let mut stats = PageStats::default();
        match fetched {
            Ok((body, format)) => {
                match append_page(
                    app.as_mut(),
                    &mut self.cache,
                    &self.public_labels,
                    &self.opts,
                    &body,
                    format,
                    ts,
                ) {
                    Ok(s) => stats = s,
                    Err(e) => {
                        // Nothing of a bad page is kept; its series go stale.
                        app.rollback();
                        app = storage.appender();
                        err = Some(e);
                    }
                }
            }
            Err(e) => err = Some(e),
        }
        if err.is_some() {
            if let Err(e) = mark_all_stale(app.as_mut(), &mut self.cache, ts) {
                err = Some(e);
            }
        }
        let report = Report { up: err.is_none(), duration_seconds: duration.as_secs_f64(), stats };
        let result = append_report(app.as_mut(), &self.public_labels, ts, &report)
            .and_then(|_| app.commit().map(|_| ()).map_err(|e| ScrapeError::Storage(e.to_string())));
        if let Err(e) = result {
            app.rollback();
            err.get_or_insert(e);
        }
        (report, err)
    }

    /// Marks everything this target wrote stale (the target went away).
    pub fn stop_stale(&mut self) {
        let storage = self.storage.clone();
        let mut app = storage.appender();
        let ts = now_ms();
        let ok = mark_all_stale(app.as_mut(), &mut self.cache, ts)
            .and_then(|_| stale_report(app.as_mut(), &self.public_labels, ts));
        match ok {
            Ok(()) => {
                // A failed commit leaves nothing to undo here.
                let _ = app.commit();
            }
            Err(_) => app.rollback(),
        }
    }

    /// The delay before the first scrape: Prometheus spreads targets over
    /// the interval by a hash of their labels, aligned to wall-clock slots.
    pub fn initial_delay(&self, interval: Duration) -> Duration {
        let iv = interval.as_nanos().max(1);
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let base = iv - now % iv;
        let offset = u128::from(self.target.labels().stable_hash()) % iv;
        let mut next = base + offset;
        if next > iv {
            next -= iv;
        }
        Duration::from_nanos(next as u64)
    }

    /// Scrapes every interval until `stop` turns true, then marks the
    /// target's series stale.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let (interval, _) = self.target.interval_and_timeout();
        let interval = interval.max(Duration::from_millis(1));
        let start = tokio::time::Instant::now() + self.initial_delay(interval);
        let mut ticker = tokio::time::interval_at(start, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {
                    self.scrape_once().await;
                }
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
            }
        }
        self.stop_stale();
    }
}
