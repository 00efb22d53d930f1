//! ember-promql: the PromQL language.
//!
//! [`parse`] turns a query into an [`Expr`] tree, checking types the way
//! Prometheus 3 does, and reports errors with Prometheus's wording and
//! `line:col` positions. `Display` on [`Expr`] prints the canonical
//! single-line form (Prometheus's `String()`), which parses back to the same
//! tree.
//!
//! [`engine::Engine`] evaluates instant and range queries over any
//! `ember_model::Queryable`.
//!
//! The grammar is Prometheus 3's default (non-experimental) grammar.
//! Experimental syntax (`anchored`/`smoothed`, `fill` modifiers) is
//! rejected with Prometheus's "not enabled" errors; experimental functions
//! and the `limitk`/`limit_ratio` aggregations are accepted only with
//! [`ParseOptions::experimental_functions`], duration expressions
//! (`[1m * 2]`, `offset (10m / 2)`, `[step()]`) only with
//! [`ParseOptions::duration_expressions`] (constant ones are folded at
//! parse time; `step()`/`range()` are supported in range selectors only).
//!
//! `tests/promqltest.rs` runs the conformance corpus `testdata/promql`
//! (promqltest format) against the engine.

pub mod ast;
pub mod engine;
pub mod error;
pub mod functions;
pub mod lexer;
pub mod parser;
mod printer;
mod quote;

pub use ast::{
    AggregateExpr, AggregateOp, AtModifier, BinaryExpr, BinaryOp, Call, Cardinality, DurationExpr, Expr,
    MatrixSelector, NumberLiteral, ParenExpr, PosRange, StringLiteral, SubqueryExpr, UnaryExpr, UnaryOp,
    ValueType, VectorMatching, VectorSelector,
};
pub use error::ParseError;
pub use functions::{get_function, Function, FUNCTIONS};
pub use parser::{parse, parse_metric_selector, parse_with_options, ParseOptions};
pub use quote::go_quote;
