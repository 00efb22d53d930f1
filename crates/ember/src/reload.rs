//! Loading and reloading the configuration, and what the API and
//! `/metrics` show of it.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use ember_config::Config;
use ember_scrape::{Health, Manager};
use ember_web::api::{ActiveTarget, DroppedTarget, RuntimeView, TargetMetadata, TargetsView};

/// The running configuration and the scrape manager that applies it.
pub struct Reloader {
    path: PathBuf,
    manager: Arc<Manager>,
    current: Mutex<Arc<Config>>,
    success: AtomicBool,
    /// When the running config was loaded (ms).
    success_time_ms: AtomicI64,
    /// Serialises reloads (SIGHUP and /-/reload may race).
    gate: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// Applies the first configuration.
    pub async fn start(path: PathBuf, cfg: Config, manager: Arc<Manager>) -> Result<Arc<Reloader>, String> {
        manager.apply_config(&cfg).await.map_err(|e| e.to_string())?;
        Ok(Arc::new(Reloader {
            path,
            manager,
            current: Mutex::new(Arc::new(cfg)),
            success: AtomicBool::new(true),
            success_time_ms: AtomicI64::new(ember_model::sample::now_millis()),
            gate: tokio::sync::Mutex::new(()),
        }))
    }

    /// Re-reads the config file; a bad file is refused and the running
    /// configuration stays.
    pub async fn reload(&self) -> Result<(), String> {
        let _g = self.gate.lock().await;
        tracing::info!(filename = %self.path.display(), "Loading configuration file");
        let result = match ember_config::load_file(&self.path) {
            Ok(cfg) => match self.manager.apply_config(&cfg).await {
                Ok(s) => {
                    tracing::info!(
                        kept = s.kept.len(),
                        restarted = ?s.restarted,
                        started = ?s.started,
                        stopped = ?s.stopped,
                        "Scrape manager reloaded"
                    );
                    *self.current.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(cfg);
                    Ok(())
                }
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match &result {
            Ok(()) => {
                self.success.store(true, Ordering::Release);
                self.success_time_ms.store(ember_model::sample::now_millis(), Ordering::Release);
                tracing::info!(filename = %self.path.display(), "Completed loading of configuration file");
            }
            Err(e) => {
                self.success.store(false, Ordering::Release);
                tracing::error!(filename = %self.path.display(), err = %e, "Error reloading config");
            }
        }
        result.map_err(|e| {
            format!(
                "one or more errors occurred while applying the new configuration (--config.file={:?}): {e}",
                self.path.display().to_string()
            )
        })
    }

    /// `prometheus_config_*` and the scrape target metrics.
    pub fn render_metrics(&self, out: &mut String) {
        let ok = u8::from(self.success.load(Ordering::Acquire));
        let ts = self.success_time_ms.load(Ordering::Acquire) as f64 / 1000.0;
        let _ = writeln!(out, "# HELP prometheus_config_last_reload_successful Whether the last configuration reload attempt was successful.");
        let _ = writeln!(out, "# TYPE prometheus_config_last_reload_successful gauge\nprometheus_config_last_reload_successful {ok}");
        let _ = writeln!(out, "# HELP prometheus_config_last_reload_success_timestamp_seconds Timestamp of the last successful configuration reload.");
        let _ = writeln!(out, "# TYPE prometheus_config_last_reload_success_timestamp_seconds gauge\nprometheus_config_last_reload_success_timestamp_seconds {ts}");
        let stats = self.manager.stats();
        let _ =
            writeln!(out, "# HELP prometheus_sd_discovered_targets Current number of discovered targets.");
        let _ = writeln!(out, "# TYPE prometheus_sd_discovered_targets gauge");
        for (job, s) in &stats {
            let _ = writeln!(
                out,
                "prometheus_sd_discovered_targets{{config=\"{}\",name=\"scrape\"}} {}",
                escape(job),
                s.discovered
            );
        }
        let _ = writeln!(
            out,
            "# HELP prometheus_target_scrape_pool_targets Current number of targets in this scrape pool."
        );
        let _ = writeln!(out, "# TYPE prometheus_target_scrape_pool_targets gauge");
        for (job, s) in &stats {
            let _ = writeln!(
                out,
                "prometheus_target_scrape_pool_targets{{scrape_job=\"{}\"}} {}",
                escape(job),
                s.active
            );
        }
        self.manager.interval_summaries().render(out);
    }
}

/// Label value escaping of the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl RuntimeView for Reloader {
    fn config_yaml(&self) -> String {
        self.current.lock().unwrap_or_else(|e| e.into_inner()).to_yaml()
    }

    fn reload_success(&self) -> bool {
        self.success.load(Ordering::Acquire)
    }

    fn last_config_time_ms(&self) -> i64 {
        self.success_time_ms.load(Ordering::Acquire)
    }
}

/// The scrape manager seen through web's plain types.
pub struct ManagerTargets {
    pub manager: Arc<Manager>,
    /// This machine's name, for `globalUrl` (Prometheus puts its external
    /// host there for loopback targets).
    pub hostname: String,
}

fn label_map(l: &ember_model::Labels) -> BTreeMap<String, String> {
    l.iter().map(|l| (l.name.to_owned(), l.value.to_owned())).collect()
}

/// Go's `time.Time` text (RFC3339 with nanoseconds, trailing zeros cut).
fn format_time(t: Option<std::time::SystemTime>) -> String {
    let Some(d) = t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) else {
        return "0001-01-01T00:00:00Z".to_owned();
    };
    let base = ember_model::time::format_rfc3339(d.as_secs() as i64 * 1000);
    let nanos = d.subsec_nanos();
    if nanos == 0 {
        return base;
    }
    let frac = format!("{nanos:09}");
    let frac = frac.trim_end_matches('0');
    match base.strip_suffix('Z') {
        Some(b) => format!("{b}.{frac}Z"),
        None => base,
    }
}

