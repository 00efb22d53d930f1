//! Label sets: the identity of a series.
//!
//! A [`Labels`] value is an immutable, sorted set of `name="value"` pairs kept
//! in one shared allocation. Cloning is a reference-count bump, which matters
//! because the same label set is held by the head, the scrape cache and every
//! query result that mentions the series.
//!
//! The buffer holds each name and value as `uvarint(len) bytes`, names sorted
//! ascending and unique. Every byte slice stored is valid UTF-8 because it was
//! copied from a `&str`; this is the invariant that makes the unchecked
//! conversions in [`LabelsIter`] sound.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// The label that carries the metric name.
pub const METRIC_NAME: &str = "__name__";
/// Separator byte used when hashing label sets. `0xff` cannot occur in UTF-8,
/// so `{a="b", c="d"}` and `{a="bc", ="d"}` never hash the same input.
const SEP: u8 = 0xff;

/// One `name="value"` pair borrowed from a [`Labels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label<'a> {
    pub name: &'a str,
    pub value: &'a str,
}

/// An immutable, sorted label set. Cheap to clone.
#[derive(Clone)]
pub struct Labels {
    data: Arc<[u8]>,
}

impl Default for Labels {
    fn default() -> Self {
        Labels::empty()
    }
}

fn put_uvarint(buf: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

#[inline]
fn get_uvarint(buf: &[u8], pos: &mut usize) -> usize {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let b = buf[*pos];
        *pos += 1;
        n |= ((b & 0x7f) as usize) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

impl Labels {
    /// The empty label set.
    pub fn empty() -> Labels {
        thread_local! {
            static EMPTY: Arc<[u8]> = Arc::from(Vec::new());
        }
        Labels { data: EMPTY.with(Arc::clone) }
    }

    /// Builds a label set from pairs in any order. If a name occurs twice the
    /// last value wins. Empty values are kept (use [`LabelsBuilder`] to get
    /// Prometheus's "empty value means absent" rule).
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> Labels {
        let mut v: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (n.as_ref(), v.as_ref())).collect();
        // Stable sort keeps input order among equal names, so "last wins"
        // is a matter of keeping the last of each run.
        v.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<(&str, &str)> = Vec::with_capacity(v.len());
        for (n, val) in v {
            match out.last_mut() {
                Some(last) if last.0 == n => last.1 = val,
                _ => out.push((n, val)),
            }
        }
        Labels::from_sorted_unique(out.iter().copied())
    }

    /// Builds a label set from pairs already sorted by name with no
    /// duplicates. Debug builds check the precondition.
    pub fn from_sorted_unique<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
        let mut buf = Vec::with_capacity(64);
        let mut prev: Option<&str> = None;
        for (n, v) in pairs {
            debug_assert!(prev.is_none_or(|p| p < n), "labels not sorted/unique");
            prev = Some(n);
            put_uvarint(&mut buf, n.len());
            buf.extend_from_slice(n.as_bytes());
            put_uvarint(&mut buf, v.len());
            buf.extend_from_slice(v.as_bytes());
        }
        Labels { data: Arc::from(buf) }
    }

    /// Iterates the pairs in name order.
    pub fn iter(&self) -> LabelsIter<'_> {
        LabelsIter { buf: &self.data, pos: 0 }
    }

    pub fn len(&self) -> usize {
        self.iter().count()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        for l in self.iter() {
            match l.name.cmp(name) {
                Ordering::Less => continue,
                Ordering::Equal => return Some(l.value),
                Ordering::Greater => return None,
            }
        }
        None
    }

    /// The value of `name`, or `""` when absent: Prometheus's convention.
    pub fn get_or_empty(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The metric name (`__name__`), if any.
    pub fn metric_name(&self) -> Option<&str> {
        // `__name__` sorts before every name that starts with a letter, so
        // it is almost always first; `get` stops early either way.
        self.get(METRIC_NAME)
    }

    /// Stable 64-bit hash of the whole set (xxh64 over `name 0xff value 0xff`).
    /// Stable across processes and versions: it may be persisted.
    pub fn stable_hash(&self) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in self.iter() {
            h.update(l.name.as_bytes());
            h.update(&[SEP]);
            h.update(l.value.as_bytes());
            h.update(&[SEP]);
        }
        h.digest()
    }

    /// Hash of only the labels named in `names` (which must be sorted), as
    /// PromQL's `on(...)` / `by(...)` grouping needs.
    pub fn hash_for_labels(&self, names: &[impl AsRef<str>]) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in self.iter() {
            if names.iter().any(|n| n.as_ref() == l.name) {
                h.update(l.name.as_bytes());
                h.update(&[SEP]);
                h.update(l.value.as_bytes());
                h.update(&[SEP]);
            }
        }
        h.digest()
    }

    /// Hash of every label except `__name__` and those in `names`, as
    /// PromQL's `ignoring(...)` / `without(...)` grouping needs.
    pub fn hash_without_labels(&self, names: &[impl AsRef<str>]) -> u64 {
        let mut h = xxhash_rust::xxh64::Xxh64::new(0);
        for l in self.iter() {
            if l.name == METRIC_NAME || names.iter().any(|n| n.as_ref() == l.name) {
                continue;
            }
            h.update(l.name.as_bytes());
            h.update(&[SEP]);
            h.update(l.value.as_bytes());
            h.update(&[SEP]);
        }
        h.digest()
    }

    /// A copy without `__name__`.
    pub fn without_metric_name(&self) -> Labels {
        if !self.has(METRIC_NAME) {
            return self.clone();
        }
        Labels::from_sorted_unique(self.iter().filter(|l| l.name != METRIC_NAME).map(|l| (l.name, l.value)))
    }

    /// Only the labels whose names are in `names`.
    pub fn keep(&self, names: &[impl AsRef<str>]) -> Labels {
        Labels::from_sorted_unique(
            self.iter().filter(|l| names.iter().any(|n| n.as_ref() == l.name)).map(|l| (l.name, l.value)),
        )
    }

    /// All labels except those whose names are in `names`.
    pub fn drop_names(&self, names: &[impl AsRef<str>]) -> Labels {
        Labels::from_sorted_unique(
            self.iter().filter(|l| !names.iter().any(|n| n.as_ref() == l.name)).map(|l| (l.name, l.value)),
        )
    }

    /// A builder that starts from this set.
    pub fn builder(&self) -> LabelsBuilder {
        LabelsBuilder::from_labels(self)
    }

    /// Bytes held by this set's buffer (for memory accounting).
    pub fn byte_size(&self) -> usize {
        self.data.len()
    }

    /// The encoded buffer; equal label sets have equal buffers.
    pub fn as_bytes(&self) -> &[u8] {
        &self.data
    }

    /// Formats as Prometheus's text exposition does: `name{a="b"}` with
    /// the metric name outside the braces (quoted inside if it is not a
    /// legacy-valid name).
    pub fn to_metric_string(&self) -> String {
        let mut s = String::new();
        let name = self.metric_name();
        let mut braces = false;
        if let Some(n) = name {
            if crate::names::is_valid_legacy_metric_name(n) {
                s.push_str(n);
            } else {
                s.push('{');
                write_quoted(&mut s, n);
                braces = true;
            }
        }
        for l in self.iter().filter(|l| l.name != METRIC_NAME) {
            if braces {
                s.push_str(", ");
            } else {
                s.push('{');
                braces = true;
            }
            write_label_name(&mut s, l.name);
            s.push('=');
            write_quoted(&mut s, l.value);
        }
        if braces {
            s.push('}');
        }
        s
    }
}

