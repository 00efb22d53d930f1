//! Request parameters as Prometheus reads them: the URL query merged with a
//! form-encoded body (`r.Form` in Go), `match[]` repeated, times as Unix
//! seconds or RFC 3339.

use axum::body::Bytes;
use axum::http::{header, HeaderMap};
use ember_model::time::{parse_api_duration, parse_time, Duration};
use ember_model::{Matcher, Timestamp};

use super::{ApiError, ErrorType};

/// The smallest and largest times the API accepts when a bound is
/// omitted: Prometheus's `MinTime`/`MaxTime`, which stay representable as
/// Go `time.Time` and round-trip through RFC 3339.
pub const MIN_TIME: Timestamp = (i64::MIN / 1000 + 62_135_596_801) * 1000;
pub const MAX_TIME: Timestamp = (i64::MAX / 1000 - 62_135_596_801) * 1000 + 999;

/// All parameters of one request, in order.
#[derive(Debug, Default, Clone)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Merges the URL query and, for form POSTs, the body (body values
    /// first, as Go's `ParseForm` orders them).
    pub fn from_request(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Params {
        let mut pairs: Vec<(String, String)> = Vec::new();
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.trim_start().starts_with("application/x-www-form-urlencoded"));
        if is_form {
            pairs.extend(form_urlencoded::parse(body).into_owned());
        }
        if let Some(q) = query {
            pairs.extend(form_urlencoded::parse(q.as_bytes()).into_owned());
        }
        Params { pairs }
    }

    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params { pairs }
    }

    /// The first value of `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `name`.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.pairs.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// A time parameter, or `default` when absent or empty.
    pub fn time(&self, name: &str, default: Timestamp) -> Result<Timestamp, ApiError> {
        match self.get_nonempty(name) {
            None => Ok(default),
            // Prometheus wraps twice: `invalid parameter "start": Invalid
            // time value for 'start': cannot parse …`.
            Some(v) => parse_time(v)
                .map_err(|e| invalid_param(name, format!("Invalid time value for '{name}': {e}"))),
        }
    }

    /// A duration parameter (float seconds or `5m`).
    pub fn duration(&self, name: &str) -> Result<Option<Duration>, ApiError> {
        match self.get_nonempty(name) {
            None => Ok(None),
            Some(v) => parse_api_duration(v).map(Some).map_err(|e| invalid_param(name, e)),
        }
    }

    /// `limit`: a non-negative integer, 0 meaning none.
    pub fn limit(&self) -> Result<usize, ApiError> {
        let Some(v) = self.get_nonempty("limit") else { return Ok(0) };
        let n: i64 = v.parse().map_err(|_| {
            ApiError::new(ErrorType::BadData, format!("strconv.Atoi: parsing {v:?}: invalid syntax"))
        })?;
        usize::try_from(n).map_err(|_| ApiError::new(ErrorType::BadData, "limit must be non-negative"))
    }

    /// `start`/`end` with Prometheus's open defaults and no order check, as
    /// the series, labels and label values endpoints read them (an inverted
    /// range is passed on to the storage, not refused).
    pub fn metadata_time_range(&self) -> Result<(Timestamp, Timestamp), ApiError> {
        Ok((self.time("start", MIN_TIME)?, self.time("end", MAX_TIME)?))
    }

    /// `start`/`end` with Prometheus's open defaults and order check.
    pub fn time_range(&self) -> Result<(Timestamp, Timestamp), ApiError> {
        let start = self.time("start", MIN_TIME)?;
        let end = self.time("end", MAX_TIME)?;
        if end < start {
            return Err(ApiError::new(ErrorType::BadData, "end timestamp must not be before start time"));
        }
        Ok((start, end))
    }

    /// `match[]` selectors. With `required`, at least one must be given.
    /// Each set must contain a matcher that does not match the empty string.
    pub fn match_sets(&self, required: bool) -> Result<Vec<Vec<Matcher>>, ApiError> {
        let raw = self.get_all("match[]");
        if raw.is_empty() && required {
            return Err(ApiError::new(ErrorType::BadData, "no match[] parameter provided"));
        }
        let mut sets = Vec::with_capacity(raw.len());
        for s in raw {
            let ms = ember_promql::parse_metric_selector(s).map_err(|e| invalid_param("match[]", e))?;
            if ms.iter().all(|m| m.matches_empty()) {
                return Err(invalid_param("match[]", "match[] must contain at least one non-empty matcher"));
            }
            sets.push(ms);
        }
        Ok(sets)
    }
}

