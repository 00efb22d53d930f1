//! The PromQL lexer.
//!
//! A state machine with the same states as Prometheus's lexer (statements,
//! inside braces, first token after `[`), so that the same inputs produce
//! the same tokens and the same lexer errors at the same positions. The
//! whole input is lexed up front; a lexer error ends the token list with an
//! [`TokenKind::Error`] token whose message is in [`Lexed::error`].

use crate::quote::{go_quote_rune, go_rune_u};

/// Token kinds. Operators, aggregators and keywords follow Prometheus's item
/// classes, which decide how a token is described in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    Eof,
    Error,
    Comment,
    Identifier,
    MetricIdentifier,
    Number,
    Duration,
    String,
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    LeftBracket,
    RightBracket,
    Comma,
    Eql,
    Colon,
    // Operators.
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Eqlc,
    Neq,
    Lte,
    Lss,
    Gte,
    Gtr,
    EqlRegex,
    NeqRegex,
    At,
    Atan2,
    Land,
    Lor,
    Lunless,
    // Aggregators.
    Avg,
    Bottomk,
    Count,
    CountValues,
    Group,
    Max,
    Min,
    Quantile,
    Stddev,
    Stdvar,
    Sum,
    Topk,
    Limitk,
    LimitRatio,
    // Keywords.
    Bool,
    By,
    GroupLeft,
    GroupRight,
    Ignoring,
    Offset,
    Smoothed,
    Anchored,
    On,
    Without,
    // Preprocessors (`@ start()`, `@ end()`, duration functions).
    Start,
    End,
    Step,
    Range,
    MaxOf,
    MinOf,
}

impl TokenKind {
    pub fn is_operator(self) -> bool {
        use TokenKind::*;
        matches!(
            self,
            Add | Sub
                | Mul
                | Div
                | Mod
                | Pow
                | Eqlc
                | Neq
                | Lte
                | Lss
                | Gte
                | Gtr
                | EqlRegex
                | NeqRegex
                | At
                | Atan2
                | Land
                | Lor
                | Lunless
        )
    }

    pub fn is_aggregator(self) -> bool {
        use TokenKind::*;
        matches!(
            self,
            Avg | Bottomk
                | Count
                | CountValues
                | Group
                | Max
                | Min
                | Quantile
                | Stddev
                | Stdvar
                | Sum
                | Topk
                | Limitk
                | LimitRatio
        )
    }

    pub fn is_keyword(self) -> bool {
        use TokenKind::*;
        matches!(
            self,
            Bool | By | GroupLeft | GroupRight | Ignoring | Offset | Smoothed | Anchored | On | Without
        )
    }

    fn is_preprocessor(self) -> bool {
        use TokenKind::*;
        matches!(self, Start | End | Step | Range | MaxOf | MinOf)
    }

    /// True for kinds Prometheus has a fixed spelling for (its
    /// `ItemTypeStr`); those are described by their text alone.
    fn has_fixed_spelling(self) -> bool {
        use TokenKind::*;
        self.is_operator()
            || self.is_aggregator()
            || self.is_keyword()
            || self.is_preprocessor()
            || matches!(
                self,
                LeftParen
                    | RightParen
                    | LeftBrace
                    | RightBrace
                    | LeftBracket
                    | RightBracket
                    | Comma
                    | Eql
                    | Colon
            )
    }

    fn class_desc(self) -> &'static str {
        match self {
            TokenKind::Error => "error",
            TokenKind::Eof => "end of input",
            TokenKind::Comment => "comment",
            TokenKind::Identifier => "identifier",
            TokenKind::MetricIdentifier => "metric identifier",
            TokenKind::String => "string",
            TokenKind::Number => "number",
            TokenKind::Duration => "duration",
            _ => "",
        }
    }
}

