//! Label matchers: `=`, `!=`, `=~`, `!~`.
//!
//! Regexes are anchored at both ends and `.` matches newlines, as in
//! Prometheus 3 (`^(?s:RE)$`). Common regex shapes are recognised once at
//! construction and answered without the regex engine: a literal, a set of
//! literals `a|b|c`, `prefix.*`, `.*suffix`, `.*contains.*`, `.*` and `.+`.
//! The set and the prefix are also exposed so the index can look postings up
//! directly instead of scanning every value.

use std::fmt;

use regex_syntax::ast::{Ast, GroupKind, RepetitionKind};

/// The four matcher operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchOp {
    Equal,
    NotEqual,
    RegexMatch,
    RegexNoMatch,
}

impl MatchOp {
    pub fn as_str(&self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::RegexMatch => "=~",
            MatchOp::RegexNoMatch => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A regex that could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("error parsing regexp: {0}")]
pub struct RegexError(pub String);

/// A fully anchored regex with fast paths for common shapes.
#[derive(Clone)]
pub struct FastRegex {
    source: String,
    kind: RegexKind,
}

#[derive(Clone)]
enum RegexKind {
    /// `.*`: matches every string.
    Any,
    /// `.+`: matches every non-empty string.
    NonEmpty,
    /// A set of literals (one or more), e.g. `foo` or `a|b|c`.
    Set(Vec<String>),
    /// `lit.*`
    Prefix(String),
    /// `.*lit`
    Suffix(String),
    /// `.*lit.*`
    Contains(String),
    /// Anything else.
    General(regex::Regex),
}

impl FastRegex {
    /// Compiles `re` anchored as `^(?s:re)$`.
    pub fn new(re: &str) -> Result<FastRegex, RegexError> {
        // Compile the general form first so invalid regexes are always
        // reported, even when a fast path would have applied.
        let anchored = format!("^(?s:{re})$");
        let compiled = regex::Regex::new(&anchored).map_err(|e| RegexError(short_regex_error(&e)))?;
        let kind = analyse(re).unwrap_or(RegexKind::General(compiled));
        Ok(FastRegex { source: re.to_owned(), kind })
    }

    /// The regex as written, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    #[inline]
    pub fn is_match(&self, s: &str) -> bool {
        match &self.kind {
            RegexKind::Any => true,
            RegexKind::NonEmpty => !s.is_empty(),
            RegexKind::Set(set) => set.iter().any(|x| x == s),
            RegexKind::Prefix(p) => s.starts_with(p.as_str()),
            RegexKind::Suffix(p) => s.ends_with(p.as_str()),
            RegexKind::Contains(p) => s.contains(p.as_str()),
            RegexKind::General(r) => r.is_match(s),
        }
    }

    /// The exact strings this regex matches, if it is a finite set of
    /// literals.
    pub fn set_matches(&self) -> Option<&[String]> {
        match &self.kind {
            RegexKind::Set(s) => Some(s),
            _ => None,
        }
    }

    /// A literal prefix every match starts with, when the regex is
    /// `prefix.*`.
    pub fn prefix(&self) -> Option<&str> {
        match &self.kind {
            RegexKind::Prefix(p) => Some(p),
            _ => None,
        }
    }

    /// True if the empty string matches.
    pub fn matches_empty(&self) -> bool {
        self.is_match("")
    }
}

impl fmt::Debug for FastRegex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FastRegex({:?})", self.source)
    }
}

/// The first line of a regex error: the crate's message is multi-line with
/// an ASCII-art pointer, which is unreadable inside a JSON error string.
fn short_regex_error(e: &regex::Error) -> String {
    let msg = e.to_string();
    let last = msg.lines().rev().find(|l| l.starts_with("error:"));
    match last {
        Some(l) => l.trim_start_matches("error: ").to_owned(),
        None => msg.lines().next().unwrap_or("invalid regex").to_owned(),
    }
}

