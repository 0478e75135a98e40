//! Just enough HTTP/1.1 for bw's node-fetch: requests with a `Content-Length` body (or none),
//! keep-alive, responses with `Content-Length`. Header parsing is `httparse`'s; this module only
//! frames messages. Not a general server: no chunked request bodies, no pipelining guarantees
//! beyond in-order handling, small size limits.

use std::io::{self, BufRead, Read, Write};

const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 1024 * 1024;
const MAX_HEADERS: usize = 64;

pub struct Request {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub keep_alive: bool,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub struct Response {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Self {
        Self {
            status,
            content_type: "application/json; charset=utf-8".into(),
            body: value.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, content_type: &str, body: &str) -> Self {
        Self { status, content_type: content_type.into(), body: body.as_bytes().to_vec() }
    }
}

/// Read one request. `Ok(None)` when the peer closed the connection between requests.
pub fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let mut head = Vec::new();
    loop {
        let limit = (MAX_HEAD - head.len()) as u64;
        let n = reader.by_ref().take(limit).read_until(b'\n', &mut head)?;
        if n == 0 {
            return if head.is_empty() { Ok(None) } else { Err(invalid("truncated request head")) };
        }
        if head.ends_with(b"\r\n\r\n") || head.ends_with(b"\n\n") {
            break;
        }
        if head == b"\r\n" || head == b"\n" {
            head.clear(); // tolerate a stray empty line between requests (RFC 9112 §2.2)
        } else if head.len() >= MAX_HEAD {
            return Err(invalid("request head too large"));
        }
    }

    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(&head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(invalid("incomplete request head")),
        Err(e) => return Err(invalid(&format!("bad request head: {e}"))),
    }
    let method = parsed.method.unwrap_or_default().to_owned();
    let target = parsed.path.unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let version = parsed.version.unwrap_or(1);
    let headers: Vec<(String, String)> = parsed
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), String::from_utf8_lossy(h.value).into_owned()))
        .collect();

    let mut request = Request { method, path, headers, body: Vec::new(), keep_alive: false };
    let connection = request.header("connection").map(str::to_ascii_lowercase);
    request.keep_alive = match connection.as_deref() {
        Some(c) if c.contains("close") => false,
        Some(c) if c.contains("keep-alive") => true,
        _ => version == 1,
    };
    if request.header("transfer-encoding").is_some() {
        return Err(invalid("chunked request bodies are not supported"));
    }
    if let Some(len) = request.header("content-length") {
        let len: usize = len.trim().parse().map_err(|_| invalid("bad Content-Length"))?;
        if len > MAX_BODY {
            return Err(invalid("request body too large"));
        }
        request.body = vec![0; len];
        reader.read_exact(&mut request.body)?;
    }
    Ok(Some(request))
}

pub fn write_response(writer: &mut impl Write, response: &Response, keep_alive: bool) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         Connection: {}\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    writer.write_all(head.as_bytes())?;
    writer.write_all(&response.body)?;
    writer.flush()
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn reads_keep_alive_requests_with_bodies() {
        let raw = b"POST /identity/connect/token?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\
                    Connection: keep-alive\r\n\r\nhelloGET /api/sync HTTP/1.1\r\nHost: a\r\n\r\n";
        let mut reader = BufReader::new(&raw[..]);
        let first = read_request(&mut reader).unwrap().unwrap();
        assert_eq!((first.method.as_str(), first.path.as_str()), ("POST", "/identity/connect/token"));
        assert_eq!(first.body, b"hello");
        assert!(first.keep_alive);
        let second = read_request(&mut reader).unwrap().unwrap();
        assert_eq!(second.path, "/api/sync");
        assert!(second.body.is_empty());
        assert!(read_request(&mut reader).unwrap().is_none());
    }

    #[test]
    fn honours_connection_close_and_rejects_chunked() {
        let raw = b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
        let req = read_request(&mut BufReader::new(&raw[..])).unwrap().unwrap();
        assert!(!req.keep_alive);
        let raw = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
        assert!(read_request(&mut BufReader::new(&raw[..])).is_err());
    }

    #[test]
    fn writes_content_length_and_type() {
        let mut out = Vec::new();
        write_response(&mut out, &Response::json(200, &serde_json::json!({})), true).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(text.contains("Content-Type: application/json; charset=utf-8\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
    }
}
