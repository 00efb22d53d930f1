//! A recursive-descent (Pratt) parser for PromQL, followed by Prometheus's
//! type-checking pass.
//!
//! Prometheus collects errors and reports the first; this parser stops at
//! the first error, detecting them in the same order (syntax and parse-time
//! semantic errors in reduction order, then type checks only when the
//! syntax is valid), so the reported error is the same.

use ember_model::{time::parse_duration, MatchOp, Matcher, METRIC_NAME};

use crate::ast::*;
use crate::error::ParseError;
use crate::functions::get_function;
use crate::lexer::{lex, Token, TokenKind as T};
use crate::quote::{go_quote, unquote};

/// Parser switches, mirroring Prometheus's feature flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ParseOptions {
    /// `--enable-feature=promql-experimental-functions`: experimental
    /// functions and the `limitk`/`limit_ratio` aggregations.
    pub experimental_functions: bool,
    /// Duration expressions (`[1m * 2]`, `offset (10m / 2)`, `[step()]`),
    /// on by default since Prometheus 3.14; off here unless asked for.
    pub duration_expressions: bool,
}

/// Parses and type-checks a PromQL expression with default options.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    parse_with_options(input, ParseOptions::default())
}

/// Parses and type-checks a PromQL expression.
pub fn parse_with_options(input: &str, opts: ParseOptions) -> Result<Expr, ParseError> {
    let mut p = Parser::new(input, opts);
    if p.peek().kind == T::Eof {
        return Err(ParseError::new(input, 0, 0, "no expression found in input"));
    }
    let mut e = p.parse_expr(0)?;
    if p.peek().kind != T::Eof {
        return Err(p.unexpected("", ""));
    }
    Checker { input }.check(&mut e)?;
    Ok(e)
}

/// Parses a series selector (`match[]` of the HTTP API): a vector selector
/// alone, without type checks (as Prometheus's `ParseMetricSelector`).
pub fn parse_metric_selector(input: &str) -> Result<Vec<Matcher>, ParseError> {
    let mut p = Parser::new(input, ParseOptions::default());
    let t = p.peek();
    let vs = match t.kind {
        T::LeftBrace => p.parse_vector_selector(None)?,
        k if is_metric_identifier(k) => {
            p.advance();
            p.parse_vector_selector(Some(t))?
        }
        _ => return Err(p.unexpected("", "")),
    };
    if p.peek().kind != T::Eof {
        return Err(p.unexpected("", ""));
    }
    Ok(vs.matchers)
}

/// Tokens that may name a metric (Prometheus's `metric_identifier`).
fn is_metric_identifier(k: T) -> bool {
    k.is_aggregator()
        || matches!(
            k,
            T::Identifier
                | T::MetricIdentifier
                | T::By
                | T::Without
                | T::Land
                | T::Lor
                | T::Lunless
                | T::Offset
                | T::Start
                | T::End
                | T::Step
                | T::Range
                | T::Anchored
                | T::Smoothed
                | T::MaxOf
                | T::MinOf
        )
}

/// Tokens accepted as a label name in grouping lists (`maybe_label`).
fn is_maybe_label(k: T) -> bool {
    k.is_aggregator()
        || k.is_keyword()
        || matches!(
            k,
            T::Identifier
                | T::MetricIdentifier
                | T::Land
                | T::Lor
                | T::Lunless
                | T::Atan2
                | T::Start
                | T::End
                | T::Step
                | T::Range
                | T::MaxOf
                | T::MinOf
        )
}

fn binary_op(k: T) -> Option<BinaryOp> {
    Some(match k {
        T::Add => BinaryOp::Add,
        T::Sub => BinaryOp::Sub,
        T::Mul => BinaryOp::Mul,
        T::Div => BinaryOp::Div,
        T::Mod => BinaryOp::Mod,
        T::Pow => BinaryOp::Pow,
        T::Atan2 => BinaryOp::Atan2,
        T::Eqlc => BinaryOp::Eql,
        T::Neq => BinaryOp::Neq,
        T::Lte => BinaryOp::Lte,
        T::Lss => BinaryOp::Lss,
        T::Gte => BinaryOp::Gte,
        T::Gtr => BinaryOp::Gtr,
        T::Land => BinaryOp::And,
        T::Lor => BinaryOp::Or,
        T::Lunless => BinaryOp::Unless,
        _ => return None,
    })
}

fn aggregate_op(k: T) -> Option<AggregateOp> {
    Some(match k {
        T::Sum => AggregateOp::Sum,
        T::Avg => AggregateOp::Avg,
        T::Count => AggregateOp::Count,
        T::Min => AggregateOp::Min,
        T::Max => AggregateOp::Max,
        T::Group => AggregateOp::Group,
        T::Stddev => AggregateOp::Stddev,
        T::Stdvar => AggregateOp::Stdvar,
        T::Topk => AggregateOp::Topk,
        T::Bottomk => AggregateOp::Bottomk,
        T::CountValues => AggregateOp::CountValues,
        T::Quantile => AggregateOp::Quantile,
        T::Limitk => AggregateOp::Limitk,
        T::LimitRatio => AggregateOp::LimitRatio,
        _ => return None,
    })
}

/// Unary minus/plus bind like `*`: their operand takes only `^`.
const UNARY_OPERAND_PRECEDENCE: u8 = 6;

/// Durations beyond what Go's `time.Duration` holds (in seconds).
fn duration_out_of_range(v: f64) -> bool {
    !(-9_223_372_036.854_775..=9_223_372_036.854_775).contains(&v)
}

fn seconds_to_ms(v: f64) -> i64 {
    // `as` saturates; the range was checked before.
    (v * 1000.0).round() as i64
}

