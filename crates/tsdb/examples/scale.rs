//! Block figures at scale and on real data. One subcommand per figure, each
//! reproducible by one command (see docs/benchmarks.md, "Blocks"):
//!
//! * `write DIR [SERIES] [BLOCKS]`: for each of BLOCKS (3) consecutive 2 h
//!   ranges, fills a fresh head (no WAL) with SERIES (1 M) series × 480
//!   samples at 15 s (two appending threads), then writes it as a block exactly as `Db::compact`
//!   does (`Head::block_chunks` + `block::write_block`): time, samples/s.
//! * `compact DIR [OUT_DIR]`: merges the blocks in DIR into one (what the leveled
//!   planner does with three 2 h blocks at the 6 h level) in a fresh
//!   process, so its peak RSS (VmHWM) is the compaction's own; then deletes
//!   the three sources as `Db::compact` does. With OUT_DIR the merged
//!   block is written there instead (when DIR's disk lacks the room).
//! * `open DIR`: `Db::open` on the directory (no WAL) in a fresh process:
//!   VmRSS after open, after a query touching 10 k series; on-disk size.
//! * `record PAGES_DIR [N] [INTERVAL_MS] [PORT]`: runs Debian's
//!   node_exporter on 127.0.0.1:PORT and saves N (60) scraped pages
//!   INTERVAL_MS (1000) apart.
//! * `node PAGES_DIR`: replays the recorded pages in order (cycling) as 2 h
//!   of 15 s samples, writes ember's block, writes the same samples as
//!   OpenMetrics and has `promtool tsdb create-blocks-from openmetrics`
//!   write Prometheus's block; compares bytes per sample.
//!
//! CPU time comes from /proc/self/stat (all threads), memory from
//! /proc/self/status. Run with `--release`.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{block_bytes, dir_size};
use ember_model::{Appender, Labels, Matcher, Queryable, SelectHints};
use ember_textparse::{Entry, Format, LabelScratch, Parser};
use ember_tsdb::block::{self, compact, Block, BlockCompaction};
use ember_tsdb::{Db, DbOptions, Head, HeadOptions};

mod common;

const STEP: i64 = 15_000;
const H: i64 = 3600 * 1000;
const RANGE: i64 = 2 * H;
/// 2023-11-14 22:00 UTC, aligned to 2 h.
const T0: i64 = 1_700_000_000_000 / RANGE * RANGE;

/// A field of /proc/self/status in kB.
fn status_kb(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn mib(kb: u64) -> String {
    format!("{:.0} MiB", kb as f64 / 1024.0)
}

/// User + system CPU seconds of the whole process (USER_HZ = 100).
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line.
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// Wall and CPU time of `f`.
fn measure<T>(f: impl FnOnce() -> T) -> (T, Duration, f64) {
    let (w, c) = (Instant::now(), cpu_secs());
    let r = f();
    (r, w.elapsed(), cpu_secs() - c)
}

/// Runs `f` while a thread samples RssAnon every 20 ms: (result, peak
/// anonymous memory in kB). VmHWM alone mixes in the memory-mapped block
/// files the kernel may drop at any time; RssAnon is what the process
/// really holds.
fn peak_anon<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|sc| {
        let h = sc.spawn(|| {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(status_kb("RssAnon"));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak.max(status_kb("RssAnon"))
        });
        let r = f();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (r, h.join().unwrap())
    })
}

/// Series `i` of the synthetic 1 M: 100 metric names (10 k series each),
/// 1 000 instances, 10 jobs.
fn synthetic_labels(i: usize) -> Labels {
    Labels::from_pairs(&[
        ("__name__", &format!("scale_metric_{}", i % 100)),
        ("instance", &format!("host-{}:9100", i / 1000)),
        ("job", &format!("job-{}", i % 10)),
        ("id", &i.to_string()),
    ])
}

