//! The fixed query set and the Prometheus HTTP API calls the harness makes.

use std::io::Read as _;
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

/// One timed call whose answer is read and dropped (see
/// [`http::get_drained`]): the latency of a whole answer without holding
/// it in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct Timed {
    pub seconds: f64,
    pub outcome: Outcome,
}

/// What a call came back with, by kind, for error counts.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Ok,
    /// A non-200 answer: status and the API's `errorType`, or for a
    /// non-JSON body its first line (VictoriaMetrics answers its
    /// concurrency limit in plain text).
    Status {
        status: u16,
        error_type: Option<String>,
    },
    /// No answer: connect, read or write failed (timeouts included).
    Transport(String),
}

impl Outcome {
    /// The key errors are counted under: `HTTP 503 / unavailable`,
    /// `transport: timed out`.
    pub fn kind(&self) -> String {
        match self {
            Outcome::Ok => "ok".to_owned(),
            Outcome::Status { status, error_type: Some(t) } => format!("HTTP {status} / {t}"),
            Outcome::Status { status, error_type: None } => format!("HTTP {status}"),
            Outcome::Transport(k) => format!("transport: {k}"),
        }
    }
}

/// `errorType` of an API error body, if it is JSON with one.
pub fn error_type(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        #[serde(rename = "errorType")]
        error_type: Option<String>,
    }
    serde_json::from_slice::<ErrorBody>(body).ok().and_then(|b| b.error_type)
}

/// `errorType` of a JSON error body, else its first line (at most 120
/// characters), else nothing.
pub fn error_label(body: &[u8]) -> Option<String> {
    error_type(body).or_else(|| {
        let text = String::from_utf8_lossy(body);
        let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
        Some(line.chars().take(120).collect())
    })
}

/// Classifies a transport error by its I/O kind (a stable, short key).
fn transport_kind(e: &http::HttpError) -> String {
    match e {
        http::HttpError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => "timed out".to_owned(),
            k => format!("{k:?}").to_lowercase(),
        },
        http::HttpError::Malformed(_) => "malformed answer".to_owned(),
        http::HttpError::Url(_) => "bad url".to_owned(),
    }
}

/// GETs `base + path`, timing the whole answer, which is not kept.
pub fn call_timed(base: &str, path: &str, timeout: Duration) -> Timed {
    let t0 = Instant::now();
    let r = http::get_drained(&format!("{base}{path}"), timeout);
    let seconds = t0.elapsed().as_secs_f64();
    let outcome = match r {
        Ok(d) if d.status == 200 => Outcome::Ok,
        Ok(d) => Outcome::Status { status: d.status, error_type: error_label(&d.error_body) },
        Err(e) => Outcome::Transport(transport_kind(&e)),
    };
    Timed { seconds, outcome }
}

/// Number of series / values in the `data` of an API answer body, counted
/// while parsing so that a large answer is never built as a tree: the
/// `result` array of a query answer, or the list of a label-values /
/// series answer.
pub fn answer_len(body: impl std::io::Read) -> Result<usize, ApiError> {
    #[derive(serde::Deserialize)]
    struct Answer {
        status: String,
        data: Option<Len>,
        error: Option<String>,
    }
    let a: Answer = serde_json::from_reader(body).map_err(|e| ApiError::Json(e.to_string()))?;
    if a.status != "success" {
        return Err(ApiError::Api(a.error.unwrap_or_else(|| "no status".to_owned())));
    }
    Ok(a.data.map_or(0, |l| l.0))
}

/// Length of a JSON array, or of the `result` array of an object; other
/// values count 0. Elements are skipped, not stored.
struct Len(usize);

