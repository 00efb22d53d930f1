//! Query results written straight to JSON bytes.
//!
//! A range query can answer hundreds of thousands of points; through serde
//! each point cost two allocations and a validation pass (timestamps must
//! be written as raw numbers with Prometheus's three decimals), and that was
//! most of a large query's time. Here numbers are formatted into the output
//! buffer directly; strings still go through serde_json for escaping.

use ember_model::{Labels, Timestamp};
use ember_promql::engine::Value;

/// A sample value as Prometheus's API writes it (`jsonutil.MarshalFloat`):
/// Go's `FormatFloat` with the shortest digits, in `'f'` form except for
/// magnitudes below 1e-6 or from 1e21 on, which use `'e'` (`1e-07`,
/// `1e+21`); `NaN`, `+Inf`, `-Inf`. Without the quotes.
pub fn write_value(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        write_finite(out, v);
    }
}

/// The shortest round-trip digits come from `ryu` (several times faster
/// than `core::fmt`, and a large answer formats hundreds of thousands of
/// values); they are then laid out as Go lays them out, since ryu's own
/// layout differs (`100.0`, `1e16`).
fn write_finite(out: &mut Vec<u8>, v: f64) {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(v).as_bytes();
    let (negative, text) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    // Split ryu's output into significant digits and the decimal exponent
    // of the first digit: "123.45" -> ("12345", 2), "0.0012" -> ("12", -3),
    // "1.5e-7" -> ("15", -7).
    let (mantissa, exp10) = match text.iter().position(|&b| b == b'e') {
        Some(e) => {
            let exp: i32 = std::str::from_utf8(&text[e + 1..]).ok().and_then(|x| x.parse().ok()).unwrap_or(0);
            (&text[..e], Some(exp))
        }
        None => (text, None),
    };
    let mut digits = [0u8; 40];
    let mut n = 0;
    let mut int_len = 0i32;
    let mut seen_point = false;
    for &b in mantissa {
        if b == b'.' {
            seen_point = true;
        } else if n < digits.len() {
            digits[n] = b;
            n += 1;
            if !seen_point {
                int_len += 1;
            }
        }
    }
    // Leading zeros ("0.0012") do not count as significant digits.
    let lead = digits[..n].iter().take_while(|&&d| d == b'0').count();
    let mut point = match exp10 {
        Some(e) => e + 1,
        None => int_len,
    } - lead as i32;
    let mut sig = &digits[lead..n];
    // Trailing zeros ("100.0") neither.
    while let Some((b'0', rest)) = sig.split_last() {
        sig = rest;
    }
    if sig.is_empty() {
        // Zero (its sign is kept: Go writes -0).
        out.extend_from_slice(if negative { b"-0" } else { b"0" });
        return;
    }
    if negative {
        out.push(b'-');
    }
    // Go switches to 'e' below 1e-6 and from 1e21 on: the first significant
    // digit's exponent is point - 1.
    let exp = point - 1;
    if !(-6..21).contains(&exp) {
        out.push(sig[0]);
        if sig.len() > 1 {
            out.push(b'.');
            out.extend_from_slice(&sig[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push(b'0');
        }
        let mut ints = itoa::Buffer::new();
        out.extend_from_slice(ints.format(e).as_bytes());
        return;
    }
    if point <= 0 {
        out.extend_from_slice(b"0.");
        while point < 0 {
            out.push(b'0');
            point += 1;
        }
        out.extend_from_slice(sig);
    } else if point as usize >= sig.len() {
        out.extend_from_slice(sig);
        for _ in sig.len()..point as usize {
            out.push(b'0');
        }
    } else {
        out.extend_from_slice(&sig[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&sig[point as usize..]);
    }
}

/// [`write_value`] as a string.
pub fn api_value(v: f64) -> String {
    let mut out = Vec::with_capacity(24);
    write_value(&mut out, v);
    // Only ASCII digits, signs, '.', 'e' and the fixed words were written.
    String::from_utf8(out).unwrap_or_default()
}

/// A timestamp as Prometheus writes it: seconds, and when the milliseconds
/// are not zero, a '.' and all three of them (`1435781451.050`).
pub fn write_time(out: &mut Vec<u8>, t: Timestamp) {
    if t < 0 {
        out.push(b'-');
    }
    let abs = t.unsigned_abs();
    let mut ints = itoa::Buffer::new();
    out.extend_from_slice(ints.format(abs / 1000).as_bytes());
    let frac = abs % 1000;
    if frac != 0 {
        out.extend_from_slice(&[
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ]);
    }
}

/// A JSON string, escaped as serde_json escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail, and a &str always serialises.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// `[t, "v"]`.
pub fn write_point(out: &mut Vec<u8>, t: Timestamp, v: f64) {
    out.push(b'[');
    write_time(out, t);
    out.extend_from_slice(b",\"");
    write_value(out, v);
    out.extend_from_slice(b"\"]");
}

/// `{"name":"value",...}`.
pub fn write_labels(out: &mut Vec<u8>, l: &Labels) {
    out.push(b'{');
    for (i, lbl) in l.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, lbl.name);
        out.push(b':');
        write_str(out, lbl.value);
    }
    out.push(b'}');
}

/// `"resultType":…,"result":…` of a query answer (the caller writes the
/// braces around it and anything after it).
pub fn write_result(out: &mut Vec<u8>, v: &Value) {
    out.extend_from_slice(b"\"resultType\":");
    write_str(out, v.type_name());
    out.extend_from_slice(b",\"result\":");
    match v {
        Value::Scalar(t, x) => write_point(out, *t, *x),
        Value::String(t, s) => {
            out.push(b'[');
            write_time(out, *t);
            out.push(b',');
            write_str(out, s);
            out.push(b']');
        }
        Value::Vector(samples) => {
            out.push(b'[');
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(out, &s.metric);
                out.extend_from_slice(b",\"value\":");
                write_point(out, s.t, s.v);
                out.push(b'}');
            }
            out.push(b']');
        }
        Value::Matrix(series) => {
            out.push(b'[');
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"metric\":");
                write_labels(out, &s.metric);
                out.extend_from_slice(b",\"values\":[");
                for (j, &(t, x)) in s.points.iter().enumerate() {
                    if j > 0 {
                        out.push(b',');
                    }
                    write_point(out, t, x);
                }
                out.extend_from_slice(b"]}");
            }
            out.push(b']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn values_are_written_as_prometheus_writes_them() {
        // Expected strings are what Prometheus 2.42 answered for these
        // values (remote-written, then queried).
        for (v, want) in [
            (2.0, "2"),
            (0.1, "0.1"),
            (-0.0, "-0"),
            (1e-7, "1e-07"),
            (1e-6, "0.000001"),
            (9.99e-7, "9.99e-07"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (123456789012345678901234.0, "1.2345678901234569e+23"),
            (-2.5e-9, "-2.5e-09"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::from_bits(0xc310_565a_94b4_e5f5), "-1149636667324797.2"),
            (5e15, "5000000000000000"),
            (2.5e-5, "0.000025"),
            (1125899906842624.5, "1125899906842624.5"),
            (9007199254740993.0, "9007199254740992"),
            (2.675, "2.675"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(api_value(v), want, "{v:e}");
        }
    }

    /// The same layout from core's formatting, the reference: plain
    /// shortest digits in range, Go's exponent form outside it.
    fn reference(v: f64) -> String {
        let a = v.abs();
        if a != 0.0 && !(1e-6..1e21).contains(&a) {
            let s = format!("{v:e}");
            let (m, e) = s.split_once('e').unwrap();
            let e: i32 = e.parse().unwrap();
            format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.unsigned_abs())
        } else {
            format!("{v}")
        }
    }

    #[test]
    fn ryu_layout_matches_the_reference_on_many_values() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let check = |v: f64| {
            if !v.is_finite() {
                return;
            }
            let (ours, theirs) = (api_value(v), reference(v));
            if ours != theirs {
                // When the value lies exactly half-way between two shortest
                // candidates, core rounds the last digit up and Go (like
                // ryu) rounds to even: 1149636667324797.25 is "…797.2" in
                // Prometheus 2.42's answer. Both are as short and read back
                // to the same value.
                let significant =
                    |x: &str| x.split('e').next().unwrap().bytes().filter(u8::is_ascii_digit).count();
                assert_eq!(significant(&ours), significant(&theirs), "{v:e}: {ours} vs {theirs}");
                assert_eq!(ours.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{ours} does not read back");
                assert_eq!(ours.contains('e'), theirs.contains('e'), "{ours} vs {theirs}");
            }
        };
        for _ in 0..200_000 {
            // xorshift: random bit patterns cover every exponent.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(f64::from_bits(x));
            // And values humans write: integers, decimals, powers of ten.
            check((x % 1_000_000) as f64 / 1000.0);
            check((x % 100_000) as f64);
        }
        for e in -330..=308 {
            for m in [1.0, 1.5, 9.99, 2.5] {
                check(m * 10f64.powi(e));
                check(-m * 10f64.powi(e));
            }
        }
        for v in [0.0, -0.0, f64::MIN_POSITIVE, f64::MAX, f64::MIN, f64::EPSILON, 1e15, 1e16, 1e17, 123456.0]
        {
            check(v);
        }
    }

    #[test]
    fn timestamps_keep_three_decimals() {
        assert_eq!(s(|o| write_time(o, 1_435_781_451_781)), "1435781451.781");
        assert_eq!(s(|o| write_time(o, 1_435_781_451_050)), "1435781451.050");
        assert_eq!(s(|o| write_time(o, 1_435_781_451_000)), "1435781451");
        assert_eq!(s(|o| write_time(o, -1_500)), "-1.500");
        assert_eq!(s(|o| write_time(o, 7)), "0.007");
    }

    #[test]
    fn results_are_valid_json_with_escaped_labels() {
        use ember_promql::engine::{InstantSample, RangeSeries};
        let l = Labels::from_pairs(&[("__name__", "m"), ("q", "a\"b\\c\nd ☃")]);
        let m = Value::Matrix(vec![RangeSeries {
            metric: l.clone(),
            points: vec![(1000, 1.5), (2500, f64::NAN)],
        }]);
        let text = s(|o| {
            o.push(b'{');
            write_result(o, &m);
            o.push(b'}');
        });
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"resultType": "matrix", "result": [
                {"metric": {"__name__": "m", "q": "a\"b\\c\nd ☃"}, "values": [[1, "1.5"], [2.5, "NaN"]]}
            ]})
        );
        let v = Value::Vector(vec![InstantSample { metric: l, t: 1000, v: 1e-9 }]);
        let text = s(|o| {
            o.push(b'{');
            write_result(o, &v);
            o.push(b'}');
        });
        assert!(text.ends_with(r#""value":[1,"1e-09"]}]}"#), "{text}");
        let empty = s(|o| write_result(o, &Value::Vector(vec![])));
        assert_eq!(empty, r#""resultType":"vector","result":[]"#);
    }
}
