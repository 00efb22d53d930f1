//! The evaluator: query setup, selectors, subqueries and the per-step
//! result representation shared by operators and functions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ember_model::{is_stale_nan, Labels, Matcher, Querier, Queryable, SelectHints, Timestamp, METRIC_NAME};

use super::{EvalError, InstantSample, QueryControl, QueryResult, QueryStats, RangeSeries, Value};
use crate::ast::*;

/// Prometheus's limit on the points of a range query per series.
const MAX_RESOLUTION: i128 = 11_000;

/// Engine settings, with Prometheus's flag defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// `--query.lookback-delta`, in milliseconds (default 5m).
    pub lookback_delta: i64,
    /// `--query.max-samples` (default 50,000,000): the most samples and
    /// result points a query may hold in memory.
    pub max_samples: usize,
    /// Step of subqueries written without one (`x[1h:]`): the global
    /// evaluation interval, 1m by default.
    pub default_subquery_step: i64,
    /// `--query.timeout` (default 2m); `None` for no limit.
    pub timeout: Option<std::time::Duration>,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta: 300_000,
            max_samples: 50_000_000,
            default_subquery_step: 60_000,
            timeout: Some(std::time::Duration::from_secs(120)),
        }
    }
}

/// Evaluates parsed expressions against a storage.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

impl Engine {
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `expr` at `ts` (milliseconds).
    pub fn instant_query(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        ts: Timestamp,
    ) -> Result<Value, EvalError> {
        self.instant_query_full(storage, expr, ts, None).map(|r| r.value)
    }

    /// Evaluates `expr` at `ts` (milliseconds) under `ctl` (deadline and
    /// cancellation; without it, `EngineOptions::timeout` applies), with
    /// the annotations the evaluation produced.
    pub fn instant_query_full(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        ts: Timestamp,
        ctl: Option<&QueryControl>,
    ) -> Result<QueryResult, EvalError> {
        let started = std::time::Instant::now();
        let resolved = resolve_durations(expr, 0, 0)?;
        let expr = resolved.as_ref().unwrap_or(expr);
        let mut ev = Evaluator::new(&self.opts, storage, expr, ts, ts, 1, ctl)?;
        ev.stats.query_preparation = started.elapsed();
        let eval_started = std::time::Instant::now();
        let value = match ev.eval(expr)? {
            Eval::Scalar(v) => Value::Scalar(ts, v.first().copied().unwrap_or(f64::NAN)),
            Eval::String(s) => Value::String(ts, s),
            Eval::Vector(sv) => Value::Vector(
                sv.steps
                    .first()
                    .map(|step| {
                        step.iter()
                            .map(|&(i, v)| InstantSample { metric: sv.labels[i as usize].clone(), t: ts, v })
                            .collect()
                    })
                    .unwrap_or_default(),
            ),
            Eval::Matrix(m) => {
                let te = ev.sel_time(m.at, m.offset, 0);
                let mut out = Vec::new();
                let mut w = Windows::new(m.series.len());
                w.advance(&m.series, te, m.range);
                for (j, s) in m.series.iter().enumerate() {
                    let points = w.get(&m.series, j);
                    if !points.is_empty() {
                        out.push(RangeSeries { metric: s.labels.clone(), points: points.to_vec() });
                    }
                }
                Value::Matrix(out)
            }
        };
        ev.stats.inner_eval = eval_started.elapsed();
        Ok(ev.into_result(value))
    }

    /// Evaluates `expr` at every `step` from `start` to `end` (all in
    /// milliseconds). The result is a matrix sorted by labels.
    pub fn range_query(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start: Timestamp,
        end: Timestamp,
        step: i64,
    ) -> Result<Vec<RangeSeries>, EvalError> {
        self.range_query_full(storage, expr, start, end, step, None).map(|r| match r.value {
            Value::Matrix(m) => m,
            _ => Vec::new(),
        })
    }

