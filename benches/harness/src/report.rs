//! Markdown rendering of a [`BenchResult`]: one column per server and, for
//! every server after the first (the baseline, normally Prometheus), a
//! column with its ratio to the baseline.

use std::fmt::Write as _;

use crate::blocks::BlockFigures;
use crate::load::LoadFigures;
use crate::queries::Kind;
use crate::results::{BenchResult, Restart, ServerResult};
use crate::stats;

const MIB: f64 = 1024.0 * 1024.0;

/// `n/a` for a missing figure, else the value with `decimals` places.
pub fn fmt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.decimals$}"),
        _ => "n/a".to_owned(),
    }
}

/// `value / base` when both are known and the base is non-zero.
pub fn ratio(value: Option<f64>, base: Option<f64>) -> Option<f64> {
    match (value, base) {
        (Some(v), Some(b)) if b != 0.0 && v.is_finite() && b.is_finite() => Some(v / b),
        _ => None,
    }
}

fn ratio_cell(value: Option<f64>, base: Option<f64>) -> String {
    ratio(value, base).map_or("n/a".to_owned(), |r| format!("{r:.2}×"))
}

/// One figure per server.
struct Row {
    label: String,
    values: Vec<Option<f64>>,
    decimals: usize,
}

fn table(out: &mut String, servers: &[&ServerResult], rows: &[Row]) {
    let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
    let mut header = format!("| figure | {} |", names.join(" | "));
    let mut sep = format!("|---|{}", "---:|".repeat(names.len()));
    for n in names.iter().skip(1) {
        let _ = write!(header, " {n} / {} |", names[0]);
        sep.push_str("---:|");
    }
    let _ = writeln!(out, "{header}\n{sep}");
    for row in rows {
        let cells: Vec<String> = row.values.iter().map(|v| fmt(*v, row.decimals)).collect();
        let mut line = format!("| {} | {} |", row.label, cells.join(" | "));
        for v in row.values.iter().skip(1) {
            let _ = write!(line, " {} |", ratio_cell(*v, row.values.first().copied().flatten()));
        }
        let _ = writeln!(out, "{line}");
    }
    out.push('\n');
}

fn row(
    label: &str,
    decimals: usize,
    servers: &[&ServerResult],
    f: impl Fn(&ServerResult) -> Option<f64>,
) -> Row {
    Row { label: label.to_owned(), values: servers.iter().map(|s| f(s)).collect(), decimals }
}

/// Index bytes per series: per block for block storage (a series in three
/// blocks is indexed three times), VictoriaMetrics's one global indexdb
/// over the active series.
fn index_bytes_per_series(s: &ServerResult) -> Option<f64> {
    let b = s.stored.as_ref()?.figures.as_ref()?;
    let series = match b.series_in_blocks {
        Some(n) => n,
        None => s.ingest.as_ref()?.active_series?,
    };
    (series > 0.0).then(|| b.index_bytes as f64 / series)
}

