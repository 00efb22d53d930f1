//! Loads samples from a file of `name{label="v",...} value timestamp_s`
//! lines (OpenMetrics-like, `#` lines ignored), then evaluates each
//! `time_s<TAB>query` line of stdin as an instant query and prints
//! `time_s<TAB>query<TAB>result`, the result being the sorted
//! `labels=value` pairs (values with 10 significant digits) or the error.
//! Used to compare ember's engine with a Prometheus serving the same data.
#![allow(clippy::print_stdout)]

use std::io::BufRead;

use ember_model::{memory::MemStorage, Labels};
use ember_promql::engine::{Engine, Value};

fn parse_series(s: &str) -> Option<Labels> {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i + 1..s.len() - 1]),
        None => (s, ""),
    };
    let mut pairs = vec![("__name__".to_owned(), name.to_owned())];
    for kv in rest.split(',').filter(|x| !x.is_empty()) {
        let (k, v) = kv.split_once('=')?;
        pairs.push((k.to_owned(), v.trim_matches('"').to_owned()));
    }
    Some(Labels::from_pairs(&pairs))
}

fn fmt(v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return format!("{v}");
    }
    format!("{:.9e}", v)
}

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        println!("usage: promql_eval DATA_FILE < queries");
        return;
    };
    let storage = MemStorage::new();
    let data = std::fs::read_to_string(path).unwrap_or_default();
    for line in data.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.rsplitn(3, ' ');
        let (Some(t), Some(v), Some(series)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let (Some(labels), Ok(t), Ok(v)) = (parse_series(series), t.parse::<f64>(), v.parse::<f64>()) else {
            continue;
        };
        let _ = storage.add(&labels, (t * 1000.0) as i64, v);
    }
    let engine = Engine::default();
    for line in std::io::stdin().lock().lines().map_while(Result::ok) {
        let Some((t, q)) = line.split_once('\t') else { continue };
        let Ok(t) = t.parse::<f64>() else { continue };
        let res = match ember_promql::parse(q) {
            Err(e) => format!("error: {e}"),
            Ok(expr) => match engine.instant_query(&storage, &expr, (t * 1000.0) as i64) {
                Err(e) => format!("error: {e}"),
                Ok(Value::Scalar(_, v)) => format!("scalar {}", fmt(v)),
                Ok(Value::String(_, s)) => format!("string {s}"),
                Ok(Value::Vector(v)) => {
                    let mut items: Vec<String> =
                        v.iter().map(|s| format!("{}={}", s.metric, fmt(s.v))).collect();
                    items.sort();
                    format!("vector {}", items.join(";"))
                }
                Ok(Value::Matrix(m)) => {
                    let mut items: Vec<String> = m
                        .iter()
                        .map(|s| {
                            let pts: Vec<String> =
                                s.points.iter().map(|(t, v)| format!("{}@{}", fmt(*v), t)).collect();
                            format!("{}={}", s.metric, pts.join(","))
                        })
                        .collect();
                    items.sort();
                    format!("matrix {}", items.join(";"))
                }
            },
        };
        println!("{t}\t{q}\t{res}");
    }
}
