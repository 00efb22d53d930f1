//! Helpers shared by the TSDB integration tests: a small workload of ten
//! `reqs_total` series, reading everything back, and promtool.
#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ember_model::{labels, Appendable, Labels, Matcher, Queryable, SelectHints};
use ember_tsdb::Db;

pub const H: i64 = 3600 * 1000;
pub const M: i64 = 60 * 1000;
pub const STEP: i64 = 15_000;

/// Samples by series, as appended or as read back.
pub type Data = BTreeMap<Labels, Vec<(i64, f64)>>;

/// Samples by the series' text (`{__name__="…", …}`), as promtool prints.
pub type TextData = BTreeMap<String, Vec<(i64, f64)>>;

/// Series `i` of the workload.
pub fn instance(i: usize) -> Labels {
    labels!("__name__" => "reqs_total", "instance" => format!("host-{i}").as_str(), "job" => "api")
}

/// Appends the 10 workload series from `from` to `to` (exclusive) every
/// 15 s, one batch per timestamp, like scrapes.
pub fn ingest(db: &Db, from: i64, to: i64, data: &mut Data) {
    let series: Vec<Labels> = (0..10).map(instance).collect();
    let mut t = from;
    while t < to {
        let mut a = db.appender();
        for (i, l) in series.iter().enumerate() {
            let v = (t / STEP) as f64 * (i + 1) as f64;
            a.append(None, l, t, v).unwrap();
            data.entry(l.clone()).or_default().push((t, v));
        }
        a.commit().unwrap();
        t += STEP;
    }
}

/// Every sample of the series matching `matchers`.
pub fn read(db: &impl Queryable, matchers: &[Matcher]) -> Data {
    let q = db.querier(i64::MIN / 2, i64::MAX / 2).unwrap();
    let mut out = Data::new();
    for s in q.select(true, &SelectHints::default(), matchers).unwrap() {
        let mut s = s.unwrap();
        let mut v = vec![];
        while s.samples.next() {
            v.push(s.samples.at());
        }
        assert!(s.samples.err().is_none());
        out.insert(s.labels, v);
    }
    out
}

/// Every sample of the workload.
pub fn read_all(db: &impl Queryable) -> Data {
    read(db, &[Matcher::equal("job", "api")])
}

pub fn block_ranges(db: &Db) -> Vec<(i64, i64)> {
    db.blocks().iter().map(|b| (b.meta().min_time, b.meta().max_time)).collect()
}

pub fn as_text(data: &Data) -> TextData {
    data.iter().map(|(l, v)| (l.to_string(), v.clone())).collect()
}

/// Debian's promtool; `None` (the test skips) when it is missing, except
/// under `CI=true`, where it must be there.
pub fn promtool() -> Option<&'static str> {
    if Path::new("/usr/bin/promtool").exists() {
        return Some("/usr/bin/promtool");
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "promtool is required under CI=true");
    eprintln!("skipping: promtool not installed");
    None
}

/// `promtool tsdb dump` of `dir`: every sample of the blocks and the head
/// (read from the WAL and its checkpoint), printed `{labels} value
/// timestamp`. A sample promtool prints twice (in a block and the WAL) is
/// kept once.
pub fn promtool_dump(promtool: &str, dir: &Path) -> TextData {
    // promtool 2.42 refuses a directory without wal/.
    std::fs::create_dir_all(dir.join("wal")).unwrap();
    let out = Command::new(promtool).args(["tsdb", "dump"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut got = TextData::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().filter(|l| !l.is_empty()) {
        let close = line.rfind('}').unwrap();
        let (lbls, rest) = line.split_at(close + 1);
        let mut parts = rest.split_whitespace();
        let v: f64 = parts.next().unwrap().parse().unwrap();
        let t: i64 = parts.next().unwrap().parse().unwrap();
        got.entry(lbls.to_owned()).or_default().push((t, v));
    }
    for v in got.values_mut() {
        v.sort_by_key(|x| x.0);
        v.dedup_by_key(|x| x.0);
    }
    got
}