pub fn markdown(r: &BenchResult) -> String {
    let mut out = String::new();
    let p = &r.params;
    let _ = writeln!(out, "# ember-bench results, {}\n", r.started_at);
    let _ = writeln!(
        out,
        "Setup: {} targets × {} series = {} series per server; scrape interval {} s; ingestion {} s; \
         block range {}; each query {} measured runs after one warm-up, repeated {} time(s) (figures are \
         medians across repeats); range queries over the last {} s; load phase {} clients × {} s per server. \
         Servers ingest side by side from one exporter process; queries, load and restarts run one server \
         at a time while the others keep ingesting. Host: {} CPUs, load average {} at start, {} at end; \
         harness peak RSS {} MiB.\n",
        p.targets,
        p.series,
        p.targets * p.series,
        p.interval_s,
        p.duration_s,
        p.block_range_s.map_or("default (2 h)".to_owned(), |s| format!("{s} s (Prometheus and ember)")),
        p.query_runs,
        p.repeats,
        p.range_window_s,
        p.load_clients,
        p.load_duration_s,
        r.host.cpus,
        r.host.loadavg_start,
        r.host.loadavg_end,
        fmt(r.host.harness_peak_rss_bytes.map(|b| b as f64 / MIB), 1),
    );
    for s in &r.servers {
        let _ = writeln!(out, "- **{}**: {}", s.name, s.version.as_deref().unwrap_or("version unknown"));
    }
    out.push('\n');

    if let Some(e) = &r.exporter {
        let _ = writeln!(out, "## Exporter (ingestion window)\n");
        let _ =
            writeln!(out, "| scrapes served | CPU s | CPU µs / scrape | share of one core | MiB served |");
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {:.2} % | {:.1} |\n",
            e.scrapes,
            e.cpu_seconds,
            fmt(e.cpu_us_per_scrape, 0),
            e.core_share * 100.0,
            e.mib_served
        );
    }

    let servers: Vec<&ServerResult> = r.servers.iter().collect();
    let ing =
        |f: fn(&crate::results::Ingest) -> Option<f64>| move |s: &ServerResult| s.ingest.as_ref().and_then(f);
    let _ = writeln!(out, "## Ingestion\n");
    let rows = vec![
        row("startup: exec → ready (s)", 2, &servers, |s| s.startup_s),
        row("startup: CPU s exec → ready", 2, &servers, |s| s.startup_cpu_s),
        row("samples ingested (exporter samples)", 0, &servers, ing(|i| i.samples)),
        row("CPU s (ready → end of ingestion)", 2, &servers, ing(|i| i.cpu_seconds)),
        row("CPU s per million samples", 3, &servers, ing(|i| i.cpu_s_per_million_samples)),
        row("peak RSS (MiB, VmHWM)", 1, &servers, ing(|i| i.peak_rss_bytes.map(|b| b as f64 / MIB))),
        row(
            "steady RSS (MiB, median VmRSS, 2nd half)",
            1,
            &servers,
            ing(|i| i.steady_rss_bytes.map(|b| b as f64 / MIB)),
        ),
        row("active series", 0, &servers, ing(|i| i.active_series)),
        row("steady RSS bytes per series", 0, &servers, ing(|i| i.steady_rss_bytes_per_series)),
        row("peak RSS bytes per series", 0, &servers, ing(|i| i.peak_rss_bytes_per_series)),
        row("scrapes seen / expected", 3, &servers, ing(|i| i.scrapes_seen.map(|s| s / i.scrapes_expected))),
        row("max scrape duration (s)", 3, &servers, ing(|i| i.max_scrape_duration_s)),
        row("min up", 0, &servers, ing(|i| i.min_up)),
    ];
    table(&mut out, &servers, &rows);

    let _ = writeln!(out, "## Disk\n");
    let st = |f: fn(&BlockFigures) -> Option<f64>| {
        move |s: &ServerResult| s.stored.as_ref().and_then(|x| x.figures.as_ref()).and_then(f)
    };
    let rows = vec![
        row(
            "blocks written (end of ingestion)",
            0,
            &servers,
            st(|b| b.series_in_blocks.map(|_| b.blocks as f64)),
        ),
        row("stored samples (numSamples / vm_rows)", 0, &servers, st(|b| Some(b.samples))),
        row("stored MiB (blocks / VM data dir)", 2, &servers, st(|b| Some(b.bytes as f64 / MIB))),
        row("stored bytes per sample", 3, &servers, st(BlockFigures::bytes_per_sample)),
        row(
            "chunk bytes per sample (sample data only)",
            3,
            &servers,
            st(BlockFigures::chunk_bytes_per_sample),
        ),
        row("index bytes per series (per block; VM: whole indexdb)", 1, &servers, index_bytes_per_series),
        row("data dir after SIGTERM (MiB)", 2, &servers, |s| s.disk.as_ref().map(|d| d.bytes as f64 / MIB)),
        row("data dir bytes per sample ingested", 2, &servers, |s| {
            s.disk.as_ref().and_then(|d| d.bytes_per_sample)
        }),
    ];
    table(&mut out, &servers, &rows);
    for s in &r.servers {
        if let Some(note) = s.stored.as_ref().and_then(|x| x.note.as_ref()) {
            let _ = writeln!(out, "- {}: {note}", s.name);
        }
    }
    out.push('\n');

    for (kind, title) in [(Kind::Instant, "instant"), (Kind::Range, "range"), (Kind::Metadata, "metadata")] {
        let _ = writeln!(
            out,
            "## Queries: {title} (latency ms, median and p90; medians across {} repeat(s))\n",
            p.repeats
        );
        let names: Vec<String> = r
            .servers
            .iter()
            .flat_map(|s| s.queries.iter().filter(|q| q.kind == kind).map(|q| q.name.clone()))
            .fold(Vec::new(), |mut acc, n| {
                if !acc.contains(&n) {
                    acc.push(n);
                }
                acc
            });
        let mut rows = Vec::new();
        for name in &names {
            let find =
                |s: &ServerResult| s.queries.iter().find(|q| q.kind == kind && &q.name == name).cloned();
            rows.push(row(&format!("{name}: median"), 2, &servers, |s| find(s).and_then(|q| q.median_ms)));
            rows.push(row(&format!("{name}: p90"), 2, &servers, |s| find(s).and_then(|q| q.p90_ms)));
            rows.push(row(&format!("{name}: result size"), 0, &servers, |s| {
                find(s).and_then(|q| q.result_len).map(|n| n as f64)
            }));
        }
        if rows.is_empty() {
            let _ = writeln!(out, "n/a (no server answered)\n");
        } else {
            table(&mut out, &servers, &rows);
        }
    }

    if r.servers.iter().any(|s| s.load.is_some()) {
        let _ = writeln!(out, "## Concurrent query load while ingesting\n");
        let ld = |f: fn(&LoadFigures) -> Option<f64>| move |s: &ServerResult| s.load.as_ref().and_then(f);
        let rows = vec![
            row("clients", 0, &servers, ld(|l| Some(l.clients as f64))),
            row("seconds", 1, &servers, ld(|l| Some(l.seconds))),
            row("requests answered", 0, &servers, ld(|l| Some(l.requests as f64))),
            row("queries per second (successful)", 2, &servers, ld(|l| Some(l.ok_per_s))),
            row("errors", 0, &servers, ld(|l| Some((l.requests - l.ok) as f64))),
            row("latency p50 (ms)", 1, &servers, ld(|l| l.p50_ms)),
            row("latency p90 (ms)", 1, &servers, ld(|l| l.p90_ms)),
            row("latency max (ms)", 1, &servers, ld(|l| l.max_ms)),
            row(
                "scrapes seen / expected during load",
                3,
                &servers,
                ld(|l| l.scrapes_seen.filter(|_| l.scrapes_expected > 0.0).map(|s| s / l.scrapes_expected)),
            ),
            row("max scrape duration during load (s)", 3, &servers, ld(|l| l.max_scrape_duration_s)),
            row("min up during load", 0, &servers, ld(|l| l.min_up)),
        ];
        table(&mut out, &servers, &rows);
        for s in &r.servers {
            if let Some(l) = &s.load {
                if !l.errors.is_empty() {
                    let kinds: Vec<String> = l.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
                    let _ = writeln!(out, "- {} errors by kind: {}", s.name, kinds.join(", "));
                }
            }
        }
        out.push('\n');
    }

    let _ = writeln!(
        out,
        "## Restarts (times: median across {} repeat(s); losses: the largest in any repeat)\n",
        p.repeats
    );
    let mut rows = Vec::new();
    for signal in ["SIGTERM", "SIGKILL"] {
        let med = |f: fn(&Restart) -> Option<f64>| {
            move |s: &ServerResult| {
                let v: Vec<f64> = s.restarts.iter().filter(|x| x.signal == signal).filter_map(f).collect();
                stats::median(&v)
            }
        };
        let worst = |f: fn(&Restart) -> Option<f64>| {
            move |s: &ServerResult| {
                s.restarts.iter().filter(|x| x.signal == signal).filter_map(f).reduce(f64::max)
            }
        };
        rows.push(row(&format!("{signal}: stop → exited (s)"), 2, &servers, med(|x| x.stop_s)));
        rows.push(row(&format!("{signal}: exec → ready (s)"), 2, &servers, med(|x| x.ready_s)));
        rows.push(row(&format!("{signal}: CPU s exec → ready"), 2, &servers, med(|x| x.ready_cpu_s)));
        rows.push(row(
            &format!("{signal}: samples before (target 1)"),
            0,
            &servers,
            worst(|x| x.samples_before),
        ));
        rows.push(row(&format!("{signal}: samples lost (target 1)"), 0, &servers, worst(|x| x.samples_lost)));
        rows.push(row(
            &format!("{signal}: scrapes lost (up, all targets)"),
            0,
            &servers,
            worst(|x| x.scrapes_lost),
        ));
    }
    table(&mut out, &servers, &rows);

    let mut problems = String::new();
    for s in &r.servers {
        for e in &s.errors {
            let _ = writeln!(problems, "- {}: {e}", s.name);
        }
        for q in &s.queries {
            if let Some(e) = &q.error {
                let kind = format!("{:?}", q.kind).to_lowercase();
                let _ = writeln!(problems, "- {}: query `{}` ({kind}): {e}", s.name, q.name);
            }
        }
        for x in &s.restarts {
            if let Some(e) = &x.error {
                let _ = writeln!(problems, "- {}: restart {}: {e}", s.name, x.signal);
            }
        }
    }
    if !problems.is_empty() {
        let _ = writeln!(out, "## Errors (figures shown as n/a)\n\n{problems}");
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(out, "- {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::*;

    fn server(name: &str, cpu: Option<f64>) -> ServerResult {
        ServerResult {
            name: name.into(),
            version: Some(format!("{name} 1.0")),
            command: vec![],
            startup_s: Some(0.5),
            startup_cpu_s: Some(0.1),
            ingest: cpu.map(|c| Ingest { cpu_s_per_million_samples: Some(c), ..Ingest::default() }),
            queries: vec![QueryFigures {
                name: "rate".into(),
                kind: Kind::Instant,
                text: "rate(x[1m])".into(),
                median_ms: cpu.map(|c| c * 10.0),
                p90_ms: None,
                repeat_latencies_ms: vec![],
                ok_runs: 1,
                failed_runs: 0,
                result_len: Some(3),
                error: cpu.is_none().then(|| "HTTP 404: not found".to_owned()),
            }],
            load: None,
            restarts: vec![],
            disk: None,
            stored: None,
            errors: if cpu.is_none() { vec!["no samples".into()] } else { vec![] },
        }
    }

    #[test]
    fn ratio_and_formatting() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(Some(3.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(fmt(Some(1.23456), 2), "1.23");
        assert_eq!(fmt(None, 2), "n/a");
        assert_eq!(fmt(Some(f64::NAN), 2), "n/a");
    }

    fn result(servers: Vec<ServerResult>) -> BenchResult {
        BenchResult {
            started_at: "2026-11-28T00:00:00Z".into(),
            params: Params {
                targets: 2,
                series: 10,
                interval_s: 5,
                duration_s: 60,
                query_runs: 3,
                repeats: 3,
                block_range_s: Some(300),
                range_window_s: 600,
                load_clients: 8,
                load_duration_s: 60,
                servers: servers.iter().map(|s| s.name.clone()).collect(),
            },
            host: Host {
                cpus: 2,
                loadavg_start: "1 1 1".into(),
                loadavg_end: "2 2 2".into(),
                harness_peak_rss_bytes: Some(12 << 20),
            },
            exporter: None,
            servers,
            notes: vec![],
        }
    }

    #[test]
    fn markdown_has_ratio_columns_and_na_for_missing_server_figures() {
        let r = result(vec![
            server("prometheus", Some(2.0)),
            server("victoriametrics", Some(1.0)),
            server("ember", None),
        ]);
        let md = markdown(&r);
        assert!(md.contains("block range 300 s (Prometheus and ember)"), "{md}");
        assert!(md.contains("repeated 3 time(s)") && md.contains("harness peak RSS 12.0 MiB"), "{md}");
        assert!(md.contains("| figure | prometheus | victoriametrics | ember | victoriametrics / prometheus | ember / prometheus |"), "{md}");
        assert!(md.contains("| CPU s per million samples | 2.000 | 1.000 | n/a | 0.50× | n/a |"), "{md}");
        assert!(md.contains("| rate: median | 20.00 | 10.00 | n/a | 0.50× | n/a |"), "{md}");
        assert!(md.contains("- ember: no samples"));
        assert!(md.contains("- ember: query `rate` (instant): HTTP 404: not found"));
    }

    fn restart(signal: &str, repeat: usize, ready: f64, lost: f64) -> Restart {
        Restart {
            signal: signal.into(),
            repeat,
            stop_s: Some(0.1),
            ready_s: Some(ready),
            ready_cpu_s: Some(ready / 2.0),
            samples_before: Some(1000.0),
            samples_after: Some(1000.0 - lost),
            samples_lost: Some(lost),
            scrapes_before: Some(10.0),
            scrapes_after: Some(10.0),
            scrapes_lost: Some(0.0),
            error: None,
        }
    }

    #[test]
    fn disk_load_and_restart_tables() {
        let mut p = server("prometheus", Some(2.0));
        p.stored = Some(Stored {
            figures: Some(BlockFigures {
                blocks: 2,
                bytes: 3000,
                chunk_bytes: 1000,
                index_bytes: 1800,
                samples: 1000.0,
                series_in_blocks: Some(20.0),
                min_time: None,
                max_time: None,
            }),
            note: None,
        });
        // SIGKILL ready times 7, 9, 8 -> median 8; losses 0, 5, 0 -> worst 5.
        p.restarts = vec![
            restart("SIGTERM", 0, 1.0, 0.0),
            restart("SIGKILL", 0, 7.0, 0.0),
            restart("SIGKILL", 1, 9.0, 5.0),
            restart("SIGKILL", 2, 8.0, 0.0),
        ];
        let calls = vec![
            crate::queries::Timed { seconds: 0.010, outcome: crate::queries::Outcome::Ok },
            crate::queries::Timed {
                seconds: 0.020,
                outcome: crate::queries::Outcome::Status {
                    status: 503,
                    error_type: Some("unavailable".into()),
                },
            },
        ];
        p.load = Some(crate::load::summarize(8, 2.0, &calls));
        let mut e = server("ember", Some(1.0));
        e.stored = Some(Stored { figures: None, note: Some("no block written: why".into()) });
        e.restarts = vec![restart("SIGKILL", 0, 2.0, 0.0)];
        let md = markdown(&result(vec![p, e]));
        assert!(md.contains("| stored bytes per sample | 3.000 | n/a | n/a |"), "{md}");
        assert!(md.contains("| chunk bytes per sample (sample data only) | 1.000 | n/a | n/a |"), "{md}");
        assert!(
            md.contains("| index bytes per series (per block; VM: whole indexdb) | 90.0 | n/a | n/a |"),
            "{md}"
        );
        assert!(md.contains("- ember: no block written: why"), "{md}");
        assert!(md.contains("| SIGKILL: exec → ready (s) | 8.00 | 2.00 | 0.25× |"), "{md}");
        assert!(md.contains("| SIGKILL: samples lost (target 1) | 5 | 0 | 0.00× |"), "{md}");
        assert!(md.contains("| queries per second (successful) | 0.50 | n/a | n/a |"), "{md}");
        assert!(md.contains("| errors | 1 | n/a | n/a |"), "{md}");
        assert!(md.contains("- prometheus errors by kind: HTTP 503 / unavailable: 1"), "{md}");
    }
}
