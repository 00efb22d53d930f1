//! Time and duration text, in the forms Prometheus accepts. The one place
//! where `5m`, RFC 3339 and Unix float seconds are parsed; both the config
//! and the HTTP API use it.

use std::fmt;

use crate::Timestamp;

/// A duration in milliseconds, as Prometheus's `model.Duration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub i64);

impl Duration {
    pub const fn from_millis(ms: i64) -> Duration {
        Duration(ms)
    }
    pub const fn from_secs(s: i64) -> Duration {
        Duration(s * 1000)
    }
    pub fn as_millis(self) -> i64 {
        self.0
    }
    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.max(0) as u64)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

/// Why a duration or time did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error("empty duration string")]
    EmptyDuration,
    #[error("not a valid duration string: {0:?}")]
    InvalidDuration(String),
    #[error("duration out of range")]
    DurationOutOfRange,
    #[error("cannot parse {0:?} to a valid timestamp")]
    InvalidTimestamp(String),
    #[error("cannot parse {0:?} to a valid duration")]
    InvalidApiDuration(String),
}

const UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses Prometheus's duration syntax: `1y2w3d4h5m6s7ms`, each unit at
/// most once and in that order, integers only; a bare `0` is allowed.
pub fn parse_duration(s: &str) -> Result<Duration, TimeError> {
    if s.is_empty() {
        return Err(TimeError::EmptyDuration);
    }
    if s == "0" {
        return Ok(Duration(0));
    }
    let invalid = || TimeError::InvalidDuration(s.to_owned());
    let b = s.as_bytes();
    let mut pos = 0;
    let mut next_unit = 0; // index into UNITS that the next unit must be at or after
    let mut total: i64 = 0;
    while pos < b.len() {
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return Err(invalid());
        }
        let n: i64 = s[start..pos].parse().map_err(|_| TimeError::DurationOutOfRange)?;
        let ustart = pos;
        while pos < b.len() && b[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &s[ustart..pos];
        let idx = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .map(|i| i + next_unit)
            .ok_or_else(invalid)?;
        next_unit = idx + 1;
        let ms = n.checked_mul(UNITS[idx].1).ok_or(TimeError::DurationOutOfRange)?;
        total = total.checked_add(ms).ok_or(TimeError::DurationOutOfRange)?;
    }
    Ok(Duration(total))
}

/// Formats like Prometheus's `model.Duration`: largest units first, zero
/// parts omitted, `0s` for zero; years and weeks only when they divide the
/// whole duration exactly (`90d`, not `12w6d`).
impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0;
        if ms == 0 {
            return f.write_str("0s");
        }
        let mut out = String::new();
        if ms < 0 {
            out.push('-');
            ms = -ms;
        }
        for (i, (u, mult)) in UNITS.into_iter().enumerate() {
            let exact_only = i < 2; // y, w
            if exact_only && ms % mult != 0 {
                continue;
            }
            let n = ms / mult;
            if n > 0 {
                out.push_str(&n.to_string());
                out.push_str(u);
                ms -= n * mult;
            }
        }
        f.write_str(&out)
    }
}

/// Parses an API time parameter: Unix seconds as a float (`1700000000.5`)
/// or RFC 3339 (`2023-11-14T22:13:20Z`). Returns milliseconds.
pub fn parse_time(s: &str) -> Result<Timestamp, TimeError> {
    let invalid = || TimeError::InvalidTimestamp(s.to_owned());
    if let Ok(f) = s.parse::<f64>() {
        if !f.is_finite() {
            return Err(invalid());
        }
        let ms = (f * 1000.0).round();
        if ms > i64::MAX as f64 || ms < i64::MIN as f64 {
            return Err(invalid());
        }
        return Ok(ms as i64);
    }
    parse_rfc3339(s).ok_or_else(invalid)
}

/// Parses an API duration parameter: float seconds or a duration string.
pub fn parse_api_duration(s: &str) -> Result<Duration, TimeError> {
    if let Ok(f) = s.parse::<f64>() {
        let ms = (f * 1000.0).round();
        if !f.is_finite() || ms > i64::MAX as f64 || ms < i64::MIN as f64 {
            return Err(TimeError::InvalidApiDuration(s.to_owned()));
        }
        return Ok(Duration(ms as i64));
    }
    parse_duration(s).map_err(|_| TimeError::InvalidApiDuration(s.to_owned()))
}

