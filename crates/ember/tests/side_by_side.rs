//! Side-by-side comparison of ember's HTTP API with Debian's Prometheus 2.42:
//! both get the same remote-written data set and the same requests
//! (`testdata/api/requests.txt`); every answer must be identical except the
//! requests named in `testdata/api/expected_differences.txt`, and each of
//! those must really differ.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

mod compat_support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use compat_support::{encode_form, generate, get, http, recent_t0_ms, Server};
use serde_json::Value;

const PROMETHEUS: &str = "/usr/bin/prometheus";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/api").join(name)
}

struct Request {
    id: String,
    method: String,
    path: String,
    params: Vec<(String, String)>,
}

fn parse_requests(text: &str, vars: &BTreeMap<&str, String>) -> Vec<Request> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let mut parts = line.splitn(4, ' ');
        let id = parts.next().unwrap().to_owned();
        let method = parts.next().unwrap_or_else(|| panic!("{line}: no method")).to_owned();
        let path = parts.next().unwrap_or_else(|| panic!("{line}: no path")).to_owned();
        let params = parts
            .next()
            .map(|rest| {
                rest.split(" && ")
                    .map(|p| {
                        let (n, v) =
                            p.split_once('=').unwrap_or_else(|| panic!("{line}: parameter without '='"));
                        let mut v = v.to_owned();
                        for (k, val) in vars {
                            v = v.replace(&format!("{{{k}}}"), val);
                        }
                        assert!(
                            !v.contains("{t") && !v.contains("{start") && !v.contains("{end"),
                            "{line}: unknown placeholder"
                        );
                        (n.to_owned(), v)
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert!(!out.iter().any(|r: &Request| r.id == id), "duplicate request id {id}");
        out.push(Request { id, method, path, params });
    }
    out
}

fn parse_expected(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (id, why) =
                l.split_once(char::is_whitespace).unwrap_or_else(|| panic!("{l}: no reason given"));
            (id.to_owned(), why.trim().to_owned())
        })
        .collect()
}

fn send(s: &Server, r: &Request) -> compat_support::Response {
    let form = encode_form(&r.params);
    if r.method == "POST" {
        http(
            s.addr,
            "POST",
            &r.path,
            &[("Content-Type", "application/x-www-form-urlencoded")],
            form.as_bytes(),
        )
        .unwrap()
    } else if form.is_empty() {
        get(s.addr, &r.path)
    } else {
        get(s.addr, &format!("{}?{form}", r.path))
    }
}

/// Floats as the API prints them ("NaN", "+Inf", "1.5") are equal when both
/// are NaN or they agree to about 1e-9 relative (summation order differs).
fn floats_equal(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => {
            (x.is_nan() && y.is_nan())
                || (x.is_finite()
                    && y.is_finite()
                    && (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1e-300))
        }
        _ => false,
    }
}

/// Compares two JSON values; sample values (`[ts, "v"]`) compare as floats.
fn diff_json(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Array(x), Value::Array(y))
            if x.len() == 2 && y.len() == 2 && x[0].is_number() && x[1].is_string() =>
        {
            let same_ts = x[0].as_f64() == y[0].as_f64();
            if !same_ts || !floats_equal(x[1].as_str().unwrap_or(""), y[1].as_str().unwrap_or("")) {
                out.push(format!("{path}: prometheus {a} ember {b}"));
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                out.push(format!("{path}: prometheus has {} elements, ember {}", x.len(), y.len()));
            }
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff_json(p, q, &format!("{path}[{i}]"), out);
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => diff_json(p, q, &format!("{path}.{k}"), out),
                    (Some(p), None) => out.push(format!("{path}.{k}: only prometheus has it ({p})")),
                    (None, Some(q)) => out.push(format!("{path}.{k}: only ember has it ({q})")),
                    (None, None) => {}
                }
            }
        }
        (Value::String(x), Value::String(y)) if floats_equal(x, y) => {}
        _ if a == b => {}
        _ => out.push(format!("{path}: prometheus {a} ember {b}")),
    }
}

/// Puts an answer in comparable form: PromQL annotations (`warnings`,
/// `infos`) are 3.x features 2.42 never sends, so they are left out; an
/// instant query's result order is unspecified unless the query sorts, so it
/// is sorted by labels (range query results are compared in order: both
/// servers sort them).
fn normalize(mut v: Value, r: &Request) -> Value {
    if let Value::Object(m) = &mut v {
        m.remove("warnings");
        m.remove("infos");
    }
    let query = r.params.iter().find(|(n, _)| n == "query").map(|(_, q)| q.as_str()).unwrap_or("");
    let sorts = query.starts_with("sort");
    let kind = &v["data"]["resultType"];
    if r.path == "/api/v1/query" && (kind == "vector" || kind == "matrix") && !sorts {
        if let Some(arr) = v["data"]["result"].as_array_mut() {
            arr.sort_by_key(|s| s["metric"].to_string());
        }
    } else if sorts {
        // sort() leaves the order of equal values to the input order, which
        // the API does not specify: order ties by labels.
        if let Some(arr) = v["data"]["result"].as_array_mut() {
            for run in arr.chunk_by_mut(|a, b| a["value"][1] == b["value"][1]) {
                run.sort_by_key(|s| s["metric"].to_string());
            }
        }
    }
    v
}

