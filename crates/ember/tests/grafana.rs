//! Replays the requests Grafana's Prometheus data source sends (grafana/grafana
//! `pkg/promlib`, `packages/grafana-prometheus`) against ember with
//! remote-written data, and checks the bad-input behaviour of issue 7 item 6.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod compat_support;

use std::time::Duration;

use compat_support::{encode_form, generate, get, http, post_form, recent_t0_ms, DataSet, Response, Server};
use ember_remote::proto::{Label, Sample, TimeSeries, WriteRequest};
use serde_json::Value;

fn pairs(p: &[(&str, String)]) -> String {
    encode_form(&p.iter().map(|(n, v)| ((*n).to_owned(), v.clone())).collect::<Vec<_>>())
}

fn success(r: &Response) -> Value {
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.header("content-type").unwrap_or("").starts_with("application/json"), "{:?}", r.headers);
    let v = r.json();
    assert_eq!(v["status"], "success", "{v}");
    v
}

/// ember with the shared data set plus one series whose label name is not
/// legacy-valid (Grafana sends such names `U__`-escaped in URL paths).
fn ember_with_data() -> (Server, DataSet) {
    let s = Server::ember(&[]);
    let data = generate(recent_t0_ms());
    assert_eq!(s.remote_write(&data.request).status, 204);
    let utf8 = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                Label { name: "__name__".into(), value: "otel_requests".into() },
                Label { name: "service.name".into(), value: "checkout".into() },
            ],
            samples: vec![Sample { value: 7.0, timestamp: data.t0_ms + 1_000 }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let r = s.remote_write(&utf8);
    assert_eq!(r.status, 204, "{}", r.body);
    (s, data)
}

#[test]
fn save_and_test_then_buildinfo() {
    let (s, _) = ember_with_data();
    // Save & test: form POST, then the same as GET for "HTTP method: GET".
    let v = success(&post_form(s.addr, "/api/v1/query", "query=1%2B1&time=4"));
    assert_eq!(v["data"]["resultType"], "scalar");
    assert_eq!(v["data"]["result"], serde_json::json!([4, "2"]));
    let v = success(&get(s.addr, "/api/v1/query?query=1%2B1&time=4"));
    assert_eq!(v["data"]["result"], serde_json::json!([4, "2"]));

    let v = success(&get(s.addr, "/api/v1/status/buildinfo"));
    let data = v["data"].as_object().unwrap();
    assert!(
        !data.contains_key("features"),
        "a features key makes Grafana treat the server as Cortex/Mimir: {v}"
    );
    let version = data["version"].as_str().unwrap();
    // Grafana parses it as semver and enables the fast paths from 2.24 on.
    let core = version.split(['+', '-']).next().unwrap();
    let nums: Vec<u64> = core.split('.').map(|n| n.parse().unwrap()).collect();
    assert_eq!(nums.len(), 3, "{version} is not semver");
    assert!((nums[0], nums[1]) >= (2, 24), "{version} is older than 2.24");
}

