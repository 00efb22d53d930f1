//! Crashes in the middle of writing and compacting blocks (storage contract
//! part 2): a child process appends fast-advancing samples with one-minute
//! blocks and runs `Db::compact` after every batch, and is killed with
//! SIGKILL at random points, most of them while a head block is being
//! written, the head truncated, the WAL checkpointed or blocks merged.
//! After every kill the directory is reopened and checked at the storage
//! level (not only through the de-duplicating querier): every acknowledged
//! sample is stored exactly once, no temporary directory is left, blocks
//! do not overlap and each one reads back completely.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ember_model::{Appendable, Labels, Queryable, SelectHints};
use ember_tsdb::block::{self, compact, BlockCompaction, ChunkToWrite};
use ember_tsdb::chunkenc::XorIterator;
use ember_tsdb::{Db, DbOptions, SyncPolicy, WalOptions};

mod support;

/// One block per simulated minute; batches one simulated second apart, so
/// a head block is cut every 60 batches and merges (3 and 9 minutes)
/// follow every 3rd and 9th block.
const RANGE: i64 = 60_000;
const STEP: i64 = 1_000;
const SERIES: usize = 300;
const CHILD_ENV: &str = "EMBER_TSDB_BLOCK_CRASH_CHILD_DIR";
const ROUNDS: usize = 20;

fn opts() -> DbOptions {
    DbOptions {
        wal: WalOptions { sync: SyncPolicy::Never, ..WalOptions::default() },
        min_block_duration: RANGE,
        max_block_duration: Some(9 * RANGE),
        retention_time: None,
        ..DbOptions::default()
    }
}

fn series_labels(s: usize) -> Labels {
    Labels::from_pairs(&[("__name__", "blk"), ("s", &format!("{s:04}"))])
}

/// Every sample's value names its series and batch, so a sample stored
/// under the wrong series or time is caught.
fn value(s: usize, b: i64) -> f64 {
    (b * 10_000 + s as i64) as f64
}

/// The child: appends one sample per series per batch, prints `ACK b` once
/// the commit returned, then runs maintenance. When the head spans more
/// than 1.5 block ranges (so `compact` will write a block) it brackets the
/// call with `WRITING b` and `WRITTEN b <head blocks> <merged> <µs>`.
/// Does nothing when run as an ordinary test.
#[test]
fn block_crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else { return };
    let db = Db::open(Path::new(&dir), opts()).unwrap();
    let last = db.blocks().iter().map(|b| b.meta().max_time - 1).chain([db.head().max_time()]).max();
    let start = match last {
        Some(t) if t >= 0 => t / STEP + 1,
        _ => 0,
    };
    let labels: Vec<Labels> = (0..SERIES).map(series_labels).collect();
    let mut out = std::io::stdout().lock();
    for b in start.. {
        let mut app = db.appender();
        for (s, l) in labels.iter().enumerate() {
            app.append(None, l, b * STEP, value(s, b)).unwrap();
        }
        app.commit().unwrap();
        writeln!(out, "ACK {b}").unwrap();
        let head = db.head();
        let will_write = head.max_time() - head.min_time() > RANGE / 2 * 3;
        if will_write {
            writeln!(out, "WRITING {b}").unwrap();
            out.flush().unwrap();
            let started = Instant::now();
            let st = db.compact().unwrap();
            let us = started.elapsed().as_micros();
            writeln!(out, "WRITTEN {b} {} {} {us}", st.head_blocks, st.merged_blocks).unwrap();
        } else {
            db.compact().unwrap();
        }
        out.flush().unwrap();
    }
}

/// What the storage holds, read source by source (no de-duplication):
/// per series (by index), per batch: the value's bits and how many sources
/// hold it. Flat vectors, because this runs after every kill in a debug
/// build.
#[derive(Default)]
struct Stored {
    samples: Vec<Vec<(u64, u8)>>,
    blocks: usize,
}

