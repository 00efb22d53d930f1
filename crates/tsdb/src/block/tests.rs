//! Block round trips and interoperability with Debian's `promtool`.

use std::collections::BTreeMap;
use std::process::Command;

use ember_model::{labels, Labels, MatchOp, Matcher};

use super::*;
use crate::chunkenc::XorIterator;

type Samples = BTreeMap<Labels, Vec<(i64, f64)>>;

fn workload() -> Samples {
    let mut m = Samples::new();
    for i in 0..50 {
        let l = labels!("__name__" => "requests_total", "job" => if i % 2 == 0 { "api" } else { "web" }, "instance" => format!("host-{i}:9100").as_str());
        let s: Vec<(i64, f64)> =
            (0..300).map(|k| (1_000_000 + k * 15_000 + i, (k * (i + 1)) as f64)).collect();
        m.insert(l, s);
    }
    m.insert(
        labels!("__name__" => "temperature", "room" => "a b \"c\""),
        vec![(1_000_000, -1.5), (1_015_000, f64::INFINITY), (1_030_000, 0.25)],
    );
    m
}

fn write(dir: &std::path::Path, data: &Samples) -> BlockMeta {
    let mint = data.values().flat_map(|s| s.iter().map(|x| x.0)).min().unwrap();
    let maxt = data.values().flat_map(|s| s.iter().map(|x| x.0)).max().unwrap() + 1;
    write_block(
        dir,
        mint,
        maxt,
        BlockCompaction::default(),
        data.iter().map(|(l, s)| (l.clone(), ChunkToWrite::encode_xor(s))),
    )
    .unwrap()
}

/// Reads every sample of the series selected by `matchers`.
fn read(b: &Block, matchers: &[Matcher]) -> Samples {
    let mut out = Samples::new();
    let mut metas = vec![];
    for id in b.postings(matchers).unwrap().iter() {
        let l = b.index().series(id, &mut metas).unwrap();
        let mut s = vec![];
        for m in &metas {
            let (enc, bytes) = b.chunks().chunk(m.chunk_ref).unwrap();
            assert_eq!(enc, ENCODING_XOR);
            let mut it = XorIterator::new(bytes);
            while it.next() {
                s.push(it.at());
            }
        }
        out.insert(l, s);
    }
    out
}

#[test]
fn write_open_select() {
    let dir = tempfile::tempdir().unwrap();
    let data = workload();
    let meta = write(dir.path(), &data);
    assert_eq!(meta.stats.num_series, 51);
    assert_eq!(meta.stats.num_samples, 50 * 300 + 3);
    assert_eq!(meta.stats.num_chunks, 50 * 3 + 1);
    assert_eq!(meta.compaction.sources, vec![meta.ulid.clone()]);
    let dirs = block_dirs(dir.path()).unwrap();
    assert_eq!(dirs.len(), 1);
    let b = Block::open(&dirs[0]).unwrap();
    assert_eq!(b.meta(), &meta);

    let everything = read(&b, &[]);
    assert_eq!(everything.len(), data.len());
    for (l, s) in &data {
        let got = &everything[l];
        assert_eq!(got.len(), s.len());
        for (a, b) in got.iter().zip(s) {
            assert_eq!(a.0, b.0);
            assert_eq!(a.1.to_bits(), b.1.to_bits());
        }
    }
    let api = read(&b, &[Matcher::equal("job", "api")]);
    assert_eq!(api.len(), 25);
    let re = Matcher::new(MatchOp::RegexMatch, "instance", "host-(1|2)?1:9100").unwrap();
    assert_eq!(read(&b, &[re]).len(), 3, "host-1, host-11, host-21");
    // Matchers that accept the empty value also select series without the label.
    let no_job = read(&b, &[Matcher::equal("job", "")]);
    assert_eq!(no_job.keys().map(|l| l.metric_name().unwrap()).collect::<Vec<_>>(), vec!["temperature"]);
    let not_api = read(&b, &[Matcher::not_equal("job", "api")]);
    assert_eq!(not_api.len(), 26);
    let nre = Matcher::new(MatchOp::RegexNoMatch, "job", "a.*|w.*").unwrap();
    assert_eq!(read(&b, &[nre]).len(), 1);
    let both = read(
        &b,
        &[Matcher::equal("job", "web"), Matcher::new(MatchOp::RegexMatch, "instance", "host-1.*").unwrap()],
    );
    assert_eq!(both.len(), 6, "web is the odd hosts: 1, 11, 13, 15, 17, 19");
    // Label names and values come from the postings offset table, sorted.
    assert_eq!(b.index().label_names(), vec!["__name__", "instance", "job", "room"]);
    assert_eq!(b.index().label_values("job"), vec!["api", "web"]);
    assert_eq!(b.index().label_values("room"), vec!["a b \"c\""]);
    let hosts = b.index().label_values("instance");
    assert_eq!(hosts.len(), 50);
    assert!(hosts.windows(2).all(|w| w[0] < w[1]));
    assert!(b.index().label_values("nope").is_empty());
    assert!(b.index().postings("job", "nope").unwrap().is_empty());
}

