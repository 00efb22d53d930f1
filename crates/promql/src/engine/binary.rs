//! Binary operators: scalar/scalar, vector/scalar, vector/vector with
//! `on`/`ignoring`, `group_left`/`group_right`, `bool`, and the set
//! operators.

use std::collections::{HashMap, HashSet};

use ember_model::{Labels, METRIC_NAME};

use super::eval::{drop_metric_name, Eval, Evaluator, StepVec, VecBuilder};
use super::EvalError;
use crate::ast::*;

/// `(value, keep)`: comparisons keep the left value when true.
fn apply(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        // Go's math.Mod and Rust's `%` are both C's fmod.
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (l.atan2(r), true),
        BinaryOp::Eql => (l, l == r),
        BinaryOp::Neq => (l, l != r),
        BinaryOp::Gtr => (l, l > r),
        BinaryOp::Lss => (l, l < r),
        BinaryOp::Gte => (l, l >= r),
        BinaryOp::Lte => (l, l <= r),
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => (f64::NAN, false),
    }
}

/// Arithmetic drops the metric name; comparisons keep it unless `bool`.
fn drops_name(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Mod
            | BinaryOp::Pow
            | BinaryOp::Atan2
    )
}

pub(super) fn eval_binary(ev: &mut Evaluator<'_>, b: &BinaryExpr) -> Result<Eval, EvalError> {
    let lhs = ev.eval(&b.lhs)?;
    let rhs = ev.eval(&b.rhs)?;
    Ok(match (lhs, rhs) {
        (Eval::Scalar(l), Eval::Scalar(r)) => Eval::Scalar(
            l.iter()
                .zip(&r)
                .map(|(&l, &r)| {
                    let (v, keep) = apply(b.op, l, r);
                    if b.op.is_comparison() {
                        if keep {
                            1.0
                        } else {
                            0.0
                        }
                    } else {
                        v
                    }
                })
                .collect(),
        ),
        (Eval::Vector(v), Eval::Scalar(s)) => Eval::Vector(vector_scalar(b, v, &s, false)?),
        (Eval::Scalar(s), Eval::Vector(v)) => Eval::Vector(vector_scalar(b, v, &s, true)?),
        (Eval::Vector(l), Eval::Vector(r)) => {
            let default = VectorMatching {
                card: Cardinality::OneToOne,
                matching_labels: Vec::new(),
                on: false,
                include: Vec::new(),
            };
            let vm = b.matching.as_ref().unwrap_or(&default);
            Eval::Vector(match b.op {
                BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => set_op(b.op, vm, l, r)?,
                _ => vector_vector(b, vm, l, r)?,
            })
        }
        _ => {
            return Err(EvalError::Execution(
                "binary expression must contain only scalar and instant vector types".into(),
            ))
        }
    })
}

fn vector_scalar(b: &BinaryExpr, v: StepVec, s: &[f64], swap: bool) -> Result<StepVec, EvalError> {
    let drop = drops_name(b.op) || b.return_bool;
    let labels: Vec<Labels> =
        if drop { v.labels.iter().map(drop_metric_name).collect() } else { v.labels.clone() };
    let mut out = VecBuilder::new(v.steps.len());
    for (i, step) in v.steps.into_iter().enumerate() {
        let sv = s.get(i).copied().unwrap_or(f64::NAN);
        for (j, x) in step {
            let (l, r) = if swap { (sv, x) } else { (x, sv) };
            let (mut val, mut keep) = apply(b.op, l, r);
            // The vector's value is the result of a comparison even when
            // the scalar is on the left.
            if b.op.is_comparison() && swap {
                val = r;
            }
            if b.return_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            if keep {
                out.push(i, labels[j as usize].clone(), val)?;
            }
        }
    }
    Ok(out.finish())
}

/// The labels that decide which samples match.
fn signature(l: &Labels, vm: &VectorMatching) -> Labels {
    if vm.on {
        l.keep(&vm.matching_labels)
    } else {
        let mut names: Vec<&str> = vm.matching_labels.iter().map(String::as_str).collect();
        names.push(METRIC_NAME);
        l.drop_names(&names)
    }
}

