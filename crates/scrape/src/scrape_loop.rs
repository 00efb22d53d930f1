//! One target's scrape loop: HTTP fetch with Prometheus's headers and
//! limits, then [`crate::append`] into storage, on a fixed, per-target
//! offset schedule.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use ember_config::ScrapeConfig;
use ember_model::{Appendable, Labels, Metadata, Timestamp};
use ember_textparse::{
    accept_header_with_escaping, parser_for_content_type, EscapingScheme, Format, ScrapeProtocol,
};

use crate::append::{
    append_page, append_report, mark_all_stale, stale_report, AppendOptions, PageStats, Report, ScrapeCache,
    ScrapeError,
};
use crate::intervals::IntervalSummaries;
use crate::oauth2::{error_chain, TokenSource};
use crate::targets::Target;
use crate::tls;

/// A target's metric metadata as of its last good scrape, by family name.
pub type MetadataSnapshot = Arc<HashMap<String, Metadata>>;

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

/// Prometheus's `--scrape.adjust-timestamps` (on by default): timers
/// jitter by a millisecond or two, and a timestamp that is not exactly an
/// interval after the previous one costs a chunk a dozen bits instead of
/// one. So a scrape that starts within 2 ms (at most 1 % of the interval)
/// after its slot is stamped with the slot's time. The grid starts at the
/// loop's first scrape (`grid`: its wall-clock time and monotonic instant);
/// lateness is measured on the monotonic clock, which the loop's timer
/// follows, so wall-clock rounding and slewing do not push a scrape off its
/// slot.
pub fn align_timestamp(
    grid: &mut Option<Grid>,
    now: Timestamp,
    now_mono: Instant,
    interval: Duration,
) -> Timestamp {
    let iv = interval.as_nanos().max(1);
    let tolerance = (iv / 100).min(2_000_000);
    let Some(Grid { wall0, mono0, last_slot }) = *grid else {
        *grid = Some(Grid { wall0: now, mono0: now_mono, last_slot: 0 });
        return now;
    };
    let elapsed = now_mono.saturating_duration_since(mono0).as_nanos();
    let slots = elapsed / iv;
    let late = elapsed - slots * iv;
    let slot = wall0.saturating_add(i64::try_from(slots * iv / 1_000_000).unwrap_or(i64::MAX));
    let expected = slot.saturating_add(i64::try_from(late / 1_000_000).unwrap_or(i64::MAX));
    if now.abs_diff(expected) > 1000 {
        // The wall clock was set (more than a second off the grid): start
        // a new grid from here.
        *grid = Some(Grid { wall0: now, mono0: now_mono, last_slot: 0 });
        return now;
    }
    // A slot's time is given once: a second scrape in the same slot (not
    // something the loop's timer does) keeps its own time.
    if late <= tolerance && slots > last_slot {
        *grid = Some(Grid { wall0, mono0, last_slot: slots });
        slot
    } else {
        now
    }
}

/// Where a scrape loop's slots lie: the wall-clock time and monotonic
/// instant of its first scrape, and the last slot a timestamp was aligned
/// to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    wall0: Timestamp,
    mono0: Instant,
    last_slot: u128,
}

fn now_ms() -> Timestamp {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn read_secret_file(path: &str) -> Result<String, ScrapeError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| ScrapeError::Http(format!("unable to read file {path}: {e}")))
}

/// Staleness markers for everything a target wrote (its last page's
/// series and its report series), at the current time.
pub(crate) fn write_end_of_run_staleness(storage: &dyn Appendable, cache: &mut ScrapeCache, public: &Labels) {
    let mut app = storage.appender();
    let ts = now_ms();
    let ok = mark_all_stale(app.as_mut(), cache, ts).and_then(|_| stale_report(app.as_mut(), public, ts));
    match ok {
        Ok(()) => {
            // A failed commit leaves nothing to undo here.
            let _ = app.commit();
        }
        Err(_) => app.rollback(),
    }
}

/// How to reach an IP-addressed HTTPS target so that `server_name` is
/// sent as SNI (rustls takes the SNI name from the URL's host, and sends
/// none for an IP address): the request names `server_name`, which the
/// client resolves to the target's address, and the Host header keeps the
/// target's own `ip:port`, as Go sends it.
struct SniRoute {
    request_url: String,
    addr: std::net::SocketAddr,
    host_header: String,
}

