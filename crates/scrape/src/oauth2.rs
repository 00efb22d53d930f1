//! OAuth 2.0 client credentials for scrapes (Prometheus's `oauth2` block,
//! which uses Go's `golang.org/x/oauth2/clientcredentials`): a token is
//! fetched from `token_url`, reused until 10 s before it expires, and sent
//! as `Authorization: <type> <token>`.
//!
//! As Go's default (`AuthStyleAutoDetect`), the client id and secret go in
//! a basic-auth header first; if the endpoint refuses that, they are sent
//! as form parameters, and whichever worked is remembered.

use std::time::{Duration, Instant};

use ember_config::OAuth2;

use crate::tls;

/// Go's `expiryDelta`: a token this close to expiry is renewed first.
const EXPIRY_DELTA: Duration = Duration::from_secs(10);

/// Why no token could be had. Messages are Go oauth2's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

#[derive(Debug, Clone)]
struct Token {
    /// `Type() + " " + AccessToken`, the header value.
    header: String,
    /// `None`: the endpoint gave no `expires_in`, the token never expires.
    expiry: Option<Instant>,
}

impl Token {
    fn valid(&self, now: Instant) -> bool {
        self.expiry.is_none_or(|e| now + EXPIRY_DELTA < e)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AuthStyle {
    Unknown,
    Header,
    Params,
}

#[derive(Debug)]
struct State {
    token: Option<Token>,
    style: AuthStyle,
}

/// The token source of one scrape loop.
#[derive(Debug)]
pub struct TokenSource {
    cfg: OAuth2,
    client: Result<reqwest::Client, String>,
    state: tokio::sync::Mutex<State>,
}

/// Go's `Token.Type()`: well-known types are canonicalised, an empty type
/// is `Bearer`.
fn token_type(t: &str) -> String {
    if t.is_empty() || t.eq_ignore_ascii_case("bearer") {
        "Bearer".into()
    } else if t.eq_ignore_ascii_case("mac") {
        "MAC".into()
    } else if t.eq_ignore_ascii_case("basic") {
        "Basic".into()
    } else {
        t.to_owned()
    }
}

/// `url.QueryEscape`, as Go escapes the id and secret for the header.
fn query_escape(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl TokenSource {
    /// The token endpoint's own client (its `tls_config` and `proxy_url`)
    /// is built now; if that fails every token fetch reports why.
    pub fn new(cfg: &OAuth2) -> TokenSource {
        TokenSource {
            cfg: cfg.clone(),
            client: build_client(cfg),
            state: tokio::sync::Mutex::new(State { token: None, style: AuthStyle::Unknown }),
        }
    }

    /// The `Authorization` header value, fetching a token when there is
    /// no valid one.
    pub async fn header(&self) -> Result<String, TokenError> {
        let mut st = self.state.lock().await;
        let now = Instant::now();
        if let Some(t) = st.token.as_ref().filter(|t| t.valid(now)) {
            return Ok(t.header.clone());
        }
        let client = self.client.as_ref().map_err(|e| TokenError(e.clone()))?;
        let secret = if self.cfg.client_secret_file.is_empty() {
            self.cfg.client_secret.expose().to_owned()
        } else {
            std::fs::read_to_string(&self.cfg.client_secret_file).map(|s| s.trim().to_owned()).map_err(
                |e| {
                    TokenError(format!(
                        "unable to read oauth2 client secret file {}: {e}",
                        self.cfg.client_secret_file
                    ))
                },
            )?
        };
        let token = match st.style {
            AuthStyle::Header => self.fetch(client, &secret, AuthStyle::Header).await?,
            AuthStyle::Params => self.fetch(client, &secret, AuthStyle::Params).await?,
            AuthStyle::Unknown => match self.fetch(client, &secret, AuthStyle::Header).await {
                Ok(t) => {
                    st.style = AuthStyle::Header;
                    t
                }
                Err(first) => match self.fetch(client, &secret, AuthStyle::Params).await {
                    Ok(t) => {
                        st.style = AuthStyle::Params;
                        t
                    }
                    // Go reports the first attempt's error.
                    Err(_) => return Err(first),
                },
            },
        };
        let header = token.header.clone();
        st.token = Some(token);
        Ok(header)
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        secret: &str,
        style: AuthStyle,
    ) -> Result<Token, TokenError> {
        let mut params: Vec<(String, String)> = vec![("grant_type".into(), "client_credentials".into())];
        if !self.cfg.scopes.is_empty() {
            params.push(("scope".into(), self.cfg.scopes.join(" ")));
        }
        for (k, v) in &self.cfg.endpoint_params {
            match params.iter_mut().find(|(n, _)| n == k) {
                // grant_type may be overridden, as Go allows for
                // non-compliant endpoints.
                Some(p) if k == "grant_type" => p.1 = v.clone(),
                Some(_) => return Err(TokenError(format!("oauth2: cannot overwrite parameter {k:?}"))),
                None => params.push((k.clone(), v.clone())),
            }
        }
        if style == AuthStyle::Params {
            params.push(("client_id".into(), self.cfg.client_id.clone()));
            if !secret.is_empty() {
                params.push(("client_secret".into(), secret.to_owned()));
            }
        }
        // The serializer is not Send: finish it before any await.
        let body = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            for (k, v) in &params {
                form.append_pair(k, v);
            }
            form.finish()
        };
        let mut req = client
            .post(&self.cfg.token_url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if style == AuthStyle::Header {
            req = req.basic_auth(query_escape(&self.cfg.client_id), Some(query_escape(secret)));
        }
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .map_err(|e| TokenError(format!("Post {:?}: {}", self.cfg.token_url, error_chain(&e))))?;
        let status = resp.status();
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp
            .bytes()
            .await
            .map_err(|e| TokenError(format!("oauth2: cannot fetch token: {}", error_chain(&e))))?;
        if !status.is_success() {
            return Err(TokenError(retrieve_error(status, &body)));
        }
        parse_token(&ct, &body, started)
    }
}

/// Go's `RetrieveError` text: the RFC 6749 error code and description when
/// the body has them, else the status and the body.
fn retrieve_error(status: reqwest::StatusCode, body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        if let Some(code) = v.get("error").and_then(|c| c.as_str()) {
            let mut s = format!("oauth2: {code:?}");
            if let Some(d) = v.get("error_description").and_then(|d| d.as_str()) {
                s.push_str(&format!(" {d:?}"));
            }
            return s;
        }
    }
    format!(
        "oauth2: cannot fetch token: {} {}\nResponse: {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        String::from_utf8_lossy(body)
    )
}

/// A token response: JSON, or a form-encoded body (which some endpoints
/// answer with `text/plain`), as Go accepts both.
fn parse_token(content_type: &str, body: &[u8], fetched_at: Instant) -> Result<Token, TokenError> {
    let mime = content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    let (access, kind, expires_in) = if mime == "application/x-www-form-urlencoded" || mime == "text/plain" {
        let mut access = String::new();
        let mut kind = String::new();
        let mut expires = None;
        for (k, v) in form_urlencoded::parse(body) {
            match &*k {
                "access_token" => access = v.into_owned(),
                "token_type" => kind = v.into_owned(),
                "expires_in" => expires = v.parse::<i64>().ok(),
                _ => {}
            }
        }
        (access, kind, expires)
    } else {
        let v: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| TokenError(format!("oauth2: cannot parse json: {e}")))?;
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
        // expires_in may be a number or a numeric string.
        let expires = match v.get("expires_in") {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(t)) => t.parse().ok(),
            _ => None,
        };
        (s("access_token"), s("token_type"), expires)
    };
    if access.is_empty() {
        return Err(TokenError("oauth2: server response missing access_token".into()));
    }
    let expiry = expires_in.filter(|s| *s > 0).map(|s| fetched_at + Duration::from_secs(s as u64));
    Ok(Token { header: format!("{} {access}", token_type(&kind)), expiry })
}

