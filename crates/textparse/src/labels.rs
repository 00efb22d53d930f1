//! Lazy access to the labels of a parsed series or exemplar.
//!
//! The parser validates a label set once and keeps only its raw text; the
//! iterator re-reads that text on demand. A scrape loop that finds the
//! series text in its cache never pays for it.

use std::borrow::Cow;

use ember_model::Labels;

use crate::escape::{unescape, Escapes};
use crate::float::{format_om_float, parse_float};
use crate::lex;

/// The validated text between `{` and `}` of a series or exemplar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LabelsText<'a> {
    raw: &'a str,
    /// A label whose float value Prometheus 3 rewrites in canonical form:
    /// `le` in histograms, `quantile` in summaries.
    normalize: Option<&'static str>,
}

impl<'a> LabelsText<'a> {
    pub(crate) fn new(raw: &'a str) -> LabelsText<'a> {
        LabelsText { raw, normalize: None }
    }

    pub(crate) fn normalizing(raw: &'a str, label: Option<&'static str>) -> LabelsText<'a> {
        LabelsText { raw, normalize: label }
    }

    /// The raw text inside the braces, escapes and a quoted metric name
    /// included.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The `(name, value)` pairs in page order, unescaped. A quoted metric
    /// name inside the braces is not a label and is skipped.
    ///
    /// As in Prometheus 3, when the last `# TYPE` line said `histogram`
    /// (or `summary`), an `le` (or `quantile`) value that parses as a float
    /// is rewritten in canonical OpenMetrics form, so `le="1"` reads as
    /// `1.0` and `le="1000000"` as `1e+06` in both formats. That value is
    /// then owned; everything else is borrowed unless it has escapes.
    pub fn iter(&self) -> LabelIter<'a> {
        LabelIter { rest: self.raw, normalize: self.normalize }
    }
}

impl<'a> IntoIterator for LabelsText<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);
    type IntoIter = LabelIter<'a>;
    fn into_iter(self) -> LabelIter<'a> {
        self.iter()
    }
}

/// Iterator over the labels of a [`LabelsText`].
#[derive(Debug, Clone)]
pub struct LabelIter<'a> {
    rest: &'a str,
    normalize: Option<&'static str>,
}

fn skip_separators(s: &str) -> &str {
    s.trim_start_matches([' ', '\t', ','])
}

fn skip_blanks(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

/// Splits a name or quoted string off the front of `s`: (body, escaped, rest).
fn token(s: &str) -> Option<(&str, bool, &str)> {
    if s.starts_with('"') {
        let (len, esc) = lex::quoted(s.as_bytes(), true)?;
        Some((s.get(1..len - 1)?, esc, s.get(len..)?))
    } else {
        let n = match lex::label_name(s.as_bytes()) {
            Ok((rest, _)) => s.len() - rest.len(),
            Err(_) => return None,
        };
        Some((s.get(..n)?, false, s.get(n..)?))
    }
}

fn cow(body: &str, esc: bool) -> Cow<'_, str> {
    if esc {
        unescape(body, Escapes::LabelValue)
    } else {
        Cow::Borrowed(body)
    }
}

impl<'a> Iterator for LabelIter<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let s = skip_separators(self.rest);
            if s.is_empty() {
                self.rest = s;
                return None;
            }
            // The text was validated by the parser; if it is somehow not
            // what we expect, stop rather than guess.
            let Some((name, name_esc, after)) = token(s) else {
                self.rest = "";
                return None;
            };
            let after = skip_blanks(after);
            let Some(after_eq) = after.strip_prefix('=') else {
                // A quoted metric name: not a label.
                self.rest = after;
                continue;
            };
            let Some((value, value_esc, rest)) =
                token(skip_blanks(after_eq)).filter(|_| skip_blanks(after_eq).starts_with('"'))
            else {
                self.rest = "";
                return None;
            };
            self.rest = rest;
            let name = cow(name, name_esc);
            let mut value = cow(value, value_esc);
            if self.normalize == Some(&*name) {
                if let Ok(f) = parse_float(value.as_bytes()) {
                    let canonical = format_om_float(f);
                    if canonical != value {
                        value = Cow::Owned(canonical);
                    }
                }
            }
            return Some((name, value));
        }
    }
}

