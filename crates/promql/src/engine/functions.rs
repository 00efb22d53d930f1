//! PromQL functions. Range-vector functions walk per-step windows over the
//! loaded samples; instant-vector functions map values step by step.

use ember_model::{time::civil_from_days, FastRegex, Labels, MatchOp, Timestamp, METRIC_NAME};

use super::eval::{
    drop_metric_name, go_float, map_vector, Eval, Evaluator, MatrixData, StepVec, VecBuilder, Windows,
};
use super::EvalError;
use crate::ast::*;

/// Kahan–Babuška compensated addition: returns the new sum and
/// compensation (Prometheus's `kahanSumInc`).
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Prometheus's `quantile`: linear interpolation between the closest
/// ranks; NaNs sort first.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

fn arg(c: &Call, i: usize) -> Result<&Expr, EvalError> {
    c.args.get(i).ok_or_else(|| EvalError::Execution(format!("missing argument {i} to {}", c.func.name)))
}

fn string_arg(c: &Call, i: usize) -> Result<String, EvalError> {
    let mut e = arg(c, i)?;
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    match e {
        Expr::String(s) => Ok(s.val.clone()),
        _ => Err(EvalError::Execution(format!("expected a string literal argument to {}", c.func.name))),
    }
}

fn matrix_arg(ev: &mut Evaluator<'_>, c: &Call, i: usize) -> Result<MatrixData, EvalError> {
    match ev.eval(arg(c, i)?)? {
        Eval::Matrix(m) => Ok(m),
        _ => Err(EvalError::Execution(format!("expected range vector argument to {}", c.func.name))),
    }
}

/// Applies `f` to every non-empty window of `m`, one output per series and
/// step. `f` gets the window, its end time and the step index.
fn over_windows(
    ev: &mut Evaluator<'_>,
    m: &MatrixData,
    keep_name: bool,
    mut f: impl FnMut(&[(Timestamp, f64)], Timestamp, usize) -> Option<f64>,
) -> Result<StepVec, EvalError> {
    over_windows_at(ev, m, keep_name, |s, te, i, _| f(s, te, i))
}

/// `over_windows` whose `f` also gets `(series index, index of the
/// window's first sample in the series)`, for per-series precomputation.
fn over_windows_at(
    ev: &mut Evaluator<'_>,
    m: &MatrixData,
    keep_name: bool,
    mut f: impl FnMut(&[(Timestamp, f64)], Timestamp, usize, (usize, usize)) -> Option<f64>,
) -> Result<StepVec, EvalError> {
    let n = ev.n_steps();
    let labels: Vec<Labels> = if keep_name {
        m.series.iter().map(|s| s.labels.clone()).collect()
    } else {
        m.series.iter().map(|s| drop_metric_name(&s.labels)).collect()
    };
    let mut out = VecBuilder::new(n);
    // Fast path: when every input series has its own output label set (the
    // usual case), walk series by series (cache-friendly, one hash per
    // series); otherwise step by step with the duplicate check.
    let idx: Vec<u32> = labels.iter().map(|l| out.intern(l.clone())).collect();
    let unique = {
        let mut seen = vec![false; out_len(&idx)];
        idx.iter().all(|&k| !std::mem::replace(&mut seen[k as usize], true))
    };
    if unique {
        let times: Vec<Timestamp> = (0..n).map(|i| ev.sel_time(m.at, m.offset, i)).collect();
        for (j, s) in m.series.iter().enumerate() {
            ev.check_deadline()?;
            let samples = &s.samples;
            let (mut lo, mut hi) = (0usize, 0usize);
            for (i, &te) in times.iter().enumerate() {
                // Windows can be long (subqueries): check every 64 steps.
                if i % 64 == 63 {
                    ev.check_deadline()?;
                }
                while hi < samples.len() && samples[hi].0 <= te {
                    hi += 1;
                }
                let start = te.saturating_sub(m.range);
                while lo < hi && samples[lo].0 <= start {
                    lo += 1;
                }
                if lo == hi {
                    continue;
                }
                if let Some(v) = f(&samples[lo..hi], te, i, (j, lo)) {
                    out.push_index(i, idx[j], v);
                }
            }
        }
        let result = out.finish();
        ev.account(result.steps.iter().map(Vec::len).sum())?;
        return Ok(result);
    }
    let mut w = Windows::new(m.series.len());
    for i in 0..n {
        ev.check_deadline()?;
        let te = ev.sel_time(m.at, m.offset, i);
        w.advance(&m.series, te, m.range);
        for (j, l) in labels.iter().enumerate() {
            let window = w.get(&m.series, j);
            if window.is_empty() {
                continue;
            }
            if let Some(v) = f(window, te, i, (j, w.start(j))) {
                out.push(i, l.clone(), v)?;
            }
        }
    }
    let result = out.finish();
    ev.account(result.steps.iter().map(Vec::len).sum())?;
    Ok(result)
}

