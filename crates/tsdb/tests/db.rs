//! Database directory: WAL replay, corrupt tails, and crash recovery with a
//! child process killed with SIGKILL.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use ember_model::{Appendable, Labels, Matcher, Metadata, MetricType, Queryable, SelectHints};
use ember_tsdb::wal::{list_segments, segment_name, PAGE_SIZE};
use ember_tsdb::{Db, DbOptions, SyncPolicy, WalOptions};

fn l(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs)
}

/// Every sample in the db as labels → [(t, value bits)].
fn dump(db: &Db) -> BTreeMap<Labels, Vec<(i64, u64)>> {
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut out = BTreeMap::new();
    for s in q.select(true, &SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let mut v = vec![];
        while s.samples.next() {
            let (t, x) = s.samples.at();
            v.push((t, x.to_bits()));
        }
        assert!(s.samples.err().is_none());
        out.insert(s.labels, v);
    }
    out
}

fn fill(db: &Db, batches: i64, series: usize) {
    for b in 0..batches {
        let mut app = db.appender();
        for s in 0..series {
            let lbl = l(&[("__name__", "m"), ("s", &s.to_string())]);
            app.append(None, &lbl, b * 15_000, (b * 7 + s as i64) as f64 * 0.25).unwrap();
        }
        app.commit().unwrap();
    }
}

#[test]
fn reopen_replays_everything() {
    let dir = tempfile::tempdir().unwrap();
    let small = DbOptions {
        wal: WalOptions { segment_size: PAGE_SIZE, ..WalOptions::default() },
        ..DbOptions::default()
    };
    let before;
    {
        let db = Db::open(dir.path(), small.clone()).unwrap();
        fill(&db, 300, 50);
        let mut app = db.appender();
        let meta = Metadata { metric_type: MetricType::Gauge, help: "a gauge".into(), unit: "bytes".into() };
        app.update_metadata(None, &l(&[("__name__", "m"), ("s", "0")]), &meta).unwrap();
        app.commit().unwrap();
        before = dump(&db);
        assert_eq!(before.len(), 50);
    }
    assert!(list_segments(&dir.path().join("wal")).unwrap().len() > 2, "segments rotated");
    let db = Db::open(dir.path(), small).unwrap();
    assert_eq!(dump(&db), before);
    assert_eq!(db.replay_stats().samples, 300 * 50);
    assert_eq!(db.replay_stats().truncated_at, None);
    assert_eq!(db.head().metadata("m").unwrap().help, "a gauge");
    assert_eq!(db.metrics().head_series.load(Ordering::Relaxed), 50);
    // Ids survive and new ids continue after them.
    let old = db.head().series_by_labels(&l(&[("__name__", "m"), ("s", "49")])).unwrap().id();
    let mut app = db.appender();
    let r = app.append(None, &l(&[("__name__", "new")]), 299 * 15_000, 1.0).unwrap();
    app.commit().unwrap();
    assert_eq!(r.get(), old + 1);
    // Out-of-order replay is rejected again: the head continues after the
    // replayed max time.
    let mut app = db.appender();
    let err = app.append(None, &l(&[("__name__", "m"), ("s", "1")]), 298 * 15_000, 5.0);
    assert_eq!(err, Err(ember_model::AppendError::OutOfOrder));
}

fn last_segment(dir: &Path) -> std::path::PathBuf {
    let wal = dir.join("wal");
    let segs = list_segments(&wal).unwrap();
    // The newest segment is the empty one opened by the last writer; find
    // the last non-empty.
    segs.iter()
        .rev()
        .map(|s| wal.join(segment_name(*s)))
        .find(|p| std::fs::metadata(p).unwrap().len() > 0)
        .unwrap()
}

#[test]
fn flipped_byte_in_last_record_truncates_only_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let full;
    {
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        fill(&db, 9, 20);
        let partial = dump(&db);
        fill_from(&db, 9, 20);
        full = dump(&db);
        assert_ne!(partial, full);
    }
    let seg = last_segment(dir.path());
    let mut bytes = std::fs::read(&seg).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&seg, &bytes).unwrap();

    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let got = dump(&db);
    // Everything but the last batch (timestamp 9 * 15s) is there.
    for (lbl, samples) in &full {
        let want: Vec<(i64, u64)> = samples.iter().copied().filter(|(t, _)| *t < 9 * 15_000).collect();
        assert_eq!(got.get(lbl).cloned().unwrap_or_default(), want, "{lbl}");
    }
    assert!(db.replay_stats().truncated_at.is_some());
    assert_eq!(db.metrics().wal_corruptions_total.load(Ordering::Relaxed), 1);
    // The repaired WAL replays cleanly and accepts new writes.
    fill_from(&db, 9, 20);
    drop(db);
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    assert_eq!(db.replay_stats().truncated_at, None);
    assert_eq!(dump(&db), full);
}