impl Stored {
    fn add(&mut self, s: usize, l: &Labels, t: i64, v: f64) {
        assert_eq!(t % STEP, 0, "{l}: timestamp {t} never written");
        let b = usize::try_from(t / STEP).unwrap();
        if self.samples.len() <= s {
            self.samples.resize(s + 1, Vec::new());
        }
        let ts = &mut self.samples[s];
        if ts.len() <= b {
            ts.resize(b + 1, (0, 0));
        }
        let e = &mut ts[b];
        assert!(e.1 == 0 || e.0 == v.to_bits(), "{l} at {t}: two different values stored");
        e.0 = v.to_bits();
        e.1 += 1;
    }

    /// Series `s`'s stored (batch, value bits, copies).
    fn of(&self, s: usize) -> impl Iterator<Item = (i64, u64, u8)> + '_ {
        let ts = self.samples.get(s).map_or(&[][..], |v| &v[..]);
        ts.iter().enumerate().filter(|x| x.1 .1 > 0).map(|(b, &(v, n))| (b as i64, v, n))
    }
}

/// The series index of a test series' labels.
fn series_index(l: &Labels) -> usize {
    let s: usize = l.get("s").unwrap().parse().unwrap();
    assert_eq!(*l, series_labels(s));
    s
}

/// Reads every block sample by sample (checking its index, chunks and
/// meta.json agree) and the head, and checks the data directory for
/// leftovers and overlapping blocks.
fn read_storage(dir: &Path, db: &Db) -> Stored {
    for e in std::fs::read_dir(dir).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "temporary directory left after open: {name}");
    }
    let mut st = Stored::default();
    let blocks = db.blocks();
    for w in blocks.windows(2) {
        assert!(
            w[0].meta().max_time <= w[1].meta().min_time,
            "overlapping blocks visible: {:?} and {:?}",
            w[0].meta(),
            w[1].meta()
        );
    }
    for b in &blocks {
        let m = b.meta();
        let (mut series, mut samples, mut chunks) = (0u64, 0u64, 0u64);
        let mut metas = vec![];
        let mut prev: Option<Labels> = None;
        for id in b.index().all_postings().unwrap().iter() {
            let l = b.index().series(id, &mut metas).unwrap();
            assert!(prev.as_ref().is_none_or(|p| *p < l), "series out of order in {}", m.ulid);
            let si = series_index(&l);
            for c in &metas {
                let (enc, data) = b.chunks().chunk(c.chunk_ref).unwrap();
                assert_eq!(enc, block::ENCODING_XOR);
                let mut it = XorIterator::new(data);
                while it.next() {
                    let (t, v) = it.at();
                    assert!(t >= c.mint && t <= c.maxt, "sample outside its chunk's range");
                    assert!(t >= m.min_time && t < m.max_time, "sample outside its block's range");
                    st.add(si, &l, t, v);
                    samples += 1;
                }
                assert!(it.err().is_none(), "chunk of {l} in {}: {:?}", m.ulid, it.err());
                chunks += 1;
            }
            series += 1;
            prev = Some(l);
        }
        assert_eq!(
            (series, samples, chunks),
            (m.stats.num_series, m.stats.num_samples, m.stats.num_chunks),
            "meta.json of {}",
            m.ulid
        );
    }
    st.blocks = blocks.len();
    let q = db.head().querier(i64::MIN, i64::MAX).unwrap();
    for s in q.select(false, &SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let si = series_index(&s.labels);
        while s.samples.next() {
            let (t, v) = s.samples.at();
            st.add(si, &s.labels, t, v);
        }
    }
    st
}