impl ManagerTargets {
    fn global_url(&self, url: &str) -> String {
        for host in ["localhost", "127.0.0.1", "[::1]"] {
            let prefix_http = format!("://{host}:");
            if let Some(i) = url.find(&prefix_http) {
                return format!("{}://{}:{}", &url[..i], self.hostname, &url[i + prefix_http.len()..]);
            }
        }
        url.to_owned()
    }
}

impl TargetsView for ManagerTargets {
    fn active(&self, pool: Option<&str>) -> Vec<ActiveTarget> {
        self.manager
            .active_targets(pool)
            .into_iter()
            .map(|t| ActiveTarget {
                discovered_labels: label_map(&t.discovered_labels),
                labels: label_map(&t.labels),
                global_url: self.global_url(&t.scrape_url),
                scrape_pool: t.scrape_pool,
                scrape_url: t.scrape_url,
                last_error: t.last_error,
                last_scrape: format_time(t.last_scrape),
                last_scrape_duration: t.last_scrape_duration.as_secs_f64(),
                health: match t.health {
                    Health::Up => "up",
                    Health::Down => "down",
                    Health::Unknown => "unknown",
                }
                .to_owned(),
                scrape_interval: ember_model::time::Duration::from_millis(
                    t.scrape_interval.as_millis() as i64
                )
                .to_string(),
                scrape_timeout: ember_model::time::Duration::from_millis(t.scrape_timeout.as_millis() as i64)
                    .to_string(),
            })
            .collect()
    }

    fn dropped(&self, pool: Option<&str>) -> Vec<DroppedTarget> {
        self.manager
            .dropped_targets(pool)
            .into_iter()
            .map(|t| DroppedTarget {
                discovered_labels: label_map(&t.discovered_labels),
                scrape_pool: t.scrape_pool,
            })
            .collect()
    }

    fn target_metadata(&self) -> Vec<TargetMetadata> {
        self.manager
            .target_metadata()
            .into_iter()
            .map(|(labels, metadata)| TargetMetadata { labels, metadata })
            .collect()
    }

    fn dropped_counts(&self) -> BTreeMap<String, usize> {
        self.manager
            .stats()
            .into_iter()
            .map(|(job, s)| (job, s.discovered.saturating_sub(s.active)))
            .collect()
    }
}
