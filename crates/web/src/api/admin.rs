//! `/api/v1/admin/tsdb/*`: deletion, tombstone cleaning and snapshots, as
//! Prometheus serves them behind `--web.enable-admin-api` (POST or PUT;
//! 204 No Content on success, except `snapshot` which names its
//! directory). Disabled, every one answers 503 `unavailable` with
//! `admin APIs disabled`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ember_model::{Matcher, Timestamp};
use serde::Serialize;

use super::params::{invalid_param, Params, MAX_TIME, MIN_TIME};
use super::{blocking, internal, not_ready, success, ApiError, ErrorType};
use crate::AppState;

/// The storage's administrative operations (the binary implements them
/// over its TSDB). They block; handlers call them on the blocking pool.
/// Errors are the text of the `internal` error the API answers.
pub trait AdminView: Send + Sync {
    /// Deletes `[mint, maxt]` of the series matching `matchers`.
    fn delete_series(&self, mint: Timestamp, maxt: Timestamp, matchers: &[Matcher]) -> Result<(), String>;
    /// Rewrites blocks without their deleted data.
    fn clean_tombstones(&self) -> Result<(), String>;
    /// Writes a snapshot under `<data dir>/snapshots/` and returns its
    /// directory name.
    fn snapshot(&self, with_head: bool) -> Result<String, String>;
}

/// The enabled admin view, or Prometheus's errors: `admin APIs disabled`
/// when the flag is off, `unavailable` while storage is opening.
fn view(s: &AppState) -> Result<Arc<dyn AdminView>, ApiError> {
    if !s.inner.admin_enabled {
        return Err(ApiError::new(ErrorType::Unavailable, "admin APIs disabled"));
    }
    s.inner.admin.get().cloned().ok_or_else(not_ready)
}

