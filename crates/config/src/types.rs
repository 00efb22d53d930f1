//! Scalar types of the configuration file: durations, secrets, byte sizes,
//! URLs and label maps, each with Prometheus's parsing and printing rules.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration in Prometheus's syntax (`1h30m`, `0`); milliseconds inside.
/// Zero means "not set" where Prometheus inherits a value (as in Go).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub ember_model::time::Duration);

impl Duration {
    pub const fn from_millis(ms: i64) -> Duration {
        Duration(ember_model::time::Duration(ms))
    }
    pub const fn from_secs(s: i64) -> Duration {
        Duration::from_millis(s * 1000)
    }
    pub fn as_millis(self) -> i64 {
        self.0 .0
    }
    pub fn as_std(self) -> std::time::Duration {
        self.0.as_std()
    }
    pub fn is_zero(&self) -> bool {
        self.0 .0 == 0
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match ember_model::time::parse_duration(&s) {
            Ok(v) => Ok(Duration(v)),
            // Prometheus (model.ParseDuration) reports this wording.
            Err(_) => Err(D::Error::custom(format!("not a valid duration string: {s:?}"))),
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A secret string: printed and serialised as `<secret>` (as Prometheus's
/// `config.Secret`), never in clear.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The clear text, for the code that actually authenticates.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

pub const REDACTED: &str = "<secret>";

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(Option::<String>::deserialize(d)?.unwrap_or_default()))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

/// A byte size in `alecthomas/units` base-2 syntax (`10MB`, `1KiB`, `512B`,
/// `1.5GB`, `0`), as Prometheus's `body_size_limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn is_zero(&self) -> bool {
        self.0 == 0
    }
}

const SIZE_UNITS: [(&str, &str, u64); 7] = [
    ("", "B", 1),
    ("KiB", "KB", 1 << 10),
    ("MiB", "MB", 1 << 20),
    ("GiB", "GB", 1 << 30),
    ("TiB", "TB", 1 << 40),
    ("PiB", "PB", 1 << 50),
    ("EiB", "EB", 1 << 60),
];

/// Parses a base-2 byte size; a sequence of `number unit` parts is summed,
/// as in `units.ParseBase2Bytes`.
pub fn parse_byte_size(s: &str) -> Option<u64> {
    if s == "0" {
        return Some(0);
    }
    let b = s.as_bytes();
    if b.is_empty() {
        return None;
    }
    let mut pos = 0;
    let mut total: f64 = 0.0;
    while pos < b.len() {
        let start = pos;
        while pos < b.len() && (b[pos].is_ascii_digit() || b[pos] == b'.') {
            pos += 1;
        }
        let num: f64 = s[start..pos].parse().ok()?;
        let ustart = pos;
        while pos < b.len() && b[pos].is_ascii_alphabetic() {
            pos += 1;
        }
        let unit = &s[ustart..pos];
        let mult = SIZE_UNITS
            .iter()
            .find(|(iec, old, _)| (!iec.is_empty() && *iec == unit) || *old == unit)
            .map(|(_, _, m)| *m)?;
        total += num * mult as f64;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return None;
    }
    Some(total as u64)
}

impl fmt::Display for ByteSize {
    /// Largest exact IEC unit, as `units.Base2Bytes.String()` (`10MiB`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("0B");
        }
        for (iec, old, mult) in SIZE_UNITS.iter().rev() {
            // Every unit is a power of two.
            if self.0 & (mult - 1) == 0 {
                let unit = if iec.is_empty() { old } else { iec };
                return write!(f, "{}{}", self.0 / mult, unit);
            }
        }
        write!(f, "{}B", self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_byte_size(&s)
            .map(ByteSize)
            .ok_or_else(|| D::Error::custom(format!("units: unknown unit or invalid size in {s:?}")))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An absolute URL (`config.URL`); the password part is redacted on output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url(pub url::Url);

impl<'de> Deserialize<'de> for Url {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        url::Url::parse(&s).map(Url).map_err(|e| D::Error::custom(format!("parse {s:?}: {e}")))
    }
}

impl Serialize for Url {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut u = self.0.clone();
        if u.password().is_some() {
            // Ignoring the result is fine: a URL with a password can hold one.
            let _ = u.set_password(Some("xxxxx"));
        }
        s.serialize_str(u.as_str())
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Label name → value, ordered by name. YAML `~`/empty values become `""`,
/// as Go's yaml.v2 does for string targets.
pub type LabelMap = BTreeMap<String, String>;

pub(crate) fn de_label_map<'de, D: Deserializer<'de>>(d: D) -> Result<LabelMap, D::Error> {
    let m: Option<BTreeMap<String, Option<String>>> = Option::deserialize(d)?;
    Ok(m.unwrap_or_default().into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
}

/// Deserialises `null` (or an empty value) as the type's default, as Go's
/// yaml.v2 leaves a zero value for a null node.
pub(crate) fn de_null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

pub(crate) fn is_false(b: &bool) -> bool {
    !*b
}

pub(crate) fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_like_units_base2() {
        assert_eq!(parse_byte_size("0"), Some(0));
        assert_eq!(parse_byte_size("512B"), Some(512));
        assert_eq!(parse_byte_size("10MB"), Some(10 << 20));
        assert_eq!(parse_byte_size("10MiB"), Some(10 << 20));
        assert_eq!(parse_byte_size("1KB"), Some(1024));
        assert_eq!(parse_byte_size("1.5KB"), Some(1536));
        assert_eq!(parse_byte_size("1GB512MB"), Some((1 << 30) + (512 << 20)));
        assert_eq!(parse_byte_size("10"), None, "a unit is required");
        assert_eq!(parse_byte_size("10XB"), None);
        assert_eq!(parse_byte_size(""), None);
        assert_eq!(parse_byte_size("MB"), None);
    }

    #[test]
    fn byte_sizes_print_with_largest_exact_unit() {
        assert_eq!(ByteSize(10 << 20).to_string(), "10MiB");
        assert_eq!(ByteSize(1536).to_string(), "1536B");
        assert_eq!(ByteSize(2048).to_string(), "2KiB");
        assert_eq!(ByteSize(0).to_string(), "0B");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(s.to_string(), "<secret>");
        assert_eq!(format!("{s:?}"), "<secret>");
        assert_eq!(s.expose(), "hunter2");
    }
}
