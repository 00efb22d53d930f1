//! The scrape client's TLS settings: Prometheus's `tls_config` (CA, client
//! certificate, `server_name`, `insecure_skip_verify`, min/max version)
//! turned into a rustls `ClientConfig` that reqwest uses as is.
//!
//! Error texts follow prometheus/common (`unable to load specified CA cert
//! ...`, `unable to use specified client cert (...) & key (...): ...`).

use std::sync::Arc;

use ember_config::{TlsConfig, TlsVersion};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

/// Why a `tls_config` could not be turned into a client configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// An I/O error worded like Go's `os.ReadFile` errors
/// (`open /x: no such file or directory`), which Prometheus's messages embed.
fn go_io_error(path: &str, e: &std::io::Error) -> String {
    let what = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        _ => e.to_string(),
    };
    format!("open {path}: {what}")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The protocol versions allowed by `min_version`/`max_version`. rustls
/// speaks TLS 1.2 and 1.3 only, so an older minimum means "1.2"; Go's
/// client default minimum is TLS 1.2 as well.
fn versions(cfg: &TlsConfig) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let min = cfg.min_version.unwrap_or(TlsVersion::Tls12);
    let max = cfg.max_version.unwrap_or(TlsVersion::Tls13);
    if max < min {
        return Err(TlsError(
            "tls_config.max_version must be greater than or equal to tls_config.min_version if both are specified"
                .into(),
        ));
    }
    let mut out = Vec::new();
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        out.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::Tls13 {
        out.push(&rustls::version::TLS13);
    }
    if out.is_empty() {
        return Err(TlsError(format!("max_version {} is not supported (TLS 1.2 and 1.3 are)", max.as_str())));
    }
    Ok(out)
}

/// The trusted roots: the configured CA alone (as Go replaces the system
/// pool with it), else the bundled web PKI roots.
fn roots(cfg: &TlsConfig) -> Result<RootCertStore, TlsError> {
    let (pem, name) = if !cfg.ca_file.is_empty() {
        let pem = std::fs::read(&cfg.ca_file).map_err(|e| {
            TlsError(format!(
                "unable to load specified CA cert {}: {}",
                cfg.ca_file,
                go_io_error(&cfg.ca_file, &e)
            ))
        })?;
        (pem, cfg.ca_file.as_str())
    } else if !cfg.ca.is_empty() {
        (cfg.ca.as_bytes().to_vec(), "<inline>")
    } else {
        return Ok(RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() });
    };
    let mut store = RootCertStore::empty();
    // Go's AppendCertsFromPEM skips blocks it cannot use; so do we.
    for c in CertificateDer::pem_slice_iter(&pem).flatten() {
        let _ = store.add(c);
    }
    if store.is_empty() {
        return Err(TlsError(format!("unable to use specified CA cert {name}")));
    }
    Ok(store)
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The client certificate and key, if configured.
fn client_cert(cfg: &TlsConfig) -> Result<Option<ClientCert>, TlsError> {
    let has_cert = !cfg.cert_file.is_empty() || !cfg.cert.is_empty();
    if !has_cert {
        return Ok(None);
    }
    let cert_name = if cfg.cert_file.is_empty() { "inline" } else { cfg.cert_file.as_str() };
    let key_name = if cfg.key_file.is_empty() { "inline" } else { cfg.key_file.as_str() };
    let fail = |why: String| {
        TlsError(format!("unable to use specified client cert ({cert_name}) & key ({key_name}): {why}"))
    };
    let read = |path: &str, inline: &str| -> Result<Vec<u8>, TlsError> {
        if path.is_empty() {
            Ok(inline.as_bytes().to_vec())
        } else {
            std::fs::read(path).map_err(|e| fail(go_io_error(path, &e)))
        }
    };
    let cert_pem = read(&cfg.cert_file, &cfg.cert)?;
    let key_pem = read(&cfg.key_file, cfg.key.expose())?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| fail(format!("tls: failed to parse certificate PEM data: {e}")))?;
    if certs.is_empty() {
        return Err(fail("tls: failed to find any PEM data in certificate input".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| fail(format!("tls: failed to find any PEM data in key input: {e}")))?;
    Ok(Some((certs, key)))
}

/// Verifies the server's certificate for a fixed name (`server_name`)
/// instead of the URL's host.
#[derive(Debug)]
struct FixedNameVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name: ServerName<'static>,
}

impl ServerCertVerifier for FixedNameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner.verify_server_cert(end_entity, intermediates, &self.name, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate and name are accepted, but the
/// handshake signatures are still checked (the peer must hold the key of
/// the certificate it sent), as Go does.
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Builds the rustls client configuration for `cfg`. Files are read now;
/// a loop rebuilds its client when this fails, so fixing a file brings
/// the target back.
pub fn client_config(cfg: &TlsConfig) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let versions = versions(cfg)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError(e.to_string()))?;
    let verifier: Arc<dyn ServerCertVerifier> = if cfg.insecure_skip_verify {
        Arc::new(SkipVerify(provider.clone()))
    } else {
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots(cfg)?), provider.clone())
            .build()
            .map_err(|e| TlsError(e.to_string()))?;
        if cfg.server_name.is_empty() {
            inner
        } else {
            let name = ServerName::try_from(cfg.server_name.clone())
                .map_err(|e| TlsError(format!("invalid server_name {:?}: {e}", cfg.server_name)))?;
            Arc::new(FixedNameVerifier { inner, name })
        }
    };
    let builder = builder.dangerous().with_custom_certificate_verifier(verifier);
    let config = match client_cert(cfg)? {
        Some((certs, key)) => builder.with_client_auth_cert(certs, key).map_err(|e| {
            TlsError(format!(
                "unable to use specified client cert ({}) & key ({}): {e}",
                cfg.cert_file, cfg.key_file
            ))
        })?,
        None => builder.with_no_client_auth(),
    };
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(yaml: &str) -> TlsConfig {
        let cfg = ember_config::parse_str(&format!(
            "scrape_configs:\n  - job_name: j\n    tls_config:\n{yaml}    static_configs: [{{targets: ['a:1']}}]\n"
        ))
        .unwrap();
        cfg.scrape_configs[0].tls_config.clone()
    }

    #[test]
    fn missing_and_unusable_files_read_like_prometheus() {
        let e = client_config(&tls("      ca_file: /nonexistent/ca.pem\n")).unwrap_err();
        assert_eq!(
            e.0,
            "unable to load specified CA cert /nonexistent/ca.pem: open /nonexistent/ca.pem: no such file or directory"
        );
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = client_config(&tls(&format!("      ca_file: {}\n", junk.display()))).unwrap_err();
        assert_eq!(e.0, format!("unable to use specified CA cert {}", junk.display()));
        let e = client_config(&tls(&format!(
            "      cert_file: {0}\n      key_file: /nonexistent/k.pem\n",
            junk.display()
        )))
        .unwrap_err();
        assert!(
            e.0.starts_with(&format!(
                "unable to use specified client cert ({}) & key (/nonexistent/k.pem): ",
                junk.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn version_range() {
        assert_eq!(versions(&TlsConfig::default()).unwrap().len(), 2);
        let only13 = tls("      min_version: TLS13\n");
        assert_eq!(versions(&only13).unwrap(), vec![&rustls::version::TLS13]);
        let only12 = tls("      max_version: TLS12\n");
        assert_eq!(versions(&only12).unwrap(), vec![&rustls::version::TLS12]);
        let old = tls("      min_version: TLS10\n");
        assert_eq!(versions(&old).unwrap().len(), 2);
        assert!(versions(&tls("      max_version: TLS11\n")).is_err());
    }
}
