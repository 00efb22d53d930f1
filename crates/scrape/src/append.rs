//! Turning one scraped page into appended samples, as Prometheus's
//! `scrapeLoop.append` does: target labels merged in (`honor_labels`),
//! `metric_relabel_configs`, limits, timestamps, a per-target series cache,
//! staleness markers for series that disappeared, and the report series
//! (`up`, `scrape_duration_seconds`, ...).

use std::collections::HashMap;
use std::sync::Arc;

use ember_config::RelabelConfig;
use ember_model::{
    stale_nan, AppendError, Appender, Labels, LabelsBuilder, Metadata, SeriesRef, Timestamp, METRIC_NAME,
};
use ember_textparse::{Entry, Format, LabelScratch, Parser};

use crate::relabel;

/// Why a scrape's samples were not stored. Messages are Prometheus's.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScrapeError {
    #[error("{0}")]
    Http(String),
    #[error("server returned HTTP status {0}")]
    Status(String),
    #[error("body size limit exceeded")]
    BodySizeLimit,
    #[error("context deadline exceeded")]
    Timeout,
    #[error("{0}")]
    ContentType(String),
    #[error("{0}")]
    Parse(String),
    #[error("sample limit exceeded")]
    SampleLimit,
    #[error("label_limit exceeded (metric: {metric:.50}, number of labels: {count}, limit: {limit})")]
    LabelLimit { metric: String, count: usize, limit: u64 },
    #[error("label_name_length_limit exceeded (metric: {metric:.50}, label name: {name:.50}, length: {len}, limit: {limit})")]
    LabelNameLength { metric: String, name: String, len: usize, limit: u64 },
    #[error("label_value_length_limit exceeded (metric: {metric:.50}, label name: {name:.50}, value: {value:.50?}, length: {len}, limit: {limit})")]
    LabelValueLength { metric: String, name: String, value: String, len: usize, limit: u64 },
    #[error("missing metric name (__name__ label)")]
    NoMetricName,
    #[error("{0}")]
    Storage(String),
}

/// The per-job settings that shape how a page is stored.
#[derive(Debug, Clone, Default)]
pub struct AppendOptions {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub track_timestamps_staleness: bool,
    pub sample_limit: u64,
    pub label_limit: u64,
    pub label_name_length_limit: u64,
    pub label_value_length_limit: u64,
    pub metric_relabel_configs: Vec<RelabelConfig>,
}

impl AppendOptions {
    pub fn from_config(sc: &ember_config::ScrapeConfig) -> AppendOptions {
        AppendOptions {
            honor_labels: sc.honor_labels,
            honor_timestamps: sc.honor_timestamps,
            track_timestamps_staleness: sc.track_timestamps_staleness,
            sample_limit: sc.sample_limit,
            label_limit: sc.label_limit,
            label_name_length_limit: sc.label_name_length_limit,
            label_value_length_limit: sc.label_value_length_limit,
            metric_relabel_configs: sc.metric_relabel_configs.clone(),
        }
    }
}

#[derive(Debug)]
struct CacheEntry {
    /// The series exactly as the page wrote it.
    text: Box<str>,
    /// Final labels; `None` when relabelling dropped the series.
    labels: Option<Labels>,
    /// `labels.stable_hash()`, the series' identity for staleness tracking.
    hash: u64,
    sref: Option<SeriesRef>,
    /// The last successful page that contained the text.
    last_iter: u64,
    /// The last attempt (successful or not) that tracked the series for
    /// staleness; see [`ScrapeCache::prev`].
    tracked_attempt: u64,
}

