//! Malformed pages: each fails with the expected message at the expected
//! line and (byte) column, and the parser stops after the first error.
#![allow(clippy::unwrap_used)]

use ember_textparse::{Entry, Format, ParseError, Parser};

const TEXT: Format = Format::PrometheusText;
const OM: Format = Format::OpenMetrics;

/// Parses until the first error; asserts there is exactly one and that
/// iteration ends after it.
fn first_error(input: &[u8], format: Format) -> ParseError {
    let mut p = Parser::new(input, format);
    let err = loop {
        match p.next() {
            Some(Ok(_)) => continue,
            Some(Err(e)) => break e,
            None => panic!("no error for {:?}", String::from_utf8_lossy(input)),
        }
    };
    assert!(p.next().is_none(), "parser must stop after an error");
    err
}

#[track_caller]
fn check(format: Format, input: &str, line: usize, column: usize, message: &str) {
    check_bytes(format, input.as_bytes(), line, column, message);
}

#[track_caller]
fn check_bytes(format: Format, input: &[u8], line: usize, column: usize, message: &str) {
    let e = first_error(input, format);
    assert_eq!((e.line, e.column), (line, column), "position for {:?}: {e}", String::from_utf8_lossy(input));
    assert!(e.message.contains(message), "message for {:?}: {e}", String::from_utf8_lossy(input));
}

#[test]
fn text_bad_metric_name() {
    check(TEXT, "1abc 1\n", 1, 1, "expected a valid start token");
    check(TEXT, "ok 1\n-bad 1\n", 2, 1, "expected a valid start token");
    check(TEXT, "ok 1\n  .bad 1\n", 2, 3, "expected a valid start token");
}

#[test]
fn text_unterminated_label_value() {
    check(TEXT, "a 1\nfoo{bar=\"baz} 1\n", 2, 9, "expected label value");
    check(TEXT, "foo{bar=baz} 1\n", 1, 9, "expected label value");
    check(TEXT, "foo{bar='baz'} 1\n", 1, 9, "expected label value");
}

#[test]
fn text_bad_escape() {
    // A backslash before a newline escapes nothing, so the string never
    // closes (Prometheus's lexer: `\\.` does not match a newline).
    check(TEXT, "foo{bar=\"a\\\n\"} 1\n", 1, 9, "expected label value");
    check(TEXT, "foo{bar=\"a\\", 1, 9, "expected label value");
}

#[test]
fn text_label_syntax() {
    check(TEXT, "foo{a} 1\n", 1, 6, "expected equal");
    check(TEXT, "foo{=\"b\"} 1\n", 1, 5, "expected label name");
    check(TEXT, "foo{a=\"b\" 1\n", 1, 11, "expected label name");
    check(TEXT, "{\"a\",\"b\"} 1\n", 1, 6, "metric name already set");
    check(TEXT, "a{\"b\"} 1\n", 1, 3, "metric name already set");
    check(TEXT, "{a=\"ok\"} 1\n", 1, 1, "metric name not set");
    check_bytes(TEXT, b"foo{a=\"\xff\"} 1\n", 1, 8, "invalid UTF-8");
}

#[test]
fn text_missing_value() {
    check(TEXT, "foo{a=\"b\"}\n", 1, 11, "expected value after metric");
    check(TEXT, "foo\n", 1, 4, "expected value after metric");
    check(TEXT, "x 1\nfoo", 2, 4, "expected value after metric");
    check(TEXT, "foo{a=\"b\"}{c=\"d\"} 1\n", 1, 11, "expected value after metric");
}

#[test]
fn text_bad_float() {
    check(TEXT, "foo 1.2.3\n", 1, 5, "invalid float syntax");
    check(TEXT, "foo true\n", 1, 5, "invalid float syntax");
    check(TEXT, "foo 0x1p3\n", 1, 5, "unsupported character in float");
    check(TEXT, "foo 1_000\n", 1, 5, "unsupported character in float");
    check(TEXT, "foo 1e999\n", 1, 5, "out of range");
    check(TEXT, "foo +NaN\n", 1, 5, "invalid float syntax");
    // CRLF line endings are not accepted: `\r` is part of the value token.
    check(TEXT, "foo 1\r\n", 1, 5, "invalid float syntax");
}

