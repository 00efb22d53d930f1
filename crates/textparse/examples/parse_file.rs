//! Parses a page file repeatedly and prints what it found: a driver for
//! profiling (`valgrind --tool=callgrind`) and for quick checks of a
//! captured page.
//!
//! `cargo run --release -p ember-textparse --example parse_file -- PAGE [text|om] [ITERATIONS]`

use std::process::ExitCode;

use ember_textparse::{Entry, Format, Parser};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: parse_file PAGE [text|om] [ITERATIONS]");
        return ExitCode::FAILURE;
    };
    let format = match args.get(2).map(String::as_str) {
        Some("om") => Format::OpenMetrics,
        _ => Format::PrometheusText,
    };
    let iterations: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(1);
    let input = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("{path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (mut samples, mut checksum) = (0usize, 0.0f64);
    for _ in 0..iterations {
        for entry in Parser::new(&input, format) {
            match entry {
                Ok(Entry::Sample(s)) => {
                    samples += 1;
                    checksum += s.value;
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("{path}: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
    }
    eprintln!("{samples} samples, {} bytes per pass, checksum {checksum}", input.len());
    ExitCode::SUCCESS
}
