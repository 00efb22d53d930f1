//! `/api/v1/targets` and `/api/v1/targets/metadata`: the scrape targets
//! and the metadata they last reported, as the binary's scrape manager
//! shows them through [`TargetsView`] (web does not know the scraper).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use ember_model::{matches_all, Labels, Metadata};
use serde::Serialize;

use super::params::{invalid_param, Params};
use super::{success, ApiError, ErrorType};
use crate::AppState;

/// One active target, with Prometheus's JSON field names.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ActiveTarget {
    pub discovered_labels: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub scrape_pool: String,
    pub scrape_url: String,
    pub global_url: String,
    pub last_error: String,
    /// RFC3339 with nanoseconds; Go's zero time when never scraped.
    pub last_scrape: String,
    /// Seconds.
    pub last_scrape_duration: f64,
    /// "up", "down" or "unknown".
    pub health: String,
    /// Prometheus duration text, e.g. "15s".
    pub scrape_interval: String,
    pub scrape_timeout: String,
}

/// One target dropped by relabelling.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DroppedTarget {
    pub discovered_labels: BTreeMap<String, String>,
    pub scrape_pool: String,
}

/// One active target's metadata as of its last good scrape.
#[derive(Debug, Clone)]
pub struct TargetMetadata {
    /// The target's labels (those its series get).
    pub labels: Labels,
    /// Metadata by metric family name; shared with the scrape loop.
    pub metadata: Arc<HashMap<String, Metadata>>,
}

/// What the scrape manager shows the API.
pub trait TargetsView: Send + Sync {
    /// Active targets, of one pool when `pool` is given.
    fn active(&self, pool: Option<&str>) -> Vec<ActiveTarget>;
    /// Dropped targets (as many as each job keeps), of one pool when given.
    fn dropped(&self, pool: Option<&str>) -> Vec<DroppedTarget>;
    /// How many targets each pool dropped in all.
    fn dropped_counts(&self) -> BTreeMap<String, usize>;
    /// Every active target's metadata, in a stable order (by job, then
    /// URL). A view without metadata answers none.
    fn target_metadata(&self) -> Vec<TargetMetadata> {
        Vec::new()
    }
}

/// One `/api/v1/targets/metadata` entry (Prometheus's `metricMetadata`).
#[derive(Serialize)]
struct MetricMetadata<'a> {
    target: BTreeMap<&'a str, &'a str>,
    /// Omitted when the request named the metric.
    #[serde(skip_serializing_if = "Option::is_none")]
    metric: Option<&'a str>,
    #[serde(rename = "type")]
    metric_type: &'static str,
    help: &'a str,
    unit: &'a str,
}

/// `GET /api/v1/targets/metadata`: `match_target` (a label selector on the
/// target's labels), `metric` (one family) and `limit` (entries; checked
/// before each target, as Prometheus does, so one target may overshoot).
pub(crate) async fn target_metadata(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &Default::default(), &Default::default());
    let limit: Option<usize> = match p.get_nonempty("limit") {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => usize::try_from(n).ok(),
            Err(_) => return Err(ApiError::new(ErrorType::BadData, "limit must be a number")),
        },
    };
    let matchers = match p.get_nonempty("match_target") {
        Some(sel) => {
            ember_promql::parse_metric_selector(sel).map_err(|e| invalid_param("match_target", e))?
        }
        None => Vec::new(),
    };
    let metric = p.get_nonempty("metric");
    let all = s.inner.targets.get().map(|v| v.target_metadata()).unwrap_or_default();
    let mut out: Vec<MetricMetadata<'_>> = Vec::new();
    for t in &all {
        if limit.is_some_and(|l| out.len() >= l) {
            break;
        }
        if !matches_all(&matchers, &t.labels) {
            continue;
        }
        let target = || t.labels.iter().map(|l| (l.name, l.value)).collect::<BTreeMap<_, _>>();
        match metric {
            Some(m) => {
                if let Some(md) = t.metadata.get(m) {
                    out.push(MetricMetadata {
                        target: target(),
                        metric: None,
                        metric_type: md.metric_type.as_str(),
                        help: &md.help,
                        unit: &md.unit,
                    });
                }
            }
            None => {
                // Prometheus lists a target's cache in map order; sorted
                // here so answers are stable.
                let mut names: Vec<&String> = t.metadata.keys().collect();
                names.sort();
                for name in names {
                    let md = &t.metadata[name];
                    out.push(MetricMetadata {
                        target: target(),
                        metric: Some(name),
                        metric_type: md.metric_type.as_str(),
                        help: &md.help,
                        unit: &md.unit,
                    });
                }
            }
        }
    }
    Ok(success(out, vec![], vec![]))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TargetDiscovery {
    active_targets: Vec<ActiveTarget>,
    dropped_targets: Vec<DroppedTarget>,
    /// Prometheus 3 adds the counts only when dropped targets are shown.
    dropped_target_counts: Option<BTreeMap<String, usize>>,
}

