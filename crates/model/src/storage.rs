//! The storage traits: what the TSDB implements and what scraping, PromQL and
//! the HTTP API consume.
//!
//! Writing goes through an [`Appender`]: a batch of samples (one scrape, one
//! remote-write request) that becomes visible and durable together at
//! [`Appender::commit`]. Individual samples may be rejected (out of order,
//! duplicate, out of bounds) without failing the batch.
//!
//! Reading goes through a [`Queryable`], which opens a [`Querier`] over a time
//! range; `select` yields [`Series`], each with a [`SampleIterator`].

use std::num::NonZeroU64;

use crate::{Labels, Matcher, Metadata, Timestamp};

/// An opaque reference to a series inside one storage, returned by
/// [`Appender::append`] so later appends can skip the label lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeriesRef(pub NonZeroU64);

impl SeriesRef {
    pub fn new(v: u64) -> Option<SeriesRef> {
        NonZeroU64::new(v).map(SeriesRef)
    }
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

/// Why one sample was not appended. The messages are Prometheus's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendError {
    /// Older than the newest sample of its series.
    #[error("out of order sample")]
    OutOfOrder,
    /// Older than the head's lower bound (already persisted range).
    #[error("out of bounds")]
    OutOfBounds,
    /// Same timestamp as the newest sample, with a different value.
    #[error("duplicate sample for timestamp")]
    DuplicateTimestamp,
    /// The label set is not acceptable (empty, duplicate names, bad name).
    #[error("invalid labels: {0}")]
    InvalidLabels(String),
    /// The series reference is unknown to this storage.
    #[error("unknown series reference")]
    UnknownRef,
    /// Anything else (storage closed, I/O failure).
    #[error("{0}")]
    Storage(String),
}

impl AppendError {
    /// Rejections that are a property of the sample, reported and counted,
    /// as opposed to failures of the storage itself.
    pub fn is_sample_rejection(&self) -> bool {
        matches!(self, AppendError::OutOfOrder | AppendError::OutOfBounds | AppendError::DuplicateTimestamp)
    }
}

/// A storage-level failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Io(String),
    #[error("corruption: {0}")]
    Corruption(String),
    #[error("query canceled")]
    Canceled,
    #[error("{0}")]
    Other(String),
}

/// What a committed batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub samples_appended: u64,
    pub series_created: u64,
}

/// A batch of writes. Dropping an appender without committing rolls it back.
pub trait Appender: Send {
    /// Appends one float sample. `series` is a reference returned earlier
    /// for the same label set (the scrape cache keeps it); with `None`, or a
    /// reference the storage no longer knows, the labels are looked up.
    /// Returns the series reference on success.
    fn append(
        &mut self,
        series: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError>;

    /// Records metadata for the metric family of `labels`.
    fn update_metadata(
        &mut self,
        series: Option<SeriesRef>,
        labels: &Labels,
        meta: &Metadata,
    ) -> Result<(), AppendError> {
        let _ = (series, labels, meta);
        Ok(())
    }

    /// Makes the batch durable (per the storage's sync policy) and visible.
    fn commit(&mut self) -> Result<CommitStats, StorageError>;

    /// Discards the batch.
    fn rollback(&mut self);
}

/// Something that hands out appenders.
pub trait Appendable: Send + Sync {
    fn appender(&self) -> Box<dyn Appender + '_>;
}

/// Hints a query passes down so storage can avoid work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SelectHints {
    /// Inclusive time range the caller will read, in ms.
    pub start: Timestamp,
    pub end: Timestamp,
    /// Query step in ms (0 for instant queries).
    pub step: i64,
    /// Range of a range selector in ms, if any.
    pub range: i64,
    /// Name of the surrounding function, e.g. `rate`; `series` for
    /// metadata-only requests.
    pub func: Option<String>,
    /// Return at most this many series (0: no limit).
    pub limit: usize,
}

/// Hints for label-name/value lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelHints {
    /// Return at most this many values (0: no limit).
    pub limit: usize,
}

/// Iterates the samples of one series in timestamp order.
///
/// The iterator starts before the first sample: call [`next`](Self::next)
/// or [`seek`](Self::seek) before [`at`](Self::at).
pub trait SampleIterator: Send {
    /// Advances to the next sample. False when exhausted (or on error; see
    /// [`err`](Self::err)).
    fn next(&mut self) -> bool;

    /// Advances to the first sample with timestamp ≥ `t`. If the current
    /// sample already satisfies that, stays on it. False when exhausted.
    fn seek(&mut self, t: Timestamp) -> bool {
        if self.started() && self.at().0 >= t {
            return true;
        }
        while self.next() {
            if self.at().0 >= t {
                return true;
            }
        }
        false
    }

    /// The current sample. Only valid after `next`/`seek` returned true.
    fn at(&self) -> (Timestamp, f64);

    /// True once `next` or `seek` has been called and returned true at
    /// least once and the iterator is not exhausted.
    fn started(&self) -> bool;

    /// An error that ended iteration early, if any.
    fn err(&self) -> Option<StorageError> {
        None
    }
}