#[test]
fn incomplete_blocks_are_invisible_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(
        dir.path().join(format!("01HZZZZZZZZZZZZZZZZZZZZZZZ{TMP_CREATION_SUFFIX}/chunks")),
    )
    .unwrap();
    assert!(block_dirs(dir.path()).unwrap().is_empty());
    let removed = remove_incomplete_blocks(dir.path()).unwrap();
    assert_eq!(removed.len(), 1);
    // A failed write leaves nothing behind.
    let bad = write_block(
        dir.path(),
        0,
        10,
        BlockCompaction::default(),
        vec![(labels!("a" => "b"), vec![ChunkToWrite { mint: 5, maxt: 20, encoding: 1, data: vec![0, 0] }])],
    );
    assert!(bad.is_err());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

fn promtool() -> Option<&'static str> {
    if Command::new("promtool").arg("--version").output().is_ok() {
        Some("promtool")
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!("promtool is required under CI=true (apt-get install prometheus)");
    } else {
        eprintln!("skipping: promtool not installed");
        None
    }
}

/// Parses `promtool tsdb dump` lines: `{labels} value timestamp`.
fn parse_dump(text: &str) -> Samples {
    let mut out = Samples::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let close = line.rfind('}').unwrap();
        let (lbls, rest) = line.split_at(close + 1);
        let mut parts = rest.split_whitespace();
        let v: f64 = parts.next().unwrap().parse().unwrap();
        let t: i64 = parts.next().unwrap().parse().unwrap();
        let inner = &lbls[1..lbls.len() - 1];
        let mut pairs: Vec<(String, String)> = vec![];
        // Values are Go-quoted; names are plain.
        let mut rest = inner;
        while !rest.is_empty() {
            let eq = rest.find('=').unwrap();
            let name = rest[..eq].trim_start_matches([',', ' ']).to_owned();
            let after = &rest[eq + 1..];
            assert!(after.starts_with('"'));
            let mut val = String::new();
            let mut chars = after[1..].char_indices();
            let mut end = 0;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        let (_, e) = chars.next().unwrap();
                        val.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                    '"' => {
                        end = i + 2;
                        break;
                    }
                    c => val.push(c),
                }
            }
            pairs.push((name, val));
            rest = &after[end..];
        }
        out.entry(Labels::from_pairs(&pairs)).or_default().push((t, v));
    }
    out
}

