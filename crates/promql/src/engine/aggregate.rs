//! Aggregation operators, evaluated step by step.

use std::collections::HashMap;

use ember_model::{Labels, METRIC_NAME};

use super::eval::{go_float, Eval, Evaluator, VecBuilder};
use super::functions::{kahan_inc, quantile};
use super::EvalError;
use crate::ast::*;

/// Running state of one group at one step.
#[derive(Debug, Clone)]
struct Group {
    key: u32,
    count: f64,
    value: f64,
    comp: f64,
    mean: f64,
    values: Vec<(u32, f64)>,
}

pub(super) fn eval_aggregate(ev: &mut Evaluator<'_>, a: &AggregateExpr) -> Result<Eval, EvalError> {
    let v = ev.eval_vector(&a.expr)?;
    let n = v.steps.len();
    let mut scalar_param: Vec<f64> = Vec::new();
    let mut string_param = String::new();
    if let Some(p) = &a.param {
        match ev.eval(p)? {
            Eval::Scalar(s) => scalar_param = s,
            Eval::String(s) => string_param = s,
            _ => return Err(EvalError::Execution("invalid aggregation parameter".into())),
        }
    }
    if a.op == AggregateOp::CountValues && string_param.is_empty() {
        return Err(EvalError::Execution(format!("invalid label name {:?}", string_param)));
    }
    let param_pos = a.param.as_ref().map(|p| p.pos_range()).unwrap_or(a.pos);

    // The group key of every input series, computed once.
    let mut keys: Vec<Labels> = Vec::new();
    let mut key_index: HashMap<Labels, u32> = HashMap::new();
    let series_key: Vec<u32> = v
        .labels
        .iter()
        .map(|l| {
            let k = if a.without {
                let mut names: Vec<&str> = a.grouping.iter().map(String::as_str).collect();
                names.push(METRIC_NAME);
                l.drop_names(&names)
            } else {
                l.keep(&a.grouping)
            };
            *key_index.entry(k.clone()).or_insert_with(|| {
                keys.push(k);
                keys.len() as u32 - 1
            })
        })
        .collect();

    let mut out = VecBuilder::new(n);
    // Group index of each key at the current step (usize::MAX: none yet);
    // reset after each step for the keys used.
    let mut slot: Vec<usize> = vec![usize::MAX; keys.len()];
    // Ops whose output is one sample per group, labelled by the group key.
    let keyed = !matches!(
        a.op,
        AggregateOp::Topk
            | AggregateOp::Bottomk
            | AggregateOp::CountValues
            | AggregateOp::Limitk
            | AggregateOp::LimitRatio
    );
    let out_idx: Vec<u32> =
        if keyed { keys.iter().map(|k| out.intern(k.clone())).collect() } else { Vec::new() };
    for (i, step) in v.steps.iter().enumerate() {
        ev.check_deadline()?;
        for &(j, _) in step {
            slot[series_key[j as usize] as usize] = usize::MAX;
        }
        let mut groups: Vec<Group> = Vec::new();
        for &(j, x) in step {
            let key = series_key[j as usize];
            let gi = match slot[key as usize] {
                usize::MAX => {
                    groups.push(Group {
                        key,
                        count: 0.0,
                        value: x,
                        comp: 0.0,
                        mean: 0.0,
                        values: Vec::new(),
                    });
                    slot[key as usize] = groups.len() - 1;
                    groups.len() - 1
                }
                gi => gi,
            };
            let g = &mut groups[gi];
            let first = g.count == 0.0;
            g.count += 1.0;
            match a.op {
                AggregateOp::Sum | AggregateOp::Avg => {
                    if first {
                        g.value = x;
                    } else {
                        (g.value, g.comp) = kahan_inc(x, g.value, g.comp);
                    }
                }
                AggregateOp::Max => {
                    if g.value < x || g.value.is_nan() {
                        g.value = x;
                    }
                }
                AggregateOp::Min => {
                    if g.value > x || g.value.is_nan() {
                        g.value = x;
                    }
                }
                AggregateOp::Stddev | AggregateOp::Stdvar => {
                    if first {
                        g.value = 0.0;
                    }
                    let delta = x - g.mean;
                    g.mean += delta / g.count;
                    g.value += delta * (x - g.mean);
                }
                AggregateOp::Count | AggregateOp::Group => {}
                AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::Quantile
                | AggregateOp::CountValues
                | AggregateOp::Limitk
                | AggregateOp::LimitRatio => g.values.push((j, x)),
            }
        }
        let mut param = scalar_param.get(i).copied().unwrap_or(f64::NAN);
        if a.op == AggregateOp::Quantile && !(0.0..=1.0).contains(&param) {
            ev.annotate(
                true,
                format!("quantile value should be between 0 and 1, got {}", go_float(param)),
                param_pos,
            );
        }
        if a.op == AggregateOp::LimitRatio && !(-1.0..=1.0).contains(&param) {
            if param.is_nan() {
                return Err(EvalError::Execution(format!("Ratio value {} is NaN", go_float(param))));
            }
            let capped = param.clamp(-1.0, 1.0);
            ev.annotate(
                true,
                format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    go_float(param),
                    go_float(capped)
                ),
                param_pos,
            );
            param = capped;
        }
        if matches!(a.op, AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Limitk)
            && !(param >= i64::MIN as f64 && param <= i64::MAX as f64)
        {
            return Err(EvalError::Execution(format!("Scalar value {} overflows int64", go_float(param))));
        }
        for g in groups {
            let key = &keys[g.key as usize];
            let value = match a.op {
                AggregateOp::Sum => g.value + g.comp,
                AggregateOp::Avg => (g.value + g.comp) / g.count,
                AggregateOp::Count => g.count,
                AggregateOp::Group => 1.0,
                AggregateOp::Min | AggregateOp::Max => g.value,
                AggregateOp::Stdvar => g.value / g.count,
                AggregateOp::Stddev => (g.value / g.count).sqrt(),
                AggregateOp::Quantile => {
                    let mut vals: Vec<f64> = g.values.iter().map(|&(_, x)| x).collect();
                    quantile(param, &mut vals)
                }
                AggregateOp::Topk | AggregateOp::Bottomk => {
                    let k =
                        if param >= g.values.len() as f64 { g.values.len() } else { param.max(0.0) as usize };
                    let mut vals = g.values;
                    let top = a.op == AggregateOp::Topk;
                    // NaN sorts last for both directions.
                    vals.sort_by(|x, y| {
                        let (x, y) = (x.1, y.1);
                        match (x.is_nan(), y.is_nan()) {
                            (true, true) => std::cmp::Ordering::Equal,
                            (true, false) => std::cmp::Ordering::Greater,
                            (false, true) => std::cmp::Ordering::Less,
                            _ if top => y.total_cmp(&x),
                            _ => x.total_cmp(&y),
                        }
                    });
                    for &(j, x) in vals.iter().take(k) {
                        out.push(i, v.labels[j as usize].clone(), x)?;
                    }
                    continue;
                }
                AggregateOp::CountValues => {
                    let mut counts: Vec<(String, f64)> = Vec::new();
                    for &(_, x) in &g.values {
                        let s = crate::printer::format_float(x);
                        match counts.iter_mut().find(|(k, _)| *k == s) {
                            Some(c) => c.1 += 1.0,
                            None => counts.push((s, 1.0)),
                        }
                    }
                    for (s, c) in counts {
                        let mut b = key.builder();
                        b.set(&string_param, &s);
                        out.push(i, b.build(), c)?;
                    }
                    continue;
                }
                AggregateOp::Limitk => {
                    // The first k series of the group in input order.
                    let k =
                        if param >= g.values.len() as f64 { g.values.len() } else { param.max(0.0) as usize };
                    for &(j, x) in g.values.iter().take(k) {
                        out.push(i, v.labels[j as usize].clone(), x)?;
                    }
                    continue;
                }
                AggregateOp::LimitRatio => {
                    // A series is kept when its label hash, as a fraction of
                    // the hash space, is below r (r >= 0) or at least 1 + r
                    // (r < 0), so r and -(1 - r) partition any input and the
                    // choice is stable across steps.
                    for &(j, x) in &g.values {
                        let l = &v.labels[j as usize];
                        let offset = l.stable_hash() as f64 / u64::MAX as f64;
                        let keep = if param >= 0.0 { offset < param } else { offset >= 1.0 + param };
                        if keep {
                            out.push(i, l.clone(), x)?;
                        }
                    }
                    continue;
                }
            };
            // Group keys are distinct, so no duplicate check is needed.
            out.push_index(i, out_idx[g.key as usize], value);
        }
    }
    Ok(Eval::Vector(out.finish()))
}