/// Keywords are matched case-insensitively, as in Prometheus.
fn keyword(lower: &str) -> Option<TokenKind> {
    use TokenKind::*;
    Some(match lower {
        "and" => Land,
        "or" => Lor,
        "unless" => Lunless,
        "atan2" => Atan2,
        "sum" => Sum,
        "avg" => Avg,
        "count" => Count,
        "min" => Min,
        "max" => Max,
        "group" => Group,
        "stddev" => Stddev,
        "stdvar" => Stdvar,
        "topk" => Topk,
        "bottomk" => Bottomk,
        "count_values" => CountValues,
        "quantile" => Quantile,
        "limitk" => Limitk,
        "limit_ratio" => LimitRatio,
        "offset" => Offset,
        "smoothed" => Smoothed,
        "anchored" => Anchored,
        "by" => By,
        "without" => Without,
        "on" => On,
        "ignoring" => Ignoring,
        "group_left" => GroupLeft,
        "group_right" => GroupRight,
        "bool" => Bool,
        "start" => Start,
        "end" => End,
        "step" => Step,
        "range" => Range,
        "max_of" => MaxOf,
        "min_of" => MinOf,
        "inf" | "nan" => Number,
        _ => return None,
    })
}

fn duration_keyword(lower: &str) -> Option<TokenKind> {
    match lower {
        "step" => Some(TokenKind::Step),
        "range" => Some(TokenKind::Range),
        "max_of" => Some(TokenKind::MaxOf),
        "min_of" => Some(TokenKind::MinOf),
        _ => None,
    }
}

/// One token: its kind and byte range in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn text<'a>(&self, input: &'a str) -> &'a str {
        &input[self.start..self.end]
    }

    /// How Prometheus describes a token in "unexpected ..." messages:
    /// `end of input`, `identifier "foo"`, `<op:+>`, `<aggr:sum>`, `<by>`,
    /// `"("`, `number "1"`.
    pub fn describe(&self, input: &str) -> String {
        let text = self.text(input);
        let kind = self.kind;
        let item = || -> String {
            if kind.is_keyword() {
                format!("<{}>", text)
            } else if kind.is_operator() {
                format!("<op:{}>", text)
            } else if kind.is_aggregator() {
                format!("<aggr:{}>", text)
            } else if matches!(kind, TokenKind::Identifier | TokenKind::MetricIdentifier) {
                crate::go_quote(text)
            } else if text.len() > 10 {
                format!("{}...", crate::quote::go_quote_prefix(text, 10))
            } else {
                crate::go_quote(text)
            }
        };
        match kind {
            TokenKind::Eof => "end of input".to_owned(),
            k if k.has_fixed_spelling() => item(),
            k => format!("{} {}", k.class_desc(), item()),
        }
    }
}

/// The result of lexing a whole input.
#[derive(Debug, Clone)]
pub struct Lexed {
    /// Tokens without comments, ending with `Eof` or `Error`.
    pub tokens: Vec<Token>,
    /// The lexer error message, when the last token is `Error`.
    pub error: Option<String>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Statements,
    DurationExpr,
}

struct Lexer<'a> {
    input: &'a str,
    pos: usize,
    start: usize,
    /// Byte width of the last rune read, for `backup`.
    width: usize,
    tokens: Vec<Token>,
    error: Option<String>,
    state: State,
    paren_depth: i64,
    brace_open: bool,
    bracket_open: bool,
    got_colon: bool,
    got_duration: bool,
}

const DIGITS: &str = "0123456789";
const HEX_DIGITS: &str = "0123456789abcdefABCDEF";

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}
fn is_alpha(c: char) -> bool {
    c == '_' || c.is_ascii_alphabetic()
}
fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
}
fn is_alnum(c: char) -> bool {
    is_alpha(c) || is_digit(c)
}

