//! Unescaping of quoted names, label values and HELP text.
//!
//! Prometheus replaces only the known sequences and leaves any other
//! backslash pair as it is (Go's `strings.Replacer` semantics), so `\t`
//! stays a backslash followed by `t`. Nothing here can fail.

use std::borrow::Cow;

/// Which sequences a piece of text knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escapes {
    /// `\\`, `\"` and `\n`: label values, quoted names, OpenMetrics HELP.
    LabelValue,
    /// `\\` and `\n` only: HELP text in the text format 0.0.4.
    TextHelp,
}

/// Unescapes `raw` (the body of a quoted string, or HELP text), borrowing
/// when there is nothing to replace.
pub fn unescape(raw: &str, escapes: Escapes) -> Cow<'_, str> {
    if !raw.as_bytes().contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let rest = chars.as_str();
        let replaced = match rest.as_bytes().first() {
            Some(b'\\') => Some('\\'),
            Some(b'n') => Some('\n'),
            Some(b'"') if escapes == Escapes::LabelValue => Some('"'),
            _ => None,
        };
        match replaced {
            Some(r) => {
                out.push(r);
                chars.next();
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// Byte-level [`unescape`] with label-value sequences, for comparing names
/// before their UTF-8 has been validated.
pub(crate) fn unescape_bytes(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = Vec::with_capacity(raw.len());
    let mut k = 0;
    while k < raw.len() {
        let c = raw[k];
        if c == b'\\' {
            match raw.get(k + 1) {
                Some(b'\\') => out.push(b'\\'),
                Some(b'n') => out.push(b'\n'),
                Some(b'"') => out.push(b'"'),
                _ => {
                    out.push(b'\\');
                    k += 1;
                    continue;
                }
            }
            k += 2;
        } else {
            out.push(c);
            k += 1;
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_value_sequences() {
        assert!(matches!(unescape("plain", Escapes::LabelValue), Cow::Borrowed("plain")));
        assert_eq!(unescape(r#"a\"b\\c\nd"#, Escapes::LabelValue), "a\"b\\c\nd");
        // Unknown sequences are kept verbatim.
        assert_eq!(unescape(r"a\tb", Escapes::LabelValue), r"a\tb");
        assert_eq!(unescape(r"\\n", Escapes::LabelValue), r"\n");
        assert_eq!(unescape(r"x\", Escapes::LabelValue), r"x\");
    }

    #[test]
    fn text_help_sequences() {
        assert_eq!(unescape(r#"a\"b\\c\nd"#, Escapes::TextHelp), "a\\\"b\\c\nd");
    }
}
