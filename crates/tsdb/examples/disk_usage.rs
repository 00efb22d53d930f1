//! Disk bytes per sample, compaction throughput and read speed for a
//! node_exporter-like workload, side by side with Prometheus's own block
//! writer (`promtool tsdb create-blocks-from openmetrics`) on the same data.
//!
//! Run: `cargo run --release -p ember-tsdb --example disk_usage -- [SERIES] [HOURS]`
//! (defaults 1000 series, 24 h at 15 s).
//!
//! The workload, generated with a fixed seed: 25 % constant gauges (sizes,
//! info-style values), 20 % slowly moving integer gauges (memory in pages),
//! 20 % integer counters (bytes, packets), 15 % two-decimal float counters
//! (CPU seconds), 20 % classic histogram buckets (sparse integer
//! increments). Timestamps are exactly 15 s apart, as Prometheus's scrape
//! timestamp alignment makes them in practice.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use common::block_bytes;
use ember_model::{Appendable, Labels, Matcher, Queryable, SelectHints};
use ember_tsdb::{Db, DbOptions};

mod common;

const STEP: i64 = 15_000;
const H: i64 = 3600 * 1000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Constant,
    PagesGauge,
    IntCounter,
    CpuCounter,
    Bucket,
}

struct Gen {
    labels: Labels,
    kind: Kind,
    v: f64,
    rate: f64,
}

fn workload(n: usize) -> Vec<Gen> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n)
        .map(|i| {
            let (kind, name) = match i % 20 {
                0..=4 => (Kind::Constant, "node_filesystem_size_bytes"),
                5..=8 => (Kind::PagesGauge, "node_memory_Active_bytes"),
                9..=12 => (Kind::IntCounter, "node_network_receive_bytes_total"),
                13..=15 => (Kind::CpuCounter, "node_cpu_seconds_total"),
                _ => (Kind::Bucket, "http_request_duration_seconds_bucket"),
            };
            let inst = format!("host-{}:9100", i / 100);
            let id = format!("{}", i % 100);
            let labels = Labels::from_pairs(&[
                ("__name__", name),
                ("instance", &inst),
                ("job", "node"),
                ("device", &id),
            ]);
            let v = (rng.next() % 1_000_000) as f64 * 4096.0;
            Gen { labels, kind, v, rate: rng.unit() }
        })
        .collect()
}