#[test]
fn text_bad_timestamp() {
    check(TEXT, "foo 1 12a\n", 1, 9, "expected next entry after timestamp");
    check(TEXT, "foo 1 2 3\n", 1, 9, "expected next entry after timestamp");
    // Prometheus's lexer takes digits only: no sign, no fraction.
    check(TEXT, "foo 1 -5\n", 1, 7, "expected timestamp or new record");
    check(TEXT, "foo 1 1.5\n", 1, 8, "expected next entry after timestamp");
    check(TEXT, "foo 1 99999999999999999999\n", 1, 7, "timestamp out of range");
}

#[test]
fn text_duplicate_label_names() {
    check(TEXT, "foo{a=\"1\",b=\"2\",a=\"3\"} 1\n", 1, 17, "duplicate label name \"a\"");
    check(TEXT, "foo{a=\"1\",\"a\"=\"3\"} 1\n", 1, 12, "duplicate label name \"a\"");
    check(TEXT, "foo{__name__=\"bar\"} 1\n", 1, 5, "duplicate label name \"__name__\"");
    check(TEXT, "{\"foo\",__name__=\"bar\"} 1\n", 1, 8, "duplicate label name \"__name__\"");
    // Without a metric name Prometheus reports the missing name first.
    check(TEXT, "{__name__=\"bar\"} 1\n", 1, 1, "metric name not set");
}

#[test]
fn text_bad_metadata() {
    check(TEXT, "# TYPE foo gaugehistogram\n", 1, 12, "invalid metric type \"gaugehistogram\"");
    check(TEXT, "# TYPE foo unknown\n", 1, 12, "invalid metric type \"unknown\"");
    check(TEXT, "# TYPE foo counter extra\n", 1, 12, "invalid metric type \"counter extra\"");
    check(TEXT, "# TYPE foo\n", 1, 11, "invalid metric type \"\"");
    check(TEXT, "# HELP 1foo text\n", 1, 8, "expected metric name after HELP");
    check(TEXT, "# TYPE #\n", 1, 8, "expected metric name after TYPE");
    check_bytes(TEXT, b"# HELP foo bad \xff\n", 1, 16, "invalid UTF-8");
}

#[test]
fn error_display_has_position_and_excerpt() {
    let e = first_error(b"ok 1\nfoo{a=b} 1\n", TEXT);
    assert_eq!(e.to_string(), "line 2, column 7: expected label value, got \"b} 1\" (in \"foo{a=b} 1\")");
    assert_eq!(e.excerpt, "foo{a=b} 1");
}

#[test]
fn om_missing_eof() {
    check(OM, "foo 1\n", 2, 1, "data does not end with # EOF");
    check(OM, "", 1, 1, "data does not end with # EOF");
    check(OM, "foo 1", 1, 6, "data does not end with # EOF");
    check(OM, "# TYPE foo gauge\n", 2, 1, "data does not end with # EOF");
}

#[test]
fn om_content_after_eof() {
    check(OM, "foo 1\n# EOF\nbar 1\n", 3, 1, "unexpected data after # EOF");
    check(OM, "# EOF\n\n", 2, 1, "unexpected data after # EOF");
    check(OM, "# EOF \n", 1, 6, "unexpected data after # EOF");
}

#[test]
fn om_line_syntax() {
    check(OM, "foo 1\n\n# EOF\n", 2, 1, "expected a valid start token");
    check(OM, "# a comment\n# EOF\n", 1, 1, "expected a valid start token");
    check(OM, " foo 1\n# EOF\n", 1, 1, "expected a valid start token");
    check(OM, "foo{a=\"b\", c=\"d\"} 1\n# EOF\n", 1, 11, "expected label name");
    check(OM, "foo{a=\"b\" c=\"d\"} 1\n# EOF\n", 1, 10, "expected comma or brace close");
    check(OM, "foo  1\n# EOF\n", 1, 4, "expected value after metric");
    check(OM, "foo\t1\n# EOF\n", 1, 4, "expected value after metric");
    check(OM, "foo 1 \n# EOF\n", 1, 7, "expected timestamp or exemplar");
    check(OM, "foo{a=\"b\n\"} 1\n# EOF\n", 1, 7, "expected label value");
    check(OM, "foo{a=\"b\\\n\"} 1\n# EOF\n", 1, 7, "expected label value");
    check(OM, "foo 1 2 3\n# EOF\n", 1, 8, "expected next entry after timestamp");
    check(OM, "foo{a=\"1\",a=\"2\"} 1\n# EOF\n", 1, 11, "duplicate label name \"a\"");
}

