//! Token recognisers shared by both formats, written as nom parsers over
//! bytes (`IResult`-returning functions; the hot ones use a byte-class
//! table and `memchr` rather than nom's generic `take_while`, which was
//! measurably slower). They only recognise; the parser decides what a failure means
//! (which message, which column), because the messages depend on context.

use nom::error::{Error, ErrorKind};
use nom::IResult;

// Byte classes, looked up in one table: the hot loops test one bit per
// byte instead of a chain of comparisons.
const METRIC: u8 = 1; // [a-zA-Z0-9_:]
const LABEL: u8 = 2; // [a-zA-Z0-9_]
const TEXT_VALUE: u8 = 4; // [^{ \t\n]
const OM_TOKEN: u8 = 8; // [^ \n]
const BLANK: u8 = 16; // [ \t]
const DIGIT: u8 = 32; // [0-9]
const QUOTED_PLAIN: u8 = 64; // [^"\\\n]

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if c.is_ascii_alphanumeric() || c == b'_' {
            k |= METRIC | LABEL;
        }
        if c == b':' {
            k |= METRIC;
        }
        if !matches!(c, b'{' | b' ' | b'\t' | b'\n') {
            k |= TEXT_VALUE;
        }
        if c != b' ' && c != b'\n' {
            k |= OM_TOKEN;
        }
        if c == b' ' || c == b'\t' {
            k |= BLANK;
        }
        if c.is_ascii_digit() {
            k |= DIGIT;
        }
        if !matches!(c, b'"' | b'\\' | b'\n') {
            k |= QUOTED_PLAIN;
        }
        t[i] = k;
        i += 1;
    }
    t
};

/// Length of the longest prefix of `i` whose bytes are all in `class`.
#[inline(always)]
fn span(i: &[u8], class: u8) -> usize {
    let stop = |c: u8| CLASS[usize::from(c)] & class == 0;
    // Four bytes per iteration: names and values are tens of bytes long,
    // and the unrolled loop halves the per-byte loop overhead.
    let mut chunks = i.chunks_exact(4);
    let mut n = 0;
    for c in &mut chunks {
        if stop(c[0]) {
            return n;
        }
        if stop(c[1]) {
            return n + 1;
        }
        if stop(c[2]) {
            return n + 2;
        }
        if stop(c[3]) {
            return n + 3;
        }
        n += 4;
    }
    n + chunks.remainder().iter().position(|&c| stop(c)).unwrap_or(chunks.remainder().len())
}

/// nom-style recogniser for one or more bytes of `class`.
#[inline(always)]
fn take1(i: &[u8], class: u8) -> IResult<&[u8], &[u8]> {
    match span(i, class) {
        0 => Err(nom::Err::Error(Error::new(i, ErrorKind::TakeWhile1))),
        n => Ok((&i[n..], &i[..n])),
    }
}

/// First character of a legacy metric name: `[a-zA-Z_:]`.
#[inline]
pub(crate) fn is_metric_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c == b':'
}

/// First character of a legacy label name: `[a-zA-Z_]`.
#[inline]
pub(crate) fn is_label_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`. The caller checks the first byte.
#[inline]
pub(crate) fn metric_name(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take1(i, METRIC)
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`. The caller checks the first byte.
#[inline]
pub(crate) fn label_name(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take1(i, LABEL)
}

/// Spaces and tabs: the text format's separators (possibly none).
#[inline]
pub(crate) fn blanks(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let n = span(i, BLANK);
    Ok((&i[n..], &i[..n]))
}

/// A text-format value token: `[^{ \t\n]+`.
#[inline]
pub(crate) fn text_value(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take1(i, TEXT_VALUE)
}

/// An OpenMetrics value or timestamp token after its single space: `[^ \n]+`.
#[inline]
pub(crate) fn om_token(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take1(i, OM_TOKEN)
}

/// ASCII digits.
#[inline]
pub(crate) fn digits(i: &[u8]) -> IResult<&[u8], &[u8]> {
    take1(i, DIGIT)
}

/// Everything up to (not including) the next newline or the end.
#[inline]
pub(crate) fn rest_of_line(i: &[u8]) -> IResult<&[u8], &[u8]> {
    let n = memchr::memchr(b'\n', i).unwrap_or(i.len());
    Ok((&i[n..], &i[..n]))
}

/// A double-quoted string `"(\\.|[^\\"])*"`; with `allow_newline` false the
/// body may not contain a raw newline (OpenMetrics label values). As in
/// Prometheus's lexers, a backslash escapes any byte except a newline.
/// Returns the number of bytes of the whole token (quotes included) and
/// whether the body contains a backslash; `None` if the string is
/// unterminated or malformed.
#[inline]
pub(crate) fn quoted(i: &[u8], allow_newline: bool) -> Option<(usize, bool)> {
    if i.first() != Some(&b'"') {
        return None;
    }
    let mut escaped = false;
    let mut k = 1;
    loop {
        // Skip the bytes that need no attention in one table-driven run.
        k += span(i.get(k..)?, QUOTED_PLAIN);
        match *i.get(k)? {
            b'"' => return Some((k + 1, escaped)),
            b'\\' => match i.get(k + 1) {
                // `\` followed by a newline (or nothing) is not an escape.
                Some(b'\n') | None => return None,
                Some(_) => {
                    escaped = true;
                    k += 2;
                }
            },
            // A raw newline.
            _ if allow_newline => k += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_strings() {
        assert_eq!(quoted(br#""abc" x"#, false), Some((5, false)));
        assert_eq!(quoted(br#""a\"b""#, false), Some((6, true)));
        assert_eq!(quoted(br#""a\\""#, false), Some((5, true)));
        assert_eq!(quoted(b"\"a\nb\"", true), Some((5, false)));
        assert_eq!(quoted(b"\"a\nb\"", false), None);
        assert_eq!(quoted(b"\"a\\\nb\"", true), None);
        assert_eq!(quoted(br#""abc"#, true), None);
        assert_eq!(quoted(br#""abc\"#, true), None);
        assert_eq!(quoted(br#"abc""#, true), None);
    }

    #[test]
    fn names() {
        assert_eq!(metric_name(b"a:b_1{").unwrap(), (&b"{"[..], &b"a:b_1"[..]));
        assert_eq!(label_name(b"a_1:b").unwrap(), (&b":b"[..], &b"a_1"[..]));
        assert!(label_name(b"=x").is_err());
    }
}