fn out_len(idx: &[u32]) -> usize {
    idx.iter().map(|&k| k as usize + 1).max().unwrap_or(0)
}

/// `rate`, `increase`, `delta`: Prometheus's extrapolated rate.
fn extrapolated_rate(
    s: &[(Timestamp, f64)],
    range_start: Timestamp,
    range_end: Timestamp,
    range_ms: i64,
    has_resets: bool,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (first_t, first_v) = s[0];
    let (last_t, last_v) = s[s.len() - 1];
    let mut result = last_v - first_v;
    if has_resets {
        for w in s.windows(2) {
            if w[1].1 < w[0].1 {
                result += w[0].1;
            }
        }
    }
    let mut duration_to_start = (first_t as f64 - range_start as f64) / 1000.0;
    let mut duration_to_end = (range_end as f64 - last_t as f64) / 1000.0;
    let sampled_interval = (last_t - first_t) as f64 / 1000.0;
    let average = sampled_interval / (s.len() - 1) as f64;
    let threshold = average * 1.1;
    if duration_to_start >= threshold {
        duration_to_start = average / 2.0;
    }
    if is_counter {
        // A counter cannot go below zero: don't extrapolate past the point
        // where it would have been zero.
        let mut duration_to_zero = duration_to_start;
        if result > 0.0 && first_v >= 0.0 {
            duration_to_zero = sampled_interval * (first_v / result);
        }
        if duration_to_zero < duration_to_start {
            duration_to_start = duration_to_zero;
        }
    }
    if duration_to_end >= threshold {
        duration_to_end = average / 2.0;
    }
    let mut factor = 1.0;
    if sampled_interval != 0.0 {
        factor = (sampled_interval + duration_to_start + duration_to_end) / sampled_interval;
    }
    if is_rate {
        factor /= range_ms as f64 / 1000.0;
    }
    Some(result * factor)
}

/// `irate` and `idelta`: from the last two samples.
fn instant_value(s: &[(Timestamp, f64)], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (lt, lv) = s[s.len() - 1];
    let (pt, pv) = s[s.len() - 2];
    let mut result = if is_rate && lv < pv { lv } else { lv - pv };
    let interval = lt - pt;
    if interval == 0 {
        return None;
    }
    if is_rate {
        result /= interval as f64 / 1000.0;
    }
    Some(result)
}

/// Least-squares fit; x is seconds relative to `intercept_time`.
fn linear_regression(s: &[(Timestamp, f64)], intercept_time: Timestamp) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].1;
    let mut const_y = true;
    for (i, &(t, v)) in s.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (t as f64 - intercept_time as f64) / 1000.0;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

fn kahan_sum(s: &[(Timestamp, f64)]) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for &(_, v) in s {
        (sum, c) = kahan_inc(v, sum, c);
    }
    sum + c
}

