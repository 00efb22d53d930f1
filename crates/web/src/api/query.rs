//! `/api/v1/query`, `/api/v1/query_range`, `/api/v1/format_query`.
//!
//! Queries run on the blocking pool (evaluation is synchronous, CPU-bound
//! work), at most `--query.max-concurrency` at a time, each bounded by
//! `--query.timeout` (or the request's smaller `timeout`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use ember_model::Timestamp;
use ember_promql::engine::{EvalError, QueryControl, QueryResult, Value};
use ember_promql::{Expr, ValueType};
use serde::Serialize;

use super::json;
use super::params::{invalid_param, Params};
use super::{success, ApiError, ErrorType};
use crate::AppState;

/// Prometheus's limit on points per series of a range query.
const MAX_POINTS: i64 = 11_000;

/// Prometheus's `data.stats`: timings in seconds and sample counts.
#[derive(Serialize)]
struct StatsJson {
    timings: TimingsJson,
    samples: SamplesJson,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TimingsJson {
    eval_total_time: f64,
    result_sort_time: f64,
    query_preparation_time: f64,
    inner_eval_time: f64,
    exec_queue_time: f64,
    exec_total_time: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SamplesJson {
    total_queryable_samples: u64,
    peak_samples: u64,
}

/// A finished query with the times `run_query` measured around it.
struct Ran {
    result: QueryResult,
    queue: Duration,
    total: Duration,
}

impl Ran {
    fn answer(self, with_stats: bool) -> Response {
        let st = &self.result.stats;
        let stats = with_stats.then(|| StatsJson {
            timings: TimingsJson {
                eval_total_time: (st.query_preparation + st.inner_eval + st.result_sort).as_secs_f64(),
                result_sort_time: st.result_sort.as_secs_f64(),
                query_preparation_time: st.query_preparation.as_secs_f64(),
                inner_eval_time: st.inner_eval.as_secs_f64(),
                exec_queue_time: self.queue.as_secs_f64(),
                exec_total_time: self.total.as_secs_f64(),
            },
            samples: SamplesJson {
                total_queryable_samples: st.total_queryable_samples,
                peak_samples: st.peak_samples,
            },
        });
        let QueryResult { value, warnings, infos, .. } = self.result;
        // Written by hand rather than through `success`: see `json`.
        let mut body = Vec::with_capacity(256 + 64 * value_len(&value));
        body.extend_from_slice(b"{\"status\":\"success\",\"data\":{");
        json::write_result(&mut body, &value);
        if let Some(st) = &stats {
            body.extend_from_slice(b",\"stats\":");
            // Plain structs of numbers: serialising them cannot fail.
            let _ = serde_json::to_writer(&mut body, st);
        }
        body.push(b'}');
        for (key, list) in [("warnings", &warnings), ("infos", &infos)] {
            if !list.is_empty() {
                body.extend_from_slice(format!(",\"{key}\":").as_bytes());
                let _ = serde_json::to_writer(&mut body, list);
            }
        }
        body.push(b'}');
        ([(header::CONTENT_TYPE, "application/json")], body).into_response()
    }
}

/// Points in a result, to size the answer's buffer.
fn value_len(v: &Value) -> usize {
    match v {
        Value::Vector(s) => s.len(),
        Value::Matrix(s) => s.iter().map(|s| s.points.len()).sum(),
        Value::Scalar(..) | Value::String(..) => 1,
    }
}

pub(super) fn parse_query(p: &Params) -> Result<Expr, ApiError> {
    let q = p.get("query").unwrap_or("");
    // Duration expressions are on by default since Prometheus 3.14.
    let opts = ember_promql::ParseOptions { experimental_functions: true, duration_expressions: true };
    ember_promql::parse_with_options(q, opts).map_err(|e| invalid_param("query", e))
}

fn eval_error(e: EvalError) -> ApiError {
    match e {
        EvalError::Storage(s) => ApiError::new(ErrorType::Internal, s.to_string()),
        EvalError::Timeout => ApiError::new(ErrorType::Timeout, e.to_string()),
        EvalError::Canceled => ApiError::new(ErrorType::Canceled, e.to_string()),
        other => ApiError::new(ErrorType::Execution, other.to_string()),
    }
}

/// Sets the query's cancel flag when dropped: when the handler future is
/// dropped (the client went away) or finishes, a still-running evaluation
/// on the blocking pool stops at its next check.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs `f` on the blocking pool under the concurrency limit, with a
/// `QueryControl` whose deadline is the timeout and whose cancel flag is
/// set if this future is dropped.
async fn run_query<F>(s: &AppState, timeout: Option<Duration>, query: &str, f: F) -> Result<Ran, ApiError>
where
    F: FnOnce(QueryControl) -> Result<QueryResult, EvalError> + Send + 'static,
{
    let limit = s.inner.query.timeout;
    let timeout = timeout.map_or(limit, |t| t.min(limit));
    let queued = Instant::now();
    let _permit = s
        .inner
        .query
        .concurrency
        .acquire()
        .await
        .map_err(|_| ApiError::new(ErrorType::Unavailable, "query engine is shutting down"))?;
    let queue = queued.elapsed();
    let started = Instant::now();
    let cancel = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancel.clone());
    let ctl = QueryControl {
        deadline: Instant::now().checked_add(timeout),
        cancel: Some(cancel),
        query: query.to_string(),
    };
    let task = tokio::task::spawn_blocking(move || f(ctl));
    // The engine stops itself at the deadline; this bound only covers work
    // between its checks (e.g. a slow storage call). Dropping `_guard`
    // then cancels the evaluation.
    let backstop = timeout.saturating_add(Duration::from_millis(500));
    match tokio::time::timeout(backstop, task).await {
        Err(_) => Err(ApiError::new(ErrorType::Timeout, "query timed out in expression evaluation")),
        Ok(Err(join)) => Err(ApiError::new(ErrorType::Internal, join.to_string())),
        Ok(Ok(r)) => {
            r.map(|result| Ran { result, queue, total: started.elapsed() + queue }).map_err(eval_error)
        }
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
    let st = s.storage()?;
    let engine = s.inner.query.engine.clone();
    let text = p.get("query").unwrap_or("");
    let r = run_query(&s, timeout, text, move |ctl| engine.instant_query_full(&*st, &expr, ts, Some(&ctl)))
        .await?;
    Ok(r.answer(p.get_nonempty("stats").is_some()))
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
        return Err(invalid_param("end", "end timestamp must not be before start time"));
    }
    let step = match p.duration("step")? {
        Some(d) => d.as_millis(),
        None => return Err(invalid_param("step", "cannot parse \"\" to a valid duration")),
    };
    if step <= 0 {
        return Err(invalid_param(
            "step",
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
    let st = s.storage()?;
    let engine = s.inner.query.engine.clone();
    let text = p.get("query").unwrap_or("");
    let r = run_query(&s, timeout, text, move |ctl| {
        engine.range_query_full(&*st, &expr, start, end, step, Some(&ctl))
    })
    .await?;
    Ok(r.answer(p.get_nonempty("stats").is_some()))
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

    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use ember_model::memory::MemStorage;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::{router, AppState, Options};

    fn state() -> AppState {
        let s = MemStorage::new();
        let l = ember_model::Labels::from_pairs(&[("__name__", "x")]);
        for i in 0..2000 {
            s.add(&l, i * 60_000, i as f64).unwrap();
        }
        AppState::new(Options::default(), Some(Arc::new(s)), vec![])
    }

    async fn get(state: AppState, uri: &str) -> (u16, serde_json::Value) {
        let resp = router(state).oneshot(Request::get(uri).body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn heavy_query_times_out_in_the_engine() {
        // Nested subqueries at 1s resolution over 30 days: 2.6 M outer
        // steps, each summing a 3600-point window, far more than 50 ms of
        // work on any machine. With timeout=50ms the answer must be the
        // timeout error, in bounded time. (That the engine stops itself,
        // rather than the handler's backstop, is tested in the engine's
        // tests/control.rs; here a loaded CI machine must not flake.)
        let q = "sum_over_time((sum_over_time(x[1h:1s]))[30d:1s])";
        let uri = format!(
            "/api/v1/query?time=2592000&timeout=50ms&query={}",
            form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let started = Instant::now();
        let (status, v) = get(state(), &uri).await;
        let took = started.elapsed();
        assert_eq!(status, 503, "{v}");
        assert_eq!(v["errorType"], "timeout");
        assert_eq!(v["error"], "query timed out in expression evaluation");
        assert!(took < Duration::from_secs(5), "took {took:?}");
    }

    #[tokio::test]
    async fn annotations_in_the_envelope() {
        let q = form_urlencoded::byte_serialize(b"rate(x[5m])").collect::<String>();
        let (status, v) = get(state(), &format!("/api/v1/query?time=600&query={q}")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["infos"],
            serde_json::json!([
                "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"x\" (1:6)"
            ])
        );
        // stats=all adds Prometheus's data.stats.
        let (status, v) = get(state(), &format!("/api/v1/query?time=600&stats=all&query={q}")).await;
        assert_eq!(status, 200, "{v}");
        let st = &v["data"]["stats"];
        // rate(x[5m]) at 600s reads the samples at 360..600s: 5 of them.
        assert_eq!(st["samples"]["totalQueryableSamples"], 5, "{v}");
        for k in [
            "evalTotalTime",
            "resultSortTime",
            "queryPreparationTime",
            "innerEvalTime",
            "execQueueTime",
            "execTotalTime",
        ] {
            assert!(st["timings"][k].as_f64().is_some_and(|t| t >= 0.0), "{k}: {v}");
        }
        let (_, v) = get(state(), &format!("/api/v1/query?time=600&query={q}")).await;
        assert!(v["data"].get("stats").is_none(), "{v}");
        let q = form_urlencoded::byte_serialize(b"sort(x)").collect::<String>();
        let (status, v) =
            get(state(), &format!("/api/v1/query_range?start=0&end=120&step=60&query={q}")).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["warnings"].as_array().map(Vec::len), Some(1), "{v}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_request_cancels_the_evaluation() {
        let s = state();
        let (tx, rx) = std::sync::mpsc::channel();
        // The "evaluation" waits for its cancel flag (at most 5s) and
        // reports whether it saw it.
        let fut = run_query(&s, None, "q", move |ctl| {
            let flag = ctl.cancel.clone().unwrap();
            let started = Instant::now();
            while !flag.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
            let _ = tx.send(flag.load(Ordering::Relaxed));
            Err(EvalError::Canceled)
        });
        // The client goes away: the handler future is dropped.
        assert!(tokio::time::timeout(Duration::from_millis(50), fut).await.is_err());
        let saw = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(2))).await.unwrap();
        assert_eq!(saw, Ok(true));
        let e = eval_error(EvalError::Canceled);
        assert_eq!(e.kind.status().as_u16(), 499);
    }
}
