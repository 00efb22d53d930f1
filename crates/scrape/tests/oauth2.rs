#![allow(clippy::unwrap_used)]
//! `oauth2` client credentials: a local token endpoint and a target that
//! only answers requests carrying the endpoint's current token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ember_model::memory::MemStorage;
use ember_scrape::discovery::static_groups;
use ember_scrape::{build_targets, ScrapeLoop};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One HTTP request as received: head (lower-cased header names kept as
/// sent) and body.
#[derive(Debug, Clone)]
struct Req {
    head: String,
    body: String,
}

impl Req {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

type Handler = Arc<dyn Fn(&Req) -> (u16, String) + Send + Sync>;

/// A plain HTTP/1.1 server calling `handler` for each request.
async fn server(handler: Handler) -> (u16, Arc<Mutex<Vec<Req>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = l.accept().await {
            let (h, s) = (handler.clone(), s.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut req = Req { head, body: String::new() };
                let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                while buf.len() < head_end + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                req.body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
                let (status, body) = h(&req);
                s.lock().unwrap().push(req);
                let ct = if body.starts_with('{') { "application/json" } else { "text/plain; version=0.0.4" };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

/// A target that wants `Authorization: Bearer <current token>`.
async fn target(current: Arc<Mutex<String>>) -> (u16, Arc<Mutex<Vec<Req>>>) {
    server(Arc::new(move |r: &Req| {
        let want = format!("Bearer {}", current.lock().unwrap());
        if r.header("authorization").as_deref() == Some(want.as_str()) {
            (200, "m 1\n".to_owned())
        } else {
            (401, "no".to_owned())
        }
    }))
    .await
}

fn scrape_loop(target_port: u16, oauth2: &str) -> ScrapeLoop {
    let yaml = format!(
        "scrape_configs:\n  - job_name: o\n    scrape_timeout: 5s\n    oauth2:\n{oauth2}    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    );
    let cfg = ember_config::parse_str(&yaml).unwrap();
    let sc = Arc::new(cfg.scrape_configs[0].clone());
    let t = build_targets(&sc, &static_groups(&sc.static_configs)).active.remove(0);
    ScrapeLoop::new(sc, t, Arc::new(MemStorage::new()))
}

fn last_error(sl: &ScrapeLoop) -> String {
    sl.health().lock().unwrap().last_error.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_fetched_cached_sent_and_refreshed() {
    let current = Arc::new(Mutex::new(String::new()));
    let issued = Arc::new(Mutex::new(0u32));
    let (cur, n) = (current.clone(), issued.clone());
    // Tokens live 11 s: within Go's 10 s expiry delta after one second.
    let (token_port, token_reqs) = server(Arc::new(move |_r: &Req| {
        let mut n = n.lock().unwrap();
        *n += 1;
        let tok = format!("tok{n}");
        *cur.lock().unwrap() = tok.clone();
        (200, format!(r#"{{"access_token":"{tok}","token_type":"bearer","expires_in":11}}"#))
    }))
    .await;
    let (target_port, target_reqs) = target(current.clone()).await;
    let mut sl = scrape_loop(
        target_port,
        &format!(
            "      client_id: my id\n      client_secret: s3cr/et\n      scopes: [read, write]\n      token_url: http://127.0.0.1:{token_port}/token\n      endpoint_params: {{audience: ember}}\n"
        ),
    );
    assert!(sl.scrape_once().await.up, "{}", last_error(&sl));
    assert!(sl.scrape_once().await.up, "{}", last_error(&sl));
    assert_eq!(token_reqs.lock().unwrap().len(), 1, "the token is reused while valid");

    let tr = token_reqs.lock().unwrap()[0].clone();
    assert!(tr.head.starts_with("POST /token "), "{}", tr.head);
    assert_eq!(tr.header("content-type").as_deref(), Some("application/x-www-form-urlencoded"));
    // Go's clientcredentials: id and secret query-escaped, in basic auth.
    assert_eq!(tr.header("authorization").as_deref(), Some("Basic bXkraWQ6czNjciUyRmV0"));
    let mut form: Vec<(String, String)> =
        form_urlencoded::parse(tr.body.as_bytes()).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    form.sort();
    assert_eq!(
        form,
        vec![
            ("audience".to_owned(), "ember".to_owned()),
            ("grant_type".to_owned(), "client_credentials".to_owned()),
            ("scope".to_owned(), "read write".to_owned()),
        ]
    );
    assert_eq!(target_reqs.lock().unwrap()[0].header("authorization").as_deref(), Some("Bearer tok1"));

    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(sl.scrape_once().await.up, "{}", last_error(&sl));
    assert_eq!(token_reqs.lock().unwrap().len(), 2, "an expiring token is renewed");
    assert_eq!(
        target_reqs.lock().unwrap().last().unwrap().header("authorization").as_deref(),
        Some("Bearer tok2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_fall_back_to_form_parameters() {
    let current = Arc::new(Mutex::new("fixed".to_owned()));
    // This endpoint only accepts the credentials in the body.
    let (token_port, token_reqs) = server(Arc::new(|r: &Req| {
        if r.body.contains("client_id=cid") && r.body.contains("client_secret=sec") {
            (200, r#"{"access_token":"fixed","token_type":"Bearer"}"#.to_owned())
        } else {
            (401, r#"{"error":"invalid_client"}"#.to_owned())
        }
    }))
    .await;
    let (target_port, _) = target(current).await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "sec\n").unwrap();
    let mut sl = scrape_loop(
        target_port,
        &format!(
            "      client_id: cid\n      client_secret_file: {}\n      token_url: http://127.0.0.1:{token_port}/t\n",
            secret.display()
        ),
    );
    assert!(sl.scrape_once().await.up, "{}", last_error(&sl));
    let reqs = token_reqs.lock().unwrap().clone();
    assert_eq!(reqs.len(), 2, "header first, then parameters");
    assert!(reqs[0].header("authorization").is_some());
    assert!(reqs[1].header("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_errors_take_the_target_down() {
    let (token_port, _) = server(Arc::new(|_r: &Req| {
        (401, r#"{"error":"invalid_client","error_description":"bad secret"}"#.to_owned())
    }))
    .await;
    let (target_port, target_reqs) = target(Arc::new(Mutex::new("x".to_owned()))).await;
    let mut sl = scrape_loop(
        target_port,
        &format!(
            "      client_id: a\n      client_secret: b\n      token_url: http://127.0.0.1:{token_port}/t\n"
        ),
    );
    assert!(!sl.scrape_once().await.up);
    assert_eq!(
        last_error(&sl),
        format!("Get \"http://127.0.0.1:{target_port}/metrics\": oauth2: \"invalid_client\" \"bad secret\"")
    );
    assert!(target_reqs.lock().unwrap().is_empty(), "no token, no scrape request");

    // An endpoint that is not there.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let mut sl = scrape_loop(
        target_port,
        &format!("      client_id: a\n      client_secret: b\n      token_url: http://127.0.0.1:{free}/t\n"),
    );
    assert!(!sl.scrape_once().await.up);
    let e = last_error(&sl);
    assert!(e.contains(&format!("Post \"http://127.0.0.1:{free}/t\"")), "{e}");
}