/// A reusable buffer for building [`Labels`] from parsed entries without
/// allocating per series once it has grown to fit.
#[derive(Debug, Default)]
pub struct LabelScratch {
    text: String,
    /// (name start, name end, value start, value end, insertion index)
    spans: Vec<(usize, usize, usize, usize, usize)>,
}

impl LabelScratch {
    pub fn new() -> LabelScratch {
        LabelScratch::default()
    }

    fn push(&mut self, name: &str, value: &str) {
        let a = self.text.len();
        self.text.push_str(name);
        let b = self.text.len();
        self.text.push_str(value);
        let c = self.text.len();
        let idx = self.spans.len();
        self.spans.push((a, b, b, c, idx));
    }

    /// Sorted, de-duplicated (last wins) label set of `__name__` = `name`
    /// (if given) plus `labels`.
    pub(crate) fn build(&mut self, name: Option<&str>, labels: LabelsText<'_>) -> Labels {
        self.text.clear();
        self.spans.clear();
        if let Some(n) = name {
            self.push(ember_model::METRIC_NAME, n);
        }
        for (n, v) in labels.iter() {
            self.push(&n, &v);
        }
        let text = &self.text;
        self.spans.sort_unstable_by(|x, y| text[x.0..x.1].cmp(&text[y.0..y.1]).then(x.4.cmp(&y.4)));
        // Keep the last of each run of equal names.
        let spans = &self.spans;
        let kept = spans
            .iter()
            .enumerate()
            .filter(|&(i, s)| spans.get(i + 1).is_none_or(|next| text[next.0..next.1] != text[s.0..s.1]));
        Labels::from_sorted_unique(kept.map(|(_, s)| (&text[s.0..s.1], &text[s.2..s.3])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(raw: &str) -> Vec<(String, String)> {
        LabelsText::new(raw).iter().map(|(n, v)| (n.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn iterates_both_syntaxes() {
        assert_eq!(pairs(r#"a="1",b="2""#), [("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(pairs(r#" a = "1" , b="2", "#), [("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(
            pairs(r#""my.metric", "label.x"="v\"\\", c="""#),
            [("label.x".into(), "v\"\\".into()), ("c".into(), "".into())]
        );
        assert!(pairs("").is_empty());
    }

    #[test]
    fn normalizes_le_and_quantile_values() {
        let l = LabelsText::normalizing(r#"a="1",le="1",quantile="1""#, Some("le"));
        let v: Vec<_> = l.iter().collect();
        assert_eq!(v[0].1, "1");
        assert_eq!(v[1].1, "1.0");
        assert_eq!(v[2].1, "1");
        let l = LabelsText::normalizing(r#"quantile="0.50",le="x""#, Some("quantile"));
        let v: Vec<_> = l.iter().collect();
        assert_eq!(v[0].1, "0.5");
        assert!(matches!(v[1].1, Cow::Borrowed("x")));
        let l = LabelsText::normalizing(r#"le="+Inf""#, Some("le"));
        assert!(matches!(l.iter().next().unwrap().1, Cow::Borrowed("+Inf")));
    }

    #[test]
    fn builds_sorted_labels_with_name() {
        let mut scratch = LabelScratch::new();
        let l = scratch.build(Some("up"), LabelsText::new(r#"job="x",instance="y""#));
        assert_eq!(l.to_string(), r#"{__name__="up", instance="y", job="x"}"#);
        // Reuse keeps nothing from the previous build.
        let l = scratch.build(None, LabelsText::new(r#"b="2",a="1",b="3""#));
        assert_eq!(l.to_string(), r#"{a="1", b="3"}"#);
    }
}
