//! ember-web: the HTTP surface. Routes, JSON shapes and status codes are
//! Prometheus's, so that Grafana and other API clients cannot tell the
//! difference.

pub mod api;
pub use cors::CorsOrigin;
mod cors;
mod federate;
mod lifecycle;
mod remote_write;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use ember_model::Storage;

/// Build information reported by `/api/v1/status/buildinfo`.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BuildInfo {
    pub version: String,
    pub revision: String,
    pub branch: String,
    pub build_user: String,
    pub build_date: String,
    pub go_version: String,
}

/// Renders text-format metrics for `/metrics`; each subsystem registers
/// one.
pub type MetricsSource = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Everything the handlers need, shared by all requests.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    build: BuildInfo,
    flags: BTreeMap<String, String>,
    start_time_ms: i64,
    ready: AtomicBool,
    lifecycle_enabled: bool,
    metrics: Vec<MetricsSource>,
    shutdown: tokio::sync::Notify,
    /// Set once the TSDB has replayed its WAL; until then data endpoints
    /// answer 503 `unavailable`.
    storage: std::sync::OnceLock<Arc<dyn Storage>>,
    remote_write_receiver: bool,
    query: QueryConfig,
    cors: cors::CorsOrigin,
    /// Installed by the binary once the scrape manager runs.
    targets: std::sync::OnceLock<Arc<dyn api::TargetsView>>,
    runtime: std::sync::OnceLock<Arc<dyn api::RuntimeView>>,
    reload: std::sync::OnceLock<ReloadFn>,
    wal_replay: std::sync::OnceLock<api::WalReplay>,
    metadata: std::sync::OnceLock<Arc<dyn api::MetadataView>>,
    /// `--web.enable-admin-api`.
    admin_enabled: bool,
    admin: std::sync::OnceLock<Arc<dyn api::AdminView>>,
    tsdb_stats: std::sync::OnceLock<Arc<dyn api::TsdbStatsView>>,
}

/// Reloads the configuration (`/-/reload`); the error text is the answer
/// body of a failed reload.
pub type ReloadFn = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>> + Send + Sync,
>;

/// The query engine and its limits.
pub(crate) struct QueryConfig {
    pub(crate) engine: Arc<ember_promql::engine::Engine>,
    pub(crate) timeout: std::time::Duration,
    pub(crate) concurrency: tokio::sync::Semaphore,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// Options for building the server state.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub build: Option<BuildInfo>,
    pub flags: BTreeMap<String, String>,
    pub enable_lifecycle: bool,
    pub enable_remote_write_receiver: bool,
    /// Engine settings (`--query.max-samples`, `--query.timeout`,
    /// `--query.lookback-delta`, which federation uses too).
    pub engine: ember_promql::engine::EngineOptions,
    /// `--query.max-concurrency` (default 20).
    pub query_max_concurrency: usize,
    /// `--web.cors.origin`, compiled (default `.*`).
    pub cors_origin: Option<cors::CorsOrigin>,
    /// `--web.enable-admin-api`.
    pub enable_admin_api: bool,
}

impl AppState {
    pub fn new(opts: Options, storage: Option<Arc<dyn Storage>>, metrics: Vec<MetricsSource>) -> AppState {
        AppState {
            inner: Arc::new(Inner {
                build: opts.build.unwrap_or_else(default_build_info),
                flags: opts.flags,
                start_time_ms: ember_model::sample::now_millis(),
                ready: AtomicBool::new(false),
                lifecycle_enabled: opts.enable_lifecycle,
                metrics,
                shutdown: tokio::sync::Notify::new(),
                storage: storage.map(std::sync::OnceLock::from).unwrap_or_default(),
                remote_write_receiver: opts.enable_remote_write_receiver,
                cors: opts.cors_origin.clone().unwrap_or_default(),
                query: QueryConfig {
                    engine: Arc::new(ember_promql::engine::Engine::new(opts.engine)),
                    // `--query.timeout` lives in the engine options (default 2m).
                    timeout: opts.engine.timeout.unwrap_or(std::time::Duration::from_secs(120)),
                    concurrency: tokio::sync::Semaphore::new(opts.query_max_concurrency.max(1)),
                },
                targets: std::sync::OnceLock::new(),
                runtime: std::sync::OnceLock::new(),
                reload: std::sync::OnceLock::new(),
                wal_replay: std::sync::OnceLock::new(),
                metadata: std::sync::OnceLock::new(),
                admin_enabled: opts.enable_admin_api,
                admin: std::sync::OnceLock::new(),
                tsdb_stats: std::sync::OnceLock::new(),
            }),
        }
    }

