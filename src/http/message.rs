//! One HTTP/1.x request head read with httparse, and the responses written back. Strict:
//! anything that is not a well-formed HTTP/1.0 or 1.1 request head for an origin-form target
//! is refused with 400, or 431 when it is too big.

use std::fmt::Write as _;

/// Headers read at most; more is 431.
pub const MAX_HEADERS: usize = 32;

/// A request head, read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target's path, without its query.
    pub path: String,
    pub query: Option<String>,
}

impl Request {
    /// `HEAD` gets the response of `GET` without its body (the server drops it).
    pub fn is_head(&self) -> bool {
        self.method == "HEAD"
    }

    /// For a read-only resource: `None` for GET and HEAD, else the 405 to answer.
    pub fn read_only(&self) -> Option<Response> {
        match self.method.as_str() {
            "GET" | "HEAD" => None,
            _ => Some(Response::method_not_allowed("GET, HEAD")),
        }
    }
}

/// What the bytes read so far amount to.
#[derive(Debug, PartialEq)]
pub enum Parse {
    /// More is needed.
    Incomplete,
    Request(Request),
    /// Refused: answer this and close.
    Reject(Response),
}

/// Parses a request head from `buf`. `full`: no more bytes will be read (the size limit is
/// reached), so an incomplete head is too large.
pub fn parse(buf: &[u8], full: bool) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) if full => Parse::Reject(Response::too_large()),
        Ok(httparse::Status::Partial) => Parse::Incomplete,
        Err(httparse::Error::TooManyHeaders) => Parse::Reject(Response::too_large()),
        Err(e) => Parse::Reject(Response::bad_request(&e.to_string())),
        Ok(httparse::Status::Complete(_)) => validate(&req),
    }
}

fn validate(req: &httparse::Request) -> Parse {
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Parse::Reject(Response::bad_request("incomplete request line"));
    };
    if !target.starts_with('/') {
        return Parse::Reject(Response::bad_request("the target must be a path"));
    }
    let hosts = req.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("host")).count();
    // RFC 9112 §3.2: an HTTP/1.1 request has exactly one Host header.
    if (version == 1 && hosts != 1) || hosts > 1 {
        return Parse::Reject(Response::bad_request("exactly one Host header is required"));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (target, None),
    };
    Parse::Request(Request { method: method.to_string(), path: path.to_string(), query })
}

/// A response; always sent with `Connection: close`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

pub const TEXT: &str = "text/plain; charset=utf-8";
pub const JSON: &str = "application/json";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response { status, content_type, headers: Vec::new(), body: body.into() }
    }

    pub fn text(status: u16, body: &str) -> Response {
        Response::new(status, TEXT, format!("{body}\n"))
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    pub fn not_found() -> Response {
        Response::text(404, "not found")
    }

    pub fn method_not_allowed(allow: &str) -> Response {
        Response::text(405, "method not allowed").with_header("Allow", allow)
    }

    pub fn bad_request(why: &str) -> Response {
        Response::text(400, &format!("bad request: {why}"))
    }

    pub fn too_large() -> Response {
        Response::text(431, "request head too large")
    }

    /// The bytes on the wire; without the body for a HEAD request.
    pub fn to_bytes(&self, head: bool) -> Vec<u8> {
        let mut s = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        for (name, value) in &self.headers {
            // Values are ours, but a stray line break must never split the head.
            let value: String = value.chars().filter(|c| !c.is_control()).collect();
            let _ = write!(s, "{name}: {value}\r\n");
        }
        s.push_str("\r\n");
        let mut bytes = s.into_bytes();
        if !head {
            bytes.extend_from_slice(&self.body);
        }
        bytes
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}
