//! A scrape pool: the running loops of one scrape config, kept in step
//! with its discovered targets (Prometheus's `scrapePool.Sync`), and
//! reloaded in place when the config changes (`scrapePool.reload`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ember_config::ScrapeConfig;
use ember_model::{Appendable, Labels, LabelsBuilder};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::discovery::TargetGroup;
use crate::intervals::IntervalSummaries;
use crate::scrape_loop::{LoopState, MetadataSnapshot, ScrapeLoop, TargetHealth};
use crate::targets::{build_targets, Target};

type Key = (Labels, String);

#[derive(Debug)]
struct Running {
    target: Target,
    health: Arc<Mutex<TargetHealth>>,
    metadata: Arc<Mutex<MetadataSnapshot>>,
    stale_on_stop: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: JoinHandle<LoopState>,
}

/// A target's identity across a reload: its labels and URL, but not the
/// interval and timeout labels, so a target whose job only changed its
/// interval carries on rather than ending.
fn reload_key(t: &Target) -> Key {
    let mut lb = LabelsBuilder::from_labels(t.labels());
    lb.retain(|n, _| n != "__scrape_interval__" && n != "__scrape_timeout__");
    (lb.build(), t.url())
}

/// The loops of a pool stopped for an in-place reload, still finishing.
#[derive(Debug)]
pub struct Handoff {
    loops: Vec<(Key, JoinHandle<LoopState>)>,
}

impl Handoff {
    /// Waits for the loops to stop (a scrape in flight completes first)
    /// and collects their state.
    pub async fn wait(self) -> HashMap<Key, LoopState> {
        let mut out = HashMap::new();
        for (k, task) in self.loops {
            // A panicked loop has no state to pass on.
            if let Ok(st) = task.await {
                out.insert(k, st);
            }
        }
        out
    }
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
    intervals: Arc<IntervalSummaries>,
    /// States of the loops stopped by a reload, by [`reload_key`], taken
    /// by the first sync after it.
    handoff: HashMap<Key, LoopState>,
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
            intervals: Arc::new(IntervalSummaries::new()),
            handoff: HashMap::new(),
        }
    }

    /// Loops record their scrape intervals into `s` (the manager's).
    pub fn with_interval_summaries(mut self, s: Arc<IntervalSummaries>) -> ScrapePool {
        self.intervals = s;
        self
    }

    pub fn interval_summaries(&self) -> Arc<IntervalSummaries> {
        self.intervals.clone()
    }

    /// First step of an in-place reload: every loop is told to stop
    /// without staleness markers. Await the result, then pass it to
    /// [`ScrapePool::reconfigure`].
    pub fn begin_reload(&mut self) -> Handoff {
        let loops = self
            .loops
            .drain()
            .map(|(_, r)| {
                r.stale_on_stop.store(false, Ordering::Release);
                let _ = r.stop.send(true);
                (reload_key(&r.target), r.task)
            })
            .collect();
        Handoff { loops }
    }

    /// Second step: the new config, and the stopped loops' states for the
    /// next [`ScrapePool::sync`] to resume. `reuse_cache` false (the
    /// labels a page produces may differ now) drops the caches' series
    /// mappings but keeps what the last scrape wrote, for staleness.
    pub fn reconfigure(
        &mut self,
        cfg: Arc<ScrapeConfig>,
        mut states: HashMap<Key, LoopState>,
        reuse_cache: bool,
    ) {
        if !reuse_cache {
            for st in states.values_mut() {
                st.cache.forget_series_mapping();
            }
        }
        self.cfg = cfg;
        self.handoff = states;
    }

    /// Last step: targets of the old config that the new one no longer
    /// has end here, with staleness markers for what they wrote.
    pub fn finish_reload(&mut self) {
        for ((labels, _), st) in std::mem::take(&mut self.handoff) {
            let public = {
                let mut lb = LabelsBuilder::from_labels(&labels);
                lb.retain(|n, _| !n.starts_with("__"));
                lb.build()
            };
            let mut cache = st.cache;
            crate::scrape_loop::write_end_of_run_staleness(self.storage.as_ref(), &mut cache, &public);
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
        let mut wanted: HashMap<Key, Target> =
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
            let sl = match self.handoff.remove(&reload_key(&t)) {
                Some(st) => ScrapeLoop::resume(self.cfg.clone(), t.clone(), self.storage.clone(), st),
                None => ScrapeLoop::new(self.cfg.clone(), t.clone(), self.storage.clone()),
            };
            let sl = sl.with_interval_summaries(self.intervals.clone());
            let (health, metadata, stale_on_stop) = (sl.health(), sl.metadata(), sl.stale_on_stop());
            let (stop, rx) = watch::channel(false);
            let task = tokio::spawn(sl.run(rx));
            self.loops.insert(k, Running { target: t, health, metadata, stale_on_stop, stop, task });
        }
    }

    fn stop_all(&mut self) {
        for (_, r) in self.loops.drain() {
            let _ = r.stop.send(true);
        }
    }

    /// Stops every loop and waits for them to finish their stale markers.
    pub async fn stop(mut self) {
        let tasks: Vec<JoinHandle<LoopState>> = self
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

    /// Active targets with the metadata of their last good scrape,
    /// ordered by scrape URL.
    pub fn target_metadata(&self) -> Vec<(Target, MetadataSnapshot)> {
        let mut v: Vec<(Target, MetadataSnapshot)> = self
            .loops
            .values()
            .map(|r| (r.target.clone(), r.metadata.lock().unwrap_or_else(|e| e.into_inner()).clone()))
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