#[test]
fn om_bad_numbers() {
    check(OM, "foo abc\n# EOF\n", 1, 5, "invalid float syntax");
    check(OM, "foo 1 NaN\n# EOF\n", 1, 7, "invalid timestamp");
    check(OM, "foo 1 +Inf\n# EOF\n", 1, 7, "invalid timestamp");
    check(OM, "foo 1 1x\n# EOF\n", 1, 7, "invalid float syntax");
}

#[test]
fn om_bad_exemplars() {
    check(OM, "foo 1 # {a=\"b\"}\n# EOF\n", 1, 16, "expected value after exemplar labels");
    check(OM, "foo 1 # {\"x\"} 1\n# EOF\n", 1, 13, "expected label name");
    check(OM, "foo 1 # {a=\"b\"} 1 NaN\n# EOF\n", 1, 19, "invalid exemplar timestamp");
    check(OM, "foo 1 # {a=\"b\"} 1 2 3\n# EOF\n", 1, 20, "expected next entry after exemplar timestamp");
    check(OM, "foo 1 # {a=\"b\"} 1", 1, 18, "data does not end with # EOF");
    check(OM, "foo 1 # {a=b} 1\n# EOF\n", 1, 12, "expected label value");
}

#[test]
fn om_bad_metadata() {
    check(
        OM,
        "# UNIT foo_seconds bytes\n# EOF\n",
        1,
        20,
        "unit \"bytes\" not a suffix of metric \"foo_seconds\"",
    );
    check(OM, "# UNIT foobytes bytes\n# EOF\n", 1, 17, "not a suffix");
    check(OM, "# TYPE foo untyped\n# EOF\n", 1, 12, "invalid metric type \"untyped\"");
    check(OM, "# HELP foo\n# EOF\n", 1, 11, "expected text in HELP");
    check(OM, "# HELP foo text", 1, 11, "expected text in HELP");
    check(OM, "# HELP  foo x\n# EOF\n", 1, 8, "expected metric name after HELP");
    check(OM, "# HELP\n# EOF\n", 1, 1, "expected a valid start token");
}

/// The same inputs succeed where the format allows them, so the negative
/// cases above fail for the reason they name.
#[test]
fn near_misses_are_accepted() {
    let ok = |format: Format, input: &str| {
        for e in Parser::new(input.as_bytes(), format) {
            e.unwrap_or_else(|e| panic!("{input:?}: {e}"));
        }
    };
    ok(TEXT, "foo{a=\"1\",b=\"2\",c=\"3\"} 1\n");
    ok(TEXT, "# TYPE foo counter\n# TYPE foo gauge\nfoo 1\n# TYPE foo untyped\n");
    ok(TEXT, "foo 1 0\nfoo 1 9223372036854775807\n");
    ok(TEXT, "foo 1");
    ok(TEXT, "\n\n  \t\nfoo 1\n\n");
    ok(OM, "# UNIT foo_seconds seconds\n# UNIT bar \n# EOF");
    ok(OM, "foo 1 # {a=\"b\"} 1 2\n# EOF\n");
    ok(OM, "foo 1 -1.5\nfoo{a=\"b\",} 1\n# EOF\n");
    ok(OM, "# HELP foo \n# EOF\n");
}

#[test]
fn nul_byte_ends_text_page_like_prometheus() {
    let entries: Vec<_> = Parser::new(b"a 1\n\0garbage {{{\n", TEXT).collect();
    assert_eq!(entries.len(), 1);
    assert!(matches!(&entries[0], Ok(Entry::Sample(s)) if s.series == "a"));
}
