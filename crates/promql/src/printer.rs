//! The canonical single-line form of an expression, as Prometheus's
//! `String()` methods print it (used by `/api/v1/format_query` for short
//! queries, rule files and error messages).

use std::fmt::{self, Write};

use ember_model::{names::is_valid_legacy_label_name, Matcher, METRIC_NAME};

use crate::ast::*;
use crate::quote::go_quote;

/// Prometheus's `model.Duration` formatting: years and weeks only when they
/// divide the duration exactly (`90d`, not `12w6d`), `0s` for zero.
pub(crate) fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    let mut rest = ms.unsigned_abs();
    if ms < 0 {
        out.push('-');
    }
    const UNITS: [(&str, u64, bool); 7] = [
        ("y", 365 * 24 * 3600 * 1000, true),
        ("w", 7 * 24 * 3600 * 1000, true),
        ("d", 24 * 3600 * 1000, false),
        ("h", 3600 * 1000, false),
        ("m", 60 * 1000, false),
        ("s", 1000, false),
        ("ms", 1, false),
    ];
    for (unit, mult, exact) in UNITS {
        if exact && !rest.is_multiple_of(mult) {
            continue;
        }
        let n = rest / mult;
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
            rest -= n * mult;
        }
    }
    out
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)`: shortest round-trip digits,
/// never an exponent; `+Inf`, `-Inf`, `NaN`.
pub(crate) fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v}")
    }
}

fn write_labels(out: &mut String, labels: &[String]) {
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        if is_valid_legacy_label_name(l) {
            out.push_str(l);
        } else {
            out.push_str(&go_quote(l));
        }
    }
}

/// `labels.Matcher.String()`: the name quoted only when it is not a legacy
/// label name, the value always quoted Go-style.
pub(crate) fn matcher_string(m: &Matcher) -> String {
    let mut s = String::new();
    if is_valid_legacy_label_name(&m.name) {
        s.push_str(&m.name);
    } else {
        s.push_str(&go_quote(&m.name));
    }
    s.push_str(m.op.as_str());
    s.push_str(&go_quote(&m.value));
    s
}

fn at_string(at: Option<AtModifier>) -> String {
    match at {
        None => String::new(),
        Some(AtModifier::Timestamp(ms)) => format!(" @ {:.3}", ms as f64 / 1000.0),
        Some(AtModifier::Start) => " @ start()".to_owned(),
        Some(AtModifier::End) => " @ end()".to_owned(),
    }
}

fn offset_string(ms: i64) -> String {
    match ms {
        0 => String::new(),
        ms if ms > 0 => format!(" offset {}", format_duration_ms(ms)),
        ms => format!(" offset -{}", format_duration_ms(ms.saturating_neg())),
    }
}

impl VectorSelector {
    /// The selector without `@` and `offset`.
    fn selector_string(&self) -> String {
        let mut parts: Vec<String> = self
            .matchers
            .iter()
            .filter(|m| {
                !(m.name == METRIC_NAME
                    && m.op == ember_model::MatchOp::Equal
                    && m.value == self.name
                    && !m.value.is_empty())
            })
            .map(matcher_string)
            .collect();
        parts.sort();
        let mut s = self.name.clone();
        if !parts.is_empty() {
            s.push('{');
            s.push_str(&parts.join(","));
            s.push('}');
        }
        s
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Number(n) => {
                if n.duration {
                    let ms = (n.val * 1000.0).round() as i64;
                    // `-0s` keeps the sign of a negated zero duration
                    // (Prometheus prints `0s` and loses it).
                    if n.val.is_sign_negative() {
                        write!(f, "-{}", format_duration_ms(ms.saturating_neg()))
                    } else {
                        f.write_str(&format_duration_ms(ms))
                    }
                } else {
                    f.write_str(&format_float(n.val))
                }
            }
            Expr::String(s) => f.write_str(&go_quote(&s.val)),
            Expr::VectorSelector(vs) => {
                write!(f, "{}{}{}", vs.selector_string(), at_string(vs.at), offset_string(vs.original_offset))
            }
            Expr::MatrixSelector(m) => write!(
                f,
                "{}[{}]{}{}",
                m.vs.selector_string(),
                match &m.range_expr {
                    Some(e) => e.to_string(),
                    None => format_duration_ms(m.range),
                },
                at_string(m.vs.at),
                offset_string(m.vs.original_offset)
            ),
            Expr::Subquery(s) => {
                let step = if s.step != 0 { format_duration_ms(s.step) } else { String::new() };
                write!(
                    f,
                    "{}[{}:{}]{}{}",
                    s.expr,
                    format_duration_ms(s.range),
                    step,
                    at_string(s.at),
                    offset_string(s.original_offset)
                )
            }
            Expr::Call(c) => {
                write!(f, "{}(", c.func.name)?;
                for (i, a) in c.args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
            Expr::Aggregate(a) => {
                let s = a.op_string();
                f.write_str(&s)?;
                f.write_str("(")?;
                if let Some(p) = &a.param {
                    write!(f, "{p}, ")?;
                }
                write!(f, "{})", a.expr)
            }
            Expr::Binary(b) => {
                // `+Inf ^ x` would parse back as `+(Inf ^ x)`: print the
                // infinity without its sign there so the tree survives a
                // round trip (Prometheus prints `+Inf` and loses it).
                let lhs = match &*b.lhs {
                    Expr::Number(n) if b.op == BinaryOp::Pow && !n.duration && n.val == f64::INFINITY => {
                        "Inf".to_owned()
                    }
                    e => e.to_string(),
                };
                write!(f, "{} {} {}", lhs, b.op_string(), b.rhs)
            }
            Expr::Unary(u) => {
                write!(f, "{}{}", if u.op == UnaryOp::Sub { "-" } else { "+" }, u.expr)
            }
            Expr::Paren(p) => write!(f, "({})", p.expr),
        }
    }
}

/// Longer lines are split by [`Expr::pretty`] (Prometheus's
/// `maxCharactersPerLine`).
const MAX_LINE: usize = 100;

fn indent(level: usize) -> String {
    "  ".repeat(level)
}

impl BinaryExpr {
    /// The operator with `bool` and its matching clauses, e.g.
    /// `* on (a) group_left (b)`.
    fn op_string(&self) -> String {
        let mut m = self.op.as_str().to_owned();
        if self.return_bool {
            m.push_str(" bool");
        }
        if let Some(vm) = &self.matching {
            let grouped = matches!(vm.card, Cardinality::ManyToOne | Cardinality::OneToMany);
            if !vm.matching_labels.is_empty() || vm.on || grouped {
                m.push_str(if vm.on { " on (" } else { " ignoring (" });
                write_labels(&mut m, &vm.matching_labels);
                m.push(')');
            }
            if grouped {
                m.push_str(if vm.card == Cardinality::ManyToOne {
                    " group_left ("
                } else {
                    " group_right ("
                });
                write_labels(&mut m, &vm.include);
                m.push(')');
            }
        }
        m
    }
}

impl AggregateExpr {
    /// `sum by (a) `: the operator and grouping, as in Prometheus's
    /// `ShortString`.
    fn op_string(&self) -> String {
        let mut s = self.op.as_str().to_owned();
        if self.without {
            s.push_str(" without (");
            write_labels(&mut s, &self.grouping);
            s.push_str(") ");
        } else if !self.grouping.is_empty() {
            s.push_str(" by (");
            write_labels(&mut s, &self.grouping);
            s.push_str(") ");
        }
        s
    }
}

impl Expr {
    /// The multi-line form of `/api/v1/format_query` (Prometheus's
    /// `Prettify`): nodes whose single-line form is longer than 100
    /// characters are split, children indented by two spaces.
    pub fn pretty(&self) -> String {
        self.pretty_at(0)
    }

    fn pretty_at(&self, level: usize) -> String {
        let flat = self.to_string();
        let ind = indent(level);
        if flat.len() <= MAX_LINE {
            // Prometheus prints short subqueries without indentation.
            return if matches!(self, Expr::Subquery(_)) { flat } else { format!("{ind}{flat}") };
        }
        match self {
            Expr::Aggregate(a) => {
                let mut s = format!("{ind}{}(\n", a.op_string());
                if let Some(p) = &a.param {
                    s.push_str(&p.pretty_at(level + 1));
                    s.push_str(",\n");
                }
                s.push_str(&a.expr.pretty_at(level + 1));
                s.push('\n');
                s.push_str(&ind);
                s.push(')');
                s
            }
            Expr::Binary(b) => {
                let flat_op = b.op_string();
                let lhs = match &*b.lhs {
                    // As in `Display`: `+Inf ^ x` would parse as `+(Inf ^ x)`.
                    Expr::Number(n) if b.op == BinaryOp::Pow && !n.duration && n.val == f64::INFINITY => {
                        format!("{}Inf", indent(level + 1))
                    }
                    e => e.pretty_at(level + 1),
                };
                format!("{lhs}\n{ind}{flat_op}\n{}", b.rhs.pretty_at(level + 1))
            }
            Expr::Call(c) => {
                let args: Vec<String> = c.args.iter().map(|a| a.pretty_at(level + 1)).collect();
                format!("{ind}{}(\n{}\n{ind})", c.func.name, args.join(",\n"))
            }
            Expr::Paren(p) => format!("{ind}(\n{}\n{ind})", p.expr.pretty_at(level + 1)),
            Expr::Subquery(s) => {
                let inner = s.expr.to_string();
                format!("{}{}", s.expr.pretty_at(level), &flat[inner.len()..])
            }
            Expr::Unary(u) => {
                let child = u.expr.pretty_at(level);
                format!("{ind}{}{}", if u.op == UnaryOp::Sub { "-" } else { "+" }, child.trim())
            }
            Expr::Number(_) | Expr::String(_) | Expr::VectorSelector(_) | Expr::MatrixSelector(_) => {
                format!("{ind}{flat}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_prometheus() {
        assert_eq!(format_duration_ms(0), "0s");
        assert_eq!(format_duration_ms(90 * 86_400_000), "90d");
        assert_eq!(format_duration_ms(14 * 86_400_000), "2w");
        assert_eq!(format_duration_ms(365 * 86_400_000), "1y");
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(1_500), "1s500ms");
        assert_eq!(format_duration_ms(-300_000), "-5m");
    }

    #[test]
    fn floats_like_go() {
        assert_eq!(format_float(1.0), "1");
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(1e21), "1000000000000000000000");
        assert_eq!(format_float(1e-7), "0.0000001");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(-0.0), "-0");
    }
}
