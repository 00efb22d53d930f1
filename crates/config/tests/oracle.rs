#![allow(clippy::unwrap_used)]
//! Every file in testdata/config is parsed and its verdict compared with
//! the one recorded in MANIFEST.tsv (promtool 2.42's verdict, and the
//! Prometheus 3.x verdict ember follows where the two differ).

use std::path::{Path, PathBuf};
use std::process::Command;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/config")
}

struct Entry {
    file: String,
    promtool: bool,
    ember: bool,
}

fn manifest() -> Vec<Entry> {
    let text = std::fs::read_to_string(testdata().join("MANIFEST.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            let verdict = |s: &str| match s {
                "valid" => true,
                "invalid" => false,
                other => panic!("bad verdict {other:?} in {l:?}"),
            };
            Entry { file: cols[0].to_owned(), promtool: verdict(cols[1]), ember: verdict(cols[2]) }
        })
        .collect()
}

#[test]
fn manifest_covers_every_file() {
    let listed: Vec<String> = manifest().into_iter().map(|e| e.file).collect();
    for entry in std::fs::read_dir(testdata()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".yml") {
            assert!(listed.contains(&name), "{name} is missing from MANIFEST.tsv");
        }
    }
    assert!(listed.len() >= 40);
}

#[test]
fn ember_agrees_with_recorded_verdicts() {
    let mut failures = Vec::new();
    for e in manifest() {
        let res = ember_config::load_file(testdata().join(&e.file));
        if res.is_ok() != e.ember {
            failures.push(format!("{}: expected valid={}, got {:?}", e.file, e.ember, res.as_ref().err()));
        }
        if let Err(err) = res {
            // Every rejection names the file, and (for all but whole-list
            // rules) a line.
            let shown = err.to_string();
            assert!(shown.contains(&e.file), "{shown}");
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Re-checks the recorded promtool verdicts when promtool is installed, so
/// that the manifest cannot drift from the oracle.
#[test]
fn promtool_agrees_with_manifest_when_installed() {
    let ok = Command::new("promtool").arg("--version").output().map(|o| o.status.success()).unwrap_or(false);
    if !ok {
        eprintln!("promtool not installed; skipping oracle re-check");
        return;
    }
    for e in manifest() {
        let out = Command::new("promtool")
            .args(["check", "config", "--syntax-only"])
            .arg(testdata().join(&e.file))
            .output()
            .unwrap();
        assert_eq!(out.status.success(), e.promtool, "{}: {}", e.file, String::from_utf8_lossy(&out.stdout));
    }
}
