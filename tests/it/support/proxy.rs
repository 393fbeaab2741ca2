//! A fault-injecting HTTP/1.1 reverse proxy (std threads) in front of a plain-HTTP registry.
//!
//! * Every request is recorded (`requests()`, `count()`), with the status returned to the client.
//! * Bodies are streamed in both directions (Content-Length or chunked), never buffered whole.
//! * Client connections are kept alive; each request uses a fresh upstream connection.
//! * `Location` headers pointing at the upstream are rewritten to the listener that served them.
//! * Faults are scripted per test with `inject()`; the first matching fault with uses left wins.
//! * A SECOND listener (`secondary_host()`, spelled `localhost:P2` where the primary is
//!   `127.0.0.1:P1`) forwards to the same registry; `Fault::Redirect` / `Fault::UploadToSecondary`
//!   send clients there, and its requests are recorded with `via == Listener::Secondary`, so tests
//!   can check whether credentials leaked across hosts.
//!
//! ```ignore
//! let reg = Registry::start(Mode::open());
//! let proxy = Proxy::start(&reg);
//! proxy.inject(Fault::Status { status: 500, matching: Matcher::new("PUT", "/manifests/"), times: 1 });
//! // … run kiln against proxy.host() …
//! assert_eq!(proxy.count("PUT", "/v2/app/manifests/"), 2);
//! ```

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::http::{self, BodyKind, Head};
use super::referrers_api::{ReferrersApi, is_manifest_put, referrers_target};
use super::registry::Registry;

/// Which request a fault applies to: an optional method (exact, e.g. `"PUT"`) and a substring of
/// the request target (path and query).
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub method: Option<String>,
    pub path_contains: String,
}

impl Matcher {
    pub fn new(method: &str, path_contains: &str) -> Matcher {
        Matcher {
            method: Some(method.to_string()),
            path_contains: path_contains.to_string(),
        }
    }
    /// Any method.
    pub fn path(path_contains: &str) -> Matcher {
        Matcher {
            method: None,
            path_contains: path_contains.to_string(),
        }
    }
    pub fn matches(&self, method: &str, target: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && target.contains(&self.path_contains)
    }
}

/// A scripted misbehaviour. `times` is how many matching requests it affects (`usize::MAX` = all).
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer `status` (with a distribution-style JSON error body) instead of forwarding. The
    /// request body is read and discarded first, so the client sees the status, not a reset.
    Status {
        status: u16,
        matching: Matcher,
        times: usize,
    },
    /// Answer 429 with `Retry-After: <retry_after>` (seconds) instead of forwarding.
    TooManyRequests {
        retry_after: u32,
        matching: Matcher,
        times: usize,
    },
    /// Read `after_bytes` of the request body (or all of it if shorter), then close the connection
    /// without answering. Nothing is forwarded upstream.
    DropConnection {
        after_bytes: u64,
        matching: Matcher,
        times: usize,
    },
    /// Answer `status` with exactly `body` (JSON content type) instead of forwarding: a hostile or broken
    /// registry's words.
    Reply {
        status: u16,
        body: Vec<u8>,
        matching: Matcher,
        times: usize,
    },
    /// Answer `307 Temporary Redirect` to the same path on the secondary listener
    /// (`http://localhost:P2/…`), e.g. for blob GETs.
    Redirect { matching: Matcher, times: usize },
    /// Forward normally, but rewrite the response's `Location` to the secondary listener (e.g. the
    /// upload URL returned by `POST /v2/<name>/blobs/uploads/`), like a registry that sends
    /// uploads to another host.
    UploadToSecondary { matching: Matcher, times: usize },
    /// Read the whole request body, then say nothing for `secs` seconds before closing the connection: a
    /// registry that took the bytes and never answers.
    Hang {
        secs: u64,
        matching: Matcher,
        times: usize,
    },
}

