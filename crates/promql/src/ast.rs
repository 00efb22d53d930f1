//! The PromQL syntax tree.
//!
//! Durations and timestamps are integer milliseconds. Positions are byte
//! ranges in the query; they are carried for error messages but are not
//! part of a node's identity: two trees that differ only in positions are
//! equal (so a tree printed and parsed again compares equal to the
//! original).

use ember_model::Matcher;

use crate::functions::Function;

/// The type a PromQL expression evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    None,
    Vector,
    Scalar,
    Matrix,
    String,
}

impl ValueType {
    /// Prometheus's `ValueType` string: `vector`, `scalar`, `matrix`,
    /// `string`, `none` (also the API's `resultType`).
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::None => "none",
            ValueType::Vector => "vector",
            ValueType::Scalar => "scalar",
            ValueType::Matrix => "matrix",
            ValueType::String => "string",
        }
    }

    /// The documented name used in type errors: `instant vector`,
    /// `range vector`, `scalar`, `string`.
    pub fn documented(self) -> &'static str {
        match self {
            ValueType::Vector => "instant vector",
            ValueType::Matrix => "range vector",
            t => t.as_str(),
        }
    }
}

/// A byte range in the query. Always compares equal: see the module docs.
#[derive(Debug, Clone, Copy, Default, Eq)]
pub struct PosRange {
    pub start: usize,
    pub end: usize,
}

impl PosRange {
    pub fn new(start: usize, end: usize) -> PosRange {
        PosRange { start, end }
    }
}

impl PartialEq for PosRange {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// A PromQL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(NumberLiteral),
    String(StringLiteral),
    VectorSelector(VectorSelector),
    MatrixSelector(MatrixSelector),
    Subquery(SubqueryExpr),
    Call(Call),
    Aggregate(AggregateExpr),
    Binary(BinaryExpr),
    Unary(UnaryExpr),
    Paren(ParenExpr),
}

/// A number; `duration` is set when it was written as a duration (`5m`),
/// which only changes how it is printed. The value is in seconds.
#[derive(Debug, Clone)]
pub struct NumberLiteral {
    pub val: f64,
    pub duration: bool,
    pub pos: PosRange,
}

impl PartialEq for NumberLiteral {
    /// Bit-equal, or both NaN (the sign of a NaN is not printed).
    fn eq(&self, o: &Self) -> bool {
        (self.val.to_bits() == o.val.to_bits() || (self.val.is_nan() && o.val.is_nan()))
            && self.duration == o.duration
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StringLiteral {
    pub val: String,
    pub pos: PosRange,
}

/// `@ <timestamp>`, `@ start()`, `@ end()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtModifier {
    /// Milliseconds since the epoch.
    Timestamp(i64),
    Start,
    End,
}

/// `name{matchers} @ t offset d`.
#[derive(Debug, Clone)]
pub struct VectorSelector {
    /// The metric name written before the braces, or empty.
    pub name: String,
    /// All matchers; when `name` is set, the last one is `__name__="name"`.
    pub matchers: Vec<Matcher>,
    /// The offset as written, in milliseconds (negative for `offset -5m`).
    pub original_offset: i64,
    pub at: Option<AtModifier>,
    /// Set for the label-only selector argument of `info()`, which may
    /// match everything.
    pub bypass_empty_matcher_check: bool,
    pub pos: PosRange,
}

impl PartialEq for VectorSelector {
    /// Matchers compare as a set: the printer sorts them.
    fn eq(&self, o: &Self) -> bool {
        fn key(m: &Matcher) -> (&str, &str, &str) {
            (m.name.as_str(), m.op.as_str(), m.value.as_str())
        }
        let mut a: Vec<_> = self.matchers.iter().map(key).collect();
        let mut b: Vec<_> = o.matchers.iter().map(key).collect();
        a.sort_unstable();
        b.sort_unstable();
        self.name == o.name && a == b && self.original_offset == o.original_offset && self.at == o.at
    }
}

/// `selector[range]`.
#[derive(Debug, Clone)]
pub struct MatrixSelector {
    pub vs: VectorSelector,
    /// Milliseconds.
    pub range: i64,
    /// A duration expression that depends on the query (`[step() * 2]`),
    /// resolved into `range` when the query runs. Constant duration
    /// expressions are folded into `range` by the parser.
    pub range_expr: Option<DurationExpr>,
    pub end_pos: usize,
}

/// A duration expression (Prometheus 3's duration arithmetic), in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum DurationExpr {
    Seconds(f64),
    /// `step()`: the query's step (0 for an instant query).
    Step,
    /// `range()`: the query's time range (end - start).
    Range,
    Neg(Box<DurationExpr>),
    Binary(BinaryOp, Box<DurationExpr>, Box<DurationExpr>),
    MinOf(Box<DurationExpr>, Box<DurationExpr>),
    MaxOf(Box<DurationExpr>, Box<DurationExpr>),
}