/// The checks after one crash; `sent` is the highest batch the child may
/// have started (acknowledged or not).
fn verify(dir: &Path, acked: &BTreeSet<i64>, sent: i64) {
    let db = Db::open(dir, opts()).unwrap();
    assert_eq!(leftovers(dir), Vec::<&str>::new(), "open cleans up after the crash");
    let st = read_storage(dir, &db);
    assert_eq!(st.samples.len(), SERIES, "every series present");
    for s in 0..SERIES {
        let l = series_labels(s);
        let mut have = BTreeSet::new();
        for (b, bits, n) in st.of(s) {
            assert_eq!(n, 1, "{l} at {} stored {n} times (blocks: {})", b * STEP, st.blocks);
            assert!(b <= sent, "{l}: batch {b} never sent");
            assert_eq!(f64::from_bits(bits), value(s, b), "{l} at {}", b * STEP);
            have.insert(b);
        }
        let missing: Vec<&i64> = acked.difference(&have).collect();
        assert!(missing.is_empty(), "{l}: acknowledged batches lost: {missing:?}");
    }
    // The merged read (blocks ∪ head) agrees with the stored samples.
    let q = db.querier(i64::MIN, i64::MAX).unwrap();
    let mut n = 0;
    for s in q.select(false, &SelectHints::default(), &[]).unwrap() {
        let mut s = s.unwrap();
        let si = series_index(&s.labels);
        let mut want = st.of(si);
        while s.samples.next() {
            let (t, v) = s.samples.at();
            let (b, bits, _) = want.next().unwrap();
            assert_eq!((t, v.to_bits()), (b * STEP, bits), "{}", s.labels);
        }
        assert!(want.next().is_none(), "{}: merged read misses samples", s.labels);
        n += 1;
    }
    assert_eq!(n, SERIES);
}

/// What an interrupted maintenance run left in the directory (the next
/// open must clean it all): a block being written, a merged block next to its
/// parents, a block being deleted, a checkpoint being written.
fn leftovers(dir: &Path) -> Vec<&'static str> {
    let mut out = vec![];
    let mut names = vec![];
    for e in std::fs::read_dir(dir).unwrap() {
        names.push(e.unwrap().file_name().to_string_lossy().into_owned());
    }
    if names.iter().any(|n| n.ends_with(block::TMP_CREATION_SUFFIX)) {
        out.push("block being written");
    }
    if names.iter().any(|n| n.ends_with(block::TMP_DELETION_SUFFIX)) {
        out.push("block being deleted");
    }
    let dirs = block::block_dirs(dir).unwrap();
    let parents: BTreeSet<String> = dirs
        .iter()
        .filter_map(|d| block::BlockMeta::read(d).ok())
        .flat_map(|m| m.compaction.parents.into_iter().map(|p| p.ulid))
        .collect();
    if dirs.iter().any(|d| parents.contains(d.file_name().unwrap().to_str().unwrap())) {
        out.push("merged block beside its parents");
    }
    if let Ok(rd) = std::fs::read_dir(dir.join("wal")) {
        if rd.flatten().any(|e| e.file_name().to_string_lossy().ends_with(".tmp")) {
            out.push("checkpoint being written");
        }
    }
    out
}