impl<'a> Lexer<'a> {
    fn next(&mut self) -> Option<char> {
        match self.input[self.pos..].chars().next() {
            Some(c) => {
                self.width = c.len_utf8();
                self.pos += self.width;
                Some(c)
            }
            None => {
                self.width = 0;
                None
            }
        }
    }
    fn peek(&self) -> Option<char> {
        self.input[self.pos..].chars().next()
    }
    fn backup(&mut self) {
        self.pos -= self.width;
        self.width = 0;
    }
    fn accept(&mut self, valid: &str) -> bool {
        match self.next() {
            Some(c) if valid.contains(c) => true,
            _ => {
                self.backup();
                false
            }
        }
    }
    fn is(&self, valid: &str) -> bool {
        self.peek().is_some_and(|c| valid.contains(c))
    }
    fn accept_run(&mut self, valid: &str) {
        while self.accept(valid) {}
    }
    fn emit(&mut self, kind: TokenKind) {
        if kind != TokenKind::Comment {
            self.tokens.push(Token { kind, start: self.start, end: self.pos });
        }
        self.start = self.pos;
    }
    fn ignore(&mut self) {
        self.start = self.pos;
    }
    /// Like Prometheus's `emit` followed by `errorf` in the same step: the
    /// error replaces the token just emitted, and starts after it.
    fn replace_with_error(&mut self, msg: String) {
        self.tokens.pop();
        self.errorf(msg);
    }

    /// Records a lexer error at the current token start; lexing stops.
    fn errorf(&mut self, msg: String) {
        self.tokens.push(Token { kind: TokenKind::Error, start: self.start, end: self.input.len() });
        self.error = Some(msg);
    }
    fn skip_spaces(&mut self) {
        while self.peek().is_some_and(is_space) {
            self.next();
        }
        self.ignore();
    }