fn fill_from(db: &Db, b: i64, series: usize) {
    let mut app = db.appender();
    for s in 0..series {
        let lbl = l(&[("__name__", "m"), ("s", &s.to_string())]);
        app.append(None, &lbl, b * 15_000, (b * 7 + s as i64) as f64 * 0.25).unwrap();
    }
    app.commit().unwrap();
}

#[test]
fn truncated_page_is_cut_at_last_good_record() {
    let dir = tempfile::tempdir().unwrap();
    let opts =
        DbOptions { wal: WalOptions { compress: false, ..WalOptions::default() }, ..DbOptions::default() };
    let mut sizes = vec![];
    let seg;
    {
        let db = Db::open(dir.path(), opts.clone()).unwrap();
        seg = dir.path().join("wal").join(segment_name(0));
        // Large batches so records span pages.
        for b in 0..6 {
            fill_from(&db, b, 4000);
            sizes.push(std::fs::metadata(&seg).unwrap().len());
        }
    }
    // Cut in the middle of the last batch's pages.
    let cut = (sizes[4] + sizes[5]) / 2;
    assert!(sizes[5] - sizes[4] > PAGE_SIZE as u64, "the last batch spans pages");
    std::fs::OpenOptions::new().write(true).open(&seg).unwrap().set_len(cut).unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    let got = dump(&db);
    assert_eq!(got.len(), 4000);
    assert!(got.values().all(|s| s.len() == 5 && s.last().unwrap().0 == 4 * 15_000));
    let c = db.replay_stats().truncated_at.clone().unwrap();
    assert_eq!(c.offset, sizes[4]);
}

const CHILD_ENV: &str = "EMBER_TSDB_CRASH_CHILD_DIR";
// Enough series that a batch's records span several WAL pages, so a kill
// can land between the writes of one record.
const SERIES: usize = 2000;

fn series_labels(s: usize) -> Labels {
    l(&[("__name__", "crash"), ("s", &s.to_string())])
}

/// The child side of `kill9_loses_no_acknowledged_batch`: appends batches
/// forever, printing `ACK <batch>` after each commit returns. Does nothing
/// when run as an ordinary test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let opts = DbOptions {
        wal: WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() },
        ..DbOptions::default()
    };
    let db = Db::open(Path::new(&dir), opts).unwrap();
    let start = if db.head().max_time() == i64::MIN { 0 } else { db.head().max_time() / 1000 + 1 };
    let mut out = std::io::stdout().lock();
    writeln!(out, "START {start}").unwrap();
    out.flush().unwrap();
    for b in start.. {
        let mut app = db.appender();
        for s in 0..SERIES {
            app.append(None, &series_labels(s), b * 1000, b as f64).unwrap();
        }
        // A new series every batch, so series records are torn too.
        app.append(None, &l(&[("__name__", "crash_new"), ("b", &b.to_string())]), b * 1000, b as f64)
            .unwrap();
        app.commit().unwrap();
        writeln!(out, "ACK {b}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn kill9_loses_no_acknowledged_batch() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<i64> = vec![];
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _round in 0..6 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let target = 5 + (rand() % 60) as usize;
        let mut n = 0;
        while n < target {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(b) = line.strip_prefix("ACK ") {
                acked.push(b.trim().parse().unwrap());
                n += 1;
            }
        }
        // Let it run a random extra moment so the kill lands mid-commit
        // at varying points.
        std::thread::sleep(std::time::Duration::from_micros(rand() % 3000));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // Lines printed before the kill are acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some(b) = line.strip_prefix("ACK ") {
                acked.push(b.trim().parse().unwrap());
            }
        }
    }
    assert!(acked.len() >= 30);
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut per_series = 0;
    for s in q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", "crash")]).unwrap() {
        let mut s = s.unwrap();
        let mut have = std::collections::HashSet::new();
        while s.samples.next() {
            let (t, v) = s.samples.at();
            assert_eq!(v, (t / 1000) as f64, "sample value intact");
            have.insert(t / 1000);
        }
        for b in &acked {
            assert!(have.contains(b), "acknowledged batch {b} missing from {}", s.labels);
        }
        per_series += 1;
    }
    assert_eq!(per_series, SERIES);
    for b in &acked {
        let lbl = l(&[("__name__", "crash_new"), ("b", &b.to_string())]);
        assert!(db.head().series_by_labels(&lbl).is_some(), "series of batch {b}");
    }
    // Whatever replay repaired, the WAL is now clean and stable.
    let first = dump(&db);
    drop(q);
    drop(db);
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    assert_eq!(db.replay_stats().truncated_at, None);
    assert_eq!(dump(&db), first);
}

