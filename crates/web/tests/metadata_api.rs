//! `/api/v1/series`, `/labels`, `/label/<name>/values` and `/federate`
//! against the in-memory storage.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use ember_model::memory::MemStorage;
use ember_model::{labels, stale_nan};
use ember_web::{router, AppState, Options};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn storage() -> MemStorage {
    let s = MemStorage::new();
    let now = ember_model::sample::now_millis();
    s.add(&labels!("__name__" => "up", "job" => "api", "instance" => "a:1"), now - 10_000, 1.0).unwrap();
    s.add(&labels!("__name__" => "up", "job" => "web", "instance" => "b:1"), now - 10_000, 0.0).unwrap();
    s.add(
        &labels!("__name__" => "http_requests_total", "job" => "api", "code" => "200"),
        now - 5_000,
        1234567.0,
    )
    .unwrap();
    s.add(&labels!("__name__" => "old", "job" => "api"), 1_000, 1.0).unwrap();
    let gone = labels!("__name__" => "gone", "job" => "api");
    s.add(&gone, now - 20_000, 1.0).unwrap();
    s.add(&gone, now - 10_000, stale_nan()).unwrap();
    s
}

/// Percent-encodes the values of a readable `path?k=v&k=v` URI.
fn encode(uri: &str) -> String {
    let Some((path, q)) = uri.split_once('?') else { return uri.to_owned() };
    let pairs: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => {
                format!("{k}={}", form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>())
            }
            None => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", pairs.join("&"))
}

async fn call(uri: &str, form: Option<&str>) -> (u16, String) {
    let uri = encode(uri);
    let uri = uri.as_str();
    let app = router(AppState::new(Options::default(), Some(Arc::new(storage())), vec![]));
    let req = match form {
        None => Request::get(uri).body(Body::empty()).unwrap(),
        Some(f) => Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(f.to_owned()))
            .unwrap(),
    };
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    (status, String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap())
}

async fn json_of(uri: &str, form: Option<&str>) -> (u16, Value) {
    let (st, body) = call(uri, form).await;
    (st, serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}")))
}

#[tokio::test]
async fn series_by_match() {
    let (st, v) = json_of("/api/v1/series?match[]=up", None).await;
    assert_eq!(st, 200);
    assert_eq!(
        v,
        json!({"status": "success", "data": [
            {"__name__": "up", "instance": "a:1", "job": "api"},
            {"__name__": "up", "instance": "b:1", "job": "web"},
        ]})
    );
    // Several match[] are a union; POST form works the same.
    let (_, v) = json_of("/api/v1/series", Some("match[]=up{job=\"web\"}&match[]=old")).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn series_time_range_and_limit() {
    let (_, v) = json_of("/api/v1/series?match[]={job=\"api\"}&start=0&end=2", None).await;
    assert_eq!(v["data"], json!([{"__name__": "old", "job": "api"}]));
    let (_, v) = json_of("/api/v1/series?match[]={job=~\".+\"}&limit=2", None).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 2);
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
}

#[tokio::test]
async fn series_errors() {
    let (st, v) = json_of("/api/v1/series", None).await;
    assert_eq!((st, v["errorType"].as_str()), (400, Some("bad_data")));
    assert_eq!(v["error"], "no match[] parameter provided");
    let (st, v) = json_of("/api/v1/series?match[]=up{", None).await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().contains("parse error"), "{v}");
    let (st, v) = json_of("/api/v1/series?match[]=up&start=yesterday", None).await;
    assert_eq!(st, 400);
    assert_eq!(v["error"], "invalid parameter \"start\": Invalid time value for 'start': cannot parse \"yesterday\" to a valid timestamp");
}

#[tokio::test]
async fn label_names_and_values() {
    let (_, v) = json_of("/api/v1/labels", None).await;
    assert_eq!(v["data"], json!(["__name__", "code", "instance", "job"]));
    let (_, v) = json_of("/api/v1/labels?match[]=up", None).await;
    assert_eq!(v["data"], json!(["__name__", "instance", "job"]));
    let (_, v) = json_of("/api/v1/label/__name__/values", None).await;
    assert_eq!(v["data"], json!(["gone", "http_requests_total", "old", "up"]));
    let (_, v) = json_of("/api/v1/label/job/values?match[]=up", None).await;
    assert_eq!(v["data"], json!(["api", "web"]));
    let (_, v) = json_of("/api/v1/label/job/values?limit=1", None).await;
    assert_eq!(v["data"], json!(["api"]));
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));
    let (_, v) = json_of("/api/v1/label/nope/values", None).await;
    assert_eq!(v["data"], json!([]));
}

#[tokio::test]
async fn federate_latest_samples() {
    let (st, body) = call("/federate?match[]={job=\"api\"}", None).await;
    assert_eq!(st, 200);
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], "# TYPE http_requests_total untyped");
    assert!(
        lines[1].starts_with("http_requests_total{code=\"200\",job=\"api\",instance=\"\"} 1.234567e+06 "),
        "{body}"
    );
    assert_eq!(lines[2], "# TYPE up untyped");
    assert!(lines[3].starts_with("up{instance=\"a:1\",job=\"api\"} 1 "));
    assert!(!body.contains("old"), "outside the lookback window: {body}");
    assert!(!body.contains("gone"), "ended by a staleness marker: {body}");
    assert_eq!(lines.len(), 4);
}
