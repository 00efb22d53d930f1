//! Shared helpers for the binary's integration tests: start servers,
//! speak minimal HTTP, generate and remote-write the test data set.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ember_remote::proto::{Label, Sample, TimeSeries, WriteRequest};

/// The staleness marker Prometheus writes when a series disappears.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One HTTP answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// A minimal HTTP/1.0 exchange (both servers close the connection after
/// answering, so the body is everything after the headers).
pub fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head =
        format!("{method} {target} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    // A server may answer (e.g. 413) before reading a huge body; a write
    // error after that is not the answer we are after.
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text.as_str(), ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.get(9..12)).and_then(|c| c.parse().ok()).unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Ok(Response { status, headers, body: body.to_owned() })
}

pub fn get(addr: SocketAddr, target: &str) -> Response {
    http(addr, "GET", target, &[], b"").unwrap()
}

pub fn post_form(addr: SocketAddr, path: &str, form: &str) -> Response {
    http(addr, "POST", path, &[("Content-Type", "application/x-www-form-urlencoded")], form.as_bytes())
        .unwrap()
}

/// `application/x-www-form-urlencoded` encoding of pairs.
pub fn encode_form(pairs: &[(String, String)]) -> String {
    let mut out = String::new();
    for (i, (n, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(&pct(n));
        out.push('=');
        out.push_str(&pct(v));
    }
    out
}

fn pct(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A server process on a free port, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// ember with the remote write receiver and an empty config.
    pub fn ember(extra: &[&str]) -> Server {
        Server::start(Path::new(env!("CARGO_BIN_EXE_ember")), extra)
    }

    /// Prometheus (`/usr/bin/prometheus`) with the same flags.
    pub fn prometheus(bin: &Path) -> Server {
        Server::start(bin, &[])
    }

    fn start(bin: &Path, extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, "").unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .args(extra)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Server { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(http(addr, "GET", "/-/ready", &[], b""), Ok(r) if r.status == 200) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{} did not become ready", bin.display());
    }

    /// Remote-writes `req` (remote write 1.0 headers).
    pub fn remote_write(&self, req: &WriteRequest) -> Response {
        self.remote_write_raw(&ember_remote::encode_write_request(req))
    }

    pub fn remote_write_raw(&self, body: &[u8]) -> Response {
        http(
            self.addr,
            "POST",
            "/api/v1/write",
            &[
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "snappy"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            body,
        )
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sample spacing of the data set.
pub const STEP_MS: i64 = 15_000;
/// Samples per series (30 minutes).
pub const SAMPLES: i64 = 120;

/// A deterministic generator (xorshift) so both servers and reruns see the
/// same values.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The generated data set, relative to `t0` (ms, a multiple of 60 s).
///
/// Sample `i` of series `k` sits at `t0 + i*15s + (1 + k % 13) s`, so no
/// sample falls on a multiple of 15 s: queries evaluated at such times never
/// hit a window boundary, where Prometheus 3.x (left-open windows) and 2.42
/// (closed windows) would disagree.
pub struct DataSet {
    pub t0_ms: i64,
    pub request: WriteRequest,
}

impl DataSet {
    pub fn series_count(&self) -> usize {
        self.request.timeseries.len()
    }
}

fn series(labels: &[(&str, &str)]) -> TimeSeries {
    let mut labels: Vec<Label> =
        labels.iter().map(|(n, v)| Label { name: (*n).to_owned(), value: (*v).to_owned() }).collect();
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    TimeSeries { labels, ..Default::default() }
}

pub fn generate(t0_ms: i64) -> DataSet {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out: Vec<TimeSeries> = Vec::new();
    let jobs = ["api", "web", "batch"];
    let instances = ["10.0.0.1:9100", "10.0.0.2:9100", "10.0.0.3:9100"];

    // Counters, some with a reset half-way through.
    for job in jobs {
        for inst in instances {
            for method in ["GET", "POST"] {
                for code in ["200", "500"] {
                    out.push(series(&[
                        ("__name__", "http_requests_total"),
                        ("job", job),
                        ("instance", inst),
                        ("method", method),
                        ("code", code),
                    ]));
                }
            }
        }
    }
    for inst in ["node-a:9100", "node-b:9100", "node-c:9100", "node-d:9100"] {
        for cpu in ["0", "1"] {
            for mode in ["idle", "user", "system", "iowait"] {
                out.push(series(&[
                    ("__name__", "node_cpu_seconds_total"),
                    ("job", "node"),
                    ("instance", inst),
                    ("cpu", cpu),
                    ("mode", mode),
                ]));
            }
        }
    }
    let counters = out.len();
    // Gauges, with label values full of special characters.
    let locations = [
        "kitchen",
        "living room",
        "quote\"d",
        "back\\slash",
        "new\nline",
        "ünïcödé ☃",
        "comma,sep",
        "brace{}",
        "eq=uals",
        "tab\there",
        "a.b-c_d",
        "UPPER",
    ];
    for (i, loc) in locations.iter().enumerate() {
        let inst = instances[i % 3];
        out.push(series(&[
            ("__name__", "temperature_celsius"),
            ("job", "sensors"),
            ("instance", inst),
            ("location", loc),
        ]));
    }
    for job in jobs {
        for inst in instances {
            out.push(series(&[("__name__", "up"), ("job", job), ("instance", inst)]));
            for queue in ["high", "low", "default"] {
                out.push(series(&[
                    ("__name__", "queue_length"),
                    ("job", job),
                    ("instance", inst),
                    ("queue", queue),
                ]));
            }
            out.push(series(&[("__name__", "memory_bytes"), ("job", job), ("instance", inst)]));
        }
    }
    let gauges_end = out.len();
    // Classic histograms.
    let les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
    let mut hist_groups = Vec::new();
    for job in jobs {
        for inst in &instances[..2] {
            for handler in ["/", "/api/v1/query"] {
                let start = out.len();
                for le in les {
                    out.push(series(&[
                        ("__name__", "request_duration_seconds_bucket"),
                        ("job", job),
                        ("instance", inst),
                        ("handler", handler),
                        ("le", le),
                    ]));
                }
                out.push(series(&[
                    ("__name__", "request_duration_seconds_sum"),
                    ("job", job),
                    ("instance", inst),
                    ("handler", handler),
                ]));
                out.push(series(&[
                    ("__name__", "request_duration_seconds_count"),
                    ("job", job),
                    ("instance", inst),
                    ("handler", handler),
                ]));
                hist_groups.push(start);
            }
        }
    }
    let special_start = out.len();
    for kind in ["nan", "inf", "neg_inf", "mixed"] {
        out.push(series(&[("__name__", "special_values"), ("job", "special"), ("kind", kind)]));
    }
    let stale_idx = out.len();
    out.push(series(&[("__name__", "stale_metric"), ("job", "special"), ("instance", "gone:1")]));
    out.push(series(&[("__name__", "stale_metric"), ("job", "special"), ("instance", "alive:1")]));

    // Magnitudes where Prometheus switches to exponent notation (below 1e-6,
    // from 1e21 on), and neighbours that stay plain.
    let extremes = [1e-7, 9.99e-7, 1e-6, 1e20, 1e21, 1.2345678901234569e23, -2.5e-9, 5e-324, f64::MAX];
    let extreme_start = out.len();
    for j in 0..extremes.len() {
        let i = j.to_string();
        out.push(series(&[("__name__", "extreme_values"), ("job", "special"), ("i", &i)]));
    }

    let ts = |k: usize, i: i64| t0_ms + i * STEP_MS + (1 + (k % 13) as i64) * 1000;

    for (k, s) in out.iter_mut().enumerate() {
        if k >= counters {
            continue;
        }
        let rate = 0.5 + rng.unit() * 20.0;
        let reset_at = if k % 3 == 0 { Some(40 + (k as i64 % 50)) } else { None };
        let mut v = (rng.unit() * 1000.0).floor();
        for i in 0..SAMPLES {
            if Some(i) == reset_at {
                v = (rng.unit() * 5.0).floor();
            } else {
                v += (rate * 15.0 * (0.5 + rng.unit())).floor();
            }
            s.samples.push(Sample { value: v, timestamp: ts(k, i) });
        }
    }
    for (k, s) in out.iter_mut().enumerate().take(gauges_end).skip(counters) {
        let base = rng.unit() * 100.0 - 20.0;
        let name = s.labels.iter().find(|l| l.name == "__name__").unwrap().value.clone();
        for i in 0..SAMPLES {
            let v = match name.as_str() {
                "up" => {
                    if (k + i as usize).is_multiple_of(37) {
                        0.0
                    } else {
                        1.0
                    }
                }
                "memory_bytes" => (1.0e9 + base * 1.0e7 + rng.unit() * 1.0e6).floor(),
                "queue_length" => (rng.unit() * 50.0).floor(),
                _ => ((base + (i as f64 / 10.0).sin() * 5.0 + rng.unit()) * 100.0).round() / 100.0,
            };
            s.samples.push(Sample { value: v, timestamp: ts(k, i) });
        }
    }
    for start in hist_groups {
        // Cumulative buckets: each observation lands in one bucket.
        let mut counts = [0f64; 8];
        let mut sum = 0.0;
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); 10];
        for _ in 0..SAMPLES {
            let n = 5 + (rng.next() % 20);
            for _ in 0..n {
                let obs = rng.unit() * rng.unit() * 6.0;
                sum += obs;
                let b = les.iter().position(|le| le.parse::<f64>().unwrap() >= obs).unwrap();
                for c in counts.iter_mut().skip(b) {
                    *c += 1.0;
                }
            }
            for (j, c) in counts.iter().enumerate() {
                samples[j].push(*c);
            }
            samples[8].push((sum * 1000.0).round() / 1000.0);
            samples[9].push(counts[7]);
        }
        for (j, vals) in samples.into_iter().enumerate() {
            let k = start + j;
            out[k].samples = vals
                .into_iter()
                .enumerate()
                .map(|(i, v)| Sample { value: v, timestamp: ts(k, i as i64) })
                .collect();
        }
    }
    for (j, k) in (special_start..special_start + 4).enumerate() {
        out[k].samples = (0..SAMPLES)
            .map(|i| {
                let v = match j {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => f64::NEG_INFINITY,
                    _ => [1.5, f64::NAN, f64::INFINITY, -2.0, f64::NEG_INFINITY, 0.0][i as usize % 6],
                };
                Sample { value: v, timestamp: ts(k, i) }
            })
            .collect();
    }
    for (j, v) in extremes.into_iter().enumerate() {
        let k = extreme_start + j;
        out[k].samples = (0..SAMPLES).map(|i| Sample { value: v, timestamp: ts(k, i) }).collect();
    }
    // "gone" ends in a staleness marker after 20 minutes; "alive" goes on.
    for (j, k) in [stale_idx, stale_idx + 1].into_iter().enumerate() {
        let n = if j == 0 { 80 } else { SAMPLES };
        out[k].samples = (0..n).map(|i| Sample { value: i as f64, timestamp: ts(k, i) }).collect();
        if j == 0 {
            out[k].samples.push(Sample { value: f64::from_bits(STALE_NAN_BITS), timestamp: ts(k, n) });
        }
    }
    DataSet { t0_ms, request: WriteRequest { timeseries: out, ..Default::default() } }
}

/// `t0` for a data set ending about now: a multiple of 60 s, 31 min ago.
pub fn recent_t0_ms() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
    (now / 60_000) * 60_000 - 31 * 60_000
}
