//! The fixed query set and the Prometheus HTTP API calls the harness makes.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::http;

/// What kind of API call a benchmark query is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Instant,
    Range,
    /// `/api/v1/label/<name>/values` or `/api/v1/series`.
    Metadata,
}

/// One benchmark query.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchQuery {
    pub name: &'static str,
    pub kind: Kind,
    /// PromQL for instant/range; the API path (with `match[]`) for metadata.
    pub text: String,
}

/// The query set. `window` is the rate window in seconds (a few scrape
/// intervals, at least a minute). Each PromQL query runs as an instant and
/// as a range query.
pub fn query_set(window: u64) -> Vec<BenchQuery> {
    let w = format!("{window}s");
    let promql = [
        ("rate", format!("rate(bench_http_requests_total[{w}])")),
        ("sum by rate", format!("sum by (method, code) (rate(bench_http_requests_total[{w}]))")),
        (
            "histogram_quantile",
            format!(
                "histogram_quantile(0.9, sum by (le, method) (rate(bench_request_duration_seconds_bucket[{w}])))"
            ),
        ),
        (
            "ratio of rates",
            format!(
                "sum by (method) (rate(bench_http_errors_total[{w}])) / sum by (method) (rate(bench_http_requests_total[{w}]))"
            ),
        ),
        ("topk", "topk(10, bench_queue_depth)".to_owned()),
        (
            "regex selector",
            format!("sum(rate(bench_http_requests_total{{path=~\"/api/v[12]/.*\",code!~\"5..\"}}[{w}]))"),
        ),
    ];
    let mut out = Vec::new();
    for kind in [Kind::Instant, Kind::Range] {
        for (name, q) in &promql {
            out.push(BenchQuery { name, kind, text: q.clone() });
        }
    }
    out.push(BenchQuery {
        name: "label values",
        kind: Kind::Metadata,
        text: "/api/v1/label/path/values".to_owned(),
    });
    out.push(BenchQuery {
        name: "series",
        kind: Kind::Metadata,
        text: format!(
            "/api/v1/series?match%5B%5D={}",
            http::encode_component("bench_queue_depth{zone=\"z1\"}")
        ),
    });
    out
}

/// Time range of a range or metadata query (unix seconds) and range step.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub start: f64,
    pub end: f64,
    pub step: f64,
}

