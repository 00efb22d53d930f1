//! The scrape manager: one [`ScrapePool`] per job, fed by that job's
//! discovery (static groups once, each `file_sd_configs` entry by its own
//! watcher), and reconciled with a new configuration on reload.
//!
//! A reload keeps a job whose scrape config is unchanged exactly as it is
//! (its loops, caches and schedules keep running, so its series have no gap
//! and no staleness markers), reloads a job whose config changed in place
//! (Prometheus's `scrapePool.reload`: the loops of targets that still exist
//! restart with the new settings and carry on their series without
//! staleness markers; only targets that vanished get markers), stops the
//! jobs that are gone (their series are marked stale) and starts new ones.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use ember_config::{Config, ConfigError, ScrapeConfig};
use ember_model::{Appendable, Labels};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::discovery::{static_groups, FileDiscovery, TargetGroup};
use crate::intervals::IntervalSummaries;
use crate::pool::ScrapePool;
use crate::scrape_loop::{Health, MetadataSnapshot};

/// How often file_sd files are checked for changes (Prometheus watches
/// them with inotify; polling keeps this portable).
const FILE_SD_POLL: Duration = Duration::from_secs(1);

/// One active target as the targets API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveTargetInfo {
    pub discovered_labels: Labels,
    pub labels: Labels,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub last_error: String,
    pub last_scrape: Option<SystemTime>,
    pub last_scrape_duration: Duration,
    pub health: Health,
    pub scrape_interval: Duration,
    pub scrape_timeout: Duration,
}

/// One target dropped by relabelling.
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedTargetInfo {
    pub discovered_labels: Labels,
    pub scrape_pool: String,
}

/// Per-job counts for the `prometheus_sd_*` and `prometheus_target_*`
/// metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Targets discovered before relabelling (active and dropped).
    pub discovered: usize,
    /// Active targets (running loops).
    pub active: usize,
}

/// The target groups of each provider: 0 is static_configs, i+1 is
/// file_sd_configs[i].
type Groups = BTreeMap<usize, Vec<TargetGroup>>;

struct Job {
    cfg: Arc<ScrapeConfig>,
    pool: Arc<Mutex<ScrapePool>>,
    /// The discovery watchers and the task that feeds the pool.
    tasks: Vec<JoinHandle<()>>,
    /// What discovery last reported, so a reload can start from it.
    groups: Arc<Mutex<Groups>>,
}

/// One job's metadata view: each active target's labels and metadata.
pub type TargetMetadata = (Labels, MetadataSnapshot);

/// Whether a loop's series cache stays valid under a config change:
/// Prometheus's `reusableCache` (only the interval, timeout, sample
/// limit and HTTP client settings may differ).
fn reusable_cache(a: &ScrapeConfig, b: &ScrapeConfig) -> bool {
    fn zero(c: &ScrapeConfig) -> ScrapeConfig {
        let mut z = ScrapeConfig {
            scrape_interval: Default::default(),
            scrape_timeout: Default::default(),
            sample_limit: 0,
            pos: Default::default(),
            ..c.clone()
        };
        z.set_http_client(ember_config::HttpClientConfig::default());
        z
    }
    zero(a) == zero(b)
}

/// Configs equal but for where they sit in the file.
fn same_config(a: &ScrapeConfig, b: &ScrapeConfig) -> bool {
    ScrapeConfig { pos: b.pos, ..a.clone() } == *b
}

impl Job {
    fn start(cfg: Arc<ScrapeConfig>, storage: Arc<dyn Appendable>, intervals: Arc<IntervalSummaries>) -> Job {
        let pool = ScrapePool::new(cfg.clone(), storage).with_interval_summaries(intervals);
        Job::launch(cfg, Arc::new(Mutex::new(pool)), Groups::new())
    }

