//! Samples, timestamps and the staleness marker.

/// Milliseconds since the Unix epoch, as Prometheus stores time.
pub type Timestamp = i64;

/// The bit pattern Prometheus writes as a staleness marker. It is a NaN, so
/// it must be recognised by its bits, never by comparison.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
/// The NaN Prometheus uses for an ordinary "NaN" value.
pub const NORMAL_NAN_BITS: u64 = 0x7ff8_0000_0000_0001;

/// The staleness marker as an `f64`.
#[inline]
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// True only for the exact staleness-marker bit pattern.
#[inline]
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub t: Timestamp,
    pub v: f64,
}

impl Sample {
    pub fn new(t: Timestamp, v: f64) -> Sample {
        Sample { t, v }
    }

    pub fn is_stale(&self) -> bool {
        is_stale_nan(self.v)
    }
}

/// Bitwise equality, so NaN samples (and the stale marker) compare equal to
/// themselves: what storage and tests need.
impl PartialEq for Sample {
    fn eq(&self, o: &Self) -> bool {
        self.t == o.t && self.v.to_bits() == o.v.to_bits()
    }
}
impl Eq for Sample {}

/// Milliseconds from a `SystemTime`.
pub fn timestamp_from_system_time(t: std::time::SystemTime) -> Timestamp {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The current time in milliseconds.
pub fn now_millis() -> Timestamp {
    timestamp_from_system_time(std::time::SystemTime::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_marker_is_nan_but_distinct() {
        let s = stale_nan();
        assert!(s.is_nan());
        assert!(is_stale_nan(s));
        assert!(!is_stale_nan(f64::NAN));
        assert!(!is_stale_nan(f64::from_bits(NORMAL_NAN_BITS)));
        assert_eq!(Sample::new(1, s), Sample::new(1, stale_nan()));
        assert_ne!(Sample::new(1, s), Sample::new(1, f64::NAN));
    }
}

/// Formats a float as the text exposition format writes it: Go's
/// `strconv.FormatFloat(v, 'g', -1, 64)`: shortest round-trip digits, in
/// exponent form when the decimal exponent is below -4 or at least 6
/// (`2.939136e+06`, `681179`, `1e-05`), and `NaN`, `+Inf`, `-Inf`.
pub fn format_text_value(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.234567e6".
    let sci = format!("{v:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    // Plain form; Rust's Display prints shortest digits without exponent.
    format!("{v}")
}

#[cfg(test)]
mod format_tests {
    use super::format_text_value as f;

    #[test]
    fn go_g_format() {
        assert_eq!(f(1.0), "1");
        assert_eq!(f(0.5), "0.5");
        assert_eq!(f(681179.0), "681179");
        assert_eq!(f(2939136.0), "2.939136e+06");
        assert_eq!(f(1e21), "1e+21");
        assert_eq!(f(1.5e300), "1.5e+300");
        assert_eq!(f(0.0001), "0.0001");
        assert_eq!(f(0.00001), "1e-05");
        assert_eq!(f(-2.5e-7), "-2.5e-07");
        assert_eq!(f(f64::NAN), "NaN");
        assert_eq!(f(f64::NEG_INFINITY), "-Inf");
        assert_eq!(f(-0.0), "-0");
    }
}
