//! `/api/v1/status/config`, `/status/walreplay`, `/status/tsdb`, and the rule, alert,
//! Alertmanager and exemplar endpoints, which answer empty until those
//! subsystems exist (with Prometheus's shapes, so clients parse them).

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Serialize;

use super::params::Params;
use super::{blocking, not_ready, success, ApiError, ErrorType};
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

/// Cardinality statistics of the TSDB head (the binary computes them).
pub trait TsdbStatsView: Send + Sync {
    /// The statistics with at most `limit` entries per list.
    fn tsdb_stats(&self, limit: usize) -> TsdbStats;
}

/// `/api/v1/status/tsdb`'s `data`, field for field as Prometheus's
/// `TSDBStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TsdbStats {
    pub head_stats: HeadStats,
    pub series_count_by_metric_name: Vec<TsdbStat>,
    pub label_value_count_by_label_name: Vec<TsdbStat>,
    pub memory_in_bytes_by_label_name: Vec<TsdbStat>,
    pub series_count_by_label_value_pair: Vec<TsdbStat>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: i64,
    pub min_time: i64,
    pub max_time: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TsdbStat {
    pub name: String,
    pub value: u64,
}

/// `/api/v1/status/tsdb` with Prometheus 3's `limit` (default 10, at most
/// 10000).
pub(crate) async fn tsdb(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    const MAX_LIMIT: usize = 10_000;
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let limit = match p.get_nonempty("limit") {
        None => 10,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 1 => usize::try_from(n).unwrap_or(usize::MAX),
            _ => return Err(ApiError::new(ErrorType::BadData, "limit must be a positive number")),
        },
    };
    if limit > MAX_LIMIT {
        return Err(ApiError::new(ErrorType::BadData, format!("limit must not exceed {MAX_LIMIT}")));
    }
    let view = s.inner.tsdb_stats.get().cloned().ok_or_else(not_ready)?;
    // Walks the whole head index: off the async threads.
    let stats = blocking(move || Ok(view.tsdb_stats(limit))).await?;
    Ok(success(stats, vec![], vec![]))
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

    struct Stats;
    impl super::TsdbStatsView for Stats {
        fn tsdb_stats(&self, limit: usize) -> super::TsdbStats {
            let stat = |i: usize| super::TsdbStat { name: format!("m{i}"), value: 100 - i as u64 };
            super::TsdbStats {
                head_stats: super::HeadStats {
                    num_series: 3,
                    num_label_pairs: 4,
                    chunk_count: 5,
                    min_time: 6,
                    max_time: 7,
                },
                series_count_by_metric_name: (0..limit.min(20)).map(stat).collect(),
                ..Default::default()
            }
        }
    }

    #[tokio::test]
    async fn tsdb_status_shape_and_limit() {
        let (c, v) = get(state(), "/api/v1/status/tsdb").await;
        assert_eq!((c, v["errorType"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable")));
        let st = state();
        st.set_tsdb_stats(std::sync::Arc::new(Stats));
        let (c, v) = get(st.clone(), "/api/v1/status/tsdb").await;
        assert_eq!(c, StatusCode::OK);
        assert_eq!(
            v["data"]["headStats"],
            serde_json::json!({"numSeries":3,"numLabelPairs":4,"chunkCount":5,"minTime":6,"maxTime":7})
        );
        assert_eq!(v["data"]["seriesCountByMetricName"].as_array().unwrap().len(), 10, "default limit");
        assert_eq!(v["data"]["seriesCountByMetricName"][0], serde_json::json!({"name":"m0","value":100}));
        for key in ["labelValueCountByLabelName", "memoryInBytesByLabelName", "seriesCountByLabelValuePair"] {
            assert_eq!(v["data"][key], serde_json::json!([]), "{key} is an empty list, not null");
        }
        let (_, v) = get(st.clone(), "/api/v1/status/tsdb?limit=3").await;
        assert_eq!(v["data"]["seriesCountByMetricName"].as_array().unwrap().len(), 3);
        for (q, msg) in [
            ("limit=0", "limit must be a positive number"),
            ("limit=x", "limit must be a positive number"),
            ("limit=10001", "limit must not exceed 10000"),
        ] {
            let (c, v) = get(st.clone(), &format!("/api/v1/status/tsdb?{q}")).await;
            assert_eq!((c, v["error"].as_str()), (StatusCode::BAD_REQUEST, Some(msg)));
        }
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
