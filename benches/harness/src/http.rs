//! A minimal blocking HTTP/1.1 client for loopback requests to the servers
//! under test. It is deliberately small (one request per connection,
//! `Connection: close`, identity encoding) so that the client's own cost in
//! a query latency is a TCP connect plus reading the body, the same for
//! every server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL {0:?} (want http://host:port/path)")]
    Url(String),
    #[error("{addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("malformed response: {0}")]
    Malformed(String),
}

/// A parsed `http://host:port/...` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Url, HttpError> {
        let bad = || HttpError::Url(url.to_owned());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = hostport.rsplit_once(':').ok_or_else(bad)?;
        let port = port.parse().map_err(|_| bad())?;
        if host.is_empty() {
            return Err(bad());
        }
        Ok(Url { host: host.to_owned(), port, path: path.to_owned() })
    }
}

/// A response: status code and decoded body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Percent-encodes a query parameter value (RFC 3986 unreserved kept).
pub fn encode_component(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3 / 2);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// `path?k1=v1&k2=v2` with encoded values.
pub fn with_query(path: &str, params: &[(&str, String)]) -> String {
    let mut s = path.to_owned();
    for (i, (k, v)) in params.iter().enumerate() {
        s.push(if i == 0 { '?' } else { '&' });
        s.push_str(&encode_component(k));
        s.push('=');
        s.push_str(&encode_component(v));
    }
    s
}

/// GET `url`, with `timeout` for connect, each read and each write.
pub fn get(url: &str, timeout: Duration) -> Result<Response, HttpError> {
    request("GET", url, timeout)
}

fn request(method: &str, url: &str, timeout: Duration) -> Result<Response, HttpError> {
    let mut stream = open(method, url, timeout)?;
    let addr = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|source| HttpError::Io { addr, source })?;
    parse_response(&raw)
}