fn compare(r: &Request, p: &compat_support::Response, e: &compat_support::Response) -> Vec<String> {
    let mut out = Vec::new();
    if p.status != e.status {
        out.push(format!("HTTP status: prometheus {} ember {}", p.status, e.status));
    }
    match (serde_json::from_str::<Value>(&p.body), serde_json::from_str::<Value>(&e.body)) {
        (Ok(pj), Ok(ej)) => diff_json(&normalize(pj, r), &normalize(ej, r), "", &mut out),
        _ => {
            if p.body != e.body {
                out.push(format!("body: prometheus {:?} ember {:?}", p.body, e.body));
            }
        }
    }
    out
}

#[test]
fn api_answers_match_prometheus_2_42() {
    if !Path::new(PROMETHEUS).exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{PROMETHEUS} is missing (CI=true: the side-by-side test must run)"
        );
        eprintln!("skipping: {PROMETHEUS} is not installed");
        return;
    }
    let t0_ms = recent_t0_ms();
    let data = generate(t0_ms);
    assert!(data.series_count() >= 200, "{} series", data.series_count());
    let prom = Server::prometheus(Path::new(PROMETHEUS));
    let ember = Server::ember(&[]);
    for s in [&prom, &ember] {
        let r = s.remote_write(&data.request);
        assert_eq!(r.status, 204, "remote write to {}: {}", s.addr, r.body);
    }

    let t0 = t0_ms / 1000;
    let secs = |off: i64| (t0 + off).to_string();
    let rfc = |off: i64| format_rfc3339(t0 + off);
    let vars: BTreeMap<&str, String> = [
        ("t0", secs(0)),
        ("t", secs(1755)),
        ("t_rfc", rfc(1755)),
        ("start", secs(615)),
        ("end", secs(1755)),
        ("start_rfc", rfc(615)),
        ("end_rfc", rfc(1755)),
        ("early", secs(300)),
        ("stale", secs(1215)),
    ]
    .into_iter()
    .collect();
    let requests = parse_requests(&std::fs::read_to_string(testdata("requests.txt")).unwrap(), &vars);
    let expected = parse_expected(&std::fs::read_to_string(testdata("expected_differences.txt")).unwrap());
    for id in expected.keys() {
        assert!(requests.iter().any(|r| &r.id == id), "expected_differences.txt names unknown request {id}");
    }
    assert!(requests.len() >= 100, "only {} requests", requests.len());

    let mut unexpected = Vec::new();
    let mut differing = BTreeSet::new();
    for r in &requests {
        let p = send(&prom, r);
        let e = send(&ember, r);
        let mut diffs = compare(r, &p, &e);
        if diffs.len() > 8 {
            let more = diffs.len() - 8;
            diffs.truncate(8);
            diffs.push(format!("... and {more} more"));
        }
        if !diffs.is_empty() {
            differing.insert(r.id.clone());
            if !expected.contains_key(&r.id) {
                unexpected.push(format!(
                    "{} {} {} {:?}\n    {}",
                    r.id,
                    r.method,
                    r.path,
                    r.params,
                    diffs.join("\n    ")
                ));
            } else if std::env::var("SIDE_BY_SIDE_VERBOSE").is_ok() {
                eprintln!(
                    "expected difference {} ({}):\n    {}",
                    r.id,
                    expected[&r.id],
                    diffs.join("\n    ")
                );
            }
        }
    }
    let identical_but_listed: Vec<&String> = expected.keys().filter(|id| !differing.contains(*id)).collect();
    eprintln!(
        "compared {} requests: {} identical, {} differ as expected",
        requests.len(),
        requests.len() - differing.len(),
        differing.len() - unexpected.len()
    );
    assert!(
        unexpected.is_empty() && identical_but_listed.is_empty(),
        "{} unexpected differences:\n{}\nlisted in expected_differences.txt but identical: {identical_but_listed:?}",
        unexpected.len(),
        unexpected.join("\n")
    );
}

/// RFC 3339 in UTC for whole seconds (civil-from-days, proleptic Gregorian).
fn format_rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem / 60 % 60, rem % 60)
}

#[test]
fn rfc3339_formatting() {
    assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
    assert_eq!(format_rfc3339(951_782_400 + 3661), "2000-02-29T01:01:01Z");
    assert_eq!(format_rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
}

#[test]
fn comparison_tolerates_float_noise_only() {
    assert!(floats_equal("NaN", "NaN"));
    assert!(floats_equal("+Inf", "+Inf"));
    assert!(!floats_equal("+Inf", "-Inf"));
    assert!(floats_equal("0.30000000000000004", "0.3"));
    assert!(!floats_equal("1", "1.000001"));
    assert!(!floats_equal("0", "1e-300"));
    let mut out = Vec::new();
    let p = serde_json::json!({"data": {"result": [{"metric": {"a": "b"}, "value": [1, "2"]}]}});
    let e = serde_json::json!({"data": {"result": [{"metric": {"a": "c"}, "value": [1, "2"]}]}});
    diff_json(&p, &p, "", &mut out);
    assert!(out.is_empty());
    diff_json(&p, &e, "", &mut out);
    assert_eq!(out, vec![r#".data.result[0].metric.a: prometheus "b" ember "c""#]);
}
