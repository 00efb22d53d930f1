//! The remote write receiver: decode a snappy-framed protobuf request and
//! append it through one batch.
//!
//! Prometheus rolls back the whole request when one sample is out of order.
//! ember keeps every acceptable sample, rejects only the offending ones and
//! reports them (HTTP 400, so senders do not retry what can never succeed);
//! see docs/compatibility.md.

use ember_model::names::NameValidation;
use ember_model::{AppendError, Appender, Labels, Metadata, SeriesRef, StorageError};
use prost::Message;

use crate::proto::{self, WriteRequest};

/// Why a request body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("snappy: {0}")]
    Snappy(#[from] snap::Error),
    #[error("protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    #[error("decompressed request of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

/// Largest decompressed request accepted (Prometheus's sender keeps
/// requests far below this).
pub const MAX_DECOMPRESSED_BYTES: usize = 256 << 20;

/// Decodes a remote write 1.0 body: snappy block format, then protobuf.
pub fn decode_write_request(body: &[u8]) -> Result<WriteRequest, DecodeError> {
    let size = snap::raw::decompress_len(body)?;
    if size > MAX_DECOMPRESSED_BYTES {
        return Err(DecodeError::TooLarge { size, limit: MAX_DECOMPRESSED_BYTES });
    }
    let raw = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(WriteRequest::decode(raw.as_slice())?)
}

/// Encodes a request the way a remote-write sender does.
pub fn encode_write_request(req: &WriteRequest) -> Vec<u8> {
    let raw = req.encode_to_vec();
    // Compressing a Vec we own cannot fail except on absurd sizes.
    snap::raw::Encoder::new().compress_vec(&raw).unwrap_or_default()
}

/// What one request did.
#[derive(Debug, Default, Clone)]
pub struct WriteOutcome {
    pub samples_appended: u64,
    /// Samples refused by the storage (out of order, out of bounds,
    /// duplicate timestamp).
    pub samples_rejected: u64,
    /// The first refusal, for the error message.
    pub first_rejection: Option<String>,
    /// Series skipped because their labels are invalid.
    pub series_invalid: u64,
    pub first_invalid: Option<String>,
    /// Native histogram samples, which ember does not store yet.
    pub histograms_unsupported: u64,
}

impl WriteOutcome {
    /// The error text for a 400 answer, if anything was refused.
    pub fn error_message(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(r) = &self.first_rejection {
            parts.push(format!("{} sample(s) rejected, first: {r}", self.samples_rejected));
        }
        if let Some(i) = &self.first_invalid {
            parts.push(format!("{} series with invalid labels skipped, first: {i}", self.series_invalid));
        }
        if self.histograms_unsupported > 0 {
            parts.push(format!(
                "{} native histogram sample(s) rejected: native histograms are not supported",
                self.histograms_unsupported
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// Checks a series' labels as Prometheus 3 does: a metric name, valid
/// names, no duplicates. Returns the sorted label set.
fn series_labels(ts: &proto::TimeSeries) -> Result<Labels, String> {
    let mut pairs: Vec<(&str, &str)> =
        ts.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let describe = || {
        let l: Vec<String> = ts.labels.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
        format!("{{{}}}", l.join(", "))
    };
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!("duplicate label name {:?} in {}", w[0].0, describe()));
    }
    if !pairs.iter().any(|(n, v)| *n == ember_model::METRIC_NAME && !v.is_empty()) {
        return Err(format!("missing metric name in {}", describe()));
    }
    if let Some((n, _)) =
        pairs.iter().find(|(n, _)| !ember_model::names::is_valid_label_name(n, NameValidation::Utf8))
    {
        return Err(format!("invalid label name {n:?} in {}", describe()));
    }
    // An empty value means "no such label", as everywhere in Prometheus.
    Ok(Labels::from_sorted_unique(pairs.into_iter().filter(|(_, v)| !v.is_empty())))
}

/// Appends the request through `app` and commits it. Storage failures
/// (not per-sample rejections) roll back and return an error.
pub fn write(req: &WriteRequest, app: &mut dyn Appender) -> Result<WriteOutcome, StorageError> {
    let mut out = WriteOutcome::default();
    for ts in &req.timeseries {
        let labels = match series_labels(ts) {
            Ok(l) => l,
            Err(e) => {
                out.series_invalid += 1;
                out.first_invalid.get_or_insert(e);
                continue;
            }
        };
        out.histograms_unsupported += ts.histograms.len() as u64;
        let mut series: Option<SeriesRef> = None;
        for s in &ts.samples {
            match app.append(series, &labels, s.timestamp, s.value) {
                Ok(r) => {
                    series = Some(r);
                    out.samples_appended += 1;
                }
                Err(e) if e.is_sample_rejection() => {
                    out.samples_rejected += 1;
                    if out.first_rejection.is_none() {
                        tracing::warn!(err = %e, series = %labels, timestamp = s.timestamp, "Out of order sample from remote write");
                        out.first_rejection =
                            Some(format!("{e}: series {labels}, timestamp {}", s.timestamp));
                    }
                }
                Err(AppendError::InvalidLabels(msg)) => {
                    out.series_invalid += 1;
                    out.first_invalid.get_or_insert(msg);
                    break;
                }
                Err(e) => {
                    app.rollback();
                    return Err(StorageError::Other(e.to_string()));
                }
            }
        }
    }
    for m in &req.metadata {
        let t = proto::MetricType::try_from(m.r#type).unwrap_or(proto::MetricType::Unknown);
        let meta = Metadata { metric_type: t.into(), help: m.help.clone(), unit: m.unit.clone() };
        let labels = Labels::from_pairs(&[(ember_model::METRIC_NAME, m.metric_family_name.as_str())]);
        // Metadata is advisory; a storage that refuses it loses nothing.
        let _ = app.update_metadata(None, &labels, &meta);
    }
    app.commit()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ember_model::memory::MemStorage;
    use ember_model::{Appendable, Matcher, Queryable, SelectHints};

    fn ts(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> proto::TimeSeries {
        proto::TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| proto::Label { name: n.to_string(), value: v.to_string() })
                .collect(),
            samples: samples.iter().map(|&(t, v)| proto::Sample { timestamp: t, value: v }).collect(),
            exemplars: vec![],
            histograms: vec![],
        }
    }

    fn count(s: &MemStorage, name: &str) -> usize {
        let q = s.querier(i64::MIN, i64::MAX).unwrap();
        q.select(true, &SelectHints::default(), &[Matcher::equal("__name__", name)])
            .unwrap()
            .map(|r| {
                let mut se = r.unwrap();
                let mut n = 0;
                while se.samples.next() {
                    n += 1;
                }
                n
            })
            .sum()
    }

    #[test]
    fn roundtrip_and_write() {
        let req = WriteRequest {
            timeseries: vec![
                ts(&[("job", "a"), ("__name__", "up")], &[(1000, 1.0), (2000, 0.0)]),
                ts(&[("__name__", "x")], &[(1000, 5.0)]),
            ],
            metadata: vec![proto::MetricMetadata {
                r#type: proto::MetricType::Gauge as i32,
                metric_family_name: "up".into(),
                help: "h".into(),
                unit: String::new(),
            }],
        };
        let body = encode_write_request(&req);
        let back = decode_write_request(&body).unwrap();
        assert_eq!(back, req);
        let s = MemStorage::new();
        let out = write(&back, &mut *s.appender()).unwrap();
        assert_eq!(out.samples_appended, 3);
        assert!(out.error_message().is_none());
        assert_eq!(count(&s, "up"), 2);
        assert_eq!(s.metadata("up").unwrap().metric_type, ember_model::MetricType::Gauge);
    }

    #[test]
    fn out_of_order_rejected_alone() {
        let s = MemStorage::new();
        let req = WriteRequest {
            timeseries: vec![
                ts(&[("__name__", "a")], &[(2000, 1.0), (1000, 2.0), (3000, 3.0)]),
                ts(&[("__name__", "b")], &[(1000, 1.0)]),
            ],
            metadata: vec![],
        };
        let out = write(&req, &mut *s.appender()).unwrap();
        assert_eq!(out.samples_appended, 3);
        assert_eq!(out.samples_rejected, 1);
        let msg = out.error_message().unwrap();
        assert!(msg.contains("out of order sample"), "{msg}");
        assert_eq!(count(&s, "a"), 2, "the good samples of the same series are kept");
        assert_eq!(count(&s, "b"), 1);
    }

    #[test]
    fn invalid_series_skipped() {
        let s = MemStorage::new();
        let req = WriteRequest {
            timeseries: vec![
                ts(&[("job", "x")], &[(1, 1.0)]),
                ts(&[("__name__", "a"), ("__name__", "b")], &[(1, 1.0)]),
                ts(&[("__name__", "ok"), ("", "v")], &[(1, 1.0)]),
                ts(&[("__name__", "fine")], &[(1, 1.0)]),
            ],
            metadata: vec![],
        };
        let out = write(&req, &mut *s.appender()).unwrap();
        assert_eq!(out.series_invalid, 3);
        assert_eq!(out.samples_appended, 1);
        assert!(out.first_invalid.unwrap().contains("missing metric name"));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(decode_write_request(b"\xff\xff\xff\xff\xff garbage"), Err(DecodeError::Snappy(_))));
        let not_proto = snap::raw::Encoder::new().compress_vec(b"\x0a\xff\xff\xff\xff\x0f").unwrap();
        assert!(matches!(decode_write_request(&not_proto), Err(DecodeError::Protobuf(_))));
    }
}
