//! A promqltest script runner for the format subset documented in
//! `testdata/promql/README.md`.

use ember_model::{memory::MemStorage, stale_nan, time::parse_duration, Labels};
use ember_promql::engine::{Engine, EngineOptions, QueryControl, QueryResult, Value};
use ember_promql::{parse_with_options, ParseOptions};

/// promqltest's float tolerance (relative).
const EPSILON: f64 = 1e-6;

/// The outcome of running one script.
pub struct FileResult {
    pub evals: usize,
    pub failures: Vec<String>,
}

/// What an eval expects besides its result lines.
#[derive(Default)]
struct Expect {
    fail: bool,
    fail_regex: Option<regex::Regex>,
    ordered: bool,
    warn: Vec<Option<regex::Regex>>,
    info: Vec<Option<regex::Regex>>,
    no_warn: bool,
    no_info: bool,
}

enum Kind {
    Instant(i64),
    Range { start: i64, end: i64, step: i64 },
}

struct Eval {
    line: usize,
    kind: Kind,
    expr: String,
    expect: Expect,
    /// (labels, values); for a scalar the labels are `None`.
    lines: Vec<(Option<Labels>, Vec<Option<f64>>)>,
}

/// Runs a script. `parse_errors_as_failures`: a parse error counts as a
/// failed query (parse_errors.test); elsewhere it is a broken test file.
pub fn run_file(name: &str, text: &str, parse_errors_as_failures: bool) -> FileResult {
    let mut res = FileResult { evals: 0, failures: Vec::new() };
    let storage = MemStorage::new();
    let engine = Engine::new(EngineOptions {
        lookback_delta: 300_000,
        default_subquery_step: 60_000,
        timeout: None,
        ..EngineOptions::default()
    });
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        let lineno = i + 1;
        if line.is_empty() || line.starts_with('#') {
            i += 1;
            continue;
        }
        // The command's block: following indented, non-blank lines.
        let mut block = Vec::new();
        let mut j = i + 1;
        while j < lines.len() && !lines[j].trim().is_empty() && !lines[j].trim_start().starts_with('#') {
            block.push((j + 1, lines[j].trim()));
            j += 1;
        }
        let r = if line == "clear" {
            storage.clear();
            Ok(())
        } else if let Some(d) = line.strip_prefix("load ") {
            load(&storage, d.trim(), &block)
        } else if line.starts_with("eval ") {
            res.evals += 1;
            match parse_eval(line, lineno, &block) {
                Ok(ev) => run_eval(&engine, &storage, &ev, parse_errors_as_failures),
                Err(e) => Err(e),
            }
        } else {
            Err(format!("unknown command {line:?}"))
        };
        if let Err(e) = r {
            res.failures.push(format!("{name}:{lineno}: {line}\n    {}", e.replace('\n', "\n    ")));
        }
        i = j;
    }
    res
}

fn dur(s: &str) -> Result<i64, String> {
    if s == "0" {
        return Ok(0);
    }
    parse_duration(s).map(|d| d.as_millis()).map_err(|e| format!("bad duration {s:?}: {e}"))
}

fn load(storage: &MemStorage, interval: &str, block: &[(usize, &str)]) -> Result<(), String> {
    let interval = dur(interval)?;
    for &(lineno, l) in block {
        let (labels, rest) = parse_series(l).map_err(|e| format!("line {lineno}: {e}"))?;
        let labels = labels.ok_or_else(|| format!("line {lineno}: a series needs labels"))?;
        let vals = expand(rest, true).map_err(|e| format!("line {lineno}: {e}"))?;
        for (k, v) in vals.into_iter().enumerate() {
            if let Some(v) = v {
                storage.add(&labels, k as i64 * interval, v).map_err(|e| format!("line {lineno}: {e}"))?;
            }
        }
    }
    Ok(())
}

