//! `/api/v1/targets`: the scrape targets, as the binary's scrape manager
//! reports them through [`TargetsView`] (web does not know the scraper).

use std::collections::BTreeMap;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use serde::Serialize;

use super::params::Params;
use super::success;
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

/// What the scrape manager shows the API.
pub trait TargetsView: Send + Sync {
    /// Active targets, of one pool when `pool` is given.
    fn active(&self, pool: Option<&str>) -> Vec<ActiveTarget>;
    /// Dropped targets (as many as each job keeps), of one pool when given.
    fn dropped(&self, pool: Option<&str>) -> Vec<DroppedTarget>;
    /// How many targets each pool dropped in all.
    fn dropped_counts(&self) -> BTreeMap<String, usize>;
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
    }

    async fn get(uri: &str) -> serde_json::Value {
        let st = AppState::new(Options::default(), None, vec![]);
        st.set_targets(Arc::new(Fake));
        let resp = router(st).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
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
