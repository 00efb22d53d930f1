//! Deletion (head and blocks), tombstone cleaning, snapshots and head
//! statistics: what the admin API and `/api/v1/status/tsdb` stand on.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;

use ember_model::{labels, Appendable, LabelHints, Labels, Matcher, Queryable};
use ember_tsdb::{Db, DbOptions};
use support::*;

mod support;

fn opts() -> DbOptions {
    // No merging: each test knows its blocks by their 1h ranges.
    DbOptions {
        min_block_duration: H,
        max_block_duration: Some(H),
        retention_time: None,
        ..DbOptions::default()
    }
}

/// Removes `[mint, maxt]` of `series` from the expectation.
fn forget(data: &mut Data, series: &Labels, mint: i64, maxt: i64) {
    let v = data.get_mut(series).unwrap();
    v.retain(|&(t, _)| t < mint || t > maxt);
    if v.is_empty() {
        data.remove(series);
    }
}

#[test]
fn head_deletion_hides_samples_and_survives_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        ingest(&db, 0, 30 * M, &mut data);
        assert!(db.blocks().is_empty(), "everything is in the head");
        let n = db.delete(5 * M, 10 * M, &[Matcher::equal("instance", "host-3")]).unwrap();
        assert_eq!(n, 1);
        forget(&mut data, &instance(3), 5 * M, 10 * M);
        // The whole of host-5: the series is no longer selected.
        assert_eq!(db.delete(i64::MIN, i64::MAX, &[Matcher::equal("instance", "host-5")]).unwrap(), 1);
        data.remove(&instance(5));
        assert_eq!(read_all(&db), data);
        assert!(read(&db, &[Matcher::equal("instance", "host-5")]).is_empty());
        // Nothing matched: nothing deleted, nothing logged.
        assert_eq!(db.delete(0, H, &[Matcher::equal("instance", "nope")]).unwrap(), 0);
        // A deletion covers only samples that existed when it was made.
        ingest(&db, 30 * M, 31 * M, &mut data);
        assert_eq!(data[&instance(5)].len(), 4, "only the new samples are expected");
        assert_eq!(read_all(&db), data, "later samples of a deleted series are visible");
        db.sync().unwrap();
    }
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db), data, "the tombstones record was replayed");
    assert_eq!(db.head().num_tombstoned_series(), 2);
}

#[test]
fn head_deletion_is_applied_when_the_head_becomes_blocks_and_kept_in_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        ingest(&db, 0, 4 * H, &mut data);
        assert!(db.blocks().is_empty());
        // One range that will become a block, one that stays in the head.
        db.delete(H + 10 * M, H + 20 * M, &[Matcher::equal("instance", "host-3")]).unwrap();
        forget(&mut data, &instance(3), H + 10 * M, H + 20 * M);
        db.delete(3 * H + 5 * M, 3 * H + 6 * M, &[Matcher::equal("instance", "host-4")]).unwrap();
        forget(&mut data, &instance(4), 3 * H + 5 * M, 3 * H + 6 * M);
        let stats = db.compact().unwrap();
        assert_eq!(stats.head_blocks, 3);
        assert_eq!(read_all(&db), data);
        for b in db.blocks() {
            assert!(b.tombstones().is_empty(), "deleted samples are left out, not tombstoned");
            assert_eq!(b.meta().stats.num_tombstones, 0);
        }
        let block1 = db.blocks().into_iter().find(|b| b.meta().min_time == H).unwrap();
        let per_series = (H / STEP) as u64;
        assert_eq!(block1.meta().stats.num_samples, 10 * per_series - (10 * M / STEP + 1) as u64);
        // The head's deletion outside the persisted range is still there.
        assert_eq!(
            db.head().deleted_intervals(db.head().series_by_labels(&instance(4)).unwrap().id()),
            vec![(3 * H + 5 * M, 3 * H + 6 * M)]
        );
        assert!(
            db.head()
                .series_by_labels(&instance(3))
                .is_some_and(|s| db.head().deleted_intervals(s.id()).is_empty()),
            "deletions before the head's new start are dropped"
        );
        db.sync().unwrap();
    }
    // The WAL segments holding the tombstones were condensed into a
    // checkpoint; the reopened head still applies the deletion.
    assert!(std::fs::read_dir(dir.path().join("wal")).unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("checkpoint.")));
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db), data, "the checkpoint carried the tombstones");
    drop(db);
    if let Some(p) = promtool() {
        assert_eq!(promtool_dump(p, dir.path()), as_text(&data), "promtool sees no deleted sample");
    }
}