fn parse_eval(line: &str, lineno: usize, block: &[(usize, &str)]) -> Result<Eval, String> {
    let rest = &line["eval ".len()..];
    let (kind, expr) = if let Some(r) = rest.strip_prefix("instant at ") {
        let (at, expr) = r.split_once(' ').ok_or("missing expression")?;
        (Kind::Instant(dur(at)?), expr)
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let w: Vec<&str> = r.splitn(6, ' ').collect();
        if w.len() < 6 || w[1] != "to" || w[3] != "step" {
            return Err("malformed range eval".into());
        }
        (Kind::Range { start: dur(w[0])?, end: dur(w[2])?, step: dur(w[4])? }, w[5])
    } else {
        return Err("malformed eval".into());
    };
    let mut ev = Eval {
        line: lineno,
        kind,
        expr: expr.trim().to_string(),
        expect: Expect::default(),
        lines: Vec::new(),
    };
    for &(n, l) in block {
        if let Some(e) = l.strip_prefix("expect ") {
            let (what, re) = match e.split_once(' ') {
                Some((w, r)) => {
                    let r = r
                        .trim()
                        .strip_prefix("regex:")
                        .ok_or_else(|| format!("line {n}: unsupported expect {l:?}"))?;
                    (w, Some(regex::Regex::new(r.trim()).map_err(|e| format!("line {n}: {e}"))?))
                }
                None => (e.trim(), None),
            };
            match what {
                "fail" => {
                    ev.expect.fail = true;
                    ev.expect.fail_regex = re;
                }
                "ordered" => ev.expect.ordered = true,
                "warn" => ev.expect.warn.push(re),
                "info" => ev.expect.info.push(re),
                "no_warn" => ev.expect.no_warn = true,
                "no_info" => ev.expect.no_info = true,
                _ => return Err(format!("line {n}: unsupported expect {l:?}")),
            }
            continue;
        }
        let (labels, rest) = parse_series(l).map_err(|e| format!("line {n}: {e}"))?;
        let vals = expand(rest, false).map_err(|e| format!("line {n}: {e}"))?;
        ev.lines.push((labels, vals));
    }
    Ok(ev)
}

/// Splits `name{a="b"} rest` into labels and the rest. A line starting with
/// a number (or `_`) is a scalar: `None`.
fn parse_series(l: &str) -> Result<(Option<Labels>, &str), String> {
    let b = l.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b':') {
        i += 1;
    }
    let name = &l[..i];
    if i == b.len() || b[i] != b'{' {
        let value_like = name.is_empty()
            || name.starts_with(|c: char| c.is_ascii_digit())
            || matches!(name, "NaN" | "Inf" | "stale" | "_")
            || name.starts_with("_x");
        if value_like || (i < b.len() && !b[i].is_ascii_whitespace()) {
            return Ok((None, l));
        }
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push(("__name__".into(), name.into()));
    }
    if i < b.len() && b[i] == b'{' {
        i += 1;
        loop {
            while i < b.len() && (b[i] == b' ' || b[i] == b',') {
                i += 1;
            }
            if i >= b.len() {
                return Err("unterminated label set".into());
            }
            if b[i] == b'}' {
                i += 1;
                break;
            }
            // Label names may be quoted (UTF-8 names in 3.x).
            let lname = if b[i] == b'"' {
                let (v, end) = quoted(l, i + 1)?;
                i = end;
                v
            } else {
                let s = i;
                while i < b.len() && b[i] != b'=' && b[i] != b' ' {
                    i += 1;
                }
                l[s..i].to_string()
            };
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'=' {
                return Err(format!("expected = after label {lname:?}"));
            }
            i += 1;
            while i < b.len() && b[i] == b' ' {
                i += 1;
            }
            if i >= b.len() || b[i] != b'"' {
                return Err("expected quoted label value".into());
            }
            let (v, end) = quoted(l, i + 1)?;
            i = end;
            pairs.push((lname, v));
        }
    }
    let refs: Vec<(&str, &str)> = pairs.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    Ok((Some(Labels::from_pairs(&refs)), &l[i..]))
}