fn sni_route(cfg: &ScrapeConfig, url: &str) -> Option<SniRoute> {
    let name = &cfg.tls_config.server_name;
    // Through a proxy the name would be resolved by the proxy: leave it.
    if name.is_empty() || cfg.proxy_url.is_some() || cfg.proxy_from_environment {
        return None;
    }
    let mut u = reqwest::Url::parse(url).ok()?;
    if u.scheme() != "https" {
        return None;
    }
    let ip: std::net::IpAddr = match u.host()? {
        url::Host::Ipv4(a) => a.into(),
        url::Host::Ipv6(a) => a.into(),
        url::Host::Domain(_) => return None,
    };
    let port = u.port_or_known_default()?;
    let host_header = match u.port() {
        Some(p) => format!("{}:{p}", u.host_str()?),
        None => u.host_str()?.to_owned(),
    };
    u.set_host(Some(name)).ok()?;
    Some(SniRoute { request_url: u.to_string(), addr: (ip, port).into(), host_header })
}

/// Fetches one target's page.
#[derive(Debug, Clone)]
pub struct HttpScraper {
    client: reqwest::Client,
    url: String,
    /// Where the request goes when it differs from `url` (see [`sni_route`]),
    /// and the Host header that keeps the target's own authority.
    route: Option<(String, String)>,
    accept: String,
    timeout: Duration,
    body_limit: u64,
    fallback: Option<Format>,
    cfg: Arc<ScrapeConfig>,
    oauth2: Option<Arc<TokenSource>>,
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
        // Every TLS setting lives in our own rustls config (reqwest's
        // builder has no server_name override).
        let tls = tls::client_config(&cfg.tls_config).map_err(|e| ScrapeError::Http(e.to_string()))?;
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("ember/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout.max(Duration::from_millis(1)))
            .use_preconfigured_tls(tls);
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
        let url = target.url();
        let route = sni_route(&cfg, &url).map(|r| {
            b = std::mem::take(&mut b).resolve(&cfg.tls_config.server_name, r.addr);
            (r.request_url, r.host_header)
        });
        let client = b.build().map_err(|e| ScrapeError::Http(error_chain(&e)))?;
        Ok(HttpScraper {
            client,
            url,
            route,
            accept: accept_header_with_escaping(&protocols, escaping),
            timeout,
            body_limit: cfg.body_size_limit.0,
            fallback,
            oauth2: cfg.oauth2.as_ref().map(|o| Arc::new(TokenSource::new(o))),
            cfg,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// GETs the page; returns the (uncompressed) body and its format.
    pub async fn fetch(&self) -> Result<(Vec<u8>, Format), ScrapeError> {
        let mut req = match &self.route {
            Some((to, host)) => self.client.get(to).header(reqwest::header::HOST, host),
            None => self.client.get(&self.url),
        };
        req = req
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
        if let Some(ts) = &self.oauth2 {
            // Go's oauth2 transport fails the request itself: `Get "url": oauth2: ...`.
            // The token fetch is part of the request, within the scrape timeout.
            let h = tokio::time::timeout(self.timeout, ts.header())
                .await
                .map_err(|_| ScrapeError::Timeout)?
                .map_err(|e| ScrapeError::Http(format!("Get {:?}: {e}", self.url)))?;
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        let mut resp = req.send().await.map_err(|e| classify(&self.url, e))?;
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
        while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&self.url, e))? {
            body.extend_from_slice(&chunk);
            if self.body_limit > 0 && body.len() as u64 > self.body_limit {
                return Err(ScrapeError::BodySizeLimit);
            }
        }
        Ok((body, format))
    }
}

/// A transport error as Go's client words it, `Get "url": cause` (with
/// the causes reqwest's own text leaves out, e.g. certificate problems).
fn classify(url: &str, e: reqwest::Error) -> ScrapeError {
    if e.is_timeout() {
        return ScrapeError::Timeout;
    }
    let mut causes = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(&e);
    while let Some(c) = cur {
        let t = c.to_string();
        if causes.last().is_none_or(|l: &String| !l.ends_with(&t)) {
            causes.push(t);
        }
        cur = c.source();
    }
    if causes.is_empty() {
        return ScrapeError::Http(e.to_string());
    }
    ScrapeError::Http(format!("Get {url:?}: {}", causes.join(": ")))
}

/// What a stopped loop hands to its successor when its job is reloaded
/// in place: the series cache (staleness tracking) and the views the API
/// reads, so the target's health and metadata carry on.
#[derive(Debug)]
pub struct LoopState {
    pub cache: ScrapeCache,
    pub health: Arc<Mutex<TargetHealth>>,
    pub metadata: Arc<Mutex<MetadataSnapshot>>,
}

/// Scrapes one target into a storage.
pub struct ScrapeLoop {
    cfg: Arc<ScrapeConfig>,
    target: Target,
    public_labels: Labels,
    opts: AppendOptions,
    /// The HTTP client, or why it could not be built (bad TLS files...):
    /// then each scrape tries again and reports the error.
    scraper: Result<HttpScraper, ScrapeError>,
    storage: Arc<dyn Appendable>,
    cache: ScrapeCache,
    health: Arc<Mutex<TargetHealth>>,
    metadata: Arc<Mutex<MetadataSnapshot>>,
    intervals: Option<Arc<IntervalSummaries>>,
    last_start: Option<Instant>,
    /// The slot the scrape timestamps are aligned to; see
    /// [`align_timestamp`].
    aligned_ts: Option<Grid>,
    /// Cleared when the job is reloaded in place: the loop then stops
    /// without staleness markers (its successor continues the series).
    stale_on_stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for ScrapeLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeLoop").field("url", &self.target.url()).finish_non_exhaustive()
    }
}

impl ScrapeLoop {
    pub fn new(cfg: Arc<ScrapeConfig>, target: Target, storage: Arc<dyn Appendable>) -> ScrapeLoop {
        ScrapeLoop::resume(
            cfg,
            target,
            storage,
            LoopState { cache: ScrapeCache::new(), health: Arc::default(), metadata: Arc::default() },
        )
    }