/// Go's `%f` for the out-of-bounds `@` error.
fn go_f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v:.6}")
    }
}

/// Go's rule for `_` in number literals: only between digits, or between
/// a base prefix and a digit.
fn underscore_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let mut saw = b'^';
    let mut i = 0;
    let mut hex = false;
    if b.len() >= 2 && b[0] == b'0' && matches!(b[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = b[1].eq_ignore_ascii_case(&b'x');
    }
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_digit() || (hex && c.is_ascii_hexdigit()) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// Prometheus reads numbers with Go's `ParseInt(s, 0, 64)` (so `0x1f` is
/// hex and `017` is octal) and falls back to `ParseFloat`.
fn parse_number(text: &str) -> Result<f64, String> {
    let syntax =
        || format!("error parsing number: strconv.ParseFloat: parsing {}: invalid syntax", go_quote(text));
    if text.contains('_') && !underscore_ok(text) {
        return Err(syntax());
    }
    let s = text.replace('_', "");
    let int = if let Some(hex) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        i64::from_str_radix(hex, 16).ok()
    } else if s.len() > 1 && s.starts_with('0') {
        i64::from_str_radix(&s[1..], 8).ok()
    } else {
        s.parse::<i64>().ok()
    };
    if let Some(i) = int {
        return Ok(i as f64);
    }
    if s.starts_with("0x") || s.starts_with("0X") {
        return Err(syntax());
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_infinite() && !s.to_ascii_lowercase().contains("inf") => Err(format!(
            "error parsing number: strconv.ParseFloat: parsing {}: value out of range",
            go_quote(text)
        )),
        Ok(v) => Ok(v),
        Err(_) => Err(syntax()),
    }
}

