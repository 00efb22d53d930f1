//! The ember binary: flags, logging, wiring of the subsystems, signals.

mod check;
mod flags;
mod logging;
mod reload;

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use flags::{CheckCommand, Command, Flags};

/// ember's version, shown by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let flags = Flags::parse();
    logging::init(&flags.log_level, &flags.log_format);
    if let Some(cmd) = &flags.command {
        return run_command(cmd);
    }
    // A bad config at start is fatal (exit 2, as Prometheus).
    let config = match ember_config::load_file(&flags.config_file)
        .and_then(|c| c.all_scrape_configs().map(|_| c))
    {
        Ok(c) => c,
        Err(e) => {
            let abs = std::path::absolute(&flags.config_file).unwrap_or_else(|_| flags.config_file.clone());
            tracing::error!(
                file = %abs.display(),
                err = %e,
                "Error loading config (--config.file={})",
                flags.config_file.display()
            );
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("ember").build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(err = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(serve(flags, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(err = %e, "fatal error");
            ExitCode::FAILURE
        }
    }
}

fn run_command(cmd: &Command) -> ExitCode {
    match cmd {
        Command::Check(CheckCommand::Config { files }) => check::check_config(files),
    }
}

async fn serve(flags: Flags, config: ember_config::Config) -> Result<(), String> {
    let cors = ember_web::CorsOrigin::new(&flags.web_cors_origin)
        .map_err(|e| format!("could not compile CORS regex string {:?}: {e}", flags.web_cors_origin))?;
    tracing::info!(version = VERSION, "Starting ember");
    // Metrics sources are registered before the storage exists; the TSDB's
    // are filled in once it is open.
    let tsdb_metrics: Arc<std::sync::OnceLock<Arc<ember_tsdb::TsdbMetrics>>> = Arc::default();
    let tsdb_metrics_src = tsdb_metrics.clone();
    let reloader: Arc<std::sync::OnceLock<Arc<reload::Reloader>>> = Arc::default();
    let reloader_src = reloader.clone();
    let state = ember_web::AppState::new(
        ember_web::Options {
            build: None,
            flags: flags.as_map(),
            enable_lifecycle: flags.web_enable_lifecycle,
            enable_remote_write_receiver: flags.web_enable_remote_write_receiver,
            engine: ember_promql::engine::EngineOptions {
                lookback_delta: flags.query_lookback_delta.as_millis(),
                max_samples: flags.query_max_samples,
                timeout: Some(flags.query_timeout.as_std()),
                ..Default::default()
            },
            query_max_concurrency: flags.query_max_concurrency,
            cors_origin: Some(cors),
            enable_admin_api: flags.web_enable_admin_api,
        },
        None,
        vec![
            Arc::new(process_metrics),
            Arc::new(move |out: &mut String| {
                if let Some(m) = tsdb_metrics_src.get() {
                    out.push_str(&m.render());
                }
            }),
            Arc::new(move |out: &mut String| {
                if let Some(r) = reloader_src.get() {
                    r.render_metrics(out);
                }
            }),
        ],
    );
    let listener = tokio::net::TcpListener::bind(&flags.web_listen_address)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", flags.web_listen_address))?;
    tracing::info!(address = %flags.web_listen_address, "Listening on");
    let app = ember_web::router(state.clone());
    let quit_state = state.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    // The web server starts first so /-/healthy answers during WAL replay;
    // /-/ready turns 200 only once the storage is open.
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = server_stop.wait_for(|stop| *stop).await;
            })
            .await
    });

    let db_dir = flags.storage_tsdb_path.clone();
    tracing::info!(path = %db_dir.display(), "Opening storage");
    let started = std::time::Instant::now();
    let db_opts = ember_tsdb::DbOptions {
        min_block_duration: flags.storage_tsdb_min_block_duration.as_millis(),
        max_block_duration: flags.storage_tsdb_max_block_duration.map(|d| d.as_millis()),
        retention_time: flags.retention_time().map(|d| d.as_millis()),
        retention_size: flags.storage_tsdb_retention_size,
        no_lockfile: flags.storage_tsdb_no_lockfile,
        ..ember_tsdb::DbOptions::default()
    };
    let db = tokio::task::spawn_blocking(move || ember_tsdb::Db::open(&db_dir, db_opts))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("opening storage failed: {e}"))?;
    let replay = db.replay_stats().clone();
    tracing::info!(
        duration = ?started.elapsed(),
        segments = replay.segments,
        series = replay.series,
        samples = replay.samples,
        "TSDB started"
    );
    let _ = tsdb_metrics.set(db.metrics().clone());
    let db = Arc::new(db);
    state.set_storage(db.clone());
    state.set_metadata(Arc::new(HeadMetadata(db.clone())));
    state.set_admin(Arc::new(DbAdmin(db.clone())));
    state.set_tsdb_stats(Arc::new(DbAdmin(db.clone())));
    let segments = replay.segments as u64;
    state.set_wal_replay(ember_web::api::WalReplay { min: 0, max: segments, current: segments });

    // Scraping starts once the storage can take samples.
    let manager = Arc::new(ember_scrape::Manager::new(db.clone()));
    let rl = reload::Reloader::start(flags.config_file.clone(), config, manager.clone()).await?;
    let _ = reloader.set(rl.clone());
    state.set_targets(Arc::new(reload::ManagerTargets { manager: manager.clone(), hostname: hostname() }));
    state.set_runtime(rl.clone());
    let web_rl = rl.clone();
    state.set_reload(Arc::new(move || {
        let r = web_rl.clone();
        Box::pin(async move { r.reload().await })
    }));
    let hup = tokio::spawn(reload_on_sighup(rl.clone(), stop_rx.clone()));
    state.set_ready();
    tracing::info!("Server is ready to receive web requests.");

    // The WAL is fsynced on a timer (its sync policy), not per commit.
    let sync_db = db.clone();
    let mut sync_stop = stop_rx.clone();
    let syncer = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let d = sync_db.clone();
                    if let Ok(Err(e)) = tokio::task::spawn_blocking(move || d.sync()).await {
                        tracing::error!(err = %e, "WAL fsync failed");
                    }
                }
                _ = sync_stop.changed() => break,
            }
        }
    });

    // Compaction and retention run every minute, as Prometheus's.
    let compact_db = db.clone();
    let mut compact_stop = stop_rx.clone();
    let compactor = tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let d = compact_db.clone();
                    match tokio::task::spawn_blocking(move || d.compact()).await {
                        Ok(Err(e)) => tracing::error!(err = %e, "compaction failed"),
                        Err(e) => tracing::error!(err = %e, "compaction task failed"),
                        Ok(Ok(_)) => {}
                    }
                }
                _ = compact_stop.changed() => break,
            }
        }
    });

    tokio::select! {
        _ = shutdown_signal() => {}
        _ = quit_state.quit_requested() => tracing::warn!("Received termination request via web service, exiting gracefully..."),
    }
    let _ = stop_tx.send(true);
    // No staleness markers on shutdown, as Prometheus: the series resume
    // after a restart.
    manager.shutdown();
    let _ = hup.await;
    let _ = syncer.await;
    let _ = compactor.await;
    match server.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(err = %e, "web server failed"),
        Err(e) => tracing::error!(err = %e, "web server task failed"),
    }
    // Everything appended so far reaches the disk before we exit.
    let d = db.clone();
    match tokio::task::spawn_blocking(move || d.sync()).await {
        Ok(Ok(())) => tracing::info!("TSDB closed"),
        Ok(Err(e)) => tracing::error!(err = %e, "final WAL fsync failed"),
        Err(e) => tracing::error!(err = %e, "final WAL fsync failed"),
    }
    tracing::info!("See you next time!");
    Ok(())
}