    /// A loop that carries on from a previous loop of the same target.
    pub fn resume(
        cfg: Arc<ScrapeConfig>,
        target: Target,
        storage: Arc<dyn Appendable>,
        state: LoopState,
    ) -> ScrapeLoop {
        let scraper = HttpScraper::new(cfg.clone(), &target);
        ScrapeLoop {
            public_labels: target.public_labels(),
            target,
            opts: AppendOptions::from_config(&cfg),
            cfg,
            scraper,
            storage,
            cache: state.cache,
            health: state.health,
            metadata: state.metadata,
            intervals: None,
            last_start: None,
            aligned_ts: None,
            stale_on_stop: Arc::new(AtomicBool::new(true)),
        }
    }

    /// Records the time between scrapes into `s`.
    pub fn with_interval_summaries(mut self, s: Arc<IntervalSummaries>) -> ScrapeLoop {
        self.intervals = Some(s);
        self
    }

    /// Shared view of the target's health, for the API.
    pub fn health(&self) -> Arc<Mutex<TargetHealth>> {
        self.health.clone()
    }

    /// Shared view of the target's metadata as last scraped.
    pub fn metadata(&self) -> Arc<Mutex<MetadataSnapshot>> {
        self.metadata.clone()
    }

    /// The switch that decides whether stopping writes staleness markers.
    pub fn stale_on_stop(&self) -> Arc<AtomicBool> {
        self.stale_on_stop.clone()
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// One scrape: fetch, append (or stale-mark on failure), report,
    /// commit. Returns the report that was written.
    pub async fn scrape_once(&mut self) -> Report {
        let started = Instant::now();
        if let (Some(s), Some(prev)) = (&self.intervals, self.last_start) {
            let (interval, _) = self.target.interval_and_timeout();
            s.observe(interval, started.duration_since(prev));
        }
        self.last_start = Some(started);
        let wall = SystemTime::now();
        let (interval, _) = self.target.interval_and_timeout();
        let ts = align_timestamp(&mut self.aligned_ts, now_ms(), Instant::now(), interval);
        if self.scraper.is_err() {
            // Files may have been fixed since: try again.
            self.scraper = HttpScraper::new(self.cfg.clone(), &self.target);
        }
        let fetched = match &self.scraper {
            Ok(s) => s.fetch().await,
            Err(e) => Err(e.clone()),
        };
        let duration = started.elapsed();
        let (report, err) = self.store(fetched, ts, duration);
        {
            let cur = self.cache.shared_metadata();
            let mut m = self.metadata.lock().unwrap_or_else(|e| e.into_inner());
            if !Arc::ptr_eq(&m, cur) {
                *m = cur.clone();
            }
        }
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
            // As Prometheus's "Scrape commit failed": storage refusing a
            // whole batch (a WAL write error, a full disk) must be seen.
            tracing::error!(url = %self.target.url(), err = %e, "scrape commit failed");
            err.get_or_insert(e);
        }
        (report, err)
    }