/// FxHash: a multiply-rotate hasher. The scrape cache hashes every sample's
/// series text and label hash; SipHash's DoS resistance buys nothing for
/// keys that only one target's own page can add.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher(u64);

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, w: u64) {
        self.0 = (self.0.rotate_left(5) ^ w).wrapping_mul(FX_SEED);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

fn text_hash(text: &str) -> u64 {
    use std::hash::Hasher;
    let mut h = FxHasher::default();
    h.write(text.as_bytes());
    h.finish()
}

/// What one target remembers between scrapes: parsed-and-relabelled series
/// by their raw text, and the series of the previous page (for staleness).
///
/// Exporters write their series in the same order on every page, so the
/// entries are kept in the order of the page that last arranged them and a
/// page is matched against them by walking forward: in the steady state a
/// sample costs one comparison with the next entry's text, in memory that is
/// read sequentially, and no hashing. The hash index is only consulted when
/// the walk misses (new series, reordered pages).
#[derive(Debug, Default)]
pub struct ScrapeCache {
    entries: Vec<CacheEntry>,
    /// Indices into `entries`, hashed by the entry's text.
    index: hashbrown::HashTable<u32>,
    /// Entries tracked for staleness by the last successful page. Kept as
    /// indices so a page allocates nothing for it; a failed page leaves it
    /// as it was.
    prev: Vec<u32>,
    /// The same for the page being appended (reused allocation).
    cur: Vec<u32>,
    /// Entries in the order the page being appended matched them.
    order: Vec<u32>,
    /// Metric family metadata (`# TYPE`, `# HELP`, `# UNIT`) of the last
    /// good page, for the metadata API. Replaced (not mutated) only when a
    /// page's metadata differs, so readers can hold the `Arc` cheaply.
    metadata: Arc<HashMap<String, Metadata>>,
    /// Successful pages so far.
    iter: u64,
    /// Pages attempted so far, successful or not.
    attempt: u64,
}

impl ScrapeCache {
    pub fn new() -> ScrapeCache {
        ScrapeCache::default()
    }

    /// The metadata of a metric family, as last scraped.
    pub fn metadata(&self, family: &str) -> Option<&Metadata> {
        self.metadata.get(family)
    }

    /// All metadata of the last good page, by family name.
    pub fn all_metadata(&self) -> &HashMap<String, Metadata> {
        &self.metadata
    }

    /// The same, shared: the `Arc` changes only when the metadata did.
    pub fn shared_metadata(&self) -> &Arc<HashMap<String, Metadata>> {
        &self.metadata
    }

    /// Forgets how raw series map to labels (relabelling or label
    /// handling changed) but keeps the series of the last page, so the
    /// ones that no longer appear still get staleness markers.
    pub fn forget_series_mapping(&mut self) {
        // The entries stay, since `prev` points into them, but no text
        // matches them any more (a page never has an empty series text);
        // `rearrange` drops them once they are two pages old.
        for e in &mut self.entries {
            e.text = Box::from("");
        }
        self.index.clear();
    }

    /// Series the next stale-marking pass would mark.
    pub fn tracked_series(&self) -> usize {
        self.prev.len()
    }

    /// The entry for `text`: `hint` (the entry after the previous sample's)
    /// if it is the one, else whatever the index says (`Err` when that
    /// lookup was needed).
    #[inline]
    fn find(&self, text: &str, hint: usize) -> Result<usize, Option<usize>> {
        if let Some(e) = self.entries.get(hint) {
            if *e.text == *text {
                return Ok(hint);
            }
        }
        let entries = &self.entries;
        Err(self.index.find(text_hash(text), |&i| *entries[i as usize].text == *text).map(|&i| i as usize))
    }

    fn insert(&mut self, e: CacheEntry) -> usize {
        let i = self.entries.len();
        let entries = &self.entries;
        self.index.insert_unique(text_hash(&e.text), i as u32, |&j| text_hash(&entries[j as usize].text));
        self.entries.push(e);
        i
    }

    /// Puts the entries in the order of the page just appended (those it did
    /// not contain after them) and forgets entries unseen for two pages
    /// (series that churned away). Only done when the walk missed often or
    /// something is to be forgotten, so the steady state does not pay for it.
    fn rearrange(&mut self, iter: u64, misses: usize, matched: usize) {
        // When the page matched every entry, none can have expired.
        let expired = matched < self.entries.len() && self.entries.iter().any(|e| e.last_iter + 2 < iter);
        if !expired && misses <= self.entries.len() / 16 {
            return;
        }
        const GONE: u32 = u32::MAX;
        let mut remap = vec![GONE; self.entries.len()];
        let mut next = 0u32;
        for &i in &self.order {
            if remap[i as usize] == GONE {
                remap[i as usize] = next;
                next += 1;
            }
        }
        for (i, e) in self.entries.iter().enumerate() {
            if remap[i] == GONE && e.last_iter + 2 >= iter {
                remap[i] = next;
                next += 1;
            }
        }
        let mut slots: Vec<Option<CacheEntry>> = Vec::with_capacity(next as usize);
        slots.resize_with(next as usize, || None);
        for (i, e) in std::mem::take(&mut self.entries).into_iter().enumerate() {
            if remap[i] != GONE {
                slots[remap[i] as usize] = Some(e);
            }
        }
        self.entries = slots.into_iter().flatten().collect();
        self.index.clear();
        let entries = &self.entries;
        for (i, e) in entries.iter().enumerate() {
            self.index.insert_unique(text_hash(&e.text), i as u32, |&j| text_hash(&entries[j as usize].text));
        }
        // Entries tracked by the last page were seen by it, so none is gone.
        for i in &mut self.prev {
            *i = remap[*i as usize];
        }
    }
}

/// Counts of one page, for the report series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageStats {
    /// Samples in the page (`scrape_samples_scraped`).
    pub scraped: u64,
    /// Samples left after metric relabelling
    /// (`scrape_samples_post_metric_relabeling`).
    pub post_relabel: u64,
    /// Series not seen by this target's cache before (`scrape_series_added`).
    pub series_added: u64,
    /// Samples the storage refused individually (out of order, ...).
    pub rejected: u64,
}

