//! A simple in-memory storage implementing the storage traits. It is the
//! reference the PromQL engine and the HTTP API are tested against, so it
//! favours obviousness over speed.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::storage::{
    AppendError, Appendable, Appender, CommitStats, LabelHints, Querier, Queryable, SelectHints, Series,
    SeriesRef, SeriesSet, StorageError, VecSampleIterator, VecSeriesSet,
};
use crate::{matches_all, Labels, Matcher, Metadata, Sample, Timestamp};

#[derive(Debug, Default)]
struct Inner {
    /// Series by labels, each with its samples in timestamp order.
    series: BTreeMap<Labels, Vec<Sample>>,
    /// Reference i+1 is `refs[i]`.
    refs: Vec<Labels>,
    metadata: BTreeMap<String, Metadata>,
}

/// In-memory storage: series sorted by labels, samples in vectors.
#[derive(Debug, Default, Clone)]
pub struct MemStorage {
    inner: Arc<RwLock<Inner>>,
}

impl MemStorage {
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Appends directly, outside any batch. Samples must arrive in
    /// timestamp order per series, as through an appender.
    pub fn add(&self, labels: &Labels, t: Timestamp, v: f64) -> Result<(), AppendError> {
        let mut a = self.appender();
        a.append(None, labels, t, v)?;
        a.commit().map_err(|e| AppendError::Storage(e.to_string()))?;
        Ok(())
    }

    /// Removes every series.
    pub fn clear(&self) {
        let mut g = self.inner.write().unwrap_or_else(|e| e.into_inner());
        *g = Inner::default();
    }

    /// Metadata recorded for a metric family.
    pub fn metadata(&self, metric: &str) -> Option<Metadata> {
        let g = self.inner.read().unwrap_or_else(|e| e.into_inner());
        g.metadata.get(metric).cloned()
    }

    pub fn num_series(&self) -> usize {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).series.len()
    }
}

/// A pending batch.
struct MemAppender {
    storage: MemStorage,
    pending: Vec<(Labels, Sample)>,
    meta: Vec<(String, Metadata)>,
}

impl Appender for MemAppender {
    fn append(
        &mut self,
        series: Option<SeriesRef>,
        labels: &Labels,
        t: Timestamp,
        v: f64,
    ) -> Result<SeriesRef, AppendError> {
        let g = self.storage.inner.read().unwrap_or_else(|e| e.into_inner());
        let labels = match series.and_then(|r| g.refs.get(r.get() as usize - 1)) {
            Some(l) => l.clone(),
            None => labels.clone(),
        };
        if labels.is_empty() {
            return Err(AppendError::InvalidLabels("empty label set".into()));
        }
        // Check against committed data and this batch, as a head would.
        let last = self
            .pending
            .iter()
            .rev()
            .find(|(l, _)| *l == labels)
            .map(|(_, s)| *s)
            .or_else(|| g.series.get(&labels).and_then(|s| s.last().copied()));
        if let Some(last) = last {
            if t < last.t {
                return Err(AppendError::OutOfOrder);
            }
            if t == last.t {
                if last.v.to_bits() != v.to_bits() {
                    return Err(AppendError::DuplicateTimestamp);
                }
                // An identical duplicate is silently ignored, as Prometheus does.
                let r = g.refs.iter().position(|l| *l == labels).map(|i| i as u64 + 1).unwrap_or(u64::MAX);
                return SeriesRef::new(r).ok_or(AppendError::UnknownRef);
            }
        }
        let r = g.refs.iter().position(|l| *l == labels).map(|i| i as u64 + 1);
        drop(g);
        let r = match r {
            Some(r) => r,
            None => {
                let mut w = self.storage.inner.write().unwrap_or_else(|e| e.into_inner());
                w.refs.push(labels.clone());
                w.refs.len() as u64
            }
        };
        self.pending.push((labels, Sample::new(t, v)));
        SeriesRef::new(r).ok_or(AppendError::UnknownRef)
    }