impl Fault {
    fn matcher(&self) -> &Matcher {
        match self {
            Fault::Status { matching, .. }
            | Fault::Reply { matching, .. }
            | Fault::TooManyRequests { matching, .. }
            | Fault::DropConnection { matching, .. }
            | Fault::Redirect { matching, .. }
            | Fault::Hang { matching, .. }
            | Fault::UploadToSecondary { matching, .. } => matching,
        }
    }
    fn times_mut(&mut self) -> &mut usize {
        match self {
            Fault::Status { times, .. }
            | Fault::Reply { times, .. }
            | Fault::TooManyRequests { times, .. }
            | Fault::DropConnection { times, .. }
            | Fault::Redirect { times, .. }
            | Fault::Hang { times, .. }
            | Fault::UploadToSecondary { times, .. } => times,
        }
    }
    fn label(&self) -> String {
        match self {
            Fault::Status { status, .. } => format!("status {status}"),
            Fault::Reply { status, .. } => format!("reply {status}"),
            Fault::TooManyRequests { .. } => "429".into(),
            Fault::DropConnection { after_bytes, .. } => format!("drop after {after_bytes} bytes"),
            Fault::Redirect { .. } => "redirect".into(),
            Fault::UploadToSecondary { .. } => "location to secondary".into(),
            Fault::Hang { secs, .. } => format!("hang {secs} s"),
        }
    }
}

/// How the proxy serves `GET /v2/<name>/tags/list` (set with `Proxy::set_tag_paging`). The full
/// list is fetched from upstream (with the client's `Authorization`) and paged by the proxy, with
/// `Link: </v2/<name>/tags/list?last=X&n=K>; rel="next"` while more remain. `last` is honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagPaging {
    /// Pages of `page` tags whatever `n` the client asks for (a registry that ignores `n`).
    IgnoreN { page: usize },
    /// `n` > `max` is rejected with 400 `PAGINATION_NUMBER_INVALID`; otherwise pages of `n`
    /// (or `default_page` without `n`).
    CapN { max: usize, default_page: usize },
    /// Every page holds every tag and links to a "next" page under a new cursor, forever (a broken or
    /// hostile registry).
    EndlessCursor,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Primary,
    Secondary,
}

/// One request as seen by the proxy.
#[derive(Debug, Clone)]
pub struct ProxyRequest {
    pub via: Listener,
    pub method: String,
    /// Path and query, as sent by the client.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// Whether the request carried an `Authorization` header.
    pub authorization: bool,
    /// Status returned to the client; `None` if the proxy dropped the connection (or upstream failed mid-way).
    pub status: Option<u16>,
    /// The injected fault that handled it, if any (human-readable).
    pub fault: Option<String>,
}

impl ProxyRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

struct Shared {
    upstream: String,
    primary_host: String,
    secondary_host: String,
    faults: Mutex<Vec<Fault>>,
    tag_paging: Mutex<Option<TagPaging>>,
    secondary_auth: Mutex<Option<String>>,
    log: Mutex<Vec<ProxyRequest>>,
    stop: AtomicBool,
    /// Set by `enable_referrers_api`: the proxy plays a registry with the referrers API.
    referrers: Mutex<Option<Arc<ReferrersApi>>>,
}

/// See the module docs. Stops accepting on drop (open client connections end when the client closes).
pub struct Proxy {
    shared: Arc<Shared>,
    ports: [u16; 2],
    threads: Vec<JoinHandle<()>>,
}

impl Proxy {
    /// Proxy in front of `registry`, which must be plain HTTP.
    pub fn start(registry: &Registry) -> Proxy {
        assert!(
            !registry.is_tls(),
            "Proxy forwards to plain-HTTP registries only"
        );
        Proxy::to_upstream(&registry.host())
    }

    /// Proxy in front of any plain-HTTP server at `host:port`.
    pub fn to_upstream(upstream: &str) -> Proxy {
        let l1 = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let l2 = TcpListener::bind("127.0.0.1:0").expect("bind secondary proxy listener");
        let ports = [
            l1.local_addr().unwrap().port(),
            l2.local_addr().unwrap().port(),
        ];
        let shared = Arc::new(Shared {
            upstream: upstream.to_string(),
            primary_host: format!("127.0.0.1:{}", ports[0]),
            secondary_host: format!("localhost:{}", ports[1]),
            faults: Mutex::new(Vec::new()),
            tag_paging: Mutex::new(None),
            secondary_auth: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            referrers: Mutex::new(None),
        });
        let threads = [(l1, Listener::Primary), (l2, Listener::Secondary)]
            .into_iter()
            .map(|(l, via)| {
                let s = shared.clone();
                std::thread::Builder::new()
                    .name(format!("proxy-{via:?}"))
                    .spawn(move || accept_loop(s, l, via))
                    .unwrap()
            })
            .collect();
        Proxy {
            shared,
            ports,
            threads,
        }
    }

