//! CORS for the API, as Prometheus does it: `--web.cors.origin` is a fully
//! anchored regex; a request with a matching `Origin` gets it echoed back
//! (`*` when the regex is the default `.*`), and preflight `OPTIONS`
//! requests are answered directly.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;

const ALLOW_HEADERS: &str = "Accept, Authorization, Content-Type, Origin";
const ALLOW_METHODS: &str = "GET, POST, OPTIONS";
const EXPOSE_HEADERS: &str = "Date";

/// The compiled `--web.cors.origin`.
#[derive(Debug, Clone)]
pub struct CorsOrigin {
    re: regex::Regex,
    any: bool,
}

impl CorsOrigin {
    /// Anchors `re` fully, as Prometheus does (`^(?:RE)$`).
    pub fn new(re: &str) -> Result<CorsOrigin, regex::Error> {
        Ok(CorsOrigin { re: regex::Regex::new(&format!("^(?:{re})$"))?, any: re == ".*" })
    }
}

impl Default for CorsOrigin {
    fn default() -> Self {
        CorsOrigin { re: regex::Regex::new("^(?:.*)$").unwrap_or_else(|_| unreachable!()), any: true }
    }
}

pub(crate) async fn cors(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let preflight = req.method() == Method::OPTIONS;
    let mut resp = if preflight { StatusCode::OK.into_response() } else { next.run(req).await };
    let Some(origin) = origin else { return resp };
    let h = resp.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
    h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
    let cors = &s.inner.cors;
    if cors.any {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    } else if cors.re.is_match(&origin) {
        if let Ok(v) = HeaderValue::from_str(&origin) {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{router, Options};
    use axum::body::Body;
    use tower::ServiceExt;

    async fn call(cors: &str, method: Method, origin: Option<&str>, gzip: bool) -> Response {
        let opts = Options { cors_origin: Some(CorsOrigin::new(cors).unwrap()), ..Default::default() };
        let app = router(AppState::new(opts, None, vec![]));
        let mut req = Request::builder().method(method).uri("/api/v1/status/buildinfo");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        if gzip {
            req = req.header("accept-encoding", "gzip");
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    fn allow(r: &Response) -> Option<&str> {
        r.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok())
    }

    #[tokio::test]
    async fn default_allows_any_origin() {
        let r = call(".*", Method::GET, Some("https://grafana.example"), false).await;
        assert_eq!(allow(&r), Some("*"));
        let r = call(".*", Method::GET, None, false).await;
        assert_eq!(allow(&r), None, "no Origin, no CORS headers");
    }

    #[tokio::test]
    async fn regex_is_anchored() {
        let re = r"https?://(a|b)\.example";
        let r = call(re, Method::GET, Some("https://a.example"), false).await;
        assert_eq!(allow(&r), Some("https://a.example"));
        let r = call(re, Method::GET, Some("https://a.example.evil"), false).await;
        assert_eq!(allow(&r), None);
        let r = call(re, Method::OPTIONS, Some("http://b.example"), false).await;
        assert_eq!(r.status(), 200);
        assert_eq!(allow(&r), Some("http://b.example"));
        assert_eq!(r.headers()["access-control-allow-methods"], "GET, POST, OPTIONS");
    }

    #[tokio::test]
    async fn gzip_when_asked() {
        let r = call(".*", Method::GET, None, true).await;
        assert_eq!(r.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));
        let r = call(".*", Method::GET, None, false).await;
        assert!(r.headers().get("content-encoding").is_none());
    }
}