/// `mutateSampleLabels`: merges the target's public labels into a scraped
/// series, then applies metric relabelling. `None` if dropped.
pub fn mutate_sample_labels(
    scraped: &Labels,
    target: &Labels,
    honor_labels: bool,
    rules: &[RelabelConfig],
) -> Option<Labels> {
    let mut lb = LabelsBuilder::from_labels(scraped);
    if honor_labels {
        for l in target.iter() {
            if !scraped.has(l.name) {
                lb.set(l.name, l.value);
            }
        }
    } else {
        let mut conflicts: Vec<(String, String)> = Vec::new();
        for l in target.iter() {
            if let Some(v) = scraped.get(l.name).filter(|v| !v.is_empty()) {
                conflicts.push((l.name.to_owned(), v.to_owned()));
            }
            lb.set(l.name, l.value);
        }
        // Shorter names first, then `exported_` prefixes until a free name.
        conflicts.sort_by_key(|(n, _)| n.len());
        for (name, value) in conflicts {
            let mut new_name = name;
            loop {
                new_name = format!("exported_{new_name}");
                if lb.get(&new_name).unwrap_or("").is_empty() {
                    lb.set(&new_name, &value);
                    break;
                }
            }
        }
    }
    if !process_rules(&mut lb, rules) {
        return None;
    }
    let out = lb.build();
    (!out.is_empty()).then_some(out)
}

fn process_rules(lb: &mut LabelsBuilder, rules: &[RelabelConfig]) -> bool {
    rules.is_empty() || relabel::process_builder(lb, rules)
}

/// `mutateReportSampleLabels`: a report series carries the target labels.
pub fn report_labels(name: &str, target: &Labels) -> Labels {
    let mut lb = LabelsBuilder::new();
    lb.set(METRIC_NAME, name);
    for l in target.iter() {
        lb.set(l.name, l.value);
    }
    lb.build()
}

fn check_limits(l: &Labels, o: &AppendOptions) -> Result<(), ScrapeError> {
    let metric = || l.metric_name().unwrap_or("").to_owned();
    if o.label_limit > 0 && l.len() as u64 > o.label_limit {
        return Err(ScrapeError::LabelLimit { metric: metric(), count: l.len(), limit: o.label_limit });
    }
    if o.label_name_length_limit == 0 && o.label_value_length_limit == 0 {
        return Ok(());
    }
    for lbl in l.iter() {
        // Byte lengths, as Go's len().
        let nlen = lbl.name.len();
        if o.label_name_length_limit > 0 && nlen as u64 > o.label_name_length_limit {
            return Err(ScrapeError::LabelNameLength {
                metric: metric(),
                name: lbl.name.to_owned(),
                len: nlen,
                limit: o.label_name_length_limit,
            });
        }
        let vlen = lbl.value.len();
        if o.label_value_length_limit > 0 && vlen as u64 > o.label_value_length_limit {
            return Err(ScrapeError::LabelValueLength {
                metric: metric(),
                name: lbl.name.to_owned(),
                value: lbl.value.to_owned(),
                len: vlen,
                limit: o.label_value_length_limit,
            });
        }
    }
    Ok(())
}

/// Appends the samples of `page` at scrape time `ts`. On error nothing
/// about the cache's staleness set changes and the caller rolls back.
pub fn append_page(
    app: &mut dyn Appender,
    cache: &mut ScrapeCache,
    target_labels: &Labels,
    opts: &AppendOptions,
    page: &[u8],
    format: Format,
    ts: Timestamp,
) -> Result<PageStats, ScrapeError> {
    let mut stats = PageStats::default();
    let mut scratch = LabelScratch::new();
    let iter = cache.iter + 1;
    cache.attempt += 1;
    let attempt = cache.attempt;
    cache.cur.clear();
    cache.order.clear();
    // Its own handle, since the cache changes while the page is read.
    let cached_meta = cache.metadata.clone();
    let mut meta_check = MetadataCheck::new(&cached_meta);
    let mut hint = 0usize;
    let mut misses = 0usize;
    let mut matched = 0usize;
    for entry in Parser::new(page, format) {
        let entry = entry.map_err(|e| ScrapeError::Parse(e.to_string()))?;
        let s = match entry {
            Entry::Sample(s) => s,
            Entry::Type { metric, metric_type } => {
                meta_check.line(&metric, |m| m.metric_type == metric_type, TYPE);
                continue;
            }
            Entry::Help { metric, text } => {
                meta_check.line(&metric, |m| m.help == text, HELP);
                continue;
            }
            Entry::Unit { metric, unit } => {
                meta_check.line(&metric, |m| m.unit == unit, UNIT);
                continue;
            }
            Entry::Comment(_) => continue,
        };
        stats.scraped += 1;
        let (slot, new_series) = match cache.find(s.series, hint) {
            Ok(i) => (i, false),
            Err(Some(i)) => {
                misses += 1;
                (i, false)
            }
            Err(None) => {
                misses += 1;
                let raw = s.to_labels(&mut scratch);
                let mutated = mutate_sample_labels(
                    &raw,
                    target_labels,
                    opts.honor_labels,
                    &opts.metric_relabel_configs,
                );
                if let Some(l) = &mutated {
                    if !l.has(METRIC_NAME) {
                        return Err(ScrapeError::NoMetricName);
                    }
                    // As in Prometheus, limits are checked when a series is
                    // first seen; a job whose limits change gets a new cache.
                    check_limits(l, opts)?;
                }
                let hash = mutated.as_ref().map_or(0, |l| l.stable_hash());
                // Dropped series are cached too, so the next page skips
                // them cheaply.
                let i = cache.insert(CacheEntry {
                    text: s.series.into(),
                    labels: mutated,
                    hash,
                    sref: None,
                    last_iter: 0,
                    tracked_attempt: 0,
                });
                (i, true)
            }
        };
        hint = slot + 1;
        cache.order.push(slot as u32);
        let e = &mut cache.entries[slot];
        if e.last_iter != iter {
            e.last_iter = iter;
            matched += 1;
        }
        let Some(labels) = &e.labels else { continue };
        stats.post_relabel += 1;
        if opts.sample_limit > 0 && stats.post_relabel > opts.sample_limit {
            return Err(ScrapeError::SampleLimit);
        }
        let t = match (opts.honor_timestamps, s.timestamp) {
            (true, Some(t)) => t,
            _ => ts,
        };
        // Series with their own timestamps are not marked stale by us
        // unless asked: their exporter owns their timeline.
        let track = s.timestamp.is_none() || !opts.honor_timestamps || opts.track_timestamps_staleness;
        match app.append(e.sref, labels, t, s.value) {
            Ok(r) => {
                e.sref = Some(r);
                if new_series {
                    stats.series_added += 1;
                }
            }
            Err(err) if err.is_sample_rejection() => stats.rejected += 1,
            Err(err) => return Err(ScrapeError::Storage(err.to_string())),
        }
        if track && e.tracked_attempt != attempt {
            e.tracked_attempt = attempt;
            cache.cur.push(slot as u32);
        }
    }
    mark_vanished_stale(app, cache, attempt, ts)?;
    std::mem::swap(&mut cache.prev, &mut cache.cur);
    cache.iter = iter;
    if meta_check.changed() {
        store_metadata(app, cache, collect_metadata(page, format))?;
    }
    cache.rearrange(iter, misses, matched);
    Ok(stats)
}