pub(crate) async fn targets(State(s): State<AppState>, RawQuery(q): RawQuery) -> Response {
    let p = Params::from_request(q.as_deref(), &Default::default(), &Default::default());
    let state = p.get("state").unwrap_or("").to_ascii_lowercase();
    let pool = p.get_nonempty("scrapePool");
    let (show_active, show_dropped) = match state.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        // Prometheus answers an unknown state with both lists empty.
        _ => (false, false),
    };
    let view = s.inner.targets.get();
    // A list that is not asked for is empty, not null (as Prometheus).
    let active = if show_active { view.map(|v| v.active(pool)).unwrap_or_default() } else { Vec::new() };
    let (dropped, counts) = if show_dropped {
        let d = view.map(|v| v.dropped(pool)).unwrap_or_default();
        let c = view.map(|v| v.dropped_counts()).unwrap_or_default();
        (d, Some(c))
    } else {
        (Vec::new(), None)
    };
    success(
        TargetDiscovery { active_targets: active, dropped_targets: dropped, dropped_target_counts: counts },
        vec![],
        vec![],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{router, Options};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use std::sync::Arc;
    use tower::ServiceExt;

    struct Fake;

    fn target(pool: &str) -> ActiveTarget {
        ActiveTarget {
            discovered_labels: BTreeMap::from([("__address__".to_owned(), "h:1".to_owned())]),
            labels: BTreeMap::from([("job".to_owned(), pool.to_owned())]),
            scrape_pool: pool.to_owned(),
            scrape_url: "http://h:1/metrics".to_owned(),
            global_url: "http://h:1/metrics".to_owned(),
            last_error: String::new(),
            last_scrape: "0001-01-01T00:00:00Z".to_owned(),
            last_scrape_duration: 0.5,
            health: "unknown".to_owned(),
            scrape_interval: "15s".to_owned(),
            scrape_timeout: "10s".to_owned(),
        }
    }

    impl TargetsView for Fake {
        fn active(&self, pool: Option<&str>) -> Vec<ActiveTarget> {
            ["a", "b"].iter().filter(|p| pool.is_none_or(|q| q == **p)).map(|p| target(p)).collect()
        }
        fn dropped(&self, pool: Option<&str>) -> Vec<DroppedTarget> {
            if pool.is_some_and(|p| p != "a") {
                return vec![];
            }
            vec![DroppedTarget { discovered_labels: BTreeMap::new(), scrape_pool: "a".to_owned() }]
        }
        fn dropped_counts(&self) -> BTreeMap<String, usize> {
            BTreeMap::from([("a".to_owned(), 3)])
        }
        fn target_metadata(&self) -> Vec<TargetMetadata> {
            let md = |t: ember_model::MetricType, help: &str| Metadata {
                metric_type: t,
                help: help.to_owned(),
                unit: String::new(),
            };
            vec![
                TargetMetadata {
                    labels: ember_model::labels!("instance" => "h:1", "job" => "a"),
                    metadata: Arc::new(HashMap::from([
                        ("up_total".to_owned(), md(ember_model::MetricType::Counter, "Ups.")),
                        ("temp".to_owned(), md(ember_model::MetricType::Gauge, "Temperature.")),
                    ])),
                },
                TargetMetadata {
                    labels: ember_model::labels!("instance" => "h:2", "job" => "b"),
                    metadata: Arc::new(HashMap::from([(
                        "temp".to_owned(),
                        md(ember_model::MetricType::Gauge, "Other temperature."),
                    )])),
                },
            ]
        }
    }

    async fn get_status(uri: &str) -> (StatusCode, serde_json::Value) {
        let st = AppState::new(Options::default(), None, vec![]);
        st.set_targets(Arc::new(Fake));
        let resp = router(st).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        (status, serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap())
    }

    async fn get(uri: &str) -> serde_json::Value {
        let (status, v) = get_status(uri).await;
        assert_eq!(status, StatusCode::OK);
        v
    }

    #[tokio::test]
    async fn targets_metadata_filters_and_shape() {
        let v = get("/api/v1/targets/metadata").await;
        assert_eq!(
            v["data"],
            serde_json::json!([
                {"target": {"instance": "h:1", "job": "a"}, "metric": "temp", "type": "gauge", "help": "Temperature.", "unit": ""},
                {"target": {"instance": "h:1", "job": "a"}, "metric": "up_total", "type": "counter", "help": "Ups.", "unit": ""},
                {"target": {"instance": "h:2", "job": "b"}, "metric": "temp", "type": "gauge", "help": "Other temperature.", "unit": ""},
            ])
        );
        // Naming the metric drops the `metric` field.
        let v = get("/api/v1/targets/metadata?metric=temp").await;
        let d = v["data"].as_array().unwrap();
        assert_eq!(d.len(), 2);
        assert!(d[0].get("metric").is_none(), "{v}");
        assert_eq!(d[1]["help"], "Other temperature.");
        let v = get("/api/v1/targets/metadata?match_target=%7Bjob%3D%22b%22%7D").await;
        assert_eq!(v["data"].as_array().unwrap().len(), 1);
        assert_eq!(v["data"][0]["target"]["job"], "b");
        let v = get("/api/v1/targets/metadata?metric=nope").await;
        assert_eq!(v["data"], serde_json::json!([]));
        // The limit is checked before each target: the first target's two
        // entries both come.
        let v = get("/api/v1/targets/metadata?limit=1").await;
        assert_eq!(v["data"].as_array().unwrap().len(), 2);
        let v = get("/api/v1/targets/metadata?limit=0").await;
        assert_eq!(v["data"], serde_json::json!([]));
        let v = get("/api/v1/targets/metadata?limit=-1").await;
        assert_eq!(v["data"].as_array().unwrap().len(), 3);

        let (st, v) = get_status("/api/v1/targets/metadata?limit=x").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"], "limit must be a number");
        let (st, v) = get_status("/api/v1/targets/metadata?match_target=%7Bjob%3D%7D").await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().starts_with("invalid parameter \"match_target\": "), "{v}");
    }

    #[tokio::test]
    async fn field_names_and_state_filters() {
        let v = get("/api/v1/targets").await;
        let a = &v["data"]["activeTargets"][0];
        for k in [
            "discoveredLabels",
            "labels",
            "scrapePool",
            "scrapeUrl",
            "globalUrl",
            "lastError",
            "lastScrape",
            "lastScrapeDuration",
            "health",
            "scrapeInterval",
            "scrapeTimeout",
        ] {
            assert!(a.get(k).is_some(), "missing {k}: {a}");
        }
        assert_eq!(v["data"]["droppedTargets"][0]["scrapePool"], "a");
        assert_eq!(v["data"]["droppedTargetCounts"]["a"], 3);

        let v = get("/api/v1/targets?state=active&scrapePool=b").await;
        assert_eq!(v["data"]["activeTargets"].as_array().unwrap().len(), 1);
        assert_eq!(v["data"]["activeTargets"][0]["scrapePool"], "b");
        assert_eq!(v["data"]["droppedTargets"], serde_json::json!([]));
        assert!(v["data"]["droppedTargetCounts"].is_null());

        let v = get("/api/v1/targets?state=Dropped").await;
        assert_eq!(v["data"]["activeTargets"], serde_json::json!([]));
        assert_eq!(v["data"]["droppedTargets"].as_array().unwrap().len(), 1);

        let v = get("/api/v1/targets?state=bogus").await;
        assert_eq!(v["data"]["activeTargets"], serde_json::json!([]));
        assert_eq!(v["data"]["droppedTargets"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn reload_hook_answers_500_with_the_error() {
        let st = AppState::new(Options { enable_lifecycle: true, ..Default::default() }, None, vec![]);
        st.set_reload(Arc::new(|| Box::pin(async { Err("bad line 3".to_owned()) })));
        let resp = router(st).oneshot(Request::post("/-/reload").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"failed to reload config: bad line 3\n");
    }
}
