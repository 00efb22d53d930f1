//! The HTTP client block shared by scrape configs, Alertmanager configs and
//! remote read/write (prometheus/common `HTTPClientConfig`), inlined into
//! each of them in the YAML.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::types::{is_false, Secret, Url};

/// `basic_auth`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BasicAuth {
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub username: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub username_file: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub password: Secret,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub password_file: String,
}

/// `authorization`; `type` defaults to `Bearer`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Authorization {
    #[serde(rename = "type", skip_serializing_if = "String::is_empty")]
    #[serde(deserialize_with = "crate::types::de_null_default")]
    pub kind: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub credentials: Secret,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub credentials_file: String,
}

/// TLS versions accepted by `min_version`/`max_version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::Tls10 => "TLS10",
            TlsVersion::Tls11 => "TLS11",
            TlsVersion::Tls12 => "TLS12",
            TlsVersion::Tls13 => "TLS13",
        }
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_str() {
            "TLS10" => Ok(TlsVersion::Tls10),
            "TLS11" => Ok(TlsVersion::Tls11),
            "TLS12" => Ok(TlsVersion::Tls12),
            "TLS13" => Ok(TlsVersion::Tls13),
            _ => Err(D::Error::custom(format!("unknown TLS version: {s}"))),
        }
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// `tls_config`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub ca: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub cert: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub key: Secret,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub ca_file: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub cert_file: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub key_file: String,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub server_name: String,
    pub insecure_skip_verify: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_version: Option<TlsVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_version: Option<TlsVersion>,
}

impl TlsConfig {
    /// prometheus/common `TLSConfig.Validate`, same messages.
    pub fn validate(&self) -> Result<(), String> {
        if !self.ca.is_empty() && !self.ca_file.is_empty() {
            return Err("at most one of ca and ca_file must be configured".into());
        }
        if !self.cert.is_empty() && !self.cert_file.is_empty() {
            return Err("at most one of cert and cert_file must be configured".into());
        }
        if !self.key.is_empty() && !self.key_file.is_empty() {
            return Err("at most one of key and key_file must be configured".into());
        }
        let has_cert = !self.cert.is_empty() || !self.cert_file.is_empty();
        let has_key = !self.key.is_empty() || !self.key_file.is_empty();
        if has_cert && !has_key {
            return Err(
                "exactly one of key or key_file must be configured when a client certificate is configured"
                    .into(),
            );
        }
        if has_key && !has_cert {
            return Err(
                "exactly one of cert or cert_file must be configured when a client key is configured".into(),
            );
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        *self == TlsConfig::default()
    }
}

/// `oauth2` (client credentials).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OAuth2 {
    #[serde(deserialize_with = "crate::types::de_null_default")]
    pub client_id: String,
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub client_secret: Secret,
    #[serde(skip_serializing_if = "String::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub client_secret_file: String,
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "crate::types::de_null_default")]
    pub scopes: Vec<String>,
    #[serde(deserialize_with = "crate::types::de_null_default")]
    pub token_url: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "crate::types::de_label_map")]
    pub endpoint_params: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "TlsConfig::is_empty")]
    pub tls_config: TlsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<Url>,
}

/// The HTTP client settings of one config section. In the YAML these
/// fields sit inline in their parent (see the `http_client_struct!` macro).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpClientConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oauth2: Option<OAuth2>,
    /// Deprecated; folded into `authorization` by [`HttpClientConfig::validate`].
    #[serde(skip_serializing_if = "Secret::is_empty")]
    pub bearer_token: Secret,
    /// Deprecated; folded into `authorization` by [`HttpClientConfig::validate`].
    #[serde(skip_serializing_if = "String::is_empty")]
    pub bearer_token_file: String,
    #[serde(skip_serializing_if = "TlsConfig::is_empty")]
    pub tls_config: TlsConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy_url: Option<Url>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_proxy: String,
    #[serde(skip_serializing_if = "is_false")]
    pub proxy_from_environment: bool,
    pub follow_redirects: bool,
    pub enable_http2: bool,
}

impl Default for HttpClientConfig {
    /// `config.DefaultHTTPClientConfig`: follow redirects, HTTP/2 on.
    fn default() -> Self {
        HttpClientConfig {
            basic_auth: None,
            authorization: None,
            oauth2: None,
            bearer_token: Secret::default(),
            bearer_token_file: String::new(),
            tls_config: TlsConfig::default(),
            proxy_url: None,
            no_proxy: String::new(),
            proxy_from_environment: false,
            follow_redirects: true,
            enable_http2: true,
        }
    }
}