/// Variance with Welford's method and compensated sums.
fn variance(s: &[(Timestamp, f64)]) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(_, v) in s {
        count += 1.0;
        let delta = v - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (v - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

/// Labels for `absent()`: the equality matchers of a plain selector, except
/// names used by more than one matcher.
fn absent_labels(e: &Expr) -> Labels {
    let matchers = match e {
        Expr::VectorSelector(vs) => &vs.matchers,
        Expr::MatrixSelector(m) => &m.vs.matchers,
        _ => return Labels::empty(),
    };
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let mut dup: Vec<&str> = Vec::new();
    for m in matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if pairs.iter().any(|(n, _)| *n == m.name) || matchers.iter().filter(|x| x.name == m.name).count() > 1
        {
            dup.push(&m.name);
        }
        if m.op == MatchOp::Equal {
            pairs.push((&m.name, &m.value));
        }
    }
    pairs.retain(|(n, _)| !dup.contains(n));
    Labels::from_pairs(&pairs)
}

/// Computes a date function from (year, month, day, seconds of the day).
type DateFn = fn(i64, i64, i64, i64) -> f64;

fn date_part(ts_seconds: f64, f: DateFn) -> f64 {
    let secs = ts_seconds.floor() as i64;
    let days = secs.div_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    f(y, m, d, secs.rem_euclid(86_400))
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

pub(super) fn eval_call(ev: &mut Evaluator<'_>, c: &Call) -> Result<Eval, EvalError> {
    let name = c.func.name;
    let n = ev.n_steps();
    let math: Option<fn(f64) -> f64> = match name {
        "abs" => Some(f64::abs),
        "ceil" => Some(f64::ceil),
        "floor" => Some(f64::floor),
        "exp" => Some(f64::exp),
        "sqrt" => Some(f64::sqrt),
        "ln" => Some(f64::ln),
        "log2" => Some(f64::log2),
        "log10" => Some(f64::log10),
        "sin" => Some(f64::sin),
        "cos" => Some(f64::cos),
        "tan" => Some(f64::tan),
        "asin" => Some(f64::asin),
        "acos" => Some(f64::acos),
        "atan" => Some(f64::atan),
        "sinh" => Some(f64::sinh),
        "cosh" => Some(f64::cosh),
        "tanh" => Some(f64::tanh),
        "asinh" => Some(f64::asinh),
        "acosh" => Some(f64::acosh),
        "atanh" => Some(f64::atanh),
        "deg" => Some(|x: f64| x.to_degrees()),
        "rad" => Some(|x: f64| x.to_radians()),
        "sgn" => Some(|x: f64| {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }),
        _ => None,
    };
    if let Some(f) = math {
        let v = ev.eval_vector(arg(c, 0)?)?;
        return Ok(Eval::Vector(map_vector(v, true, |x| Some(f(x)))?));
    }
    let date: Option<DateFn> = match name {
        "year" => Some(|y, _, _, _| y as f64),
        "month" => Some(|_, m, _, _| m as f64),
        "day_of_month" => Some(|_, _, d, _| d as f64),
        "day_of_year" => Some(|y, m, d, _| {
            (ember_model::time::days_from_civil(y, m, d) - ember_model::time::days_from_civil(y, 1, 1) + 1)
                as f64
        }),
        "day_of_week" => {
            Some(|y, m, d, _| (ember_model::time::days_from_civil(y, m, d) + 4).rem_euclid(7) as f64)
        }
        "days_in_month" => Some(|y, m, _, _| days_in_month(y, m) as f64),
        "hour" => Some(|_, _, _, s| (s / 3600) as f64),
        "minute" => Some(|_, _, _, s| (s % 3600 / 60) as f64),
        _ => None,
    };
    if let Some(f) = date {
        let v = match c.args.first() {
            Some(e) => ev.eval_vector(e)?,
            None => StepVec {
                labels: vec![Labels::empty()],
                steps: (0..n).map(|i| vec![(0, ev.ts(i) as f64 / 1000.0)]).collect(),
            },
        };
        return Ok(Eval::Vector(map_vector(v, true, |x| {
            if x.is_finite() {
                Some(date_part(x, f))
            } else {
                Some(f64::NAN)
            }
        })?));
    }
    Ok(match name {
        "time" => Eval::Scalar((0..n).map(|i| ev.ts(i) as f64 / 1000.0).collect()),
        "pi" => Eval::Scalar(vec![std::f64::consts::PI; n]),
        "vector" => {
            let s = ev.eval_scalar(arg(c, 0)?)?;
            Eval::Vector(StepVec {
                labels: vec![Labels::empty()],
                steps: s.into_iter().map(|v| vec![(0, v)]).collect(),
            })
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?)?;
            Eval::Scalar(v.steps.iter().map(|s| if s.len() == 1 { s[0].1 } else { f64::NAN }).collect())
        }
        "round" => {
            let v = ev.eval_vector(arg(c, 0)?)?;
            let to = match c.args.get(1) {
                Some(e) => ev.eval_scalar(e)?,
                None => vec![1.0; n],
            };
            Eval::Vector(map_steps(v, true, |i, x| {
                let inv = 1.0 / to[i];
                Some((x * inv + 0.5).floor() / inv)
            })?)
        }
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(c, 0)?)?;
            let (lo, hi) = match name {
                "clamp" => (ev.eval_scalar(arg(c, 1)?)?, ev.eval_scalar(arg(c, 2)?)?),
                "clamp_min" => (ev.eval_scalar(arg(c, 1)?)?, vec![f64::INFINITY; n]),
                _ => (vec![f64::NEG_INFINITY; n], ev.eval_scalar(arg(c, 1)?)?),
            };
            Eval::Vector(map_steps(v, true, |i, x| {
                if hi[i] < lo[i] {
                    None
                } else {
                    Some(go_max(lo[i], go_min(hi[i], x)))
                }
            })?)
        }
        "timestamp" => {
            let mut e = arg(c, 0)?;
            while let Expr::Paren(p) = e {
                e = &p.expr;
            }
            let v = match e {
                Expr::VectorSelector(vs) => ev.eval_vector_selector(vs, true)?,
                e => {
                    let v = ev.eval_vector(e)?;
                    let times: Vec<f64> = (0..n).map(|i| ev.ts(i) as f64 / 1000.0).collect();
                    map_steps(v, false, |i, _| Some(times[i]))?
                }
            };
            Eval::Vector(map_vector(v, true, Some)?)
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?)?;
            warn_sort_in_range_query(ev, c);
            let desc = name == "sort_desc";
            for step in &mut v.steps {
                step.sort_by(|a, b| match (a.1.is_nan(), b.1.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => b.1.total_cmp(&a.1),
                    _ => a.1.total_cmp(&b.1),
                });
            }
            Eval::Vector(v)
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?)?;
            warn_sort_in_range_query(ev, c);
            let names: Vec<String> = (1..c.args.len()).map(|i| string_arg(c, i)).collect::<Result<_, _>>()?;
            let desc = name == "sort_by_label_desc";
            let labels = &v.labels;
            for step in &mut v.steps {
                step.sort_by(|a, b| {
                    let (la, lb) = (&labels[a.0 as usize], &labels[b.0 as usize]);
                    let ord = names
                        .iter()
                        .map(|n| natural_cmp(la.get_or_empty(n), lb.get_or_empty(n)))
                        .find(|o| o.is_ne())
                        // Equal on every given label: the full label set
                        // decides, for a stable order.
                        .unwrap_or_else(|| la.cmp(lb));
                    if desc {
                        ord.reverse()
                    } else {
                        ord
                    }
                });
            }
            Eval::Vector(v)
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(c, 0)?)?;
            let (dst, repl, src, re) =
                (string_arg(c, 1)?, string_arg(c, 2)?, string_arg(c, 3)?, string_arg(c, 4)?);
            let regex = regex_for(&re).map_err(|e| {
                EvalError::Execution(format!("invalid regular expression in label_replace(): {e}"))
            })?;
            if dst.is_empty() {
                return Err(EvalError::Execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            relabel(v, |l| {
                let value = l.get_or_empty(&src);
                let Some(caps) = regex.captures(value) else { return l.clone() };
                let mut out = String::new();
                caps.expand(&go_template(&repl), &mut out);
                let mut b = l.builder();
                b.set(&dst, &out);
                b.build()
            })?
        }
        "label_join" => {
            let v = ev.eval_vector(arg(c, 0)?)?;
            let dst = string_arg(c, 1)?;
            let sep = string_arg(c, 2)?;
            let srcs: Vec<String> = (3..c.args.len()).map(|i| string_arg(c, i)).collect::<Result<_, _>>()?;
            if dst.is_empty() {
                return Err(EvalError::Execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            relabel(v, |l| {
                let joined = srcs.iter().map(|s| l.get_or_empty(s)).collect::<Vec<_>>().join(&sep);
                let mut b = l.builder();
                b.set(&dst, &joined);
                b.build()
            })?
        }
        "absent" => {
            let v = ev.eval_vector(arg(c, 0)?)?;
            let labels = absent_labels(arg(c, 0)?);
            let steps =
                v.steps.iter().map(|s| if s.is_empty() { vec![(0, 1.0)] } else { Vec::new() }).collect();
            Eval::Vector(StepVec { labels: vec![labels], steps })
        }
        "absent_over_time" => {
            let m = matrix_arg(ev, c, 0)?;
            let labels = absent_labels(arg(c, 0)?);
            let mut w = Windows::new(m.series.len());
            let mut steps = Vec::with_capacity(n);
            for i in 0..n {
                let te = ev.sel_time(m.at, m.offset, i);
                w.advance(&m.series, te, m.range);
                let any = (0..m.series.len()).any(|j| !w.get(&m.series, j).is_empty());
                steps.push(if any { Vec::new() } else { vec![(0, 1.0)] });
            }
            Eval::Vector(StepVec { labels: vec![labels], steps })
        }
        "rate" | "increase" | "delta" => {
            let m = matrix_arg(ev, c, 0)?;
            let (counter, rate) = (name != "delta", name == "rate");
            let range = m.range;
            // For each sample, the index of the first counter reset at or
            // after it (a drop from the previous sample): a window without
            // one skips the reset scan.
            let next_reset: Vec<Vec<u32>> = if counter {
                m.series
                    .iter()
                    .map(|s| {
                        let n = s.samples.len();
                        let mut next = vec![n as u32; n + 1];
                        for k in (1..n).rev() {
                            next[k] =
                                if s.samples[k].1 < s.samples[k - 1].1 { k as u32 } else { next[k + 1] };
                        }
                        next
                    })
                    .collect()
            } else {
                Vec::new()
            };
            let mut any_window = false;
            let result = over_windows_at(ev, &m, false, |s, te, _, (j, lo)| {
                any_window = true;
                let resets = counter && s.len() > 1 && (next_reset[j][lo + 1] as usize) < lo + s.len();
                extrapolated_rate(s, te.saturating_sub(range), te, range, resets, counter, rate)
            })?;
            if counter && any_window {
                warn_non_counters(ev, c, &m);
            }
            Eval::Vector(result)
        }
        "irate" | "idelta" => {
            let m = matrix_arg(ev, c, 0)?;
            let rate = name == "irate";
            Eval::Vector(over_windows(ev, &m, false, |s, _, _| instant_value(s, rate))?)
        }
        "changes" | "resets" => {
            let m = matrix_arg(ev, c, 0)?;
            let resets = name == "resets";
            Eval::Vector(over_windows(ev, &m, false, |s, _, _| {
                Some(
                    s.windows(2)
                        .filter(|w| {
                            if resets {
                                w[1].1 < w[0].1
                            } else {
                                !(w[1].1 == w[0].1 || (w[1].1.is_nan() && w[0].1.is_nan()))
                            }
                        })
                        .count() as f64,
                )
            })?)
        }
        "deriv" => {
            let m = matrix_arg(ev, c, 0)?;
            Eval::Vector(over_windows(ev, &m, false, |s, _, _| {
                (s.len() >= 2).then(|| linear_regression(s, s[0].0).0)
            })?)
        }
        "predict_linear" => {
            let m = matrix_arg(ev, c, 0)?;
            let dur = ev.eval_scalar(arg(c, 1)?)?;
            let bases: Vec<Timestamp> = (0..n).map(|i| ev.sel_time(m.at, 0, i)).collect();
            Eval::Vector(over_windows(ev, &m, false, |s, _, i| {
                (s.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(s, bases[i]);
                    slope * dur[i] + intercept
                })
            })?)
        }
        "ts_of_min_over_time" | "ts_of_max_over_time" | "ts_of_first_over_time" | "ts_of_last_over_time" => {
            let m = matrix_arg(ev, c, 0)?;
            Eval::Vector(over_windows(ev, &m, false, |s, _, _| {
                let t = match name {
                    "ts_of_first_over_time" => s[0].0,
                    "ts_of_last_over_time" => s[s.len() - 1].0,
                    // Ties go to the last sample (`<=` / `>=`), unlike
                    // min/max_over_time.
                    _ => {
                        let min = name == "ts_of_min_over_time";
                        let (mut t, mut best) = s[0];
                        for &(ts, v) in &s[1..] {
                            let better = if min { v <= best } else { v >= best };
                            if better || best.is_nan() {
                                (best, t) = (v, ts);
                            }
                        }
                        t
                    }
                };
                Some(t as f64 / 1000.0)
            })?)
        }
        "mad_over_time" => {
            let m = matrix_arg(ev, c, 0)?;
            let mut buf = Vec::new();
            Eval::Vector(over_windows(ev, &m, false, |s, _, _| {
                if s.iter().any(|p| p.1.is_nan()) {
                    return Some(f64::NAN);
                }
                buf.clear();
                buf.extend(s.iter().map(|&(_, v)| v));
                let median = quantile(0.5, &mut buf);
                for x in &mut buf {
                    *x = (*x - median).abs();
                }
                Some(quantile(0.5, &mut buf))
            })?)
        }
        "double_exponential_smoothing" => {
            let m = matrix_arg(ev, c, 0)?;
            let sf = ev.eval_scalar(arg(c, 1)?)?;
            let tf = ev.eval_scalar(arg(c, 2)?)?;
            for i in 0..n {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return Err(EvalError::Execution(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {:.6}",
                        sf[i]
                    )));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return Err(EvalError::Execution(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {:.6}",
                        tf[i]
                    )));
                }
            }
            Eval::Vector(over_windows(ev, &m, false, |s, _, i| {
                double_exponential_smoothing(s, sf[i], tf[i])
            })?)
        }
        "avg_over_time" | "sum_over_time" | "count_over_time" | "min_over_time" | "max_over_time"
        | "last_over_time" | "first_over_time" | "present_over_time" | "stddev_over_time"
        | "stdvar_over_time" => {
            let m = matrix_arg(ev, c, 0)?;
            let keep = matches!(name, "last_over_time" | "first_over_time");
            Eval::Vector(over_windows(ev, &m, keep, |s, _, _| {
                Some(match name {
                    "avg_over_time" => kahan_sum(s) / s.len() as f64,
                    "sum_over_time" => kahan_sum(s),
                    "count_over_time" => s.len() as f64,
                    "min_over_time" => {
                        s.iter().fold(s[0].1, |m, &(_, v)| if m > v || m.is_nan() { v } else { m })
                    }
                    "max_over_time" => {
                        s.iter().fold(s[0].1, |m, &(_, v)| if m < v || m.is_nan() { v } else { m })
                    }
                    "last_over_time" => s[s.len() - 1].1,
                    "first_over_time" => s[0].1,
                    "present_over_time" => 1.0,
                    "stddev_over_time" => variance(s).sqrt(),
                    _ => variance(s),
                })
            })?)
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(c, 0)?)?;
            let v = ev.eval_vector(arg(c, 1)?)?;
            let mut forced = false;
            // Steps whose out-of-range quantile was used (one flag per
            // step, however many groups).
            let mut bad_q = vec![false; n];
            let (result, bad) = classic_histograms(v, |i, b| {
                if !(0.0..=1.0).contains(&q[i]) {
                    bad_q[i] = true;
                }
                let (v, f) = bucket_quantile(q[i], b);
                forced |= f;
                v
            })?;
            let qpos = arg(c, 0)?.pos_range();
            let hpos = arg(c, 1)?.pos_range();
            for x in (0..n).filter(|&i| bad_q[i]).map(|i| q[i]) {
                ev.annotate(
                    true,
                    format!("quantile value should be between 0 and 1, got {}", go_float(x)),
                    qpos,
                );
            }
            warn_bad_buckets(ev, bad, hpos);
            if forced {
                ev.annotate(
                    false,
                    "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile)".into(),
                    hpos,
                );
            }
            Eval::Vector(result)
        }
        "histogram_fraction" => {
            let lower = ev.eval_scalar(arg(c, 0)?)?;
            let upper = ev.eval_scalar(arg(c, 1)?)?;
            let v = ev.eval_vector(arg(c, 2)?)?;
            let (result, bad) = classic_histograms(v, |i, b| bucket_fraction(lower[i], upper[i], b))?;
            warn_bad_buckets(ev, bad, arg(c, 2)?.pos_range());
            Eval::Vector(result)
        }
        // Native-histogram functions ignore float samples; ember stores no
        // native histograms, so their result is always empty.
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev" | "histogram_stdvar" => {
            ev.eval_vector(arg(c, 0)?)?;
            Eval::Vector(StepVec { labels: Vec::new(), steps: vec![Vec::new(); n] })
        }
        "quantile_over_time" => {
            let q = ev.eval_scalar(arg(c, 0)?)?;
            let m = matrix_arg(ev, c, 1)?;
            let mut buf = Vec::new();
            let mut bad_q = vec![false; n];
            let result = over_windows(ev, &m, false, |s, _, i| {
                if !(0.0..=1.0).contains(&q[i]) {
                    bad_q[i] = true;
                }
                buf.clear();
                buf.extend(s.iter().map(|&(_, v)| v));
                Some(quantile(q[i], &mut buf))
            })?;
            let qpos = arg(c, 0)?.pos_range();
            for x in (0..n).filter(|&i| bad_q[i]).map(|i| q[i]) {
                ev.annotate(
                    true,
                    format!("quantile value should be between 0 and 1, got {}", go_float(x)),
                    qpos,
                );
            }
            Eval::Vector(result)
        }
        _ => return Err(EvalError::Execution(format!("function {name:?} is not supported by ember yet"))),
    })
}

