//! Content negotiation: the `Accept` header a scraper sends and the parser a
//! response's `Content-Type` selects, as Prometheus 3 does it.

use std::fmt;
use std::str::FromStr;

use crate::Format;

/// A scrape protocol as named in `scrape_protocols` and
/// `fallback_scrape_protocol` of `prometheus.yml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScrapeProtocol {
    /// Protobuf exposition. ember can ask for it but cannot parse it.
    PrometheusProto,
    PrometheusText0_0_4,
    PrometheusText1_0_0,
    OpenMetricsText0_0_1,
    OpenMetricsText1_0_0,
}

impl ScrapeProtocol {
    /// Every protocol Prometheus knows; its Accept weights start from
    /// `ALL.len() + 1`.
    pub const ALL: [ScrapeProtocol; 5] = [
        ScrapeProtocol::PrometheusProto,
        ScrapeProtocol::PrometheusText0_0_4,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::OpenMetricsText1_0_0,
    ];

    /// Prometheus 3's default `scrape_protocols`, in priority order.
    pub const DEFAULT: [ScrapeProtocol; 4] = [
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ];

    /// The configuration spelling, e.g. `OpenMetricsText1.0.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => "PrometheusProto",
            ScrapeProtocol::PrometheusText0_0_4 => "PrometheusText0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "PrometheusText1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "OpenMetricsText0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => "OpenMetricsText1.0.0",
        }
    }

    /// The media range this protocol contributes to the Accept header
    /// (without escaping or q parameters).
    pub fn media_type(self) -> &'static str {
        match self {
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0",
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::OpenMetricsText1_0_0 => "application/openmetrics-text;version=1.0.0",
        }
    }

    /// The parser for a response in this protocol; `None` for protobuf,
    /// which ember does not parse.
    pub fn format(self) -> Option<Format> {
        match self {
            ScrapeProtocol::PrometheusProto => None,
            ScrapeProtocol::PrometheusText0_0_4 | ScrapeProtocol::PrometheusText1_0_0 => {
                Some(Format::PrometheusText)
            }
            ScrapeProtocol::OpenMetricsText0_0_1 | ScrapeProtocol::OpenMetricsText1_0_0 => {
                Some(Format::OpenMetrics)
            }
        }
    }
}

impl fmt::Display for ScrapeProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown name in `scrape_protocols`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scrape protocol {0:?}")]
pub struct UnknownScrapeProtocol(pub String);

impl FromStr for ScrapeProtocol {
    type Err = UnknownScrapeProtocol;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScrapeProtocol::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| UnknownScrapeProtocol(s.to_owned()))
    }
}

/// How a target should escape metric and label names that are not legacy
/// names (the `escaping` parameter of the 1.0.0 text formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EscapingScheme {
    /// UTF-8 names as they are: Prometheus 3's default.
    #[default]
    AllowUtf8,
    Underscores,
    Dots,
    Values,
}

impl EscapingScheme {
    pub fn as_str(self) -> &'static str {
        match self {
            EscapingScheme::AllowUtf8 => "allow-utf-8",
            EscapingScheme::Underscores => "underscores",
            EscapingScheme::Dots => "dots",
            EscapingScheme::Values => "values",
        }
    }
}

/// The Accept header Prometheus 3 sends for `protocols` (in priority order)
/// with UTF-8 names allowed. For the default protocols this is
/// `application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,`
/// `application/openmetrics-text;version=0.0.1;q=0.5,`
/// `text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,`
/// `text/plain;version=0.0.4;q=0.3,*/*;q=0.2`.
pub fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    accept_header_with_escaping(protocols, EscapingScheme::AllowUtf8)
}