/// A series as a query sees it: labels plus its samples in range.
pub struct Series {
    pub labels: Labels,
    pub samples: Box<dyn SampleIterator>,
}

impl std::fmt::Debug for Series {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Series").field("labels", &self.labels).finish_non_exhaustive()
    }
}

/// The result of a select: series, sorted by labels when asked.
pub trait SeriesSet: Iterator<Item = Result<Series, StorageError>> + Send {
    /// Non-fatal problems met while selecting (shown as API warnings).
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A read view over a fixed time range.
pub trait Querier: Send + Sync {
    /// Series matching all `matchers` with samples in the querier's range.
    /// With `sorted`, series come in [`Labels`] order.
    fn select(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + '_>, StorageError>;

    /// Sorted unique values of label `name` among series matching
    /// `matchers` (all series if empty).
    fn label_values(
        &self,
        name: &str,
        hints: &LabelHints,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError>;

    /// Sorted unique label names among series matching `matchers`.
    fn label_names(&self, hints: &LabelHints, matchers: &[Matcher]) -> Result<Vec<String>, StorageError>;
}

/// Something that opens queriers.
pub trait Queryable: Send + Sync {
    /// A querier over `[mint, maxt]` (inclusive, ms).
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> Result<Box<dyn Querier + '_>, StorageError>;
}

/// A storage that is both written and read: what the server wires up.
pub trait Storage: Appendable + Queryable {}
impl<T: Appendable + Queryable> Storage for T {}

/// A series set over series already collected in memory.
#[derive(Debug)]
pub struct VecSeriesSet(std::vec::IntoIter<Series>);

impl VecSeriesSet {
    pub fn new(series: Vec<Series>) -> VecSeriesSet {
        VecSeriesSet(series.into_iter())
    }
}

impl Iterator for VecSeriesSet {
    type Item = Result<Series, StorageError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.0.next().map(Ok)
    }
}

impl SeriesSet for VecSeriesSet {}

/// Iterates a slice of samples; used by in-memory storages and tests.
#[derive(Debug, Clone)]
pub struct VecSampleIterator {
    samples: std::sync::Arc<[crate::Sample]>,
    /// Index of the current sample plus one; 0 means "before the first".
    pos: usize,
    end: usize,
}

impl VecSampleIterator {
    pub fn new(samples: impl Into<std::sync::Arc<[crate::Sample]>>) -> VecSampleIterator {
        let samples = samples.into();
        let end = samples.len();
        VecSampleIterator { samples, pos: 0, end }
    }

    /// Iterates only `samples[from..to]`.
    pub fn with_bounds(
        samples: std::sync::Arc<[crate::Sample]>,
        from: usize,
        to: usize,
    ) -> VecSampleIterator {
        VecSampleIterator { samples, pos: from, end: to }
    }
}

impl SampleIterator for VecSampleIterator {
    fn next(&mut self) -> bool {
        if self.pos < self.end {
            self.pos += 1;
            true
        } else {
            self.pos = self.end + 1;
            false
        }
    }

    fn seek(&mut self, t: Timestamp) -> bool {
        if self.pos > self.end {
            return false;
        }
        let cur = self.pos.saturating_sub(1);
        if self.pos > 0 && self.samples[cur].t >= t {
            return true;
        }
        let rest = &self.samples[cur..self.end];
        let i = rest.partition_point(|s| s.t < t);
        self.pos = cur + i + 1;
        if self.pos > self.end {
            self.pos = self.end + 1;
            return false;
        }
        true
    }

    fn at(&self) -> (Timestamp, f64) {
        let s = self.samples[self.pos - 1];
        (s.t, s.v)
    }

    fn started(&self) -> bool {
        self.pos > 0 && self.pos <= self.end
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Sample;

    #[test]
    fn vec_iterator_next_and_seek() {
        let s: Vec<Sample> = (0..10).map(|i| Sample::new(i * 10, i as f64)).collect();
        let mut it = VecSampleIterator::new(s.clone());
        assert!(!it.started());
        assert!(it.seek(25));
        assert_eq!(it.at(), (30, 3.0));
        assert!(it.seek(5), "seek backwards stays put");
        assert_eq!(it.at(), (30, 3.0));
        assert!(it.next());
        assert_eq!(it.at().0, 40);
        assert!(it.seek(90));
        assert_eq!(it.at().0, 90);
        assert!(!it.next());
        assert!(!it.seek(0), "exhausted stays exhausted");

        let mut it = VecSampleIterator::new(s.clone());
        assert!(!it.seek(91));
        let mut it = VecSampleIterator::new(s);
        let mut n = 0;
        while it.next() {
            n += 1;
        }
        assert_eq!(n, 10);
    }

    #[test]
    fn bounded_iterator() {
        let s: std::sync::Arc<[Sample]> = (0..10).map(|i| Sample::new(i, 0.0)).collect();
        let mut it = VecSampleIterator::with_bounds(s, 2, 5);
        let mut ts = vec![];
        while it.next() {
            ts.push(it.at().0);
        }
        assert_eq!(ts, vec![2, 3, 4]);
    }
}