#[test]
fn promtool_reads_our_blocks() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = workload();
    let meta = write(dir.path(), &data);
    std::fs::create_dir_all(dir.path().join("wal")).unwrap();

    let list = Command::new(promtool).args(["tsdb", "list"]).arg(dir.path()).output().unwrap();
    let list_out = String::from_utf8_lossy(&list.stdout);
    assert!(list.status.success(), "{}", String::from_utf8_lossy(&list.stderr));
    assert!(list_out.contains(&meta.ulid), "{list_out}");
    assert!(list_out.contains(&(50 * 300 + 3).to_string()), "sample count listed: {list_out}");

    let analyze =
        Command::new(promtool).args(["tsdb", "analyze"]).arg(dir.path()).arg(&meta.ulid).output().unwrap();
    let analyze_out = String::from_utf8_lossy(&analyze.stdout);
    assert!(analyze.status.success(), "{}{}", analyze_out, String::from_utf8_lossy(&analyze.stderr));
    assert!(analyze_out.contains("Series: 51"), "{analyze_out}");
    assert!(analyze_out.contains("Label names: 4"), "{analyze_out}");

    let dump = Command::new(promtool).args(["tsdb", "dump"]).arg(dir.path()).output().unwrap();
    assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
    let dumped = parse_dump(&String::from_utf8_lossy(&dump.stdout));
    assert_eq!(dumped.len(), data.len());
    for (l, s) in &data {
        let got = dumped.get(l).unwrap_or_else(|| panic!("{l} missing from dump"));
        assert_eq!(got.len(), s.len(), "{l}");
        for (a, b) in got.iter().zip(s) {
            assert_eq!(a.0, b.0);
            assert!(a.1 == b.1 || (a.1.is_nan() && b.1.is_nan()), "{l}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn we_read_promtool_blocks() {
    let Some(promtool) = promtool() else { return };
    let dir = tempfile::tempdir().unwrap();
    let om = dir.path().join("in.om");
    let mut text = String::from("# TYPE http_requests counter\n");
    let mut expect = Samples::new();
    for i in 0..3 {
        for k in 0..200i64 {
            let t_ms = 1_700_000_000_000 + k * 30_000;
            let v = (k * 10 + i) as f64;
            text.push_str(&format!(
                "http_requests_total{{code=\"{}\"}} {} {}\n",
                200 + i,
                v,
                t_ms as f64 / 1000.0
            ));
            expect
                .entry(
                    labels!("__name__" => "http_requests_total", "code" => format!("{}", 200 + i).as_str()),
                )
                .or_default()
                .push((t_ms, v));
        }
    }
    text.push_str("# EOF\n");
    std::fs::write(&om, text).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let out = Command::new(promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let dirs = block_dirs(&data).unwrap();
    assert!(!dirs.is_empty());
    let mut got = Samples::new();
    for d in dirs {
        let b = Block::open(&d).unwrap();
        for (l, mut s) in read(&b, &[Matcher::new(MatchOp::RegexMatch, "__name__", "http_.*").unwrap()]) {
            got.entry(l).or_default().append(&mut s);
        }
    }
    for s in got.values_mut() {
        s.sort_by_key(|x| x.0);
    }
    assert_eq!(got, expect);
}

#[test]
fn a_pending_block_is_visible_only_once_committed() {
    let dir = tempfile::tempdir().unwrap();
    let data = workload();
    let series = || data.iter().map(|(l, s)| (l.clone(), ChunkToWrite::encode_xor(s)));
    // Dropped without commit: gone, never visible under its name.
    let p = prepare_block(dir.path(), 0, 10_000_000, BlockCompaction::default(), series()).unwrap();
    let ulid = p.meta().unwrap().ulid.clone();
    assert!(dir.path().join(format!("{ulid}{TMP_CREATION_SUFFIX}")).join("index").exists());
    assert!(block_dirs(dir.path()).unwrap().is_empty());
    drop(p);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // Committed: renamed into place, complete.
    let p = prepare_block(dir.path(), 0, 10_000_000, BlockCompaction::default(), series()).unwrap();
    let m = p.commit().unwrap();
    assert_eq!(block_dirs(dir.path()).unwrap(), vec![dir.path().join(&m.ulid)]);
    assert_eq!(read(&Block::open(&dir.path().join(&m.ulid)).unwrap(), &[]), data);
}