    /// Starts discovery feeding `pool` and syncs it once at once, from
    /// the static groups and the file groups in `seed` (a reload's last
    /// known file_sd groups, so those targets do not blink out).
    fn launch(cfg: Arc<ScrapeConfig>, pool: Arc<Mutex<ScrapePool>>, seed: Groups) -> Job {
        let statics = static_groups(&cfg.static_configs);
        let mut tasks = Vec::new();
        let mut by_provider = seed;
        by_provider.insert(0, statics);
        let groups = Arc::new(Mutex::new(by_provider));
        if cfg.file_sd_configs.is_empty() {
            lock(&pool).sync(&flatten(&lock(&groups)));
        } else {
            let (tx, mut rx) = mpsc::channel::<(usize, Vec<TargetGroup>)>(16);
            for (i, fc) in cfg.file_sd_configs.iter().enumerate() {
                let (ftx, mut frx) = mpsc::channel::<Vec<TargetGroup>>(4);
                tasks.push(tokio::spawn(FileDiscovery::new(fc).run(FILE_SD_POLL, ftx)));
                let tx = tx.clone();
                tasks.push(tokio::spawn(async move {
                    while let Some(g) = frx.recv().await {
                        if tx.send((i + 1, g)).await.is_err() {
                            return;
                        }
                    }
                }));
            }
            drop(tx);
            let feed = pool.clone();
            // Static targets start at once, without waiting for the files.
            lock(&feed).sync(&flatten(&lock(&groups)));
            let shared = groups.clone();
            tasks.push(tokio::spawn(async move {
                while let Some((i, found)) = rx.recv().await {
                    let all = {
                        let mut g = lock(&shared);
                        // Empty groups only say "this source is now empty".
                        g.insert(i, found.into_iter().filter(|g| !g.targets.is_empty()).collect());
                        flatten(&g)
                    };
                    lock(&feed).sync(&all);
                }
            }));
        }
        Job { cfg, pool, tasks, groups }
    }

    /// Reloads the job in place with `cfg`: discovery restarts, loops of
    /// targets that remain continue with the new settings.
    async fn reload(self, cfg: Arc<ScrapeConfig>) -> Job {
        for t in &self.tasks {
            t.abort();
        }
        let handoff = lock(&self.pool).begin_reload();
        let states = handoff.wait().await;
        lock(&self.pool).reconfigure(cfg.clone(), states, reusable_cache(&self.cfg, &cfg));
        // File groups are still valid when the file_sd configs are.
        let seed: Groups = if self.cfg.file_sd_configs == cfg.file_sd_configs {
            lock(&self.groups).iter().filter(|(i, _)| **i > 0).map(|(i, g)| (*i, g.clone())).collect()
        } else {
            Groups::new()
        };
        let job = Job::launch(cfg, self.pool, seed);
        lock(&job.pool).finish_reload();
        job
    }

    /// Stops discovery and the loops; the loops mark their series stale.
    async fn stop(self) {
        for t in &self.tasks {
            t.abort();
        }
        let pool = take_pool(&self.pool, &self.cfg);
        pool.stop().await;
    }

    /// Stops discovery and the loops without staleness markers (shutdown).
    fn abort(self) {
        for t in &self.tasks {
            t.abort();
        }
        take_pool(&self.pool, &self.cfg).abort();
    }
}

fn take_pool(pool: &Mutex<ScrapePool>, cfg: &Arc<ScrapeConfig>) -> ScrapePool {
    let mut g = lock(pool);
    let empty = ScrapePool::new(cfg.clone(), g.storage()).with_interval_summaries(g.interval_summaries());
    std::mem::replace(&mut *g, empty)
}

fn flatten(m: &BTreeMap<usize, Vec<TargetGroup>>) -> Vec<TargetGroup> {
    m.values().flatten().cloned().collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the pool usable; keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// All scrape jobs. Must be used inside a tokio runtime.
pub struct Manager {
    storage: Arc<dyn Appendable>,
    jobs: Mutex<BTreeMap<String, Job>>,
    intervals: Arc<IntervalSummaries>,
    /// Serialises `apply_config` (a reload awaits loops between locks).
    applying: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").field("jobs", &lock(&self.jobs).keys().collect::<Vec<_>>()).finish()
    }
}

/// What a reload did, per job name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplySummary {
    pub kept: Vec<String>,
    /// Jobs whose config changed, reloaded in place.
    pub restarted: Vec<String>,
    pub started: Vec<String>,
    pub stopped: Vec<String>,
}

impl Manager {
    pub fn new(storage: Arc<dyn Appendable>) -> Manager {
        Manager {
            storage,
            jobs: Mutex::new(BTreeMap::new()),
            intervals: Arc::new(IntervalSummaries::new()),
            applying: tokio::sync::Mutex::new(()),
        }
    }

    /// `prometheus_target_interval_length_seconds` of every loop.
    pub fn interval_summaries(&self) -> &IntervalSummaries {
        &self.intervals
    }