#[test]
fn metric_browser_and_variables() {
    let (s, data) = ember_with_data();
    let start = (data.t0_ms / 1000).to_string();
    let end = (data.t0_ms / 1000 + 1800).to_string();
    let range = [("start", start.clone()), ("end", end.clone())];

    let q = pairs(&[("start", start.clone()), ("end", end.clone()), ("limit", "40000".into())]);
    let v = success(&get(s.addr, &format!("/api/v1/label/__name__/values?{q}")));
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    for want in [
        "http_requests_total",
        "otel_requests",
        "request_duration_seconds_bucket",
        "temperature_celsius",
        "up",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }

    let v = success(&get(s.addr, &format!("/api/v1/labels?{}", pairs(&range))));
    let labels = v["data"].as_array().unwrap();
    for want in ["__name__", "job", "instance", "le", "location", "service.name"] {
        assert!(labels.iter().any(|l| l == want), "{want} missing from {labels:?}");
    }

    let q = pairs(&[("match[]", "up".into()), range[0].clone(), range[1].clone()]);
    let v = success(&get(s.addr, &format!("/api/v1/label/job/values?{q}")));
    assert_eq!(v["data"], serde_json::json!(["api", "batch", "web"]));

    // `service.name` arrives as `U__service_2e_name`.
    let v = success(&get(s.addr, "/api/v1/label/U__service_2e_name/values"));
    assert_eq!(v["data"], serde_json::json!(["checkout"]));

    // Label values with special characters come back exactly.
    let q = pairs(&[("match[]", "temperature_celsius".into())]);
    let v = success(&get(s.addr, &format!("/api/v1/label/location/values?{q}")));
    let locs = v["data"].as_array().unwrap();
    for want in ["quote\"d", "back\\slash", "new\nline", "ünïcödé ☃", "tab\there"] {
        assert!(locs.iter().any(|l| l == want), "{want:?} missing from {locs:?}");
    }

    let q = pairs(&[
        ("match[]", "{__name__!=\"\"}".into()),
        ("limit", "40000".into()),
        range[0].clone(),
        range[1].clone(),
    ]);
    let v = success(&get(s.addr, &format!("/api/v1/series?{q}")));
    assert_eq!(v["data"].as_array().unwrap().len(), data.series_count() + 1);
    let q = pairs(&[("match[]", "{__name__!=\"\"}".into()), ("limit", "5".into())]);
    let v = success(&get(s.addr, &format!("/api/v1/series?{q}")));
    assert_eq!(v["data"].as_array().unwrap().len(), 5);
    assert!(
        v["warnings"].as_array().is_some_and(|w| !w.is_empty()),
        "a truncated answer carries a warning: {v}"
    );
}

#[test]
fn metadata_for_the_metric_browser() {
    let (s, _) = ember_with_data();
    // Grafana asks without parameters and reads a name -> [entries] object.
    let v = success(&get(s.addr, "/api/v1/metadata"));
    assert!(v["data"].is_object(), "{v}");
}

#[test]
fn query_editor_posts_and_get_retry() {
    let (s, data) = ember_with_data();
    let t = data.t0_ms as f64 / 1000.0 + 1755.25;
    let instant = pairs(&[
        ("query", "sum by (job) (rate(http_requests_total[5m]))".into()),
        ("time", format!("{t:.3}")),
        ("timeout", "30s".into()),
    ]);
    let post = post_form(s.addr, "/api/v1/query", &instant);
    let v = success(&post);
    assert_eq!(v["data"]["resultType"], "vector");
    let result = v["data"]["result"].as_array().unwrap();
    assert_eq!(result.len(), 3);
    for r in result {
        assert_eq!(r["value"][0].as_f64().unwrap(), t);
        let x: f64 = r["value"][1].as_str().unwrap().parse().unwrap();
        assert!(x > 0.0, "{r}");
    }
    // Grafana retries a 400/405 POST as GET: GET must give the same answer.
    let got = get(s.addr, &format!("/api/v1/query?{instant}"));
    assert_eq!(success(&got)["data"], v["data"]);

    let start = data.t0_ms as f64 / 1000.0 + 600.0;
    let end = start + 1200.0;
    let range = pairs(&[
        ("query", "histogram_quantile(0.9, sum by (le) (rate(request_duration_seconds_bucket[5m])))".into()),
        ("start", format!("{start}")),
        ("end", format!("{end}")),
        ("step", "60".into()),
        ("timeout", "30s".into()),
    ]);
    let v = success(&post_form(s.addr, "/api/v1/query_range", &range));
    assert_eq!(v["data"]["resultType"], "matrix");
    let series = v["data"]["result"].as_array().unwrap();
    assert_eq!(series.len(), 1);
    let values = series[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 21);
    assert_eq!(values[0][0].as_f64().unwrap(), start);
    for p in values {
        let q: f64 = p[1].as_str().unwrap().parse().unwrap();
        assert!((0.0..=5.0).contains(&q), "quantile {q} outside the buckets");
    }
    assert_eq!(success(&get(s.addr, &format!("/api/v1/query_range?{range}")))["data"], v["data"]);

    // NaN and infinities arrive as strings.
    let q = pairs(&[("query", "special_values".into()), ("time", format!("{t}"))]);
    let v = success(&get(s.addr, &format!("/api/v1/query?{q}")));
    let vals: Vec<&str> =
        v["data"]["result"].as_array().unwrap().iter().map(|r| r["value"][1].as_str().unwrap()).collect();
    for want in ["NaN", "+Inf", "-Inf"] {
        assert!(vals.contains(&want), "{want} missing from {vals:?}");
    }
}