/// A cheap deterministic hash of (series, step).
fn mix(i: usize, k: i64) -> u64 {
    let mut x =
        (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (k as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

/// Value of series `i` at global step `k`: a quarter constant, a quarter
/// integer counters, a quarter page-sized gauges, a quarter two-decimal
/// CPU-seconds counters (closed forms, so each range is independent).
fn synthetic_value(i: usize, k: i64) -> f64 {
    let base = (mix(i, -1) % 1_000_000) as f64;
    match i % 4 {
        0 => base,
        1 => base + (k * (k % 7 + (i as i64 % 50))) as f64,
        2 => (base + (mix(i, k / 8) % 64) as f64) * 4096.0,
        _ => ((base + k as f64 * 0.37 * (1 + i % 4) as f64) * 100.0).round() / 100.0,
    }
}

fn cmd_write(dir: &Path, series: usize, blocks: i64) {
    std::fs::create_dir_all(dir).unwrap();
    let labels: Vec<Labels> = (0..series).map(synthetic_labels).collect();
    let steps = RANGE / STEP;
    println!("write: {series} series x {steps} samples per 2 h block, {blocks} blocks");
    for b in 0..blocks {
        let head = Head::new(HeadOptions::default());
        let mint = T0 + b * RANGE;
        let ((), wall, cpu) = measure(|| {
            // Two appending threads (like two scrape targets), each with
            // its half of the series. Series references are kept between
            // batches, as the scrape cache keeps them: only the first batch
            // looks labels up.
            let half = labels.len().div_ceil(2);
            std::thread::scope(|sc| {
                for (part, ls) in labels.chunks(half.max(1)).enumerate() {
                    let head = &head;
                    sc.spawn(move || {
                        let mut refs = vec![None; ls.len()];
                        for s in 0..steps {
                            let mut app = head.head_appender();
                            for (j, l) in ls.iter().enumerate() {
                                let v = synthetic_value(part * half + j, b * steps + s);
                                refs[j] = Some(app.append(refs[j], l, mint + s * STEP, v).unwrap());
                            }
                            app.commit().unwrap();
                        }
                    });
                }
            });
        });
        let n = series as f64 * steps as f64;
        println!(
            "  block {b}: head ingest {n:.0} samples in {:.1} s wall, {cpu:.1} s CPU ({:.2} M samples/CPU-s); VmRSS {}",
            wall.as_secs_f64(),
            n / cpu / 1e6,
            mib(status_kb("VmRSS"))
        );
        let anon_before = status_kb("RssAnon");
        let ((meta, wall, cpu), anon) = peak_anon(|| {
            measure(|| {
                let chunks = head.block_chunks(mint, mint + RANGE);
                block::write_block(dir, mint, mint + RANGE, BlockCompaction::default(), chunks).unwrap()
            })
        });
        println!(
            "  block {b}: RssAnon {} with the head, at most {} while writing the block (sampled)",
            mib(anon_before),
            mib(anon)
        );
        let ns = meta.stats.num_samples as f64;
        println!(
            "  block {b}: head -> block {} ({} series, {ns:.0} samples, {} bytes) in {:.2} s wall, {cpu:.2} s CPU ({:.2} M samples/CPU-s, {:.2} M samples/s wall)",
            meta.ulid,
            meta.stats.num_series,
            dir_size(&dir.join(&meta.ulid)),
            wall.as_secs_f64(),
            ns / cpu / 1e6,
            ns / wall.as_secs_f64() / 1e6
        );
    }
    println!("  VmHWM (peak RSS, heads included) {}", mib(status_kb("VmHWM")));
}

fn cmd_compact(dir: &Path, out: &Path) {
    let dirs = block::block_dirs(dir).unwrap();
    let mut blocks: Vec<Block> = dirs.iter().map(|d| Block::open(d).unwrap()).collect();
    blocks.sort_by_key(|b| b.meta().min_time);
    let samples: u64 = blocks.iter().map(|b| b.meta().stats.num_samples).sum();
    let before = dir_size(dir);
    println!(
        "compact: {} blocks, {samples} samples, {before} bytes; VmRSS after opening {}",
        blocks.len(),
        mib(status_kb("VmRSS"))
    );
    let refs: Vec<&Block> = blocks.iter().collect();
    let ((meta, wall, cpu), anon) = peak_anon(|| measure(|| compact::compact(out, &refs).unwrap().unwrap()));
    let hwm = status_kb("VmHWM");
    println!(
        "  merged into {} [{} h] ({} series, {} samples) in {:.2} s wall, {cpu:.2} s CPU ({:.2} M samples/CPU-s, {:.2} M samples/s wall)",
        meta.ulid,
        (meta.max_time - meta.min_time) / H,
        meta.stats.num_series,
        meta.stats.num_samples,
        wall.as_secs_f64(),
        samples as f64 / cpu / 1e6,
        samples as f64 / wall.as_secs_f64() / 1e6
    );
    println!(
        "  peak RSS of the process (VmHWM) {}, of which anonymous at most {} (sampled); now VmRSS {} (RssAnon {}, RssFile {})",
        mib(hwm),
        mib(anon),
        mib(status_kb("VmRSS")),
        mib(status_kb("RssAnon")),
        mib(status_kb("RssFile"))
    );
    // The sources go, as Db::compact deletes them.
    drop(refs);
    let old: Vec<PathBuf> = blocks.iter().map(|b| b.dir().to_path_buf()).collect();
    drop(blocks);
    for d in old {
        std::fs::remove_dir_all(d).unwrap();
    }
    println!("  merged block {} bytes (sources were {before})", dir_size(&out.join(&meta.ulid)));
}

fn cmd_open(dir: &Path) {
    let rss0 = status_kb("VmRSS");
    let opts = DbOptions { retention_time: None, ..DbOptions::default() };
    let (db, wall, cpu) = measure(|| Db::open(dir, opts).unwrap());
    let blocks = db.blocks();
    let series: u64 = blocks.iter().map(|b| b.meta().stats.num_series).max().unwrap_or(0);
    let disk: u64 = blocks.iter().map(|b| dir_size(b.dir())).sum();
    let (index, chunks): (u64, u64) = blocks
        .iter()
        .map(|b| (b.index().size(), b.chunks().size()))
        .fold((0, 0), |a, x| (a.0 + x.0, a.1 + x.1));
    println!(
        "open: {} blocks, {series} series, on disk {} (index {}, chunks {}); opened in {:.2} s wall, {cpu:.2} s CPU",
        blocks.len(),
        mib(disk / 1024),
        mib(index / 1024),
        mib(chunks / 1024),
        wall.as_secs_f64()
    );
    let show = |when: &str| {
        println!(
            "  {when}: VmRSS {} (RssAnon {}, RssFile {}, RssShmem {}), VmHWM {}",
            mib(status_kb("VmRSS")),
            mib(status_kb("RssAnon")),
            mib(status_kb("RssFile")),
            mib(status_kb("RssShmem")),
            mib(status_kb("VmHWM"))
        );
    };
    println!("  before open: VmRSS {}", mib(rss0));
    show("after open");
    let (mint, maxt) = (
        blocks.iter().map(|b| b.meta().min_time).min().unwrap_or(0),
        blocks.iter().map(|b| b.meta().max_time).max().unwrap_or(0),
    );
    let ((n, samples), wall, cpu) = measure(|| {
        let q = db.querier(mint, maxt).unwrap();
        let (mut n, mut samples) = (0u64, 0u64);
        let m = [Matcher::equal("__name__", "scale_metric_7")];
        for s in q.select(true, &SelectHints::default(), &m).unwrap() {
            let mut s = s.unwrap();
            while s.samples.next() {
                samples += 1;
            }
            n += 1;
        }
        (n, samples)
    });
    println!(
        "  query scale_metric_7 over the whole range: {n} series, {samples} samples in {:.2} s wall, {cpu:.2} s CPU",
        wall.as_secs_f64()
    );
    show("after the query");
}

/// GET http://addr/metrics with HTTP/1.0 (no chunked encoding): the body.
fn http_get(addr: &str) -> std::io::Result<Vec<u8>> {
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET /metrics HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain;version=0.0.4\r\n\r\n")?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let at = buf.windows(4).position(|w| w == b"\r\n\r\n").ok_or(std::io::ErrorKind::InvalidData)?;
    if !buf.starts_with(b"HTTP/1.0 200") && !buf.starts_with(b"HTTP/1.1 200") {
        return Err(std::io::ErrorKind::InvalidData.into());
    }
    Ok(buf.split_off(at + 4))
}

fn cmd_record(pages: &Path, n: usize, interval: Duration, port: u16) {
    std::fs::create_dir_all(pages).unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new("/usr/bin/prometheus-node-exporter")
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(&addr).is_err() {
        assert!(Instant::now() < deadline, "node_exporter did not come up on {addr}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let start = Instant::now();
    for k in 0..n {
        let due = start + interval * k as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = http_get(&addr).unwrap();
        std::fs::write(pages.join(format!("{k:05}.prom")), &body).unwrap();
    }
    child.kill().unwrap();
    child.wait().unwrap();
    println!("record: {n} pages from node_exporter at {addr}, {interval:?} apart, into {}", pages.display());
}

/// Escapes a label value for OpenMetrics.
fn om_escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn om_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v:?}")
    }
}

fn cmd_node(pages_dir: &Path, out: &Path) {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pages_dir).unwrap().flatten().map(|e| e.path()).collect();
    files.sort();
    assert!(!files.is_empty(), "no pages in {}", pages_dir.display());
    // Each page as (labels, value), with the target labels a scrape adds.
    let mut scratch = LabelScratch::new();
    let pages: Vec<Vec<(Labels, f64)>> = files
        .iter()
        .map(|f| {
            let text = std::fs::read(f).unwrap();
            let mut v = Vec::new();
            for e in Parser::new(&text, Format::PrometheusText) {
                if let Entry::Sample(s) = e.unwrap() {
                    let l = s.to_labels(&mut scratch);
                    let mut b = l.builder();
                    b.set("job", "node");
                    b.set("instance", "localhost:9100");
                    v.push((b.build(), s.value));
                }
            }
            v
        })
        .collect();
    let steps = RANGE / STEP;
    let _ = std::fs::remove_dir_all(out);
    let ember_dir = out.join("ember");
    let prom_dir = out.join("promtool");
    std::fs::create_dir_all(&ember_dir).unwrap();
    std::fs::create_dir_all(&prom_dir).unwrap();

    let head = Head::new(HeadOptions::default());
    for s in 0..steps {
        let mut app = head.head_appender();
        for (l, v) in &pages[s as usize % pages.len()] {
            app.append(None, l, T0 + s * STEP, *v).unwrap();
        }
        app.commit().unwrap();
    }
    let chunks = head.block_chunks(T0, T0 + RANGE);
    // The same samples as OpenMetrics, each series' samples together.
    let om_path = out.join("data.om");
    let mut om = std::io::BufWriter::new(std::fs::File::create(&om_path).unwrap());
    let mut series = 0;
    {
        let q = head.querier(T0, T0 + RANGE).unwrap();
        for s in q.select(true, &SelectHints::default(), &[]).unwrap() {
            let mut s = s.unwrap();
            let name = s.labels.metric_name().unwrap().to_owned();
            let rest: Vec<String> = s
                .labels
                .iter()
                .filter(|l| l.name != "__name__")
                .map(|l| format!("{}=\"{}\"", l.name, om_escape(l.value)))
                .collect();
            let key = format!("{name}{{{}}}", rest.join(","));
            while s.samples.next() {
                let (t, v) = s.samples.at();
                writeln!(om, "{key} {} {}.{:03}", om_value(v), t / 1000, t % 1000).unwrap();
            }
            series += 1;
        }
    }
    writeln!(om, "# EOF").unwrap();
    drop(om);
    let meta = block::write_block(&ember_dir, T0, T0 + RANGE, BlockCompaction::default(), chunks).unwrap();
    let (eb, ec, es) = block_bytes(&ember_dir);
    println!(
        "node: {} pages of node_exporter 1.5 ({} series), replayed in order (cycling) as {steps} samples at 15 s",
        pages.len(),
        series
    );
    println!(
        "  ember block {}: {es} samples, {eb} bytes = {:.3} bytes/sample ({:.3} in chunks)",
        meta.ulid,
        eb as f64 / es as f64,
        ec as f64 / es as f64
    );
    // Where ember's chunk bytes go, by metric name.
    let b = Block::open(&ember_dir.join(&meta.ulid)).unwrap();
    let mut by_name: std::collections::BTreeMap<String, (u64, u64)> = Default::default();
    let mut metas = Vec::new();
    for id in b.index().all_postings().unwrap().iter() {
        let l = b.index().series(id, &mut metas).unwrap();
        let e = by_name.entry(l.metric_name().unwrap_or("").to_owned()).or_default();
        for m in &metas {
            let (_, data) = b.chunks().chunk(m.chunk_ref).unwrap();
            let data = data.as_ref();
            e.0 += data.len() as u64;
            e.1 += u64::from(u16::from_be_bytes([data[0], data[1]]));
        }
    }
    let mut top: Vec<(String, (u64, u64))> = by_name.into_iter().collect();
    top.sort_by_key(|x| std::cmp::Reverse(x.1 .0));
    println!("  largest metric families in ember's chunks (chunk bytes, share, bytes/sample):");
    for (name, (bytes, n)) in top.iter().take(8) {
        println!(
            "    {name}: {bytes} ({:.0} %), {:.2}",
            *bytes as f64 * 100.0 / ec as f64,
            *bytes as f64 / *n as f64
        );
    }
    // The collectors' own scrape durations are random floats (as any
    // latency measurement): the figure without them says what the rest of
    // a node_exporter page costs.
    let noisy = "node_scrape_collector_duration_seconds";
    if let Some((_, (bytes, n))) = top.iter().find(|x| x.0 == noisy) {
        println!("  ember chunks without {noisy}: {:.3} bytes/sample", (ec - bytes) as f64 / (es - n) as f64);
    }
    let out = Command::new("/usr/bin/promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om_path)
        .arg(&prom_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (pb, pc, ps) = block_bytes(&prom_dir);
    println!(
        "  promtool block(s): {ps} samples, {pb} bytes = {:.3} bytes/sample ({:.3} in chunks)",
        pb as f64 / ps as f64,
        pc as f64 / ps as f64
    );
    println!(
        "  ratio ember/promtool: {:.3} whole block, {:.3} chunks",
        (eb as f64 / es as f64) / (pb as f64 / ps as f64),
        (ec as f64 / es as f64) / (pc as f64 / ps as f64)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    let usage = "usage: scale write DIR [SERIES] [BLOCKS] | compact DIR [OUT_DIR] | open DIR | \
                 record PAGES_DIR [N] [INTERVAL_MS] [PORT] | node PAGES_DIR OUT_DIR";
    match (arg(0), arg(1)) {
        (Some("write"), Some(d)) => cmd_write(
            Path::new(d),
            arg(2).map_or(1_000_000, |s| s.parse().unwrap()),
            arg(3).map_or(3, |s| s.parse().unwrap()),
        ),
        (Some("compact"), Some(d)) => cmd_compact(Path::new(d), Path::new(arg(2).unwrap_or(d))),
        (Some("open"), Some(d)) => cmd_open(Path::new(d)),
        (Some("record"), Some(d)) => cmd_record(
            Path::new(d),
            arg(2).map_or(60, |s| s.parse().unwrap()),
            Duration::from_millis(arg(3).map_or(1000, |s| s.parse().unwrap())),
            arg(4).map_or(19100, |s| s.parse().unwrap()),
        ),
        (Some("node"), Some(d)) => {
            cmd_node(Path::new(d), Path::new(arg(2).unwrap_or("/tmp/ember-node-blocks")))
        }
        _ => {
            eprintln!("{usage}");
            std::process::exit(2);
        }
    }
}