    /// Runs one step; returns false when lexing is over.
    fn step(&mut self) -> bool {
        if self.brace_open {
            return self.lex_inside_braces();
        }
        if self.state == State::DurationExpr {
            return self.lex_duration_expr();
        }
        if self.input[self.pos..].starts_with('#') {
            self.lex_comment();
            return true;
        }
        let Some(r) = self.next() else {
            if self.paren_depth != 0 {
                self.errorf("unclosed left parenthesis".into());
            } else if self.bracket_open {
                self.errorf("unclosed left bracket".into());
            } else {
                self.emit(TokenKind::Eof);
            }
            return false;
        };
        match r {
            ',' => self.emit(TokenKind::Comma),
            c if is_space(c) => self.skip_spaces(),
            '*' => self.emit(TokenKind::Mul),
            '/' => self.emit(TokenKind::Div),
            '%' => self.emit(TokenKind::Mod),
            '+' => self.emit(TokenKind::Add),
            '-' => self.emit(TokenKind::Sub),
            '^' => self.emit(TokenKind::Pow),
            '=' => match self.peek() {
                Some('=') => {
                    self.next();
                    self.emit(TokenKind::Eqlc);
                }
                Some('~') => {
                    self.errorf(format!("unexpected character after '=': {}", go_quote_rune(Some('~'))));
                    return false;
                }
                _ => self.emit(TokenKind::Eql),
            },
            '!' => {
                let t = self.next();
                if t != Some('=') {
                    self.errorf(format!("unexpected character after '!': {}", go_quote_rune(t)));
                    return false;
                }
                self.emit(TokenKind::Neq);
            }
            '<' => {
                if self.peek() == Some('=') {
                    self.next();
                    self.emit(TokenKind::Lte);
                } else {
                    self.emit(TokenKind::Lss);
                }
            }
            '>' => {
                if self.peek() == Some('=') {
                    self.next();
                    self.emit(TokenKind::Gte);
                } else {
                    self.emit(TokenKind::Gtr);
                }
            }
            c if is_digit(c) || (c == '.' && self.peek().is_some_and(is_digit)) => {
                self.backup();
                return self.lex_number_or_duration();
            }
            '"' | '\'' => return self.lex_string(r),
            '`' => return self.lex_raw_string(),
            c if is_alpha(c) || c == ':' => {
                if !self.bracket_open {
                    self.backup();
                    self.lex_keyword_or_identifier();
                    return true;
                }
                if c == ':' {
                    if self.got_colon {
                        self.errorf(format!("unexpected colon {}", go_quote_rune(Some(':'))));
                        return false;
                    }
                    self.emit(TokenKind::Colon);
                    self.got_colon = true;
                    return true;
                }
                if is_duration_keyword_start(c) && self.scan_duration_keyword() {
                    return true;
                }
                self.errorf(format!(
                    "unexpected character: {}, expected {}",
                    go_quote_rune(Some(c)),
                    go_quote_rune(Some(':'))
                ));
                return false;
            }
            '(' => {
                self.emit(TokenKind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(TokenKind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    self.replace_with_error(format!(
                        "unexpected right parenthesis {}",
                        go_quote_rune(Some(')'))
                    ));
                    return false;
                }
            }
            '{' => {
                self.emit(TokenKind::LeftBrace);
                self.brace_open = true;
            }
            '[' => {
                if self.bracket_open {
                    self.errorf(format!("unexpected left bracket {}", go_quote_rune(Some('['))));
                    return false;
                }
                self.got_colon = false;
                self.emit(TokenKind::LeftBracket);
                self.skip_spaces();
                self.bracket_open = true;
                self.state = State::DurationExpr;
            }
            ']' => {
                if !self.bracket_open {
                    self.errorf(format!("unexpected right bracket {}", go_quote_rune(Some(']'))));
                    return false;
                }
                self.emit(TokenKind::RightBracket);
                self.bracket_open = false;
            }
            '@' => self.emit(TokenKind::At),
            c => {
                self.errorf(format!("unexpected character: {}", go_quote_rune(Some(c))));
                return false;
            }
        }
        true
    }

    fn lex_comment(&mut self) {
        self.pos += 1;
        while let Some(c) = self.next() {
            if c == '\r' || c == '\n' {
                self.backup();
                break;
            }
        }
        self.emit(TokenKind::Comment);
    }

    fn lex_inside_braces(&mut self) -> bool {
        if self.input[self.pos..].starts_with('#') {
            self.lex_comment();
            return true;
        }
        let Some(r) = self.next() else {
            self.errorf("unexpected end of input inside braces".into());
            return false;
        };
        match r {
            c if is_space(c) => self.skip_spaces(),
            c if is_alpha(c) => {
                while self.next().is_some_and(is_alnum) {}
                self.backup();
                self.emit(TokenKind::Identifier);
            }
            ',' => self.emit(TokenKind::Comma),
            '"' | '\'' => return self.lex_string(r),
            '`' => return self.lex_raw_string(),
            '=' => {
                if self.next() == Some('~') {
                    self.emit(TokenKind::EqlRegex);
                } else {
                    self.backup();
                    self.emit(TokenKind::Eql);
                }
            }
            '!' => match self.next() {
                Some('~') => self.emit(TokenKind::NeqRegex),
                Some('=') => self.emit(TokenKind::Neq),
                nr => {
                    self.errorf(format!(
                        "unexpected character after '!' inside braces: {}",
                        go_quote_rune(nr)
                    ));
                    return false;
                }
            },
            '{' => {
                self.errorf(format!("unexpected left brace {}", go_quote_rune(Some('{'))));
                return false;
            }
            '}' => {
                self.emit(TokenKind::RightBrace);
                self.brace_open = false;
            }
            c => {
                self.errorf(format!("unexpected character inside braces: {}", go_quote_rune(Some(c))));
                return false;
            }
        }
        true
    }

    /// The first token after `[` (and after operators inside the brackets).
    fn lex_duration_expr(&mut self) -> bool {
        let Some(r) = self.next() else {
            self.errorf("unexpected end of input in duration expression".into());
            return false;
        };
        match r {
            ']' => {
                self.emit(TokenKind::RightBracket);
                self.bracket_open = false;
                self.got_colon = false;
                self.state = State::Statements;
            }
            ':' => {
                self.emit(TokenKind::Colon);
                if !self.got_duration {
                    self.replace_with_error("unexpected colon before duration in duration expression".into());
                    return false;
                }
                if self.got_colon {
                    self.replace_with_error("unexpected repeated colon in duration expression".into());
                    return false;
                }
                self.got_colon = true;
            }
            '(' => {
                self.emit(TokenKind::LeftParen);
                self.paren_depth += 1;
            }
            ')' => {
                self.emit(TokenKind::RightParen);
                self.paren_depth -= 1;
                if self.paren_depth < 0 {
                    self.replace_with_error(format!(
                        "unexpected right parenthesis {}",
                        go_quote_rune(Some(')'))
                    ));
                    return false;
                }
            }
            c if is_space(c) => self.skip_spaces(),
            '+' => self.emit(TokenKind::Add),
            '-' => self.emit(TokenKind::Sub),
            '*' => self.emit(TokenKind::Mul),
            '/' => self.emit(TokenKind::Div),
            '%' => self.emit(TokenKind::Mod),
            '^' => self.emit(TokenKind::Pow),
            ',' => self.emit(TokenKind::Comma),
            c if is_duration_keyword_start(c) => {
                if !self.scan_duration_keyword() {
                    self.errorf(format!(
                        "unexpected character in duration expression: {}",
                        go_quote_rune(Some(c))
                    ));
                    return false;
                }
            }
            c if is_digit(c) || (c == '.' && self.peek().is_some_and(is_digit)) => {
                self.backup();
                self.got_duration = true;
                self.state = State::Statements;
                return self.lex_number_or_duration();
            }
            c => {
                self.errorf(format!(
                    "unexpected character in duration expression: {}",
                    go_quote_rune(Some(c))
                ));
                return false;
            }
        }
        true
    }

    /// After the first letter of a possible duration keyword has been read.
    fn scan_duration_keyword(&mut self) -> bool {
        while self.next().is_some_and(is_alpha) {}
        self.backup();
        let word = self.input[self.start..self.pos].to_ascii_lowercase();
        match duration_keyword(&word) {
            Some(k) => {
                self.emit(k);
                true
            }
            None => false,
        }
    }

    fn lex_keyword_or_identifier(&mut self) {
        while self.next().is_some_and(|c| is_alnum(c) || c == ':') {}
        self.backup();
        let word = &self.input[self.start..self.pos];
        match keyword(&word.to_ascii_lowercase()) {
            Some(k) => self.emit(k),
            None if word.contains(':') => self.emit(TokenKind::MetricIdentifier),
            None => self.emit(TokenKind::Identifier),
        }
    }

    fn lex_string(&mut self, quote: char) -> bool {
        loop {
            match self.next() {
                Some('\\') => {
                    if let Err(msg) = self.lex_escape(quote) {
                        self.errorf(msg);
                        return false;
                    }
                }
                // Go's decoder reports invalid UTF-8 as U+FFFD, which also
                // catches a literal U+FFFD; keep the same behaviour.
                Some('\u{FFFD}') => {
                    self.errorf("invalid UTF-8 rune".into());
                    return false;
                }
                None | Some('\n') => {
                    self.errorf("unterminated quoted string".into());
                    return false;
                }
                Some(c) if c == quote => break,
                Some(_) => {}
            }
        }
        self.emit(TokenKind::String);
        true
    }

    fn lex_escape(&mut self, quote: char) -> Result<(), String> {
        let ch = self.next();
        let (mut n, base, max): (u32, u32, u32) = match ch {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '\\') => return Ok(()),
            Some(c) if c == quote => return Ok(()),
            Some('0'..='7') => (3, 8, 255),
            Some('x') => (2, 16, 255),
            Some('u') => (4, 16, 0x10FFFF),
            Some('U') => (8, 16, 0x10FFFF),
            None => return Err("escape sequence not terminated".into()),
            Some(c) => return Err(format!("unknown escape sequence {}", go_rune_u(c))),
        };
        let mut ch = if base == 8 { ch } else { self.next() };
        let mut x: u32 = 0;
        while n > 0 {
            let d = ch.and_then(|c| c.to_digit(16)).unwrap_or(16);
            if d >= base {
                return Err(match ch {
                    None => "escape sequence not terminated".into(),
                    Some(c) => format!("illegal character {} in escape sequence", go_rune_u(c)),
                });
            }
            x = x.wrapping_mul(base).wrapping_add(d);
            n -= 1;
            if n > 0 {
                ch = self.next();
            }
        }
        if x > max || (0xD800..0xE000).contains(&x) {
            return Err("escape sequence is an invalid Unicode code point".into());
        }
        Ok(())
    }