    /// Brings the running jobs in line with `cfg`. The config's scrape
    /// configs (with `scrape_config_files`) are resolved first: if that
    /// fails nothing changes.
    pub async fn apply_config(&self, cfg: &Config) -> Result<ApplySummary, ConfigError> {
        let wanted: Vec<ScrapeConfig> = cfg.all_scrape_configs()?;
        let _applying = self.applying.lock().await;
        let mut summary = ApplySummary::default();
        let mut to_stop = Vec::new();
        let mut to_reload = Vec::new();
        {
            let mut jobs = lock(&self.jobs);
            let mut wanted_map: HashMap<String, ScrapeConfig> =
                wanted.into_iter().map(|sc| (sc.job_name.clone(), sc)).collect();
            let names: Vec<String> = jobs.keys().cloned().collect();
            for name in names {
                match wanted_map.remove(&name) {
                    Some(sc) if jobs.get(&name).is_some_and(|j| same_config(&j.cfg, &sc)) => {
                        summary.kept.push(name)
                    }
                    Some(sc) => {
                        if let Some(old) = jobs.remove(&name) {
                            to_reload.push((name.clone(), old, sc));
                        }
                        summary.restarted.push(name);
                    }
                    None => {
                        if let Some(old) = jobs.remove(&name) {
                            to_stop.push(old);
                        }
                        summary.stopped.push(name);
                    }
                }
            }
            for (name, sc) in wanted_map {
                let job = Job::start(Arc::new(sc), self.storage.clone(), self.intervals.clone());
                jobs.insert(name.clone(), job);
                summary.started.push(name);
            }
        }
        // Reloaded jobs are out of the map while their loops hand over
        // (at most one scrape in flight each).
        for (name, old, sc) in to_reload {
            let job = old.reload(Arc::new(sc)).await;
            lock(&self.jobs).insert(name, job);
        }
        for j in to_stop {
            j.stop().await;
        }
        summary.started.sort();
        Ok(summary)
    }

    /// Stops every job without writing staleness markers: like Prometheus,
    /// a shutdown is not the end of the targets' series.
    pub fn shutdown(&self) {
        let jobs = std::mem::take(&mut *lock(&self.jobs));
        for (_, j) in jobs {
            j.abort();
        }
    }

    /// Active targets of every job (or only `pool`), by job then URL.
    pub fn active_targets(&self, pool: Option<&str>) -> Vec<ActiveTargetInfo> {
        let jobs = lock(&self.jobs);
        let mut out = Vec::new();
        for (name, job) in jobs.iter() {
            if pool.is_some_and(|p| p != name) {
                continue;
            }
            let p = lock(&job.pool);
            for (t, h) in p.active_targets() {
                let (interval, timeout) = t.interval_and_timeout();
                out.push(ActiveTargetInfo {
                    discovered_labels: t.discovered_labels().clone(),
                    labels: t.public_labels(),
                    scrape_pool: name.clone(),
                    scrape_url: t.url(),
                    last_error: h.last_error,
                    last_scrape: h.last_scrape,
                    last_scrape_duration: h.last_duration,
                    health: h.health,
                    scrape_interval: interval,
                    scrape_timeout: timeout,
                });
            }
        }
        out
    }

    /// Dropped targets of every job (or only `pool`).
    pub fn dropped_targets(&self, pool: Option<&str>) -> Vec<DroppedTargetInfo> {
        let jobs = lock(&self.jobs);
        let mut out = Vec::new();
        for (name, job) in jobs.iter() {
            if pool.is_some_and(|p| p != name) {
                continue;
            }
            let p = lock(&job.pool);
            let (dropped, _) = p.dropped_targets();
            out.extend(dropped.iter().map(|t| DroppedTargetInfo {
                discovered_labels: t.discovered_labels().clone(),
                scrape_pool: name.clone(),
            }));
        }
        out
    }

    /// Each active target's public labels and the metadata of its last
    /// good scrape, by job then URL.
    pub fn target_metadata(&self) -> Vec<TargetMetadata> {
        let jobs = lock(&self.jobs);
        let mut out = Vec::new();
        for job in jobs.values() {
            let p = lock(&job.pool);
            out.extend(p.target_metadata().into_iter().map(|(t, m)| (t.public_labels(), m)));
        }
        out
    }

    /// Job names, sorted.
    pub fn pools(&self) -> Vec<String> {
        lock(&self.jobs).keys().cloned().collect()
    }

    /// Target counts per job.
    pub fn stats(&self) -> BTreeMap<String, JobStats> {
        lock(&self.jobs)
            .iter()
            .map(|(name, job)| {
                let p = lock(&job.pool);
                let active = p.active_targets().len();
                let (_, dropped_total) = p.dropped_targets();
                (name.clone(), JobStats { discovered: active + dropped_total, active })
            })
            .collect()
    }
}