#[test]
fn replay_is_the_same_with_any_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        fill(&db, 50, 300);
    }
    let wal = dir.path().join("wal");
    let mut dumps = vec![];
    for workers in [1, 3, 8] {
        let head = ember_tsdb::Head::new(ember_tsdb::HeadOptions::default());
        let stats = ember_tsdb::db::replay_with_workers(&head, &wal, workers).unwrap();
        assert_eq!((stats.samples, stats.series, stats.unknown_refs), (50 * 300, 300, 0));
        let q = head.querier(i64::MIN, i64::MAX).unwrap();
        let mut d = vec![];
        for s in q.select(true, &SelectHints::default(), &[]).unwrap() {
            let mut s = s.unwrap();
            let mut v = vec![];
            while s.samples.next() {
                v.push((s.samples.at().0, s.samples.at().1.to_bits()));
            }
            d.push((s.labels, v));
        }
        assert_eq!(head.min_time(), 0);
        assert_eq!(head.max_time(), 49 * 15_000);
        dumps.push(d);
    }
    assert_eq!(dumps[0].len(), 300);
    assert_eq!(dumps[0], dumps[1]);
    assert_eq!(dumps[0], dumps[2]);
}

/// Prometheus itself reads ember's WAL: `promtool tsdb dump` opens the
/// directory read-only, replays `wal/` into its head and prints every
/// sample. Skipped when promtool is not installed.
#[test]
fn promtool_reads_our_wal() {
    let promtool = Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut want = vec![];
    {
        let db = Db::open(dir.path(), DbOptions::default()).unwrap();
        let mut app = db.appender();
        let meta = Metadata { metric_type: MetricType::Counter, help: "h".into(), unit: String::new() };
        app.update_metadata(None, &l(&[("__name__", "req_total"), ("code", "200")]), &meta).unwrap();
        app.commit().unwrap();
        for b in 0..200i64 {
            let mut app = db.appender();
            for (name, code) in [("req_total", "200"), ("req_total", "500"), ("up", "")] {
                let lbl = if code.is_empty() {
                    l(&[("__name__", name), ("job", "j")])
                } else {
                    l(&[("__name__", name), ("code", code), ("job", "j")])
                };
                let v =
                    if b == 150 && name == "up" { ember_model::stale_nan() } else { (b * 3) as f64 + 0.5 };
                app.append(None, &lbl, 1_700_000_000_000 + b * 15_000, v).unwrap();
                want.push((lbl.to_string(), 1_700_000_000_000 + b * 15_000, v.to_bits()));
            }
            app.commit().unwrap();
        }
    }
    let out = Command::new(promtool)
        .args(["tsdb", "dump", "--min-time=0", "--max-time=9999999999999"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    // Lines look like `{__name__="up", job="j"} 2.5 1700000000000`.
    let mut got = vec![];
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let (lbls, rest) = line.rsplit_once("} ").unwrap();
        let mut it = rest.split(' ');
        let v: f64 = it.next().unwrap().parse().unwrap();
        let t: i64 = it.next().unwrap().parse().unwrap();
        got.push((format!("{lbls}}}").replace(", ", ","), t, v));
    }
    assert_eq!(got.len(), want.len(), "{}", String::from_utf8_lossy(&out.stdout));
    let mut want: Vec<(String, i64, u64)> =
        want.into_iter().map(|(l, t, v)| (l.replace(", ", ","), t, v)).collect();
    want.sort();
    got.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for ((gl, gt, gv), (wl, wt, wv)) in got.iter().zip(&want) {
        assert_eq!((gl, gt), (wl, wt));
        // promtool prints the stale marker as NaN.
        if f64::from_bits(*wv).is_nan() {
            assert!(gv.is_nan());
        } else {
            assert_eq!(gv.to_bits(), *wv);
        }
    }
}

/// ember replays a WAL written by Prometheus 2.42 (see testdata/README.md).
#[test]
fn replays_a_prometheus_wal() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/prometheus-2.42/wal");
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("wal")).unwrap();
    std::fs::copy(src.join("00000000"), dir.path().join("wal/00000000")).unwrap();
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    let stats = db.replay_stats().clone();
    assert_eq!(stats.truncated_at, None);
    assert_eq!((stats.bad_records, stats.unknown_refs), (0, 0));
    assert!(stats.series > 100, "{stats:?}");
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let up = Matcher::equal("__name__", "up");
    let mut set = q.select(true, &SelectHints::default(), &[up]).unwrap();
    let mut s = set.next().unwrap().unwrap();
    assert_eq!(s.labels, l(&[("__name__", "up"), ("instance", "127.0.0.1:19391"), ("job", "prom")]));
    let mut n = 0;
    let mut last = i64::MIN;
    while s.samples.next() {
        let (t, v) = s.samples.at();
        assert!(v == 1.0 || ember_model::is_stale_nan(v), "up is 1 (or stale at shutdown): {v}");
        assert!(t > last + 500, "about one sample per second");
        last = t;
        n += 1;
    }
    // `promtool tsdb dump` of the same WAL prints 298 samples, one of them
    // for `up` (the first scrape came late in the six seconds).
    assert_eq!(n, 1);
    assert_eq!(stats.samples, 298);
    assert!(set.next().is_none());
    drop(set);
    let versions = q
        .label_values(
            "version",
            &ember_model::LabelHints::default(),
            &[Matcher::equal("__name__", "prometheus_build_info")],
        )
        .unwrap();
    assert_eq!(versions, vec!["2.42.0+ds".to_string()], "Debian's build");
    // It keeps appending after the replayed data.
    drop(q);
    let mut app = db.appender();
    app.append(
        None,
        &l(&[("__name__", "up"), ("instance", "127.0.0.1:19391"), ("job", "prom")]),
        last + 1000,
        1.0,
    )
    .unwrap();
    app.commit().unwrap();
}