    /// `127.0.0.1:P1` — point clients here.
    pub fn host(&self) -> String {
        self.shared.primary_host.clone()
    }
    pub fn url(&self) -> String {
        format!("http://{}", self.host())
    }
    /// `localhost:P2` — the redirect target (a different host string for the same registry).
    pub fn secondary_host(&self) -> String {
        self.shared.secondary_host.clone()
    }

    /// Add a fault (applies after the ones already queued).
    pub fn inject(&self, fault: Fault) {
        self.shared.faults.lock().unwrap().push(fault);
    }
    /// Remove all pending faults.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().unwrap().clear();
    }
    /// Faults that still have uses left.
    pub fn pending_faults(&self) -> Vec<Fault> {
        self.shared.faults.lock().unwrap().clone()
    }
    pub fn set_tag_paging(&self, paging: Option<TagPaging>) {
        *self.shared.tag_paging.lock().unwrap() = paging;
    }
    /// `Authorization` value the secondary listener adds upstream when the client sent none (it is
    /// still recorded as `authorization: false`) — like a pre-signed redirect URL, so a client that
    /// correctly drops credentials on a cross-host redirect still gets its blob from an auth
    /// registry. E.g. `Some(reg.basic_auth())` or `Some(format!("Bearer {}", reg.mint_token(…)))`.
    pub fn set_secondary_auth(&self, auth: Option<String>) {
        *self.shared.secondary_auth.lock().unwrap() = auth;
    }

    /// From now on, answer as a registry with the referrers API does (`support::referrers_api`); returns its
    /// state, to see what it recorded.
    pub fn enable_referrers_api(&self) -> Arc<ReferrersApi> {
        self.shared
            .referrers
            .lock()
            .unwrap()
            .get_or_insert_with(Default::default)
            .clone()
    }

    /// All requests on both listeners, in arrival order of completion of their heads.
    pub fn requests(&self) -> Vec<ProxyRequest> {
        self.shared.log.lock().unwrap().clone()
    }
    pub fn secondary_requests(&self) -> Vec<ProxyRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.via == Listener::Secondary)
            .collect()
    }
    pub fn clear_requests(&self) {
        self.shared.log.lock().unwrap().clear();
    }
    /// Requests (either listener) with this method whose target starts with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.method.eq_ignore_ascii_case(method) && r.target.starts_with(path_prefix))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for p in self.ports {
            let _ = TcpStream::connect(("127.0.0.1", p));
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn accept_loop(s: Arc<Shared>, l: TcpListener, via: Listener) {
    for conn in l.incoming() {
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(conn) = conn else { continue };
        let s = s.clone();
        std::thread::spawn(move || {
            let _ = serve_conn(&s, conn, via);
        });
    }
}

fn take_fault(s: &Shared, via: Listener, method: &str, target: &str) -> Option<Fault> {
    if via != Listener::Primary {
        return None;
    }
    let mut faults = s.faults.lock().unwrap();
    let i = faults
        .iter()
        .position(|f| f.matcher().matches(method, target))?;
    let t = faults[i].times_mut();
    *t = t.saturating_sub(1);
    let f = if *t == 0 {
        faults.remove(i)
    } else {
        faults[i].clone()
    };
    Some(f)
}

fn error_body(code: &str, message: &str) -> Vec<u8> {
    serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]})
        .to_string()
        .into_bytes()
}