#[test]
fn rules_and_exemplars_on_load() {
    let (s, data) = ember_with_data();
    let v = success(&get(s.addr, "/api/v1/rules"));
    assert!(v["data"]["groups"].is_array(), "{v}");
    // Grafana passes milliseconds where seconds are expected: still success.
    let q = pairs(&[
        ("query", "test".into()),
        ("start", data.t0_ms.to_string()),
        ("end", (data.t0_ms + 1_800_000).to_string()),
    ]);
    let v = success(&get(s.addr, &format!("/api/v1/query_exemplars?{q}")));
    assert!(v["data"].is_array(), "{v}");
}

#[test]
fn bad_input_is_refused_with_useful_errors() {
    let s = Server::ember(&[]);
    // Malformed PromQL: 400 bad_data with the position.
    let r = get(s.addr, "/api/v1/query?query=sum(rate(up%5B5m%5D)");
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["errorType"], "bad_data");
    let msg = v["error"].as_str().unwrap();
    assert!(msg.starts_with("invalid parameter \"query\": 1:"), "{msg}");
    assert!(msg.contains("parse error"), "{msg}");

    // Unknown endpoint: JSON 404.
    let r = get(s.addr, "/api/v1/no_such_thing");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errorType"], "not_found");

    // Garbage remote write: 400, nothing stored.
    let r = s.remote_write_raw(b"\xff\x00 definitely not snappy protobuf");
    assert_eq!(r.status, 400, "{}", r.body);
    let valid_snappy_garbage = snappy_literal(b"\x0a\xff\xff\xff\xff\x0f garbage");
    let r = s.remote_write_raw(&valid_snappy_garbage);
    assert_eq!(r.status, 400, "{}", r.body);
    let v = success(&get(s.addr, "/api/v1/series?match%5B%5D=%7B__name__%3D~%22.%2B%22%7D"));
    assert_eq!(v["data"], serde_json::json!([]));

    // Oversized bodies are refused, not buffered: a form over 10 MiB and a
    // remote-write request over 32 MiB.
    let r = oversized(&s, "/api/v1/query", "application/x-www-form-urlencoded", 11 << 20);
    assert_eq!(r.status, 413, "{}", r.body);
    let r = oversized(&s, "/api/v1/write", "application/x-protobuf", 33 << 20);
    assert_eq!(r.status, 413, "{}", r.body);
    // A 3 MiB remote-write body is read (then refused as garbage, 400):
    // the 32 MiB bound is not the 2 MiB default.
    let r = oversized(&s, "/api/v1/write", "application/x-protobuf", 3 << 20);
    assert_eq!(r.status, 400, "{}", r.body);
    // A form just under the limit is still read (and its query answered).
    let mut form = String::from("query=1&time=4&pad=");
    form.push_str(&"x".repeat(9 << 20));
    let v = success(&post_form(s.addr, "/api/v1/query", &form));
    assert_eq!(v["data"]["result"], serde_json::json!([4, "1"]));
}

/// Sends a body of `len` bytes; the server may answer before reading it all.
fn oversized(s: &Server, path: &str, content_type: &str, len: usize) -> Response {
    let body = vec![b'a'; len];
    let r = http(s.addr, "POST", path, &[("Content-Type", content_type)], &body).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    r
}

/// A snappy block holding `data` as one literal (valid snappy framing).
fn snappy_literal(data: &[u8]) -> Vec<u8> {
    assert!(data.len() <= 60);
    let mut out = vec![data.len() as u8, ((data.len() - 1) as u8) << 2];
    out.extend_from_slice(data);
    out
}