/// `almost.Equal` of Prometheus: relative difference below `epsilon`.
fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The quantile of classic histogram buckets `(upper bound, cumulative
/// count)`: Prometheus's `BucketQuantile`, including its coalescing of
/// equal bounds and forced monotonicity.
fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return (f64::NAN, false);
    }
    sort_and_coalesce(buckets);
    let mut forced = false;
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let last = buckets.len() - 1;
    // Go's sort.Search for the first count >= rank: a NaN count is never
    // >= rank.
    let b = buckets[..last].iter().position(|x| x.1 >= rank).unwrap_or(last);
    if b == last {
        return (buckets[last - 1].0, forced);
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return (buckets[0].0, forced);
    }
    let (mut start, end, mut count) = (0.0, buckets[b].0, buckets[b].1);
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    (start + (end - start) * (rank / count), forced)
}

/// Groups classic histogram buckets (series with a numeric `le`) by their
/// other labels and computes `f` over each group's `(upper bound, count)`
/// buckets at each step. Results have neither `le` nor the metric name.
fn classic_histograms(
    v: StepVec,
    mut f: impl FnMut(usize, &mut Vec<(f64, f64)>) -> f64,
) -> Result<(StepVec, Vec<(String, String)>), EvalError> {
    let mut bad = Vec::new();
    let mut groups: Vec<Labels> = Vec::new();
    let mut outputs: Vec<Labels> = Vec::new();
    let mut series_group: Vec<Option<(usize, f64)>> = Vec::with_capacity(v.labels.len());
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    for l in &v.labels {
        let Some(upper) = l.get("le").and_then(parse_bound) else {
            bad.push((l.metric_name().unwrap_or_default().to_string(), l.get_or_empty("le").to_string()));
            series_group.push(None);
            continue;
        };
        let key = l.drop_names(&["le"]);
        let gi = match index.get(&key) {
            Some(&i) => i,
            None => {
                outputs.push(key.drop_names(&["le", METRIC_NAME]));
                groups.push(key.clone());
                index.insert(key, groups.len() - 1);
                groups.len() - 1
            }
        };
        series_group.push(Some((gi, upper)));
    }
    let mut out = VecBuilder::new(v.steps.len());
    let mut buckets: Vec<Vec<(f64, f64)>> = vec![Vec::new(); groups.len()];
    for (i, step) in v.steps.iter().enumerate() {
        for b in &mut buckets {
            b.clear();
        }
        for &(j, x) in step {
            if let Some((g, upper)) = series_group[j as usize] {
                buckets[g].push((upper, x));
            }
        }
        for (g, b) in buckets.iter_mut().enumerate() {
            if !b.is_empty() {
                out.push(i, outputs[g].clone(), f(i, b))?;
            }
        }
    }
    Ok((out.finish(), bad))
}