/// A hand-made WAL whose series records reuse an id: the first series keeps
/// it, the second gets a fresh one, samples of the id go to the first, and
/// samples of an unknown id are counted and skipped.
#[test]
fn conflicting_and_unknown_ids_in_wal() {
    use ember_tsdb::record;
    use ember_tsdb::wal::Wal;
    let dir = tempfile::tempdir().unwrap();
    let a = l(&[("__name__", "a")]);
    let b = l(&[("__name__", "b")]);
    {
        let metrics = std::sync::Arc::new(ember_tsdb::TsdbMetrics::new());
        let mut w = Wal::open(&dir.path().join("wal"), WalOptions::default(), metrics).unwrap();
        let (mut r1, mut r2, mut r3) = (vec![], vec![], vec![]);
        record::encode_series([(7u64, &a), (7u64, &b)], &mut r1);
        record::encode_samples([(7u64, 1000i64, 1.0f64), (9, 1000, 2.0)], &mut r2);
        record::encode_samples([(7u64, 2000i64, 3.0f64)], &mut r3);
        // `a` again under a new id: that id's samples go to `a`.
        let (mut r4, mut r5) = (vec![], vec![]);
        record::encode_series([(10u64, &a)], &mut r4);
        record::encode_samples([(10u64, 3000i64, 4.0f64)], &mut r5);
        w.log(&[&r1, &r2, &r3, &r4, &r5]).unwrap();
    }
    let db = Db::open(dir.path(), DbOptions::default()).unwrap();
    assert_eq!(db.replay_stats().unknown_refs, 1);
    assert_eq!(db.head().series_by_labels(&a).unwrap().id(), 7);
    assert_eq!(db.head().series_by_labels(&b).unwrap().id(), 8);
    let got = dump(&db);
    assert_eq!(got[&a], vec![(1000, 1.0f64.to_bits()), (2000, 3.0f64.to_bits()), (3000, 4.0f64.to_bits())]);
    assert!(!got.contains_key(&b), "b has no samples");
    // New series continue after the largest id.
    let mut app = db.appender();
    assert_eq!(app.append(None, &l(&[("__name__", "c")]), 3000, 0.0).unwrap().get(), 11);
}