    fn lex_raw_string(&mut self) -> bool {
        loop {
            match self.next() {
                Some('\u{FFFD}') => {
                    self.errorf("invalid UTF-8 rune".into());
                    return false;
                }
                None => {
                    self.errorf("unterminated raw string".into());
                    return false;
                }
                Some('`') => break,
                Some(_) => {}
            }
        }
        self.emit(TokenKind::String);
        true
    }

    fn lex_number_or_duration(&mut self) -> bool {
        if self.scan_number() {
            self.emit(TokenKind::Number);
            return true;
        }
        if self.accept_remaining_duration() {
            self.backup();
            self.emit(TokenKind::Duration);
            return true;
        }
        let text = &self.input[self.start..self.pos];
        self.errorf(format!("bad number or duration syntax: {}", crate::go_quote(text)));
        false
    }

    fn accept_remaining_duration(&mut self) -> bool {
        if !self.accept("smhdwy") {
            return false;
        }
        // `ms`; bad units like `hs` are caught by the duration parser.
        self.accept("s");
        while self.accept(DIGITS) {
            while self.accept(DIGITS) {}
            if !self.accept("smhdw") {
                return false;
            }
            self.accept("s");
        }
        !self.next().is_some_and(is_alnum)
    }

    /// Scans a decimal, hexadecimal or float number, with `_` allowed
    /// between digits. The text is not necessarily a valid number; the
    /// parser checks that.
    fn scan_number(&mut self) -> bool {
        let initial = self.pos;
        let mut digits = DIGITS;
        if self.accept("0") && self.accept("xX") {
            self.accept("_");
            digits = HEX_DIGITS;
        }
        let hex = digits.len() > 10;
        let all = format!("{digits}._eE");
        self.accept(".");
        self.accept(digits);
        let mut dot = false;
        let mut exp = false;
        while self.is(&all) {
            if self.is(".") && dot {
                self.accept(".");
                return false;
            }
            if self.is("eE") && exp {
                self.accept("eE");
                return false;
            }
            if self.accept(".") {
                dot = true;
                if self.accept("_.") || hex {
                    return false;
                }
                continue;
            }
            if self.accept("eE") {
                exp = true;
                self.accept("+-");
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            if self.accept("_") {
                if self.accept("._eE") || self.peek().is_none() {
                    return false;
                }
                continue;
            }
            self.accept_run(digits);
        }
        if self.pos == initial {
            return false;
        }
        !self.peek().is_some_and(is_alnum)
    }
}

fn is_duration_keyword_start(c: char) -> bool {
    matches!(c.to_ascii_lowercase(), 's' | 'r' | 'm')
}

/// Lexes a whole input.
pub fn lex(input: &str) -> Lexed {
    let mut l = Lexer {
        input,
        pos: 0,
        start: 0,
        width: 0,
        tokens: Vec::new(),
        error: None,
        state: State::Statements,
        paren_depth: 0,
        brace_open: false,
        bracket_open: false,
        got_colon: false,
        got_duration: false,
    };
    while l.step() {}
    Lexed { tokens: l.tokens, error: l.error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use TokenKind::*;

    fn kinds(s: &str) -> Vec<TokenKind> {
        lex(s).tokens.iter().map(|t| t.kind).collect()
    }

    #[test]
    fn numbers_and_durations() {
        assert_eq!(
            kinds("1 0x1f .5 5. 1e3 1_000 Inf nAn"),
            vec![Number; 8].into_iter().chain([Eof]).collect::<Vec<_>>()
        );
        assert_eq!(kinds("5m 1h30m 1ms 1y"), vec![Duration, Duration, Duration, Duration, Eof]);
        let l = lex("1__0");
        assert_eq!(l.error.as_deref(), Some(r#"bad number or duration syntax: "1__""#));
        assert_eq!(lex("0xee").error.as_deref(), Some(r#"bad number or duration syntax: "0xee""#));
        assert_eq!(kinds("1.5h"), vec![Duration, Eof]);
    }

    #[test]
    fn selectors_and_brackets() {
        assert_eq!(
            kinds(r#"foo{a="b",c!~'d'}[5m:1m] offset -5m"#),
            vec![
                Identifier,
                LeftBrace,
                Identifier,
                Eql,
                String,
                Comma,
                Identifier,
                NeqRegex,
                String,
                RightBrace,
                LeftBracket,
                Duration,
                Colon,
                Duration,
                RightBracket,
                Offset,
                Sub,
                Duration,
                Eof
            ]
        );
        // Keywords are plain identifiers inside braces, and case-insensitive outside.
        assert_eq!(kinds("{by='x'}"), vec![LeftBrace, Identifier, Eql, String, RightBrace, Eof]);
        assert_eq!(kinds("SUM BY"), vec![Sum, By, Eof]);
        assert_eq!(kinds("a:b"), vec![MetricIdentifier, Eof]);
    }

    #[test]
    fn lexer_errors_and_positions() {
        let l = lex("foo]");
        assert_eq!(l.error.as_deref(), Some("unexpected right bracket ']'"));
        assert_eq!(l.tokens.last().map(|t| t.start), Some(3));
        let l = lex(")");
        assert_eq!(l.tokens[0].kind, Error, "the error replaces the `)` token");
        assert_eq!(l.tokens[0].start, 1);
        assert_eq!(lex("x[5m:1m:2m]").error.as_deref(), Some("unexpected colon ':'"));
        assert_eq!(lex("x[foo]").error.as_deref(), Some("unexpected character in duration expression: 'f'"));
        assert_eq!(lex(r#""\q""#).error.as_deref(), Some("unknown escape sequence U+0071 'q'"));
        assert_eq!(
            lex(r#""\xZZ""#).error.as_deref(),
            Some("illegal character U+005A 'Z' in escape sequence")
        );
        assert_eq!(
            lex(r#""\ud800""#).error.as_deref(),
            Some("escape sequence is an invalid Unicode code point")
        );
        assert_eq!(lex("'abc").error.as_deref(), Some("unterminated quoted string"));
        assert_eq!(lex("`abc").error.as_deref(), Some("unterminated raw string"));
        assert_eq!(lex("a != ~b").error.as_deref(), Some("unexpected character: '~'"));
        assert_eq!(lex("a =~ b").error.as_deref(), Some("unexpected character after '=': '~'"));
        assert_eq!(lex("{a!b}").error.as_deref(), Some("unexpected character after '!' inside braces: 'b'"));
    }

    #[test]
    fn comments_are_dropped() {
        assert_eq!(kinds("foo # comment\n+ bar"), vec![Identifier, Add, Identifier, Eof]);
        assert_eq!(kinds("{a='b' # c\n}"), vec![LeftBrace, Identifier, Eql, String, RightBrace, Eof]);
    }

    #[test]
    fn descriptions() {
        let d = |s: &str| {
            let l = lex(s);
            l.tokens[0].describe(s)
        };
        assert_eq!(d("foo"), r#"identifier "foo""#);
        assert_eq!(d("+"), "<op:+>");
        assert_eq!(d("sum"), "<aggr:sum>");
        assert_eq!(d("by"), "<by>");
        assert_eq!(d("("), r#""(""#);
        assert_eq!(d("5"), r#"number "5""#);
        assert_eq!(d("5m"), r#"duration "5m""#);
        assert_eq!(d(r#""my.metric""#), r#"string "\"my.metric"..."#);
        assert_eq!(d(""), "end of input");
        assert_eq!(d("start"), r#""start""#);
    }
}