/// Recognises the fast-path shapes from the regex's syntax tree (the AST,
/// not the HIR: the HIR rewrites `a|b` into a class and factors common
/// prefixes, which hides the literal set). Anything with flags (e.g. `(?i)`),
/// classes or other repetitions falls through to the general engine.
fn analyse(re: &str) -> Option<RegexKind> {
    let ast = regex_syntax::ast::parse::Parser::new().parse(re).ok()?;
    let ast = strip_groups(&ast)?;
    if let Some(s) = literal(ast) {
        return Some(RegexKind::Set(vec![s]));
    }
    match ast {
        Ast::Alternation(alt) => {
            let set = alt
                .asts
                .iter()
                .map(|a| strip_groups(a).and_then(literal))
                .collect::<Option<Vec<String>>>()?;
            Some(RegexKind::Set(set))
        }
        Ast::Repetition(_) => match any_star(ast)? {
            0 => Some(RegexKind::Any),
            _ => Some(RegexKind::NonEmpty),
        },
        Ast::Concat(c) => {
            let parts: Vec<&Ast> = c.asts.iter().map(strip_groups).collect::<Option<_>>()?;
            // Split into leading `.*`, a literal middle, trailing `.*`.
            let lead = parts.first().and_then(|a| any_star(a)) == Some(0);
            let trail = parts.len() > 1 && parts.last().and_then(|a| any_star(a)) == Some(0);
            let from = usize::from(lead);
            let to = parts.len() - usize::from(trail);
            if from >= to {
                return None;
            }
            let mut lit = String::new();
            for p in &parts[from..to] {
                lit.push_str(&literal(p)?);
            }
            match (lead, trail) {
                (true, true) => Some(RegexKind::Contains(lit)),
                (true, false) => Some(RegexKind::Suffix(lit)),
                (false, true) => Some(RegexKind::Prefix(lit)),
                (false, false) => Some(RegexKind::Set(vec![lit])),
            }
        }
        _ => None,
    }
}

/// Unwraps groups that do not change meaning (captures and `(?:...)`
/// without flags); `None` for a group that sets flags.
fn strip_groups(a: &Ast) -> Option<&Ast> {
    match a {
        Ast::Group(g) => match &g.kind {
            GroupKind::CaptureIndex(_) | GroupKind::CaptureName { .. } => strip_groups(&g.ast),
            GroupKind::NonCapturing(flags) if flags.items.is_empty() => strip_groups(&g.ast),
            GroupKind::NonCapturing(_) => None,
        },
        Ast::Flags(_) => None,
        other => Some(other),
    }
}

/// The string an AST matches if it is a plain literal (or concatenation of
/// literals, or empty).
fn literal(a: &Ast) -> Option<String> {
    match a {
        Ast::Empty(_) => Some(String::new()),
        Ast::Literal(l) => Some(l.c.to_string()),
        Ast::Concat(c) => {
            let mut s = String::new();
            for p in &c.asts {
                s.push_str(&literal(strip_groups(p)?)?);
            }
            Some(s)
        }
        _ => None,
    }
}

/// `Some(min)` if `a` is `.*` (0) or `.+` (1). With `(?s)` implied, `.`
/// is any character.
fn any_star(a: &Ast) -> Option<u32> {
    let Ast::Repetition(r) = a else {
        return None;
    };
    if !matches!(strip_groups(&r.ast)?, Ast::Dot(_)) {
        return None;
    }
    match r.op.kind {
        RepetitionKind::ZeroOrMore => Some(0),
        RepetitionKind::OneOrMore => Some(1),
        _ => None,
    }
}

/// One label matcher.
#[derive(Clone)]
pub struct Matcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<FastRegex>,
}

impl Matcher {
    /// Builds a matcher, compiling the regex for `=~` and `!~`.
    pub fn new(
        op: MatchOp,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Matcher, RegexError> {
        let value = value.into();
        let re = match op {
            MatchOp::RegexMatch | MatchOp::RegexNoMatch => Some(FastRegex::new(&value)?),
            _ => None,
        };
        Ok(Matcher { name: name.into(), op, value, re })
    }

    /// `name="value"`; cannot fail.
    pub fn equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher { name: name.into(), op: MatchOp::Equal, value: value.into(), re: None }
    }

    /// `name!="value"`; cannot fail.
    pub fn not_equal(name: impl Into<String>, value: impl Into<String>) -> Matcher {
        Matcher { name: name.into(), op: MatchOp::NotEqual, value: value.into(), re: None }
    }

    /// Does a label value match? An absent label is the empty string.
    #[inline]
    pub fn matches(&self, v: &str) -> bool {
        match self.op {
            MatchOp::Equal => v == self.value,
            MatchOp::NotEqual => v != self.value,
            MatchOp::RegexMatch => self.re.as_ref().is_some_and(|r| r.is_match(v)),
            MatchOp::RegexNoMatch => !self.re.as_ref().is_some_and(|r| r.is_match(v)),
        }
    }

    /// Does this matcher accept a series that lacks the label?
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// The compiled regex, for `=~` / `!~`.
    pub fn regex(&self) -> Option<&FastRegex> {
        self.re.as_ref()
    }

    /// For `=` and for `=~` with a finite set of literals: the values that
    /// match. The index uses this to read postings directly.
    pub fn set_matches(&self) -> Option<Vec<&str>> {
        match self.op {
            MatchOp::Equal => Some(vec![self.value.as_str()]),
            MatchOp::RegexMatch => {
                self.re.as_ref().and_then(|r| r.set_matches()).map(|s| s.iter().map(String::as_str).collect())
            }
            _ => None,
        }
    }

    /// Does a label set satisfy this matcher?
    pub fn matches_labels(&self, l: &crate::Labels) -> bool {
        self.matches(l.get_or_empty(&self.name))
    }
}