    fn update_metadata(
        &mut self,
        _series: Option<SeriesRef>,
        labels: &Labels,
        meta: &Metadata,
    ) -> Result<(), AppendError> {
        if let Some(n) = labels.metric_name() {
            self.meta.push((n.to_owned(), meta.clone()));
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<CommitStats, StorageError> {
        let mut g = self.storage.inner.write().unwrap_or_else(|e| e.into_inner());
        let mut stats = CommitStats::default();
        for (l, s) in self.pending.drain(..) {
            let e = g.series.entry(l).or_insert_with(|| {
                stats.series_created += 1;
                Vec::new()
            });
            e.push(s);
            stats.samples_appended += 1;
        }
        for (n, m) in self.meta.drain(..) {
            g.metadata.insert(n, m);
        }
        Ok(stats)
    }

    fn rollback(&mut self) {
        self.pending.clear();
        self.meta.clear();
    }
}

impl Appendable for MemStorage {
    fn appender(&self) -> Box<dyn Appender + '_> {
        Box::new(MemAppender { storage: self.clone(), pending: Vec::new(), meta: Vec::new() })
    }
}

struct MemQuerier {
    storage: MemStorage,
    mint: Timestamp,
    maxt: Timestamp,
}

impl MemQuerier {
    fn matching(&self, matchers: &[Matcher]) -> Vec<(Labels, Arc<[Sample]>)> {
        let g = self.storage.inner.read().unwrap_or_else(|e| e.into_inner());
        g.series
            .iter()
            .filter(|(l, _)| matches_all(matchers, l))
            .filter_map(|(l, s)| {
                let from = s.partition_point(|x| x.t < self.mint);
                let to = s.partition_point(|x| x.t <= self.maxt);
                (from < to).then(|| (l.clone(), Arc::from(&s[from..to])))
            })
            .collect()
    }
}

impl Querier for MemQuerier {
    fn select(
        &self,
        _sorted: bool,
        hints: &SelectHints,
        matchers: &[Matcher],
    ) -> Result<Box<dyn SeriesSet + '_>, StorageError> {
        // BTreeMap order is label order, so results are always sorted.
        let mut out: Vec<Series> = self
            .matching(matchers)
            .into_iter()
            .map(|(labels, s)| Series { labels, samples: Box::new(VecSampleIterator::new(s)) })
            .collect();
        if hints.limit > 0 {
            out.truncate(hints.limit);
        }
        Ok(Box::new(VecSeriesSet::new(out)))
    }

    fn label_values(
        &self,
        name: &str,
        hints: &LabelHints,
        matchers: &[Matcher],
    ) -> Result<Vec<String>, StorageError> {
        let mut v: Vec<String> =
            self.matching(matchers).iter().filter_map(|(l, _)| l.get(name).map(str::to_owned)).collect();
        v.sort();
        v.dedup();
        if hints.limit > 0 {
            v.truncate(hints.limit);
        }
        Ok(v)
    }

    fn label_names(&self, hints: &LabelHints, matchers: &[Matcher]) -> Result<Vec<String>, StorageError> {
        let mut v: Vec<String> = self
            .matching(matchers)
            .iter()
            .flat_map(|(l, _)| l.iter().map(|x| x.name.to_owned()).collect::<Vec<_>>())
            .collect();
        v.sort();
        v.dedup();
        if hints.limit > 0 {
            v.truncate(hints.limit);
        }
        Ok(v)
    }
}

impl Queryable for MemStorage {
    fn querier(&self, mint: Timestamp, maxt: Timestamp) -> Result<Box<dyn Querier + '_>, StorageError> {
        Ok(Box::new(MemQuerier { storage: self.clone(), mint, maxt }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{labels, MatchOp, SampleIterator};

    #[test]
    fn append_commit_select() {
        let s = MemStorage::new();
        let mut a = s.appender();
        let r = a.append(None, &labels!("__name__" => "x", "i" => "1"), 10, 1.0).unwrap();
        a.append(Some(r), &Labels::empty(), 20, 2.0).unwrap();
        assert_eq!(a.append(Some(r), &Labels::empty(), 15, 9.0), Err(AppendError::OutOfOrder));
        assert_eq!(a.append(Some(r), &Labels::empty(), 20, 3.0), Err(AppendError::DuplicateTimestamp));
        a.append(None, &labels!("__name__" => "x", "i" => "0"), 10, 5.0).unwrap();
        assert_eq!(s.num_series(), 0, "nothing visible before commit");
        let st = a.commit().unwrap();
        assert_eq!(st, CommitStats { samples_appended: 3, series_created: 2 });

        let q = s.querier(0, 15).unwrap();
        let set: Vec<Series> = q
            .select(true, &SelectHints::default(), &[Matcher::equal("__name__", "x")])
            .unwrap()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].labels.get("i"), Some("0"));
        let mut it = VecSampleIterator::new(vec![]);
        assert!(!it.next());
        let mut s1 = set.into_iter().nth(1).unwrap();
        assert!(s1.samples.next());
        assert_eq!(s1.samples.at(), (10, 1.0));
        assert!(!s1.samples.next(), "t=20 is outside the querier's range");

        let m = Matcher::new(MatchOp::RegexMatch, "i", "1|2").unwrap();
        assert_eq!(q.label_values("i", &LabelHints::default(), &[m]).unwrap(), vec!["1"]);
        assert_eq!(q.label_names(&LabelHints::default(), &[]).unwrap(), vec!["__name__", "i"]);
    }

    #[test]
    fn rollback_discards() {
        let s = MemStorage::new();
        let mut a = s.appender();
        a.append(None, &labels!("a" => "b"), 1, 1.0).unwrap();
        a.rollback();
        a.commit().unwrap();
        assert_eq!(s.num_series(), 0);
    }
}
