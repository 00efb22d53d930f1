//! `POST /api/v1/write`: the remote write 1.0 receiver.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::AppState;

/// Checks the headers a remote-write 1.0 sender sets, as Prometheus does:
/// protobuf content (any other type is 415), snappy encoding.
fn check_headers(h: &HeaderMap) -> Result<(), (StatusCode, String)> {
    let ct = h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ct_ok = ct.is_empty() || {
        let mut parts = ct.split(';').map(str::trim);
        let base = parts.next().unwrap_or("");
        let proto = parts.find_map(|p| p.strip_prefix("proto=")).unwrap_or("prometheus.WriteRequest");
        base == "application/x-protobuf" && proto == "prometheus.WriteRequest"
    };
    if !ct_ok {
        let msg = format!("unsupported Content-Type {ct:?}: this endpoint accepts remote write 1.0 (application/x-protobuf) only\n");
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
    }
    let enc = h.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()).unwrap_or("");
    if !enc.is_empty() && enc != "snappy" {
        let msg = format!("unsupported Content-Encoding {enc:?}: use snappy\n");
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, msg));
    }
    Ok(())
}

pub(crate) async fn write(State(s): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(storage) = s.storage().ok().filter(|_| s.inner.remote_write_receiver) else {
        return (
            StatusCode::NOT_FOUND,
            "remote write receiver needs to be enabled with --web.enable-remote-write-receiver\n",
        )
            .into_response();
    };
    if let Err(r) = check_headers(&headers) {
        return r.into_response();
    }
    let req = match ember_remote::decode_write_request(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    // Appending is synchronous, CPU-bound work: keep it off the I/O threads.
    let res = tokio::task::spawn_blocking(move || {
        let mut app = storage.appender();
        ember_remote::write(&req, &mut *app)
    })
    .await;
    match res {
        Ok(Ok(outcome)) => match outcome.error_message() {
            None => StatusCode::NO_CONTENT.into_response(),
            Some(msg) => (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response(),
        },
        Ok(Err(e)) => {
            tracing::error!(err = %e, "Error appending remote write");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;
    use axum::http::Request;
    use ember_model::memory::MemStorage;
    use ember_model::{Matcher, Queryable, SelectHints};
    use ember_remote::proto;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::{router, AppState, Options};

    fn app(storage: &MemStorage, enabled: bool) -> axum::Router {
        let opts = Options { enable_remote_write_receiver: enabled, ..Default::default() };
        router(AppState::new(opts, Some(Arc::new(storage.clone())), vec![]))
    }

    fn body(samples: &[(i64, f64)]) -> Vec<u8> {
        ember_remote::encode_write_request(&proto::WriteRequest {
            timeseries: vec![proto::TimeSeries {
                labels: vec![proto::Label { name: "__name__".into(), value: "rw".into() }],
                samples: samples
                    .iter()
                    .map(|&(timestamp, value)| proto::Sample { value, timestamp })
                    .collect(),
                exemplars: vec![],
                histograms: vec![],
            }],
            metadata: vec![],
        })
    }

    async fn post(app: axum::Router, ct: &str, body: Vec<u8>) -> (u16, String) {
        let req = Request::post("/api/v1/write")
            .header("content-type", ct)
            .header("content-encoding", "snappy")
            .body(Body::from(body))
            .unwrap();
        let resp = app.oneshot(req).await.unwrap();
        let status = resp.status().as_u16();
        let text = String::from_utf8(resp.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        (status, text)
    }

    fn stored(s: &MemStorage) -> Vec<i64> {
        let q = s.querier(i64::MIN, i64::MAX).unwrap();
        let mut ts = vec![];
        for se in q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", "rw")]).unwrap() {
            let mut se = se.unwrap();
            while se.samples.next() {
                ts.push(se.samples.at().0);
            }
        }
        ts
    }

    const PB: &str = "application/x-protobuf";

    #[tokio::test]
    async fn accepts_and_stores() {
        let s = MemStorage::new();
        let (st, _) = post(app(&s, true), PB, body(&[(1000, 1.0), (2000, 2.0)])).await;
        assert_eq!(st, 204);
        assert_eq!(stored(&s), vec![1000, 2000]);
    }

    #[tokio::test]
    async fn disabled_by_default() {
        let s = MemStorage::new();
        let (st, _) = post(app(&s, false), PB, body(&[(1000, 1.0)])).await;
        assert_eq!(st, 404);
        assert!(stored(&s).is_empty());
    }

    #[tokio::test]
    async fn garbage_is_400_and_stores_nothing() {
        let s = MemStorage::new();
        let (st, msg) = post(app(&s, true), PB, b"definitely not snappy".to_vec()).await;
        assert_eq!(st, 400);
        assert!(msg.contains("snappy"), "{msg}");
        assert!(stored(&s).is_empty());
    }

    #[tokio::test]
    async fn wrong_content_type_is_415() {
        let s = MemStorage::new();
        let (st, _) = post(app(&s, true), "application/json", body(&[(1000, 1.0)])).await;
        assert_eq!(st, 415);
        let (st, _) = post(
            app(&s, true),
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            body(&[(1, 1.0)]),
        )
        .await;
        assert_eq!(st, 415, "remote write 2.0 is not accepted yet");
        assert!(stored(&s).is_empty());
    }

    #[tokio::test]
    async fn out_of_order_is_400_and_keeps_the_rest() {
        let s = MemStorage::new();
        let (st, _) = post(app(&s, true), PB, body(&[(5000, 1.0)])).await;
        assert_eq!(st, 204);
        let (st, msg) = post(app(&s, true), PB, body(&[(4000, 1.0), (6000, 2.0)])).await;
        assert_eq!(st, 400);
        assert!(msg.contains("out of order sample"), "{msg}");
        assert_eq!(stored(&s), vec![5000, 6000]);
    }
}