/// `/api/v1/metadata` from the metadata the TSDB recorded.
struct HeadMetadata(Arc<ember_tsdb::Db>);

impl ember_web::api::MetadataView for HeadMetadata {
    fn metadata(&self) -> std::collections::BTreeMap<String, Vec<ember_model::Metadata>> {
        self.0.head().all_metadata().into_iter().map(|(name, m)| (name, vec![m])).collect()
    }
}

/// The admin API and `/api/v1/status/tsdb` over the TSDB.
struct DbAdmin(Arc<ember_tsdb::Db>);

impl ember_web::api::AdminView for DbAdmin {
    fn delete_series(
        &self,
        mint: ember_model::Timestamp,
        maxt: ember_model::Timestamp,
        matchers: &[ember_model::Matcher],
    ) -> Result<(), String> {
        self.0.delete(mint, maxt, matchers).map(|_| ()).map_err(|e| e.to_string())
    }

    fn clean_tombstones(&self) -> Result<(), String> {
        self.0.clean_tombstones().map(|_| ()).map_err(|e| e.to_string())
    }

    /// `<storage.tsdb.path>/snapshots/<name>`, named as Prometheus names them.
    fn snapshot(&self, with_head: bool) -> Result<String, String> {
        let name = ember_tsdb::snapshot::snapshot_name(ember_model::sample::now_millis());
        let dir = self.0.dir().join("snapshots").join(&name);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create snapshot directory: {e}"))?;
        self.0.snapshot(&dir, with_head).map_err(|e| format!("create snapshot: {e}"))?;
        Ok(name)
    }
}