/// Handle requests on one client connection until it closes (or we must close it).
fn serve_conn(s: &Shared, conn: TcpStream, via: Listener) -> io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let _ = conn.set_nodelay(true);
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn.try_clone()?;
    let own_host = own_host(s, via).to_string();
    loop {
        let Some(mut head) = http::read_head(&mut reader)? else {
            return Ok(());
        };
        let (method, target, version) = head.request_parts();
        let (method, target) = (method.to_string(), target.to_string());
        let client_close = head.has_token("connection", "close") || version == "HTTP/1.0";
        let expect_continue = head.has_token("expect", "100-continue");
        head.remove("expect");
        let body = head.body_kind(true);
        let mut rec = ProxyRequest {
            via,
            method: method.clone(),
            target: target.clone(),
            headers: head.headers.clone(),
            authorization: head.get("authorization").is_some(),
            status: None,
            fault: None,
        };
        if via == Listener::Secondary && head.get("authorization").is_none() {
            if let Some(a) = s.secondary_auth.lock().unwrap().clone() {
                head.set("Authorization", a);
            }
        }
        let fault = take_fault(s, via, &method, &target);
        rec.fault = fault.as_ref().map(Fault::label);

        // Local answers: drain the body (unless the client is still waiting for 100-continue, in
        // which case it will not send it and we must close), then respond.
        let mut local = |status: u16,
                         headers: Vec<(&str, String)>,
                         body_bytes: Vec<u8>,
                         rec: ProxyRequest|
         -> io::Result<bool> {
            let close = client_close || (expect_continue && body != BodyKind::None);
            if !close {
                http::copy_body(&mut reader, &mut io::sink(), body, None)?;
            }
            let mut rec = rec;
            rec.status = Some(status);
            s.log.lock().unwrap().push(rec);
            http::write_response(&mut writer, status, &headers, &body_bytes, close)?;
            Ok(!close)
        };
        let json = (
            "Content-Type",
            "application/json; charset=utf-8".to_string(),
        );

        let keep_alive = match fault {
            Some(Fault::Status { status, .. }) => local(
                status,
                vec![json],
                error_body("UNKNOWN", &format!("injected status {status}")),
                rec,
            )?,
            Some(Fault::Reply { status, body, .. }) => local(status, vec![json], body, rec)?,
            Some(Fault::TooManyRequests { retry_after, .. }) => local(
                429,
                vec![json, ("Retry-After", retry_after.to_string())],
                error_body("TOOMANYREQUESTS", "injected rate limit"),
                rec,
            )?,
            Some(Fault::Redirect { .. }) => local(
                307,
                vec![("Location", format!("http://{}{}", s.secondary_host, target))],
                Vec::new(),
                rec,
            )?,
            Some(Fault::DropConnection { after_bytes, .. }) => {
                if expect_continue {
                    writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                }
                let _ = http::copy_body(&mut reader, &mut io::sink(), body, Some(after_bytes));
                s.log.lock().unwrap().push(rec);
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::Hang { secs, .. }) => {
                if expect_continue {
                    writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                }
                let _ = http::copy_body(&mut reader, &mut io::sink(), body, None);
                s.log.lock().unwrap().push(rec);
                std::thread::sleep(Duration::from_secs(secs));
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::UploadToSecondary { .. }) => forward(
                s,
                &mut reader,
                &mut writer,
                head,
                rec,
                &s.secondary_host,
                expect_continue,
                client_close,
            )?,
            None if s.referrers.lock().unwrap().is_some()
                && (is_manifest_put(&method, &target)
                    || referrers_target(&method, &target).is_some()) =>
            {
                let api = s.referrers.lock().unwrap().clone().unwrap();
                if let Some((name, digest)) = referrers_target(&method, &target) {
                    let (status, headers, bytes) = api.list(&name, &digest, &target);
                    local(status, headers, bytes, rec)?
                } else {
                    if expect_continue && body != BodyKind::None {
                        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                    }
                    let mut bytes = Vec::new();
                    http::copy_body(&mut reader, &mut bytes, body, None)?;
                    let (status, headers, resp) = api.put_manifest(&s.upstream, &head, &bytes)?;
                    let mut rec = rec;
                    rec.status = Some(status);
                    s.log.lock().unwrap().push(rec);
                    http::write_response(&mut writer, status, &headers, &resp, client_close)?;
                    !client_close
                }
            }
            None => {
                let paging = *s.tag_paging.lock().unwrap();
                match paging {
                    Some(p) if method == "GET" && is_tags_list(&target) => {
                        let (status, headers, bytes) = page_tags(s, &head, &target, p)?;
                        local(status, headers, bytes, rec)?
                    }
                    _ => forward(
                        s,
                        &mut reader,
                        &mut writer,
                        head,
                        rec,
                        &own_host,
                        expect_continue,
                        client_close,
                    )?,
                }
            }
        };
        if !keep_alive {
            graceful_close(&mut reader, &writer);
            return Ok(());
        }
    }
}

