//! `/api/v1/status/config`, `/status/walreplay`, and the rule, alert,
//! Alertmanager and exemplar endpoints, which answer empty until those
//! subsystems exist (with Prometheus's shapes, so clients parse them).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::params::Params;
use super::{success, ApiError, ErrorType};
use crate::AppState;

/// The configuration state the binary shows the API.
pub trait RuntimeView: Send + Sync {
    /// The running configuration as YAML, secrets redacted.
    fn config_yaml(&self) -> String;
    /// Whether the last (re)load succeeded.
    fn reload_success(&self) -> bool;
    /// When the running configuration was loaded (ms since the epoch).
    fn last_config_time_ms(&self) -> i64;
}

/// WAL replay progress in segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WalReplay {
    pub min: u64,
    pub max: u64,
    pub current: u64,
}

#[derive(Serialize)]
struct ConfigBody {
    yaml: String,
}

pub(crate) async fn config(State(s): State<AppState>) -> Response {
    let yaml = s.inner.runtime.get().map(|r| r.config_yaml()).unwrap_or_default();
    success(ConfigBody { yaml }, vec![], vec![])
}

pub(crate) async fn walreplay(State(s): State<AppState>) -> Response {
    success(s.inner.wal_replay.get().copied().unwrap_or_default(), vec![], vec![])
}

#[derive(Serialize)]
struct Groups {
    groups: [(); 0],
}

#[derive(Serialize)]
struct Alerts {
    alerts: [(); 0],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Alertmanagers {
    active_alertmanagers: [(); 0],
    dropped_alertmanagers: [(); 0],
}

pub(crate) async fn rules() -> Response {
    success(Groups { groups: [] }, vec![], vec![])
}

pub(crate) async fn alerts() -> Response {
    success(Alerts { alerts: [] }, vec![], vec![])
}

pub(crate) async fn alertmanagers() -> Response {
    success(Alertmanagers { active_alertmanagers: [], dropped_alertmanagers: [] }, vec![], vec![])
}

/// No exemplar storage yet: a valid request gets an empty list; the
/// parameters are checked as Prometheus checks them.
pub(crate) async fn query_exemplars(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    p.time_range()?;
    let query = p.get("query").unwrap_or("");
    ember_promql::parser::parse(query).map_err(|e| ApiError::new(ErrorType::BadData, e.to_string()))?;
    Ok(success([(); 0], vec![], vec![]))
}

#[cfg(test)]
mod tests {
    use crate::{router, AppState, Options};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(st: AppState, uri: &str) -> (StatusCode, serde_json::Value) {
        let resp = router(st).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let code = resp.status();
        (code, serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap())
    }

    fn state() -> AppState {
        AppState::new(Options::default(), None, vec![])
    }

    #[tokio::test]
    async fn empty_rule_alert_and_alertmanager_shapes() {
        assert_eq!(get(state(), "/api/v1/rules").await.1["data"], serde_json::json!({"groups": []}));
        assert_eq!(get(state(), "/api/v1/alerts").await.1["data"], serde_json::json!({"alerts": []}));
        assert_eq!(
            get(state(), "/api/v1/alertmanagers").await.1["data"],
            serde_json::json!({"activeAlertmanagers": [], "droppedAlertmanagers": []})
        );
    }

    #[tokio::test]
    async fn walreplay_reports_what_was_set() {
        let st = state();
        st.set_wal_replay(super::WalReplay { min: 0, max: 4, current: 4 });
        assert_eq!(
            get(st, "/api/v1/status/walreplay").await.1["data"],
            serde_json::json!({"min":0,"max":4,"current":4})
        );
    }

    #[tokio::test]
    async fn exemplar_queries_are_validated() {
        // Grafana sends millisecond values as seconds: still a success.
        let (c, v) =
            get(state(), "/api/v1/query_exemplars?query=up&start=1700000000000&end=1700000001000").await;
        assert_eq!((c, &v["data"]), (StatusCode::OK, &serde_json::json!([])));
        let (c, v) = get(state(), "/api/v1/query_exemplars?query=up(").await;
        assert_eq!((c, v["errorType"].as_str()), (StatusCode::BAD_REQUEST, Some("bad_data")));
        let (c, _) = get(state(), "/api/v1/query_exemplars?query=up&start=10&end=5").await;
        assert_eq!(c, StatusCode::BAD_REQUEST);
        let (c, _) = get(state(), "/api/v1/query_exemplars?query=up&start=x").await;
        assert_eq!(c, StatusCode::BAD_REQUEST);
    }
}
