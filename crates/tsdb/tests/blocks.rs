//! Part 2: the head becomes blocks, blocks merge, retention deletes, and
//! everything reads back as one storage — in ember and in promtool.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ember_model::{labels, AppendError, Appendable, Labels, Matcher, Queryable, SelectHints};
use ember_tsdb::{Db, DbOptions};

const H: i64 = 3600 * 1000;
const STEP: i64 = 15_000;

fn opts() -> DbOptions {
    DbOptions { min_block_duration: H, retention_time: None, ..DbOptions::default() }
}

type Data = BTreeMap<Labels, Vec<(i64, f64)>>;

/// Appends 10 series from `from` to `to` (exclusive) every 15 s, one batch
/// per timestamp, like scrapes.
fn ingest(db: &Db, from: i64, to: i64, data: &mut Data) {
    let series: Vec<Labels> = (0..10)
        .map(|i| labels!("__name__" => "reqs_total", "instance" => format!("host-{i}").as_str(), "job" => "api"))
        .collect();
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

fn read_all(db: &Db) -> Data {
    let q = db.querier(i64::MIN / 2, i64::MAX / 2).unwrap();
    let mut out = Data::new();
    for s in q.select(true, &SelectHints::default(), &[Matcher::equal("job", "api")]).unwrap() {
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

fn block_ranges(db: &Db) -> Vec<(i64, i64)> {
    db.blocks().iter().map(|b| (b.meta().min_time, b.meta().max_time)).collect()
}

#[test]
fn head_becomes_blocks_and_reads_back_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        ingest(&db, 0, 4 * H, &mut data);
        assert!(db.blocks().is_empty());
        let stats = db.compact().unwrap();
        // The head spanned 4h: ranges [0,1h), [1h,2h), [2h,3h) were cut; the
        // first two then merged (they end before the newest block).
        assert_eq!(stats.head_blocks, 3, "{stats:?}");
        assert_eq!(stats.merged_blocks, 1, "{stats:?}");
        assert_eq!(block_ranges(&db), vec![(0, 2 * H), (2 * H, 3 * H)]);
        assert_eq!(db.head().min_time(), 3 * H);
        assert_eq!(read_all(&db), data, "every sample once, across blocks and head");
        // Time already in blocks is closed for appends.
        let mut a = db.appender();
        let l = labels!("__name__" => "reqs_total", "instance" => "host-0", "job" => "api");
        assert_eq!(a.append(None, &l, 2 * H, 1.0), Err(AppendError::OutOfBounds));
        // Only segments after the checkpoint remain.
        let wal: Vec<String> = std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(wal.iter().any(|n| n.starts_with("checkpoint.")), "{wal:?}");
        ingest(&db, 4 * H, 4 * H + 10 * STEP, &mut data);
        db.sync().unwrap();
    }
    // Reopen: blocks + checkpoint + WAL give the same data.
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.replay_stats().checkpoint.is_some());
    assert_eq!(block_ranges(&db), vec![(0, 2 * H), (2 * H, 3 * H)]);
    assert_eq!(read_all(&db), data);
}

#[test]
fn a_second_process_cannot_open_the_same_directory() {
    let dir = tempfile::tempdir().unwrap();
    let _db = Db::open(dir.path(), opts()).unwrap();
    let err = Db::open(dir.path(), opts()).unwrap_err();
    assert!(err.to_string().starts_with("lock DB directory"), "{err}");
    let relaxed = DbOptions { no_lockfile: true, ..opts() };
    // Without the lock file nothing stops it (as Prometheus's flag).
    drop(Db::open(dir.path(), relaxed));
}

#[test]
fn retention_deletes_old_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    let db = Db::open(
        dir.path(),
        DbOptions { retention_time: Some(2 * H), max_block_duration: Some(H), ..opts() },
    )
    .unwrap();
    ingest(&db, 0, 6 * H, &mut data);
    db.compact().unwrap();
    // Blocks [0..5h) were cut (1h each, no merging above 1h); those ending
    // more than 2h before the newest block's end went.
    let ranges = block_ranges(&db);
    assert_eq!(ranges, vec![(2 * H, 3 * H), (3 * H, 4 * H), (4 * H, 5 * H)]);
    let got = read_all(&db);
    let first = got.values().next().unwrap().first().unwrap().0;
    assert_eq!(first, 2 * H);
}

#[test]
fn half_written_blocks_are_ignored_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        ingest(&db, 0, 3 * H, &mut data);
        db.compact().unwrap();
    }
    // A crash while writing a block leaves a temporary directory.
    let junk = dir.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAV.tmp-for-creation");
    std::fs::create_dir_all(junk.join("chunks")).unwrap();
    std::fs::write(junk.join("chunks/000001"), b"partial").unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(!junk.exists());
    assert_eq!(read_all(&db), data);
}

fn promtool() -> Option<&'static str> {
    if Path::new("/usr/bin/promtool").exists() {
        return Some("/usr/bin/promtool");
    }
    assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "promtool is required under CI=true");
    eprintln!("skipping: promtool not installed");
    None
}

/// `promtool tsdb dump` prints `{labels} value timestamp` for every sample
/// of the blocks and the head (read from the WAL and its checkpoint).
fn parse_dump(text: &str) -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let close = line.rfind('}').unwrap();
        let (lbls, rest) = line.split_at(close + 1);
        let mut parts = rest.split_whitespace();
        let v: f64 = parts.next().unwrap().parse().unwrap();
        let t: i64 = parts.next().unwrap().parse().unwrap();
        out.entry(lbls.to_owned()).or_default().push((t, v));
    }
    for v in out.values_mut() {
        v.sort_by_key(|x| x.0);
        v.dedup_by_key(|x| x.0);
    }
    out
}

#[test]
fn promtool_reads_the_whole_data_directory() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        ingest(&db, 0, 4 * H, &mut data);
        db.compact().unwrap();
        db.sync().unwrap();
    }
    let list = Command::new(promtool).args(["tsdb", "list"]).arg(dir.path()).output().unwrap();
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    let listed = String::from_utf8_lossy(&list.stdout);
    assert_eq!(listed.lines().count(), 3, "header + 2 blocks: {listed}");

    let dump = Command::new(promtool).args(["tsdb", "dump"]).arg(dir.path()).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dumped = parse_dump(&String::from_utf8_lossy(&dump.stdout));
    let want: BTreeMap<String, Vec<(i64, f64)>> =
        data.iter().map(|(l, v)| (l.to_string(), v.clone())).collect();
    assert_eq!(dumped, want, "blocks + checkpoint + WAL, as promtool reads them");
}

#[test]
fn deletion_in_blocks_hides_samples_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    let victim = labels!("__name__" => "reqs_total", "instance" => "host-3", "job" => "api");
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        ingest(&db, 0, 4 * H, &mut data);
        db.compact().unwrap();
        let n = db.delete_in_blocks(H, 2 * H - 1, &[Matcher::equal("instance", "host-3")]).unwrap();
        assert_eq!(n, 1, "one block holds [1h, 2h) of the series");
        data.get_mut(&victim).unwrap().retain(|&(t, _)| !(H..2 * H).contains(&t));
        assert_eq!(read_all(&db), data);
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db), data, "tombstones are on disk");
}
