//! A small HTTP/1.1 server-side codec over a `TcpStream`.
//!
//! Owns reading one request (request line, headers, a `Content-Length` or chunked body) and
//! writing one answer, always with `Connection: close`. It exists because faults need control that
//! an HTTP library does not give: closing a connection without any answer, or sending a
//! `Content-Length` longer than the body. It does not know about the console API.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::SystemTime;

/// Largest header block accepted.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest body accepted (a 1,000-IOC upload is about 1 MB).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// One parsed request.
#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    /// The request target as sent: path and query, not decoded.
    pub target: String,
    /// The path, percent-decoded, without the query.
    pub path: String,
    /// Decoded query parameters; a repeated key has its values joined with commas.
    pub query: BTreeMap<String, String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer closed or went silent before sending a request: nothing to answer.
    Closed,
    /// The bytes are not an HTTP request this codec accepts: answer with this status.
    Bad(u16, String),
}

impl From<io::Error> for ReadError {
    fn from(_: io::Error) -> Self {
        ReadError::Closed
    }
}

/// Reads one request from the stream.
pub(crate) fn read_request(stream: &TcpStream) -> Result<Request, ReadError> {
    let mut reader = BufReader::new(stream);
    let mut header_bytes = 0usize;
    let mut line = String::new();
    // Tolerate blank lines before the request line, as RFC 9112 §2.2 allows.
    loop {
        line.clear();
        let n = read_line(&mut reader, &mut line, &mut header_bytes)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400, "malformed request line".to_string()));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad(
            505,
            "HTTP version not supported".to_string(),
        ));
    }
    let method = method.to_string();
    let target = target.to_string();

    let mut headers = Vec::new();
    loop {
        line.clear();
        let n = read_line(&mut reader, &mut line, &mut header_bytes)?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        let trimmed = line.trim_end_matches(['\r', '\n']);
        if trimmed.is_empty() {
            break;
        }
        let Some((name, value)) = trimmed.split_once(':') else {
            return Err(ReadError::Bad(400, "malformed header line".to_string()));
        };
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }

    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if find("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let mut writer = stream;
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let body =
        if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            read_chunked(&mut reader)?
        } else if let Some(length) = find("content-length") {
            let length: usize = length
                .parse()
                .map_err(|_| ReadError::Bad(400, "invalid Content-Length".to_string()))?;
            if length > MAX_BODY_BYTES {
                return Err(ReadError::Bad(413, "request body too large".to_string()));
            }
            let mut body = vec![0u8; length];
            reader.read_exact(&mut body)?;
            body
        } else {
            Vec::new()
        };

    let (raw_path, raw_query) = split_target(&target);
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    if let Some(raw_query) = raw_query {
        for (key, value) in url::form_urlencoded::parse(raw_query.as_bytes()) {
            query
                .entry(key.into_owned())
                .and_modify(|existing| {
                    existing.push(',');
                    existing.push_str(&value);
                })
                .or_insert_with(|| value.into_owned());
        }
    }
    let path = percent_decode(raw_path);
    Ok(Request {
        method,
        path,
        target,
        query,
        headers,
        body,
    })
}

fn read_line(
    reader: &mut BufReader<&TcpStream>,
    line: &mut String,
    total: &mut usize,
) -> Result<usize, ReadError> {
    let mut bytes = Vec::new();
    let n = reader
        .by_ref()
        .take((MAX_HEADER_BYTES - *total + 1) as u64)
        .read_until(b'\n', &mut bytes)?;
    *total += n;
    if *total > MAX_HEADER_BYTES {
        return Err(ReadError::Bad(431, "request header too large".to_string()));
    }
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(n)
}

fn read_chunked(reader: &mut BufReader<&TcpStream>) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Bad(400, "invalid chunk size".to_string()))?;
        if size == 0 {
            // Trailer section ends with an empty line.
            loop {
                let mut trailer = String::new();
                let n = reader.read_line(&mut trailer)?;
                if n == 0 || trailer.trim().is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > MAX_BODY_BYTES {
            return Err(ReadError::Bad(413, "request body too large".to_string()));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// Splits an origin-form or absolute-form target into path and query.
fn split_target(target: &str) -> (&str, Option<&str>) {
    let without_scheme = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
        .map(|rest| rest.find('/').map_or("/", |i| &rest[i..]))
        .unwrap_or(target);
    let without_fragment = without_scheme.split('#').next().unwrap_or_default();
    match without_fragment.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (without_fragment, None),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
        {
            out.push(high * 16 + low);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// One answer to write.
#[derive(Debug, Clone)]
pub(crate) struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub retry_after: Option<String>,
}

impl Response {
    pub(crate) fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: body.to_string().into_bytes(),
            retry_after: None,
        }
    }
}

/// Writes the answer. With `truncate`, only the first half of the body is sent although the
/// `Content-Length` announces all of it.
pub(crate) fn write_response(
    stream: &TcpStream,
    response: &Response,
    truncate: bool,
) -> io::Result<()> {
    let mut headers = vec![
        ("Content-Type", response.content_type.to_string()),
        ("Content-Length", response.body.len().to_string()),
        ("Date", httpdate::fmt_http_date(SystemTime::now())),
        ("Connection", "close".to_string()),
    ];
    if let Some(retry_after) = &response.retry_after {
        headers.push(("Retry-After", retry_after.clone()));
    }
    let body = if truncate {
        &response.body[..response.body.len() / 2]
    } else {
        &response.body[..]
    };
    write_message(stream, response.status, &headers, body)
}

/// Writes a status line, exactly `headers` (nothing added: a caller that lies in
/// `Content-Length` is heard) and `body`.
pub(crate) fn write_message(
    mut stream: &TcpStream,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (name, value) in headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}

/// The reason phrase of a status.
pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_and_decoding() {
        assert_eq!(split_target("/a/b?x=1"), ("/a/b", Some("x=1")));
        assert_eq!(split_target("http://h:1/a?x"), ("/a", Some("x")));
        assert_eq!(split_target("/a#frag"), ("/a", None));
        assert_eq!(
            percent_decode("/hashes/ab%2Fc/verdict"),
            "/hashes/ab/c/verdict"
        );
        assert_eq!(percent_decode("/bad%2"), "/bad%2");
        assert_eq!(percent_decode("/end%"), "/end%");
    }
}
