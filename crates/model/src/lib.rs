//! ember-model: the vocabulary shared by every other ember crate.
//!
//! Labels and label sets, matchers, samples and timestamps, the staleness
//! marker, metric metadata, duration and time text, and the storage traits
//! that the TSDB implements and PromQL, scraping and the HTTP API consume.
//! No I/O lives here.

pub mod labels;
pub mod matcher;
pub mod memory;
pub mod metadata;
pub mod names;
pub mod sample;
pub mod storage;
pub mod time;

pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{matches_all, FastRegex, MatchOp, Matcher, RegexError};
pub use metadata::{Metadata, MetricType};
pub use names::NameValidation;
pub use sample::{
    format_text_value, is_stale_nan, stale_nan, Sample, Timestamp, NORMAL_NAN_BITS, STALE_NAN_BITS,
};
pub use storage::{
    AppendError, Appendable, Appender, CommitStats, LabelHints, Querier, Queryable, SampleIterator,
    SelectHints, Series, SeriesRef, SeriesSet, Storage, StorageError, VecSampleIterator, VecSeriesSet,
};
