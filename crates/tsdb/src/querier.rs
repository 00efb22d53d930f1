//! Reading across the head and the blocks as one storage: series from
//! every source are merged by labels, and a series present in several
//! sources (a block and the head, or overlapping blocks) is read through
//! one iterator that merges by timestamp and drops duplicates.

use ember_model::{
    LabelHints, Labels, Matcher, Querier, SampleIterator, SelectHints, Series, SeriesSet, StorageError,
    Timestamp,
};

/// A querier over several sources (blocks in time order, then the head).
pub struct MergeQuerier<'a> {
    sources: Vec<Box<dyn Querier + 'a>>,
}

impl std::fmt::Debug for MergeQuerier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeQuerier").field("sources", &self.sources.len()).finish()
    }
}

impl<'a> MergeQuerier<'a> {
    pub fn new(sources: Vec<Box<dyn Querier + 'a>>) -> MergeQuerier<'a> {
        MergeQuerier { sources }
    }
}

/// Merges sorted, de-duplicated string lists.
fn union_sorted(lists: Vec<Vec<String>>, limit: usize) -> Vec<String> {
    let mut all: Vec<String> = lists.into_iter().flatten().collect();
    all.sort_unstable();
    all.dedup();
    if limit > 0 {
        all.truncate(limit);
    }
    all
}

impl Querier for MergeQuerier<'_> {
    fn select(
        &self,
        sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + '_>, StorageError> {
        if self.sources.len() == 1 {
            return self.sources[0].select(sorted, hints, matchers);
        }
        // Each source gives sorted series; the limit applies to the union.
        let inner = SelectHints { limit: 0, ..hints.clone() };
        let mut all: Vec<(usize, Series)> = Vec::new();
        for (i, q) in self.sources.iter().enumerate() {
            for s in q.select(true, &inner, matchers)? {
                all.push((i, s?));
            }
        }
        // Stable: equal label sets keep source order (older data first).
        all.sort_by(|a, b| a.1.labels.cmp(&b.1.labels).then(a.0.cmp(&b.0)));
        let mut out: Vec<Series> = Vec::with_capacity(all.len());
        let mut group: Vec<Box<dyn SampleIterator>> = Vec::new();
        let mut group_labels: Option<Labels> = None;
        let flush = |out: &mut Vec<Series>,
                     labels: Option<Labels>,
                     group: &mut Vec<Box<dyn SampleIterator>>| {
            if let Some(labels) = labels {
                let samples: Box<dyn SampleIterator> = if group.len() == 1 {
                    group.pop().unwrap_or_else(|| Box::new(ember_model::VecSampleIterator::new(Vec::new())))
                } else {
                    Box::new(MergeSampleIterator::new(std::mem::take(group)))
                };
                group.clear();
                out.push(Series { labels, samples });
            }
        };
        for (_, s) in all {
            if group_labels.as_ref() != Some(&s.labels) {
                flush(&mut out, group_labels.take(), &mut group);
                group_labels = Some(s.labels);
            }
            group.push(s.samples);
        }
        flush(&mut out, group_labels.take(), &mut group);
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(Box::new(ember_model::VecSeriesSet::new(out)))
    }

    fn label_values(
        &self,
        name: &str,
        hints: &LabelHints,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        let lists = self
            .sources
            .iter()
            .map(|q| q.label_values(name, hints, matchers))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(union_sorted(lists, hints.limit))
    }

    fn label_names(&self, hints: &LabelHints, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let lists =
            self.sources.iter().map(|q| q.label_names(hints, matchers)).collect::<Result<Vec<_>, _>>()?;
        Ok(union_sorted(lists, hints.limit))
    }
}

/// Merges sample iterators by timestamp. When several have a sample at the
/// same timestamp, the first iterator's (the oldest source's) wins.
pub struct MergeSampleIterator {
    its: Vec<Box<dyn SampleIterator>>,
    /// Whether each iterator is positioned on a sample.
    valid: Vec<bool>,
    /// Index of the iterator holding the current sample.
    cur: Option<usize>,
    initialised: bool,
}