/// The URL (without base) for `q` at `span` (instant queries use `span.end`).
pub fn path_for(q: &BenchQuery, span: Span) -> String {
    let t = |x: f64| format!("{x:.3}");
    match q.kind {
        Kind::Instant => {
            http::with_query("/api/v1/query", &[("query", q.text.clone()), ("time", t(span.end))])
        }
        Kind::Range => http::with_query(
            "/api/v1/query_range",
            &[
                ("query", q.text.clone()),
                ("start", t(span.start)),
                ("end", t(span.end)),
                ("step", t(span.step)),
            ],
        ),
        Kind::Metadata => {
            let sep = if q.text.contains('?') { '&' } else { '?' };
            format!("{}{sep}start={}&end={}", q.text, t(span.start), t(span.end))
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Http(#[from] http::HttpError),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("bad JSON: {0}")]
    Json(String),
    #[error("API error: {0}")]
    Api(String),
}

/// GETs an API path and returns the elapsed seconds and the `data` field of
/// a `"status":"success"` answer.
pub fn call(base: &str, path: &str, timeout: Duration) -> Result<(f64, Value), ApiError> {
    let t0 = Instant::now();
    let r = http::get(&format!("{base}{path}"), timeout)?;
    let elapsed = t0.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&r.body);
    if r.status != 200 {
        let body: String = text.chars().take(200).collect();
        return Err(ApiError::Status { status: r.status, body: body.trim().to_owned() });
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| ApiError::Json(e.to_string()))?;
    data_of(v).map(|d| (elapsed, d))
}

/// The `data` of a success answer, or the API's error as a value.
pub fn data_of(mut v: Value) -> Result<Value, ApiError> {
    match v.get("status").and_then(Value::as_str) {
        Some("success") => Ok(v.get_mut("data").map(Value::take).unwrap_or(Value::Null)),
        _ => {
            let msg = v.get("error").and_then(Value::as_str).unwrap_or("no status");
            Err(ApiError::Api(msg.to_owned()))
        }
    }
}

/// Number of series / values in a `data` field: result vector or matrix
/// length, or the length of a label-values / series list.
pub fn result_len(data: &Value) -> usize {
    match data {
        Value::Array(a) => a.len(),
        Value::Object(_) => data.get("result").and_then(Value::as_array).map_or(0, Vec::len),
        _ => 0,
    }
}

/// The single value of an instant vector with at most one element (as from
/// `sum(...)`): `None` for an empty vector (no data).
pub fn single_value(data: &Value) -> Result<Option<f64>, ApiError> {
    let result = data.get("result").ok_or_else(|| ApiError::Json("no result".into()))?;
    let value = match result {
        Value::Array(a) if a.is_empty() => return Ok(None),
        Value::Array(a) if a.len() == 1 => a[0].get("value"),
        // A scalar result is `[t, "v"]` directly.
        Value::Array(a) if a.len() == 2 && a[1].is_string() => Some(result),
        _ => return Err(ApiError::Json(format!("expected one sample, got {result}"))),
    };
    let text = value
        .and_then(|v| v.get(1))
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::Json("sample value is not [t, \"v\"]".into()))?;
    text.parse::<f64>().map(Some).map_err(|e| ApiError::Json(format!("value {text:?}: {e}")))
}

/// Evaluates a PromQL expression that yields one number, at `time`.
pub fn instant_value(base: &str, expr: &str, time: f64, timeout: Duration) -> Result<Option<f64>, ApiError> {
    let path =
        http::with_query("/api/v1/query", &[("query", expr.to_owned()), ("time", format!("{time:.3}"))]);
    let (_, data) = call(base, &path, timeout)?;
    single_value(&data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_has_every_promql_query_as_instant_and_range() {
        let qs = query_set(60);
        let instant: Vec<_> = qs.iter().filter(|q| q.kind == Kind::Instant).map(|q| q.name).collect();
        let range: Vec<_> = qs.iter().filter(|q| q.kind == Kind::Range).map(|q| q.name).collect();
        assert_eq!(instant, range);
        assert_eq!(instant.len(), 6);
        assert_eq!(qs.iter().filter(|q| q.kind == Kind::Metadata).count(), 2);
        assert!(qs.iter().any(|q| q.text.contains("[60s]")));
    }

    #[test]
    fn paths() {
        let span = Span { start: 100.0, end: 200.5, step: 5.0 };
        let q = BenchQuery { name: "x", kind: Kind::Range, text: "up".into() };
        assert_eq!(path_for(&q, span), "/api/v1/query_range?query=up&start=100.000&end=200.500&step=5.000");
        let q = BenchQuery { name: "x", kind: Kind::Instant, text: "up".into() };
        assert_eq!(path_for(&q, span), "/api/v1/query?query=up&time=200.500");
        let q = BenchQuery { name: "x", kind: Kind::Metadata, text: "/api/v1/label/a/values".into() };
        assert_eq!(path_for(&q, span), "/api/v1/label/a/values?start=100.000&end=200.500");
        let q = BenchQuery { name: "x", kind: Kind::Metadata, text: "/api/v1/series?match%5B%5D=up".into() };
        assert_eq!(path_for(&q, span), "/api/v1/series?match%5B%5D=up&start=100.000&end=200.500");
    }

    #[test]
    fn answers() {
        let ok = json!({"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"42"]}]}});
        let data = data_of(ok).unwrap();
        assert_eq!(single_value(&data).unwrap(), Some(42.0));
        assert_eq!(result_len(&data), 1);
        let empty = json!({"resultType":"vector","result":[]});
        assert_eq!(single_value(&empty).unwrap(), None);
        let scalar = json!({"resultType":"scalar","result":[1.5,"2"]});
        assert_eq!(single_value(&scalar).unwrap(), Some(2.0));
        let two = json!({"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]});
        assert!(single_value(&two).is_err());
        assert_eq!(result_len(&json!(["a", "b", "c"])), 3);
        let err =
            data_of(json!({"status":"error","errorType":"bad_data","error":"parse error"})).unwrap_err();
        assert_eq!(err.to_string(), "API error: parse error");
    }
}