pub(crate) async fn delete_series(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let admin = view(&s)?;
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let selectors: Vec<String> = p.get_all("match[]").into_iter().map(str::to_owned).collect();
    if selectors.is_empty() {
        return Err(ApiError::new(ErrorType::BadData, "no match[] parameter provided"));
    }
    let start = p.time("start", MIN_TIME)?;
    let end = p.time("end", MAX_TIME)?;
    // As Prometheus: each selector is parsed and applied in turn (no
    // "non-empty matcher" rule here: `{a=""}` deletes every series
    // without `a`).
    for sel in selectors {
        let matchers = ember_promql::parse_metric_selector(&sel).map_err(|e| invalid_param("match[]", e))?;
        let a = admin.clone();
        blocking(move || a.delete_series(start, end, &matchers).map_err(internal)).await?;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn clean_tombstones(State(s): State<AppState>) -> Result<Response, ApiError> {
    let admin = view(&s)?;
    blocking(move || admin.clean_tombstones().map_err(internal)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

#[derive(Serialize)]
struct SnapshotBody {
    name: String,
}

pub(crate) async fn snapshot(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let admin = view(&s)?;
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let skip_head = match p.get_nonempty("skip_head") {
        None => false,
        Some(v) => parse_go_bool(v).ok_or_else(|| {
            invalid_param(
                "skip_head",
                format!("unable to parse boolean: strconv.ParseBool: parsing {v:?}: invalid syntax"),
            )
        })?,
    };
    let name = blocking(move || admin.snapshot(!skip_head).map_err(internal)).await?;
    Ok(success(SnapshotBody { name }, vec![], vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{router, Options};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[derive(Default)]
    struct Fake {
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl AdminView for Fake {
        fn delete_series(&self, mint: Timestamp, maxt: Timestamp, m: &[Matcher]) -> Result<(), String> {
            let ms: Vec<String> = m.iter().map(|m| m.to_string()).collect();
            self.calls.lock().unwrap().push(format!("delete {mint} {maxt} {}", ms.join(",")));
            Ok(())
        }
        fn clean_tombstones(&self) -> Result<(), String> {
            self.calls.lock().unwrap().push("clean".into());
            Err("disk on fire".into())
        }
        fn snapshot(&self, with_head: bool) -> Result<String, String> {
            self.calls.lock().unwrap().push(format!("snapshot {with_head}"));
            Ok("20260101T000000Z-0123456789abcdef".into())
        }
    }

    async fn call(st: AppState, method: &str, uri: &str, form: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder().method(method).uri(uri);
        if form.is_some() {
            req = req.header("content-type", "application/x-www-form-urlencoded");
        }
        let req = req.body(Body::from(form.unwrap_or("").to_owned())).unwrap();
        let resp = router(st).oneshot(req).await.unwrap();
        let code = resp.status();
        (code, String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
    }

    fn enabled() -> (AppState, Arc<Fake>) {
        let st = AppState::new(Options { enable_admin_api: true, ..Options::default() }, None, vec![]);
        let fake = Arc::new(Fake::default());
        st.set_admin(fake.clone());
        (st, fake)
    }

    #[tokio::test]
    async fn disabled_answers_prometheus_error() {
        let st = AppState::new(Options::default(), None, vec![]);
        for path in ["delete_series?match[]=up", "clean_tombstones", "snapshot"] {
            for m in ["POST", "PUT"] {
                let (c, b) = call(st.clone(), m, &format!("/api/v1/admin/tsdb/{path}"), None).await;
                assert_eq!(c, StatusCode::SERVICE_UNAVAILABLE);
                assert_eq!(
                    b,
                    r#"{"status":"error","errorType":"unavailable","error":"admin APIs disabled"}"#
                );
            }
        }
    }

    #[tokio::test]
    async fn delete_series_parses_like_prometheus() {
        let (st, fake) = enabled();
        let (c, b) = call(
            st.clone(),
            "POST",
            "/api/v1/admin/tsdb/delete_series?match[]=up&match[]={a%3D%22%22}",
            None,
        )
        .await;
        assert_eq!((c, b.as_str()), (StatusCode::NO_CONTENT, ""));
        let (c, _) =
            call(st.clone(), "PUT", "/api/v1/admin/tsdb/delete_series", Some("match[]=x&start=10&end=20.5"))
                .await;
        assert_eq!(c, StatusCode::NO_CONTENT);
        assert_eq!(
            *fake.calls.lock().unwrap(),
            vec![
                format!("delete {MIN_TIME} {MAX_TIME} __name__=\"up\""),
                format!("delete {MIN_TIME} {MAX_TIME} a=\"\""),
                "delete 10000 20500 __name__=\"x\"".to_owned(),
            ]
        );
        let (c, b) = call(st.clone(), "POST", "/api/v1/admin/tsdb/delete_series", None).await;
        assert_eq!(c, StatusCode::BAD_REQUEST);
        assert!(b.contains(r#""error":"no match[] parameter provided""#), "{b}");
        let (c, b) = call(st.clone(), "POST", "/api/v1/admin/tsdb/delete_series?match[]=up(", None).await;
        assert_eq!(c, StatusCode::BAD_REQUEST);
        assert!(b.contains(r#"invalid parameter \"match[]\""#), "{b}");
        let (c, b) =
            call(st.clone(), "POST", "/api/v1/admin/tsdb/delete_series?match[]=up&start=x", None).await;
        assert_eq!(c, StatusCode::BAD_REQUEST);
        assert!(b.contains(r#"invalid parameter \"start\""#), "{b}");
        let (c, _) = call(st, "GET", "/api/v1/admin/tsdb/delete_series?match[]=up", None).await;
        assert_eq!(c, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(fake.calls.lock().unwrap().len(), 3, "no call for refused requests");
    }

    #[tokio::test]
    async fn snapshot_and_clean() {
        let (st, fake) = enabled();
        let (c, b) = call(st.clone(), "POST", "/api/v1/admin/tsdb/snapshot", None).await;
        assert_eq!(c, StatusCode::OK);
        assert_eq!(b, r#"{"status":"success","data":{"name":"20260101T000000Z-0123456789abcdef"}}"#);
        let (c, _) = call(st.clone(), "PUT", "/api/v1/admin/tsdb/snapshot?skip_head=T", None).await;
        assert_eq!(c, StatusCode::OK);
        let (c, b) = call(st.clone(), "POST", "/api/v1/admin/tsdb/snapshot?skip_head=yes", None).await;
        assert_eq!(c, StatusCode::BAD_REQUEST);
        assert!(
            b.contains(r#"invalid parameter \"skip_head\": unable to parse boolean: strconv.ParseBool: parsing \"yes\": invalid syntax"#),
            "{b}"
        );
        let (c, b) = call(st, "POST", "/api/v1/admin/tsdb/clean_tombstones", None).await;
        assert_eq!(c, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(b, r#"{"status":"error","errorType":"internal","error":"disk on fire"}"#);
        assert_eq!(*fake.calls.lock().unwrap(), vec!["snapshot true", "snapshot false", "clean"]);
    }
}
