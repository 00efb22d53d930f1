//! Fuzzes both exposition parsers: any input must parse to entries or to
//! one error with a 1-based position, never panic; and every sample's
//! labels must be buildable.
#![no_main]

use ember_textparse::{Entry, Format, LabelScratch, Parser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut scratch = LabelScratch::new();
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        let mut errors = 0;
        for entry in Parser::new(data, format) {
            match entry {
                Ok(Entry::Sample(s)) => {
                    // Zero-copy: the series text points into the input.
                    let range = data.as_ptr_range();
                    let series = s.series.as_bytes().as_ptr_range();
                    assert!(range.start <= series.start && series.end <= range.end);
                    let labels = s.to_labels(&mut scratch);
                    assert_eq!(labels.metric_name(), Some(&*s.name));
                    if let Some(ex) = &s.exemplar {
                        let _ = ex.to_labels(&mut scratch);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    assert!(e.line >= 1 && e.column >= 1, "{e:?}");
                    assert!(e.line <= data.iter().filter(|&&c| c == b'\n').count() + 1);
                    assert!(!e.message.is_empty());
                    errors += 1;
                }
            }
        }
        assert!(errors <= 1, "iteration must stop after the first error");
    }
});