struct Parser<'a> {
    input: &'a str,
    tokens: Vec<Token>,
    lex_error: Option<String>,
    i: usize,
    opts: ParseOptions,
    /// End of the last `)`, `}`, `]`, number or duration consumed: where
    /// Prometheus ends the ranges of calls, aggregations and modifiers.
    last_closing: usize,
    /// How many aggregations enclose the current position.
    aggregation_depth: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str, opts: ParseOptions) -> Parser<'a> {
        let lexed = lex(input);
        Parser {
            input,
            tokens: lexed.tokens,
            lex_error: lexed.error,
            i: 0,
            opts,
            last_closing: 0,
            aggregation_depth: 0,
        }
    }

    fn peek(&self) -> Token {
        // The token list always ends with Eof or Error, and `advance` never
        // moves past it.
        self.tokens[self.i.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> Token {
        self.tokens[(self.i + n).min(self.tokens.len() - 1)]
    }

    fn advance(&mut self) -> Token {
        let t = self.peek();
        if !matches!(t.kind, T::Eof | T::Error) {
            self.i += 1;
        }
        if matches!(t.kind, T::RightBrace | T::RightParen | T::RightBracket | T::Duration | T::Number) {
            self.last_closing = t.end;
        }
        t
    }

    fn err(&self, start: usize, end: usize, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.input, start, end, msg)
    }

    fn err_range(&self, r: PosRange, msg: impl Into<String>) -> ParseError {
        self.err(r.start, r.end, msg)
    }

    fn lexer_error(&self, t: Token) -> ParseError {
        self.err(t.start, self.input.len(), self.lex_error.clone().unwrap_or_default())
    }

    /// A syntax error at the current token (or the lexer error, when the
    /// current token is one). Inside an aggregation, errors without a
    /// context of their own are reported "in aggregation", as Prometheus's
    /// yacc error recovery does.
    fn unexpected(&self, context: &str, expected: &str) -> ParseError {
        let t = self.peek();
        if t.kind == T::Error {
            return self.lexer_error(t);
        }
        let context = if context.is_empty() && self.aggregation_depth > 0 { "aggregation" } else { context };
        let mut msg = format!("unexpected {}", t.describe(self.input));
        if !context.is_empty() {
            msg.push_str(" in ");
            msg.push_str(context);
        }
        if !expected.is_empty() {
            msg.push_str(", expected ");
            msg.push_str(expected);
        }
        self.err(t.start, t.end, msg)
    }

    fn unquote_token(&self, t: Token) -> Result<String, ParseError> {
        let text = t.text(self.input);
        unquote(text)
            .map_err(|e| self.err(t.start, t.end, format!("error unquoting string {}: {e}", go_quote(text))))
    }

    fn parse_expr(&mut self, min_prec: u8) -> Result<Expr, ParseError> {
        let mut lhs = self.parse_unary()?;
        while let Some(op) = binary_op(self.peek().kind) {
            let prec = op.precedence();
            if prec < min_prec {
                break;
            }
            self.advance();
            let (return_bool, matching) = self.parse_bin_modifiers()?;
            let next_min = if op.is_right_associative() { prec } else { prec + 1 };
            let rhs = self.parse_expr(next_min)?;
            lhs = Expr::Binary(BinaryExpr {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
                matching: Some(matching),
                return_bool,
            });
        }
        Ok(lhs)
    }

    fn parse_bin_modifiers(&mut self) -> Result<(bool, VectorMatching), ParseError> {
        let mut vm = VectorMatching {
            card: Cardinality::OneToOne,
            matching_labels: Vec::new(),
            on: false,
            include: Vec::new(),
        };
        let mut return_bool = false;
        if self.peek().kind == T::Bool {
            self.advance();
            return_bool = true;
        }
        if matches!(self.peek().kind, T::On | T::Ignoring) {
            vm.on = self.advance().kind == T::On;
            vm.matching_labels = self.parse_grouping_labels()?;
            if matches!(self.peek().kind, T::GroupLeft | T::GroupRight) {
                vm.card = if self.advance().kind == T::GroupLeft {
                    Cardinality::ManyToOne
                } else {
                    Cardinality::OneToMany
                };
                if self.peek().kind == T::LeftParen {
                    vm.include = self.parse_grouping_labels()?;
                }
            }
        }
        Ok((return_bool, vm))
    }

    /// `(a, b, "c")`.
    fn parse_grouping_labels(&mut self) -> Result<Vec<String>, ParseError> {
        if self.peek().kind != T::LeftParen {
            return Err(self.unexpected("grouping opts", "\"(\""));
        }
        self.advance();
        let mut labels = Vec::new();
        if self.peek().kind == T::RightParen {
            self.advance();
            return Ok(labels);
        }
        loop {
            let t = self.peek();
            let label = if t.kind == T::String {
                let v = self.unquote_token(t)?;
                if v.is_empty() {
                    return Err(self.err(
                        t.start,
                        t.end,
                        format!("invalid label name for grouping: {}", go_quote(&v)),
                    ));
                }
                v
            } else if is_maybe_label(t.kind) {
                t.text(self.input).to_owned()
            } else {
                return Err(self.unexpected("grouping opts", "label"));
            };
            self.advance();
            labels.push(label);
            match self.peek().kind {
                T::Comma => {
                    self.advance();
                    if self.peek().kind == T::RightParen {
                        self.advance();
                        return Ok(labels);
                    }
                }
                T::RightParen => {
                    self.advance();
                    return Ok(labels);
                }
                _ => return Err(self.unexpected("grouping opts", "\",\" or \")\"")),
            }
        }
    }

    fn parse_unary(&mut self) -> Result<Expr, ParseError> {
        let t = self.peek();
        let op = match t.kind {
            T::Add => UnaryOp::Add,
            T::Sub => UnaryOp::Sub,
            _ => return self.parse_primary(),
        };
        self.advance();
        let operand = self.parse_expr(UNARY_OPERAND_PRECEDENCE)?;
        // Prometheus folds the sign into number literals.
        Ok(match operand {
            Expr::Number(mut n) => {
                if op == UnaryOp::Sub {
                    n.val = -n.val;
                }
                n.pos.start = t.start;
                Expr::Number(n)
            }
            e => Expr::Unary(UnaryExpr { op, expr: Box::new(e), start: t.start }),
        })
    }

    fn parse_primary(&mut self) -> Result<Expr, ParseError> {
        let t = self.peek();
        let next = self.peek_at(1).kind;
        let mut e = match t.kind {
            T::Number => {
                self.advance();
                let val = parse_number(t.text(self.input)).map_err(|m| self.err(t.start, t.end, m))?;
                Expr::Number(NumberLiteral { val, duration: false, pos: PosRange::new(t.start, t.end) })
            }
            T::Duration => {
                self.advance();
                let val = self.duration_token_seconds(t)?;
                Expr::Number(NumberLiteral { val, duration: true, pos: PosRange::new(t.start, t.end) })
            }
            T::String => {
                self.advance();
                let val = self.unquote_token(t)?;
                Expr::String(StringLiteral { val, pos: PosRange::new(t.start, t.end) })
            }
            T::LeftParen => {
                self.advance();
                let inner = self.parse_expr(0)?;
                if self.peek().kind != T::RightParen {
                    return Err(self.unexpected("", ""));
                }
                let close = self.advance();
                Expr::Paren(ParenExpr { expr: Box::new(inner), pos: PosRange::new(t.start, close.end) })
            }
            T::LeftBrace => Expr::VectorSelector(self.parse_vector_selector(None)?),
            T::Identifier | T::Start | T::End | T::Step | T::Range | T::MaxOf | T::MinOf
                if next == T::LeftParen =>
            {
                self.parse_call()?
            }
            k if k.is_aggregator() && matches!(next, T::LeftParen | T::By | T::Without) => {
                self.parse_aggregate()?
            }
            k if is_metric_identifier(k) => {
                self.advance();
                Expr::VectorSelector(self.parse_vector_selector(Some(t))?)
            }
            _ => return Err(self.unexpected("", "")),
        };
        loop {
            e = match self.peek().kind {
                T::LeftBracket => self.parse_range_or_subquery(e)?,
                T::Offset => self.parse_offset(e)?,
                T::At => self.parse_at(e)?,
                T::Anchored | T::Smoothed => {
                    let word = if self.peek().kind == T::Anchored { "anchored" } else { "smoothed" };
                    return Err(self.err_range(
                        e.pos_range(),
                        format!("{word} modifier is experimental and not enabled"),
                    ));
                }
                _ => break,
            };
        }
        Ok(e)
    }

    fn duration_token_seconds(&self, t: Token) -> Result<f64, ParseError> {
        parse_duration(t.text(self.input))
            .map(|d| d.as_millis() as f64 / 1000.0)
            .map_err(|e| self.err(t.start, t.end, e.to_string()))
    }

    /// `name`, `name{...}` or `{...}`; `name` has been consumed already.
    fn parse_vector_selector(&mut self, name: Option<Token>) -> Result<VectorSelector, ParseError> {
        let mut matchers = Vec::new();
        let start = name.map(|t| t.start).unwrap_or(self.peek().start);
        let mut end = name.map(|t| t.end).unwrap_or(start);
        if self.peek().kind == T::LeftBrace {
            self.advance();
            loop {
                let t = self.peek();
                match t.kind {
                    T::RightBrace => {
                        end = self.advance().end;
                        break;
                    }
                    T::Identifier | T::String => {
                        self.advance();
                        let label = if t.kind == T::String {
                            self.unquote_token(t)?
                        } else {
                            t.text(self.input).to_owned()
                        };
                        let op = match self.peek().kind {
                            T::Eql => Some(MatchOp::Equal),
                            T::Neq => Some(MatchOp::NotEqual),
                            T::EqlRegex => Some(MatchOp::RegexMatch),
                            T::NeqRegex => Some(MatchOp::RegexNoMatch),
                            _ => None,
                        };
                        match op {
                            None if t.kind == T::String => matchers.push(Matcher::equal(METRIC_NAME, label)),
                            None => return Err(self.unexpected("label matching", "label matching operator")),
                            Some(op) => {
                                self.advance();
                                let v = self.peek();
                                if v.kind != T::String {
                                    return Err(self.unexpected("label matching", "string"));
                                }
                                self.advance();
                                let value = self.unquote_token(v)?;
                                let m = Matcher::new(op, label, value)
                                    .map_err(|e| self.err(t.start, v.end, e.to_string()))?;
                                matchers.push(m);
                            }
                        }
                        match self.peek().kind {
                            T::Comma => {
                                self.advance();
                            }
                            T::RightBrace => {}
                            _ => return Err(self.unexpected("label matching", "\",\" or \"}\"")),
                        }
                    }
                    _ => return Err(self.unexpected("label matching", "identifier or \"}\"")),
                }
            }
        }
        let name = name.map(|t| t.text(self.input).to_owned()).unwrap_or_default();
        if !name.is_empty() {
            matchers.push(Matcher::equal(METRIC_NAME, name.clone()));
        }
        Ok(VectorSelector {
            name,
            matchers,
            original_offset: 0,
            at: None,
            bypass_empty_matcher_check: false,
            pos: PosRange::new(start, end),
        })
    }

    /// `(args...)` after a function name or aggregation.
    /// `context` names the enclosing rule in syntax errors, as Prometheus's
    /// yacc error recovery does ("in aggregation").
    fn parse_call_body(&mut self, context: &str) -> Result<Vec<Expr>, ParseError> {
        self.advance(); // `(`
        let mut args = Vec::new();
        if self.peek().kind == T::RightParen {
            self.advance();
            return Ok(args);
        }
        loop {
            args.push(self.parse_expr(0)?);
            match self.peek().kind {
                T::Comma => {
                    let comma = self.advance();
                    if self.peek().kind == T::RightParen {
                        return Err(self.err(
                            comma.start,
                            comma.end,
                            "trailing commas not allowed in function call args",
                        ));
                    }
                }
                T::RightParen => {
                    self.advance();
                    return Ok(args);
                }
                _ => return Err(self.unexpected(context, "")),
            }
        }
    }

    fn parse_call(&mut self) -> Result<Expr, ParseError> {
        let name_tok = self.advance();
        let args = self.parse_call_body("")?;
        let name = name_tok.text(self.input);
        let Some(func) = get_function(name) else {
            return Err(self.err(
                name_tok.start,
                name_tok.end,
                format!("unknown function with name {}", go_quote(name)),
            ));
        };
        if func.experimental && !self.opts.experimental_functions {
            return Err(self.err(
                name_tok.start,
                name_tok.end,
                format!("function {} is not enabled", go_quote(name)),
            ));
        }
        Ok(Expr::Call(Call { func, args, pos: PosRange::new(name_tok.start, self.last_closing) }))
    }

    fn parse_aggregate(&mut self) -> Result<Expr, ParseError> {
        let op_tok = self.advance();
        let op = aggregate_op(op_tok.kind).unwrap_or(AggregateOp::Sum);
        let mut grouping: Option<(Vec<String>, bool)> = None;
        if matches!(self.peek().kind, T::By | T::Without) {
            let without = self.advance().kind == T::Without;
            grouping = Some((self.parse_grouping_labels()?, without));
        }
        if self.peek().kind != T::LeftParen {
            return Err(self.unexpected("aggregation", ""));
        }
        self.aggregation_depth += 1;
        let args = self.parse_call_body("aggregation");
        self.aggregation_depth -= 1;
        let mut args = args?;
        if grouping.is_none() && matches!(self.peek().kind, T::By | T::Without) {
            let without = self.advance().kind == T::Without;
            grouping = Some((self.parse_grouping_labels()?, without));
        }
        let pos = PosRange::new(op_tok.start, self.last_closing);
        if args.is_empty() {
            return Err(self.err_range(pos, "no arguments for aggregate expression provided"));
        }
        let desired = if op.has_param() {
            if op.is_experimental() && !self.opts.experimental_functions {
                return Err(self.err_range(
                    pos,
                    format!(
                        "{}() is experimental and must be enabled with --enable-feature=promql-experimental-functions",
                        op.as_str()
                    ),
                ));
            }
            2
        } else {
            1
        };
        if args.len() != desired {
            return Err(self.err_range(
                pos,
                format!(
                    "wrong number of arguments for aggregate expression provided, expected {desired}, got {}",
                    args.len()
                ),
            ));
        }
        let expr = args.pop().map(Box::new);
        let param = args.pop().map(Box::new);
        let (grouping, without) = grouping.unwrap_or_default();
        match expr {
            Some(expr) => Ok(Expr::Aggregate(AggregateExpr { op, expr, param, grouping, without, pos })),
            None => Err(self.err_range(pos, "no arguments for aggregate expression provided")),
        }
    }

    /// A duration literal inside brackets or after `offset`: an optionally
    /// signed number (seconds) or duration. Returns seconds and the range.
    fn parse_duration_literal(
        &mut self,
        context: &str,
        expected: &str,
    ) -> Result<(f64, PosRange), ParseError> {
        let t = self.peek();
        match t.kind {
            T::Add | T::Sub => {
                self.advance();
                let (v, r) = self.parse_duration_literal(context, expected)?;
                let v = if t.kind == T::Sub { -v } else { v };
                if duration_out_of_range(v) {
                    return Err(self.err(t.start, t.end, "duration out of range"));
                }
                Ok((v, PosRange::new(t.start, r.end)))
            }
            T::Number | T::Duration => {
                self.advance();
                let v = if t.kind == T::Number {
                    parse_number(t.text(self.input)).map_err(|m| self.err(t.start, t.end, m))?
                } else {
                    self.duration_token_seconds(t)?
                };
                if duration_out_of_range(v) {
                    return Err(self.err(t.start, t.end, "duration out of range"));
                }
                Ok((v, PosRange::new(t.start, t.end)))
            }
            T::Step | T::Range | T::MaxOf | T::MinOf | T::LeftParen => {
                Err(self.err(t.start, t.end, "experimental duration expression is not enabled"))
            }
            _ => Err(self.unexpected(context, expected)),
        }
    }

    /// A duration expression (with `duration_expressions`): `+ - * / % ^`
    /// with the usual precedence, parentheses, `step()`, `range()`,
    /// `min_of(a, b)`, `max_of(a, b)`. `min_prec` 255 parses one operand.
    fn parse_duration_expr(
        &mut self,
        min_prec: u8,
        context: &str,
        expected: &str,
    ) -> Result<(DurationExpr, PosRange), ParseError> {
        let t = self.peek();
        let (mut lhs, mut r) = match t.kind {
            T::Add | T::Sub => {
                self.advance();
                let (e, r) = self.parse_duration_expr(3, context, expected)?;
                let e = if t.kind == T::Sub { DurationExpr::Neg(Box::new(e)) } else { e };
                (e, PosRange::new(t.start, r.end))
            }
            T::Number | T::Duration => {
                self.advance();
                let v = if t.kind == T::Number {
                    parse_number(t.text(self.input)).map_err(|m| self.err(t.start, t.end, m))?
                } else {
                    self.duration_token_seconds(t)?
                };
                (DurationExpr::Seconds(v), PosRange::new(t.start, t.end))
            }
            T::LeftParen => {
                self.advance();
                let (e, _) = self.parse_duration_expr(0, context, expected)?;
                if self.peek().kind != T::RightParen {
                    return Err(self.unexpected("duration expression", "\")\""));
                }
                let rp = self.advance();
                (e, PosRange::new(t.start, rp.end))
            }
            T::Step | T::Range | T::MinOf | T::MaxOf => {
                self.advance();
                if self.peek().kind != T::LeftParen {
                    return Err(self.unexpected("duration expression", "\"(\""));
                }
                self.advance();
                let e = match t.kind {
                    T::Step => DurationExpr::Step,
                    T::Range => DurationExpr::Range,
                    _ => {
                        let (a, _) = self.parse_duration_expr(0, context, expected)?;
                        if self.peek().kind != T::Comma {
                            return Err(self.unexpected("duration expression", "\",\""));
                        }
                        self.advance();
                        let (b, _) = self.parse_duration_expr(0, context, expected)?;
                        if t.kind == T::MinOf {
                            DurationExpr::MinOf(Box::new(a), Box::new(b))
                        } else {
                            DurationExpr::MaxOf(Box::new(a), Box::new(b))
                        }
                    }
                };
                if self.peek().kind != T::RightParen {
                    return Err(self.unexpected("duration expression", "\")\""));
                }
                let rp = self.advance();
                (e, PosRange::new(t.start, rp.end))
            }
            _ => return Err(self.unexpected(context, expected)),
        };
        if min_prec == 255 {
            return Ok((lhs, r));
        }
        loop {
            let op = match self.peek().kind {
                T::Add => BinaryOp::Add,
                T::Sub => BinaryOp::Sub,
                T::Mul => BinaryOp::Mul,
                T::Div => BinaryOp::Div,
                T::Mod => BinaryOp::Mod,
                T::Pow => BinaryOp::Pow,
                _ => break,
            };
            let prec = match op {
                BinaryOp::Add | BinaryOp::Sub => 1,
                BinaryOp::Pow => 3,
                _ => 2,
            };
            if prec < min_prec {
                break;
            }
            self.advance();
            // `^` is right-associative.
            let next = if op == BinaryOp::Pow { prec } else { prec + 1 };
            let (rhs, rr) = self.parse_duration_expr(next, context, expected)?;
            lhs = DurationExpr::Binary(op, Box::new(lhs), Box::new(rhs));
            r = PosRange::new(r.start, rr.end);
        }
        Ok((lhs, r))
    }

    /// A constant duration expression's value in seconds, checked.
    fn fold_duration(&self, e: &DurationExpr, r: PosRange) -> Result<f64, ParseError> {
        let v = e.eval(0.0, 0.0).ok_or_else(|| self.err_range(r, "division by zero"))?;
        if duration_out_of_range(v) {
            return Err(self.err_range(r, "duration out of range"));
        }
        Ok(v)
    }

    /// The range of a range selector: milliseconds, or a query-dependent
    /// expression (then 0 ms).
    fn parse_range_duration(
        &mut self,
        context: &str,
        expected: &str,
    ) -> Result<(i64, Option<DurationExpr>), ParseError> {
        if !self.opts.duration_expressions {
            return Ok((self.parse_positive_duration(context, expected)?, None));
        }
        let (e, r) = self.parse_duration_expr(0, context, expected)?;
        if e.is_dynamic() {
            return Ok((0, Some(e)));
        }
        let v = self.fold_duration(&e, r)?;
        if v <= 0.0 {
            return Err(self.err_range(r, "duration must be greater than 0"));
        }
        Ok((seconds_to_ms(v), None))
    }

    /// A positive duration inside `[...]`, in milliseconds.
    fn parse_positive_duration(&mut self, context: &str, expected: &str) -> Result<i64, ParseError> {
        if self.opts.duration_expressions {
            let (e, r) = self.parse_duration_expr(0, context, expected)?;
            if e.is_dynamic() {
                return Err(
                    self.err_range(r, "step() and range() are only supported in range selectors by ember")
                );
            }
            let v = self.fold_duration(&e, r)?;
            if v <= 0.0 {
                return Err(self.err_range(r, "duration must be greater than 0"));
            }
            return Ok(seconds_to_ms(v));
        }
        let (v, r) = self.parse_duration_literal(context, expected)?;
        // Arithmetic on durations is Prometheus's experimental duration
        // expression syntax.
        if matches!(self.peek().kind, T::Add | T::Sub | T::Mul | T::Div | T::Mod | T::Pow) {
            return Err(self.err_range(r, "experimental duration expression is not enabled"));
        }
        if v <= 0.0 {
            return Err(self.err_range(r, "duration must be greater than 0"));
        }
        Ok(seconds_to_ms(v))
    }

    fn parse_range_or_subquery(&mut self, e: Expr) -> Result<Expr, ParseError> {
        let lb = self.advance();
        let (range, range_expr) =
            self.parse_range_duration("subquery or range selector", "number, duration, step(), or range()")?;
        match self.peek().kind {
            T::RightBracket => {
                let rb = self.advance();
                let msg = match &e {
                    Expr::VectorSelector(vs) if vs.original_offset != 0 => {
                        "no offset modifiers allowed before range"
                    }
                    Expr::VectorSelector(vs) if vs.at.is_some() => "no @ modifiers allowed before range",
                    Expr::VectorSelector(_) => "",
                    _ => "ranges only allowed for vector selectors",
                };
                if !msg.is_empty() {
                    return Err(self.err(lb.start, rb.end, msg));
                }
                let Expr::VectorSelector(vs) = e else {
                    return Err(self.err(lb.start, rb.end, "ranges only allowed for vector selectors"));
                };
                Ok(Expr::MatrixSelector(MatrixSelector { vs, range, range_expr, end_pos: rb.end }))
            }
            T::Colon => {
                if range_expr.is_some() {
                    return Err(self.err(
                        lb.start,
                        self.peek().end,
                        "step() and range() are only supported in range selectors by ember",
                    ));
                }
                self.advance();
                let step = if self.peek().kind == T::RightBracket {
                    0
                } else {
                    let s = self.parse_positive_duration(
                        "subquery selector",
                        "number, duration, step(), range(), or \"]\"",
                    )?;
                    if self.peek().kind != T::RightBracket {
                        return Err(self.unexpected("subquery selector", "\"]\""));
                    }
                    s
                };
                let rb = self.advance();
                Ok(Expr::Subquery(SubqueryExpr {
                    expr: Box::new(e),
                    range,
                    step,
                    original_offset: 0,
                    at: None,
                    end_pos: rb.end,
                }))
            }
            _ => Err(self.unexpected("subquery or range", "\":\" or \"]\"")),
        }
    }

    fn parse_offset(&mut self, mut e: Expr) -> Result<Expr, ParseError> {
        self.advance();
        let v = if self.opts.duration_expressions {
            // An offset takes one operand: a literal or a parenthesised
            // expression.
            let (e, r) = self.parse_duration_expr(255, "offset", "number, duration, step(), or range()")?;
            if e.is_dynamic() {
                return Err(
                    self.err_range(r, "step() and range() are only supported in range selectors by ember")
                );
            }
            self.fold_duration(&e, r)?
        } else {
            self.parse_duration_literal("offset", "number, duration, step(), or range()")?.0
        };
        let ms = seconds_to_ms(v);
        let end = self.last_closing;
        let pos = e.pos_range();
        let (slot, end_slot) = match &mut e {
            Expr::VectorSelector(vs) => (&mut vs.original_offset, &mut vs.pos.end),
            Expr::MatrixSelector(m) => (&mut m.vs.original_offset, &mut m.end_pos),
            Expr::Subquery(s) => (&mut s.original_offset, &mut s.end_pos),
            _ => {
                return Err(self.err_range(
                    pos,
                    "offset modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ))
            }
        };
        if *slot != 0 {
            return Err(self.err_range(pos, "offset may not be set multiple times"));
        }
        *slot = ms;
        *end_slot = end;
        Ok(e)
    }

    fn parse_at(&mut self, mut e: Expr) -> Result<Expr, ParseError> {
        self.advance();
        let t = self.peek();
        let at = match t.kind {
            T::Number | T::Duration | T::Add | T::Sub => {
                let mut sign = 1.0;
                if matches!(t.kind, T::Add | T::Sub) {
                    self.advance();
                    if t.kind == T::Sub {
                        sign = -1.0;
                    }
                    if !matches!(self.peek().kind, T::Number | T::Duration) {
                        return Err(self.unexpected("@", "timestamp"));
                    }
                }
                let n = self.advance();
                let v = if n.kind == T::Number {
                    parse_number(n.text(self.input)).map_err(|m| self.err(n.start, n.end, m))?
                } else {
                    self.duration_token_seconds(n)?
                } * sign;
                if !v.is_finite() || v >= i64::MAX as f64 || v <= i64::MIN as f64 {
                    return Err(self.err_range(
                        e.pos_range(),
                        format!("timestamp out of bounds for @ modifier: {}", go_f(v)),
                    ));
                }
                AtModifier::Timestamp(seconds_to_ms(v))
            }
            T::Start | T::End => {
                self.advance();
                if self.peek().kind != T::LeftParen || self.peek_at(1).kind != T::RightParen {
                    if self.peek().kind == T::LeftParen {
                        self.advance();
                    }
                    return Err(self.unexpected("@", "timestamp"));
                }
                self.advance();
                self.advance();
                if t.kind == T::Start {
                    AtModifier::Start
                } else {
                    AtModifier::End
                }
            }
            _ => return Err(self.unexpected("@", "timestamp")),
        };
        let end = self.last_closing;
        let pos = e.pos_range();
        let (slot, end_slot) = match &mut e {
            Expr::VectorSelector(vs) => (&mut vs.at, &mut vs.pos.end),
            Expr::MatrixSelector(m) => (&mut m.vs.at, &mut m.end_pos),
            Expr::Subquery(s) => (&mut s.at, &mut s.end_pos),
            _ => {
                return Err(self.err_range(
                    pos,
                    "@ modifier must be preceded by an instant vector selector or range vector selector or a subquery",
                ))
            }
        };
        if slot.is_some() {
            return Err(self.err_range(pos, "@ <timestamp> may not be set multiple times"));
        }
        *slot = Some(at);
        *end_slot = end;
        Ok(e)
    }
}

/// Prometheus's `checkAST`: types and the rules that need them.
struct Checker<'a> {
    input: &'a str,
}

impl Checker<'_> {
    fn err(&self, r: PosRange, msg: impl Into<String>) -> ParseError {
        ParseError::new(self.input, r.start, r.end, msg)
    }

    fn expect_type(&self, e: &mut Expr, want: ValueType, context: &str) -> Result<(), ParseError> {
        let t = self.check(e)?;
        if t != want {
            return Err(self.err(
                e.pos_range(),
                format!("expected type {} in {context}, got {}", want.documented(), t.documented()),
            ));
        }
        Ok(())
    }

    /// The range of a binary operator token: between the operands, trimmed.
    fn op_range(&self, b: &BinaryExpr) -> PosRange {
        let bytes = self.input.as_bytes();
        let mut start = b.lhs.pos_range().end;
        let mut end = b.rhs.pos_range().start.saturating_sub(1);
        while start < bytes.len() && matches!(bytes[start], b' ' | b'\t' | b'\n' | b'\r') {
            start += 1;
        }
        while end > start && end < bytes.len() && matches!(bytes[end], b' ' | b'\t' | b'\n' | b'\r') {
            end -= 1;
        }
        PosRange::new(start, end)
    }

    fn check(&self, e: &mut Expr) -> Result<ValueType, ParseError> {
        let pos = e.pos_range();
        match e {
            Expr::Aggregate(a) => {
                self.expect_type(&mut a.expr, ValueType::Vector, "aggregation expression")?;
                if let Some(p) = a.param.as_deref_mut() {
                    match a.op {
                        AggregateOp::CountValues => {
                            self.expect_type(p, ValueType::String, "aggregation parameter")?
                        }
                        _ => self.expect_type(p, ValueType::Scalar, "aggregation parameter")?,
                    }
                }
            }
            Expr::Binary(b) => {
                let lt = self.check(&mut b.lhs)?;
                let rt = self.check(&mut b.rhs)?;
                if b.return_bool && !b.op.is_comparison() {
                    return Err(
                        self.err(self.op_range(b), "bool modifier can only be used on comparison operators")
                    );
                }
                if b.op.is_comparison()
                    && !b.return_bool
                    && lt == ValueType::Scalar
                    && rt == ValueType::Scalar
                {
                    return Err(
                        self.err(self.op_range(b), "comparisons between scalars must use BOOL modifier")
                    );
                }
                let op_range = self.op_range(b);
                if let Some(vm) = b.matching.as_mut() {
                    if b.op.is_set_operator() && vm.card == Cardinality::OneToOne {
                        vm.card = Cardinality::ManyToMany;
                    }
                    if vm.on {
                        if let Some(l) = vm.matching_labels.iter().find(|l| vm.include.contains(l)) {
                            return Err(self.err(
                                op_range,
                                format!(
                                    "label {} must not occur in ON and GROUP clause at once",
                                    go_quote(l)
                                ),
                            ));
                        }
                    }
                }
                if lt != ValueType::Scalar && lt != ValueType::Vector {
                    return Err(self.err(
                        b.lhs.pos_range(),
                        "binary expression must contain only scalar and instant vector types",
                    ));
                }
                if rt != ValueType::Scalar && rt != ValueType::Vector {
                    return Err(self.err(
                        b.rhs.pos_range(),
                        "binary expression must contain only scalar and instant vector types",
                    ));
                }
                if lt != ValueType::Vector || rt != ValueType::Vector {
                    if let Some(vm) = &b.matching {
                        if !vm.matching_labels.is_empty() {
                            return Err(self.err(pos, "vector matching only allowed between instant vectors"));
                        }
                    }
                    b.matching = None;
                } else if b.op.is_set_operator() {
                    if let Some(vm) = &b.matching {
                        if matches!(vm.card, Cardinality::OneToMany | Cardinality::ManyToOne) {
                            return Err(self.err(
                                pos,
                                format!("no grouping allowed for {} operation", go_quote(b.op.as_str())),
                            ));
                        }
                        if vm.card != Cardinality::ManyToMany {
                            return Err(self.err(pos, "set operations must always be many-to-many"));
                        }
                    }
                }
                if (lt == ValueType::Scalar || rt == ValueType::Scalar) && b.op.is_set_operator() {
                    return Err(self.err(
                        pos,
                        format!(
                            "set operator {} not allowed in binary scalar expression",
                            go_quote(b.op.as_str())
                        ),
                    ));
                }
            }
            Expr::Call(c) => {
                let nargs = c.func.arg_types.len();
                let name = go_quote(c.func.name);
                if c.func.variadic == 0 {
                    if nargs != c.args.len() {
                        return Err(self.err(
                            pos,
                            format!("expected {nargs} argument(s) in call to {name}, got {}", c.args.len()),
                        ));
                    }
                } else {
                    let na = nargs.saturating_sub(1);
                    if na > c.args.len() {
                        return Err(self.err(
                            pos,
                            format!(
                                "expected at least {na} argument(s) in call to {name}, got {}",
                                c.args.len()
                            ),
                        ));
                    }
                    let max = na + c.func.variadic.max(0) as usize;
                    if c.func.variadic > 0 && max < c.args.len() {
                        return Err(self.err(
                            pos,
                            format!(
                                "expected at most {max} argument(s) in call to {name}, got {}",
                                c.args.len()
                            ),
                        ));
                    }
                }
                if c.func.name == "info" && c.args.len() > 1 {
                    let arg = &mut c.args[1];
                    let t = arg.value_type();
                    if t != ValueType::Vector {
                        return Err(self.err(
                            pos,
                            format!(
                                "expected type instant vector in call to function {name}, got {}",
                                t.documented()
                            ),
                        ));
                    }
                    match arg {
                        Expr::VectorSelector(vs) if !vs.name.is_empty() => {
                            return Err(self
                                .err(vs.pos, "expected label selectors only, got vector selector instead"));
                        }
                        Expr::VectorSelector(vs) => vs.bypass_empty_matcher_check = true,
                        other => return Err(self.err(other.pos_range(), "expected label selectors only")),
                    }
                }
                let arg_types = c.func.arg_types;
                let variadic = c.func.variadic;
                for (i, arg) in c.args.iter_mut().enumerate() {
                    let idx = if i >= arg_types.len() {
                        if variadic == 0 || arg_types.is_empty() {
                            break;
                        }
                        arg_types.len() - 1
                    } else {
                        i
                    };
                    let t = self.check(arg)?;
                    if t != arg_types[idx] {
                        return Err(self.err(
                            arg.pos_range(),
                            format!(
                                "expected type {} in call to function {name}, got {}",
                                arg_types[idx].documented(),
                                t.documented()
                            ),
                        ));
                    }
                }
            }
            Expr::Paren(p) => {
                self.check(&mut p.expr)?;
            }
            Expr::Unary(u) => {
                let t = self.check(&mut u.expr)?;
                if t != ValueType::Scalar && t != ValueType::Vector {
                    return Err(self.err(
                        pos,
                        format!(
                            "unary expression only allowed on expressions of type scalar or instant vector, got {}",
                            go_quote(t.documented())
                        ),
                    ));
                }
            }
            Expr::Subquery(s) => {
                let t = self.check(&mut s.expr)?;
                if t != ValueType::Vector {
                    return Err(self.err(
                        pos,
                        format!("subquery is only allowed on instant vector, got {} instead", t.as_str()),
                    ));
                }
            }
            Expr::MatrixSelector(m) => self.check_vector_selector(&m.vs)?,
            Expr::VectorSelector(vs) => self.check_vector_selector(vs)?,
            Expr::Number(_) | Expr::String(_) => {}
        }
        Ok(e.value_type())
    }

    fn check_vector_selector(&self, vs: &VectorSelector) -> Result<(), ParseError> {
        if !vs.name.is_empty() {
            // The last matcher is the name given outside the braces.
            let inner = &vs.matchers[..vs.matchers.len().saturating_sub(1)];
            if let Some(m) = inner.iter().find(|m| m.name == METRIC_NAME) {
                return Err(self.err(
                    vs.pos,
                    format!(
                        "metric name must not be set twice: {} or {}",
                        go_quote(&vs.name),
                        go_quote(&m.value)
                    ),
                ));
            }
            return Ok(());
        }
        if !vs.bypass_empty_matcher_check && vs.matchers.iter().all(|m| m.matches("")) {
            return Err(self.err(vs.pos, "vector selector must contain at least one non-empty matcher"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_like_go() {
        assert_eq!(parse_number("0x1f"), Ok(31.0));
        assert_eq!(parse_number("017"), Ok(15.0));
        assert_eq!(parse_number("09"), Ok(9.0));
        assert_eq!(parse_number("1_000"), Ok(1000.0));
        assert_eq!(parse_number(".5"), Ok(0.5));
        assert_eq!(parse_number("5."), Ok(5.0));
        assert_eq!(parse_number("1e3"), Ok(1000.0));
        assert_eq!(parse_number("99999999999999999999"), Ok(1e20));
        assert!(parse_number("Inf").is_ok_and(|v| v.is_infinite()));
        assert!(parse_number("nAn").is_ok_and(|v| v.is_nan()));
        assert_eq!(
            parse_number("1e400"),
            Err(r#"error parsing number: strconv.ParseFloat: parsing "1e400": value out of range"#.to_owned())
        );
        assert!(parse_number("0x").is_err());
        assert!(parse_number("1__0").is_err());
    }

    #[test]
    fn underscores() {
        assert!(underscore_ok("1_000"));
        assert!(underscore_ok("0x_1f"));
        assert!(!underscore_ok("1__0"));
        assert!(!underscore_ok("_1"));
        assert!(!underscore_ok("1_"));
        assert!(!underscore_ok("1_.5"));
    }
}
