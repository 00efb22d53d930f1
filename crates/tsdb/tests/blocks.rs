//! Part 2: the head becomes blocks, blocks merge, retention deletes, and
//! everything reads back as one storage — in ember and in promtool.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::process::Command;

use ember_model::{labels, AppendError, Appendable, Matcher};
use ember_tsdb::{Db, DbOptions};
use support::*;

mod support;

fn opts() -> DbOptions {
    DbOptions { min_block_duration: H, retention_time: None, ..DbOptions::default() }
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

    let dumped = promtool_dump(promtool, dir.path());
    assert_eq!(dumped, as_text(&data), "blocks + checkpoint + WAL, as promtool reads them");
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
