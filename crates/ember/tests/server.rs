//! Starts the real `ember` binary and talks to it over HTTP.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod compat_support;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use compat_support::free_port;

/// One exchange: (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &[u8]) -> std::io::Result<(u16, String)> {
    compat_support::http(addr, method, path, &[], body).map(|r| (r.status, r.body))
}

struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let cfg = dir.path().join("prometheus.yml");
        std::fs::write(&cfg, format!("scrape_configs:\n  - job_name: ember\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ember"))
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let s = Server { child, addr, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(http(addr, "GET", "/-/ready", b""), Ok((200, _))) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("ember did not become ready");
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        // std has no signal API; kill(1) sends SIGTERM.
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            assert!(Instant::now() < deadline, "ember did not exit after SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serves_health_and_status_then_exits_cleanly_on_sigterm() {
    let s = Server::start(&[]);
    let (st, body) = http(s.addr, "GET", "/-/healthy", b"").unwrap();
    assert_eq!((st, body.as_str()), (200, "Prometheus Server is Healthy.\n"));
    let (st, body) = http(s.addr, "GET", "/api/v1/status/buildinfo", b"").unwrap();
    assert_eq!(st, 200);
    assert!(body.contains("\"version\""), "{body}");
    let (st, body) = http(s.addr, "GET", "/api/v1/status/flags", b"").unwrap();
    assert_eq!(st, 200);
    assert!(body.contains("\"query.max-samples\":\"50000000\""), "{body}");
    let (st, _) = http(s.addr, "GET", "/metrics", b"").unwrap();
    assert_eq!(st, 200);
    let status = s.terminate();
    assert!(status.success(), "{status:?}");
}

#[test]
fn quit_needs_the_lifecycle_flag() {
    let s = Server::start(&[]);
    let (st, _) = http(s.addr, "POST", "/-/quit", b"").unwrap();
    assert_eq!(st, 403);
    drop(s);
    let s = Server::start(&["--web.enable-lifecycle"]);
    let (st, _) = http(s.addr, "POST", "/-/quit", b"").unwrap();
    assert_eq!(st, 200);
    let mut s = s;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "ember did not exit after /-/quit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn bad_flags_fail_fast() {
    let out = Command::new(env!("CARGO_BIN_EXE_ember")).arg("--query.timeout=soon").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("query.timeout"));
}