impl ember_web::api::TsdbStatsView for DbAdmin {
    fn tsdb_stats(&self, limit: usize) -> ember_web::api::TsdbStats {
        let s = self.0.head().stats(limit);
        let list = |v: Vec<(String, u64)>| {
            v.into_iter().map(|(name, value)| ember_web::api::TsdbStat { name, value }).collect()
        };
        ember_web::api::TsdbStats {
            head_stats: ember_web::api::HeadStats {
                num_series: s.num_series,
                num_label_pairs: s.num_label_pairs,
                chunk_count: s.chunk_count,
                min_time: s.min_time,
                max_time: s.max_time,
            },
            series_count_by_metric_name: list(s.series_count_by_metric_name),
            label_value_count_by_label_name: list(s.label_value_count_by_label_name),
            memory_in_bytes_by_label_name: list(s.memory_in_bytes_by_label_name),
            series_count_by_label_value_pair: list(s.series_count_by_label_value_pair),
        }
    }
}

/// Reloads the config on every SIGHUP until `stop` turns true.
async fn reload_on_sighup(rl: Arc<reload::Reloader>, mut stop: tokio::sync::watch::Receiver<bool>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::error!("cannot listen for SIGHUP");
            return;
        };
        loop {
            tokio::select! {
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    // A failed reload is logged by the reloader; the old config stays.
                    let _ = rl.reload().await;
                }
                _ = stop.changed() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = rl;
        let _ = stop.wait_for(|s| *s).await;
    }
}

/// This machine's host name (for the targets API's `globalUrl`).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        match (term, int) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => tracing::warn!(signal = "terminated", "Received an OS signal, exiting gracefully..."),
                    _ = i.recv() => tracing::warn!(signal = "interrupt", "Received an OS signal, exiting gracefully..."),
                }
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `process_*` metrics with Prometheus's names, read from /proc.
fn process_metrics(out: &mut String) {
    use std::fmt::Write;
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    // Fields after the command name (which may contain spaces) start after ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { return };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ is 100 on Linux.
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Indices are offset by 2 from stat(5)'s numbering (pid and comm removed).
    let cpu = (num(11) + num(12)) / ticks;
    let rss = num(21) * 4096.0;
    let vsz = num(20);
    let _ =
        writeln!(out, "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.");
    let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}");
    let _ = writeln!(out, "# HELP process_resident_memory_bytes Resident memory size in bytes.");
    let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes {rss}");
    let _ = writeln!(out, "# HELP process_virtual_memory_bytes Virtual memory size in bytes.");
    let _ = writeln!(out, "# TYPE process_virtual_memory_bytes gauge\nprocess_virtual_memory_bytes {vsz}");
    if let Ok(d) = std::fs::read_dir("/proc/self/fd") {
        let _ = writeln!(out, "# HELP process_open_fds Number of open file descriptors.");
        let _ = writeln!(out, "# TYPE process_open_fds gauge\nprocess_open_fds {}", d.count());
    }
}