    /// A range query under `ctl`, with its annotations; the value is
    /// always a `Value::Matrix`.
    pub fn range_query_full(
        &self,
        storage: &dyn Queryable,
        expr: &Expr,
        start: Timestamp,
        end: Timestamp,
        step: i64,
        ctl: Option<&QueryControl>,
    ) -> Result<QueryResult, EvalError> {
        if step <= 0 {
            return Err(EvalError::Execution(
                "zero or negative query resolution step widths are not accepted. Try a positive integer"
                    .into(),
            ));
        }
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            t => {
                return Err(EvalError::Execution(format!(
                    "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                    t.documented()
                )))
            }
        }
        if (end as i128 - start as i128) / step as i128 >= MAX_RESOLUTION {
            return Err(EvalError::Execution(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)"
                    .into(),
            ));
        }
        let started = std::time::Instant::now();
        let resolved = resolve_durations(expr, step, end.saturating_sub(start))?;
        let expr = resolved.as_ref().unwrap_or(expr);
        let mut ev = Evaluator::new(&self.opts, storage, expr, start, end, step, ctl)?;
        ev.stats.query_preparation = started.elapsed();
        let eval_started = std::time::Instant::now();
        let mut out = match ev.eval(expr)? {
            Eval::Scalar(v) => vec![RangeSeries {
                metric: Labels::empty(),
                points: v.iter().enumerate().map(|(i, &v)| (ev.ts(i), v)).collect(),
            }],
            Eval::Vector(sv) => {
                let mut series: Vec<RangeSeries> =
                    sv.labels.iter().map(|l| RangeSeries { metric: l.clone(), points: Vec::new() }).collect();
                for (i, step) in sv.steps.iter().enumerate() {
                    for &(j, v) in step {
                        series[j as usize].points.push((ev.ts(i), v));
                    }
                }
                series.retain(|s| !s.points.is_empty());
                series
            }
            Eval::String(_) | Eval::Matrix(_) => {
                return Err(EvalError::Execution("unexpected result type for range query".into()))
            }
        };
        ev.stats.inner_eval = eval_started.elapsed();
        let sort_started = std::time::Instant::now();
        out.sort_by(|a, b| a.metric.cmp(&b.metric));
        ev.stats.result_sort = sort_started.elapsed();
        Ok(ev.into_result(Value::Matrix(out)))
    }
}

/// Resolves query-dependent duration expressions (`[step()]`) for a query
/// with this step and range (milliseconds); `None` when there are none.
fn resolve_durations(expr: &Expr, step: i64, range: i64) -> Result<Option<Expr>, EvalError> {
    fn dynamic(e: &Expr) -> bool {
        match e {
            Expr::MatrixSelector(m) => m.range_expr.is_some(),
            Expr::Paren(p) => dynamic(&p.expr),
            Expr::Unary(u) => dynamic(&u.expr),
            Expr::Binary(b) => dynamic(&b.lhs) || dynamic(&b.rhs),
            Expr::Aggregate(a) => dynamic(&a.expr) || a.param.as_deref().is_some_and(dynamic),
            Expr::Call(c) => c.args.iter().any(dynamic),
            Expr::Subquery(s) => dynamic(&s.expr),
            Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) => false,
        }
    }
    fn resolve(e: &mut Expr, step: f64, range: f64) -> Result<(), EvalError> {
        match e {
            Expr::MatrixSelector(m) => {
                if let Some(d) = m.range_expr.take() {
                    let v =
                        d.eval(step, range).ok_or_else(|| EvalError::Execution("division by zero".into()))?;
                    if v.is_nan() || v <= 0.0 || v * 1000.0 >= i64::MAX as f64 {
                        return Err(EvalError::Execution(format!(
                            "duration must be greater than 0, got {}",
                            go_float(v)
                        )));
                    }
                    m.range = (v * 1000.0).round() as i64;
                }
                Ok(())
            }
            Expr::Paren(p) => resolve(&mut p.expr, step, range),
            Expr::Unary(u) => resolve(&mut u.expr, step, range),
            Expr::Binary(b) => {
                resolve(&mut b.lhs, step, range)?;
                resolve(&mut b.rhs, step, range)
            }
            Expr::Aggregate(a) => {
                resolve(&mut a.expr, step, range)?;
                match a.param.as_deref_mut() {
                    Some(p) => resolve(p, step, range),
                    None => Ok(()),
                }
            }
            Expr::Call(c) => c.args.iter_mut().try_for_each(|a| resolve(a, step, range)),
            Expr::Subquery(s) => resolve(&mut s.expr, step, range),
            Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) => Ok(()),
        }
    }
    if !dynamic(expr) {
        return Ok(None);
    }
    let mut e = expr.clone();
    resolve(&mut e, step as f64 / 1000.0, range as f64 / 1000.0)?;
    Ok(Some(e))
}