fn set_op(op: BinaryOp, vm: &VectorMatching, l: StepVec, r: StepVec) -> Result<StepVec, EvalError> {
    let lsig: Vec<Labels> = l.labels.iter().map(|x| signature(x, vm)).collect();
    let rsig: Vec<Labels> = r.labels.iter().map(|x| signature(x, vm)).collect();
    let mut out = VecBuilder::new(l.steps.len());
    for (i, (ls, rs)) in l.steps.iter().zip(&r.steps).enumerate() {
        match op {
            BinaryOp::And | BinaryOp::Unless => {
                let right: HashSet<&Labels> = rs.iter().map(|&(j, _)| &rsig[j as usize]).collect();
                for &(j, v) in ls {
                    if right.contains(&lsig[j as usize]) == (op == BinaryOp::And) {
                        out.push(i, l.labels[j as usize].clone(), v)?;
                    }
                }
            }
            _ => {
                let left: HashSet<&Labels> = ls.iter().map(|&(j, _)| &lsig[j as usize]).collect();
                for &(j, v) in ls {
                    out.push(i, l.labels[j as usize].clone(), v)?;
                }
                for &(j, v) in rs {
                    if !left.contains(&rsig[j as usize]) {
                        out.push(i, r.labels[j as usize].clone(), v)?;
                    }
                }
            }
        }
    }
    Ok(out.finish())
}

/// Prometheus's `resultMetric`: `many` is the many side (the left one
/// unless `group_right`), `one` the other.
fn result_metric(many: &Labels, one: &Labels, op: BinaryOp, vm: &VectorMatching) -> Labels {
    let mut b = many.builder();
    if drops_name(op) {
        b.del(METRIC_NAME);
    }
    if vm.card == Cardinality::OneToOne {
        if vm.on {
            let names: Vec<String> = b.names().map(str::to_owned).collect();
            for n in names {
                if !vm.matching_labels.contains(&n) {
                    b.del(&n);
                }
            }
        } else {
            for n in &vm.matching_labels {
                b.del(n);
            }
        }
    }
    for n in &vm.include {
        match one.get(n) {
            Some(v) if !v.is_empty() => {
                b.set(n, v);
            }
            _ => {
                b.del(n);
            }
        }
    }
    b.build()
}

fn vector_vector(b: &BinaryExpr, vm: &VectorMatching, l: StepVec, r: StepVec) -> Result<StepVec, EvalError> {
    let swapped = vm.card == Cardinality::OneToMany;
    let (many, one) = if swapped { (&r, &l) } else { (&l, &r) };
    let many_sig: Vec<Labels> = many.labels.iter().map(|x| signature(x, vm)).collect();
    let one_sig: Vec<Labels> = one.labels.iter().map(|x| signature(x, vm)).collect();
    let mut out = VecBuilder::new(l.steps.len());
    for i in 0..l.steps.len() {
        // Nothing can match: skip, without checking either side.
        if many.steps[i].is_empty() || one.steps[i].is_empty() {
            continue;
        }
        let mut one_side: HashMap<&Labels, (u32, f64)> = HashMap::new();
        for &(j, v) in &one.steps[i] {
            let sig = &one_sig[j as usize];
            if let Some(&(dup, _)) = one_side.get(sig) {
                let matched = if vm.on {
                    one.labels[j as usize].keep(&vm.matching_labels)
                } else {
                    signature(&one.labels[j as usize], vm)
                };
                return Err(EvalError::Execution(format!(
                    "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    matched,
                    if swapped { "left" } else { "right" },
                    one.labels[j as usize],
                    one.labels[dup as usize],
                )));
            }
            one_side.insert(sig, (j, v));
        }
        let mut matched: HashMap<&Labels, HashSet<Labels>> = HashMap::new();
        let mut seen: HashSet<&Labels> = HashSet::new();
        for &(j, mv) in &many.steps[i] {
            let sig = &many_sig[j as usize];
            let Some(&(oj, ov)) = one_side.get(sig) else { continue };
            let (lv, rv) = if swapped { (ov, mv) } else { (mv, ov) };
            let (mut val, mut keep) = apply(b.op, lv, rv);
            if b.return_bool {
                val = if keep { 1.0 } else { 0.0 };
                keep = true;
            }
            // Since Prometheus 3.9 a one-to-one match is checked for
            // uniqueness before a comparison filters the sample out.
            if vm.card == Cardinality::OneToOne && !seen.insert(sig) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
            if !keep {
                continue;
            }
            let mut metric = result_metric(&many.labels[j as usize], &one.labels[oj as usize], b.op, vm);
            if b.return_bool {
                metric = drop_metric_name(&metric);
            }
            match matched.get_mut(sig) {
                Some(inserted) => {
                    if vm.card == Cardinality::OneToOne {
                        return Err(EvalError::Execution(
                            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                                .into(),
                        ));
                    }
                    if !inserted.insert(metric.clone()) {
                        return Err(EvalError::Execution(
                            "multiple matches for labels: grouping labels must ensure unique matches".into(),
                        ));
                    }
                }
                None => {
                    let mut set = HashSet::new();
                    set.insert(metric.clone());
                    matched.insert(sig, set);
                }
            }
            out.push(i, metric, val)?;
        }
    }
    Ok(out.finish())
}
