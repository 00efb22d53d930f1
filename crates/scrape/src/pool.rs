//! A scrape pool: the running loops of one scrape config, kept in step
//! with its discovered targets (Prometheus's `scrapePool.Sync`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ember_config::ScrapeConfig;
use ember_model::Appendable;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::discovery::TargetGroup;
use crate::scrape_loop::{ScrapeLoop, TargetHealth};
use crate::targets::{build_targets, Target};

#[derive(Debug)]
struct Running {
    target: Target,
    health: Arc<Mutex<TargetHealth>>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The loops of one job. Must be used inside a tokio runtime.
pub struct ScrapePool {
    cfg: Arc<ScrapeConfig>,
    storage: Arc<dyn Appendable>,
    /// Running loops by target identity (labels and URL).
    loops: HashMap<(ember_model::Labels, String), Running>,
    dropped: Vec<Target>,
    dropped_total: usize,
    /// Targets that could not be built or started, and the target limit.
    errors: Vec<String>,
}

impl std::fmt::Debug for ScrapePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapePool")
            .field("job", &self.cfg.job_name)
            .field("targets", &self.loops.len())
            .finish()
    }
}

impl ScrapePool {
    pub fn new(cfg: Arc<ScrapeConfig>, storage: Arc<dyn Appendable>) -> ScrapePool {
        ScrapePool {
            cfg,
            storage,
            loops: HashMap::new(),
            dropped: Vec::new(),
            dropped_total: 0,
            errors: Vec::new(),
        }
    }

    pub fn config(&self) -> &ScrapeConfig {
        &self.cfg
    }

    /// The storage the loops append to.
    pub fn storage(&self) -> Arc<dyn Appendable> {
        self.storage.clone()
    }

    /// Rebuilds the target list from `groups`: loops of targets that are
    /// still there keep running untouched; new targets get a loop; loops of
    /// vanished targets stop (and mark their series stale).
    pub fn sync(&mut self, groups: &[TargetGroup]) {
        let set = build_targets(&self.cfg, groups);
        self.errors = set.errors;
        self.dropped = set.dropped;
        self.dropped_total = set.dropped_total;
        let limit = self.cfg.target_limit as usize;
        if limit > 0 && set.active.len() > limit {
            // Prometheus fails every scrape of the pool; here none runs.
            self.errors.push(format!(
                "target_limit exceeded (number of targets: {}, limit: {limit})",
                set.active.len()
            ));
            self.stop_all();
            return;
        }
        let mut wanted: HashMap<(ember_model::Labels, String), Target> =
            set.active.into_iter().map(|t| ((t.labels().clone(), t.url()), t)).collect();
        let gone: Vec<_> = self.loops.keys().filter(|k| !wanted.contains_key(*k)).cloned().collect();
        for k in gone {
            if let Some(r) = self.loops.remove(&k) {
                // The loop marks its series stale when it sees the signal.
                let _ = r.stop.send(true);
            }
        }
        for (k, t) in wanted.drain() {
            if self.loops.contains_key(&k) {
                continue;
            }
            match ScrapeLoop::new(self.cfg.clone(), t.clone(), self.storage.clone()) {
                Ok(sl) => {
                    let health = sl.health();
                    let (stop, rx) = watch::channel(false);
                    let task = tokio::spawn(sl.run(rx));
                    self.loops.insert(k, Running { target: t, health, stop, task });
                }
                Err(e) => self.errors.push(format!("{}: {e}", t.url())),
            }
        }
    }

    fn stop_all(&mut self) {
        for (_, r) in self.loops.drain() {
            let _ = r.stop.send(true);
        }
    }

    /// Stops every loop and waits for them to finish their stale markers.
    pub async fn stop(mut self) {
        let tasks: Vec<JoinHandle<()>> = self
            .loops
            .drain()
            .map(|(_, r)| {
                let _ = r.stop.send(true);
                r.task
            })
            .collect();
        for t in tasks {
            // A panicked loop has nothing left to clean up.
            let _ = t.await;
        }
    }

    /// Stops every loop at once, without staleness markers (shutdown: the
    /// targets' series are not ending, Prometheus writes no markers then).
    /// A scrape in flight is dropped before its commit.
    pub fn abort(mut self) {
        for (_, r) in self.loops.drain() {
            r.task.abort();
        }
    }

    /// Active targets with their health, ordered by scrape URL.
    pub fn active_targets(&self) -> Vec<(Target, TargetHealth)> {
        let mut v: Vec<(Target, TargetHealth)> = self
            .loops
            .values()
            .map(|r| (r.target.clone(), r.health.lock().unwrap_or_else(|e| e.into_inner()).clone()))
            .collect();
        v.sort_by_key(|(t, _)| t.url());
        v
    }

    /// Targets dropped by relabelling (up to `keep_dropped_targets`), and
    /// how many were dropped in all.
    pub fn dropped_targets(&self) -> (&[Target], usize) {
        (&self.dropped, self.dropped_total)
    }

    /// Problems of the last sync.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }
}
