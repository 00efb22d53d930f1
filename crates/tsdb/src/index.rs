//! The head's inverted index: label pair → series ids, as roaring bitmaps,
//! plus a bitmap of every series.
//!
//! Matchers are resolved the way Prometheus's `PostingsForMatchers` resolves
//! them: a matcher that does not match the empty string selects the series
//! whose value for the label matches; a matcher that matches the empty
//! string also selects every series lacking the label, which is computed as
//! "all series minus those whose value does not match". Matchers are
//! intersected.

use std::collections::{BTreeMap, HashMap};

use croaring::Bitmap64;
use ember_model::{Labels, MatchOp, Matcher};

/// Label name → (value → series ids). Values are kept sorted so label value
/// lookups and prefix regexes walk them in order.
#[derive(Debug, Default)]
pub struct MemPostings {
    by_name: HashMap<String, BTreeMap<String, Bitmap64>>,
    all: Bitmap64,
}

impl MemPostings {
    pub fn new() -> MemPostings {
        MemPostings::default()
    }

    /// Indexes a new series.
    pub fn add(&mut self, id: u64, labels: &Labels) {
        self.all.add(id);
        for l in labels.iter() {
            let values = match self.by_name.get_mut(l.name) {
                Some(v) => v,
                None => self.by_name.entry(l.name.to_owned()).or_default(),
            };
            match values.get_mut(l.value) {
                Some(b) => b.add(id),
                None => {
                    values.insert(l.value.to_owned(), Bitmap64::of(&[id]));
                }
            }
        }
    }

    /// Removes a series (used when the head is truncated).
    pub fn delete(&mut self, id: u64, labels: &Labels) {
        self.all.remove(id);
        for l in labels.iter() {
            let mut drop_name = false;
            if let Some(values) = self.by_name.get_mut(l.name) {
                if let Some(b) = values.get_mut(l.value) {
                    b.remove(id);
                    if b.is_empty() {
                        values.remove(l.value);
                    }
                }
                drop_name = values.is_empty();
            }
            if drop_name {
                self.by_name.remove(l.name);
            }
        }
    }

    /// Every series id.
    pub fn all(&self) -> &Bitmap64 {
        &self.all
    }

    pub fn num_series(&self) -> u64 {
        self.all.cardinality()
    }

