#![allow(clippy::unwrap_used)]
//! Hot paths of scraping: target relabelling and storing a page.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ember_model::{labels, AppendError, Appender, CommitStats, Labels, SeriesRef, StorageError};
use ember_scrape::append::{append_page, AppendOptions, ScrapeCache};
use ember_textparse::Format;

/// Accepts everything, so the bench measures ember-scrape, not a storage.
struct NopAppender(u64);

impl Appender for NopAppender {
    fn append(&mut self, r: Option<SeriesRef>, _: &Labels, _: i64, _: f64) -> Result<SeriesRef, AppendError> {
        self.0 += 1;
        Ok(r.unwrap_or(SeriesRef::new(self.0).unwrap()))
    }
    fn commit(&mut self) -> Result<CommitStats, StorageError> {
        Ok(CommitStats::default())
    }
    fn rollback(&mut self) {}
}

fn rules(yaml: &str) -> Vec<ember_config::RelabelConfig> {
    let indented: String = yaml.lines().map(|l| format!("      {l}\n")).collect();
    let doc = format!("scrape_configs:\n  - job_name: t\n    metric_relabel_configs:\n{indented}");
    ember_config::parse_str(&doc).unwrap().scrape_configs.remove(0).metric_relabel_configs
}

fn bench_relabel(c: &mut Criterion) {
    let r = rules(
        "- source_labels: [__name__]\n  regex: 'go_.*'\n  action: drop\n- source_labels: [instance]\n  regex: '([^:]+):.*'\n  target_label: host\n- action: labelmap\n  regex: '__meta_(.+)'\n- action: hashmod\n  source_labels: [instance]\n  modulus: 8\n  target_label: shard\n- action: labeldrop\n  regex: 'tmp_.*'\n",
    );
    let l = labels!(
        "__name__" => "http_requests_total", "instance" => "web-1:9100", "job" => "node",
        "__meta_zone" => "eu", "tmp_x" => "1", "method" => "GET", "code" => "200"
    );
    let mut g = c.benchmark_group("relabel");
    g.throughput(Throughput::Elements(1));
    g.bench_function("5_rules", |b| b.iter(|| ember_scrape::process(&l, &r)));
    g.finish();
}

fn bench_append(c: &mut Criterion) {
    let mut page = String::new();
    for i in 0..1000 {
        page.push_str(&format!("http_requests_total{{method=\"GET\",code=\"200\",path=\"/api/{i}\"}} {i}\n"));
    }
    let target = labels!("job" => "node", "instance" => "web-1:9100");
    let opts = AppendOptions { honor_timestamps: true, ..Default::default() };
    let mut g = c.benchmark_group("append_page");
    g.throughput(Throughput::Elements(1000));
    // The steady state: every series is in the cache.
    g.bench_function("1000_series_cached", |b| {
        let mut cache = ScrapeCache::new();
        let mut app = NopAppender(0);
        let mut ts = 0;
        b.iter(|| {
            ts += 1000;
            append_page(&mut app, &mut cache, &target, &opts, page.as_bytes(), Format::PrometheusText, ts)
                .unwrap()
        })
    });
    // A first scrape: every series is parsed, labelled and cached.
    g.bench_function("1000_series_cold", |b| {
        b.iter(|| {
            let mut cache = ScrapeCache::new();
            let mut app = NopAppender(0);
            append_page(&mut app, &mut cache, &target, &opts, page.as_bytes(), Format::PrometheusText, 1000)
                .unwrap()
        })
    });
    g.finish();
}

/// The figure: a 10k-series page in steady state, parsed, looked
/// up in the cache and appended into the real head (no WAL), committed.
fn bench_scrape_into_head(c: &mut Criterion) {
    let mut page = String::new();
    page.push_str("# HELP http_requests_total Requests.\n# TYPE http_requests_total counter\n");
    for i in 0..10_000 {
        page.push_str(&format!(
            "http_requests_total{{method=\"GET\",code=\"{}\",path=\"/api/v1/endpoint/{}\"}} {}\n",
            200 + i % 5,
            i / 5,
            i * 7
        ));
    }
    let target = labels!("job" => "node", "instance" => "web-1:9100");
    let opts = AppendOptions { honor_timestamps: true, ..Default::default() };
    let head = ember_tsdb::Head::new(ember_tsdb::HeadOptions::default());
    let mut cache = ScrapeCache::new();
    let mut ts = 1_000_000i64;
    let mut g = c.benchmark_group("scrape_page_into_head");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("10000_series_steady_state", |b| {
        b.iter(|| {
            ts += 15_000;
            let mut app = ember_model::Appendable::appender(&head);
            let st = append_page(
                app.as_mut(),
                &mut cache,
                &target,
                &opts,
                page.as_bytes(),
                Format::PrometheusText,
                ts,
            )
            .unwrap();
            app.commit().unwrap();
            st
        })
    });
    g.finish();
}

criterion_group!(benches, bench_relabel, bench_append, bench_scrape_into_head);
criterion_main!(benches);