/// A loaded series: labels and samples in time order.
#[derive(Debug, Clone)]
pub(super) struct RawSeries {
    pub labels: Labels,
    pub samples: Vec<(Timestamp, f64)>,
}

/// An instant vector at every step: the distinct label sets, and for each
/// step the (label set index, value) pairs present at that step.
#[derive(Debug, Clone, Default)]
pub(super) struct StepVec {
    pub labels: Vec<Labels>,
    pub steps: Vec<Vec<(u32, f64)>>,
}

/// A range vector: loaded series and how to window them at each step.
#[derive(Debug, Clone)]
pub(super) struct MatrixData {
    pub series: Vec<RawSeries>,
    pub range: i64,
    pub offset: i64,
    pub at: Option<AtModifier>,
}

/// The result of evaluating a node over all steps.
#[derive(Debug, Clone)]
pub(super) enum Eval {
    Scalar(Vec<f64>),
    String(String),
    Vector(StepVec),
    Matrix(MatrixData),
}

/// Builds a `StepVec` from per-step outputs, merging equal label sets into
/// one series. Two outputs with the same labels at one step are an error,
/// as in Prometheus.
pub(super) struct VecBuilder {
    index: HashMap<Labels, u32>,
    last_step: Vec<usize>,
    out: StepVec,
}

impl VecBuilder {
    pub fn new(n_steps: usize) -> VecBuilder {
        VecBuilder {
            index: HashMap::new(),
            last_step: Vec::new(),
            out: StepVec { labels: Vec::new(), steps: vec![Vec::new(); n_steps] },
        }
    }

    pub fn push(&mut self, step: usize, labels: Labels, v: f64) -> Result<(), EvalError> {
        let idx = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                let i = self.out.labels.len() as u32;
                self.out.labels.push(labels.clone());
                self.last_step.push(usize::MAX);
                self.index.insert(labels, i);
                i
            }
        };
        if self.last_step[idx as usize] == step {
            return Err(EvalError::Execution("vector cannot contain metrics with the same labelset".into()));
        }
        self.last_step[idx as usize] = step;
        self.out.steps[step].push((idx, v));
        Ok(())
    }

    /// The index of `labels` as an output series, adding it if new. With
    /// `push_index`, callers that map many inputs to fixed outputs hash
    /// each label set once instead of once per step.
    pub fn intern(&mut self, labels: Labels) -> u32 {
        match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                let i = self.out.labels.len() as u32;
                self.out.labels.push(labels.clone());
                self.last_step.push(usize::MAX);
                self.index.insert(labels, i);
                i
            }
        }
    }

    /// Adds a value for an interned series. The caller guarantees that no
    /// other input maps to `idx` (so no duplicate check is needed).
    pub fn push_index(&mut self, step: usize, idx: u32, v: f64) {
        self.out.steps[step].push((idx, v));
    }

    pub fn finish(self) -> StepVec {
        self.out
    }
}

/// Per-series `(t - range, t]` windows over loaded samples, moved forward
/// step by step.
pub(super) struct Windows {
    lo: Vec<usize>,
    hi: Vec<usize>,
}

impl Windows {
    pub fn new(n: usize) -> Windows {
        Windows { lo: vec![0; n], hi: vec![0; n] }
    }

    /// Moves every window to end at `te`. `te` must not decrease between
    /// calls.
    pub fn advance(&mut self, series: &[RawSeries], te: Timestamp, range: i64) {
        for (j, s) in series.iter().enumerate() {
            let samples = &s.samples;
            while self.hi[j] < samples.len() && samples[self.hi[j]].0 <= te {
                self.hi[j] += 1;
            }
            while self.lo[j] < self.hi[j] && samples[self.lo[j]].0 <= te.saturating_sub(range) {
                self.lo[j] += 1;
            }
        }
    }

    /// Index of the first sample of series `j`'s window.
    pub fn start(&self, j: usize) -> usize {
        self.lo[j]
    }

    pub fn get<'s>(&self, series: &'s [RawSeries], j: usize) -> &'s [(Timestamp, f64)] {
        &series[j].samples[self.lo[j]..self.hi[j]]
    }
}