/// Stores the metadata of a page whose metadata differs from the previous
/// page's: what is new or changed goes to storage, keyed by the family
/// name, and the shared snapshot is replaced.
fn store_metadata(
    app: &mut dyn Appender,
    cache: &mut ScrapeCache,
    metadata: HashMap<String, Metadata>,
) -> Result<(), ScrapeError> {
    let mut meta_changed = metadata.len() != cache.metadata.len();
    for (family, meta) in &metadata {
        if cache.metadata.get(family) != Some(meta) {
            meta_changed = true;
            let l = Labels::from_pairs(&[(METRIC_NAME, family.as_str())]);
            match app.update_metadata(None, &l, meta) {
                Ok(()) => {}
                Err(e) if e.is_sample_rejection() => {}
                Err(e) => return Err(ScrapeError::Storage(e.to_string())),
            }
        }
    }
    if meta_changed {
        cache.metadata = Arc::new(metadata);
    }
    Ok(())
}

/// The metadata lines of a page, by family (a field a page does not give
/// is left at its default).
fn collect_metadata(page: &[u8], format: Format) -> HashMap<String, Metadata> {
    let mut metadata: HashMap<String, Metadata> = HashMap::new();
    // The page parsed once already, so errors cannot occur here.
    for entry in Parser::new(page, format).map_while(Result::ok) {
        match entry {
            Entry::Type { metric, metric_type } => {
                metadata.entry(metric.into_owned()).or_default().metric_type = metric_type;
            }
            Entry::Help { metric, text } => {
                metadata.entry(metric.into_owned()).or_default().help = text.into_owned();
            }
            Entry::Unit { metric, unit } => {
                metadata.entry(metric.into_owned()).or_default().unit = unit.to_owned();
            }
            Entry::Sample(_) | Entry::Comment(_) => {}
        }
    }
    metadata
}

const TYPE: u8 = 1;
const HELP: u8 = 2;
const UNIT: u8 = 4;

/// Compares a page's metadata lines with the previous page's as they are
/// parsed, without allocating: pages rarely change their metadata, and
/// half the lines of a typical page are `# HELP` and `# TYPE`. Only when
/// something differs is the page's metadata collected (a second pass).
struct MetadataCheck<'c> {
    cached: &'c HashMap<String, Metadata>,
    /// The family of the previous metadata line and the fields it gave.
    family: Option<(&'c str, &'c Metadata, u8)>,
    families: usize,
    changed: bool,
}

