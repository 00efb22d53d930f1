//! `/-/healthy`, `/-/ready`, `/-/quit`, `/metrics`.

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::AppState;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/healthy", get(healthy).head(healthy))
        .route("/-/ready", get(ready).head(ready))
        .route("/-/quit", post(quit).put(quit))
        .route("/-/reload", post(reload).put(reload))
        .route("/metrics", get(metrics))
}

async fn healthy() -> &'static str {
    "Prometheus Server is Healthy.\n"
}

async fn ready(State(s): State<AppState>) -> Response {
    if s.is_ready() {
        (StatusCode::OK, "Prometheus Server is Ready.\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response()
    }
}

async fn quit(State(s): State<AppState>, method: Method) -> Response {
    let _ = method;
    if !s.inner.lifecycle_enabled {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    }
    s.inner.shutdown.notify_waiters();
    (StatusCode::OK, "Requesting termination... Goodbye!").into_response()
}

async fn reload(State(s): State<AppState>) -> Response {
    if !s.inner.lifecycle_enabled {
        return (StatusCode::FORBIDDEN, "Lifecycle API is not enabled.").into_response();
    }
    let Some(f) = s.inner.reload.get().cloned() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    };
    match f().await {
        Ok(()) => StatusCode::OK.into_response(),
        // Prometheus's wording and status for a refused config.
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("failed to reload config: {e}\n")).into_response()
        }
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let mut out = String::with_capacity(16 * 1024);
    for src in &s.inner.metrics {
        src(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
