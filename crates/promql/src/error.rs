//! Parse errors with Prometheus's wording and positions.

use std::fmt;

/// A PromQL parse (or type-check) error.
///
/// `Display` gives Prometheus's form, `1:8: parse error: unexpected end of
/// input`; the HTTP API prefixes it with `invalid parameter "query": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// Byte offset of the start of the offending range.
    pub start: usize,
    /// Byte offset just past the end of the offending range.
    pub end: usize,
    /// 1-based line of `start`, or 0 when the input was empty (Prometheus
    /// then prints "unknown position").
    pub line: usize,
    /// 1-based column of `start`, counted in bytes as Prometheus does.
    pub col: usize,
    /// The message without position, e.g. `unexpected end of input`.
    pub msg: String,
}

impl ParseError {
    pub(crate) fn new(input: &str, start: usize, end: usize, msg: impl Into<String>) -> ParseError {
        let start = start.min(input.len());
        let end = end.clamp(start, input.len());
        let (line, col) = if input.is_empty() {
            (0, 0)
        } else {
            let before = &input.as_bytes()[..start];
            let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
            let col = match before.iter().rposition(|&b| b == b'\n') {
                Some(nl) => start - nl,
                None => start + 1,
            };
            (line, col)
        };
        ParseError { start, end, line, col, msg: msg.into() }
    }

    /// The `line:col` prefix as Prometheus prints it.
    pub fn position(&self) -> String {
        if self.line == 0 {
            "unknown position".to_owned()
        } else {
            format!("{}:{}", self.line, self.col)
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: parse error: {}", self.position(), self.msg)
    }
}
