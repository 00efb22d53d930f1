//! The parser proper: one state machine per format over the whole input.
//!
//! Both formats are parsed from a byte cursor rather than line by line
//! because the text format lets a quoted string span a raw newline (as
//! Prometheus's lexer does). Line and column are derived from the byte
//! offset only when an error is built, so the happy path never counts lines.

use std::borrow::Cow;

use ember_model::MetricType;
use nom::IResult;

use crate::error::ParseError;
use crate::escape::{unescape, unescape_bytes, Escapes};
use crate::float::{parse_float, parse_ms_timestamp, parse_value, seconds_to_ms};
use crate::lex;
use crate::{Entry, Exemplar, Format, LabelsText, SampleEntry};

/// A failure before it is turned into a [`ParseError`]: byte offset and message.
struct Fail {
    off: usize,
    msg: Cow<'static, str>,
}

fn fail(off: usize, msg: impl Into<Cow<'static, str>>) -> Fail {
    Fail { off, msg: msg.into() }
}

/// Which grammar the label-set parser follows.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Text 0.0.4: blanks between tokens, optional commas, newlines allowed
    /// inside quoted values.
    Text,
    /// OpenMetrics series labels: no blanks, `,` or `}` after each value.
    Om,
    /// OpenMetrics exemplar labels: as `Om`, but no quoted metric name.
    OmExemplar,
}

/// Span of a metric or label name in the input: start, end (quotes
/// excluded) and whether it contains a backslash.
type NameSpan = (usize, usize, bool);

/// Streaming parser over one scraped page. Iterate it to get entries; the
/// first error ends the iteration (one bad line fails the page, as in
/// Prometheus). For OpenMetrics, iteration ends without error only after
/// a valid `# EOF` line.
#[derive(Debug)]
pub struct Parser<'a> {
    input: &'a [u8],
    /// The whole input as `&str` when it is valid UTF-8 (checked once, up
    /// front, with SIMD), so that slices need no further validation.
    text: Option<&'a str>,
    pos: usize,
    format: Format,
    done: bool,
    /// Label names of the series being parsed, reused across lines so that
    /// duplicate detection allocates nothing per sample.
    names: Vec<NameSpan>,
    /// Offset of a `__name__` label inside the braces of the current series.
    name_label: Option<usize>,
    /// Whether any name in `names` contains an escape.
    escaped_names: bool,
    /// The type from the last `# TYPE` line, whatever family it named (as
    /// in Prometheus): it decides `le`/`quantile` normalisation.
    mtype: MetricType,
}