/// Forward one request upstream and stream the response back. Returns whether the client
/// connection can be reused.
#[allow(clippy::too_many_arguments)]
fn forward(
    s: &Shared,
    reader: &mut BufReader<TcpStream>,
    writer: &mut TcpStream,
    mut head: Head,
    mut rec: ProxyRequest,
    location_host: &str,
    expect_continue: bool,
    client_close: bool,
) -> io::Result<bool> {
    let body = head.body_kind(true);
    let up = match TcpStream::connect(&s.upstream) {
        Ok(up) => up,
        Err(e) => {
            rec.status = Some(502);
            s.log.lock().unwrap().push(rec);
            http::write_response(
                writer,
                502,
                &[],
                format!("proxy: upstream: {e}").as_bytes(),
                true,
            )?;
            return Ok(false);
        }
    };
    up.set_read_timeout(Some(Duration::from_secs(120)))?;
    head.set("Host", s.upstream.clone());
    head.set("Connection", "close");
    head.remove("keep-alive");
    head.remove("proxy-connection");
    let mut upw = BufWriter::with_capacity(
        64 * 1024,
        WriteFlag {
            inner: up.try_clone()?,
            failed: false,
        },
    );
    head.write_to(&mut upw)?;
    if expect_continue && body != BodyKind::None {
        writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let sent = http::copy_body(reader, &mut upw, body, None).and_then(|_| upw.flush());
    // An upstream that answers early (e.g. 401 to an upload with an expired token) and stops
    // reading makes our body writes fail: relay its answer anyway and close the client connection,
    // whose unread body is now out of sync. A failure reading from the client is just an error.
    let mut client_close = client_close;
    if let Err(e) = sent {
        if !upw.get_ref().failed {
            s.log.lock().unwrap().push(rec);
            return Err(e);
        }
        client_close = true;
    }
    drop(upw);

    let mut upr = BufReader::with_capacity(64 * 1024, up);
    let mut resp = loop {
        let Some(r) = http::read_head(&mut upr)? else {
            s.log.lock().unwrap().push(rec);
            return Err(io::ErrorKind::UnexpectedEof.into());
        };
        if !(100..200).contains(&r.status()) {
            break r;
        }
    };
    let status = resp.status();
    if let Some(loc) = resp.get("location").map(str::to_string) {
        let up_prefix = format!("http://{}", s.upstream);
        if let Some(rest) = loc.strip_prefix(&up_prefix) {
            resp.set("Location", format!("http://{location_host}{rest}"));
        } else if location_host != own_host(s, rec.via) && loc.starts_with('/') {
            resp.set("Location", format!("http://{location_host}{loc}"));
        }
    }
    let resp_body = if rec.method == "HEAD" || status == 204 || status == 304 {
        BodyKind::None
    } else {
        resp.body_kind(false)
    };
    let close = client_close || resp_body == BodyKind::UntilClose;
    resp.remove("connection");
    resp.remove("keep-alive");
    if close {
        resp.set("Connection", "close");
    }
    rec.status = Some(status);
    s.log.lock().unwrap().push(rec);
    let mut w = BufWriter::with_capacity(64 * 1024, &mut *writer);
    resp.write_to(&mut w)?;
    http::copy_body(&mut upr, &mut w, resp_body, None)?;
    w.flush()?;
    Ok(!close)
}

/// Close like Go's server does: send FIN, then discard what the client is still sending for a
/// short while, so closing with unread input does not RST away the response we just sent.
fn graceful_close(reader: &mut BufReader<TcpStream>, writer: &TcpStream) {
    let _ = writer.shutdown(Shutdown::Write);
    let _ = writer.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = io::copy(&mut reader.take(256 << 20), &mut io::sink());
}

/// Remembers whether a write to the upstream failed (vs. a read from the client).
struct WriteFlag {
    inner: TcpStream,
    failed: bool,
}

impl Write for WriteFlag {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let r = self.inner.write(buf);
        self.failed |= r.is_err();
        r
    }
    fn flush(&mut self) -> io::Result<()> {
        let r = self.inner.flush();
        self.failed |= r.is_err();
        r
    }
}