    /// Marks everything this target wrote stale (the target went away).
    pub fn stop_stale(&mut self) {
        write_end_of_run_staleness(self.storage.as_ref(), &mut self.cache, &self.public_labels);
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
    /// target's series stale (unless [`ScrapeLoop::stale_on_stop`] was
    /// cleared) and hands back its state.
    pub async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) -> LoopState {
        let (interval, _) = self.target.interval_and_timeout();
        let interval = interval.max(Duration::from_millis(1));
        let start = tokio::time::Instant::now() + self.initial_delay(interval);
        let mut ticker = tokio::time::interval_at(start, interval);
        // A late tick does not move the later ones (as Go's ticker, which
        // Prometheus uses): the loop stays on its slots, so timestamps can
        // be aligned to them (see `align_timestamp`). `Delay` would restart
        // the schedule from every tick more than 5 ms late.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
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
        if self.stale_on_stop.load(Ordering::Acquire) {
            self.stop_stale();
        }
        LoopState { cache: self.cache, health: self.health, metadata: self.metadata }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrape_timestamps_snap_to_their_slot_within_the_tolerance() {
        let iv = Duration::from_secs(15);
        let m0 = Instant::now();
        let at = |ms: u64| m0 + Duration::from_micros(ms * 1000);
        let mut grid = None;
        let t0 = 1_700_000_000_123;
        assert_eq!(align_timestamp(&mut grid, t0, at(0), iv), t0);
        // Up to 2 ms late on the monotonic clock: the slot's time, whatever
        // the wall clock's rounding says.
        assert_eq!(align_timestamp(&mut grid, t0 + 14_999, at(15_000), iv), t0 + 15_000);
        assert_eq!(align_timestamp(&mut grid, t0 + 30_002, at(30_002), iv), t0 + 30_000);
        assert_eq!(align_timestamp(&mut grid, t0 + 45_001, at(45_001), iv), t0 + 45_000);
        // Later than that: the real time.
        assert_eq!(align_timestamp(&mut grid, t0 + 60_003, at(60_003), iv), t0 + 60_003);
        assert_eq!(align_timestamp(&mut grid, t0 + 75_000, at(75_000), iv), t0 + 75_000);
        // A skipped tick: the next slot on the grid.
        assert_eq!(align_timestamp(&mut grid, t0 + 105_001, at(105_001), iv), t0 + 105_000);
        // Early: not aligned (Prometheus aligns late scrapes only).
        assert_eq!(align_timestamp(&mut grid, t0 + 119_999, at(119_999), iv), t0 + 119_999);
        assert_eq!(grid.map(|g| (g.wall0, g.mono0, g.last_slot)), Some((t0, m0, 7)));
        // A second scrape in an aligned slot keeps its own time.
        assert_eq!(align_timestamp(&mut grid, t0 + 105_002, at(105_002), iv), t0 + 105_002);
        // A wall clock set back starts a new grid.
        assert_eq!(align_timestamp(&mut grid, t0, at(135_000), iv), t0);
        assert_eq!(grid.map(|g| (g.wall0, g.mono0, g.last_slot)), Some((t0, at(135_000), 0)));
    }

    #[test]
    fn the_tolerance_is_at_most_one_percent_of_the_interval() {
        let iv = Duration::from_millis(100);
        let m0 = Instant::now();
        let mut grid = Some(Grid { wall0: 1_000, mono0: m0, last_slot: 0 });
        let at = |ms: u64| m0 + Duration::from_millis(ms);
        assert_eq!(align_timestamp(&mut grid, 1_101, at(101), iv), 1_100, "1 ms of a 100 ms interval");
        assert_eq!(align_timestamp(&mut grid, 1_202, at(202), iv), 1_202, "2 ms is more than 1 %");
    }
}
