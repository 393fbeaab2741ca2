//! Minimal HTTP/1.1 framing shared by the fault proxy and the token server: read a message head,
//! stream a body (Content-Length, chunked, or until close) without buffering it.

use std::io::{self, BufRead, Read, Write};

/// A request or response head: the start line and the header fields in order.
#[derive(Debug, Clone)]
pub struct Head {
    /// `GET /v2/ HTTP/1.1` or `HTTP/1.1 200 OK`.
    pub start: String,
    pub headers: Vec<(String, String)>,
}

impl Head {
    pub fn new(start: impl Into<String>) -> Head {
        Head {
            start: start.into(),
            headers: Vec::new(),
        }
    }

    /// First value of header `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .any(|(_, v)| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.headers.push((name.to_string(), value.into()));
    }

    pub fn add(&mut self, name: &str, value: impl Into<String>) -> &mut Head {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// Request line parts: method, target, version.
    pub fn request_parts(&self) -> (&str, &str, &str) {
        let mut it = self.start.splitn(3, ' ');
        (
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
            it.next().unwrap_or(""),
        )
    }

    /// Status code of a response head (0 if unparsable).
    pub fn status(&self) -> u16 {
        self.start
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }

    pub fn write_to(&self, w: &mut impl Write) -> io::Result<()> {
        let mut s = String::with_capacity(256);
        s.push_str(&self.start);
        s.push_str("\r\n");
        for (k, v) in &self.headers {
            s.push_str(k);
            s.push_str(": ");
            s.push_str(v);
            s.push_str("\r\n");
        }
        s.push_str("\r\n");
        w.write_all(s.as_bytes())
    }

    /// How the body of this message is framed. `is_request` selects the request rule (no framing
    /// header = no body) over the response rule (no framing header = read until close).
    pub fn body_kind(&self, is_request: bool) -> BodyKind {
        if self.has_token("transfer-encoding", "chunked") {
            BodyKind::Chunked
        } else if let Some(n) = self
            .get("content-length")
            .and_then(|v| v.trim().parse().ok())
        {
            if n == 0 {
                BodyKind::None
            } else {
                BodyKind::Length(n)
            }
        } else if is_request {
            BodyKind::None
        } else {
            BodyKind::UntilClose
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn read_line_limited(r: &mut impl BufRead, out: &mut String) -> io::Result<usize> {
    let n = r.take(64 * 1024).read_line(out)?;
    if n > 0 && !out.ends_with('\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "header line too long or truncated",
        ));
    }
    Ok(n)
}

/// Read a message head. `Ok(None)` on a clean EOF before the first byte (keep-alive peer went away).
pub fn read_head(r: &mut impl BufRead) -> io::Result<Option<Head>> {
    let mut line = String::new();
    // Tolerate stray empty lines between pipelined messages.
    loop {
        line.clear();
        if read_line_limited(r, &mut line)? == 0 {
            return Ok(None);
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut head = Head::new(line.trim_end());
    loop {
        line.clear();
        if read_line_limited(r, &mut line)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            return Ok(Some(head));
        }
        if let Some((k, v)) = l.split_once(':') {
            head.headers
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
}

/// Copy exactly `n` bytes, failing with `UnexpectedEof` if the reader ends early.
fn copy_exact(r: &mut impl BufRead, w: &mut impl Write, n: u64) -> io::Result<u64> {
    let copied = io::copy(&mut r.take(n), w)?;
    if copied != n {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(copied)
}

/// Stream a body of the given kind from `r` to `w`, re-emitting chunked framing as-is.
/// With `limit`, stop after that many payload bytes (returns early, body incomplete).
/// Returns the number of payload bytes copied.
pub fn copy_body(
    r: &mut impl BufRead,
    w: &mut impl Write,
    kind: BodyKind,
    limit: Option<u64>,
) -> io::Result<u64> {
    let cap = |n: u64, done: u64| limit.map_or(n, |l| n.min(l.saturating_sub(done)));
    match kind {
        BodyKind::None => Ok(0),
        BodyKind::Length(n) => copy_exact(r, w, cap(n, 0)),
        BodyKind::UntilClose => io::copy(&mut r.take(cap(u64::MAX, 0)), w),
        BodyKind::Chunked => {
            let mut total = 0u64;
            let mut line = String::new();
            loop {
                line.clear();
                if read_line_limited(r, &mut line)? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let size_str = line.trim_end().split(';').next().unwrap_or("").trim();
                let size = u64::from_str_radix(size_str, 16).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad chunk size {line:?}"),
                    )
                })?;
                if let Some(l) = limit {
                    if total + size > l {
                        // Partial chunk: forward nothing of the framing, just consume the bytes.
                        total += copy_exact(r, &mut io::sink(), l - total)?;
                        return Ok(total);
                    }
                }
                w.write_all(line.as_bytes())?;
                if size == 0 {
                    loop {
                        line.clear();
                        if read_line_limited(r, &mut line)? == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        w.write_all(line.as_bytes())?;
                        if line.trim().is_empty() {
                            return Ok(total);
                        }
                    }
                }
                total += copy_exact(r, w, size)?;
                line.clear();
                read_line_limited(r, &mut line)?;
                w.write_all(b"\r\n")?;
            }
        }
    }
}

/// Write a complete small response with a `Content-Length` body.
pub fn write_response(
    w: &mut impl Write,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut head = Head::new(format!("HTTP/1.1 {status} {}", reason(status)));
    for (k, v) in headers {
        head.add(k, v.clone());
    }
    head.set("Content-Length", body.len().to_string());
    if close {
        head.set("Connection", "close");
    }
    head.write_to(w)?;
    w.write_all(body)?;
    w.flush()
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        307 => "Temporary Redirect",
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
        _ => "Status",
    }
}

/// Decode `application/x-www-form-urlencoded` / query components.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len()
                && b[i + 1].is_ascii_hexdigit()
                && b[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Split `path?query` and decode the query into pairs (repeated keys kept in order).
pub fn split_query(target: &str) -> (&str, Vec<(String, String)>) {
    match target.split_once('?') {
        None => (target, Vec::new()),
        Some((p, q)) => (
            p,
            q.split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        ),
    }
}