impl<'c> MetadataCheck<'c> {
    fn new(cached: &'c HashMap<String, Metadata>) -> MetadataCheck<'c> {
        MetadataCheck { cached, family: None, families: 0, changed: false }
    }

    #[inline]
    fn line(&mut self, metric: &str, same: impl FnOnce(&Metadata) -> bool, field: u8) {
        if self.changed {
            return;
        }
        if self.family.is_none_or(|(name, _, _)| name != metric) {
            self.end_family();
            match self.cached.get_key_value(metric) {
                Some((name, m)) => {
                    self.family = Some((name, m, 0));
                    // A family repeated later in the page counts twice and
                    // so reads as a change: the second pass sorts it out.
                    self.families += 1;
                }
                None => {
                    self.changed = true;
                    return;
                }
            }
        }
        if let Some((_, m, given)) = &mut self.family {
            *given |= field;
            if !same(m) {
                self.changed = true;
            }
        }
    }

    /// Fields the page did not give must be at their defaults in the cache.
    fn end_family(&mut self) {
        if let Some((_, m, given)) = self.family.take() {
            let d = Metadata::default();
            if (given & TYPE == 0 && m.metric_type != d.metric_type)
                || (given & HELP == 0 && !m.help.is_empty())
                || (given & UNIT == 0 && !m.unit.is_empty())
            {
                self.changed = true;
            }
        }
    }

    fn changed(mut self) -> bool {
        self.end_family();
        self.changed || self.families != self.cached.len()
    }
}

/// Series of the previous page that this page (attempt) did not track get a
/// staleness marker, unless this page wrote the same labels under another
/// text (the identity is the label set, as in Prometheus).
fn mark_vanished_stale(
    app: &mut dyn Appender,
    cache: &ScrapeCache,
    attempt: u64,
    ts: Timestamp,
) -> Result<(), ScrapeError> {
    let gone =
        || cache.prev.iter().map(|&i| &cache.entries[i as usize]).filter(|e| e.tracked_attempt != attempt);
    if gone().next().is_none() {
        return Ok(());
    }
    let kept: std::collections::HashSet<u64, FxBuild> =
        cache.cur.iter().map(|&i| cache.entries[i as usize].hash).collect();
    for e in gone().filter(|e| !kept.contains(&e.hash)) {
        if let Some(l) = &e.labels {
            stale(app, e.sref, l, ts)?;
        }
    }
    Ok(())
}

fn stale(app: &mut dyn Appender, r: Option<SeriesRef>, l: &Labels, ts: Timestamp) -> Result<(), ScrapeError> {
    match app.append(r, l, ts, stale_nan()) {
        Ok(_) => Ok(()),
        // A newer sample already exists: nothing to mark.
        Err(e) if e.is_sample_rejection() => Ok(()),
        Err(AppendError::UnknownRef) => Ok(()),
        Err(e) => Err(ScrapeError::Storage(e.to_string())),
    }
}

/// Marks every series of the last good page stale (a failed scrape, or a
/// target that went away) and forgets them.
pub fn mark_all_stale(
    app: &mut dyn Appender,
    cache: &mut ScrapeCache,
    ts: Timestamp,
) -> Result<(), ScrapeError> {
    for i in std::mem::take(&mut cache.prev) {
        let e = &cache.entries[i as usize];
        if let Some(l) = &e.labels {
            stale(app, e.sref, l, ts)?;
        }
    }
    Ok(())
}

/// The values of the report series of one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    pub up: bool,
    pub duration_seconds: f64,
    pub stats: PageStats,
}

pub const REPORT_SERIES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

/// Appends `up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
/// `scrape_samples_post_metric_relabeling` and `scrape_series_added`.
pub fn append_report(
    app: &mut dyn Appender,
    target_labels: &Labels,
    ts: Timestamp,
    r: &Report,
) -> Result<(), ScrapeError> {
    let values = [
        if r.up { 1.0 } else { 0.0 },
        r.duration_seconds,
        r.stats.scraped as f64,
        r.stats.post_relabel as f64,
        r.stats.series_added as f64,
    ];
    for (name, v) in REPORT_SERIES.iter().zip(values) {
        let l = report_labels(name, target_labels);
        match app.append(None, &l, ts, v) {
            Ok(_) => {}
            Err(e) if e.is_sample_rejection() => {}
            Err(e) => return Err(ScrapeError::Storage(e.to_string())),
        }
    }
    Ok(())
}