/// [`accept_header`] with an explicit escaping scheme. Weights count down
/// from `0.6` (one more than the number of known protocols), and `*/*`
/// takes the next weight. Prometheus rejects duplicate protocols in its
/// config, so at most five weights are used; past that the weight stays at
/// `0.0` here rather than going negative.
pub fn accept_header_with_escaping(protocols: &[ScrapeProtocol], escaping: EscapingScheme) -> String {
    let mut out = String::with_capacity(64 * (protocols.len() + 1));
    let mut weight = ScrapeProtocol::ALL.len() + 1;
    for &p in protocols {
        out.push_str(p.media_type());
        if matches!(p, ScrapeProtocol::PrometheusText1_0_0 | ScrapeProtocol::OpenMetricsText1_0_0) {
            out.push_str(";escaping=");
            out.push_str(escaping.as_str());
        }
        out.push_str(";q=0.");
        out.push_str(&weight.to_string());
        out.push(',');
        weight = weight.saturating_sub(1);
    }
    out.push_str("*/*;q=0.");
    out.push_str(&weight.to_string());
    out
}

/// Why a response's Content-Type selects no parser. The messages are
/// Prometheus 3's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentTypeError {
    #[error("non-compliant scrape target sending blank Content-Type and no fallback_scrape_protocol specified for target")]
    Missing,
    #[error("cannot parse Content-Type {0:?} and no fallback_scrape_protocol for target")]
    Invalid(String),
    #[error("received unsupported Content-Type {0:?} and no fallback_scrape_protocol specified for target")]
    Unsupported(String),
    /// The target answered in protobuf, which ember does not parse.
    #[error("received protobuf Content-Type {0:?}, which is not supported; remove PrometheusProto from scrape_protocols")]
    Protobuf(String),
}

/// The outcome of [`parser_for_content_type`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub format: Format,
    /// Set when the fallback protocol was used: why. Prometheus logs this
    /// as a warning and scrapes on.
    pub fallback_reason: Option<ContentTypeError>,
}

/// Chooses the parser for a response, as Prometheus 3 does:
///
/// * `application/openmetrics-text` → [`Format::OpenMetrics`];
///   `text/plain` → [`Format::PrometheusText`] (any parameters, any case);
/// * a missing, unparsable or unknown Content-Type is an error **unless**
///   `fallback` (the target's `fallback_scrape_protocol`) is given, in
///   which case that format is used and the reason is returned alongside.
///   Prometheus 2 used the text format silently in these cases; pass
///   `Some(Format::PrometheusText)` to get that behaviour;
/// * protobuf is always an error, since ember has no protobuf parser.
pub fn parser_for_content_type(
    content_type: Option<&str>,
    fallback: Option<Format>,
) -> Result<Negotiated, ContentTypeError> {
    let fall = |err: ContentTypeError| match fallback {
        Some(format) => Ok(Negotiated { format, fallback_reason: Some(err) }),
        None => Err(err),
    };
    let ct = match content_type {
        Some(ct) if !ct.is_empty() => ct,
        _ => return fall(ContentTypeError::Missing),
    };
    let Some(media_type) = parse_media_type(ct) else {
        return fall(ContentTypeError::Invalid(ct.to_owned()));
    };
    match media_type.as_str() {
        "application/openmetrics-text" => {
            Ok(Negotiated { format: Format::OpenMetrics, fallback_reason: None })
        }
        "text/plain" => Ok(Negotiated { format: Format::PrometheusText, fallback_reason: None }),
        "application/vnd.google.protobuf" => Err(ContentTypeError::Protobuf(ct.to_owned())),
        _ => fall(ContentTypeError::Unsupported(ct.to_owned())),
    }
}

