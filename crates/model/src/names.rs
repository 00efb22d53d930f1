//! Metric and label name validation.
//!
//! Prometheus 3 accepts any non-empty UTF-8 string as a metric or label name
//! ("UTF-8 validation"); the legacy charset is still what decides whether a
//! name must be quoted when written out.

/// How names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NameValidation {
    /// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metrics, `[a-zA-Z_][a-zA-Z0-9_]*` for labels.
    Legacy,
    /// Any non-empty valid UTF-8 (Prometheus 3's default).
    #[default]
    Utf8,
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
pub fn is_valid_legacy_metric_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        None => false,
        Some(&c) if !(c.is_ascii_alphabetic() || c == b'_' || c == b':') => false,
        _ => b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b':'),
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`
pub fn is_valid_legacy_label_name(name: &str) -> bool {
    let b = name.as_bytes();
    match b.first() {
        None => false,
        Some(&c) if !(c.is_ascii_alphabetic() || c == b'_') => false,
        _ => b[1..].iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_'),
    }
}

pub fn is_valid_metric_name(name: &str, v: NameValidation) -> bool {
    match v {
        NameValidation::Legacy => is_valid_legacy_metric_name(name),
        // A `&str` is valid UTF-8 by construction; only emptiness is left.
        NameValidation::Utf8 => !name.is_empty(),
    }
}

pub fn is_valid_label_name(name: &str, v: NameValidation) -> bool {
    match v {
        NameValidation::Legacy => is_valid_legacy_label_name(name),
        NameValidation::Utf8 => !name.is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_charsets() {
        for ok in ["up", "a:b", "_x", ":y", "node_cpu_seconds_total", "A9"] {
            assert!(is_valid_legacy_metric_name(ok), "{ok}");
        }
        for bad in ["", "9a", "a-b", "a.b", "é", "a b"] {
            assert!(!is_valid_legacy_metric_name(bad), "{bad}");
        }
        assert!(is_valid_legacy_label_name("_a9"));
        assert!(!is_valid_legacy_label_name("a:b"));
        assert!(!is_valid_legacy_label_name(""));
        assert!(!is_valid_legacy_label_name("1a"));
    }

    #[test]
    fn utf8_accepts_nonempty() {
        assert!(is_valid_metric_name("my.metric/é", NameValidation::Utf8));
        assert!(!is_valid_metric_name("", NameValidation::Utf8));
        assert!(!is_valid_metric_name("my.metric", NameValidation::Legacy));
        assert!(is_valid_label_name("a b", NameValidation::Utf8));
        assert!(!is_valid_label_name("a b", NameValidation::Legacy));
    }
}
