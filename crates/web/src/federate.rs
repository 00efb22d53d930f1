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
    let lookback = s.inner.query.engine.options().lookback_delta;
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
            write_series(&mut out, name, labels);
            let _ = writeln!(out, " {} {t}", ember_model::format_text_value(f64::from_bits(*bits)));
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

/// Writes a series the way Prometheus's federation does (text exposition
/// format): labels in order after the name, separated by `,` without a
/// space, values escaping only `\\`, `"` and newline; and `instance=""`
/// appended when the series has no `instance`, so that the federating
/// server's own `instance` label is not attached to it.
fn write_series(out: &mut String, name: &str, labels: &Labels) {
    let legacy = ember_model::names::is_valid_legacy_metric_name(name);
    let mut first = true;
    if legacy {
        out.push_str(name);
    } else {
        out.push('{');
        write_escaped(out, name);
        first = false;
    }
    let mut pairs: Vec<(&str, &str)> =
        labels.iter().filter(|l| l.name != ember_model::METRIC_NAME).map(|l| (l.name, l.value)).collect();
    if labels.get("instance").is_none() {
        pairs.push(("instance", ""));
    }
    for (n, v) in pairs {
        out.push(if first { '{' } else { ',' });
        first = false;
        if ember_model::names::is_valid_legacy_label_name(n) {
            out.push_str(n);
        } else {
            write_escaped(out, n);
        }
        out.push('=');
        write_escaped(out, v);
    }
    if !first {
        out.push('}');
    }
}

fn write_escaped(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_lines_match_prometheus_federation() {
        let l = Labels::from_pairs(&[("__name__", "m"), ("job", "a\tb\"c\\d\ne")]);
        let mut out = String::new();
        write_series(&mut out, "m", &l);
        assert_eq!(out, "m{job=\"a\tb\\\"c\\\\d\\ne\",instance=\"\"}");
        let l = Labels::from_pairs(&[("__name__", "m"), ("instance", "x:1"), ("job", "j")]);
        let mut out = String::new();
        write_series(&mut out, "m", &l);
        assert_eq!(out, "m{instance=\"x:1\",job=\"j\"}");
    }
}
