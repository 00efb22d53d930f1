//! `/api/v1/*`: the response envelope and the endpoints.
//!
//! Every answer has Prometheus's envelope: `{"status":"success","data":…}`
//! or `{"status":"error","errorType":…,"error":…}`, with `warnings` and
//! `infos` only when non-empty.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;

use crate::AppState;

mod admin;
mod json;
mod metadata;
pub mod params;
mod parse_query;
mod query;
mod series;
mod status;
mod targets;

pub use admin::AdminView;
pub use json::api_value;
pub use metadata::MetadataView;
pub use status::{HeadStats, RuntimeView, TsdbStat, TsdbStats, TsdbStatsView, WalReplay};
pub use targets::{ActiveTarget, DroppedTarget, TargetMetadata, TargetsView};

/// Prometheus's API error types and their HTTP status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::BadData => "bad_data",
            ErrorType::Execution => "execution",
            ErrorType::Timeout => "timeout",
            ErrorType::Canceled => "canceled",
            ErrorType::Internal => "internal",
            ErrorType::Unavailable => "unavailable",
            ErrorType::NotFound => "not_found",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout | ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            // 499 "client closed request", as Prometheus uses.
            ErrorType::Canceled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An API error as the envelope reports it.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> ApiError {
        ApiError { kind, message: message.into() }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: &'static str,
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody { status: "error", error_type: self.kind.as_str(), error: &self.message };
        (self.kind.status(), Json(body)).into_response()
    }
}

#[derive(Serialize)]
struct SuccessBody<T: Serialize> {
    status: &'static str,
    data: T,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    infos: Vec<String>,
}

/// A successful answer with optional warnings and infos.
pub fn success<T: Serialize>(data: T, warnings: Vec<String>, infos: Vec<String>) -> Response {
    Json(SuccessBody { status: "success", data, warnings, infos }).into_response()
}

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/query", get(query::query).post(query::query))
        .route("/query_range", get(query::query_range).post(query::query_range))
        .route("/format_query", get(query::format_query).post(query::format_query))
        .route("/parse_query", get(parse_query::parse_query).post(parse_query::parse_query))
        .route("/series", get(series::series).post(series::series))
        .route("/labels", get(series::labels).post(series::labels))
        .route("/label/{name}/values", get(series::label_values))
        .route("/status/buildinfo", get(buildinfo))
        .route("/status/flags", get(flags))
        .route("/status/runtimeinfo", get(runtimeinfo))
        .route("/status/config", get(status::config))
        .route("/status/walreplay", get(status::walreplay))
        .route("/status/tsdb", get(status::tsdb))
        .route("/admin/tsdb/delete_series", post(admin::delete_series).put(admin::delete_series))
        .route("/admin/tsdb/clean_tombstones", post(admin::clean_tombstones).put(admin::clean_tombstones))
        .route("/admin/tsdb/snapshot", post(admin::snapshot).put(admin::snapshot))
        .route("/targets", get(targets::targets))
        .route("/targets/metadata", get(targets::target_metadata))
        .route("/metadata", get(metadata::metadata))
        .route("/rules", get(status::rules))
        .route("/alerts", get(status::alerts))
        .route("/alertmanagers", get(status::alertmanagers))
        .route("/query_exemplars", get(status::query_exemplars).post(status::query_exemplars))
}

/// Runs synchronous storage work on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

/// An `internal` error with `e`'s text.
pub(crate) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorType::Internal, e.to_string())
}

/// What a view the binary has not installed yet answers.
pub(crate) fn not_ready() -> ApiError {
    ApiError::new(ErrorType::Unavailable, "storage is not ready")
}

/// Answer for paths nobody serves.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorType::NotFound, "page not found")
}

async fn buildinfo(State(s): State<AppState>) -> Response {
    success(&s.inner.build, vec![], vec![])
}

async fn flags(State(s): State<AppState>) -> Response {
    success(&s.inner.flags, vec![], vec![])
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeInfo {
    start_time: String,
    #[serde(rename = "CWD")]
    cwd: String,
    reload_config_success: bool,
    last_config_time: String,
    corruption_count: u64,
    goroutine_count: usize,
    #[serde(rename = "GOMAXPROCS")]
    gomaxprocs: usize,
    #[serde(rename = "GOGC")]
    gogc: String,
    #[serde(rename = "GODEBUG")]
    godebug: String,
    storage_retention: String,
}

async fn runtimeinfo(State(s): State<AppState>) -> Response {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let retention = s.inner.flags.get("storage.tsdb.retention.time").cloned().unwrap_or_default();
    let rt = s.inner.runtime.get();
    let info = RuntimeInfo {
        start_time: ember_model::time::format_rfc3339(s.inner.start_time_ms),
        cwd: std::env::current_dir().map(|p| p.display().to_string()).unwrap_or_default(),
        reload_config_success: rt.is_none_or(|r| r.reload_success()),
        last_config_time: ember_model::time::format_rfc3339(
            rt.map(|r| r.last_config_time_ms()).unwrap_or(s.inner.start_time_ms),
        ),
        corruption_count: 0,
        goroutine_count: 0,
        gomaxprocs: threads,
        gogc: String::new(),
        godebug: String::new(),
        storage_retention: retention,
    };
    success(info, vec![], vec![])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{router, Options};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get_json(app: Router, uri: &str) -> (StatusCode, serde_json::Value) {
        let resp = app.oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn app() -> Router {
        let mut flags = std::collections::BTreeMap::new();
        flags.insert("query.timeout".to_owned(), "2m".to_owned());
        router(AppState::new(Options { flags, ..Default::default() }, None, vec![]))
    }

    #[tokio::test]
    async fn buildinfo_has_no_features_key() {
        let (st, v) = get_json(app(), "/api/v1/status/buildinfo").await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["status"], "success");
        assert!(v["data"]["version"].is_string());
        assert!(v["data"].get("features").is_none(), "Grafana treats a features key as Mimir/Cortex");
        assert!(v.get("warnings").is_none());
    }

    #[tokio::test]
    async fn flags_are_reported() {
        let (_, v) = get_json(app(), "/api/v1/status/flags").await;
        assert_eq!(v["data"]["query.timeout"], "2m");
    }

    #[tokio::test]
    async fn unknown_path_is_json_404() {
        let (st, v) = get_json(app(), "/api/v1/nope").await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "not_found");
    }

    #[test]
    fn error_codes() {
        assert_eq!(ErrorType::BadData.status(), 400);
        assert_eq!(ErrorType::Execution.status(), 422);
        assert_eq!(ErrorType::Timeout.status(), 503);
        assert_eq!(ErrorType::Canceled.status().as_u16(), 499);
    }
}