/// `invalid parameter "match[]": 1:4: parse error: …`
pub fn invalid_param(name: &str, e: impl std::fmt::Display) -> ApiError {
    ApiError::new(ErrorType::BadData, format!("invalid parameter {name:?}: {e}"))
}

/// Reverses Prometheus's `U__` value-encoding escape of label names, which
/// Grafana applies to names outside the legacy charset when they appear in
/// a URL path: `U__my_2e_name` is `my.name`, `__` is a literal `_`.
/// Anything malformed is returned unchanged.
pub fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else { return name.to_owned() };
    let mut out = String::with_capacity(rest.len());
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let mut hex = String::new();
        loop {
            match chars.next() {
                Some('_') => break,
                Some(h) if h.is_ascii_hexdigit() => hex.push(h),
                _ => return name.to_owned(),
            }
        }
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(ch) if !hex.is_empty() => out.push(ch),
            _ => return name.to_owned(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Params {
        Params::from_request(Some(q), &HeaderMap::new(), &Bytes::new())
    }

    #[test]
    fn form_body_and_query_merge() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/x-www-form-urlencoded".parse().unwrap());
        let ps = Params::from_request(
            Some("match[]=a&x=1"),
            &h,
            &Bytes::from_static(b"match[]=b%7Bc%3D%22d%22%7D"),
        );
        assert_eq!(ps.get_all("match[]"), vec!["b{c=\"d\"}", "a"]);
        assert_eq!(ps.get("x"), Some("1"));
    }

    #[test]
    fn times_and_errors() {
        assert_eq!(p("start=10&end=20").time_range().unwrap(), (10_000, 20_000));
        assert_eq!(p("").time_range().unwrap(), (MIN_TIME, MAX_TIME));
        let e = p("start=abc").time_range().unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "start": Invalid time value for 'start': cannot parse "abc" to a valid timestamp"#
        );
        let e = p("start=20&end=10").time_range().unwrap_err();
        assert_eq!(e.message, "end timestamp must not be before start time");
        // The bounds Prometheus prints for its MinTime/MaxTime.
        assert_eq!(ember_model::time::format_rfc3339(MIN_TIME), "-292273086-05-16T16:47:06Z");
        assert_eq!(ember_model::time::format_rfc3339(MAX_TIME), "292277025-08-18T07:12:54.999Z");
    }

    #[test]
    fn match_sets_validation() {
        assert_eq!(p("match[]=up").match_sets(true).unwrap().len(), 1);
        assert_eq!(p("").match_sets(true).unwrap_err().message, "no match[] parameter provided");
        assert!(p("").match_sets(false).unwrap().is_empty());
        let e = p("match[]=%7Ba%3D%22%22%7D").match_sets(true).unwrap_err();
        assert_eq!(
            e.message,
            r#"invalid parameter "match[]": match[] must contain at least one non-empty matcher"#
        );
        let e = p("match[]=up%7B").match_sets(true).unwrap_err();
        assert!(e.message.starts_with(r#"invalid parameter "match[]": 1:"#), "{}", e.message);
    }

    #[test]
    fn limits() {
        assert_eq!(p("limit=5").limit().unwrap(), 5);
        assert_eq!(p("").limit().unwrap(), 0);
        assert_eq!(p("limit=-1").limit().unwrap_err().message, "limit must be non-negative");
        assert!(p("limit=x").limit().is_err());
    }

    #[test]
    fn u_escaping() {
        assert_eq!(unescape_label_name("U__my_2e_name"), "my.name");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
        assert_eq!(unescape_label_name("U__caf_e9_"), "café");
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__bad_zz_"), "U__bad_zz_");
    }
}