impl HttpClientConfig {
    /// prometheus/common `HTTPClientConfig.Validate`: the same checks and
    /// messages, and the same normalisation (bearer_token[_file] become an
    /// `authorization` of type Bearer; an empty type becomes `Bearer`).
    pub fn validate(&mut self) -> Result<(), String> {
        if !self.bearer_token.is_empty() && !self.bearer_token_file.is_empty() {
            return Err("at most one of bearer_token & bearer_token_file must be configured".into());
        }
        let has_bearer = !self.bearer_token.is_empty() || !self.bearer_token_file.is_empty();
        if (self.basic_auth.is_some() || self.oauth2.is_some()) && has_bearer {
            return Err(
                "at most one of basic_auth, oauth2, bearer_token & bearer_token_file must be configured"
                    .into(),
            );
        }
        if self.basic_auth.is_some() && self.oauth2.is_some() {
            return Err("at most one of basic_auth, oauth2 & authorization must be configured".into());
        }
        if let Some(b) = &self.basic_auth {
            if !b.username.is_empty() && !b.username_file.is_empty() {
                return Err(
                    "at most one of basic_auth username, username_file & username_ref must be configured"
                        .into(),
                );
            }
            if !b.password.is_empty() && !b.password_file.is_empty() {
                return Err(
                    "at most one of basic_auth password, password_file & password_ref must be configured"
                        .into(),
                );
            }
        }
        if let Some(a) = &mut self.authorization {
            if has_bearer {
                return Err("authorization is not compatible with bearer_token & bearer_token_file".into());
            }
            if !a.credentials.is_empty() && !a.credentials_file.is_empty() {
                return Err(
                    "at most one of authorization credentials & credentials_file must be configured".into()
                );
            }
            a.kind = a.kind.trim().to_owned();
            if a.kind.is_empty() {
                a.kind = "Bearer".into();
            }
            if a.kind.eq_ignore_ascii_case("basic") {
                return Err(r#"authorization type cannot be set to "basic", use "basic_auth" instead"#.into());
            }
            if self.basic_auth.is_some() || self.oauth2.is_some() {
                return Err("at most one of basic_auth, oauth2 & authorization must be configured".into());
            }
        } else if has_bearer {
            self.authorization = Some(Authorization {
                kind: "Bearer".into(),
                credentials: std::mem::take(&mut self.bearer_token),
                credentials_file: std::mem::take(&mut self.bearer_token_file),
            });
        }
        if let Some(o) = &self.oauth2 {
            if o.client_id.is_empty() {
                return Err("oauth2 client_id must be configured".into());
            }
            if o.token_url.is_empty() {
                return Err("oauth2 token_url must be configured".into());
            }
            if !o.client_secret.is_empty() && !o.client_secret_file.is_empty() {
                return Err("at most one of oauth2 client_secret, client_secret_file & client_secret_ref must be configured".into());
            }
            o.tls_config.validate()?;
        }
        if self.proxy_from_environment && (self.proxy_url.is_some() || !self.no_proxy.is_empty()) {
            return Err(
                "if proxy_from_environment is configured, proxy_url and no_proxy must not be configured"
                    .into(),
            );
        }
        if !self.no_proxy.is_empty() && self.proxy_url.is_none() {
            return Err("if no_proxy is configured, proxy_url must also be configured".into());
        }
        self.tls_config.validate()
    }
}

/// Declares a config struct whose YAML mapping also holds the inline HTTP
/// client fields (Go's `yaml:",inline"`), keeping `deny_unknown_fields`
/// working (serde's `flatten` would defeat it). Fields listed under `tail`
/// come after the HTTP fields, in Prometheus's output order.
macro_rules! http_client_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$fmeta:meta])* pub $field:ident : $ty:ty, )*
        }
        tail {
            $( $(#[$tmeta:meta])* pub $tfield:ident : $tty:ty, )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $( $(#[$fmeta])* pub $field: $ty, )*
            #[serde(skip_serializing_if = "Option::is_none")]
            pub basic_auth: Option<$crate::http::BasicAuth>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub authorization: Option<$crate::http::Authorization>,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub oauth2: Option<$crate::http::OAuth2>,
            #[serde(skip_serializing_if = "crate::types::Secret::is_empty")]
            pub bearer_token: $crate::types::Secret,
            #[serde(skip_serializing_if = "String::is_empty")]
            #[serde(deserialize_with = "crate::types::de_null_default")]
            pub bearer_token_file: String,
            #[serde(skip_serializing_if = "crate::http::TlsConfig::is_empty")]
            #[serde(deserialize_with = "crate::types::de_null_default")]
            pub tls_config: $crate::http::TlsConfig,
            #[serde(skip_serializing_if = "Option::is_none")]
            pub proxy_url: Option<$crate::types::Url>,
            #[serde(skip_serializing_if = "String::is_empty")]
            #[serde(deserialize_with = "crate::types::de_null_default")]
            pub no_proxy: String,
            #[serde(skip_serializing_if = "crate::types::is_false")]
            pub proxy_from_environment: bool,
            pub follow_redirects: bool,
            pub enable_http2: bool,
            $( $(#[$tmeta])* pub $tfield: $tty, )*
        }

        impl $name {
            /// The inline HTTP client fields as one value.
            pub fn http_client(&self) -> $crate::http::HttpClientConfig {
                $crate::http::HttpClientConfig {
                    basic_auth: self.basic_auth.clone(),
                    authorization: self.authorization.clone(),
                    oauth2: self.oauth2.clone(),
                    bearer_token: self.bearer_token.clone(),
                    bearer_token_file: self.bearer_token_file.clone(),
                    tls_config: self.tls_config.clone(),
                    proxy_url: self.proxy_url.clone(),
                    no_proxy: self.no_proxy.clone(),
                    proxy_from_environment: self.proxy_from_environment,
                    follow_redirects: self.follow_redirects,
                    enable_http2: self.enable_http2,
                }
            }

            /// Replaces every HTTP client setting (the fields flattened
            /// into this config, as Prometheus's YAML has them).
            pub fn set_http_client(&mut self, h: $crate::http::HttpClientConfig) {
                self.basic_auth = h.basic_auth;
                self.authorization = h.authorization;
                self.oauth2 = h.oauth2;
                self.bearer_token = h.bearer_token;
                self.bearer_token_file = h.bearer_token_file;
                self.tls_config = h.tls_config;
                self.proxy_url = h.proxy_url;
                self.no_proxy = h.no_proxy;
                self.proxy_from_environment = h.proxy_from_environment;
                self.follow_redirects = h.follow_redirects;
                self.enable_http2 = h.enable_http2;
            }

            /// Validates and normalises the inline HTTP client fields.
            fn validate_http_client(&mut self) -> Result<(), String> {
                let mut h = self.http_client();
                h.validate()?;
                self.set_http_client(h);
                Ok(())
            }
        }
    };
}
