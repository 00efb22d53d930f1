//! Parse errors with a position a human can find.

use std::fmt;

/// The longest excerpt of the offending line an error carries, in bytes.
const EXCERPT_MAX: usize = 120;

/// One bad line fails the whole page, as in Prometheus.
///
/// `line` and `column` are 1-based; `column` counts **bytes** from the start
/// of the line (as Prometheus's offsets do), not characters. An error at the
/// very end of the input (such as a missing `# EOF`) points just past the
/// last byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    /// The offending line (up to 120 bytes, lossily decoded).
    pub excerpt: String,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {} (in {:?})", self.line, self.column, self.message, self.excerpt)
    }
}

impl ParseError {
    /// Builds the error for byte offset `off` of `input`. Only runs on the
    /// error path, so counting lines here keeps the happy path free of it.
    pub(crate) fn at(input: &[u8], off: usize, message: String) -> ParseError {
        let off = off.min(input.len());
        let before = &input[..off];
        let line = before.iter().filter(|&&c| c == b'\n').count() + 1;
        let line_start = before.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
        let line_end = input[off..].iter().position(|&c| c == b'\n').map_or(input.len(), |p| off + p);
        let mut end = line_end.min(line_start + EXCERPT_MAX);
        // Do not cut a UTF-8 sequence in half.
        while end > line_start && end < line_end && (input[end] & 0xC0) == 0x80 {
            end -= 1;
        }
        ParseError {
            line,
            column: off - line_start + 1,
            excerpt: String::from_utf8_lossy(&input[line_start..end]).into_owned(),
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_bytes() {
        let input = b"a 1\nbb{c=x} 2\n";
        let e = ParseError::at(input, 9, "expected label value".into());
        assert_eq!((e.line, e.column), (2, 6));
        assert_eq!(e.excerpt, "bb{c=x} 2");
        assert_eq!(e.to_string(), "line 2, column 6: expected label value (in \"bb{c=x} 2\")");
        let e = ParseError::at(input, input.len(), "end".into());
        assert_eq!((e.line, e.column, e.excerpt.as_str()), (3, 1, ""));
    }

    #[test]
    fn excerpt_is_bounded_and_char_safe() {
        let mut input = "é".repeat(100).into_bytes();
        input.extend_from_slice(b" x\n");
        let e = ParseError::at(&input, 3, "m".into());
        assert!(e.excerpt.len() <= EXCERPT_MAX);
        assert!(e.excerpt.chars().all(|c| c == 'é'));
        assert_eq!(e.column, 4);
    }
}