/// Connects and sends the request (one connection per request,
/// `Connection: close`, so the body ends where the stream does).
fn open(method: &str, url: &str, timeout: Duration) -> Result<TcpStream, HttpError> {
    let u = Url::parse(url)?;
    let addr_text = format!("{}:{}", u.host, u.port);
    let io = |source| HttpError::Io { addr: addr_text.clone(), source };
    let host = if u.host == "localhost" { "127.0.0.1" } else { u.host.as_str() };
    let addr: SocketAddr =
        format!("{host}:{}", u.port).parse().map_err(|_| HttpError::Url(url.to_owned()))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: ember-bench\r\nAccept: */*\r\n{}Connection: close\r\n\r\n",
        u.path,
        addr_text,
        if method == "GET" { "" } else { "Content-Length: 0\r\n" }
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    Ok(stream)
}

/// A response whose body was read and dropped on the way (only its size
/// kept), unless the status is not 200: then up to [`KEPT_ERROR_BODY`]
/// bytes of it are kept for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drained {
    pub status: u16,
    /// Bytes of the decoded body.
    pub body_bytes: u64,
    /// The body of a non-200 answer, at most [`KEPT_ERROR_BODY`] bytes
    /// (empty for 200).
    pub error_body: Vec<u8>,
}

/// How much of a non-200 body [`get_drained`] keeps.
pub const KEPT_ERROR_BODY: usize = 64 * 1024;

/// GET `url` and read the whole answer without keeping a 200 body: the
/// answer to a large range query can be hundreds of MB, and the harness
/// (and its concurrent load clients) must stay small next to the servers.
pub fn get_drained(url: &str, timeout: Duration) -> Result<Drained, HttpError> {
    let (status, mut body) = get_stream(url, timeout)?;
    let io = |source| HttpError::Io { addr: url.to_owned(), source };
    let mut error_body = Vec::new();
    let mut body_bytes = 0;
    if status != 200 {
        body_bytes =
            (&mut body).take(KEPT_ERROR_BODY as u64).read_to_end(&mut error_body).map_err(io)? as u64;
    }
    body_bytes += std::io::copy(&mut body, &mut std::io::sink()).map_err(io)?;
    Ok(Drained { status, body_bytes, error_body })
}

/// GET `url` and return the status and a reader of the decoded body, read
/// straight from the connection (nothing is buffered beyond 64 KiB).
pub fn get_stream(url: &str, timeout: Duration) -> Result<(u16, Body), HttpError> {
    let stream = open("GET", url, timeout)?;
    let mut inner = BufReader::with_capacity(64 * 1024, stream);
    let mut head = Vec::with_capacity(1024);
    loop {
        let n = inner
            .read_until(b'\n', &mut head)
            .map_err(|source| HttpError::Io { addr: url.to_owned(), source })?;
        if n == 0 {
            return Err(HttpError::Malformed("connection closed inside the header".to_owned()));
        }
        if head.ends_with(b"\r\n\r\n") {
            break;
        }
        if head.len() > 1 << 20 {
            return Err(HttpError::Malformed("header over 1 MiB".to_owned()));
        }
    }
    let h = parse_head(&head[..head.len() - 4])?;
    let mode = if h.chunked {
        Mode::Chunked { left: 0, done: false }
    } else if let Some(n) = h.length {
        Mode::Length(n as u64)
    } else {
        Mode::ToClose
    };
    Ok((h.status, Body { inner, mode }))
}

/// The body of a response being read from its connection.
pub struct Body {
    inner: BufReader<TcpStream>,
    mode: Mode,
}

enum Mode {
    Length(u64),
    Chunked { left: u64, done: bool },
    ToClose,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        read_body(&mut self.inner, &mut self.mode, buf)
    }
}

fn eof(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, what.to_owned())
}

/// One read of a body in `mode` from `inner` (generic for the tests).
fn read_body<R: BufRead>(inner: &mut R, mode: &mut Mode, buf: &mut [u8]) -> std::io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    match mode {
        Mode::ToClose => inner.read(buf),
        Mode::Length(0) => Ok(0),
        Mode::Length(left) => {
            let max = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
            let n = inner.read(&mut buf[..max])?;
            if n == 0 {
                return Err(eof("body shorter than content-length"));
            }
            *left -= n as u64;
            Ok(n)
        }
        Mode::Chunked { done: true, .. } => Ok(0),
        Mode::Chunked { left, done } => {
            if *left == 0 {
                let mut line = Vec::new();
                if inner.read_until(b'\n', &mut line)? == 0 {
                    return Err(eof("chunked body: no size line"));
                }
                let text = std::str::from_utf8(&line).map_err(|_| bad("chunked body: size not UTF-8"))?;
                // Chunk extensions (`;name=value`) may follow the size.
                let size_text = text.split(';').next().unwrap_or_default().trim();
                let size = u64::from_str_radix(size_text, 16).map_err(|_| bad("chunked body: bad size"))?;
                if size == 0 {
                    // Trailers, if any, are not read: the connection closes.
                    *done = true;
                    return Ok(0);
                }
                *left = size;
            }
            let max = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
            let n = inner.read(&mut buf[..max])?;
            if n == 0 {
                return Err(eof("chunked body: truncated chunk"));
            }
            *left -= n as u64;
            if *left == 0 {
                let mut crlf = [0u8; 2];
                inner.read_exact(&mut crlf)?;
                if &crlf != b"\r\n" {
                    return Err(bad("chunked body: missing CRLF after chunk"));
                }
            }
            Ok(n)
        }
    }
}

fn bad(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// Status line and the headers that frame the body.
struct Head {
    status: u16,
    chunked: bool,
    length: Option<usize>,
}

/// Parses a response header (without the final blank line).
fn parse_head(head: &[u8]) -> Result<Head, HttpError> {
    let malformed = |s: &str| HttpError::Malformed(s.to_owned());
    let head = std::str::from_utf8(head).map_err(|_| malformed("header is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split(' ');
    match parts.next() {
        Some(v) if v.starts_with("HTTP/1.") => {}
        _ => return Err(malformed("status line")),
    }
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or_else(|| malformed("status code"))?;
    let (mut chunked, mut length) = (false, None);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| malformed("content-length"))?);
        }
    }
    Ok(Head { status, chunked, length })
}

/// Parses a complete HTTP/1.1 response (status line, headers, body with
/// `Content-Length`, chunked encoding, or read-to-close).
pub fn parse_response(raw: &[u8]) -> Result<Response, HttpError> {
    let malformed = |s: &str| HttpError::Malformed(s.to_owned());
    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| malformed("no header end"))?;
    let Head { status, chunked, length } = parse_head(&raw[..head_end])?;
    let body = &raw[head_end + 4..];
    let body = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        body.get(..n).ok_or_else(|| malformed("body shorter than content-length"))?.to_vec()
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, HttpError> {
    let malformed = |s: &str| HttpError::Malformed(format!("chunked body: {s}"));
    let mut out = Vec::with_capacity(data.len());
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").ok_or_else(|| malformed("no size line"))?;
        let size_text = std::str::from_utf8(&data[..eol]).map_err(|_| malformed("size not UTF-8"))?;
        // Chunk extensions (`;name=value`) are allowed after the size.
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| malformed("bad size"))?;
        data = &data[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or_else(|| malformed("truncated chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or_else(|| malformed("missing CRLF after chunk"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        let u = Url::parse("http://127.0.0.1:9090/api/v1/query?query=up").unwrap();
        assert_eq!(u, Url { host: "127.0.0.1".into(), port: 9090, path: "/api/v1/query?query=up".into() });
        assert_eq!(Url::parse("http://localhost:80").unwrap().path, "/");
        assert!(Url::parse("https://x:1/").is_err());
        assert!(Url::parse("http://x/").is_err());
        assert!(Url::parse("http://:1/").is_err());
    }

    #[test]
    fn query_encoding() {
        let p = with_query("/api/v1/query", &[("query", "sum by (a) (rate(x{p=~\"/a.*\"}[1m]))".into())]);
        assert_eq!(
            p,
            "/api/v1/query?query=sum%20by%20%28a%29%20%28rate%28x%7Bp%3D~%22%2Fa.%2A%22%7D%5B1m%5D%29%29"
        );
        assert_eq!(
            with_query("/p", &[("match[]", "up".into()), ("start", "1.5".into())]),
            "/p?match%5B%5D=up&start=1.5"
        );
    }

    #[test]
    fn content_length_body() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA").unwrap();
        assert_eq!(r, Response { status: 200, body: b"ok".to_vec() });
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok").is_err());
    }

    #[test]
    fn chunked_body() {
        let raw = b"HTTP/1.1 503 Service Unavailable\r\ntransfer-encoding: chunked\r\n\r\n4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n";
        let r = parse_response(raw).unwrap();
        assert_eq!(r.status, 503);
        assert_eq!(r.body, b"Wikipedia ");
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n").is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort").is_err());
    }

    #[test]
    fn read_to_close_and_garbage() {
        let r = parse_response(b"HTTP/1.0 200 OK\r\n\r\nall of it").unwrap();
        assert_eq!(r.body, b"all of it");
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"SMTP 200\r\n\r\n").is_err());
    }

    #[test]
    fn get_against_a_local_listener() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).unwrap();
            let req = String::from_utf8_lossy(&buf[..n]).to_string();
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello").unwrap();
            req
        });
        let r = get(&format!("http://127.0.0.1:{port}/x?y=1"), Duration::from_secs(5)).unwrap();
        assert_eq!(r.body, b"hello");
        let req = server.join().unwrap();
        assert!(req.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{req}");
    }

    fn read_all(body: &[u8], mut mode: Mode) -> std::io::Result<Vec<u8>> {
        let mut inner = std::io::BufReader::with_capacity(3, body);
        let mut out = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            let n = read_body(&mut inner, &mut mode, &mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn streaming_body_modes() {
        let chunked = || Mode::Chunked { left: 0, done: false };
        // Small reads and a small buffer cross every chunk boundary.
        assert_eq!(read_all(b"4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n", chunked()).unwrap(), b"Wikipedia ");
        assert!(read_all(b"4\r\nWiki", chunked()).is_err(), "missing CRLF and end");
        assert!(read_all(b"ZZ\r\n", chunked()).is_err());
        assert!(read_all(b"4\r\nWikiXX0\r\n\r\n", chunked()).is_err());
        assert_eq!(read_all(b"helloEXTRA", Mode::Length(5)).unwrap(), b"hello");
        assert!(read_all(b"hel", Mode::Length(5)).is_err());
        assert_eq!(read_all(b"all of it", Mode::ToClose).unwrap(), b"all of it");
    }

    fn serve_once(answer: Vec<u8>) -> (u16, std::thread::JoinHandle<()>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            s.write_all(&answer).unwrap();
        });
        (port, h)
    }

    #[test]
    fn drained_answers_keep_only_error_bodies() {
        let big = vec![b'x'; 300_000];
        let mut ok =
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n", big.len()).into_bytes();
        ok.extend_from_slice(&big);
        ok.extend_from_slice(b"\r\n0\r\n\r\n");
        let (port, h) = serve_once(ok);
        let d = get_drained(&format!("http://127.0.0.1:{port}/q"), Duration::from_secs(5)).unwrap();
        h.join().unwrap();
        assert_eq!(d, Drained { status: 200, body_bytes: 300_000, error_body: vec![] });

        let err =
            b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Length: 26\r\n\r\n{\"errorType\":\"execution\"}\n"
                .to_vec();
        let (port, h) = serve_once(err);
        let d = get_drained(&format!("http://127.0.0.1:{port}/q"), Duration::from_secs(5)).unwrap();
        h.join().unwrap();
        assert_eq!(d.status, 422);
        assert_eq!(d.error_body, b"{\"errorType\":\"execution\"}\n");
        assert_eq!(d.body_bytes, 26);
    }
}