/// A query's deadline and cancel flag.
struct Control {
    deadline: Option<std::time::Instant>,
    cancel: Option<Arc<AtomicBool>>,
}

impl Control {
    fn check(&mut self) -> Result<(), EvalError> {
        if let Some(c) = &self.cancel {
            if c.load(Ordering::Relaxed) {
                return Err(EvalError::Canceled);
            }
        }
        match self.deadline {
            Some(d) if std::time::Instant::now() >= d => Err(EvalError::Timeout),
            _ => Ok(()),
        }
    }
}

pub(super) struct Evaluator<'a> {
    querier: Box<dyn Querier + 'a>,
    /// The current evaluation grid (a subquery evaluates its inner
    /// expression on its own grid).
    pub start: Timestamp,
    pub end: Timestamp,
    pub step: i64,
    query_start: Timestamp,
    query_end: Timestamp,
    lookback: i64,
    default_subquery_step: i64,
    max_samples: usize,
    loaded: usize,
    stats: QueryStats,
    ctl: Control,
    warnings: Vec<String>,
    infos: Vec<String>,
    /// The query text, for annotation positions.
    pub query: String,
}

/// The widest time range any selector in `e` reads, for a query over
/// `[start, end]`.
fn time_range(
    e: &Expr,
    start: Timestamp,
    end: Timestamp,
    q: (Timestamp, Timestamp),
    lookback: i64,
) -> (i64, i64) {
    let at_time = |at: Option<AtModifier>| match at {
        Some(AtModifier::Timestamp(t)) => Some(t),
        Some(AtModifier::Start) => Some(q.0),
        Some(AtModifier::End) => Some(q.1),
        None => None,
    };
    let span = |at: Option<AtModifier>, offset: i64| match at_time(at) {
        Some(t) => (t.saturating_sub(offset), t.saturating_sub(offset)),
        None => (start.saturating_sub(offset), end.saturating_sub(offset)),
    };
    let union = |a: (i64, i64), b: (i64, i64)| (a.0.min(b.0), a.1.max(b.1));
    let empty = (i64::MAX, i64::MIN);
    match e {
        Expr::Number(_) | Expr::String(_) => empty,
        Expr::VectorSelector(vs) => {
            let (s, e) = span(vs.at, vs.original_offset);
            (s.saturating_sub(lookback), e)
        }
        Expr::MatrixSelector(m) => {
            let (s, e) = span(m.vs.at, m.vs.original_offset);
            (s.saturating_sub(m.range), e)
        }
        Expr::Subquery(sq) => {
            let (s, e) = span(sq.at, sq.original_offset);
            time_range(&sq.expr, s.saturating_sub(sq.range), e, q, lookback)
        }
        Expr::Call(c) => {
            c.args.iter().fold(empty, |acc, a| union(acc, time_range(a, start, end, q, lookback)))
        }
        Expr::Aggregate(a) => {
            let r = time_range(&a.expr, start, end, q, lookback);
            match &a.param {
                Some(p) => union(r, time_range(p, start, end, q, lookback)),
                None => r,
            }
        }
        Expr::Binary(b) => {
            union(time_range(&b.lhs, start, end, q, lookback), time_range(&b.rhs, start, end, q, lookback))
        }
        Expr::Unary(u) => time_range(&u.expr, start, end, q, lookback),
        Expr::Paren(p) => time_range(&p.expr, start, end, q, lookback),
    }
}