impl DurationExpr {
    /// The value in seconds for a query with this step and range
    /// (seconds). Division and modulo by zero give `None`.
    pub fn eval(&self, step: f64, range: f64) -> Option<f64> {
        Some(match self {
            DurationExpr::Seconds(v) => *v,
            DurationExpr::Step => step,
            DurationExpr::Range => range,
            DurationExpr::Neg(e) => -e.eval(step, range)?,
            DurationExpr::MinOf(a, b) => a.eval(step, range)?.min(b.eval(step, range)?),
            DurationExpr::MaxOf(a, b) => a.eval(step, range)?.max(b.eval(step, range)?),
            DurationExpr::Binary(op, a, b) => {
                let (a, b) = (a.eval(step, range)?, b.eval(step, range)?);
                match op {
                    BinaryOp::Add => a + b,
                    BinaryOp::Sub => a - b,
                    BinaryOp::Mul => a * b,
                    BinaryOp::Div if b == 0.0 => return None,
                    BinaryOp::Div => a / b,
                    BinaryOp::Mod if b == 0.0 => return None,
                    BinaryOp::Mod => a % b,
                    BinaryOp::Pow => a.powf(b),
                    _ => return None,
                }
            }
        })
    }

    /// Whether the value depends on the query (`step()`, `range()`).
    pub fn is_dynamic(&self) -> bool {
        match self {
            DurationExpr::Seconds(_) => false,
            DurationExpr::Step | DurationExpr::Range => true,
            DurationExpr::Neg(e) => e.is_dynamic(),
            DurationExpr::Binary(_, a, b) | DurationExpr::MinOf(a, b) | DurationExpr::MaxOf(a, b) => {
                a.is_dynamic() || b.is_dynamic()
            }
        }
    }
}

impl std::fmt::Display for DurationExpr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Seconds as a plain number: reads back to the same value.
            DurationExpr::Seconds(v) => f.write_str(&crate::printer::format_float(*v)),
            DurationExpr::Step => f.write_str("step()"),
            DurationExpr::Range => f.write_str("range()"),
            DurationExpr::Neg(e) => write!(f, "-{e}"),
            DurationExpr::Binary(op, a, b) => write!(f, "({a} {} {b})", op.as_str()),
            DurationExpr::MinOf(a, b) => write!(f, "min_of({a}, {b})"),
            DurationExpr::MaxOf(a, b) => write!(f, "max_of({a}, {b})"),
        }
    }
}

/// `expr[range:step]`; `step` 0 means the default evaluation interval.
#[derive(Debug, Clone)]
pub struct SubqueryExpr {
    pub expr: Box<Expr>,
    pub range: i64,
    pub step: i64,
    pub original_offset: i64,
    pub at: Option<AtModifier>,
    pub end_pos: usize,
}

impl PartialEq for MatrixSelector {
    /// `end_pos` is a position: not compared.
    fn eq(&self, o: &Self) -> bool {
        self.vs == o.vs && self.range == o.range && self.range_expr == o.range_expr
    }
}

impl PartialEq for SubqueryExpr {
    /// `end_pos` is a position: not compared.
    fn eq(&self, o: &Self) -> bool {
        self.expr == o.expr
            && self.range == o.range
            && self.step == o.step
            && self.original_offset == o.original_offset
            && self.at == o.at
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub func: &'static Function,
    pub args: Vec<Expr>,
    pub pos: PosRange,
}

/// Aggregation operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggregateOp {
    Sum,
    Avg,
    Count,
    Min,
    Max,
    Group,
    Stddev,
    Stdvar,
    Topk,
    Bottomk,
    CountValues,
    Quantile,
    Limitk,
    LimitRatio,
}

