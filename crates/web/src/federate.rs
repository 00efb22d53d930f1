//! `/federate`: the newest sample of every selected series, in text format.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use ember_model::{is_stale_nan, Labels, SelectHints};

use crate::api::params::Params;
use crate::AppState;

pub(crate) async fn federate(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let sets = match p.match_sets(false) {
        Ok(s) => s,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{}\n", e.message)).into_response(),
    };
    let Ok(st) = s.storage() else {
        return (StatusCode::SERVICE_UNAVAILABLE, "storage is not ready\n").into_response();
    };
    let lookback = s.inner.lookback_delta_ms;
    let now = ember_model::sample::now_millis();
    let res = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let mint = now - lookback;
        let q = st.querier(mint, now).map_err(|e| e.to_string())?;
        let hints = SelectHints { start: mint, end: now, func: Some("series".into()), ..Default::default() };
        // Newest sample per series, across all match[] sets.
        let mut latest: BTreeSet<(String, Labels, i64, u64)> = BTreeSet::new();
        for ms in &sets {
            for series in q.select(true, &hints, ms).map_err(|e| e.to_string())? {
                let mut series = series.map_err(|e| e.to_string())?;
                let mut last = None;
                while series.samples.next() {
                    let (t, v) = series.samples.at();
                    // The lookback window excludes its left edge (3.x).
                    if t > mint && t <= now {
                        last = Some((t, v));
                    }
                }
                if let Some((t, v)) = last.filter(|(_, v)| !is_stale_nan(*v)) {
                    let name = series.labels.metric_name().unwrap_or("").to_owned();
                    latest.insert((name, series.labels, t, v.to_bits()));
                }
            }
        }
        let mut out = String::new();
        let mut current: Option<&str> = None;
        for (name, labels, t, bits) in &latest {
            if current != Some(name.as_str()) {
                let _ = writeln!(out, "# TYPE {name} untyped");
                current = Some(name.as_str());
            }
            let _ = writeln!(
                out,
                "{} {} {t}",
                labels.to_metric_string(),
                ember_model::format_text_value(f64::from_bits(*bits))
            );
        }
        Ok(out)
    })
    .await;
    match res {
        Ok(Ok(text)) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
        }
        Ok(Err(e)) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}