fn build_client(cfg: &OAuth2) -> Result<reqwest::Client, String> {
    let tls = tls::client_config(&cfg.tls_config).map_err(|e| e.to_string())?;
    let mut b = reqwest::Client::builder()
        .user_agent(concat!("ember/", env!("CARGO_PKG_VERSION")))
        .timeout(Duration::from_secs(30))
        .use_preconfigured_tls(tls);
    match &cfg.proxy_url {
        Some(p) => {
            let proxy = reqwest::Proxy::all(p.0.as_str()).map_err(|e| format!("oauth2 proxy_url: {e}"))?;
            b = b.proxy(proxy);
        }
        None => b = b.no_proxy(),
    }
    b.build().map_err(|e| error_chain(&e))
}

/// An error with its causes, `a: b: c` (reqwest's own text names only
/// the outermost layer).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.ends_with(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_types_and_expiry() {
        let now = Instant::now();
        let t = parse_token(
            "application/json",
            br#"{"access_token":"abc","token_type":"bearer","expires_in":60}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.header, "Bearer abc");
        assert!(t.valid(now));
        // Within 10 s of expiry the token is renewed.
        assert!(!t.valid(now + Duration::from_secs(51)));
        let t = parse_token(
            "application/json",
            br#"{"access_token":"x","token_type":"mac","expires_in":"5"}"#,
            now,
        )
        .unwrap();
        assert_eq!(t.header, "MAC x");
        assert!(!t.valid(now), "5s tokens are always within the delta");
        let t = parse_token("text/plain", b"access_token=q%20r&token_type=Custom", now).unwrap();
        assert_eq!(t.header, "Custom q r");
        assert!(t.valid(now + Duration::from_secs(1_000_000)), "no expires_in: never expires");
        assert_eq!(
            parse_token("application/json", br#"{"token_type":"bearer"}"#, now).unwrap_err().0,
            "oauth2: server response missing access_token"
        );
    }

    #[test]
    fn retrieve_errors() {
        assert_eq!(
            retrieve_error(
                reqwest::StatusCode::UNAUTHORIZED,
                br#"{"error":"invalid_client","error_description":"bad secret"}"#
            ),
            "oauth2: \"invalid_client\" \"bad secret\""
        );
        assert_eq!(
            retrieve_error(reqwest::StatusCode::INTERNAL_SERVER_ERROR, b"boom"),
            "oauth2: cannot fetch token: 500 Internal Server Error\nResponse: boom"
        );
    }
}
