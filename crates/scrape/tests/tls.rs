#![allow(clippy::unwrap_used)]
//! `tls_config` of the scrape client against local HTTPS servers: a CA,
//! a server certificate for `ember.test` and a client certificate are
//! generated per test with rcgen.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ember_model::memory::MemStorage;
use ember_scrape::discovery::static_groups;
use ember_scrape::{build_targets, ScrapeLoop};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Pki {
    dir: tempfile::TempDir,
}

struct Issued {
    cert_pem: String,
    key_pem: String,
}

fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    (p.self_signed(&key).unwrap(), key)
}

fn issue(names: &[&str], usage: ExtendedKeyUsagePurpose, ca: &(rcgen::Certificate, KeyPair)) -> Issued {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.extended_key_usages = vec![usage];
    let cert = p.signed_by(&key, &ca.0, &ca.1).unwrap();
    Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
}

impl Pki {
    fn new() -> Pki {
        Pki { dir: tempfile::tempdir().unwrap() }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// Which TLS versions the server speaks and whether it demands a client
/// certificate signed by `client_ca`.
struct ServerOpts {
    versions: Vec<&'static rustls::SupportedProtocolVersion>,
    client_ca: Option<String>,
}

/// One connection as the server saw it: handshake succeeded, the SNI name
/// the client sent, the request head.
#[derive(Debug, Clone)]
struct Conn {
    ok: bool,
    sni: Option<String>,
    head: String,
}

/// An HTTPS exporter serving one page; records each connection.
async fn https_server(cert: &Issued, opts: ServerOpts) -> (u16, Arc<Mutex<Vec<Conn>>>) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.cert_pem.as_bytes()).collect::<Result<_, _>>().unwrap();
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).unwrap();
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&opts.versions)
        .unwrap();
    let b = match &opts.client_ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c.unwrap()).unwrap();
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap();
            b.with_client_cert_verifier(v)
        }
        None => b.with_no_client_auth(),
    };
    let cfg = b.with_single_cert(certs, key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handshakes = Arc::new(Mutex::new(Vec::new()));
    let hs = handshakes.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let hs = hs.clone();
            tokio::spawn(async move {
                let mut tls = match acceptor.accept(sock).await {
                    Ok(t) => t,
                    Err(_) => {
                        hs.lock().unwrap().push(Conn { ok: false, sni: None, head: String::new() });
                        return;
                    }
                };
                let sni = tls.get_ref().1.server_name().map(str::to_owned);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 1024];
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&buf).into_owned();
                hs.lock().unwrap().push(Conn { ok: true, sni, head });
                let body = "# TYPE secure gauge\nsecure 1\n";
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, handshakes)
}

fn both() -> Vec<&'static rustls::SupportedProtocolVersion> {
    vec![&rustls::version::TLS13, &rustls::version::TLS12]
}

/// Scrapes `https://<host>:<port>/metrics` once with `tls` (YAML lines of
/// the tls_config block); returns (up, last error).
async fn scrape(host: &str, port: u16, tls: &str) -> (bool, String) {
    let yaml = format!(
        "scrape_configs:\n  - job_name: tls\n    scheme: https\n    scrape_timeout: 5s\n    tls_config:\n{tls}    static_configs:\n      - targets: ['{host}:{port}']\n"
    );
    let cfg = ember_config::parse_str(&yaml).unwrap();
    let sc = Arc::new(cfg.scrape_configs[0].clone());
    let target = build_targets(&sc, &static_groups(&sc.static_configs)).active.remove(0);
    let storage = MemStorage::new();
    let mut sl = ScrapeLoop::new(sc, target, Arc::new(storage.clone()));
    let report = sl.scrape_once().await;
    let err = sl.health().lock().unwrap().last_error.clone();
    assert_eq!(report.up, err.is_empty(), "up agrees with the error: {err}");
    if report.up {
        assert_eq!(report.stats.scraped, 1, "the page was read");
    }
    (report.up, err)
}