fn step(g: &mut Gen, rng: &mut Rng) -> f64 {
    match g.kind {
        Kind::Constant => {}
        Kind::PagesGauge => {
            if rng.unit() < 0.5 {
                g.v += ((rng.next() % 64) as f64 - 32.0) * 4096.0;
            }
        }
        Kind::IntCounter => g.v += (rng.next() % (1 + (g.rate * 50_000.0) as u64)) as f64,
        Kind::CpuCounter => {
            // Seconds with two decimals, as node_exporter reports them.
            let inc = (g.rate * 15.0 * rng.unit() * 100.0).round() / 100.0;
            g.v = ((g.v + inc) * 100.0).round() / 100.0;
        }
        Kind::Bucket => {
            if rng.unit() < g.rate {
                g.v += (rng.next() % 5) as f64;
            }
        }
    }
    g.v
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let hours: i64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(24);
    let steps = (hours * H / STEP) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let ember_dir = tmp.path().join("ember");
    let om_path = tmp.path().join("data.om");
    let t0 = 1_700_000_000_000 / (2 * H) * (2 * H);

    // One pass generates the samples for ember and the OpenMetrics file.
    let mut gens = workload(n);
    let mut rng = Rng(42);
    let db = Db::open(&ember_dir, DbOptions { retention_time: None, ..DbOptions::default() }).unwrap();
    let mut om = std::io::BufWriter::new(std::fs::File::create(&om_path).unwrap());
    let started = Instant::now();
    let mut lines: Vec<Vec<(i64, f64)>> = vec![Vec::with_capacity(steps); n];
    for k in 0..steps {
        let t = t0 + k as i64 * STEP;
        let mut a = db.appender();
        for (i, g) in gens.iter_mut().enumerate() {
            let v = step(g, &mut rng);
            a.append(None, &g.labels, t, v).unwrap();
            lines[i].push((t, v));
        }
        a.commit().unwrap();
    }
    let ingest = started.elapsed();
    // OpenMetrics wants each series' samples together.
    for (i, g) in gens.iter().enumerate() {
        let name = g.labels.metric_name().unwrap();
        // OpenMetrics allows no spaces between labels.
        let rest: Vec<String> = g
            .labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| format!("{}=\"{}\"", l.name, l.value))
            .collect();
        let rest = format!("{{{}}}", rest.join(","));
        for (t, v) in &lines[i] {
            writeln!(om, "{name}{rest} {v} {}", *t as f64 / 1000.0).unwrap();
        }
    }
    writeln!(om, "# EOF").unwrap();
    drop(om);
    let total_samples = (n * steps) as u64;

    let started = Instant::now();
    // Compact until the head holds less than 1.5 ranges.
    let stats = db.compact().unwrap();
    let compact_time = started.elapsed();
    let (eb, ec, es) = block_bytes(&ember_dir);

    // Reads: every sample of every series, from blocks and from the head.
    let read = |mint: i64, maxt: i64| {
        let started = Instant::now();
        let q = db.querier(mint, maxt).unwrap();
        let mut count = 0u64;
        for s in q.select(false, &SelectHints::default(), &[Matcher::equal("job", "node")]).unwrap() {
            let mut s = s.unwrap();
            while s.samples.next() {
                count += 1;
            }
        }
        (count, started.elapsed())
    };
    let blocks_end = db.blocks().iter().map(|b| b.meta().max_time).max().unwrap_or(t0);
    let (block_samples, block_read) = read(t0, blocks_end - 1);
    let (head_samples, head_read) = read(blocks_end, i64::MAX / 2);

    println!("workload: {n} series x {steps} samples ({hours} h at 15 s) = {total_samples} samples");
    println!(
        "ember ingest: {:.2?} ({:.1} M samples/s incl. WAL)",
        ingest,
        total_samples as f64 / ingest.as_secs_f64() / 1e6
    );
    println!(
        "ember compaction: {:.2?} for {} head blocks + {} merges ({:.1} M samples/s)",
        compact_time,
        stats.head_blocks,
        stats.merged_blocks,
        es as f64 / compact_time.as_secs_f64() / 1e6
    );
    println!(
        "ember blocks: {} samples, {} bytes = {:.3} bytes/sample ({:.3} in chunks)",
        es,
        eb,
        eb as f64 / es as f64,
        ec as f64 / es as f64
    );
    println!(
        "read all samples: blocks {} in {:.2?} ({:.1} M/s), head {} in {:.2?} ({:.1} M/s)",
        block_samples,
        block_read,
        block_samples as f64 / block_read.as_secs_f64() / 1e6,
        head_samples,
        head_read,
        head_samples as f64 / head_read.as_secs_f64().max(1e-9) / 1e6
    );

    let promtool = Path::new("/usr/bin/promtool");
    if promtool.exists() {
        let pdir = tmp.path().join("prom");
        std::fs::create_dir_all(&pdir).unwrap();
        let started = Instant::now();
        let out = Command::new(promtool)
            .args(["tsdb", "create-blocks-from", "openmetrics", "--max-block-duration=24h"])
            .arg(&om_path)
            .arg(&pdir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let ptime = started.elapsed();
        let (pb, pc, ps) = block_bytes(&pdir);
        println!(
            "promtool blocks: {} samples, {} bytes = {:.3} bytes/sample ({:.3} in chunks), written in {:.2?}",
            ps,
            pb,
            pb as f64 / ps as f64,
            pc as f64 / ps as f64,
            ptime
        );
        println!(
            "ratio ember/promtool bytes per sample: {:.3}",
            (eb as f64 / es as f64) / (pb as f64 / ps as f64)
        );
    } else {
        println!("promtool not installed: no comparison");
    }
}