impl<'de> serde::Deserialize<'de> for Len {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Len, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Len;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array or an object with a result array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Len, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Len(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Len, A::Error> {
                let mut n = 0;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "result" {
                        n = map.next_value::<Len>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Len(n))
            }
            fn visit_unit<E>(self) -> Result<Len, E> {
                Ok(Len(0))
            }
            fn visit_str<E>(self, _: &str) -> Result<Len, E> {
                Ok(Len(0))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Len, E> {
                Ok(Len(0))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Len, E> {
                Ok(Len(0))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Len, E> {
                Ok(Len(0))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Len, E> {
                Ok(Len(0))
            }
        }
        d.deserialize_any(V)
    }
}

/// GETs an API path and counts the answer's length while reading it
/// from the connection (the answer is never held whole); returns the
/// elapsed seconds (to the end of the body) and that length.
pub fn call_len(base: &str, path: &str, timeout: Duration) -> Result<(f64, usize), ApiError> {
    let t0 = Instant::now();
    let (status, mut body) = http::get_stream(&format!("{base}{path}"), timeout)?;
    if status != 200 {
        let mut text = Vec::new();
        let _ = (&mut body).take(http::KEPT_ERROR_BODY as u64).read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        let body: String = text.chars().take(200).collect();
        return Err(ApiError::Status { status, body: body.trim().to_owned() });
    }
    let n = answer_len(&mut body);
    // Whatever follows the JSON value is read too, so the time is the
    // whole answer's.
    let _ = std::io::copy(&mut body, &mut std::io::sink());
    Ok((t0.elapsed().as_secs_f64(), n?))
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
        let empty = json!({"resultType":"vector","result":[]});
        assert_eq!(single_value(&empty).unwrap(), None);
        let scalar = json!({"resultType":"scalar","result":[1.5,"2"]});
        assert_eq!(single_value(&scalar).unwrap(), Some(2.0));
        let two = json!({"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]});
        assert!(single_value(&two).is_err());
        let err =
            data_of(json!({"status":"error","errorType":"bad_data","error":"parse error"})).unwrap_err();
        assert_eq!(err.to_string(), "API error: parse error");
    }

    #[test]
    fn answer_length_without_building_the_answer() {
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[1,"1"],[2,"2"]]},{"metric":{},"values":[]}]},"warnings":["w"]}"#;
        assert_eq!(answer_len(&matrix[..]).unwrap(), 2);
        // `result` after other keys, nested objects inside elements.
        let vector = br#"{"data":{"result":[{"metric":{"result":"x"},"value":[1,"1"]}],"resultType":"vector"},"status":"success"}"#;
        assert_eq!(answer_len(&vector[..]).unwrap(), 1);
        assert_eq!(answer_len(&br#"{"status":"success","data":["a","b","c"]}"#[..]).unwrap(), 3);
        assert_eq!(
            answer_len(&br#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#[..])
                .unwrap(),
            2
        );
        assert_eq!(answer_len(&br#"{"status":"success","data":null}"#[..]).unwrap(), 0);
        let err = answer_len(&br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#[..])
            .unwrap_err();
        assert_eq!(err.to_string(), "API error: parse error");
        assert!(answer_len(&br#"{"status":"success","data":[1,2"#[..]).is_err());
    }

    #[test]
    fn outcomes_are_keyed_by_status_and_error_type() {
        assert_eq!(
            error_type(br#"{"status":"error","errorType":"timeout","error":"x"}"#),
            Some("timeout".into())
        );
        assert_eq!(error_type(b"<html>503</html>"), None);
        assert_eq!(error_label(br#"{"errorType":"timeout"}"#), Some("timeout".into()));
        assert_eq!(
            error_label(b"\n  couldn't start executing the request in 10.000 seconds\nmore\n"),
            Some("couldn't start executing the request in 10.000 seconds".into())
        );
        assert_eq!(error_label(&[b'x'; 500]).map(|l| l.len()), Some(120));
        assert_eq!(error_label(b" \n "), None);
        let o = Outcome::Status { status: 503, error_type: error_type(br#"{"errorType":"unavailable"}"#) };
        assert_eq!(o.kind(), "HTTP 503 / unavailable");
        assert_eq!(Outcome::Status { status: 429, error_type: None }.kind(), "HTTP 429");
        assert_eq!(Outcome::Transport("timed out".into()).kind(), "transport: timed out");
    }

    #[test]
    fn timed_call_to_a_closed_port_is_a_transport_error() {
        // Bind and drop to find a port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let t =
            call_timed(&format!("http://127.0.0.1:{port}"), "/api/v1/query?query=up", Duration::from_secs(2));
        assert_eq!(t.outcome, Outcome::Transport("connectionrefused".into()));
    }
}
