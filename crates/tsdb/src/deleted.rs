//! Deleted time ranges (tombstones) as queries apply them: closed intervals
//! `[mint, maxt]` per series, kept sorted and merged, and a sample iterator
//! that skips the samples they cover.
//!
//! Blocks keep their tombstones in the `tombstones` file
//! ([`crate::block::tombstones`]); the head keeps them in memory and in the
//! WAL (tombstones records). Both are read through the helpers here.

use ember_model::{SampleIterator, StorageError, Timestamp};

/// Sorted, merged, closed intervals of deleted time.
pub type Intervals = Vec<(Timestamp, Timestamp)>;

/// Adds `[mint, maxt]` to `ivs`, keeping them sorted and merged.
pub fn add_interval(ivs: &mut Intervals, mint: Timestamp, maxt: Timestamp) {
    ivs.push((mint, maxt));
    crate::block::merge_intervals(ivs);
}

/// Whether `t` is deleted.
pub fn covers(ivs: &[(Timestamp, Timestamp)], t: Timestamp) -> bool {
    ivs.iter().any(|&(a, b)| a <= t && t <= b)
}

/// Whether all of `[mint, maxt]` is deleted (intervals are merged, so one
/// interval must hold it).
pub fn is_subrange(ivs: &[(Timestamp, Timestamp)], mint: Timestamp, maxt: Timestamp) -> bool {
    ivs.iter().any(|&(a, b)| a <= mint && maxt <= b)
}

/// Whether any of `[mint, maxt]` is deleted.
pub fn overlaps(ivs: &[(Timestamp, Timestamp)], mint: Timestamp, maxt: Timestamp) -> bool {
    ivs.iter().any(|&(a, b)| a <= maxt && mint <= b)
}

/// Drops what lies before `mint` (Prometheus's `TruncateBefore`):
/// intervals ending before it go, one straddling it starts at it.
pub fn truncate_before(ivs: &mut Intervals, mint: Timestamp) {
    ivs.retain(|&(_, b)| b >= mint);
    for iv in ivs.iter_mut() {
        iv.0 = iv.0.max(mint);
    }
}

/// Wraps a sample iterator, hiding the samples inside deleted intervals.
pub struct DeletedFilter<I> {
    inner: I,
    deleted: Intervals,
}

impl<I> std::fmt::Debug for DeletedFilter<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeletedFilter").field("deleted", &self.deleted).finish_non_exhaustive()
    }
}

impl<I: SampleIterator> DeletedFilter<I> {
    pub fn new(inner: I, deleted: Intervals) -> DeletedFilter<I> {
        DeletedFilter { inner, deleted }
    }

    /// Moves past deleted samples from the current position.
    fn settle(&mut self) -> bool {
        while covers(&self.deleted, self.inner.at().0) {
            if !self.inner.next() {
                return false;
            }
        }
        true
    }
}

impl<I: SampleIterator> SampleIterator for DeletedFilter<I> {
    fn next(&mut self) -> bool {
        self.inner.next() && self.settle()
    }
    fn seek(&mut self, t: Timestamp) -> bool {
        self.inner.seek(t) && self.settle()
    }
    fn at(&self) -> (Timestamp, f64) {
        self.inner.at()
    }
    fn started(&self) -> bool {
        self.inner.started()
    }
    fn err(&self) -> Option<StorageError> {
        self.inner.err()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::{Sample, VecSampleIterator};

    fn collect(mut it: impl SampleIterator) -> Vec<i64> {
        let mut v = vec![];
        while it.next() {
            v.push(it.at().0);
        }
        v
    }

    #[test]
    fn intervals() {
        let mut ivs = Intervals::new();
        add_interval(&mut ivs, 10, 20);
        add_interval(&mut ivs, 21, 30);
        add_interval(&mut ivs, 50, 60);
        assert_eq!(ivs, vec![(10, 30), (50, 60)], "adjacent intervals merge");
        assert!(covers(&ivs, 10) && covers(&ivs, 30) && !covers(&ivs, 31));
        assert!(is_subrange(&ivs, 12, 29) && !is_subrange(&ivs, 25, 55));
        assert!(overlaps(&ivs, 25, 55) && !overlaps(&ivs, 31, 49));
        truncate_before(&mut ivs, 55);
        assert_eq!(ivs, vec![(55, 60)]);
    }

    #[test]
    fn filter_skips_deleted_samples_in_next_and_seek() {
        let samples: Vec<Sample> = (0..10).map(|i| Sample { t: i * 10, v: i as f64 }).collect();
        let it = DeletedFilter::new(VecSampleIterator::new(samples.clone()), vec![(0, 15), (40, 60)]);
        assert_eq!(collect(it), vec![20, 30, 70, 80, 90]);
        let mut it = DeletedFilter::new(VecSampleIterator::new(samples.clone()), vec![(40, 60)]);
        assert!(it.seek(45));
        assert_eq!(it.at().0, 70);
        let mut it = DeletedFilter::new(VecSampleIterator::new(samples), vec![(80, 100)]);
        assert!(!it.seek(75), "everything from the seek on is deleted");
    }
}