impl PartialEq for Matcher {
    fn eq(&self, o: &Self) -> bool {
        self.name == o.name && self.op == o.op && self.value == o.value
    }
}
impl Eq for Matcher {}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `name="value"` with PromQL quoting.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::new();
        if crate::names::is_valid_legacy_label_name(&self.name) {
            s.push_str(&self.name);
        } else {
            crate::labels::write_quoted(&mut s, &self.name);
        }
        s.push_str(self.op.as_str());
        crate::labels::write_quoted(&mut s, &self.value);
        f.write_str(&s)
    }
}

/// True if every matcher accepts the label set.
pub fn matches_all(matchers: &[Matcher], l: &crate::Labels) -> bool {
    matchers.iter().all(|m| m.matches_labels(l))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(re: &str) -> &'static str {
        match FastRegex::new(re).unwrap().kind {
            RegexKind::Any => "any",
            RegexKind::NonEmpty => "nonempty",
            RegexKind::Set(_) => "set",
            RegexKind::Prefix(_) => "prefix",
            RegexKind::Suffix(_) => "suffix",
            RegexKind::Contains(_) => "contains",
            RegexKind::General(_) => "general",
        }
    }

    #[test]
    fn fast_paths_recognised() {
        assert_eq!(kind(".*"), "any");
        assert_eq!(kind(".+"), "nonempty");
        assert_eq!(kind("foo"), "set");
        assert_eq!(kind("a|b|c"), "set");
        assert_eq!(kind("(a|b)"), "set");
        assert_eq!(kind("foo.*"), "prefix");
        assert_eq!(kind(".*foo"), "suffix");
        assert_eq!(kind(".*foo.*"), "contains");
        assert_eq!(kind("fo+"), "general");
        assert_eq!(kind("(?i)foo"), "general");
        assert_eq!(kind("a|b.*"), "general");
        assert_eq!(kind(""), "set");
    }

    /// Every fast path must agree with the general anchored regex.
    #[test]
    fn fast_paths_agree_with_regex() {
        let regexes = [
            ".*", ".+", "foo", "a|b|c", "(a|b)", "foo.*", ".*foo", ".*foo.*", "", "a|", "x.+", "fo+",
            "[0-9]+",
        ];
        let inputs =
            ["", "foo", "foobar", "barfoo", "xfoox", "a", "b", "c", "ab", "\n", "fo\nfoo", "x", "x\n", "123"];
        for re in regexes {
            let fast = FastRegex::new(re).unwrap();
            let slow = regex::Regex::new(&format!("^(?s:{re})$")).unwrap();
            for i in inputs {
                assert_eq!(fast.is_match(i), slow.is_match(i), "re={re:?} input={i:?}");
            }
        }
    }

    #[test]
    fn anchoring_and_newlines() {
        let m = Matcher::new(MatchOp::RegexMatch, "a", "b.c").unwrap();
        assert!(m.matches("b\nc"), "dot matches newline in 3.x");
        assert!(!m.matches("xb.c"), "anchored at start");
        assert!(!m.matches("b.cx"), "anchored at end");
        let n = Matcher::new(MatchOp::RegexNoMatch, "a", "b.*").unwrap();
        assert!(!n.matches("bcd"));
        assert!(n.matches("abc"));
    }

    #[test]
    fn empty_value_semantics() {
        let l = crate::labels!("a" => "1");
        assert!(Matcher::equal("b", "").matches_labels(&l));
        assert!(!Matcher::not_equal("b", "").matches_labels(&l));
        assert!(Matcher::new(MatchOp::RegexMatch, "b", ".*").unwrap().matches_labels(&l));
        assert!(!Matcher::new(MatchOp::RegexMatch, "b", ".+").unwrap().matches_labels(&l));
    }

    #[test]
    fn set_matches_for_index() {
        let m = Matcher::new(MatchOp::RegexMatch, "job", "api|web").unwrap();
        assert_eq!(m.set_matches(), Some(vec!["api", "web"]));
        assert_eq!(Matcher::equal("a", "x").set_matches(), Some(vec!["x"]));
        assert_eq!(Matcher::new(MatchOp::RegexMatch, "a", "x.*").unwrap().set_matches(), None);
        assert_eq!(
            Matcher::new(MatchOp::RegexMatch, "a", "x.*").unwrap().regex().unwrap().prefix(),
            Some("x")
        );
    }

    #[test]
    fn bad_regex_reports() {
        let e = Matcher::new(MatchOp::RegexMatch, "a", "(").unwrap_err();
        assert!(e.to_string().starts_with("error parsing regexp:"), "{e}");
        assert!(!e.to_string().contains('\n'));
    }

    #[test]
    fn display() {
        let m = Matcher::new(MatchOp::RegexNoMatch, "job", "a\"b").unwrap();
        assert_eq!(m.to_string(), r#"job!~"a\"b""#);
    }
}