impl<'a> Evaluator<'a> {
    fn new(
        opts: &EngineOptions,
        storage: &'a dyn Queryable,
        expr: &Expr,
        start: Timestamp,
        end: Timestamp,
        step: i64,
        ctl: Option<&QueryControl>,
    ) -> Result<Evaluator<'a>, EvalError> {
        let (mint, maxt) = time_range(expr, start, end, (start, end), opts.lookback_delta);
        let (mint, maxt) = if mint > maxt { (start, end) } else { (mint, maxt) };
        let querier = storage.querier(mint, maxt)?;
        Ok(Evaluator {
            querier,
            start,
            end,
            step: step.max(1),
            query_start: start,
            query_end: end,
            lookback: opts.lookback_delta,
            default_subquery_step: opts.default_subquery_step.max(1),
            max_samples: opts.max_samples,
            loaded: 0,
            stats: QueryStats::default(),
            ctl: Control {
                deadline: match ctl {
                    Some(c) => c.deadline,
                    None => opts.timeout.and_then(|t| std::time::Instant::now().checked_add(t)),
                },
                cancel: ctl.and_then(|c| c.cancel.clone()),
            },
            warnings: Vec::new(),
            infos: Vec::new(),
            query: ctl.map(|c| c.query.clone()).unwrap_or_default(),
        })
    }

    fn into_result(mut self, value: Value) -> QueryResult {
        self.stats.peak_samples = self.loaded as u64;
        QueryResult { value, warnings: self.warnings, infos: self.infos, stats: self.stats }
    }

    /// Records an annotation (a warning, else an info) about the node at
    /// `pos`, as Prometheus 3 words it: `PromQL warning: <msg> (line:col)`.
    /// Each text is kept once, as in Prometheus's annotation set.
    pub fn annotate(&mut self, warning: bool, msg: String, pos: PosRange) {
        let kind = if warning { "PromQL warning" } else { "PromQL info" };
        let text = match start_pos(&self.query, pos.start) {
            Some(p) => format!("{kind}: {msg} ({p})"),
            None => format!("{kind}: {msg}"),
        };
        let list = if warning { &mut self.warnings } else { &mut self.infos };
        if !list.contains(&text) {
            list.push(text);
        }
    }

    /// Whether the query being evaluated is a range query (Prometheus:
    /// start != end).
    pub fn is_range_query(&self) -> bool {
        self.query_start != self.query_end
    }

    pub fn n_steps(&self) -> usize {
        if self.end < self.start {
            return 0;
        }
        // i128: `end - start` can exceed i64 for extreme `@` times.
        let n = (self.end as i128 - self.start as i128) / self.step as i128 + 1;
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Refuses evaluation grids with more steps than the sample limit:
    /// every node holds one entry per step.
    fn check_grid(&self) -> Result<(), EvalError> {
        if self.n_steps() > self.max_samples {
            return Err(EvalError::TooManySamples);
        }
        Ok(())
    }

    pub fn ts(&self, i: usize) -> Timestamp {
        self.start + i as i64 * self.step
    }

    /// The time a selector or subquery with these modifiers is evaluated
    /// at, for step `i`.
    pub fn sel_time(&self, at: Option<AtModifier>, offset: i64, i: usize) -> Timestamp {
        let base = match at {
            Some(AtModifier::Timestamp(t)) => t,
            Some(AtModifier::Start) => self.query_start,
            Some(AtModifier::End) => self.query_end,
            None => self.ts(i),
        };
        base.saturating_sub(offset)
    }

    /// Fails once the query's deadline has passed; called per node, per
    /// loaded series and per step of the longer loops.
    pub fn check_deadline(&mut self) -> Result<(), EvalError> {
        self.ctl.check()
    }

    /// Counts samples or points held in memory against the limit.
    pub fn account(&mut self, n: usize) -> Result<(), EvalError> {
        self.loaded = self.loaded.saturating_add(n);
        if self.loaded > self.max_samples {
            return Err(EvalError::TooManySamples);
        }
        Ok(())
    }

    fn select(
        &mut self,
        matchers: &[Matcher],
        mint: Timestamp,
        maxt: Timestamp,
        keep_stale: bool,
        range: i64,
    ) -> Result<Vec<RawSeries>, EvalError> {
        let hints = SelectHints { start: mint, end: maxt, step: self.step, range, func: None, limit: 0 };
        // Sorted by labels: Prometheus's selectors observably yield series
        // in label order (its head sorts them too), and results, ties in
        // topk/limitk and the pair a many-to-many error names follow it.
        let set = self.querier.select(true, &hints, matchers)?;
        let mut out = Vec::new();
        let mut loaded = 0;
        let mut last_len = 0;
        for s in set {
            self.ctl.check()?;
            let s = s?;
            let mut it = s.samples;
            // Series of one selection usually hold similar sample counts:
            // sizing by the previous one avoids regrowing (and copying)
            // the buffer.
            let mut samples = Vec::with_capacity(last_len);
            if it.seek(mint) {
                loop {
                    let (t, v) = it.at();
                    if t > maxt {
                        break;
                    }
                    if keep_stale || !is_stale_nan(v) {
                        samples.push((t, v));
                    }
                    if !it.next() {
                        break;
                    }
                }
            }
            if let Some(e) = it.err() {
                return Err(e.into());
            }
            loaded += samples.len();
            last_len = samples.len();
            if !samples.is_empty() {
                out.push(RawSeries { labels: s.labels, samples });
            }
        }
        self.stats.total_queryable_samples += loaded as u64;
        self.account(loaded)?;
        Ok(out)
    }

    /// An instant vector selector at every step. With `timestamps`, the
    /// value is the sample's timestamp in seconds (for `timestamp()`).
    pub fn eval_vector_selector(
        &mut self,
        vs: &VectorSelector,
        timestamps: bool,
    ) -> Result<StepVec, EvalError> {
        let n = self.n_steps();
        if n == 0 {
            return Ok(StepVec::default());
        }
        let first = self.sel_time(vs.at, vs.original_offset, 0);
        let last = self.sel_time(vs.at, vs.original_offset, n - 1);
        let series = self.select(&vs.matchers, first.saturating_sub(self.lookback) + 1, last, true, 0)?;
        let mut out = StepVec { labels: Vec::with_capacity(series.len()), steps: vec![Vec::new(); n] };
        let mut points = 0;
        for (j, s) in series.iter().enumerate() {
            self.check_deadline()?;
            out.labels.push(s.labels.clone());
            let mut ptr = 0;
            for i in 0..n {
                let te = self.sel_time(vs.at, vs.original_offset, i);
                while ptr < s.samples.len() && s.samples[ptr].0 <= te {
                    ptr += 1;
                }
                if ptr == 0 {
                    continue;
                }
                let (t, v) = s.samples[ptr - 1];
                if t <= te.saturating_sub(self.lookback) || is_stale_nan(v) {
                    continue;
                }
                out.steps[i].push((j as u32, if timestamps { t as f64 / 1000.0 } else { v }));
                points += 1;
            }
        }
        self.account(points)?;
        Ok(out)
    }

    fn eval_matrix_selector(&mut self, m: &MatrixSelector) -> Result<MatrixData, EvalError> {
        let n = self.n_steps().max(1);
        let first = self.sel_time(m.vs.at, m.vs.original_offset, 0);
        let last = self.sel_time(m.vs.at, m.vs.original_offset, n - 1);
        let series = self.select(&m.vs.matchers, first.saturating_sub(m.range) + 1, last, false, m.range)?;
        Ok(MatrixData { series, range: m.range, offset: m.vs.original_offset, at: m.vs.at })
    }

    fn eval_subquery(&mut self, sq: &SubqueryExpr) -> Result<MatrixData, EvalError> {
        let step = if sq.step > 0 { sq.step } else { self.default_subquery_step };
        let (outer_start, outer_end) = match sq.at {
            Some(_) => {
                let t = self.sel_time(sq.at, 0, 0);
                (t, t)
            }
            // The last step of the parent grid (which passed `check_grid`).
            None => (self.start, self.ts(self.n_steps().saturating_sub(1))),
        };
        let from = outer_start.saturating_sub(sq.original_offset).saturating_sub(sq.range);
        let mut inner_start = step * (from / step);
        if inner_start <= from {
            inner_start = inner_start.saturating_add(step);
        }
        let inner_end = outer_end.saturating_sub(sq.original_offset);
        let saved = (self.start, self.end, self.step);
        self.start = inner_start;
        self.end = inner_end;
        self.step = step;
        let res = self.check_grid().and_then(|()| self.eval(&sq.expr));
        let times: Vec<Timestamp> = (0..self.n_steps()).map(|i| self.ts(i)).collect();
        (self.start, self.end, self.step) = saved;
        let series = match res? {
            Eval::Vector(sv) => {
                let mut series: Vec<RawSeries> =
                    sv.labels.iter().map(|l| RawSeries { labels: l.clone(), samples: Vec::new() }).collect();
                for (i, step) in sv.steps.iter().enumerate() {
                    for &(j, v) in step {
                        series[j as usize].samples.push((times[i], v));
                    }
                }
                series.retain(|s| !s.samples.is_empty());
                series
            }
            _ => return Err(EvalError::Execution("subquery is only allowed on instant vector".into())),
        };
        Ok(MatrixData { series, range: sq.range, offset: sq.original_offset, at: sq.at })
    }

    pub fn eval(&mut self, e: &Expr) -> Result<Eval, EvalError> {
        self.check_deadline()?;
        let n = self.n_steps();
        Ok(match e {
            Expr::Number(num) => Eval::Scalar(vec![num.val; n]),
            Expr::String(s) => Eval::String(s.val.clone()),
            Expr::Paren(p) => self.eval(&p.expr)?,
            Expr::VectorSelector(vs) => Eval::Vector(self.eval_vector_selector(vs, false)?),
            Expr::MatrixSelector(m) => Eval::Matrix(self.eval_matrix_selector(m)?),
            Expr::Subquery(sq) => Eval::Matrix(self.eval_subquery(sq)?),
            Expr::Unary(u) => match self.eval(&u.expr)? {
                v if u.op == UnaryOp::Add => v,
                Eval::Scalar(v) => Eval::Scalar(v.into_iter().map(|x| -x).collect()),
                Eval::Vector(sv) => Eval::Vector(map_vector(sv, true, |x| Some(-x))?),
                other => other,
            },
            Expr::Binary(b) => super::binary::eval_binary(self, b)?,
            Expr::Aggregate(a) => super::aggregate::eval_aggregate(self, a)?,
            Expr::Call(c) => super::functions::eval_call(self, c)?,
        })
    }

    /// Evaluates an expression that type checking guarantees to be an
    /// instant vector.
    pub fn eval_vector(&mut self, e: &Expr) -> Result<StepVec, EvalError> {
        match self.eval(e)? {
            Eval::Vector(v) => Ok(v),
            _ => Err(EvalError::Execution("expected instant vector".into())),
        }
    }

    /// Evaluates an expression that type checking guarantees to be a
    /// scalar: one value per step.
    pub fn eval_scalar(&mut self, e: &Expr) -> Result<Vec<f64>, EvalError> {
        match self.eval(e)? {
            Eval::Scalar(v) => Ok(v),
            _ => Err(EvalError::Execution("expected scalar".into())),
        }
    }
}

