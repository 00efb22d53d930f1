//! `/api/v1/query`, `/query_range` and `/format_query` against the
//! in-memory storage, including the requests Grafana sends.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use ember_model::labels;
use ember_model::memory::MemStorage;
use ember_web::{router, AppState, Options};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

fn storage() -> MemStorage {
    let s = MemStorage::new();
    for i in 0..=20 {
        let t = i * 15_000;
        s.add(&labels!("__name__" => "requests_total", "job" => "api"), t, (i * 30) as f64).unwrap();
        s.add(&labels!("__name__" => "requests_total", "job" => "web"), t, (i * 15) as f64).unwrap();
    }
    s
}

async fn call(method: &str, uri: &str, form: &str) -> (u16, Value) {
    let app = router(AppState::new(Options::default(), Some(Arc::new(storage())), vec![]));
    let req = if method == "POST" {
        Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from(form.to_owned()))
    } else {
        Request::get(format!("{uri}?{form}")).body(Body::empty())
    }
    .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes))),
    )
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[tokio::test]
async fn grafana_save_and_test() {
    // Exactly what Grafana's health check posts.
    let (st, v) = call("POST", "/api/v1/query", "query=1%2B1&time=4").await;
    assert_eq!(st, 200);
    assert_eq!(v, json!({"status": "success", "data": {"resultType": "scalar", "result": [4, "2"]}}));
    let (st, v) = call("GET", "/api/v1/query", "query=1%2B1&time=4").await;
    assert_eq!((st, &v["data"]["result"]), (200, &json!([4, "2"])));
}

#[tokio::test]
async fn instant_vector() {
    let q = format!("query={}&time=300", enc("sum by (job) (rate(requests_total[1m]))"));
    let (st, v) = call("POST", "/api/v1/query", &q).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "vector");
    let r = v["data"]["result"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["metric"], json!({"job": "api"}));
    let value = |i: usize| r[i]["value"][1].as_str().unwrap().parse::<f64>().unwrap();
    assert_eq!(r[0]["value"][0], json!(300));
    assert!((value(0) - 2.0).abs() < 1e-9, "{v}");
    assert!((value(1) - 1.0).abs() < 1e-9, "{v}");
}

#[tokio::test]
async fn range_matrix() {
    let q = format!("query={}&start=0&end=60&step=30", enc("requests_total{job=\"web\"}"));
    let (st, v) = call("POST", "/api/v1/query_range", &q).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"],
        json!([{"metric": {"__name__": "requests_total", "job": "web"}, "values": [[0, "0"], [30, "30"], [60, "60"]]}])
    );
    // Float seconds for start/end/step, as Grafana sends them.
    let q = format!("query={}&start=0.5&end=30.5&step=15", enc("vector(1)"));
    let (_, v) = call("GET", "/api/v1/query_range", &q).await;
    assert_eq!(v["data"]["result"][0]["values"], json!([[0.5, "1"], [15.5, "1"], [30.5, "1"]]));
}

#[tokio::test]
async fn bad_queries_are_400_with_position() {
    let (st, v) = call("GET", "/api/v1/query", &format!("query={}", enc("sum(rate(x[5m])"))).await;
    assert_eq!(st, 400);
    assert_eq!(v["errorType"], "bad_data");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.starts_with("invalid parameter \"query\": 1:"), "{msg}");
    assert!(msg.contains("parse error"), "{msg}");
}

#[tokio::test]
async fn range_parameter_errors() {
    let (st, v) = call("GET", "/api/v1/query_range", "query=up&end=10&step=1").await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().starts_with("invalid parameter \"start\""), "{v}");
    let (st, v) = call("GET", "/api/v1/query_range", "query=up&start=10&end=0&step=1").await;
    assert_eq!(
        (st, v["error"].as_str().unwrap()),
        (400, "invalid parameter \"end\": end timestamp must not be before start time")
    );
    let (st, v) = call("GET", "/api/v1/query_range", "query=up&start=0&end=10&step=0").await;
    assert_eq!(st, 400);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("invalid parameter \"step\": zero or negative query resolution step"));
    let (st, v) = call("GET", "/api/v1/query_range", "query=up&start=0&end=20000&step=1").await;
    assert_eq!(st, 400);
    assert!(v["error"].as_str().unwrap().starts_with("exceeded maximum resolution of 11,000 points"));
    // A range query must return a scalar or vector.
    let (st, v) =
        call("GET", "/api/v1/query_range", &format!("query={}&start=0&end=10&step=1", enc("up[5m]"))).await;
    assert_eq!(st, 400, "{v}");
    assert_eq!(
        v["error"],
        "invalid parameter \"query\": invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
}

#[tokio::test]
async fn execution_errors_are_422() {
    // Two series with the same labels after dropping the name.
    let q = format!("query={}&time=300", enc("requests_total / on() requests_total"));
    let (st, v) = call("GET", "/api/v1/query", &q).await;
    assert_eq!(st, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
}

#[tokio::test]
async fn format_query_prints_canonical_form() {
    let (st, v) = call(
        "GET",
        "/api/v1/format_query",
        &format!("query={}", enc("sum(rate(foo{bar=\"baz\"}[5m]))by(job)")),
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(v["data"], "sum by (job) (rate(foo{bar=\"baz\"}[5m]))");
}