#[test]
fn delete_spans_blocks_and_head_and_clean_tombstones_rewrites_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    let db = Db::open(dir.path(), opts()).unwrap();
    ingest(&db, 0, 4 * H, &mut data);
    db.compact().unwrap();
    assert_eq!(db.blocks().len(), 3);
    // [30m, 3h30m) crosses three blocks and the head.
    let n = db.delete(30 * M, 3 * H + 30 * M - 1, &[Matcher::equal("instance", "host-2")]).unwrap();
    assert_eq!(n, 4, "three blocks and the head");
    forget(&mut data, &instance(2), 30 * M, 3 * H + 30 * M - 1);
    assert_eq!(read_all(&db), data);
    // Everything of host-7 in the middle block only.
    db.delete(H, 2 * H - 1, &[Matcher::equal("instance", "host-7")]).unwrap();
    forget(&mut data, &instance(7), H, 2 * H - 1);
    let before: Vec<String> = db.blocks().iter().map(|b| b.meta().ulid.clone()).collect();
    assert!(db.blocks().iter().all(|b| !b.tombstones().is_empty()));

    assert_eq!(db.clean_tombstones().unwrap(), 3);
    let after = db.blocks();
    assert_eq!(after.len(), 3);
    for b in &after {
        assert!(!before.contains(&b.meta().ulid), "every block with tombstones was rewritten");
        let bytes = std::fs::read(b.dir().join("tombstones")).unwrap();
        assert_eq!(bytes.len(), 9, "an empty tombstones file");
        assert_eq!(b.meta().stats.num_tombstones, 0);
    }
    for u in &before {
        assert!(!dir.path().join(u).exists(), "old block {u} deleted");
    }
    assert_eq!(read_all(&db), data, "data outside the ranges intact");
    assert_eq!(db.clean_tombstones().unwrap(), 0, "nothing left to clean");
    drop(db);
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(read_all(&db), data);

    // A block whose every sample is deleted disappears.
    db.delete(0, H - 1, &[Matcher::equal("job", "api")]).unwrap();
    assert_eq!(db.clean_tombstones().unwrap(), 1);
    assert_eq!(db.blocks().len(), 2);
    for l in data.clone().keys() {
        forget(&mut data, l, 0, H - 1);
    }
    assert_eq!(read_all(&db), data);
}