/// Minimal RFC 3339: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b'T' || b[10] == b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut pos = 19;
    let mut frac_ms = 0i64;
    if b.get(pos) == Some(&b'.') {
        pos += 1;
        let start = pos;
        while pos < b.len() && b[pos].is_ascii_digit() {
            pos += 1;
        }
        if pos == start {
            return None;
        }
        let digits = &s[start..pos];
        let mut ms_digits: String = digits.chars().take(3).collect();
        while ms_digits.len() < 3 {
            ms_digits.push('0');
        }
        frac_ms = ms_digits.parse().ok()?;
    }
    let offset_min = match b.get(pos)? {
        b'Z' | b'z' if pos + 1 == b.len() => 0,
        c @ (b'+' | b'-') if pos + 6 == b.len() && b[pos + 3] == b':' => {
            let oh = num(pos + 1..pos + 3)?;
            let om = num(pos + 4..pos + 6)?;
            let m = oh * 60 + om;
            if *c == b'-' {
                -m
            } else {
                m
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo, d);
    let secs = days * 86400 + h * 3600 + mi * 60 + sec - offset_min * 60;
    Some(secs * 1000 + frac_ms)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's
/// algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// (year, month, day) for days since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Formats milliseconds as RFC 3339 in UTC with millisecond precision when
/// needed (`2023-11-14T22:13:20Z`, `2023-11-14T22:13:20.5Z`).
pub fn format_rfc3339(t: Timestamp) -> String {
    let secs = t.div_euclid(1000);
    let ms = t.rem_euclid(1000);
    let days = secs.div_euclid(86400);
    let sod = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}", sod / 3600, (sod / 60) % 60, sod % 60);
    if ms != 0 {
        let frac = format!("{ms:03}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration(300_000)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration(5_400_000)));
        assert_eq!(
            parse_duration("1y2w3d4h5m6s7ms").unwrap().0,
            31536000000 + 1209600000 + 259200000 + 14400000 + 300000 + 6000 + 7
        );
        assert_eq!(parse_duration("0"), Ok(Duration(0)));
        assert_eq!(parse_duration("0s"), Ok(Duration(0)));
        assert_eq!(parse_duration("150ms"), Ok(Duration(150)));
        assert_eq!(parse_duration(""), Err(TimeError::EmptyDuration));
        for bad in ["5", "1.5h", "30m1h", "1h1h", "5 m", "-5m", "m", "5M", "1d1y"] {
            assert!(matches!(parse_duration(bad), Err(TimeError::InvalidDuration(_))), "{bad}");
        }
        assert_eq!(parse_duration("99999999999999999999y"), Err(TimeError::DurationOutOfRange));
    }

    #[test]
    fn duration_display() {
        assert_eq!(Duration(0).to_string(), "0s");
        assert_eq!(Duration(5_400_000).to_string(), "1h30m");
        assert_eq!(Duration(15_000).to_string(), "15s");
        assert_eq!(Duration(86_400_000 * 15).to_string(), "15d");
        assert_eq!(Duration(86_400_000 * 14).to_string(), "2w");
        assert_eq!(Duration(86_400_000 * 90).to_string(), "90d");
        assert_eq!(Duration(86_400_000 * 365).to_string(), "1y");
        assert_eq!(Duration(1500).to_string(), "1s500ms");
    }

    #[test]
    fn api_times() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.123"), Ok(1_700_000_000_123));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-15T00:13:20+02:00"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert!(parse_time("2023-02-30T00:00:00Z").is_err());
        assert!(parse_time("NaN").is_err());
        assert_eq!(parse_api_duration("15"), Ok(Duration(15_000)));
        assert_eq!(parse_api_duration("0.5"), Ok(Duration(500)));
        assert_eq!(parse_api_duration("1m"), Ok(Duration(60_000)));
        assert!(parse_api_duration("x").is_err());
    }

    #[test]
    fn rfc3339_roundtrip() {
        for t in [0, 1_700_000_000_000, 1_700_000_000_500, -1, 951_782_400_000] {
            assert_eq!(parse_time(&format_rfc3339(t)), Ok(t), "{t}");
        }
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    }
}
