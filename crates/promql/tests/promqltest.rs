//! Runs the conformance corpus `testdata/promql/*.test` (promqltest format,
//! subset described in `testdata/promql/README.md`) against the engine over
//! `MemStorage`. Every eval runs; the test fails at the end with the list of
//! every failing eval (file:line, expected, got).

#![allow(clippy::unwrap_used)]

mod common;

use common::promqltest::run_file;

#[test]
fn promql_corpus() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/promql");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    let mut failures = Vec::new();
    let mut total = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let parse_errors_as_failures = name == "parse_errors.test";
        let res = run_file(&name, &text, parse_errors_as_failures);
        total += res.evals;
        failures.extend(res.failures);
    }
    // The corpus README states 681 evals; a runner that silently skipped
    // some would otherwise pass.
    assert!(total >= 681, "only {total} evals found");
    if !failures.is_empty() {
        panic!("{} of {} evals failed:\n\n{}", failures.len(), total, failures.join("\n\n"));
    }
    eprintln!("{total} evals passed");
}

/// The runner itself must notice wrong expectations.
#[test]
fn runner_detects_mismatches() {
    let script = "load 1m\n    m{a=\"1\"} 1+1x5\n\neval instant at 2m m\n    m{a=\"1\"} 4\n\neval instant at 2m m\n    m{a=\"1\"} 3\n\neval range from 0 to 2m step 1m m\n    m{a=\"1\"} 1 2 3\n\neval range from 0 to 2m step 1m m\n    m{a=\"1\"} 1 _ 3\n\neval instant at 1m nope(\n    expect fail\n";
    let res = run_file("inline", script, true);
    assert_eq!(res.evals, 5);
    assert_eq!(res.failures.len(), 2, "{:?}", res.failures);
    assert!(res.failures[0].starts_with("inline:4:"), "{}", res.failures[0]);
    assert!(res.failures[1].starts_with("inline:13:"), "{}", res.failures[1]);
}
