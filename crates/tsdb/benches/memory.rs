//! Head memory per active series holding 120 samples, measured with a
//! counting global allocator. Label strings are measured separately and
//! excluded from the per-series figure, as the target says.
//!
//! Run: `cargo bench -p ember-tsdb --bench memory`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use ember_model::{Appendable, Labels, SeriesRef};
use ember_tsdb::{Head, HeadOptions};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: delegates to the system allocator; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: usize =
        std::env::var("EMBER_BENCH_MEMORY_SERIES").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let labels: Vec<Labels> = (0..n)
        .map(|i| {
            Labels::from_pairs(&[
                ("__name__", format!("metric_{}", i % 100)),
                ("instance", format!("host-{}:9100", i % 1000)),
                ("job", "node".to_string()),
                ("series", i.to_string()),
            ])
        })
        .collect();
    let label_bytes: usize = labels.iter().map(|l| l.byte_size() + 16).sum();

    let before = live();
    let head = Head::new(HeadOptions::default());
    let mut refs: Vec<Option<SeriesRef>> = vec![None; n];
    let mut t = 1_700_000_000_000i64 / 7_200_000 * 7_200_000;
    let mut v = 0.0;
    for _ in 0..120 {
        t += 15_000;
        v += 1.5;
        for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
            let mut app = head.appender();
            for &i in chunk {
                refs[i] = Some(app.append(refs[i], &labels[i], t, v + i as f64).unwrap());
            }
            app.commit().unwrap();
        }
    }
    let after = live();
    drop(refs);
    // The label buffers are shared with `labels` (Arc), so the head's
    // growth excludes label strings except for the copies the postings keep
    // as map keys.
    let per_series = (after - before) as f64 / n as f64;
    println!(
        "head memory: {n} series x 120 samples: {:.0} bytes/series (label sets, held by caller: {:.0} bytes/series; chunks: {})",
        per_series,
        label_bytes as f64 / n as f64,
        head.num_chunks(),
    );
    drop(head);
}