/// Report series go stale with their target.
pub fn stale_report(
    app: &mut dyn Appender,
    target_labels: &Labels,
    ts: Timestamp,
) -> Result<(), ScrapeError> {
    for name in REPORT_SERIES {
        stale(app, None, &report_labels(name, target_labels), ts)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::memory::MemStorage;
    use ember_model::{is_stale_nan, labels, Appendable, Matcher, Queryable, SelectHints};

    /// Every sample in storage: (series, [(t, v)]), v as bits for NaNs.
    fn dump(s: &MemStorage) -> Vec<(Labels, Vec<(i64, f64)>)> {
        let q = s.querier(i64::MIN, i64::MAX).unwrap();
        let set = q.select(true, &SelectHints::default(), &[Matcher::not_equal("__name__", "")]).unwrap();
        set.map(|r| {
            let mut series = r.unwrap();
            let mut v = Vec::new();
            while series.samples.next() {
                v.push(series.samples.at());
            }
            (series.labels, v)
        })
        .collect()
    }

    fn samples_of(s: &MemStorage, name: &str) -> Vec<(Labels, Vec<(i64, f64)>)> {
        dump(s).into_iter().filter(|(l, _)| l.metric_name() == Some(name)).collect()
    }

    fn target() -> Labels {
        labels!("job" => "j", "instance" => "h:1")
    }

    fn opts() -> AppendOptions {
        AppendOptions { honor_timestamps: true, ..Default::default() }
    }

    fn page(
        s: &MemStorage,
        cache: &mut ScrapeCache,
        o: &AppendOptions,
        text: &str,
        ts: i64,
    ) -> Result<PageStats, ScrapeError> {
        let mut app = s.appender();
        let r = append_page(app.as_mut(), cache, &target(), o, text.as_bytes(), Format::PrometheusText, ts);
        match &r {
            Ok(_) => {
                app.commit().unwrap();
            }
            Err(_) => app.rollback(),
        }
        r
    }

    #[test]
    fn samples_get_target_labels_and_scrape_time() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let st = page(&s, &mut c, &opts(), "a 1\nb{x=\"y\"} 2\n", 1000).unwrap();
        assert_eq!(st, PageStats { scraped: 2, post_relabel: 2, series_added: 2, rejected: 0 });
        let d = dump(&s);
        assert_eq!(d[0], (labels!("__name__" => "a", "instance" => "h:1", "job" => "j"), vec![(1000, 1.0)]));
        assert_eq!(d[1].0, labels!("__name__" => "b", "instance" => "h:1", "job" => "j", "x" => "y"));
        // The second page hits the cache: no series added.
        let st = page(&s, &mut c, &opts(), "a 3\nb{x=\"y\"} 4\n", 2000).unwrap();
        assert_eq!(st.series_added, 0);
        assert_eq!(samples_of(&s, "a")[0].1, vec![(1000, 1.0), (2000, 3.0)]);
    }

    #[test]
    fn metadata_is_kept_per_family_and_stored() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let text =
            "# HELP req_total Requests.\n# TYPE req_total counter\nreq_total 1\n# TYPE temp gauge\ntemp 20\n";
        page(&s, &mut c, &opts(), text, 1000).unwrap();
        let m = c.metadata("req_total").unwrap();
        assert_eq!(m.metric_type, ember_model::MetricType::Counter);
        assert_eq!(m.help, "Requests.");
        assert_eq!(c.metadata("temp").unwrap().metric_type, ember_model::MetricType::Gauge);
        assert_eq!(s.metadata("req_total").unwrap().help, "Requests.");
        assert_eq!(c.all_metadata().len(), 2);
        // A page without a family's TYPE forgets it.
        page(&s, &mut c, &opts(), "req_total 2\n", 2000).unwrap();
        assert!(c.metadata("temp").is_none());
    }

    #[test]
    fn shared_metadata_is_replaced_only_when_it_changes() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let text = "# TYPE a counter\na_total 1\n";
        page(&s, &mut c, &opts(), text, 1000).unwrap();
        let first = c.shared_metadata().clone();
        page(&s, &mut c, &opts(), text, 2000).unwrap();
        assert!(Arc::ptr_eq(&first, c.shared_metadata()), "same metadata: same snapshot");
        page(&s, &mut c, &opts(), "# TYPE a gauge\na 1\n", 3000).unwrap();
        assert!(!Arc::ptr_eq(&first, c.shared_metadata()));
        assert_eq!(c.shared_metadata()["a"].metric_type, ember_model::MetricType::Gauge);
        assert_eq!(first["a"].metric_type, ember_model::MetricType::Counter, "old snapshot untouched");
    }

    #[test]
    fn forgetting_the_mapping_keeps_staleness_tracking() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "a 1\nb 2\n", 1000).unwrap();
        c.forget_series_mapping();
        assert_eq!(c.tracked_series(), 2);
        let st = page(&s, &mut c, &opts(), "a 1\n", 2000).unwrap();
        assert_eq!(st.series_added, 1, "the mapping was rebuilt");
        assert!(is_stale_nan(samples_of(&s, "b")[0].1[1].1));
    }

    #[test]
    fn conflicting_labels_are_exported_unless_honored() {
        let scraped =
            labels!("__name__" => "m", "job" => "theirs", "exported_job" => "taken", "instance" => "");
        let out = mutate_sample_labels(&scraped, &target(), false, &[]).unwrap();
        assert_eq!(
            out,
            labels!("__name__" => "m", "job" => "j", "instance" => "h:1", "exported_job" => "taken", "exported_exported_job" => "theirs")
        );
        let out = mutate_sample_labels(&labels!("__name__" => "m", "job" => "theirs"), &target(), true, &[])
            .unwrap();
        assert_eq!(out, labels!("__name__" => "m", "job" => "theirs", "instance" => "h:1"));
    }

    #[test]
    fn timestamps_honored_or_overridden() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "a 1 500\n", 1000).unwrap();
        assert_eq!(samples_of(&s, "a")[0].1, vec![(500, 1.0)]);
        let s = MemStorage::new();
        let o = AppendOptions { honor_timestamps: false, ..opts() };
        page(&s, &mut ScrapeCache::new(), &o, "a 1 500\n", 1000).unwrap();
        assert_eq!(samples_of(&s, "a")[0].1, vec![(1000, 1.0)]);
    }

    #[test]
    fn vanished_series_get_stale_markers() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "a 1\nb 2\n", 1000).unwrap();
        page(&s, &mut c, &opts(), "a 1\n", 2000).unwrap();
        let b = &samples_of(&s, "b")[0].1;
        assert_eq!(b.len(), 2);
        assert_eq!(b[1].0, 2000);
        assert!(is_stale_nan(b[1].1));
        assert_eq!(samples_of(&s, "a")[0].1.len(), 2, "a is not marked");
        // Only once: b is no longer tracked.
        page(&s, &mut c, &opts(), "a 1\n", 3000).unwrap();
        assert_eq!(samples_of(&s, "b")[0].1.len(), 2);
    }

    #[test]
    fn a_reordered_page_still_hits_the_cache() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let names: Vec<String> = (0..100).map(|i| format!("m{{i=\"{i}\"}} {i}\n")).collect();
        let first = page(&s, &mut c, &opts(), &names.concat(), 1000).unwrap();
        assert_eq!(first.series_added, 100);
        // Reversed, then shuffled by a stride: every series is found again.
        let reversed: String = names.iter().rev().cloned().collect();
        assert_eq!(page(&s, &mut c, &opts(), &reversed, 2000).unwrap().series_added, 0);
        let strided: String = (0..100).map(|i| names[(i * 37) % 100].clone()).collect();
        assert_eq!(page(&s, &mut c, &opts(), &strided, 3000).unwrap().series_added, 0);
        for (l, samples) in samples_of(&s, "m") {
            assert_eq!(samples.len(), 3, "{l}");
            assert!(samples.iter().all(|&(_, v)| v.to_string() == l.get("i").unwrap()), "{l}");
        }
        // After the reordering, the entries follow the page again.
        let order: Vec<&str> = c.entries.iter().map(|e| &*e.text).collect();
        let expected: Vec<String> = (0..100).map(|i| format!("m{{i=\"{}\"}}", (i * 37) % 100)).collect();
        assert_eq!(order, expected);
    }

    #[test]
    fn series_that_churned_away_are_forgotten() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "a 1\nb 1\n", 1000).unwrap();
        page(&s, &mut c, &opts(), "a 1\nc 1\n", 2000).unwrap();
        assert_eq!(c.entries.len(), 3, "b is kept one more page");
        page(&s, &mut c, &opts(), "a 1\nd 1\n", 3000).unwrap();
        page(&s, &mut c, &opts(), "a 1\nd 1\n", 4000).unwrap();
        let mut left: Vec<&str> = c.entries.iter().map(|e| &*e.text).collect();
        left.sort_unstable();
        assert_eq!(left, ["a", "c", "d"]);
        page(&s, &mut c, &opts(), "a 1\nd 1\n", 5000).unwrap();
        assert_eq!(c.entries.len(), 2);
        // A forgotten series that comes back is a new series again.
        assert_eq!(page(&s, &mut c, &opts(), "a 1\nb 1\n", 6000).unwrap().series_added, 1);
    }

    #[test]
    fn a_failed_page_does_not_change_what_goes_stale() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let limited = AppendOptions { sample_limit: 2, ..opts() };
        page(&s, &mut c, &limited, "a 1\nb 1\n", 1000).unwrap();
        // Tracks a and c before it fails: neither counts as seen.
        assert_eq!(
            page(&s, &mut c, &limited, "a 1\nc 1\nd 1\n", 2000).unwrap_err(),
            ScrapeError::SampleLimit
        );
        assert_eq!(c.tracked_series(), 2);
        page(&s, &mut c, &limited, "c 1\n", 3000).unwrap();
        for name in ["a", "b"] {
            let samples = &samples_of(&s, name)[0].1;
            assert_eq!(samples.len(), 2, "{name}");
            assert_eq!(samples[1].0, 3000, "{name}");
            assert!(is_stale_nan(samples[1].1), "{name} is marked stale");
        }
        assert_eq!(samples_of(&s, "c")[0].1, vec![(3000, 1.0)]);
    }

    #[test]
    fn the_same_labels_written_differently_are_not_stale() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "m{a=\"1\",b=\"2\"} 1\n", 1000).unwrap();
        let st = page(&s, &mut c, &opts(), "m{b=\"2\",a=\"1\"} 2\n", 2000).unwrap();
        assert_eq!(st.series_added, 1, "another text is another cache entry");
        assert_eq!(samples_of(&s, "m")[0].1, vec![(1000, 1.0), (2000, 2.0)], "no staleness marker");
    }

    #[test]
    fn unchanged_metadata_keeps_its_snapshot_and_a_lost_field_is_a_change() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let text = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n# HELP b B.\n# TYPE b gauge\nb 1\n";
        page(&s, &mut c, &opts(), text, 1000).unwrap();
        let first = c.shared_metadata().clone();
        page(&s, &mut c, &opts(), text, 2000).unwrap();
        assert!(Arc::ptr_eq(&first, c.shared_metadata()));
        // The HELP line of a_total is gone: its help is empty now.
        page(
            &s,
            &mut c,
            &opts(),
            "# TYPE a_total counter\na_total 1\n# HELP b B.\n# TYPE b gauge\nb 1\n",
            3000,
        )
        .unwrap();
        assert_eq!(c.metadata("a_total").unwrap().help, "");
        assert_eq!(c.metadata("b").unwrap().help, "B.");
        // A family no longer on the page is dropped.
        page(&s, &mut c, &opts(), "# TYPE a_total counter\na_total 1\n", 4000).unwrap();
        assert!(c.metadata("b").is_none());
        assert_eq!(c.all_metadata().len(), 1);
    }

    #[test]
    fn explicit_timestamps_are_not_stale_tracked_unless_asked() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "a 1 900\n", 1000).unwrap();
        page(&s, &mut c, &opts(), "", 2000).unwrap();
        assert_eq!(samples_of(&s, "a")[0].1.len(), 1);
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let o = AppendOptions { track_timestamps_staleness: true, ..opts() };
        page(&s, &mut c, &o, "a 1 900\n", 1000).unwrap();
        page(&s, &mut c, &o, "", 2000).unwrap();
        assert!(is_stale_nan(samples_of(&s, "a")[0].1[1].1));
    }

    #[test]
    fn metric_relabelling_drops_and_rewrites() {
        let cfg = ember_config::parse_str(
            "scrape_configs:\n  - job_name: j\n    metric_relabel_configs:\n      - source_labels: [__name__]\n        regex: 'go_.*'\n        action: drop\n      - source_labels: [__name__]\n        target_label: orig\n",
        )
        .unwrap();
        let o = AppendOptions {
            metric_relabel_configs: cfg.scrape_configs[0].metric_relabel_configs.clone(),
            ..opts()
        };
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        let st = page(&s, &mut c, &o, "go_x 1\nkeep 2\n", 1000).unwrap();
        assert_eq!((st.scraped, st.post_relabel), (2, 1));
        let d = dump(&s);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].0.get("orig"), Some("keep"));
        // Cached drop decision holds on the next page.
        let st = page(&s, &mut c, &o, "go_x 1\nkeep 2\n", 2000).unwrap();
        assert_eq!((st.scraped, st.post_relabel), (2, 1));
    }

    #[test]
    fn limits_fail_the_page() {
        let s = MemStorage::new();
        let o = AppendOptions { sample_limit: 2, ..opts() };
        assert_eq!(
            page(&s, &mut ScrapeCache::new(), &o, "a 1\nb 1\nc 1\n", 1),
            Err(ScrapeError::SampleLimit)
        );
        assert!(dump(&s).is_empty(), "rolled back");
        assert!(page(&s, &mut ScrapeCache::new(), &o, "a 1\nb 1\n", 1).is_ok());

        let o = AppendOptions { label_limit: 3, ..opts() };
        let e = page(&s, &mut ScrapeCache::new(), &o, "m{a=\"1\",b=\"2\"} 1\n", 1).unwrap_err();
        assert_eq!(e.to_string(), "label_limit exceeded (metric: m, number of labels: 5, limit: 3)");
        let o = AppendOptions { label_value_length_limit: 3, ..opts() };
        let e = page(&s, &mut ScrapeCache::new(), &o, "m{a=\"long\"} 1\n", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "label_value_length_limit exceeded (metric: m, label name: a, value: \"long\", length: 4, limit: 3)"
        );
        // `__name__` (8 bytes) counts like any other label name.
        let o = AppendOptions { label_name_length_limit: 10, ..opts() };
        let e = page(&s, &mut ScrapeCache::new(), &o, "m{abcdefghijk=\"1\"} 1\n", 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "label_name_length_limit exceeded (metric: m, label name: abcdefghijk, length: 11, limit: 10)"
        );
        let o = AppendOptions { label_name_length_limit: 7, ..opts() };
        let e = page(&s, &mut ScrapeCache::new(), &o, "m 1\n", 1).unwrap_err();
        assert!(e.to_string().contains("label name: __name__"), "{e}");
    }

    #[test]
    fn parse_error_fails_the_page() {
        let s = MemStorage::new();
        let e = page(&s, &mut ScrapeCache::new(), &opts(), "a 1\nb{ 2\n", 1).unwrap_err();
        assert!(matches!(e, ScrapeError::Parse(_)), "{e:?}");
    }

    #[test]
    fn out_of_order_samples_are_counted_not_fatal() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "a 1 2000\n", 3000).unwrap();
        let st = page(&s, &mut c, &opts(), "a 1 1000\nb 1\n", 4000).unwrap();
        assert_eq!(st.rejected, 1);
        assert_eq!(samples_of(&s, "b").len(), 1);
    }

    #[test]
    fn report_and_failure_staleness() {
        let s = MemStorage::new();
        let mut c = ScrapeCache::new();
        page(&s, &mut c, &opts(), "a 1\n", 1000).unwrap();
        let mut app = s.appender();
        mark_all_stale(app.as_mut(), &mut c, 2000).unwrap();
        let r = Report { up: false, duration_seconds: 0.5, stats: PageStats::default() };
        append_report(app.as_mut(), &target(), 2000, &r).unwrap();
        app.commit().unwrap();
        assert!(is_stale_nan(samples_of(&s, "a")[0].1[1].1));
        let up = samples_of(&s, "up");
        assert_eq!(up[0].0, labels!("__name__" => "up", "instance" => "h:1", "job" => "j"));
        assert_eq!(up[0].1, vec![(2000, 0.0)]);
        assert_eq!(samples_of(&s, "scrape_duration_seconds")[0].1, vec![(2000, 0.5)]);
        for n in REPORT_SERIES {
            assert_eq!(samples_of(&s, n).len(), 1, "{n}");
        }
        assert_eq!(c.tracked_series(), 0);
    }
}