/// A double-quoted string's content starting after the opening quote at
/// byte `i`, and the byte after its closing quote.
fn quoted(l: &str, i: usize) -> Result<(String, usize), String> {
    let mut v = String::new();
    let mut chars = l[i..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((v, i + k + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => v.push('\n'),
                Some((_, 't')) => v.push('\t'),
                Some((_, c)) => v.push(c),
                None => return Err("bad escape".into()),
            },
            c => v.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

fn num(s: &str) -> Result<f64, String> {
    match s {
        "NaN" => Ok(f64::NAN),
        "Inf" | "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        _ => s.parse::<f64>().map_err(|_| format!("bad number {s:?}")),
    }
}

/// Expands promqltest's series value notation. `None` is a missing sample.
fn expand(s: &str, allow_stale: bool) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in s.split_whitespace() {
        if tok == "_" {
            out.push(None);
            continue;
        }
        if tok == "stale" {
            if !allow_stale {
                return Err("stale in expected values".into());
            }
            out.push(Some(stale_nan()));
            continue;
        }
        // `...xN`: the `x` must be followed by digits only.
        let rep = tok.rfind('x').and_then(|p| {
            let n = &tok[p + 1..];
            (!n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
                .then(|| (&tok[..p], n.parse::<usize>().ok()))
        });
        match rep {
            None => out.push(Some(num(tok)?)),
            Some((_, None)) => return Err(format!("bad repetition in {tok:?}")),
            Some((base, Some(n))) => {
                if base == "_" {
                    out.extend(std::iter::repeat_n(None, n));
                    continue;
                }
                // `a+b` / `a-b`: the operator is a sign not at the start and
                // not part of an exponent.
                let bb = base.as_bytes();
                let op = (1..bb.len())
                    .find(|&k| (bb[k] == b'+' || bb[k] == b'-') && !matches!(bb[k - 1], b'e' | b'E'));
                let (a, d) = match op {
                    Some(k) => {
                        let a = num(&base[..k])?;
                        let d = num(&base[k + 1..])?;
                        (a, if bb[k] == b'-' { -d } else { d })
                    }
                    None => (num(base)?, 0.0),
                };
                // Repeated addition, as promqltest does.
                let mut v = a;
                for _ in 0..=n {
                    out.push(Some(v));
                    v += d;
                }
            }
        }
    }
    Ok(out)
}

fn almost_equal(a: f64, b: f64) -> bool {
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / abs_sum.min(f64::MAX) < EPSILON
}

fn fmt_vals(v: &[Option<f64>]) -> String {
    v.iter().map(|x| x.map_or("_".to_string(), |x| x.to_string())).collect::<Vec<_>>().join(" ")
}

fn fmt_lines(lines: &[(Option<Labels>, Vec<Option<f64>>)]) -> String {
    if lines.is_empty() {
        return "    (empty)".into();
    }
    lines
        .iter()
        .map(|(l, v)| match l {
            Some(l) => format!("    {} {}", l.to_metric_string(), fmt_vals(v)),
            None => format!("    {}", fmt_vals(v)),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn run_eval(
    engine: &Engine,
    storage: &MemStorage,
    ev: &Eval,
    parse_errors_as_failures: bool,
) -> Result<(), String> {
    let opts = ParseOptions { experimental_functions: true, duration_expressions: true };
    let result: Result<QueryResult, String> = match parse_with_options(&ev.expr, opts) {
        Err(e) if parse_errors_as_failures => Err(e.to_string()),
        Err(e) => return Err(format!("expression does not parse: {e}")),
        Ok(expr) => {
            let ctl = QueryControl { query: ev.expr.clone(), ..QueryControl::default() };
            match ev.kind {
                Kind::Instant(t) => {
                    engine.instant_query_full(storage, &expr, t, Some(&ctl)).map_err(|e| e.to_string())
                }
                Kind::Range { start, end, step } => engine
                    .range_query_full(storage, &expr, start, end, step, Some(&ctl))
                    .map_err(|e| e.to_string()),
            }
        }
    };
    let res = match result {
        Err(e) => {
            if !ev.expect.fail {
                return Err(format!("unexpected error: {e}"));
            }
            if let Some(re) = &ev.expect.fail_regex {
                if !re.is_match(&e) {
                    return Err(format!("error {e:?} does not match /{}/", re.as_str()));
                }
            }
            return Ok(());
        }
        Ok(r) => r,
    };
    if ev.expect.fail {
        return Err(format!(
            "expected an error, got a result:\n{}",
            fmt_lines(&got_lines(&res.value, &ev.kind))
        ));
    }
    check_annotations("warn", &res.warnings, &ev.expect.warn, ev.expect.no_warn)?;
    check_annotations("info", &res.infos, &ev.expect.info, ev.expect.no_info)?;
    let got = got_lines(&res.value, &ev.kind);
    let mismatch = || format!("expected:\n{}\ngot:\n{}", fmt_lines(&ev.lines), fmt_lines(&got));
    if got.len() != ev.lines.len() {
        return Err(mismatch());
    }
    // A range eval's expected line may stop before the last steps where
    // the series has no points.
    let mut expected = ev.lines.clone();
    if let Kind::Range { start, end, step } = ev.kind {
        let n = ((end - start) / step + 1) as usize;
        for (_, v) in &mut expected {
            if v.len() < n {
                v.resize(n, None);
            }
        }
    }
    let mut used = vec![false; got.len()];
    for (k, (l, v)) in expected.iter().enumerate() {
        let found = if ev.expect.ordered {
            let (gl, gv) = &got[k];
            (gl == l && vals_equal(gv, v)).then_some(k)
        } else {
            got.iter()
                .enumerate()
                .find(|(g, (gl, gv))| !used[*g] && gl == l && vals_equal(gv, v))
                .map(|(g, _)| g)
        };
        match found {
            Some(g) => used[g] = true,
            None => return Err(mismatch()),
        }
    }
    let _ = ev.line;
    Ok(())
}

fn vals_equal(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (None, None) => true,
            (Some(x), Some(y)) => almost_equal(*x, *y),
            _ => false,
        })
}

/// The result as expected-line form: per series, one value per step.
fn got_lines(v: &Value, kind: &Kind) -> Vec<(Option<Labels>, Vec<Option<f64>>)> {
    match (v, kind) {
        (Value::Scalar(_, x), Kind::Instant(_)) => vec![(None, vec![Some(*x)])],
        (Value::Vector(s), _) => s.iter().map(|s| (Some(s.metric.clone()), vec![Some(s.v)])).collect(),
        (Value::Matrix(m), Kind::Range { start, end, step }) => {
            let n = ((end - start) / step + 1) as usize;
            m.iter()
                .map(|s| {
                    let mut vals = vec![None; n];
                    for &(t, v) in &s.points {
                        let k = (t - start) / step;
                        if (0..n as i64).contains(&k) {
                            vals[k as usize] = Some(v);
                        }
                    }
                    (Some(s.metric.clone()), vals)
                })
                .collect()
        }
        (Value::Matrix(m), Kind::Instant(_)) => {
            m.iter().map(|s| (Some(s.metric.clone()), s.points.iter().map(|p| Some(p.1)).collect())).collect()
        }
        (Value::Scalar(_, x), Kind::Range { .. }) => vec![(None, vec![Some(*x)])],
        (Value::String(_, s), _) => vec![(None, vec![s.parse::<f64>().ok()])],
    }
}

fn check_annotations(
    kind: &str,
    got: &[String],
    expected: &[Option<regex::Regex>],
    none: bool,
) -> Result<(), String> {
    if none && !got.is_empty() {
        return Err(format!("expected no {kind} annotations, got {got:?}"));
    }
    if expected.is_empty() {
        return Ok(());
    }
    if got.is_empty() {
        return Err(format!("expected {kind} annotations, got none"));
    }
    for a in got {
        if !expected.iter().any(|re| re.as_ref().is_none_or(|re| re.is_match(a))) {
            return Err(format!("{kind} annotation {a:?} matches no expect {kind} line"));
        }
    }
    Ok(())
}