impl AggregateOp {
    pub fn as_str(self) -> &'static str {
        match self {
            AggregateOp::Sum => "sum",
            AggregateOp::Avg => "avg",
            AggregateOp::Count => "count",
            AggregateOp::Min => "min",
            AggregateOp::Max => "max",
            AggregateOp::Group => "group",
            AggregateOp::Stddev => "stddev",
            AggregateOp::Stdvar => "stdvar",
            AggregateOp::Topk => "topk",
            AggregateOp::Bottomk => "bottomk",
            AggregateOp::CountValues => "count_values",
            AggregateOp::Quantile => "quantile",
            AggregateOp::Limitk => "limitk",
            AggregateOp::LimitRatio => "limit_ratio",
        }
    }

    /// Takes a parameter before the vector (`topk(5, x)`).
    pub fn has_param(self) -> bool {
        matches!(
            self,
            AggregateOp::Topk
                | AggregateOp::Bottomk
                | AggregateOp::CountValues
                | AggregateOp::Quantile
                | AggregateOp::Limitk
                | AggregateOp::LimitRatio
        )
    }

    pub fn is_experimental(self) -> bool {
        matches!(self, AggregateOp::Limitk | AggregateOp::LimitRatio)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AggregateExpr {
    pub op: AggregateOp,
    pub expr: Box<Expr>,
    pub param: Option<Box<Expr>>,
    pub grouping: Vec<String>,
    pub without: bool,
    pub pos: PosRange,
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Pow,
    Atan2,
    Eql,
    Neq,
    Lte,
    Lss,
    Gte,
    Gtr,
    And,
    Or,
    Unless,
}

impl BinaryOp {
    pub fn as_str(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Pow => "^",
            BinaryOp::Atan2 => "atan2",
            BinaryOp::Eql => "==",
            BinaryOp::Neq => "!=",
            BinaryOp::Lte => "<=",
            BinaryOp::Lss => "<",
            BinaryOp::Gte => ">=",
            BinaryOp::Gtr => ">",
            BinaryOp::And => "and",
            BinaryOp::Or => "or",
            BinaryOp::Unless => "unless",
        }
    }

    /// Binding strength, higher binds tighter: `or` 1, `and unless` 2,
    /// comparisons 3, `+ -` 4, `* / % atan2` 5, `^` 6.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And | BinaryOp::Unless => 2,
            BinaryOp::Eql | BinaryOp::Neq | BinaryOp::Lte | BinaryOp::Lss | BinaryOp::Gte | BinaryOp::Gtr => {
                3
            }
            BinaryOp::Add | BinaryOp::Sub => 4,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod | BinaryOp::Atan2 => 5,
            BinaryOp::Pow => 6,
        }
    }

    pub fn is_right_associative(self) -> bool {
        self == BinaryOp::Pow
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eql | BinaryOp::Neq | BinaryOp::Lte | BinaryOp::Lss | BinaryOp::Gte | BinaryOp::Gtr
        )
    }

    pub fn is_set_operator(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or | BinaryOp::Unless)
    }
}

/// Matching cardinality of a vector binary operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cardinality {
    OneToOne,
    /// `group_left`
    ManyToOne,
    /// `group_right`
    OneToMany,
    /// Set operators.
    ManyToMany,
}

/// `on(...)`/`ignoring(...)` and `group_left(...)`/`group_right(...)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorMatching {
    pub card: Cardinality,
    /// The `on`/`ignoring` labels.
    pub matching_labels: Vec<String>,
    /// True for `on`, false for `ignoring` (or no clause).
    pub on: bool,
    /// Extra labels copied from the "one" side (`group_left(...)`).
    pub include: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BinaryExpr {
    pub op: BinaryOp,
    pub lhs: Box<Expr>,
    pub rhs: Box<Expr>,
    /// Present when both sides are instant vectors.
    pub matching: Option<VectorMatching>,
    pub return_bool: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Add,
    Sub,
}

#[derive(Debug, Clone)]
pub struct UnaryExpr {
    pub op: UnaryOp,
    pub expr: Box<Expr>,
    pub start: usize,
}

impl PartialEq for UnaryExpr {
    /// `start` is a position: not compared.
    fn eq(&self, o: &Self) -> bool {
        self.op == o.op && self.expr == o.expr
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParenExpr {
    pub expr: Box<Expr>,
    pub pos: PosRange,
}

impl Expr {
    /// The type the expression evaluates to.
    pub fn value_type(&self) -> ValueType {
        match self {
            Expr::Number(_) => ValueType::Scalar,
            Expr::String(_) => ValueType::String,
            Expr::VectorSelector(_) | Expr::Aggregate(_) => ValueType::Vector,
            Expr::MatrixSelector(_) | Expr::Subquery(_) => ValueType::Matrix,
            Expr::Call(c) => c.func.return_type,
            Expr::Binary(b) => {
                if b.lhs.value_type() == ValueType::Scalar && b.rhs.value_type() == ValueType::Scalar {
                    ValueType::Scalar
                } else {
                    ValueType::Vector
                }
            }
            Expr::Unary(u) => u.expr.value_type(),
            Expr::Paren(p) => p.expr.value_type(),
        }
    }

    /// The byte range of the expression in the query it was parsed from.
    pub fn pos_range(&self) -> PosRange {
        match self {
            Expr::Number(n) => n.pos,
            Expr::String(s) => s.pos,
            Expr::VectorSelector(v) => v.pos,
            Expr::MatrixSelector(m) => PosRange::new(m.vs.pos.start, m.end_pos),
            Expr::Subquery(s) => PosRange::new(s.expr.pos_range().start, s.end_pos),
            Expr::Call(c) => c.pos,
            Expr::Aggregate(a) => a.pos,
            Expr::Binary(b) => PosRange::new(b.lhs.pos_range().start, b.rhs.pos_range().end),
            Expr::Unary(u) => PosRange::new(u.start, u.expr.pos_range().end),
            Expr::Paren(p) => p.pos,
        }
    }
}
