//! Float and timestamp text as Prometheus's parsers accept it.
//!
//! Prometheus uses Go's `strconv.ParseFloat` but first rejects any of `p`,
//! `P` and `_`, which keeps it to the pre-Go-1.13 syntax: no hexadecimal
//! floats and no digit separators. What remains is the decimal grammar
//! `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?` plus the
//! case-insensitive words `inf`/`infinity` (optionally signed) and `nan`
//! (never signed). A finite number that overflows `f64` is an error in Go
//! (`ErrRange`), whereas Rust's parser returns infinity, so overflow is
//! checked explicitly here.

use ember_model::NORMAL_NAN_BITS;

/// Why a float token was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatError {
    /// `p`, `P` or `_`: Prometheus refuses these before calling ParseFloat.
    UnsupportedChar,
    /// Not a float at all.
    Syntax,
    /// A finite literal beyond the range of `f64`.
    Range,
}

impl FloatError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            FloatError::UnsupportedChar => "unsupported character in float",
            FloatError::Syntax => "invalid float syntax",
            FloatError::Range => "float value out of range",
        }
    }
}

/// Parses a sample value. NaN comes back as Prometheus's normal NaN bit
/// pattern so that it can never be mistaken for the staleness marker.
#[inline]
pub(crate) fn parse_value(b: &[u8]) -> Result<f64, FloatError> {
    let v = parse_float(b)?;
    if v.is_nan() {
        return Ok(f64::from_bits(NORMAL_NAN_BITS));
    }
    Ok(v)
}

/// Go-compatible `ParseFloat` restricted as Prometheus restricts it.
#[inline]
pub(crate) fn parse_float(b: &[u8]) -> Result<f64, FloatError> {
    if let Some(v) = fast_decimal(b) {
        return Ok(v);
    }
    slow_parse_float(b)
}

/// Exact powers of ten representable in an `f64`.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// Clinger's fast path for the common case: `[+-]?digits[.digits][e[+-]digits]`
/// with at most 15 significant digits and a decimal exponent within ±22.
/// The mantissa and the power of ten are both exact, so one multiplication
/// or division gives the correctly rounded result, identical to a full
/// parser's. Anything else returns `None` and takes the general path.
#[inline]
fn fast_decimal(b: &[u8]) -> Option<f64> {
    let (neg, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    let mut i = 0;
    let mut m: u64 = 0;
    let mut digits = 0u32;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
        digits += 1;
        i += 1;
    }
    let mut frac = 0i32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() {
                break;
            }
            m = m.wrapping_mul(10).wrapping_add(u64::from(c - b'0'));
            digits += 1;
            frac += 1;
            i += 1;
        }
    }
    if digits == 0 || digits > 15 {
        return None;
    }
    let mut exp = 0i32;
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        let eneg = match b.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while let Some(&c) = b.get(i) {
            if !c.is_ascii_digit() || i - start >= 4 {
                break;
            }
            exp = exp * 10 + i32::from(c - b'0');
            i += 1;
        }
        if i == start {
            return None;
        }
        if eneg {
            exp = -exp;
        }
    }
    if i != b.len() {
        return None;
    }
    let e10 = exp - frac;
    let v = m as f64;
    let v = if (0..=22).contains(&e10) {
        v * POW10[e10 as usize]
    } else if (-22..0).contains(&e10) {
        v / POW10[(-e10) as usize]
    } else {
        return None;
    };
    Some(if neg { -v } else { v })
}

fn slow_parse_float(b: &[u8]) -> Result<f64, FloatError> {
    if b.iter().any(|&c| c == b'p' || c == b'P' || c == b'_') {
        return Err(FloatError::UnsupportedChar);
    }
    let (negative, body) = match b.first() {
        Some(b'+') => (false, &b[1..]),
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    if body.first().is_some_and(u8::is_ascii_alphabetic) {
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Ok(if negative { f64::NEG_INFINITY } else { f64::INFINITY });
        }
        // Go accepts "nan" only without a sign.
        if body.len() == b.len() && body.eq_ignore_ascii_case(b"nan") {
            return Ok(f64::NAN);
        }
        return Err(FloatError::Syntax);
    }
    // Rust's grammar for what is left is the same as Go's decimal grammar,
    // but Rust would also take words like "inf" after a sign check we have
    // already done, so only digits, dots, exponents and signs get through.
    if !body.iter().all(|&c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'+' | b'-')) {
        return Err(FloatError::Syntax);
    }
    let s = std::str::from_utf8(b).map_err(|_| FloatError::Syntax)?;
    let v: f64 = s.parse().map_err(|_| FloatError::Syntax)?;
    if v.is_infinite() {
        return Err(FloatError::Range);
    }
    Ok(v)
}

/// Parses a text-format timestamp: Prometheus's lexer takes only ASCII
/// digits (no sign), then `strconv.ParseInt` rejects values above `i64::MAX`.
#[inline]
pub(crate) fn parse_ms_timestamp(digits: &[u8]) -> Option<i64> {
    let mut n: i64 = 0;
    for &c in digits {
        n = n.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(n)
}

/// Converts OpenMetrics float seconds to milliseconds the way Prometheus does
/// (`int64(ts * 1000)`: truncation toward zero). Out-of-range values
/// saturate, where Go's conversion is implementation-defined.
#[inline]
pub(crate) fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0) as i64
}

