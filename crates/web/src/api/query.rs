//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`.
//!
//! Queries run on the blocking pool (evaluation is synchronous, CPU-bound
//! work), at most `--query.max-concurrency` at a time, each bounded by
//! `--query.timeout` (or the request's smaller `timeout`).

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ember_model::Timestamp;
use ember_promql::engine::{EvalError, Value};
use ember_promql::{Expr, ValueType};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::params::{invalid_param, Params};
use super::{success, ApiError, ErrorType};
use crate::AppState;

/// Prometheus's limit on points per series of a range query.
const MAX_POINTS: i64 = 11_000;

/// A timestamp in the API's form: seconds with up to 3 decimals, written
/// the way Prometheus writes them (`1435781451.781`, `1435781451.05` is
/// `1435781451.050`).
struct ApiTime(Timestamp);

impl Serialize for ApiTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let (sign, abs) = if t < 0 { ("-", t.unsigned_abs()) } else { ("", t as u64) };
        let frac = abs % 1000;
        let text = if frac == 0 {
            format!("{sign}{}", abs / 1000)
        } else {
            format!("{sign}{}.{frac:03}", abs / 1000)
        };
        // Raw, so `.050` keeps Prometheus's three decimals.
        let raw = serde_json::value::RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

/// A sample value as the API writes it: a string, `NaN`, `+Inf`, `-Inf`.
pub fn api_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        // Rust's shortest round-trip form without exponent is Go's
        // FormatFloat(v, 'f', -1, 64).
        format!("{v}")
    }
}

struct Point(Timestamp, f64);
impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(2))?;
        seq.serialize_element(&ApiTime(self.0))?;
        seq.serialize_element(&api_value(self.1))?;
        seq.end()
    }
}

struct Metric<'a>(&'a ember_model::Labels);
impl Serialize for Metric<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        for l in self.0.iter() {
            m.serialize_entry(l.name, l.value)?;
        }
        m.end()
    }
}

/// `data` of a query answer.
struct QueryData<'a>(&'a Value);

impl Serialize for QueryData<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("resultType", self.0.type_name())?;
        match self.0 {
            Value::Scalar(t, v) => m.serialize_entry("result", &Point(*t, *v))?,
            Value::String(t, v) => m.serialize_entry("result", &(ApiTime(*t), v))?,
            Value::Vector(samples) => {
                let items: Vec<VectorItem<'_>> = samples.iter().map(VectorItem).collect();
                m.serialize_entry("result", &items)?
            }
            Value::Matrix(series) => {
                let items: Vec<MatrixItem<'_>> = series.iter().map(MatrixItem).collect();
                m.serialize_entry("result", &items)?
            }
        }
        m.end()
    }
}

struct VectorItem<'a>(&'a ember_promql::engine::InstantSample);
impl Serialize for VectorItem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &Metric(&self.0.metric))?;
        m.serialize_entry("value", &Point(self.0.t, self.0.v))?;
        m.end()
    }
}

struct MatrixItem<'a>(&'a ember_promql::engine::RangeSeries);
impl Serialize for MatrixItem<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(2))?;
        m.serialize_entry("metric", &Metric(&self.0.metric))?;
        let pts: Vec<Point> = self.0.points.iter().map(|&(t, v)| Point(t, v)).collect();
        m.serialize_entry("values", &pts)?;
        m.end()
    }
}

/// Owned answer so it can be built on the blocking pool.
struct QueryAnswer(Value);
impl Serialize for QueryAnswer {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        QueryData(&self.0).serialize(s)
    }
}

fn parse_query(p: &Params) -> Result<Expr, ApiError> {
    let q = p.get("query").unwrap_or("");
    ember_promql::parse_with_options(q, ember_promql::ParseOptions { experimental_functions: true })
        .map_err(|e| invalid_param("query", e))
}

fn eval_error(e: EvalError) -> ApiError {
    match e {
        EvalError::Storage(s) => ApiError::new(ErrorType::Internal, s.to_string()),
        other => ApiError::new(ErrorType::Execution, other.to_string()),
    }
}