/// RFC 7231 token characters.
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// A small `mime.ParseMediaType`: `type/subtype` followed by
/// `; name=value` parameters (value a token or a quoted string). Returns
/// the lower-cased media type, or `None` if the header is malformed.
fn parse_media_type(ct: &str) -> Option<String> {
    let mut parts = ct.splitn(2, ';');
    let mt = parts.next()?.trim();
    let (ty, sub) = mt.split_once('/')?;
    if ty.is_empty() || sub.is_empty() || !ty.chars().all(is_token_char) || !sub.chars().all(is_token_char) {
        return None;
    }
    let mut rest = parts.next().unwrap_or("");
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=')?;
        let name = name.trim();
        if name.is_empty() || !name.chars().all(is_token_char) {
            return None;
        }
        let after = after.trim_start();
        let consumed = if let Some(q) = after.strip_prefix('"') {
            // Quoted string with backslash escapes.
            let mut end = None;
            let mut esc = false;
            for (i, c) in q.char_indices() {
                match (esc, c) {
                    (true, _) => esc = false,
                    (false, '\\') => esc = true,
                    (false, '"') => {
                        end = Some(i + 2);
                        break;
                    }
                    _ => {}
                }
            }
            end?
        } else {
            let n = after.find(|c: char| !is_token_char(c)).unwrap_or(after.len());
            if n == 0 {
                return None;
            }
            n
        };
        let tail = after[consumed..].trim_start();
        rest = match tail.strip_prefix(';') {
            Some(t) => t,
            None if tail.is_empty() => tail,
            None => return None,
        };
    }
    Some(mt.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accept_header_matches_prometheus_3() {
        assert_eq!(
            accept_header(&ScrapeProtocol::DEFAULT),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
    }

    #[test]
    fn accept_header_follows_given_order() {
        let h = accept_header_with_escaping(
            &[ScrapeProtocol::PrometheusText0_0_4, ScrapeProtocol::OpenMetricsText1_0_0],
            EscapingScheme::Underscores,
        );
        assert_eq!(
            h,
            "text/plain;version=0.0.4;q=0.6,\
             application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.5,*/*;q=0.4"
        );
        assert_eq!(accept_header(&[]), "*/*;q=0.6");
    }

    #[test]
    fn protocol_names_round_trip() {
        for p in ScrapeProtocol::ALL {
            assert_eq!(p.as_str().parse::<ScrapeProtocol>(), Ok(p));
        }
        assert!("OpenMetricsText2.0.0".parse::<ScrapeProtocol>().is_err());
    }

    #[test]
    fn content_type_selects_parser() {
        let ok = |ct: &str| parser_for_content_type(Some(ct), None).map(|n| n.format);
        assert_eq!(ok("application/openmetrics-text; version=1.0.0; charset=utf-8"), Ok(Format::OpenMetrics));
        assert_eq!(ok("Application/OpenMetrics-Text;version=0.0.1"), Ok(Format::OpenMetrics));
        assert_eq!(ok("text/plain; version=0.0.4; charset=utf-8"), Ok(Format::PrometheusText));
        assert_eq!(ok("text/plain"), Ok(Format::PrometheusText));
        // Go's mime parser ignores a trailing semicolon.
        assert_eq!(ok("text/plain;"), Ok(Format::PrometheusText));
        assert_eq!(ok("text/plain; charset=\"utf-8\""), Ok(Format::PrometheusText));
    }

    #[test]
    fn missing_or_unknown_needs_fallback() {
        assert_eq!(parser_for_content_type(None, None), Err(ContentTypeError::Missing));
        assert_eq!(parser_for_content_type(Some(""), None), Err(ContentTypeError::Missing));
        assert_eq!(
            parser_for_content_type(Some("application/json"), None),
            Err(ContentTypeError::Unsupported("application/json".into()))
        );
        for bad in ["text", "text/", "text/plain; version", "text/plain; a=b c", "a b/c"] {
            assert_eq!(
                parser_for_content_type(Some(bad), None),
                Err(ContentTypeError::Invalid(bad.into())),
                "{bad}"
            );
        }
        let n = parser_for_content_type(Some("application/json"), Some(Format::PrometheusText)).unwrap();
        assert_eq!(n.format, Format::PrometheusText);
        assert_eq!(n.fallback_reason, Some(ContentTypeError::Unsupported("application/json".into())));
        let n = parser_for_content_type(None, Some(Format::OpenMetrics)).unwrap();
        assert_eq!(n.format, Format::OpenMetrics);
        assert_eq!(n.fallback_reason, Some(ContentTypeError::Missing));
        assert!(matches!(
            parser_for_content_type(
                Some("application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily"),
                Some(Format::PrometheusText)
            ),
            Err(ContentTypeError::Protobuf(_))
        ));
    }
}