fn write_label_name(s: &mut String, name: &str) {
    if crate::names::is_valid_legacy_label_name(name) {
        s.push_str(name);
    } else {
        write_quoted(s, name);
    }
}

/// Writes `v` as a Go-style double-quoted string, the way Prometheus prints
/// label values.
pub fn write_quoted(s: &mut String, v: &str) {
    s.push('"');
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            '\t' => s.push_str("\\t"),
            '\r' => s.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                use std::fmt::Write;
                let _ = write!(s, "\\x{:02x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
}

/// `{__name__="up", job="x"}`: Prometheus's `labels.String()` form.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(self.data.len() + 8);
        s.push('{');
        for (i, l) in self.iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            write_label_name(&mut s, l.name);
            s.push('=');
            write_quoted(&mut s, l.value);
        }
        s.push('}');
        f.write_str(&s)
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for Labels {
    fn eq(&self, other: &Self) -> bool {
        // The encoding is canonical, so byte equality is label equality.
        self.data == other.data
    }
}
impl Eq for Labels {}

impl Hash for Labels {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.data.hash(state)
    }
}

/// Prometheus's `labels.Compare`: pair by pair, name then value; a prefix
/// sorts first.
impl Ord for Labels {
    fn cmp(&self, other: &Self) -> Ordering {
        let mut a = self.iter();
        let mut b = other.iter();
        loop {
            match (a.next(), b.next()) {
                (None, None) => return Ordering::Equal,
                (None, Some(_)) => return Ordering::Less,
                (Some(_), None) => return Ordering::Greater,
                (Some(x), Some(y)) => {
                    let c = x.name.cmp(y.name).then_with(|| x.value.cmp(y.value));
                    if c != Ordering::Equal {
                        return c;
                    }
                }
            }
        }
    }
}
impl PartialOrd for Labels {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = Label<'a>;
    type IntoIter = LabelsIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over the pairs of a [`Labels`].
#[derive(Debug, Clone)]
pub struct LabelsIter<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> LabelsIter<'a> {
    #[inline]
    fn take_str(&mut self) -> &'a str {
        let n = get_uvarint(self.buf, &mut self.pos);
        let bytes = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        // SAFETY: every slice in the buffer was copied from a `&str` at
        // exactly these boundaries (see the module docs).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }
}

