//! Parse errors: message and `line:col` exactly as Prometheus prints them.
//!
//! `VERIFIED_242` was checked against Prometheus 2.42 (Debian) through its
//! HTTP API, for inputs whose handling did not change in Prometheus 3.
//! `PROMETHEUS_3` covers inputs where 3.x differs from 2.42; the expected
//! texts follow Prometheus 3's parser source and tests.

use ember_promql::parse;

const VERIFIED_242: &[(&str, &str)] = &[
    (r#""\400""#, r#"1:1: parse error: escape sequence is an invalid Unicode code point"#),
    (r#""\U00110000""#, r#"1:1: parse error: escape sequence is an invalid Unicode code point"#),
    (r#""\q""#, r#"1:1: parse error: unknown escape sequence U+0071 'q'"#),
    (r#""\u12""#, r#"1:1: parse error: illegal character U+0022 '"' in escape sequence"#),
    (r#""\x""#, r#"1:1: parse error: illegal character U+0022 '"' in escape sequence"#),
    (r#""\xg""#, r#"1:1: parse error: illegal character U+0067 'g' in escape sequence"#),
    (
        r#""a" + 1"#,
        r#"1:1: parse error: binary expression must contain only scalar and instant vector types"#,
    ),
    (
        r#""a" offset 5m"#,
        r#"1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"#,
    ),
    (r#""a"[5m]"#, r#"1:4: parse error: ranges only allowed for vector selectors"#),
    (r#""abc"#, r#"1:1: parse error: unterminated quoted string"#),
    (r#"#comment"#, r#"1:1: parse error: no expression found in input"#),
    (r#"'abc"#, r#"1:1: parse error: unterminated quoted string"#),
    (r#"'abc""#, r#"1:1: parse error: unterminated quoted string"#),
    (r#"("#, r#"1:2: parse error: unclosed left parenthesis"#),
    (r#"((foo)"#, r#"1:7: parse error: unclosed left parenthesis"#),
    (r#"(foo"#, r#"1:5: parse error: unclosed left parenthesis"#),
    (r#"(foo)[5m]"#, r#"1:6: parse error: ranges only allowed for vector selectors"#),
    (r#")"#, r#"1:2: parse error: unexpected right parenthesis ')'"#),
    (
        r#"-"a""#,
        r#"1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got "string""#,
    ),
    (
        r#"-foo[5m]"#,
        r#"1:1: parse error: unary expression only allowed on expressions of type scalar or instant vector, got "range vector""#,
    ),
    (r#"-{}"#, r#"1:2: parse error: vector selector must contain at least one non-empty matcher"#),
    (r#"0x"#, r#"1:1: parse error: error parsing number: strconv.ParseFloat: parsing "0x": invalid syntax"#),
    (r#"0xg"#, r#"1:1: parse error: bad number or duration syntax: "0x""#),
    (r#"1 +"#, r#"1:4: parse error: unexpected end of input"#),
    (r#"1 + on(a) 2"#, r#"1:1: parse error: vector matching only allowed between instant vectors"#),
    (r#"1 == 1"#, r#"1:3: parse error: comparisons between scalars must use BOOL modifier"#),
    (
        r#"1 @ 5"#,
        r#"1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector selector or a subquery"#,
    ),
    (r#"1 and 1"#, r#"1:1: parse error: set operator "and" not allowed in binary scalar expression"#),
    (r#"1 and foo"#, r#"1:1: parse error: set operator "and" not allowed in binary scalar expression"#),
    (
        r#"1 offset 5m"#,
        r#"1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"#,
    ),
    (r#"1[5m]"#, r#"1:2: parse error: ranges only allowed for vector selectors"#),
    (r#"1ex"#, r#"1:1: parse error: bad number or duration syntax: "1e""#),
    (r#"5m5"#, r#"1:1: parse error: bad number or duration syntax: "5m5""#),
    (r#"5mm"#, r#"1:1: parse error: bad number or duration syntax: "5mm""#),
    (r#"5ms1"#, r#"1:1: parse error: bad number or duration syntax: "5ms1""#),
    (r#"]"#, r#"1:1: parse error: unexpected right bracket ']'"#),
    (r#"`abc"#, r#"1:1: parse error: unterminated raw string"#),
    (r#"a + on"#, r#"1:7: parse error: unexpected end of input in grouping opts, expected "(""#),
    (r#"a + on("#, r#"1:8: parse error: unclosed left parenthesis"#),
    (r#"a + on(b"#, r#"1:9: parse error: unclosed left parenthesis"#),
    (r#"a + on(b) group_left("#, r#"1:22: parse error: unclosed left parenthesis"#),
    (r#"a + on(b) group_left(c"#, r#"1:23: parse error: unclosed left parenthesis"#),
    (r#"a + on(b,)"#, r#"1:11: parse error: unexpected end of input"#),
    (r#"a =="#, r#"1:5: parse error: unexpected end of input"#),
    (r#"a == bool"#, r#"1:10: parse error: unexpected end of input"#),
    (r#"a and on(b) group_left c"#, r#"1:1: parse error: no grouping allowed for "and" operation"#),
    (r#"a and on(b) group_right c"#, r#"1:1: parse error: no grouping allowed for "and" operation"#),
    (r#"a b"#, r#"1:3: parse error: unexpected identifier "b""#),
    (r#"a offset 5m offset 3m"#, r#"1:1: parse error: offset may not be set multiple times"#),
    (r#"a or bool b"#, r#"1:3: parse error: bool modifier can only be used on comparison operators"#),
    (r#"a</b"#, r#"1:3: parse error: unexpected <op:/>"#),
    (
        r#"abs("a")"#,
        r#"1:5: parse error: expected type instant vector in call to function "abs", got string"#,
    ),
    (r#"abs(1, 2)"#, r#"1:1: parse error: expected 1 argument(s) in call to "abs", got 2"#),
    (r#"bool"#, r#"1:1: parse error: unexpected <bool>"#),
    (
        r#"count_values(1, foo)"#,
        r#"1:14: parse error: expected type string in aggregation parameter, got scalar"#,
    ),
    (
        r#"count_values(x)"#,
        r#"1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"#,
    ),
    (r#"foo ! bar"#, r#"1:5: parse error: unexpected character after '!': ' '"#),
    (r#"foo $ bar"#, r#"1:5: parse error: unexpected character: '$'"#),
    (r#"foo & bar"#, r#"1:5: parse error: unexpected character: '&'"#),
    (r#"foo + bool bar"#, r#"1:5: parse error: bool modifier can only be used on comparison operators"#),
    (r#"foo + group_left bar"#, r#"1:7: parse error: unexpected <group_left>"#),
    (r#"foo = bar"#, r#"1:5: parse error: unexpected "=""#),
    (r#"foo =~ bar"#, r#"1:5: parse error: unexpected character after '=': '~'"#),
    (r#"foo @"#, r#"1:6: parse error: unexpected end of input in @, expected timestamp"#),
    (r#"foo @ 5 @ 6"#, r#"1:1: parse error: @ <timestamp> may not be set multiple times"#),
    (r#"foo @ Inf"#, r#"1:1: parse error: timestamp out of bounds for @ modifier: +Inf"#),
    (r#"foo @ NaN"#, r#"1:1: parse error: timestamp out of bounds for @ modifier: NaN"#),
    (r#"foo @ bar"#, r#"1:7: parse error: unexpected identifier "bar" in @, expected timestamp"#),
    (r#"foo @ end)"#, r#"1:11: parse error: unexpected right parenthesis ')'"#),
    (r#"foo @ start"#, r#"1:12: parse error: unexpected end of input in @, expected timestamp"#),
    (r#"foo @ start("#, r#"1:13: parse error: unclosed left parenthesis"#),
    (r#"foo and on(a) group_left bar"#, r#"1:1: parse error: no grouping allowed for "and" operation"#),
    (r#"foo offset 5m [5m]"#, r#"1:15: parse error: no offset modifiers allowed before range"#),
    (r#"foo offset 5m offset 6m"#, r#"1:1: parse error: offset may not be set multiple times"#),
    (r#"foo or 1"#, r#"1:1: parse error: set operator "or" not allowed in binary scalar expression"#),
    (r#"foo | bar"#, r#"1:5: parse error: unexpected character: '|'"#),
    (r#"foo(bar)"#, r#"1:1: parse error: unknown function with name "foo""#),
    (r#"foo)"#, r#"1:5: parse error: unexpected right parenthesis ')'"#),
    (r#"foo[5m"#, r#"1:7: parse error: unclosed left bracket"#),
    (r#"foo[5m1m]"#, r#"1:5: parse error: not a valid duration string: "5m1m""#),
    (r#"foo[5m:1m"#, r#"1:10: parse error: unclosed left bracket"#),
    (r#"foo[5m:1m:]"#, r#"1:10: parse error: unexpected colon ':'"#),
    (r#"foo[5m:1m] @ start() @ end()"#, r#"1:1: parse error: @ <timestamp> may not be set multiple times"#),
    (r#"foo[5m:1m][5m]"#, r#"1:11: parse error: ranges only allowed for vector selectors"#),
    (r#"foo[5m] @ 5 [1m]"#, r#"1:13: parse error: ranges only allowed for vector selectors"#),
    (r#"foo[5m] [5m]"#, r#"1:9: parse error: ranges only allowed for vector selectors"#),
    (r#"foo[5m] offset 1m offset 2m"#, r#"1:1: parse error: offset may not be set multiple times"#),
    (
        r#"foo[5m][10m:1m]"#,
        r#"1:1: parse error: subquery is only allowed on instant vector, got matrix instead"#,
    ),
    (r#"foo]"#, r#"1:4: parse error: unexpected right bracket ']'"#),
    (r#"foo{"#, r#"1:5: parse error: unexpected end of input inside braces"#),
    (r#"foo{1="a"}"#, r#"1:5: parse error: unexpected character inside braces: '1'"#),
    (r#"foo{=}"#, r#"1:5: parse error: unexpected "=" in label matching, expected identifier or "}""#),
    (r#"foo{__name__="bar"}"#, r#"1:1: parse error: metric name must not be set twice: "foo" or "bar""#),
    (r#"foo{__name__="foo"}"#, r#"1:1: parse error: metric name must not be set twice: "foo" or "foo""#),
    (r#"foo{a="b""#, r#"1:10: parse error: unexpected end of input inside braces"#),
    (r#"foo{a="b" # comment"#, r#"1:20: parse error: unexpected end of input inside braces"#),
    (
        r#"foo{a="b" c="d"}"#,
        r#"1:11: parse error: unexpected identifier "c" in label matching, expected "," or "}""#,
    ),
    (
        r#"foo{a="b"} @ 1e30"#,
        r#"1:1: parse error: timestamp out of bounds for @ modifier: 1000000000000000019884624838656.000000"#,
    ),
    (r#"foo{a="b"}{"#, r#"1:11: parse error: unexpected "{""#),
    (r#"foo{a="b"}}"#, r#"1:11: parse error: unexpected character: '}'"#),
    (r#"foo{a==}"#, r#"1:7: parse error: unexpected "=" in label matching, expected string"#),
    (r#"foo{a=b}"#, r#"1:7: parse error: unexpected identifier "b" in label matching, expected string"#),
    (r#"foo{a=~"b""#, r#"1:11: parse error: unexpected end of input inside braces"#),
    (r#"foo{a}"#, r#"1:6: parse error: unexpected "}" in label matching, expected label matching operator"#),
    (r#"foo}"#, r#"1:4: parse error: unexpected character: '}'"#),
    (r#"group_left"#, r#"1:1: parse error: unexpected <group_left>"#),
    (
        r#"histogram_quantile(x, y)"#,
        r#"1:20: parse error: expected type scalar in call to function "histogram_quantile", got instant vector"#,
    ),
    (
        r#"label_join(a)"#,
        r#"1:1: parse error: expected at least 3 argument(s) in call to "label_join", got 1"#,
    ),
    (
        r#"label_replace(a, b, c, d, e)"#,
        r#"1:18: parse error: expected type string in call to function "label_replace", got instant vector"#,
    ),
    (r#"on"#, r#"1:1: parse error: unexpected <on>"#),
    (
        r#"quantile("a", foo)"#,
        r#"1:10: parse error: expected type scalar in aggregation parameter, got string"#,
    ),
    (
        r#"quantile(x, y)"#,
        r#"1:10: parse error: expected type scalar in aggregation parameter, got instant vector"#,
    ),
    (r#"rate("#, r#"1:6: parse error: unclosed left parenthesis"#),
    (r#"rate()"#, r#"1:1: parse error: expected 1 argument(s) in call to "rate", got 0"#),
    (r#"rate(foo bar)"#, r#"1:10: parse error: unexpected identifier "bar""#),
    (
        r#"rate(foo)"#,
        r#"1:6: parse error: expected type range vector in call to function "rate", got instant vector"#,
    ),
    (r#"rate(foo[5m]"#, r#"1:13: parse error: unclosed left parenthesis"#),
    (r#"rate(foo[5m])[5m]"#, r#"1:14: parse error: ranges only allowed for vector selectors"#),
    (
        r#"rate(sum(foo))"#,
        r#"1:6: parse error: expected type range vector in call to function "rate", got instant vector"#,
    ),
    (r#"rate(x[5m], 1)"#, r#"1:1: parse error: expected 1 argument(s) in call to "rate", got 2"#),
    (r#"rate(x[5m],)"#, r#"1:11: parse error: trailing commas not allowed in function call args"#),
    (r#"round(a, 1, 2)"#, r#"1:1: parse error: expected at most 2 argument(s) in call to "round", got 3"#),
    (r#"sum by"#, r#"1:7: parse error: unexpected end of input in grouping opts, expected "(""#),
    (r#"sum by (,) (x)"#, r#"1:9: parse error: unexpected "," in grouping opts, expected label"#),
    (r#"sum by (5m) (x)"#, r#"1:9: parse error: unexpected duration "5m" in grouping opts, expected label"#),
    (r#"sum by (a"#, r#"1:10: parse error: unclosed left parenthesis"#),
    (r#"sum by (a)"#, r#"1:11: parse error: unexpected end of input in aggregation"#),
    (r#"sum by (a) (x) by (b)"#, r#"1:16: parse error: unexpected <by>"#),
    (r#"sum by (a) x"#, r#"1:12: parse error: unexpected identifier "x" in aggregation"#),
    (
        r#"sum by (foo bar) (x)"#,
        r#"1:13: parse error: unexpected identifier "bar" in grouping opts, expected "," or ")""#,
    ),
    (r#"sum without"#, r#"1:12: parse error: unexpected end of input in grouping opts, expected "(""#),
    (r#"sum without(a)"#, r#"1:15: parse error: unexpected end of input in aggregation"#),
    (
        r#"sum("a")"#,
        r#"1:5: parse error: expected type instant vector in aggregation expression, got string"#,
    ),
    (r#"sum()"#, r#"1:1: parse error: no arguments for aggregate expression provided"#),
    (r#"sum(1 +)"#, r#"1:8: parse error: unexpected ")" in aggregation"#),
    (r#"sum(foo bar)"#, r#"1:9: parse error: unexpected identifier "bar" in aggregation"#),
    (
        r#"sum(foo) offset 5m"#,
        r#"1:1: parse error: offset modifier must be preceded by an instant vector selector or range vector selector or a subquery"#,
    ),
    (r#"sum(rate(foo[5m])) by ("#, r#"1:24: parse error: unclosed left parenthesis"#),
    (
        r#"sum(rate(foo[5m])[10m:])"#,
        r#"1:5: parse error: expected type instant vector in aggregation expression, got range vector"#,
    ),
    (r#"sum(x) by"#, r#"1:10: parse error: unexpected end of input in grouping opts, expected "(""#),
    (r#"sum(x) by (a) (y)"#, r#"1:15: parse error: unexpected "(""#),
    (
        r#"sum(x, y)"#,
        r#"1:1: parse error: wrong number of arguments for aggregate expression provided, expected 1, got 2"#,
    ),
    (r#"time(1)"#, r#"1:1: parse error: expected 0 argument(s) in call to "time", got 1"#),
    (
        r#"topk(1, 2, 3)"#,
        r#"1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 3"#,
    ),
    (
        r#"topk(x)"#,
        r#"1:1: parse error: wrong number of arguments for aggregate expression provided, expected 2, got 1"#,
    ),
    (r#"vector("a")"#, r#"1:8: parse error: expected type scalar in call to function "vector", got string"#),
    (
        r#"vector(foo)"#,
        r#"1:8: parse error: expected type scalar in call to function "vector", got instant vector"#,
    ),
    (
        r#"x + on(a) group_left(a) y"#,
        r#"1:3: parse error: label "a" must not occur in ON and GROUP clause at once"#,
    ),
    (r#"x @ start"#, r#"1:10: parse error: unexpected end of input in @, expected timestamp"#),
    (r#"x[5m:1m:2m]"#, r#"1:8: parse error: unexpected colon ':'"#),
    (r#"x{a="b"}{c="d"}"#, r#"1:9: parse error: unexpected "{""#),
    (r#"{"#, r#"1:2: parse error: unexpected end of input inside braces"#),
    (
        r#"{__name__!="foo"}"#,
        r#"1:1: parse error: vector selector must contain at least one non-empty matcher"#,
    ),
    (r#"{a!="b"}"#, r#"1:1: parse error: vector selector must contain at least one non-empty matcher"#),
    (r#"{a!~"b"}"#, r#"1:1: parse error: vector selector must contain at least one non-empty matcher"#),
    (r#"{a=""}"#, r#"1:1: parse error: vector selector must contain at least one non-empty matcher"#),
    (r#"{a=~".*"}"#, r#"1:1: parse error: vector selector must contain at least one non-empty matcher"#),
    (r#"{}"#, r#"1:1: parse error: vector selector must contain at least one non-empty matcher"#),
    (r#"}"#, r#"1:1: parse error: unexpected character: '}'"#),
];

const PROMETHEUS_3: &[(&str, &str)] = &[
    // Prometheus 3 accepts a plain number of seconds as a range, so ranges
    // are checked for being positive instead.
    ("foo[-5m]", "1:5: parse error: duration must be greater than 0"),
    ("foo[0]", "1:5: parse error: duration must be greater than 0"),
    ("foo[0s]", "1:5: parse error: duration must be greater than 0"),
    ("foo[5m:-1m]", "1:8: parse error: duration must be greater than 0"),
    ("foo[9.5e10]", "1:5: parse error: duration out of range"),
    ("foo offset 9.5e10", "1:12: parse error: duration out of range"),
    ("1__0", r#"1:1: parse error: bad number or duration syntax: "1__""#),
    ("foo[1.5h]", r#"1:5: parse error: not a valid duration string: "1.5h""#),
    ("foo offset bar", r#"1:12: parse error: unexpected identifier "bar" in offset, expected number, duration, step(), or range()"#),
    ("foo[bar]", "1:5: parse error: unexpected character in duration expression: 'b'"),
    ("foo[]", r#"1:5: parse error: unexpected "]" in subquery or range selector, expected number, duration, step(), or range()"#),
    ("foo[5m", "1:7: parse error: unclosed left bracket"),
    ("foo[5m:1m", "1:10: parse error: unclosed left bracket"),
    ("foo[5m:1m:2m]", "1:10: parse error: unexpected colon ':'"),
    ("foo[5m+1m]", "1:5: parse error: experimental duration expression is not enabled"),
    ("foo[step()]", "1:5: parse error: experimental duration expression is not enabled"),
    ("foo offset step()", "1:12: parse error: experimental duration expression is not enabled"),
    ("step()", r#"1:1: parse error: function "step" is not enabled"#),
    ("foo anchored", "1:1: parse error: anchored modifier is experimental and not enabled"),
    ("limitk(1, x)", "1:1: parse error: limitk() is experimental and must be enabled with --enable-feature=promql-experimental-functions"),
    ("mad_over_time(x[5m])", r#"1:1: parse error: function "mad_over_time" is not enabled"#),
    ("sum(a, )", "1:6: parse error: trailing commas not allowed in function call args"),
    ("foo @ Inf", "1:1: parse error: timestamp out of bounds for @ modifier: +Inf"),
    ("rate(x[5m]) @ 5", "1:1: parse error: @ modifier must be preceded by an instant vector selector or range vector selector or a subquery"),
    ("a - on(b) ignoring(c) d", "1:11: parse error: unexpected <ignoring>"),
    ("@@", "1:1: parse error: unexpected <op:@>"),
    ("1e400", r#"1:1: parse error: error parsing number: strconv.ParseFloat: parsing "1e400": value out of range"#),
    (r#"{""}"#, "1:1: parse error: vector selector must contain at least one non-empty matcher"),
    ("sum by (\"\") (x)", r#"1:9: parse error: invalid label name for grouping: """#),
    ("foo\n  + ", "2:5: parse error: unexpected end of input"),
    ("foo\nbar", r#"2:1: parse error: unexpected identifier "bar""#),
    ("", "unknown position: parse error: no expression found in input"),
];

fn check(table: &[(&str, &str)]) -> Vec<String> {
    let mut failures = Vec::new();
    for &(q, want) in table {
        match parse(q) {
            Ok(e) => failures.push(format!("{q:?}: parsed as {e}, want error {want:?}")),
            Err(err) if err.to_string() != want => failures.push(format!("{q:?}: got {err}, want {want}")),
            Err(_) => {}
        }
    }
    failures
}

#[test]
fn errors_verified_against_prometheus_2_42() {
    let f = check(VERIFIED_242);
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

#[test]
fn errors_of_prometheus_3() {
    let f = check(PROMETHEUS_3);
    assert!(f.is_empty(), "{} failures:\n{}", f.len(), f.join("\n"));
}

#[test]
fn error_fields() {
    let err = parse("foo +\n  bar baz").unwrap_err();
    assert_eq!((err.line, err.col, err.start), (2, 7, 12));
    assert_eq!(err.msg, r#"unexpected identifier "baz""#);
    assert_eq!(err.end, 15);
    assert_eq!(
        format!("invalid parameter \"query\": {err}"),
        "invalid parameter \"query\": 2:7: parse error: unexpected identifier \"baz\""
    );
}
