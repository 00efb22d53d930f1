//! Scaffolding shared by the pool and manager tests: a local exporter and
//! readers of the stored `up` series.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ember_model::memory::MemStorage;
use ember_model::{Matcher, Queryable, SelectHints};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An exporter answering every request with `body`; returns its port.
pub async fn exporter(body: &'static str) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

/// The values of every stored `up` series, keyed by its `key` label.
pub fn up_by(s: &MemStorage, key: &str) -> BTreeMap<String, Vec<f64>> {
    let q = s.querier(i64::MIN, i64::MAX).unwrap();
    let set = q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", "up")]).unwrap();
    set.map(|r| {
        let mut s = r.unwrap();
        let mut v = Vec::new();
        while s.samples.next() {
            v.push(s.samples.at().1);
        }
        (s.labels.get(key).unwrap().to_owned(), v)
    })
    .collect()
}

/// Polls `f` every 50 ms until it holds; panics naming `what` after `limit`.
pub async fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
