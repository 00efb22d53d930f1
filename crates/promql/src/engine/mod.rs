//! PromQL evaluation over `ember_model::Queryable`.
//!
//! Instant and range queries share one evaluator: a query is a list of
//! evaluation steps (one for an instant query). Every selector selects its
//! series once for the whole time range and loads their samples into
//! memory; each node then produces its result for all steps at once, and
//! per-step windows over the loaded samples are found by pointers that only
//! move forward as the steps advance (as Prometheus's `rangeEval`).
//!
//! Semantics follow Prometheus 3: the lookback window of an instant
//! selector is `(t - lookback, t]`, a range selector's window is
//! `(t - range, t]`, staleness markers end a series, `offset` and `@`
//! shift the evaluation time of the selector or subquery they follow.

mod aggregate;
mod binary;
mod eval;
mod functions;

use ember_model::{Labels, StorageError, Timestamp};

pub use eval::{Engine, EngineOptions};

/// A sample of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub metric: Labels,
    pub t: Timestamp,
    pub v: f64,
}

/// A series of a range vector (matrix).
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub metric: Labels,
    pub points: Vec<(Timestamp, f64)>,
}

/// Deadline and cancellation of one query, checked regularly during
/// selection and evaluation.
#[derive(Debug, Clone, Default)]
pub struct QueryControl {
    /// The query fails with `EvalError::Timeout` once this has passed.
    pub deadline: Option<std::time::Instant>,
    /// The query fails with `EvalError::Canceled` once this is set.
    pub cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// The query text the expression was parsed from: annotations give
    /// positions in it as `line:col`.
    pub query: String,
}

/// A query's value with the annotations its evaluation produced (texts as
/// Prometheus 3's API shows them, e.g. `PromQL info: ... (1:6)`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub value: Value,
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
    pub stats: QueryStats,
}

/// What a query cost (the API's `stats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryStats {
    /// Samples read from storage.
    pub total_queryable_samples: u64,
    /// Samples and result points held in memory at the end of evaluation
    /// (ember keeps a query's data until it finishes, so this is its peak).
    pub peak_samples: u64,
    /// Opening the querier and setting up evaluation.
    pub query_preparation: std::time::Duration,
    /// Evaluating the expression.
    pub inner_eval: std::time::Duration,
    /// Sorting a range query's result.
    pub result_sort: std::time::Duration,
}

/// A query result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Timestamp, f64),
    String(Timestamp, String),
    Vector(Vec<InstantSample>),
    Matrix(Vec<RangeSeries>),
}

impl Value {
    /// The API's `resultType`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(..) => "scalar",
            Value::String(..) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// Why a query failed during evaluation (the API's `execution` errors,
/// except `TooManySamples`, which Prometheus also reports as execution).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("query processing would load too many samples into memory in query execution")]
    TooManySamples,
    /// The query ran longer than `EngineOptions::timeout` (the API's
    /// `timeout` error).
    #[error("query timed out in expression evaluation")]
    Timeout,
    /// `QueryControl::cancel` was set (the API's `canceled` error).
    #[error("query was canceled in expression evaluation")]
    Canceled,
    /// Errors with Prometheus's wording, e.g. many-to-many matching.
    #[error("{0}")]
    Execution(String),
}
