//! ember-textparse: Prometheus text format 0.0.4 and OpenMetrics 1.0
//! exposition parsers.
//!
//! * [`Parser`] iterates the entries of one scraped page. Entries borrow
//!   from the input: names, label values and the raw `series` text are
//!   `&str` slices; a name or value is copied (a `Cow::Owned`) only when it
//!   contains an escape sequence. Nothing is allocated per sample on the
//!   happy path.
//! * The first malformed line ends the page with a [`ParseError`] carrying
//!   1-based line and column (in bytes) and an excerpt of the line. The
//!   parser never panics on any input.
//! * [`accept_header`] and [`parser_for_content_type`] negotiate the format
//!   the way Prometheus 3 does.
//!
//! The grammar follows Prometheus's own parsers (`model/textparse`), which
//! are deliberately more lenient than the OpenMetrics specification: they
//! do not check metric-family suffixes (`_total`, `_bucket`, ...), the
//! order of families, or repeated `# TYPE` lines, and neither does this
//! crate.
//!
//! # Behaviour worth knowing (all as in Prometheus 3 unless noted)
//!
//! * Text 0.0.4: blank lines and spaces/tabs between tokens are allowed;
//!   commas between labels are optional and a trailing one is allowed; a
//!   quoted label value may contain a raw newline; the last line need not
//!   end in `\n`; `\r` is not whitespace (CRLF pages fail); timestamps are
//!   ASCII digits only (Prometheus's lexer rejects a sign, so negative
//!   timestamps are errors although the format document says int64); a NUL
//!   byte where a line starts ends the page silently.
//! * OpenMetrics: exactly one space between tokens, no blank lines, no
//!   other comments, `# EOF` must be the last line (an optional final
//!   `\n` after it, nothing else); timestamps are float seconds truncated
//!   to milliseconds; exemplars (`# {labels} value [timestamp]`) may follow
//!   any sample; `# UNIT` must be a `_`-separated suffix of the name.
//! * Escapes: label values and quoted names know `\\`, `\"`, `\n`; text
//!   HELP knows `\\` and `\n`; unknown sequences such as `\t` are kept
//!   verbatim. A backslash before a newline is an error.
//! * Values use Go's `ParseFloat` syntax minus hex floats and `_`
//!   (`NaN`, `+Inf`, `-Inf`, `Inf`, `infinity`, `1e3`, `.5`; overflow is an
//!   error); NaN is returned as Prometheus's normal NaN bit pattern.
//! * After a `# TYPE x histogram` (or `summary`) line, `le` (or `quantile`)
//!   label values that parse as floats are rewritten in canonical form
//!   (`1` → `1.0`, `1000000` → `1e+06`) by [`LabelsText::iter`]; the raw
//!   `series` text is left as written.
//! * Duplicate label names, including `__name__` inside the braces of a
//!   named series, are parse errors here; Prometheus rejects the same
//!   pages later in its scrape loop ("label name is not unique").
//! * Deviation: Prometheus keeps leading blanks of a text-format sample
//!   line in the metric name; they are skipped here.
//!
//! ```
//! use ember_textparse::{Entry, Format, Parser};
//!
//! let page = b"# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\"} 1027 1395066363000\n";
//! let mut samples = 0;
//! for entry in Parser::new(page, Format::PrometheusText) {
//!     if let Entry::Sample(s) = entry.unwrap() {
//!         assert_eq!(s.series, "http_requests_total{code=\"200\"}");
//!         assert_eq!(s.labels.iter().next().unwrap(), ("code".into(), "200".into()));
//!         assert_eq!((s.value, s.timestamp), (1027.0, Some(1395066363000)));
//!         samples += 1;
//!     }
//! }
//! assert_eq!(samples, 1);
//! ```

mod error;
mod escape;
mod float;
mod labels;
mod lex;
mod negotiate;
mod parser;

use std::borrow::Cow;

pub use ember_model::MetricType;
pub use error::ParseError;
pub use escape::{unescape, Escapes};
pub use labels::{LabelIter, LabelScratch, LabelsText};
pub use negotiate::{
    accept_header, accept_header_with_escaping, parser_for_content_type, ContentTypeError, EscapingScheme,
    Negotiated, ScrapeProtocol, UnknownScrapeProtocol,
};
pub use parser::Parser;

/// The exposition format of a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `text/plain; version=0.0.4` (and `1.0.0`, which only adds quoted
    /// UTF-8 names, accepted here in both).
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0` (or `0.0.1`).
    OpenMetrics,
}

/// One line (or logical line) of a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    /// `# HELP name text`; the text is unescaped per format (`\\`, `\n` in
    /// text 0.0.4; also `\"` in OpenMetrics).
    Help { metric: Cow<'a, str>, text: Cow<'a, str> },
    /// `# TYPE name type`. Text 0.0.4's `untyped` is [`MetricType::Unknown`].
    Type { metric: Cow<'a, str>, metric_type: MetricType },
    /// `# UNIT name unit` (OpenMetrics only).
    Unit { metric: Cow<'a, str>, unit: &'a str },
    /// Any other `#` line of the text format, `#` included. Bytes, because
    /// Prometheus does not require comments to be UTF-8.
    Comment(&'a [u8]),
    /// A sample line.
    Sample(SampleEntry<'a>),
}

/// A sample line. `_created`, `_bucket`, `_count`, ... lines are ordinary
/// samples, as Prometheus ingests them by default.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleEntry<'a> {
    /// The raw text of the metric name and label set (`name{a="b"}` or
    /// `{"name", a="b"}`) exactly as it appears in the page: a stable key
    /// for a scrape cache, so unchanged series cost no label parsing.
    pub series: &'a str,
    /// The metric name, unescaped if it was quoted with escapes.
    pub name: Cow<'a, str>,
    /// The labels inside the braces (not including the metric name).
    pub labels: LabelsText<'a>,
    pub value: f64,
    /// Milliseconds. Text 0.0.4 gives integer milliseconds; OpenMetrics
    /// gives float seconds, converted as Prometheus does (`int64(s*1000)`).
    pub timestamp: Option<i64>,
    /// OpenMetrics only: `# {labels} value [timestamp]` after the sample.
    pub exemplar: Option<Exemplar<'a>>,
}

/// An OpenMetrics exemplar.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar<'a> {
    pub labels: LabelsText<'a>,
    pub value: f64,
    /// Milliseconds (converted from float seconds).
    pub timestamp: Option<i64>,
}

impl SampleEntry<'_> {
    /// Builds the series' [`ember_model::Labels`] (with `__name__`) using a
    /// reusable scratch buffer.
    pub fn to_labels(&self, scratch: &mut LabelScratch) -> ember_model::Labels {
        scratch.build(Some(&self.name), self.labels)
    }
}

impl Exemplar<'_> {
    /// Builds the exemplar's label set using a reusable scratch buffer.
    pub fn to_labels(&self, scratch: &mut LabelScratch) -> ember_model::Labels {
        scratch.build(None, self.labels)
    }
}