fn promtool_list(dir: &Path) -> Option<String> {
    let promtool = support::promtool()?;
    let out = Command::new(promtool).args(["tsdb", "list"]).arg(dir).output().unwrap();
    assert!(out.status.success(), "promtool tsdb list: {}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn kill9_during_block_writes_and_compactions_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1;
    eprintln!("seed {seed}");
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut acked = BTreeSet::new();
    let mut sent = -1i64;
    // Durations of maintenance runs that wrote something (µs), to aim the
    // kills inside that window.
    let mut durations: Vec<u64> = vec![];
    let (mut during, mut after, mut while_appending) = (0, 0, 0);
    // What the kills left on disk for the next open to clean up.
    let mut left: BTreeMap<&str, usize> = BTreeMap::new();
    let test_started = Instant::now();
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "block_crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Every 4th round is killed at a random moment of appending; the
        // others in the middle of a maintenance run that writes a block.
        let aim_at_write = round % 4 != 3;
        let writes_to_pass = (rand() % 2) as usize;
        let acks_to_pass = 20 + (rand() % 100) as usize;
        let (mut writes_seen, mut acks_seen) = (0, 0);
        let mut aimed_at = None;
        let mut kill_chosen = false;
        while let Some(Ok(line)) = lines.next() {
            let mut w = line.split_whitespace();
            match (w.next(), w.next().and_then(|b| b.parse::<i64>().ok())) {
                (Some("ACK"), Some(b)) => {
                    acked.insert(b);
                    sent = sent.max(b);
                    acks_seen += 1;
                    if !aim_at_write && acks_seen >= acks_to_pass {
                        std::thread::sleep(Duration::from_micros(rand() % 2000));
                        kill_chosen = true;
                        break;
                    }
                }
                (Some("WRITING"), Some(b)) => {
                    if aim_at_write && writes_seen >= writes_to_pass {
                        aimed_at = Some(b);
                        // Mostly inside the run, sometimes just past it.
                        // Every other aimed kill goes for the run's second
                        // half, where blocks are merged, the merged block
                        // renamed into place and its parents deleted.
                        let mut typical = durations.clone();
                        typical.sort_unstable();
                        let p50 = typical.get(typical.len() / 2).copied().unwrap_or(20_000);
                        let p75 = typical.get(typical.len() * 3 / 4).copied().unwrap_or(20_000);
                        let (lo, hi) =
                            if round % 2 == 1 { (p50 / 2, p75 + p75 / 10) } else { (0, p75 + p75 / 5) };
                        std::thread::sleep(Duration::from_micros(lo + rand() % (hi - lo).max(1)));
                        kill_chosen = true;
                        break;
                    }
                    writes_seen += 1;
                }
                (Some("WRITTEN"), Some(_)) => durations.push(w.nth(2).unwrap().parse().unwrap()),
                _ => {}
            }
        }
        // A child that stopped by itself failed (it never stops otherwise):
        // its panic message went to the discarded stderr, so say so here.
        assert!(kill_chosen, "round {round}: the child exited on its own: {:?}", child.wait());
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        // The batch after the last one read may have been committed
        // without its acknowledgement being read.
        sent += 1;
        // Lines printed before the kill: acknowledged too.
        let mut finished = false;
        for line in lines.map_while(Result::ok) {
            let mut w = line.split_whitespace();
            match (w.next(), w.next().and_then(|b| b.parse::<i64>().ok())) {
                (Some("ACK"), Some(b)) => {
                    acked.insert(b);
                    sent = sent.max(b + 1);
                }
                (Some("WRITTEN"), Some(b)) if Some(b) == aimed_at => finished = true,
                _ => {}
            }
        }
        match (aimed_at, finished) {
            (Some(_), false) => during += 1,
            (Some(_), true) => after += 1,
            (None, _) => while_appending += 1,
        }
        for what in leftovers(dir.path()) {
            *left.entry(what).or_insert(0) += 1;
        }
        verify(dir.path(), &acked, sent);
    }
    let elapsed = test_started.elapsed();
    durations.sort_unstable();
    eprintln!(
        "{ROUNDS} kills: {during} during a maintenance run that writes a block, {after} just \
         after one, {while_appending} while appending; left on disk: {left:?}; {} batches \
         acknowledged; maintenance runs that wrote: {} (median {} µs, max {} µs); {:?}",
        acked.len(),
        durations.len(),
        durations.get(durations.len() / 2).copied().unwrap_or(0),
        durations.last().copied().unwrap_or(0),
        elapsed
    );
    assert!(acked.len() > 500, "the child made progress: {} batches", acked.len());
    assert!(during >= ROUNDS / 4, "kills landed inside block writes: {during}");
    let db = Db::open(dir.path(), opts()).unwrap();
    assert!(db.blocks().len() >= 2, "blocks were written and kept");
    drop(db);
    if let Some(list) = promtool_list(dir.path()) {
        let ours = Db::open(dir.path(), opts()).unwrap().blocks().len();
        assert_eq!(list.lines().count(), ours + 1, "header + one line per block: {list}");
    }
}