fn own_host(s: &Shared, via: Listener) -> &str {
    match via {
        Listener::Primary => &s.primary_host,
        Listener::Secondary => &s.secondary_host,
    }
}

fn is_tags_list(target: &str) -> bool {
    let path = target.split('?').next().unwrap_or("");
    path.starts_with("/v2/") && path.ends_with("/tags/list") && path.len() > "/v2//tags/list".len()
}

/// Serve one page of `GET /v2/<name>/tags/list` from upstream's full list.
/// A locally generated answer: status, headers, body.
type LocalAnswer = (u16, Vec<(&'static str, String)>, Vec<u8>);

fn page_tags(s: &Shared, head: &Head, target: &str, paging: TagPaging) -> io::Result<LocalAnswer> {
    let (path, query) = http::split_query(target);
    let name = &path["/v2/".len()..path.len() - "/tags/list".len()];
    let n: Option<usize> = query
        .iter()
        .find(|(k, _)| k == "n")
        .and_then(|(_, v)| v.parse().ok());
    let last = query
        .iter()
        .find(|(k, _)| k == "last")
        .map(|(_, v)| v.clone());
    let json = (
        "Content-Type",
        "application/json; charset=utf-8".to_string(),
    );
    let page = match paging {
        TagPaging::EndlessCursor => usize::MAX,
        TagPaging::IgnoreN { page } => page,
        TagPaging::CapN { max, default_page } => match n {
            Some(n) if n > max => {
                return Ok((
                    400,
                    vec![json],
                    error_body("PAGINATION_NUMBER_INVALID", &format!("n must be <= {max}")),
                ));
            }
            Some(n) => n,
            None => default_page,
        },
    }
    .max(1);

    // Fetch the full list from upstream (buffered: tag lists are small).
    let mut up = TcpStream::connect(&s.upstream)?;
    let mut req = Head::new(format!("GET {path} HTTP/1.1"));
    req.add("Host", s.upstream.clone())
        .add("Connection", "close")
        .add("Accept", "application/json");
    if let Some(a) = head.get("authorization") {
        req.add("Authorization", a.to_string());
    }
    req.write_to(&mut up)?;
    let mut upr = BufReader::new(up);
    let resp = http::read_head(&mut upr)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    let mut bytes = Vec::new();
    http::copy_body(&mut upr, &mut bytes, resp.body_kind(false), None)?;
    if resp.status() != 200 {
        let mut hs = vec![json];
        if let Some(w) = resp.get("www-authenticate") {
            hs.push(("WWW-Authenticate", w.to_string()));
        }
        return Ok((resp.status(), hs, bytes));
    }
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let mut tags: Vec<String> = v["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    tags.sort();
    let rest: Vec<String> = tags
        .into_iter()
        .filter(|t| last.as_ref().is_none_or(|l| t > l))
        .collect();
    let this: Vec<String> = rest.iter().take(page).cloned().collect();
    let mut headers = vec![json];
    if paging == TagPaging::EndlessCursor {
        let cursor: u64 = query
            .iter()
            .find(|(k, _)| k == "cursor")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        headers.push((
            "Link",
            format!("</v2/{name}/tags/list?cursor={}>; rel=\"next\"", cursor + 1),
        ));
    } else if rest.len() > page {
        let last = this.last().unwrap();
        headers.push((
            "Link",
            format!("</v2/{name}/tags/list?last={last}&n={page}>; rel=\"next\""),
        ));
    }
    let body = serde_json::json!({"name": name, "tags": this})
        .to_string()
        .into_bytes();
    Ok((200, headers, body))
}
