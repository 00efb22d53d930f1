//! Metadata queries: `/api/v1/series`, `/api/v1/labels`,
//! `/api/v1/label/<name>/values`.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use ember_model::{LabelHints, Labels, Matcher, Querier, SelectHints, Storage, StorageError, Timestamp};
use serde_json::{Map, Value};

use super::params::{unescape_label_name, Params};
use super::{blocking, internal, success, ApiError, ErrorType};
use crate::AppState;

const TRUNCATED: &str = "results truncated due to limit";

/// Applies `limit`: keeps the first `limit` items and says so.
fn truncate<T>(v: &mut Vec<T>, limit: usize, warnings: &mut Vec<String>) {
    if limit > 0 && v.len() > limit {
        v.truncate(limit);
        warnings.push(TRUNCATED.to_owned());
    }
}

/// Series (label sets) matching any of the sets, sorted and unique.
fn select_series(
    st: &dyn Storage,
    start: Timestamp,
    end: Timestamp,
    sets: &[Vec<Matcher>],
    limit: usize,
) -> Result<Vec<Labels>, ApiError> {
    let q = st.querier(start, end).map_err(internal)?;
    // Ask for one more than the limit so truncation can be detected.
    let limit = if limit > 0 { limit + 1 } else { 0 };
    let hints = SelectHints { start, end, func: Some("series".into()), limit, ..Default::default() };
    let mut out: BTreeSet<Labels> = BTreeSet::new();
    for ms in sets {
        for s in q.select(true, &hints, ms).map_err(internal)? {
            out.insert(s.map_err(internal)?.labels);
        }
    }
    Ok(out.into_iter().collect())
}

pub(crate) async fn series(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    let sets = p.match_sets(true)?;
    let (start, end) = p.metadata_time_range()?;
    let limit = p.limit()?;
    let st = s.storage()?;
    let mut labels = blocking(move || select_series(&*st, start, end, &sets, limit)).await?;
    let mut warnings = Vec::new();
    truncate(&mut labels, limit, &mut warnings);
    let data: Vec<Map<String, Value>> = labels
        .iter()
        .map(|l| l.iter().map(|x| (x.name.to_owned(), Value::String(x.value.to_owned()))).collect())
        .collect();
    Ok(success(data, warnings, vec![]))
}

/// Label names or values, as `lookup` reads them, for `/labels` and
/// `/label/<name>/values`: the union over the `match[]` sets (every series
/// without one), cut at `limit` with Prometheus's warning.
async fn label_strings<F>(s: &AppState, p: &Params, lookup: F) -> Result<Response, ApiError>
where
    F: Fn(&dyn Querier, &LabelHints, &[Matcher]) -> Result<Vec<String>, StorageError> + Send + 'static,
{
    let sets = p.match_sets(false)?;
    let (start, end) = p.metadata_time_range()?;
    let limit = p.limit()?;
    let st = s.storage()?;
    let mut strings = blocking(move || {
        let q = st.querier(start, end).map_err(internal)?;
        let hints = LabelHints { limit: if limit > 0 { limit + 1 } else { 0 } };
        if sets.is_empty() {
            return lookup(&*q, &hints, &[]).map_err(internal);
        }
        let mut all = BTreeSet::new();
        for ms in &sets {
            all.extend(lookup(&*q, &hints, ms).map_err(internal)?);
        }
        Ok(all.into_iter().collect::<Vec<String>>())
    })
    .await?;
    let mut warnings = Vec::new();
    truncate(&mut strings, limit, &mut warnings);
    Ok(success(strings, warnings, vec![]))
}

pub(crate) async fn labels(
    State(s): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), &headers, &body);
    label_strings(&s, &p, |q, hints, ms| q.label_names(hints, ms)).await
}

pub(crate) async fn label_values(
    State(s): State<AppState>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return Err(ApiError::new(ErrorType::BadData, format!("invalid label name: {name:?}")));
    }
    let p = Params::from_request(q.as_deref(), &headers, &body);
    label_strings(&s, &p, move |q, hints, ms| q.label_values(&name, hints, ms)).await
}