impl<'a> Parser<'a> {
    pub fn new(input: &'a [u8], format: Format) -> Parser<'a> {
        let text = simdutf8::basic::from_utf8(input).ok();
        Parser {
            input,
            text,
            pos: 0,
            format,
            done: false,
            names: Vec::with_capacity(16),
            name_label: None,
            escaped_names: false,
            mtype: MetricType::Unknown,
        }
    }

    /// The format this parser reads.
    pub fn format(&self) -> Format {
        self.format
    }

    /// End offset of a nom recogniser run at `p` (`p` itself if it fails).
    #[inline]
    fn run(&self, p: usize, f: impl Fn(&'a [u8]) -> IResult<&'a [u8], &'a [u8]>) -> usize {
        let input = self.input;
        match input.get(p..).map(f) {
            Some(Ok((rest, _))) => input.len() - rest.len(),
            _ => p,
        }
    }

    /// Skips spaces and tabs; the common case of none costs one compare.
    #[inline]
    fn skip_blanks(&self, p: usize) -> usize {
        match self.get(p) {
            Some(b' ' | b'\t') => self.run(p, lex::blanks),
            _ => p,
        }
    }

    #[inline]
    fn get(&self, p: usize) -> Option<u8> {
        self.input.get(p).copied()
    }

    /// The text format behaves as if the input ended with a newline
    /// (Prometheus appends one), so the end of input reads as `\n`.
    #[inline]
    fn tget(&self, p: usize) -> u8 {
        self.input.get(p).copied().unwrap_or(b'\n')
    }

    /// Offset of the next newline at or after `p`, or the input length.
    #[inline]
    fn line_end(&self, p: usize) -> usize {
        self.run(p, lex::rest_of_line)
    }

    /// A short description of what was found at `p`, for messages.
    fn found(&self, p: usize) -> String {
        match self.input.get(p) {
            None => "end of input".to_owned(),
            Some(b'\n') => "newline".to_owned(),
            Some(_) => {
                let end = (p + 16).min(self.line_end(p));
                format!("{:?}", String::from_utf8_lossy(&self.input[p..end]))
            }
        }
    }

    #[inline]
    fn str_at(&self, s: usize, e: usize) -> Result<&'a str, Fail> {
        // Token boundaries always sit next to ASCII bytes, so they are char
        // boundaries; `get` keeps that an invariant we check, not assume.
        if let Some(t) = self.text.and_then(|t| t.get(s..e)) {
            return Ok(t);
        }
        let input: &'a [u8] = self.input;
        std::str::from_utf8(&input[s..e]).map_err(|err| fail(s + err.valid_up_to(), "invalid UTF-8"))
    }

    /// The (unescaped) name for a span of already validated input.
    fn name_at(&self, n: NameSpan) -> Result<Cow<'a, str>, Fail> {
        let s = self.str_at(n.0, n.1)?;
        Ok(if n.2 { unescape(s, Escapes::LabelValue) } else { Cow::Borrowed(s) })
    }