/// A bucket bound as Go's `strconv.ParseFloat` reads it (`+Inf`, `inf`,
/// `NaN`, ... in any case).
fn parse_bound(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().trim_start_matches('+') {
        "inf" | "infinity" => Some(f64::INFINITY),
        "-inf" | "-infinity" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse::<f64>().ok(),
    }
}

/// Warns once per malformed `le` value seen by a histogram function.
fn warn_bad_buckets(ev: &mut Evaluator<'_>, bad: Vec<(String, String)>, pos: PosRange) {
    for (name, le) in bad {
        let mut msg = format!("bucket label \"le\" is missing or has a malformed value of {le:?}");
        if !name.is_empty() {
            msg.push_str(&format!(" for metric name {name:?}"));
        }
        ev.annotate(true, msg, pos);
    }
}

/// sort functions order an instant query's result; a range query's result
/// is always ordered by labels, so Prometheus warns.
fn warn_sort_in_range_query(ev: &mut Evaluator<'_>, c: &Call) {
    if ev.is_range_query() {
        ev.annotate(
            true,
            "sort is ineffective for range queries since results are always ordered by labels".into(),
            c.pos,
        );
    }
}

/// `rate`/`increase` over a series whose name has no counter suffix: an
/// info per such metric name that had samples in some window.
fn warn_non_counters(ev: &mut Evaluator<'_>, c: &Call, m: &MatrixData) {
    let pos = c.args.first().map_or(c.pos, Expr::pos_range);
    let mut names: Vec<String> = Vec::new();
    for s in &m.series {
        let Some(name) = s.labels.metric_name() else { continue };
        if ["_total", "_sum", "_count", "_bucket"].iter().any(|suf| name.ends_with(suf)) {
            continue;
        }
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    for name in names {
        ev.annotate(
            false,
            format!(
                "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
            ),
            pos,
        );
    }
}

/// Go's `math.Min`: -Inf wins over NaN, NaN over everything else.
fn go_min(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY || b == f64::NEG_INFINITY {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Go's `math.Max`: +Inf wins over NaN, NaN over everything else.
fn go_max(a: f64, b: f64) -> f64 {
    if a == f64::INFINITY || b == f64::INFINITY {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Natural order of label values: runs of digits compare as numbers,
/// everything else byte-wise.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        if x == y {
            continue;
        }
        let both_numeric = x.bytes().all(|c| c.is_ascii_digit()) && y.bytes().all(|c| c.is_ascii_digit());
        if both_numeric {
            let (xt, yt) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
            let o = xt.len().cmp(&yt.len()).then_with(|| xt.cmp(yt));
            if o != Ordering::Equal {
                return o;
            }
            continue;
        }
        return x.cmp(y);
    }
    ca.len().cmp(&cb.len()).then_with(|| a.cmp(b))
}

/// Prometheus's `double_exponential_smoothing` (Holt's linear method):
/// the smoothed value at the last sample; needs two samples.
fn double_exponential_smoothing(s: &[(Timestamp, f64)], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, s[0].1);
    let mut b = s[1].1 - s[0].1;
    for (i, &(_, v)) in s.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

/// Sorts buckets by bound and merges equal bounds.
fn sort_and_coalesce(buckets: &mut Vec<(f64, f64)>) {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    buckets.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
}

/// The fraction of observations between `lower` and `upper`
/// (Prometheus's `BucketFraction`), interpolating within buckets.
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    sort_and_coalesce(buckets);
    let count = buckets[buckets.len() - 1].1;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let (mut rank, mut lower_rank, mut upper_rank) = (0.0, 0.0, 0.0);
    let (mut lower_set, mut upper_set) = (false, false);
    let mut lower_bound = if buckets[0].0 <= 0.0 { f64::NEG_INFINITY } else { 0.0 };
    for (i, &(upper_bound, bcount)) in buckets.iter().enumerate() {
        if i > 0 {
            lower_bound = buckets[i - 1].0;
        }
        let interpolate = |v: f64| {
            if lower_bound == f64::NEG_INFINITY {
                bcount
            } else {
                rank + (bcount - rank) * (v - lower_bound) / (upper_bound - lower_bound)
            }
        };
        if !lower_set && lower_bound >= lower {
            lower_rank = rank;
            lower_set = true;
        }
        if !upper_set && lower_bound >= upper {
            upper_rank = rank;
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        if !lower_set && lower_bound < lower && upper_bound > lower {
            lower_rank = interpolate(lower);
            lower_set = true;
        }
        if !upper_set && lower_bound < upper && upper_bound > upper {
            upper_rank = interpolate(upper);
            upper_set = true;
        }
        if lower_set && upper_set {
            break;
        }
        rank = bcount;
    }
    if !lower_set || lower_rank > count {
        lower_rank = count;
    }
    if !upper_set || upper_rank > count {
        upper_rank = count;
    }
    (upper_rank - lower_rank) / count
}

/// Like `map_vector`, with the step index.
fn map_steps(
    sv: StepVec,
    drop_name: bool,
    mut f: impl FnMut(usize, f64) -> Option<f64>,
) -> Result<StepVec, EvalError> {
    let labels: Vec<Labels> =
        if drop_name { sv.labels.iter().map(drop_metric_name).collect() } else { sv.labels.clone() };
    let mut b = VecBuilder::new(sv.steps.len());
    for (i, step) in sv.steps.into_iter().enumerate() {
        for (j, v) in step {
            if let Some(v) = f(i, v) {
                b.push(i, labels[j as usize].clone(), v)?;
            }
        }
    }
    Ok(b.finish())
}

/// Rewrites every series' labels, keeping values.
fn relabel(sv: StepVec, f: impl Fn(&Labels) -> Labels) -> Result<Eval, EvalError> {
    let labels: Vec<Labels> = sv.labels.iter().map(f).collect();
    let mut b = VecBuilder::new(sv.steps.len());
    for (i, step) in sv.steps.into_iter().enumerate() {
        for (j, v) in step {
            b.push(i, labels[j as usize].clone(), v)?;
        }
    }
    Ok(Eval::Vector(b.finish()))
}

/// The anchored regex of `label_replace` (Prometheus anchors it).
fn regex_for(re: &str) -> Result<regex::Regex, String> {
    // Validate with the same parser as label matchers, then compile with
    // capture groups for expansion.
    FastRegex::new(re).map_err(|e| e.0)?;
    regex::Regex::new(&format!("^(?s:{re})$")).map_err(|e| e.to_string())
}

/// Go's `Regexp.Expand` template syntax (`$1`, `${name}`) is the same as
/// the regex crate's, except that Go treats `$1x` as group `1x`; both take
/// the longest name, so templates carry over unchanged.
fn go_template(t: &str) -> String {
    t.to_owned()
}