impl<'a> Iterator for LabelsIter<'a> {
    type Item = Label<'a>;
    #[inline]
    fn next(&mut self) -> Option<Label<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let name = self.take_str();
        let value = self.take_str();
        Some(Label { name, value })
    }
}

/// Mutable construction of a label set, with Prometheus's builder rules:
/// setting a label to `""` removes it.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    pairs: Vec<(String, String)>,
}

impl LabelsBuilder {
    pub fn new() -> LabelsBuilder {
        LabelsBuilder::default()
    }

    pub fn from_labels(l: &Labels) -> LabelsBuilder {
        LabelsBuilder { pairs: l.iter().map(|l| (l.name.to_owned(), l.value.to_owned())).collect() }
    }

    /// Sets `name` to `value`, replacing any previous value; an empty value
    /// deletes the label.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        if value.is_empty() {
            return self.del(name);
        }
        match self.pairs.iter_mut().find(|(n, _)| n == name) {
            Some(p) => {
                value.clone_into(&mut p.1);
            }
            None => self.pairs.push((name.to_owned(), value.to_owned())),
        }
        self
    }

    pub fn del(&mut self, name: &str) -> &mut Self {
        self.pairs.retain(|(n, _)| n != name);
        self
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Keeps only the labels for which `f(name, value)` is true.
    pub fn retain(&mut self, mut f: impl FnMut(&str, &str) -> bool) -> &mut Self {
        self.pairs.retain(|(n, v)| f(n, v));
        self
    }

    pub fn reset(&mut self) {
        self.pairs.clear();
    }

    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.pairs.iter().map(|(n, _)| n.as_str())
    }

    pub fn build(&self) -> Labels {
        let mut v: Vec<(&str, &str)> = self.pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        v.sort_unstable_by(|a, b| a.0.cmp(b.0));
        Labels::from_sorted_unique(v)
    }
}