fn line(k: &str, v: &Path) -> String {
    format!("      {k}: '{}'\n", v.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_verification_and_server_name() {
    let pki = Pki::new();
    let root = ca("ember test CA");
    let other = ca("some other CA");
    let srv = issue(&["ember.test"], ExtendedKeyUsagePurpose::ServerAuth, &root);
    let ca_file = pki.write("ca.pem", &root.0.pem());
    let other_file = pki.write("other.pem", &other.0.pem());
    let (port, conns) = https_server(&srv, ServerOpts { versions: both(), client_ca: None }).await;

    // The certificate is for ember.test, the URL says 127.0.0.1: only
    // server_name makes it verify.
    let (up, err) = scrape("127.0.0.1", port, &line("ca_file", &ca_file)).await;
    assert!(!up);
    assert!(err.starts_with(&format!("Get \"https://127.0.0.1:{port}/metrics\": ")), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    let (up, err) =
        scrape("127.0.0.1", port, &format!("{}      server_name: ember.test\n", line("ca_file", &ca_file)))
            .await;
    assert!(up, "{err}");
    // server_name is the SNI name too; the Host header stays the target's.
    let c = conns.lock().unwrap().last().cloned().unwrap();
    assert_eq!(c.sni.as_deref(), Some("ember.test"));
    assert!(c.head.to_lowercase().contains(&format!("\r\nhost: 127.0.0.1:{port}\r\n")), "{}", c.head);
    assert!(c.head.starts_with("GET /metrics HTTP/1.1\r\n"), "{}", c.head);
    // A server_name the certificate does not name fails.
    let (up, err) =
        scrape("127.0.0.1", port, &format!("{}      server_name: other.test\n", line("ca_file", &ca_file)))
            .await;
    assert!(!up);
    assert!(err.contains("NotValidForName") || err.contains("not valid for name"), "{err}");

    // The wrong CA: the certificate's issuer is unknown.
    let (up, err) = scrape(
        "127.0.0.1",
        port,
        &format!("{}      server_name: ember.test\n", line("ca_file", &other_file)),
    )
    .await;
    assert!(!up);
    assert!(err.contains("UnknownIssuer") || err.contains("unknown issuer"), "{err}");

    // insecure_skip_verify accepts it all.
    let (up, err) = scrape("127.0.0.1", port, "      insecure_skip_verify: true\n").await;
    assert!(up, "{err}");

    // A missing CA file: the target is down with Prometheus's message.
    let missing = pki.dir.path().join("nope.pem");
    let (up, err) = scrape("127.0.0.1", port, &line("ca_file", &missing)).await;
    assert!(!up);
    assert_eq!(
        err,
        format!(
            "unable to load specified CA cert {0}: open {0}: no such file or directory",
            missing.display()
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificates() {
    let pki = Pki::new();
    let root = ca("ember test CA");
    let clients = ca("client CA");
    let srv = issue(&["ember.test"], ExtendedKeyUsagePurpose::ServerAuth, &root);
    let client = issue(&["prometheus"], ExtendedKeyUsagePurpose::ClientAuth, &clients);
    let ca_file = pki.write("ca.pem", &root.0.pem());
    let cert_file = pki.write("client.pem", &client.cert_pem);
    let key_file = pki.write("client.key", &client.key_pem);
    let (port, handshakes) =
        https_server(&srv, ServerOpts { versions: both(), client_ca: Some(clients.0.pem()) }).await;
    let base = format!("{}      server_name: ember.test\n", line("ca_file", &ca_file));

    let (up, err) = scrape(
        "127.0.0.1",
        port,
        &format!("{base}{}{}", line("cert_file", &cert_file), line("key_file", &key_file)),
    )
    .await;
    assert!(up, "{err}");
    assert!(handshakes.lock().unwrap().last().unwrap().ok);

    let (up, err) = scrape("127.0.0.1", port, &base).await;
    assert!(!up, "no client certificate: refused");
    assert!(!err.is_empty());
    assert!(!handshakes.lock().unwrap().last().unwrap().ok, "the server refused the handshake");

    // A key that is not a key.
    let junk = pki.write("junk.key", "nothing here");
    let (up, err) = scrape(
        "127.0.0.1",
        port,
        &format!("{base}{}{}", line("cert_file", &cert_file), line("key_file", &junk)),
    )
    .await;
    assert!(!up);
    assert!(
        err.starts_with(&format!(
            "unable to use specified client cert ({}) & key ({}): ",
            cert_file.display(),
            junk.display()
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_and_max_version() {
    let pki = Pki::new();
    let root = ca("ember test CA");
    let srv = issue(&["ember.test"], ExtendedKeyUsagePurpose::ServerAuth, &root);
    let ca_file = pki.write("ca.pem", &root.0.pem());
    let base = format!("{}      server_name: ember.test\n", line("ca_file", &ca_file));
    let (tls12, _) =
        https_server(&srv, ServerOpts { versions: vec![&rustls::version::TLS12], client_ca: None }).await;
    let (tls13, _) =
        https_server(&srv, ServerOpts { versions: vec![&rustls::version::TLS13], client_ca: None }).await;

    let (up, err) = scrape("127.0.0.1", tls12, &base).await;
    assert!(up, "TLS 1.2 is allowed by default: {err}");
    let (up, err) = scrape("127.0.0.1", tls12, &format!("{base}      min_version: TLS13\n")).await;
    assert!(!up, "min_version TLS13 refuses a TLS 1.2 server");
    assert!(err.contains("Version") || err.contains("version"), "{err}");
    let (up, err) = scrape("127.0.0.1", tls13, &format!("{base}      min_version: TLS13\n")).await;
    assert!(up, "{err}");
    let (up, _) = scrape("127.0.0.1", tls13, &format!("{base}      max_version: TLS12\n")).await;
    assert!(!up, "max_version TLS12 refuses a TLS 1.3-only server");
}