    /// Sorted label names (of series currently indexed).
    pub fn label_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_name.keys().cloned().collect();
        v.sort_unstable();
        v
    }

    /// Sorted values of label `name`.
    pub fn label_values(&self, name: &str) -> Vec<String> {
        self.by_name.get(name).map(|v| v.keys().cloned().collect()).unwrap_or_default()
    }

    /// Values of `name` with their postings.
    pub fn values(&self, name: &str) -> Option<&BTreeMap<String, Bitmap64>> {
        self.by_name.get(name)
    }

    /// Union of the postings of the values of `name` that satisfy `pred`.
    fn union_where(&self, name: &str, m: &Matcher, want: bool) -> Bitmap64 {
        let mut out = Bitmap64::new();
        let Some(values) = self.by_name.get(name) else {
            return out;
        };
        // `prefix.*` walks only the values in the prefix's range.
        if want && m.op == MatchOp::RegexMatch {
            if let Some(p) = m.regex().and_then(|r| r.prefix()) {
                for (v, b) in
                    values.range::<str, _>((std::ops::Bound::Included(p), std::ops::Bound::Unbounded))
                {
                    if !v.starts_with(p) {
                        break;
                    }
                    out.or_inplace(b);
                }
                return out;
            }
        }
        for (v, b) in values {
            if m.matches(v) == want {
                out.or_inplace(b);
            }
        }
        out
    }

    /// Series whose label `m.name` is present and whose value matches.
    fn matching(&self, m: &Matcher) -> Bitmap64 {
        if let Some(set) = m.set_matches() {
            let mut out = Bitmap64::new();
            if let Some(values) = self.by_name.get(m.name.as_str()) {
                for v in set {
                    if let Some(b) = values.get(v) {
                        out.or_inplace(b);
                    }
                }
            }
            return out;
        }
        self.union_where(&m.name, m, true)
    }

    /// Series whose label `m.name` is present and whose value does not
    /// match.
    fn not_matching(&self, m: &Matcher) -> Bitmap64 {
        if m.op == MatchOp::NotEqual {
            // The values that fail `!= v` are exactly `v`.
            return self
                .by_name
                .get(m.name.as_str())
                .and_then(|vals| vals.get(m.value.as_str()))
                .cloned()
                .unwrap_or_default();
        }
        self.union_where(&m.name, m, false)
    }

    /// Series ids matching every matcher (all series for no matchers).
    pub fn postings_for_matchers(&self, matchers: &[Matcher]) -> Bitmap64 {
        // Positive matchers (not matching "") intersect; the rest subtract.
        let mut result: Option<Bitmap64> = None;
        let mut subtract: Vec<&Matcher> = Vec::new();
        for m in matchers {
            if m.matches_empty() {
                subtract.push(m);
                continue;
            }
            let p = self.matching(m);
            match &mut result {
                None => result = Some(p),
                Some(r) => r.and_inplace(&p),
            }
            if result.as_ref().is_some_and(|r| r.is_empty()) {
                return Bitmap64::new();
            }
        }
        let mut result = result.unwrap_or_else(|| self.all.clone());
        for m in subtract {
            // `l=~".*"` matches every value: nothing to subtract.
            if m.op == MatchOp::RegexMatch && m.value == ".*" {
                continue;
            }
            result.andnot_inplace(&self.not_matching(m));
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::{matches_all, MatchOp};

    fn m(op: MatchOp, n: &str, v: &str) -> Matcher {
        Matcher::new(op, n, v).unwrap()
    }

    #[test]
    fn matchers_agree_with_brute_force() {
        let mut sets = vec![];
        for i in 0..60u64 {
            let mut pairs = vec![("__name__", format!("m{}", i % 3)), ("job", format!("j{}", i % 4))];
            if i % 5 != 0 {
                pairs.push(("inst", format!("host{}", i % 7)));
            }
            if i % 6 == 0 {
                pairs.push(("empty_sometimes", "x".to_string()));
            }
            sets.push(Labels::from_pairs(&pairs));
        }
        let mut p = MemPostings::new();
        for (i, l) in sets.iter().enumerate() {
            p.add(i as u64 + 1, l);
        }
        let cases: Vec<Vec<Matcher>> = vec![
            vec![m(MatchOp::Equal, "__name__", "m1")],
            vec![m(MatchOp::Equal, "__name__", "m1"), m(MatchOp::NotEqual, "job", "j1")],
            vec![m(MatchOp::Equal, "inst", "")],
            vec![m(MatchOp::NotEqual, "inst", "")],
            vec![m(MatchOp::RegexMatch, "inst", "host[1-3]")],
            vec![m(MatchOp::RegexMatch, "inst", "host1|host2|nope")],
            vec![m(MatchOp::RegexMatch, "inst", "ho.*")],
            vec![m(MatchOp::RegexMatch, "inst", ".*")],
            vec![m(MatchOp::RegexMatch, "inst", ".+")],
            vec![m(MatchOp::RegexMatch, "inst", "|host1")],
            vec![m(MatchOp::RegexNoMatch, "inst", "host1")],
            vec![m(MatchOp::RegexNoMatch, "inst", ".*")],
            vec![m(MatchOp::RegexNoMatch, "empty_sometimes", "")],
            vec![m(MatchOp::NotEqual, "nolabel", "x")],
            vec![m(MatchOp::Equal, "nolabel", "x")],
            vec![
                m(MatchOp::Equal, "job", "j2"),
                m(MatchOp::RegexMatch, "__name__", "m.*"),
                m(MatchOp::Equal, "inst", ""),
            ],
            vec![],
        ];
        for ms in cases {
            let got: Vec<u64> = p.postings_for_matchers(&ms).iter().collect();
            let want: Vec<u64> = sets
                .iter()
                .enumerate()
                .filter(|(_, l)| matches_all(&ms, l))
                .map(|(i, _)| i as u64 + 1)
                .collect();
            assert_eq!(got, want, "{ms:?}");
        }
        assert_eq!(p.label_values("job"), vec!["j0", "j1", "j2", "j3"]);
        assert_eq!(p.label_names(), vec!["__name__", "empty_sometimes", "inst", "job"]);
        for (i, l) in sets.iter().enumerate() {
            p.delete(i as u64 + 1, l);
        }
        assert_eq!(p.num_series(), 0);
        assert!(p.label_names().is_empty());
    }
}