/// The deterministic case behind the random one: the merged block was
/// renamed into place but the crash came before its parents were deleted.
/// Opening the directory removes the parents (named in the merged block's
/// `meta.json`), so no sample is stored twice.
#[test]
fn merged_block_supersedes_its_parents_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let l = series_labels(0);
    let mut parents = vec![];
    for i in 0..3i64 {
        let samples: Vec<(i64, f64)> = (0..60).map(|k| (i * RANGE + k * STEP, value(0, k))).collect();
        let m = block::write_block(
            dir.path(),
            i * RANGE,
            (i + 1) * RANGE,
            BlockCompaction::default(),
            [(l.clone(), ChunkToWrite::encode_xor(&samples))],
        )
        .unwrap();
        parents.push(block::Block::open(&dir.path().join(&m.ulid)).unwrap());
    }
    let refs: Vec<&block::Block> = parents.iter().collect();
    let merged = compact::compact(dir.path(), &refs).unwrap().unwrap();
    drop(parents);
    // The "crash": all four blocks are on disk, and the merged one is
    // complete.
    assert_eq!(block::block_dirs(dir.path()).unwrap().len(), 4);
    let db = Db::open(dir.path(), opts()).unwrap();
    let blocks = db.blocks();
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].meta().ulid, merged.ulid);
    let st = read_storage(dir.path(), &db);
    let got: Vec<(i64, u64, u8)> = st.of(0).collect();
    assert_eq!(got.len(), 180);
    assert!(got.iter().all(|x| x.2 == 1));
}

/// A corrupt or half-deleted parent of a complete merged block does not
/// stop the database from opening: the merged block supersedes it.
#[test]
fn unreadable_parent_of_a_merged_block_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let l = series_labels(1);
    let mut parents = vec![];
    for i in 0..2i64 {
        let samples = vec![(i * RANGE, 1.0), (i * RANGE + STEP, 2.0)];
        let m = block::write_block(
            dir.path(),
            i * RANGE,
            (i + 1) * RANGE,
            BlockCompaction::default(),
            [(l.clone(), ChunkToWrite::encode_xor(&samples))],
        )
        .unwrap();
        parents.push(block::Block::open(&dir.path().join(&m.ulid)).unwrap());
    }
    let refs: Vec<&block::Block> = parents.iter().collect();
    compact::compact(dir.path(), &refs).unwrap().unwrap();
    let victim = parents[0].dir().to_path_buf();
    drop(parents);
    std::fs::remove_file(victim.join("index")).unwrap();
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.blocks().len(), 1);
    assert!(!victim.exists());
    let st = read_storage(dir.path(), &db);
    assert_eq!(st.of(1).count(), 4);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// The other deterministic case: a head block was renamed into place, but
/// the crash came before the head was truncated and the WAL checkpointed
/// (here: the WAL as it was before the maintenance run is put back). The
/// replay must not bring the block's samples back into the head, or they
/// are stored twice and the next run writes an overlapping block.
#[test]
fn head_block_written_before_wal_checkpoint_is_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let saved = tempfile::tempdir().unwrap();
    let labels: Vec<Labels> = (0..3).map(series_labels).collect();
    {
        let db = Db::open(dir.path(), opts()).unwrap();
        for b in 0..2 * RANGE / STEP {
            let mut app = db.appender();
            for (s, l) in labels.iter().enumerate() {
                app.append(None, l, b * STEP, value(s, b)).unwrap();
            }
            app.commit().unwrap();
        }
        db.sync().unwrap();
        copy_dir(&dir.path().join("wal"), saved.path());
        assert_eq!(db.compact().unwrap().head_blocks, 1);
    }
    std::fs::remove_dir_all(dir.path().join("wal")).unwrap();
    copy_dir(saved.path(), &dir.path().join("wal"));
    let db = Db::open(dir.path(), opts()).unwrap();
    assert_eq!(db.blocks().len(), 1);
    let st = read_storage(dir.path(), &db);
    for (s, l) in labels.iter().enumerate() {
        assert_eq!(st.of(s).count() as i64, 2 * RANGE / STEP, "{l}");
        let twice: Vec<i64> = st.of(s).filter(|x| x.2 != 1).map(|x| x.0 * STEP).collect();
        assert!(twice.is_empty(), "{l}: stored twice at {twice:?}");
    }
    // And the next maintenance run writes no block overlapping the first.
    db.compact().unwrap();
    let blocks = db.blocks();
    for w in blocks.windows(2) {
        assert!(w[0].meta().max_time <= w[1].meta().min_time, "overlapping blocks");
    }
}