    fn next_entry(&mut self) -> Option<Result<Entry<'a>, Fail>> {
        match self.format {
            Format::PrometheusText => self.next_text(),
            Format::OpenMetrics => self.next_om(),
        }
    }

    // ---- text format 0.0.4 ----------------------------------------------

    fn next_text(&mut self) -> Option<Result<Entry<'a>, Fail>> {
        loop {
            let p = self.skip_blanks(self.pos);
            let c = self.get(p)?;
            match c {
                b'\n' => self.pos = p + 1,
                // Prometheus's lexer reads a NUL byte where a token starts as
                // the end of the input.
                0 => return None,
                b'#' => return Some(self.text_hash_line(p)),
                b'{' => return Some(self.text_sample(p)),
                c if lex::is_metric_start(c) => return Some(self.text_sample(p)),
                _ => {
                    return Some(Err(fail(p, format!("expected a valid start token, got {}", self.found(p)))))
                }
            }
        }
    }

    fn text_hash_line(&mut self, p: usize) -> Result<Entry<'a>, Fail> {
        let q = self.skip_blanks(p + 1);
        if q > p + 1 {
            let rest = &self.input[q..];
            let kw = if rest.starts_with(b"HELP") {
                Some("HELP")
            } else if rest.starts_with(b"TYPE") {
                Some("TYPE")
            } else {
                None
            };
            if let Some(kw) = kw {
                let m = self.skip_blanks(q + 4);
                if m > q + 4 {
                    return self.text_meta(kw, m);
                }
            }
        }
        // Any other `#` line is a comment.
        let e = self.line_end(p);
        self.pos = e + 1;
        Ok(Entry::Comment(&self.input[p..e]))
    }

    /// Metric name of a HELP/TYPE/UNIT line at `m`: a legacy name or a
    /// quoted one. Returns the span and the offset after the token.
    fn meta_name(&self, kw: &str, m: usize) -> Result<(NameSpan, usize), Fail> {
        match self.get(m) {
            Some(b'"') => match lex::quoted(&self.input[m..], true) {
                Some((len, esc)) => Ok(((m + 1, m + len - 1, esc), m + len)),
                None => Err(fail(m, format!("expected metric name after {kw}, got {}", self.found(m)))),
            },
            Some(c) if lex::is_metric_start(c) => {
                let e = self.run(m, lex::metric_name);
                Ok(((m, e, false), e))
            }
            _ => Err(fail(m, format!("expected metric name after {kw}, got {}", self.found(m)))),
        }
    }

    fn text_meta(&mut self, kw: &'static str, m: usize) -> Result<Entry<'a>, Fail> {
        let (span, r) = self.meta_name(kw, m)?;
        let e = self.line_end(r);
        let rest = &self.input[r..e];
        // Prometheus drops exactly one separator byte before the text; a
        // rest of blanks only is no text at all.
        let ts = if rest.iter().all(|&c| c == b' ' || c == b'\t') { e } else { r + 1 };
        let text = self.str_at(ts, e)?;
        let metric = self.name_at(span)?;
        let entry = match kw {
            "HELP" => Entry::Help { metric, text: unescape(text, Escapes::TextHelp) },
            _ => {
                let metric_type = match text {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" => MetricType::Histogram,
                    "summary" => MetricType::Summary,
                    "untyped" => MetricType::Unknown,
                    _ => return Err(fail(ts, format!("invalid metric type {text:?}"))),
                };
                self.mtype = metric_type;
                Entry::Type { metric, metric_type }
            }
        };
        self.pos = e + 1;
        Ok(entry)
    }

    fn text_sample(&mut self, start: usize) -> Result<Entry<'a>, Fail> {
        let (name, labels, series_end) = if self.input[start] == b'{' {
            let mut name = None;
            let close = self.labels(start + 1, &mut name, Mode::Text)?;
            (name, Some((start + 1, close)), close + 1)
        } else {
            let e = self.run(start, lex::metric_name);
            let mut name = Some((start, e, false));
            let b = self.skip_blanks(e);
            if self.tget(b) == b'{' {
                let close = self.labels(b + 1, &mut name, Mode::Text)?;
                (name, Some((b + 1, close)), close + 1)
            } else {
                self.names.clear();
                self.name_label = None;
                (name, None, e)
            }
        };
        let v = self.skip_blanks(series_end);
        let ve = self.run(v, lex::text_value);
        if ve == v {
            return Err(fail(v, format!("expected value after metric, got {}", self.found(v))));
        }
        let value = parse_value(&self.input[v..ve]).map_err(|e| fail(v, e.message()))?;
        let t = self.skip_blanks(ve);
        let (timestamp, end) = if self.tget(t) == b'\n' {
            (None, t)
        } else {
            let te = self.run(t, lex::digits);
            if te == t {
                return Err(fail(t, format!("expected timestamp or new record, got {}", self.found(t))));
            }
            let ts =
                parse_ms_timestamp(&self.input[t..te]).ok_or_else(|| fail(t, "timestamp out of range"))?;
            let u = self.skip_blanks(te);
            if self.tget(u) != b'\n' {
                return Err(fail(u, format!("expected next entry after timestamp, got {}", self.found(u))));
            }
            (Some(ts), u)
        };
        let entry = self.finish_sample(start, name, labels, series_end, value, timestamp, None)?;
        self.pos = end + 1;
        Ok(entry)
    }

    /// Checks the name rules shared by both formats and builds the entry.
    #[allow(clippy::too_many_arguments)]
    fn finish_sample(
        &self,
        start: usize,
        name: Option<NameSpan>,
        labels: Option<(usize, usize)>,
        series_end: usize,
        value: f64,
        timestamp: Option<i64>,
        exemplar: Option<Exemplar<'a>>,
    ) -> Result<Entry<'a>, Fail> {
        let Some(name) = name else {
            return Err(fail(start, "metric name not set"));
        };
        // `__name__` inside the braces duplicates the metric name.
        if let Some(s) = self.name_label {
            return Err(fail(s, "duplicate label name \"__name__\""));
        }
        let series = self.str_at(start, series_end)?;
        let name = self.name_at(name)?;
        let normalize = match self.mtype {
            MetricType::Histogram => Some("le"),
            MetricType::Summary => Some("quantile"),
            _ => None,
        };
        let labels = match labels {
            Some((s, e)) => LabelsText::normalizing(self.str_at(s, e)?, normalize),
            None => LabelsText::new(""),
        };
        Ok(Entry::Sample(SampleEntry { series, name, labels, value, timestamp, exemplar }))
    }

    /// Parses a label set starting just after `{`; returns the offset of
    /// the closing `}`. A quoted string followed by `,` or `}` is the metric
    /// name (Prometheus 3 / OpenMetrics 2 UTF-8 syntax).
    fn labels(&mut self, mut q: usize, name: &mut Option<NameSpan>, mode: Mode) -> Result<usize, Fail> {
        let text = mode == Mode::Text;
        self.names.clear();
        self.name_label = None;
        self.escaped_names = false;
        loop {
            if text {
                q = self.skip_blanks(q);
            }
            let (span, tok_end, is_quoted) = match self.get(q) {
                Some(b'}') => return Ok(q),
                Some(b'"') => match lex::quoted(&self.input[q..], true) {
                    Some((len, esc)) => ((q + 1, q + len - 1, esc), q + len, true),
                    None => return Err(fail(q, format!("expected label name, got {}", self.found(q)))),
                },
                Some(c) if lex::is_label_start(c) => {
                    let e = self.run(q, lex::label_name);
                    ((q, e, false), e, false)
                }
                _ => return Err(fail(q, format!("expected label name, got {}", self.found(q)))),
            };
            let r = if text { self.skip_blanks(tok_end) } else { tok_end };
            let after = self.get(r);
            if is_quoted && matches!(after, Some(b',' | b'}')) {
                if mode == Mode::OmExemplar {
                    return Err(fail(r, format!("expected label name, got {}", self.found(r))));
                }
                if name.is_some() {
                    return Err(fail(q, "metric name already set"));
                }
                *name = Some(span);
                if after == Some(b'}') {
                    return Ok(r);
                }
                q = r + 1;
                continue;
            }
            if after != Some(b'=') {
                return Err(fail(r, format!("expected equal, got {}", self.found(r))));
            }
            let v = if text { self.skip_blanks(r + 1) } else { r + 1 };
            let Some((vlen, _)) = lex::quoted(&self.input[v..], text) else {
                return Err(fail(v, format!("expected label value, got {}", self.found(v))));
            };
            if mode != Mode::OmExemplar {
                self.push_label_name(span)?;
            }
            let a = v + vlen;
            if text {
                let a = self.skip_blanks(a);
                q = if self.get(a) == Some(b',') { a + 1 } else { a };
            } else {
                match self.get(a) {
                    Some(b',') => q = a + 1,
                    Some(b'}') => return Ok(a),
                    _ => {
                        return Err(fail(a, format!("expected comma or brace close, got {}", self.found(a))))
                    }
                }
            }
        }
    }

    /// Records a label name, failing on a duplicate (Prometheus fails the
    /// scrape with "label name is not unique" in that case).
    #[inline]
    fn push_label_name(&mut self, span: NameSpan) -> Result<(), Fail> {
        let input = self.input;
        let (s0, e0, esc0) = span;
        let dup = if esc0 || self.escaped_names {
            // Rare: compare unescaped names.
            let new = name_bytes(input, s0, e0, esc0);
            self.names.iter().any(|&(s, e, esc)| name_bytes(input, s, e, esc) == new)
        } else {
            let new = &input[s0..e0];
            self.names.iter().any(|&(s, e, _)| e - s == new.len() && &input[s..e] == new)
        };
        if dup {
            let new = name_bytes(input, s0, e0, esc0);
            return Err(fail(s0, format!("duplicate label name {:?}", String::from_utf8_lossy(&new))));
        }
        if self.name_label.is_none()
            && e0 - s0 >= 8
            && name_bytes(input, s0, e0, esc0).as_ref() == b"__name__"
        {
            self.name_label = Some(s0);
        }
        self.escaped_names |= esc0;
        self.names.push(span);
        Ok(())
    }

    // ---- OpenMetrics 1.0 ------------------------------------------------

    fn next_om(&mut self) -> Option<Result<Entry<'a>, Fail>> {
        let p = self.pos;
        let Some(c) = self.get(p) else {
            return Some(Err(fail(p, "data does not end with # EOF")));
        };
        match c {
            b'#' => self.om_hash_line(p),
            b'{' => Some(self.om_sample(p)),
            c if lex::is_metric_start(c) => Some(self.om_sample(p)),
            _ => Some(Err(fail(p, format!("expected a valid start token, got {}", self.found(p))))),
        }
    }

    fn om_hash_line(&mut self, p: usize) -> Option<Result<Entry<'a>, Fail>> {
        let rest = &self.input[p..];
        if rest.starts_with(b"# EOF") {
            let mut e = p + 5;
            if self.get(e) == Some(b'\n') {
                e += 1;
            }
            if e != self.input.len() {
                return Some(Err(fail(e, "unexpected data after # EOF")));
            }
            self.pos = e;
            return None;
        }
        let kw = if rest.starts_with(b"# HELP ") {
            "HELP"
        } else if rest.starts_with(b"# TYPE ") {
            "TYPE"
        } else if rest.starts_with(b"# UNIT ") {
            "UNIT"
        } else {
            return Some(Err(fail(p, format!("expected a valid start token, got {}", self.found(p)))));
        };
        Some(self.om_meta(kw, p + 7))
    }

    fn om_meta(&mut self, kw: &'static str, m: usize) -> Result<Entry<'a>, Fail> {
        let (span, r) = self.meta_name(kw, m)?;
        let e = self.line_end(r);
        if self.get(r) != Some(b' ') || e == self.input.len() {
            return Err(fail(r, format!("expected text in {kw}, got {}", self.found(r))));
        }
        let text = self.str_at(r + 1, e)?;
        let metric = self.name_at(span)?;
        let entry = match kw {
            "HELP" => Entry::Help { metric, text: unescape(text, Escapes::LabelValue) },
            "TYPE" => {
                let metric_type = match text {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" => MetricType::Histogram,
                    "gaugehistogram" => MetricType::GaugeHistogram,
                    "summary" => MetricType::Summary,
                    "info" => MetricType::Info,
                    "stateset" => MetricType::StateSet,
                    "unknown" => MetricType::Unknown,
                    _ => return Err(fail(r + 1, format!("invalid metric type {text:?}"))),
                };
                self.mtype = metric_type;
                Entry::Type { metric, metric_type }
            }
            _ => {
                // A unit must be a `_`-separated suffix of the metric name.
                if !text.is_empty() {
                    let ok = metric.strip_suffix(text).is_some_and(|head| head.ends_with('_'));
                    if !ok {
                        return Err(fail(r + 1, format!("unit {text:?} not a suffix of metric {metric:?}")));
                    }
                }
                Entry::Unit { metric, unit: text }
            }
        };
        self.pos = e + 1;
        Ok(entry)
    }

    /// An OpenMetrics token after exactly one space: `{S}[^ \n]+`. Returns
    /// its start and end, or `None`.
    #[inline]
    fn om_spaced_token(&self, p: usize) -> Option<(usize, usize)> {
        if self.get(p) != Some(b' ') {
            return None;
        }
        let e = self.run(p + 1, lex::om_token);
        (e > p + 1).then_some((p + 1, e))
    }

    fn om_sample(&mut self, start: usize) -> Result<Entry<'a>, Fail> {
        let mut name = None;
        let (labels, series_end) = if self.input[start] == b'{' {
            let close = self.labels(start + 1, &mut name, Mode::Om)?;
            (Some((start + 1, close)), close + 1)
        } else {
            let e = self.run(start, lex::metric_name);
            name = Some((start, e, false));
            if self.get(e) == Some(b'{') {
                let close = self.labels(e + 1, &mut name, Mode::Om)?;
                (Some((e + 1, close)), close + 1)
            } else {
                self.names.clear();
                self.name_label = None;
                (None, e)
            }
        };
        let Some((vs, ve)) = self.om_spaced_token(series_end) else {
            return Err(fail(
                series_end,
                format!("expected value after metric, got {}", self.found(series_end)),
            ));
        };
        let value = parse_value(&self.input[vs..ve]).map_err(|e| fail(vs, e.message()))?;
        let mut timestamp = None;
        let mut exemplar = None;
        let mut p = ve;
        if self.get(p) == Some(b' ') && !self.input[p..].starts_with(b" # {") {
            let Some((ts, te)) = self.om_spaced_token(p) else {
                return Err(fail(
                    p + 1,
                    format!("expected timestamp or exemplar, got {}", self.found(p + 1)),
                ));
            };
            timestamp = Some(self.om_timestamp(ts, te, "invalid timestamp")?);
            p = te;
            if self.get(p).is_some_and(|c| c != b'\n') && !self.input[p..].starts_with(b" # {") {
                return Err(fail(p, format!("expected next entry after timestamp, got {}", self.found(p))));
            }
        }
        if self.input[p..].starts_with(b" # {") {
            let (ex, e) = self.om_exemplar(p + 4)?;
            exemplar = Some(ex);
            p = e;
        }
        match self.get(p) {
            None => return Err(fail(p, "data does not end with # EOF")),
            Some(b'\n') => {}
            Some(_) => {
                return Err(fail(p, format!("expected timestamp or new record, got {}", self.found(p))))
            }
        }
        let entry = self.finish_sample(start, name, labels, series_end, value, timestamp, exemplar)?;
        self.pos = p + 1;
        Ok(entry)
    }

    fn om_timestamp(&self, s: usize, e: usize, what: &'static str) -> Result<i64, Fail> {
        let secs = parse_float(&self.input[s..e]).map_err(|err| fail(s, err.message()))?;
        if !secs.is_finite() {
            return Err(fail(s, what));
        }
        Ok(seconds_to_ms(secs))
    }

    /// Parses an exemplar starting just after `# {`; returns it and the
    /// offset of the line end.
    fn om_exemplar(&mut self, q: usize) -> Result<(Exemplar<'a>, usize), Fail> {
        let mut unused = None;
        let close = self.labels(q, &mut unused, Mode::OmExemplar)?;
        let labels = LabelsText::new(self.str_at(q, close)?);
        let Some((vs, ve)) = self.om_spaced_token(close + 1) else {
            return Err(fail(
                close + 1,
                format!("expected value after exemplar labels, got {}", self.found(close + 1)),
            ));
        };
        let value = parse_value(&self.input[vs..ve]).map_err(|e| fail(vs, e.message()))?;
        let mut p = ve;
        let mut timestamp = None;
        match self.get(p) {
            None => return Err(fail(p, "data does not end with # EOF")),
            Some(b'\n') => {}
            Some(_) => {
                let Some((ts, te)) = self.om_spaced_token(p) else {
                    return Err(fail(p, format!("expected timestamp or comment, got {}", self.found(p))));
                };
                timestamp = Some(self.om_timestamp(ts, te, "invalid exemplar timestamp")?);
                p = te;
                if self.get(p) != Some(b'\n') {
                    return Err(fail(
                        p,
                        format!("expected next entry after exemplar timestamp, got {}", self.found(p)),
                    ));
                }
            }
        }
        Ok((Exemplar { labels, value, timestamp }, p))
    }
}

/// The bytes of a name for comparison (unescaped if it has escapes).
fn name_bytes(input: &[u8], s: usize, e: usize, esc: bool) -> Cow<'_, [u8]> {
    if esc {
        unescape_bytes(&input[s..e])
    } else {
        Cow::Borrowed(&input[s..e])
    }
}

impl<'a> Iterator for Parser<'a> {
    type Item = Result<Entry<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_entry() {
            Some(Ok(e)) => Some(Ok(e)),
            Some(Err(f)) => {
                self.done = true;
                Some(Err(ParseError::at(self.input, f.off, f.msg.into_owned())))
            }
            None => {
                self.done = true;
                None
            }
        }
    }
}

impl std::iter::FusedIterator for Parser<'_> {}
