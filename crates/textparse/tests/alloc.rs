//! The zero-copy promise: once the parser exists, producing a sample entry
//! allocates nothing unless a name or value in it has escapes. Checked
//! with a counting global allocator (this test binary only).
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ember_textparse::{Entry, Format, Parser};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: delegates to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn page(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/exposition").join(name),
    )
    .unwrap()
}

#[test]
fn samples_allocate_nothing() {
    for (name, format) in [
        ("node_exporter.txt", Format::PrometheusText),
        ("node_exporter.om.txt", Format::OpenMetrics),
        ("prometheus.txt", Format::PrometheusText),
        ("prometheus.om.txt", Format::OpenMetrics),
    ] {
        let input = page(name);
        let mut parser = Parser::new(&input, format);
        let mut samples = 0;
        loop {
            let before = ALLOCATIONS.load(Ordering::Relaxed);
            let Some(entry) = parser.next() else { break };
            let allocated = ALLOCATIONS.load(Ordering::Relaxed) - before;
            if let Entry::Sample(s) = entry.unwrap() {
                assert!(!s.series.contains('\\'), "pages chosen without escapes in series");
                assert_eq!(allocated, 0, "{name}: {}", s.series);
                // Iterating labels allocates only to canonicalise `le` and
                // `quantile` values, so check the series without them.
                let raw = s.labels.raw();
                if !raw.contains("le=") && !raw.contains("quantile=") {
                    let before = ALLOCATIONS.load(Ordering::Relaxed);
                    let n = s.labels.iter().count();
                    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed) - before, 0, "{name}: {}", s.series);
                    assert_eq!(n, raw.matches("=\"").count());
                }
                samples += 1;
            }
        }
        assert!(samples > 300, "{name}");
    }
}