/// Runs `f` on the blocking pool under the concurrency limit and timeout.
async fn run_query<F>(s: &AppState, timeout: Option<Duration>, f: F) -> Result<Value, ApiError>
where
    F: FnOnce() -> Result<Value, EvalError> + Send + 'static,
{
    let limit = s.inner.query.timeout;
    let timeout = timeout.map_or(limit, |t| t.min(limit));
    let _permit = s
        .inner
        .query
        .concurrency
        .acquire()
        .await
        .map_err(|_| ApiError::new(ErrorType::Unavailable, "query engine is shutting down"))?;
    let task = tokio::task::spawn_blocking(f);
    match tokio::time::timeout(timeout, task).await {
        Err(_) => Err(ApiError::new(ErrorType::Timeout, "query timed out in expression evaluation")),
        Ok(Err(join)) => Err(ApiError::new(ErrorType::Internal, join.to_string())),
        Ok(Ok(r)) => r.map_err(eval_error),
    }
}

fn timeout_param(p: &Params) -> Result<Option<Duration>, ApiError> {
    Ok(p.duration("timeout")?.map(|d| d.as_std()))
}

pub(crate) async fn query(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let timeout = timeout_param(&p)?;
    let ts = p.time("time", ember_model::sample::now_millis())?;
    let expr = parse_query(&p)?;
    let st = s
        .inner
        .storage
        .clone()
        .ok_or_else(|| ApiError::new(ErrorType::Unavailable, "storage is not ready"))?;
    let engine = s.inner.query.engine.clone();
    let v = run_query(&s, timeout, move || engine.instant_query(&*st, &expr, ts)).await?;
    Ok(success(QueryAnswer(v), vec![], vec![]))
}

pub(crate) async fn query_range(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let start = required_time(&p, "start")?;
    let end = required_time(&p, "end")?;
    if end < start {
        return Err(ApiError::new(ErrorType::BadData, "end timestamp must not be before start time"));
    }
    let step = match p.duration("step")? {
        Some(d) => d.as_millis(),
        None => return Err(invalid_param("step", "cannot parse \"\" to a valid duration")),
    };
    if step <= 0 {
        return Err(ApiError::new(
            ErrorType::BadData,
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(ApiError::new(
            ErrorType::BadData,
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let timeout = timeout_param(&p)?;
    let expr = parse_query(&p)?;
    // Prometheus refuses this when creating the query: a parameter error.
    if !matches!(expr.value_type(), ValueType::Scalar | ValueType::Vector) {
        return Err(invalid_param(
            "query",
            format!(
                "invalid expression type {:?} for range query, must be Scalar or instant Vector",
                expr.value_type().documented()
            ),
        ));
    }
    let st = s
        .inner
        .storage
        .clone()
        .ok_or_else(|| ApiError::new(ErrorType::Unavailable, "storage is not ready"))?;
    let engine = s.inner.query.engine.clone();
    let v =
        run_query(&s, timeout, move || engine.range_query(&*st, &expr, start, end, step).map(Value::Matrix))
            .await?;
    Ok(success(QueryAnswer(v), vec![], vec![]))
}

fn required_time(p: &Params, name: &str) -> Result<Timestamp, ApiError> {
    match p.get_nonempty(name) {
        Some(v) => ember_model::time::parse_time(v).map_err(|e| invalid_param(name, e)),
        None => Err(invalid_param(name, "cannot parse \"\" to a valid timestamp")),
    }
}

pub(crate) async fn format_query(
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let expr = parse_query(&p)?;
    Ok(success(expr.to_string(), vec![], vec![]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_like_prometheus() {
        let j = |t| serde_json::to_string(&ApiTime(t)).unwrap();
        assert_eq!(j(1_435_781_451_781), "1435781451.781");
        assert_eq!(j(1_435_781_451_050), "1435781451.050");
        assert_eq!(j(1_435_781_451_000), "1435781451");
        assert_eq!(j(-1_500), "-1.500");
        assert_eq!(j(4_000), "4");
    }

    #[test]
    fn values_like_prometheus() {
        assert_eq!(api_value(2.0), "2");
        assert_eq!(api_value(0.1), "0.1");
        assert_eq!(api_value(1e21), "1000000000000000000000");
        assert_eq!(api_value(f64::NAN), "NaN");
        assert_eq!(api_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(api_value(-0.0), "-0");
    }
}