/// Prometheus's `PositionRange.StartPosInput`: `line:col` of byte `pos`
/// in the query, both 1-based; `None` without a query text.
fn start_pos(query: &str, pos: usize) -> Option<String> {
    if query.is_empty() || pos > query.len() {
        return None;
    }
    let before = query.get(..pos)?;
    let line = 1 + before.matches('\n').count();
    let col = pos as i64 - before.rfind('\n').map_or(-1, |i| i as i64);
    Some(format!("{line}:{col}"))
}

/// Formats a float like Go's `%g` (shortest representation; exponent
/// form for very large or small magnitudes, `+Inf`/`-Inf`/`NaN`).
pub(super) fn go_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf".into() } else { "-Inf".into() };
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e21).contains(&a) {
        // Rust prints `1e21` / `1.5e-7`; Go prints `1e+21` / `1.5e-07`.
        let s = format!("{v:e}");
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    format!("{v}")
}

/// Applies `f` to every value (dropping samples where it returns `None`),
/// optionally dropping the metric name.
pub(super) fn map_vector(
    sv: StepVec,
    drop_name: bool,
    mut f: impl FnMut(f64) -> Option<f64>,
) -> Result<StepVec, EvalError> {
    if !drop_name {
        let steps = sv
            .steps
            .into_iter()
            .map(|step| step.into_iter().filter_map(|(j, v)| f(v).map(|v| (j, v))).collect())
            .collect();
        return Ok(StepVec { labels: sv.labels, steps });
    }
    let labels: Vec<Labels> = sv.labels.iter().map(drop_metric_name).collect();
    let mut b = VecBuilder::new(sv.steps.len());
    for (i, step) in sv.steps.into_iter().enumerate() {
        for (j, v) in step {
            if let Some(v) = f(v) {
                b.push(i, labels[j as usize].clone(), v)?;
            }
        }
    }
    Ok(b.finish())
}

pub(super) fn drop_metric_name(l: &Labels) -> Labels {
    if l.has(METRIC_NAME) {
        l.without_metric_name()
    } else {
        l.clone()
    }
}
