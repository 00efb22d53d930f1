//! `/api/v1/metadata`: metric metadata (type, help, unit) per metric name.
//!
//! Prometheus builds this answer from its scrape targets' metadata caches;
//! ember answers from what the storage recorded (scrapes and remote-write
//! requests both record metadata), which is the same information for
//! scraped metrics and also covers remote-written ones.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use ember_model::Metadata;
use serde::Serialize;

use super::params::Params;
use super::{success, ApiError, ErrorType};
use crate::AppState;

/// Where metadata comes from (the binary implements it).
pub trait MetadataView: Send + Sync {
    /// Every metric family's metadata, by metric name. A family may have
    /// several distinct entries (targets disagreeing).
    fn metadata(&self) -> BTreeMap<String, Vec<Metadata>>;
}

#[derive(Serialize)]
struct Entry<'a> {
    #[serde(rename = "type")]
    metric_type: &'a str,
    help: &'a str,
    unit: &'a str,
}

fn int_param(p: &Params, name: &str) -> Result<Option<usize>, ApiError> {
    match p.get_nonempty(name) {
        None => Ok(None),
        Some(v) => match v.parse::<i64>() {
            // Prometheus treats a non-positive limit as "no limit".
            Ok(n) if n <= 0 => Ok(None),
            Ok(n) => Ok(Some(n as usize)),
            Err(_) => Err(ApiError::new(ErrorType::BadData, format!("{name} must be a number"))),
        },
    }
}

pub(crate) async fn metadata(State(s): State<AppState>, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &Default::default(), &Default::default());
    let limit = int_param(&p, "limit")?;
    let per_metric = int_param(&p, "limit_per_metric")?;
    let metric = p.get_nonempty("metric").map(str::to_owned);
    let view: Option<Arc<dyn MetadataView>> = s.inner.metadata.get().cloned();
    let all = view.map(|v| v.metadata()).unwrap_or_default();
    let mut out: BTreeMap<&str, Vec<Entry<'_>>> = BTreeMap::new();
    for (name, metas) in &all {
        if metric.as_deref().is_some_and(|m| m != name) {
            continue;
        }
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        let mut entries: Vec<Entry<'_>> = Vec::new();
        for m in metas {
            if per_metric.is_some_and(|l| entries.len() >= l) {
                break;
            }
            entries.push(Entry { metric_type: m.metric_type.as_str(), help: &m.help, unit: &m.unit });
        }
        out.insert(name, entries);
    }
    Ok(success(out, vec![], vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{router, Options};
    use axum::body::Body;
    use axum::http::Request;
    use ember_model::MetricType;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    struct Fixed;
    impl MetadataView for Fixed {
        fn metadata(&self) -> BTreeMap<String, Vec<Metadata>> {
            let m = |t, h: &str| Metadata { metric_type: t, help: h.into(), unit: String::new() };
            BTreeMap::from([
                (
                    "a_total".to_owned(),
                    vec![m(MetricType::Counter, "A."), m(MetricType::Counter, "A again.")],
                ),
                ("b".to_owned(), vec![m(MetricType::Gauge, "B.")]),
            ])
        }
    }

    async fn get(uri: &str) -> serde_json::Value {
        let state = AppState::new(Options::default(), None, vec![]);
        state.set_metadata(Arc::new(Fixed));
        let resp = router(state).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
    }

    #[tokio::test]
    async fn shapes_and_limits() {
        let v = get("/api/v1/metadata").await;
        assert_eq!(v["data"]["b"], serde_json::json!([{"type": "gauge", "help": "B.", "unit": ""}]));
        assert_eq!(v["data"]["a_total"].as_array().unwrap().len(), 2);
        let v = get("/api/v1/metadata?limit=1").await;
        assert_eq!(v["data"].as_object().unwrap().len(), 1);
        let v = get("/api/v1/metadata?limit_per_metric=1&metric=a_total").await;
        assert_eq!(
            v["data"],
            serde_json::json!({"a_total": [{"type": "counter", "help": "A.", "unit": ""}]})
        );
        let v = get("/api/v1/metadata?limit=x").await;
        assert_eq!(v["errorType"], "bad_data");
    }
}