    /// Installs the storage once it is open (WAL replayed). Later calls are
    /// ignored.
    pub fn set_storage(&self, storage: Arc<dyn Storage>) {
        let _ = self.inner.storage.set(storage);
    }

    /// The storage, or the API's `unavailable` error while it is opening.
    pub(crate) fn storage(&self) -> Result<Arc<dyn Storage>, api::ApiError> {
        self.inner.storage.get().cloned().ok_or_else(api::not_ready)
    }

    /// Installs the scrape targets view. Later calls are ignored.
    pub fn set_targets(&self, view: Arc<dyn api::TargetsView>) {
        let _ = self.inner.targets.set(view);
    }

    /// Installs the configuration state view. Later calls are ignored.
    pub fn set_runtime(&self, view: Arc<dyn api::RuntimeView>) {
        let _ = self.inner.runtime.set(view);
    }

    /// Installs the `/-/reload` action. Later calls are ignored.
    pub fn set_reload(&self, reload: ReloadFn) {
        let _ = self.inner.reload.set(reload);
    }

    /// Installs the metric metadata source. Later calls are ignored.
    pub fn set_metadata(&self, view: Arc<dyn api::MetadataView>) {
        let _ = self.inner.metadata.set(view);
    }

    /// Installs the admin operations (served only with
    /// `--web.enable-admin-api`). Later calls are ignored.
    pub fn set_admin(&self, view: Arc<dyn api::AdminView>) {
        let _ = self.inner.admin.set(view);
    }

    /// Installs the source of `/api/v1/status/tsdb`. Later calls are ignored.
    pub fn set_tsdb_stats(&self, view: Arc<dyn api::TsdbStatsView>) {
        let _ = self.inner.tsdb_stats.set(view);
    }

    /// Records the finished WAL replay. Later calls are ignored.
    pub fn set_wal_replay(&self, replay: api::WalReplay) {
        let _ = self.inner.wal_replay.set(replay);
    }

    /// Marks the server ready (`/-/ready` answers 200 from now on).
    pub fn set_ready(&self) {
        self.inner.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// Resolves when `/-/quit` was called.
    pub async fn quit_requested(&self) {
        self.inner.shutdown.notified().await
    }
}

fn default_build_info() -> BuildInfo {
    BuildInfo {
        // Clients (Grafana) compare `version` with Prometheus releases to
        // pick API features: report the Prometheus version whose API ember
        // serves, with ember's own version as semver build metadata.
        version: concat!("3.0.0+ember.", env!("CARGO_PKG_VERSION")).to_owned(),
        revision: String::new(),
        branch: String::new(),
        build_user: String::new(),
        build_date: String::new(),
        go_version: String::new(),
    }
}

/// The full router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(lifecycle::routes())
        // Remote write bodies up to 32 MiB (Prometheus's own bound on a
        // remote-write request); everything else (forms) up to 10 MiB, Go's
        // `ParseForm` limit. Larger bodies get 413 before being buffered.
        .route("/api/v1/write", post(remote_write::write).layer(DefaultBodyLimit::max(32 << 20)))
        .route("/federate", get(federate::federate))
        .nest("/api/v1", api::routes().layer(axum::middleware::from_fn_with_state(state.clone(), cors::cors)))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(10 << 20))
        // gzip when the client asks for it, as Prometheus's handlers do.
        .layer(tower_http::compression::CompressionLayer::new().gzip(true))
        .with_state(state)
}
