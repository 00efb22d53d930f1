//! CPU time per sample of a steady-state scrape: a page parsed, matched
//! against the target's cache and appended into a real head (no WAL), then
//! committed. Measures the calling thread's CPU time (from
//! `/proc/thread-self/schedstat`), so other processes on the machine change
//! the figure far less than they change wall-clock time.
//!
//! `cargo run --release -p ember-scrape --example scrape_cpu -- [SERIES] [SCRAPES] [PAGE_FILE]`
//!
//! Without a page file the page is synthetic: SERIES counters with three
//! labels whose values change on every scrape. With one (e.g.
//! `testdata/exposition/node_exporter.prom`), that page is scraped as is.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use ember_model::{labels, Appendable};
use ember_scrape::append::{append_page, AppendOptions, ScrapeCache};
use ember_textparse::Format;

/// Nanoseconds this thread has run on a CPU.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

/// A few variants of the page, so values change from scrape to scrape (as
/// an exporter's do) without formatting pages inside the measurement.
fn synthetic_pages(series: usize) -> Vec<Vec<u8>> {
    (0..4)
        .map(|v| {
            let mut page =
                String::from("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
            for i in 0..series {
                page.push_str(&format!(
                    "http_requests_total{{method=\"GET\",code=\"{}\",path=\"/api/v1/endpoint/{}\"}} {}\n",
                    200 + i % 5,
                    i / 5,
                    i * 7 + v * (i % 13)
                ));
            }
            page.into_bytes()
        })
        .collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let series: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let scrapes: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(500);
    let pages = match args.get(3) {
        Some(path) => match std::fs::read(path) {
            Ok(b) => vec![b],
            Err(e) => {
                eprintln!("{path}: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => synthetic_pages(series),
    };
    let target = labels!("job" => "node", "instance" => "web-1:9100");
    let opts = AppendOptions { honor_timestamps: true, ..Default::default() };
    let head = ember_tsdb::Head::new(ember_tsdb::HeadOptions::default());
    let mut cache = ScrapeCache::new();
    let mut ts = 1_000_000i64;
    let mut scrape = |n: usize| -> Result<u64, String> {
        let mut samples = 0;
        for i in 0..n {
            ts += 15_000;
            let mut app = head.appender();
            let page = &pages[i % pages.len()];
            let st = append_page(app.as_mut(), &mut cache, &target, &opts, page, Format::PrometheusText, ts)
                .map_err(|e| e.to_string())?;
            app.commit().map_err(|e| e.to_string())?;
            samples += st.scraped;
        }
        Ok(samples)
    };
    // Warm-up: the first page creates the series and fills the cache.
    if let Err(e) = scrape(10) {
        eprintln!("scrape: {e}");
        return ExitCode::FAILURE;
    }
    let mut per_sample = Vec::new();
    for _ in 0..5 {
        let Some(before) = thread_cpu_ns() else {
            eprintln!("cannot read /proc/thread-self/schedstat");
            return ExitCode::FAILURE;
        };
        let samples = match scrape(scrapes) {
            Ok(n) => n,
            Err(e) => {
                eprintln!("scrape: {e}");
                return ExitCode::FAILURE;
            }
        };
        let after = thread_cpu_ns().unwrap_or(before);
        per_sample.push((after - before) as f64 / samples as f64);
    }
    per_sample.sort_by(f64::total_cmp);
    let shown: Vec<String> = per_sample.iter().map(|ns| format!("{ns:.1}")).collect();
    println!(
        "{} samples per page, {scrapes} scrapes per round: CPU ns/sample median {:.1} (rounds: {})",
        pages[0].split(|&b| b == b'\n').filter(|l| !l.is_empty() && l[0] != b'#').count(),
        per_sample[per_sample.len() / 2],
        shown.join(", ")
    );
    ExitCode::SUCCESS
}