/// Builds a [`Labels`] from `name => value` pairs: `labels!("__name__" => "up", "job" => "x")`.
#[macro_export]
macro_rules! labels {
    () => { $crate::Labels::empty() };
    ($($n:expr => $v:expr),+ $(,)?) => {
        $crate::Labels::from_pairs(&[$(($n, $v)),+])
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sorted_and_last_value_wins() {
        let l = Labels::from_pairs(&[("job", "a"), ("__name__", "up"), ("job", "b")]);
        let v: Vec<_> = l.iter().map(|l| (l.name, l.value)).collect();
        assert_eq!(v, vec![("__name__", "up"), ("job", "b")]);
        assert_eq!(l.metric_name(), Some("up"));
        assert_eq!(l.get("nope"), None);
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn display_forms() {
        let l = labels!("__name__" => "up", "job" => "a\"b\n", "le" => "0.5");
        assert_eq!(l.to_string(), r#"{__name__="up", job="a\"b\n", le="0.5"}"#);
        assert_eq!(l.to_metric_string(), r#"up{job="a\"b\n", le="0.5"}"#);
        let u = labels!("__name__" => "my.metric", "café" => "x");
        assert_eq!(u.to_metric_string(), r#"{"my.metric", "café"="x"}"#);
        assert_eq!(labels!("__name__" => "x").to_metric_string(), "x");
    }

    #[test]
    fn builder_empty_value_deletes() {
        let l = labels!("a" => "1", "b" => "2");
        let mut b = l.builder();
        b.set("b", "").set("c", "3").set("a", "9");
        assert_eq!(b.build(), labels!("a" => "9", "c" => "3"));
    }

    #[test]
    fn compare_like_prometheus() {
        let a = labels!("a" => "1");
        let ab = labels!("a" => "1", "b" => "1");
        let b = labels!("b" => "0");
        assert!(a < ab);
        assert!(ab < b);
        assert!(labels!("a" => "1") < labels!("a" => "2"));
    }

    #[test]
    fn long_strings_use_multibyte_varints() {
        let long = "x".repeat(300);
        let l = labels!("a" => long.as_str(), "b" => "c");
        assert_eq!(l.get("a"), Some(long.as_str()));
        assert_eq!(l.get("b"), Some("c"));
    }

    #[test]
    fn grouping_hashes() {
        let l1 = labels!("__name__" => "x", "a" => "1", "b" => "2");
        let l2 = labels!("__name__" => "y", "a" => "1", "b" => "3");
        assert_eq!(l1.hash_for_labels(&["a"]), l2.hash_for_labels(&["a"]));
        assert_ne!(l1.hash_for_labels(&["b"]), l2.hash_for_labels(&["b"]));
        assert_eq!(l1.hash_without_labels(&["b"]), l2.hash_without_labels(&["b"]));
        assert_ne!(l1.stable_hash(), l2.stable_hash());
        // The separator keeps shifted boundaries apart.
        assert_ne!(labels!("a" => "bc").stable_hash(), labels!("ab" => "c").stable_hash());
    }

    proptest! {
        #[test]
        fn roundtrip(pairs in proptest::collection::vec(("[a-z_]{1,8}", ".{0,20}"), 0..10)) {
            let l = Labels::from_pairs(&pairs);
            let mut expect: std::collections::BTreeMap<&str, &str> = Default::default();
            for (n, v) in &pairs { expect.insert(n, v); }
            let got: Vec<_> = l.iter().map(|l| (l.name, l.value)).collect();
            let want: Vec<_> = expect.into_iter().collect();
            prop_assert_eq!(got, want);
            let rebuilt = l.builder();
            let mut b2 = LabelsBuilder::new();
            for x in l.iter() { if !x.value.is_empty() { b2.set(x.name, x.value); } }
            let _ = rebuilt;
            prop_assert_eq!(b2.build(), Labels::from_pairs(&l.iter().filter(|x| !x.value.is_empty()).map(|x| (x.name, x.value)).collect::<Vec<_>>()));
        }
    }
}