impl std::fmt::Debug for MergeSampleIterator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeSampleIterator").field("sources", &self.its.len()).finish_non_exhaustive()
    }
}

impl MergeSampleIterator {
    pub fn new(its: Vec<Box<dyn SampleIterator>>) -> MergeSampleIterator {
        let n = its.len();
        MergeSampleIterator { its, valid: vec![false; n], cur: None, initialised: false }
    }

    fn pick(&mut self) -> bool {
        let mut best: Option<(usize, Timestamp)> = None;
        for (i, it) in self.its.iter().enumerate() {
            if self.valid[i] {
                let t = it.at().0;
                if best.is_none_or(|(_, bt)| t < bt) {
                    best = Some((i, t));
                }
            }
        }
        self.cur = best.map(|(i, _)| i);
        self.cur.is_some()
    }
}

impl SampleIterator for MergeSampleIterator {
    fn next(&mut self) -> bool {
        if !self.initialised {
            self.initialised = true;
            for (i, it) in self.its.iter_mut().enumerate() {
                self.valid[i] = it.next();
            }
            return self.pick();
        }
        let Some(c) = self.cur else { return false };
        let t = self.its[c].at().0;
        // Step every iterator sitting on this timestamp: duplicates go.
        for (i, it) in self.its.iter_mut().enumerate() {
            if self.valid[i] && it.at().0 == t {
                self.valid[i] = it.next();
            }
        }
        self.pick()
    }

    fn seek(&mut self, t: Timestamp) -> bool {
        if let Some(c) = self.cur {
            if self.its[c].at().0 >= t {
                return true;
            }
        }
        let first = !self.initialised;
        self.initialised = true;
        for (i, it) in self.its.iter_mut().enumerate() {
            if first || self.valid[i] {
                self.valid[i] = it.seek(t);
            }
        }
        self.pick()
    }

    fn at(&self) -> (Timestamp, f64) {
        self.cur.map_or((0, 0.0), |c| self.its[c].at())
    }

    fn started(&self) -> bool {
        self.cur.is_some()
    }

    fn err(&self) -> Option<StorageError> {
        self.its.iter().find_map(|it| it.err())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::{Sample, VecSampleIterator};

    fn it(v: &[(i64, f64)]) -> Box<dyn SampleIterator> {
        Box::new(VecSampleIterator::new(v.iter().map(|&(t, v)| Sample::new(t, v)).collect::<Vec<_>>()))
    }

    fn drain(mut m: MergeSampleIterator) -> Vec<(i64, f64)> {
        let mut out = vec![];
        while m.next() {
            out.push(m.at());
        }
        out
    }

    #[test]
    fn merges_and_dedupes() {
        let m = MergeSampleIterator::new(vec![
            it(&[(1, 1.0), (3, 3.0), (5, 5.0)]),
            it(&[(2, 2.0), (3, 9.0), (6, 6.0)]),
        ]);
        assert_eq!(drain(m), vec![(1, 1.0), (2, 2.0), (3, 3.0), (5, 5.0), (6, 6.0)]);
        let m = MergeSampleIterator::new(vec![it(&[]), it(&[(2, 2.0)])]);
        assert_eq!(drain(m), vec![(2, 2.0)]);
    }

    #[test]
    fn seek_then_next() {
        let mut m = MergeSampleIterator::new(vec![it(&[(1, 1.0), (10, 10.0)]), it(&[(4, 4.0), (8, 8.0)])]);
        assert!(m.seek(5));
        assert_eq!(m.at(), (8, 8.0));
        assert!(m.seek(2), "seeking backwards stays");
        assert_eq!(m.at(), (8, 8.0));
        assert!(m.next());
        assert_eq!(m.at(), (10, 10.0));
        assert!(!m.next());
        assert!(!m.seek(0));
    }
}