#[test]
fn snapshot_holds_blocks_and_head() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = tempfile::tempdir().unwrap();
    let mut data = Data::new();
    let db = Db::open(dir.path(), opts()).unwrap();
    ingest(&db, 0, 4 * H, &mut data);
    db.compact().unwrap();
    db.delete(3 * H + M, 3 * H + 2 * M, &[Matcher::equal("instance", "host-1")]).unwrap();
    forget(&mut data, &instance(1), 3 * H + M, 3 * H + 2 * M);

    let full = snaps.path().join("full");
    db.snapshot(&full, true).unwrap();
    let blocks_only = snaps.path().join("blocks");
    db.snapshot(&blocks_only, false).unwrap();
    // Block files are hard links, not copies.
    use std::os::unix::fs::MetadataExt;
    let b0 = &db.blocks()[0];
    let linked = full.join(&b0.meta().ulid).join("index");
    assert_eq!(
        std::fs::metadata(&linked).unwrap().ino(),
        std::fs::metadata(b0.dir().join("index")).unwrap().ino()
    );
    // Bad targets.
    assert!(db.snapshot(dir.path(), true).is_err(), "not into the data directory");
    assert!(db.snapshot(&snaps.path().join("01ARZ3NDEKTSV4RRFFQ69G5FAV"), true).is_err(), "not a ULID");
    drop(db);

    let s = Db::open(&full, opts()).unwrap();
    assert_eq!(s.blocks().len(), 4, "three blocks and the head's block");
    assert_eq!(read_all(&s), data);
    drop(s);
    let s = Db::open(&blocks_only, opts()).unwrap();
    let mut persisted = data.clone();
    for l in data.keys() {
        forget(&mut persisted, l, 3 * H, i64::MAX);
    }
    assert_eq!(read_all(&s), persisted, "without the head: only what blocks held");
    drop(s);

    if let Some(p) = promtool() {
        // Fresh copies: opening as a Db above wrote wal/ and a lock file.
        let out = Command::new(p).args(["tsdb", "list"]).arg(&full).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 5, "header + 4 blocks");
        assert_eq!(promtool_dump(p, &full), as_text(&data));
    }
}

#[test]
fn head_stats_count_the_index() {
    let db = Db::open(tempfile::tempdir().unwrap().path(), opts()).unwrap();
    let mut a = db.appender();
    for i in 0..6 {
        let l = labels!("__name__" => "a", "pod" => format!("p{i}").as_str(), "zone" => if i % 2 == 0 { "east" } else { "west" });
        a.append(None, &l, 1000, 1.0).unwrap();
    }
    for i in 0..3 {
        a.append(None, &labels!("__name__" => "bb", "pod" => format!("p{i}").as_str()), 2000, 1.0).unwrap();
    }
    a.commit().unwrap();
    let s = db.head().stats(10);
    assert_eq!(s.num_series, 9);
    assert_eq!((s.min_time, s.max_time), (1000, 2000));
    assert_eq!(s.chunk_count, 9);
    // __name__: a, bb; pod: p0..p5; zone: east, west.
    assert_eq!(s.num_label_pairs, 2 + 6 + 2);
    assert_eq!(s.series_count_by_metric_name, vec![("a".into(), 6), ("bb".into(), 3)]);
    assert_eq!(
        s.label_value_count_by_label_name,
        vec![("pod".into(), 6), ("__name__".into(), 2), ("zone".into(), 2)]
    );
    // Value bytes once per series: __name__ 6×1 + 3×2, pod 9×2, zone 3×4 + 3×4.
    assert_eq!(
        s.memory_in_bytes_by_label_name,
        vec![("zone".into(), 24), ("pod".into(), 18), ("__name__".into(), 12)]
    );
    assert_eq!(s.series_count_by_label_value_pair[0], ("__name__=a".into(), 6));
    // Ties are ordered by name.
    assert_eq!(s.series_count_by_label_value_pair[1], ("__name__=bb".into(), 3));
    assert_eq!(s.series_count_by_label_value_pair[2], ("zone=east".into(), 3));
    let top = db.head().stats(2);
    assert_eq!(top.series_count_by_label_value_pair, s.series_count_by_label_value_pair[..2].to_vec());
    assert_eq!(top.series_count_by_metric_name.len(), 2);
    // Label APIs read the index (as Prometheus's do), so they are unchanged
    // by deletions until the series leave the head.
    db.delete(i64::MIN, i64::MAX, &[Matcher::equal("__name__", "bb")]).unwrap();
    let q = db.querier(0, 10_000).unwrap();
    assert!(q.label_values("__name__", &LabelHints::default(), &[]).unwrap().contains(&"bb".to_owned()));
    assert!(read(&db, &[Matcher::equal("__name__", "bb")]).is_empty());
}
