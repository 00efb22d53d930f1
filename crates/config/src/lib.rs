//! ember-config: the `prometheus.yml` model.
//!
//! Parsing is strict like Prometheus's (`yaml.UnmarshalStrict`): an unknown
//! field, a duplicate key, a bad duration, size or regex is an error that
//! names the file, the line and column, and the field path. Defaults are
//! Prometheus 3's; validation rules and messages follow `config/config.go`,
//! `model/relabel/relabel.go` and prometheus/common's HTTP client config.
//! [`Config::to_yaml`] prints the loaded config with defaults filled and
//! secrets shown as `<secret>`, for `/api/v1/status/config`.

#[macro_use]
mod http;
mod checked;
mod config;
mod error;
pub mod relabel;
mod types;

use std::path::Path;

pub use config::*;
pub use error::ConfigError;
pub use http::{Authorization, BasicAuth, HttpClientConfig, OAuth2, TlsConfig, TlsVersion};
pub use relabel::{Action, RelabelConfig, RelabelRegex};
pub use types::{parse_byte_size, ByteSize, Duration, LabelMap, Secret, Url, REDACTED};

/// A position in the YAML text: 1-based line and column, 0 when unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// Reads, parses and validates a configuration file. Relative paths inside
/// it (rule files, file_sd files, TLS and credential files) are resolved
/// against the file's directory, as Prometheus does.
pub fn load_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::msg(format!("open {}: {e}", path.display())))?;
    let mut cfg = parse_str(&text).map_err(|e| e.in_file(path))?;
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    cfg.set_directory(dir);
    Ok(cfg)
}

/// Parses and validates configuration text. An empty document is the
/// default configuration.
pub fn parse_str(text: &str) -> Result<Config, ConfigError> {
    let mut cfg: Config = if text.trim().is_empty() {
        // serde-saphyr reads an empty document as null; Prometheus treats an
        // empty file as the defaults.
        Config::default()
    } else {
        decode(text)?
    };
    cfg.finalize()?;
    Ok(cfg)
}

/// Strict YAML → `T`, with the error's position and field path.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let mut opts = serde_saphyr::Options::default();
    opts.with_snippet = false;
    let mut path: Option<String> = None;
    let res = serde_saphyr::with_deserializer_from_str_with_options(text, opts, |de| {
        serde_path_to_error::deserialize::<_, T>(de).map_err(|e| {
            path = Some(e.path().to_string());
            e.into_inner()
        })
    });
    res.map_err(|e| {
        let (line, column) = match e.location() {
            Some(l) if l.line() > 0 => (Some(l.line()), Some(l.column())),
            _ => (None, None),
        };
        let text = e.to_string();
        // The message ends with " at line L, column C"; the position is
        // kept in its own fields instead.
        let mut message = match text.rfind(" at line ") {
            Some(i) if line.is_some() => text[..i].to_owned(),
            _ => text,
        };
        // Library advice and the list of every accepted field add nothing
        // for someone editing prometheus.yml.
        for cut in [", set DuplicateKeyPolicy", ", expected one of "] {
            if let Some(i) = message.find(cut) {
                message.truncate(i);
            }
        }
        // Spanned list items add a `.value` step to the path; it is not a
        // field of the file.
        let field = path
            .map(|p| p.replace("].value", "]"))
            .filter(|p| !p.is_empty() && p != ".")
            .map(|p| p.trim_end_matches(".?").to_owned());
        ConfigError { file: None, line, column, field, message }
    })
}