/// Formats a float as Prometheus's `labels.FormatOpenMetricsFloat` does:
/// Go's `strconv.FormatFloat(f, 'g', -1, 64)`, plus `.0` when the result
/// has neither a `.` nor an `e`; `NaN`, `+Inf`, `-Inf` for the specials.
pub(crate) fn format_om_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    if f == 0.0 {
        return "0.0".into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits, as Go's -1
    // precision does; only the layout differs.
    let sci = format!("{:e}", f.abs());
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    if f < 0.0 {
        out.push('-');
    }
    // %g with shortest precision switches to exponent form when the
    // exponent is below -4 or at least 6 (Go's eprec for shortest).
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
    } else if exp >= 0 {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    } else {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    }
    if !out.contains(['.', 'e']) {
        out.push_str(".0");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_go_decimal_syntax() {
        for (s, v) in [
            ("1", 1.0),
            ("-1", -1.0),
            ("+1", 1.0),
            (".5", 0.5),
            ("5.", 5.0),
            ("1e3", 1000.0),
            ("1E+3", 1000.0),
            ("2.5e-3", 0.0025),
            ("0000012", 12.0),
            ("1234567890123456789", 1234567890123456789.0),
            ("1e-400", 0.0),
        ] {
            assert_eq!(parse_float(s.as_bytes()), Ok(v), "{s}");
        }
    }

    #[test]
    fn fast_path_matches_full_parser() {
        for s in [
            "0.1",
            "0.137",
            "123456.789012345",
            "-2.5e-3",
            "1e22",
            "1e-22",
            "9.99999999999999e22",
            "5e-324",
            "1.7e9",
            "6000000.0",
            "+0.0",
            "-0",
            "0.000000000000001",
            "123456789012345",
            "1.5E+2",
        ] {
            let want: f64 = s.parse().unwrap();
            assert_eq!(parse_float(s.as_bytes()).unwrap().to_bits(), want.to_bits(), "{s}");
        }
        assert_eq!(fast_decimal(b"1234567890123456"), None, "16 digits take the general path");
        assert_eq!(fast_decimal(b"1e23"), None);
        assert_eq!(fast_decimal(b"1e"), None);
        assert_eq!(fast_decimal(b"."), None);
    }

    #[test]
    fn openmetrics_float_format_matches_go() {
        for (v, want) in [
            (1.0, "1.0"),
            (0.0, "0.0"),
            (-0.0, "0.0"),
            (-1.0, "-1.0"),
            (0.1, "0.1"),
            (0.25, "0.25"),
            (2.5, "2.5"),
            (100000.0, "100000.0"),
            (123456.0, "123456.0"),
            (1e6, "1e+06"),
            (1.5e6, "1.5e+06"),
            (2.62144e7, "2.62144e+07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1.2345e-7, "1.2345e-07"),
            (1e100, "1e+100"),
            (-1e-100, "-1e-100"),
            (102.515625, "102.515625"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(format_om_float(v), want, "{v}");
        }
    }

    #[test]
    fn special_words() {
        for s in ["Inf", "+Inf", "inf", "INF", "infinity", "+Infinity"] {
            assert_eq!(parse_float(s.as_bytes()), Ok(f64::INFINITY), "{s}");
        }
        for s in ["-Inf", "-inf", "-infinity"] {
            assert_eq!(parse_float(s.as_bytes()), Ok(f64::NEG_INFINITY), "{s}");
        }
        for s in ["NaN", "nan", "NAN"] {
            assert!(parse_float(s.as_bytes()).unwrap().is_nan(), "{s}");
            assert_eq!(parse_value(s.as_bytes()).unwrap().to_bits(), NORMAL_NAN_BITS);
        }
    }

    #[test]
    fn rejects_what_prometheus_rejects() {
        for s in ["0x1p3", "0x1P-3", "1_000", "1p"] {
            assert_eq!(parse_float(s.as_bytes()), Err(FloatError::UnsupportedChar), "{s}");
        }
        for s in ["", "+", ".", "e5", "1e", "0x10", "+nan", "-NaN", "infx", "true", "1.2.3", "--1", "1 "] {
            assert_eq!(parse_float(s.as_bytes()), Err(FloatError::Syntax), "{s:?}");
        }
        assert_eq!(parse_float(b"1e400"), Err(FloatError::Range));
        assert_eq!(parse_float(b"-1e400"), Err(FloatError::Range));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_ms_timestamp(b"0"), Some(0));
        assert_eq!(parse_ms_timestamp(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_ms_timestamp(b"9223372036854775808"), None);
        assert_eq!(seconds_to_ms(1.5), 1500);
        assert_eq!(seconds_to_ms(-1.5), -1500);
        assert_eq!(seconds_to_ms(1e300), i64::MAX);
    }
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever path a decimal takes, the result is the correctly
        /// rounded one (Rust's parser is exact, as Go's is).
        #[test]
        fn agrees_with_std(v in any::<f64>().prop_filter("finite", |v| v.is_finite()), prec in 0usize..18) {
            for s in [format!("{v}"), format!("{v:e}"), format!("{v:.prec$}"), format!("{v:.prec$e}")] {
                let want: f64 = s.parse().unwrap();
                prop_assert_eq!(parse_float(s.as_bytes()).unwrap().to_bits(), want.to_bits(), "{}", s);
            }
        }

        #[test]
        fn short_decimals(m in 0u64..1_000_000_000_000_000, frac in 0usize..16, e in -30i32..30) {
            let digits = m.to_string();
            let s = if frac < digits.len() {
                format!("{}.{}e{e}", &digits[..digits.len() - frac], &digits[digits.len() - frac..])
            } else {
                format!(".{digits}e{e}")
            };
            let want: f64 = s.parse().unwrap();
            prop_assert_eq!(parse_float(s.as_bytes()).unwrap().to_bits(), want.to_bits(), "{}", s);
        }
    }
}
