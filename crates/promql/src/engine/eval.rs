//! The evaluator: query setup, selectors, subqueries and the per-step
//! result representation shared by operators and functions.

use std::collections::HashMap;

use ember_model::{is_stale_nan, Labels, Matcher, Querier, Queryable, SelectHints, Timestamp, METRIC_NAME};

use super::{EvalError, InstantSample, RangeSeries, Value};
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
        let mut ev = Evaluator::new(&self.opts, storage, expr, ts, ts, 1)?;
        Ok(match ev.eval(expr)? {
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
        })
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
        let mut ev = Evaluator::new(&self.opts, storage, expr, start, end, step)?;
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
        out.sort_by(|a, b| a.metric.cmp(&b.metric));
        Ok(out)
    }
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

    pub fn get<'s>(&self, series: &'s [RawSeries], j: usize) -> &'s [(Timestamp, f64)] {
        &series[j].samples[self.lo[j]..self.hi[j]]
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
    deadline: Option<std::time::Instant>,
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
            deadline: opts.timeout.and_then(|t| std::time::Instant::now().checked_add(t)),
        })
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
    pub fn check_deadline(&self) -> Result<(), EvalError> {
        match self.deadline {
            Some(d) if std::time::Instant::now() >= d => Err(EvalError::Timeout),
            _ => Ok(()),
        }
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
        let set = self.querier.select(false, &hints, matchers)?;
        let mut out = Vec::new();
        let mut loaded = 0;
        for s in set {
            self.check_deadline()?;
            let s = s?;
            let mut it = s.samples;
            let mut samples = Vec::new();
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
            if !samples.is_empty() {
                out.push(RawSeries { labels: s.labels, samples });
            }
        }
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
