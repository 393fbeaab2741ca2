//! HTTP exchanges with one registry: scheme choice (ping), auth header, retries, redirects, logging.
//!
//! Scheme: HTTPS with verified TLS by default. Loopback hosts are asked over plain HTTP first, then HTTPS
//! (verified) when they answer that they expect TLS; hosts in `insecure` get HTTPS first and plain HTTP on a
//! transport failure. Only `insecure` hosts accept unverified certificates.
//! Redirects are followed by hand (GET/HEAD only) and `Authorization` is attached only when the URL's origin is
//! the registry's own: never to storage backends, token realms (they get their own), or cross-host upload URLs.
//! Timeouts: `connect_timeout`; for requests without a streamed body, `read_timeout` bounds waiting for the
//! headers and every single body read; streamed uploads rely on `TCP_USER_TIMEOUT` (unacknowledged data) and
//! keepalive instead of a whole-request deadline.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use reqwest::Method;
use reqwest::blocking::{Client as Http, Response};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::auth::AuthState;
use super::errors::{connection_error, is_retryable, is_retryable_status, protocol_error};
use super::redact::{redact, redact_header};
use super::retry::parse_retry_after;
use super::{ClientOptions, credentials::CredentialEnv};
use crate::error::{Error, Result};

const MAX_REDIRECTS: usize = 10;

/// A request body that can be produced again for a retry (a file is reopened, never held in memory).
#[derive(Clone, Debug)]
pub(crate) enum Body {
    Empty,
    /// Shared with the request being sent rather than copied for it: upload chunks are 4 MiB, and a copy per
    /// `PATCH` was a fresh 4 MiB allocation (and its page faults) per chunk.
    Bytes(Arc<Vec<u8>>),
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
        /// Told the file position reached as the body is read (upload progress bars).
        progress: Option<ReadProgress>,
    },
}

/// A callback with the absolute file offset read so far (a retry starts again from the chunk's offset).
#[derive(Clone)]
pub(crate) struct ReadProgress(pub std::sync::Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for ReadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadProgress")
    }
}

/// A file body up to this size is read whole and sent as one frame. reqwest's blocking client pumps a reader
/// through its runtime in 8 KiB frames, a hand-off between threads and a `write` each; the layers of a split
/// directory are mostly a few hundred KiB, so a cold push of `small` (16 blobs) sent ~850 frames. A bigger
/// file is still read as it is sent: memory stays at most this much per upload thread.
const WHOLE_BODY: u64 = 1 << 20;

/// A reader reporting its position to a [`ReadProgress`].
struct CountingReader<R> {
    inner: R,
    pos: u64,
    progress: ReadProgress,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        (self.progress.0)(self.pos);
        Ok(n)
    }
}

/// A body's bytes, as `bytes::Bytes` can own them.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Body {
    /// A body of these bytes.
    pub fn bytes(b: Vec<u8>) -> Self {
        Body::Bytes(Arc::new(b))
    }

    fn make(&self) -> Result<Option<reqwest::blocking::Body>> {
        Ok(match self {
            Body::Empty => None,
            Body::Bytes(b) => Some(bytes::Bytes::from_owner(Shared(b.clone())).into()),
            Body::File {
                path,
                offset,
                len,
                progress,
            } => {
                let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                f.seek(SeekFrom::Start(*offset))
                    .map_err(|e| Error::io(path, e))?;
                if *len <= WHOLE_BODY {
                    let mut buf = Vec::with_capacity(*len as usize);
                    (&mut f)
                        .take(*len)
                        .read_to_end(&mut buf)
                        .map_err(|e| Error::io(path, e))?;
                    if let Some(p) = progress {
                        (p.0)(*offset + buf.len() as u64);
                    }
                    return Ok(Some(buf.into()));
                }
                let body = f.take(*len);
                Some(match progress {
                    Some(p) => {
                        (p.0)(*offset);
                        reqwest::blocking::Body::sized(
                            CountingReader {
                                inner: body,
                                pos: *offset,
                                progress: p.clone(),
                            },
                            *len,
                        )
                    }
                    None => reqwest::blocking::Body::sized(body, *len),
                })
            }
        })
    }
}

pub(crate) struct Request {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Body,
    /// Token scopes this request needs (`repository:NAME:pull,push`).
    pub scopes: Vec<String>,
    /// Whether the transport may retry it (false for steps of an upload session: the session is retried whole).
    pub retry: bool,
}

impl Request {
    pub fn new(method: Method, url: Url, scopes: &[String]) -> Self {
        Request {
            method,
            url,
            headers: HeaderMap::new(),
            body: Body::Empty,
            scopes: scopes.to_vec(),
            retry: true,
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub fn body(mut self, body: Body) -> Self {
        self.body = body;
        self
    }

    pub fn no_retry(mut self) -> Self {
        self.retry = false;
        self
    }
}

/// How a request is secured (see [`Transport::tls_choice`]).
pub(super) enum TlsChoice {
    Plain,
    Verified { accept_invalid: bool },
}

/// One registry as reached: its base URL (scheme decided by the ping) and its auth state.
pub(crate) struct Endpoint {
    pub registry: String,
    pub base: Url,
    pub insecure_tls: bool,
    pub auth: Mutex<AuthState>,
}

pub(crate) struct Transport {
    verified: OnceLock<Http>,
    unverified: OnceLock<Http>,
    /// For `http://` URLs only (loopback or `--insecure-registry`): it never loads the system's CA certificates.
    plain: OnceLock<Http>,
    /// `--ca-file`'s PEM bundle.
    ca: Option<Vec<u8>>,
    pub opts: ClientOptions,
    pub creds: CredentialEnv,
    endpoints: Mutex<HashMap<String, Arc<Endpoint>>>,
    /// Serializes pings so parallel first requests do not each probe the registry.
    ping_lock: Mutex<()>,
    pub requests: AtomicU64,
}

pub(crate) fn origin(u: &Url) -> (String, Option<String>, Option<u16>) {
    (
        u.scheme().to_string(),
        u.host_str().map(str::to_ascii_lowercase),
        u.port_or_known_default(),
    )
}

pub(crate) fn is_loopback(host_port: &str) -> bool {
    let host = match host_port.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host_port
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(host_port),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

impl Transport {
    pub fn new(opts: ClientOptions, creds: CredentialEnv) -> Result<Self> {
        // reqwest is built without a bundled crypto provider (`rustls-no-provider`): ring is ours, installed once
        // per process (a second install, e.g. by a second Transport, is a harmless no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        // Read the CA file now so a bad one is reported before anything else happens.
        let ca = match &opts.ca_file {
            Some(ca) => {
                let pem = std::fs::read(ca).map_err(|e| Error::io(ca, e))?;
                reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| Error::input(ca, format!("not a PEM certificate bundle: {e}")))?;
                Some(pem)
            }
            None => None,
        };
        Ok(Transport {
            verified: OnceLock::new(),
            unverified: OnceLock::new(),
            plain: OnceLock::new(),
            ca,
            opts,
            creds,
            endpoints: Mutex::new(HashMap::new()),
            ping_lock: Mutex::new(()),
            requests: AtomicU64::new(0),
        })
    }

    /// The HTTP client, built on first use: building one loads and parses the system CA bundle; a run that never
    /// needs the unverified client never pays for it.
    fn http(&self, accept_invalid: bool) -> Result<&Http> {
        let cell = if accept_invalid {
            &self.unverified
        } else {
            &self.verified
        };
        if let Some(c) = cell.get() {
            return Ok(c);
        }
        let mut b = self.builder().danger_accept_invalid_certs(accept_invalid);
        if let Some(certs) = self.extra_certs() {
            b = b.tls_certs_merge(certs);
        }
        let c = b
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(cell.get_or_init(|| c))
    }

    /// `--ca-file`'s certificates, trusted beside the system's.
    pub(super) fn extra_certs(&self) -> Option<Vec<reqwest::Certificate>> {
        let pem = self.ca.as_ref()?;
        Some(reqwest::Certificate::from_pem_bundle(pem).expect("checked in Transport::new"))
    }

    /// The client for plain-HTTP URLs. Loading the system's CA certificates (a bundle and a directory of a few
    /// hundred files) was most of a loopback push's client setup; this one has no roots at all, so a TLS
    /// handshake through it could never succeed (and `client_for` never gives it an `https://` URL).
    fn plain(&self) -> Result<&Http> {
        if let Some(c) = self.plain.get() {
            return Ok(c);
        }
        let c = self
            .builder()
            .tls_backend_preconfigured(Self::no_roots_tls()?)
            .build()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))?;
        Ok(self.plain.get_or_init(|| c))
    }

    /// A TLS configuration trusting nothing, for clients that only ever see `http://` URLs.
    pub(super) fn no_roots_tls() -> Result<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Usage(format!("cannot set up the HTTP client: {e}")))?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth())
    }

    fn builder(&self) -> reqwest::blocking::ClientBuilder {
        Http::builder()
            .user_agent(self.opts.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(None)
            .connect_timeout(self.opts.connect_timeout)
            .tcp_keepalive(std::time::Duration::from_secs(30))
            .tcp_user_timeout(self.opts.read_timeout)
    }

    /// Whether `host[:port]` is in the `insecure` list (by `host:port` or by host alone).
    pub fn is_insecure(&self, host_port: &str) -> bool {
        let host = host_port
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(host_port);
        self.opts
            .insecure
            .iter()
            .any(|i| i.eq_ignore_ascii_case(host_port) || i.eq_ignore_ascii_case(host))
    }

    /// How a request to `url` is secured: plain HTTP (loopback or `--insecure-registry`, decided by the ping),
    /// else TLS, unverified only for an insecure registry.
    pub(super) fn tls_choice(&self, url: &Url, ep: &Endpoint) -> TlsChoice {
        if url.scheme() == "http" {
            return TlsChoice::Plain;
        }
        let hp = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        TlsChoice::Verified {
            accept_invalid: (ep.insecure_tls && origin(url) == origin(&ep.base))
                || self.is_insecure(&hp),
        }
    }

    fn client_for(&self, url: &Url, ep: &Endpoint) -> Result<&Http> {
        match self.tls_choice(url, ep) {
            TlsChoice::Plain => self.plain(),
            TlsChoice::Verified { accept_invalid } => self.http(accept_invalid),
        }
    }

    /// The endpoint for `registry`, pinging `/v2/` the first time.
    pub fn endpoint(&self, registry: &str) -> Result<Arc<Endpoint>> {
        let cached = || {
            self.endpoints
                .lock()
                .expect("endpoints lock")
                .get(registry)
                .cloned()
        };
        if let Some(ep) = cached() {
            return Ok(ep);
        }
        let _ping = self.ping_lock.lock().expect("ping lock");
        if let Some(ep) = cached() {
            return Ok(ep);
        }
        let ep = Arc::new(self.ping(registry)?);
        Ok(self
            .endpoints
            .lock()
            .expect("endpoints lock")
            .entry(registry.to_string())
            .or_insert(ep)
            .clone())
    }

    /// Send with auth, 401 re-auth (once), retries (when `req.retry`) and redirects. Any other status is returned
    /// for the caller to judge; a final 401 is an error naming the credentials tried.
    pub fn send(&self, ep: &Endpoint, req: &Request) -> Result<Response> {
        let policy = &self.opts.retry;
        let mut retry = 0;
        let mut reauthed = false;
        loop {
            let auth = self.authorization(ep, &req.scopes)?;
            let resp = match self.send_following(ep, req, auth.as_deref()) {
                Ok(r) => r,
                Err(e) if req.retry && is_retryable(&e) && retry + 1 < policy.max_attempts => {
                    self.log_retry(req, &e.to_string(), retry);
                    std::thread::sleep(policy.backoff(retry));
                    retry += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = resp.status().as_u16();
            if status == 401 {
                if !reauthed && self.reauth(ep, &req.scopes, resp.headers())? {
                    reauthed = true;
                    continue;
                }
                return Err(self.unauthorized(ep, req, resp));
            }
            if req.retry && is_retryable_status(status) && retry + 1 < policy.max_attempts {
                let after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, SystemTime::now()));
                self.log_retry(req, &format!("HTTP {status}"), retry);
                drop(resp);
                std::thread::sleep(policy.delay(retry, after));
                retry += 1;
                continue;
            }
            return Ok(resp);
        }
    }

    fn log_retry(&self, req: &Request, why: &str, retry: u32) {
        if self.opts.verbose > 0 {
            eprintln!(
                "kiln: {} {}: {why}; retrying ({})",
                req.method,
                redact(&req.url),
                retry + 1
            );
        }
    }

    /// One attempt, following redirects for GET/HEAD; `Authorization` only on the registry's own origin.
    pub fn send_following(
        &self,
        ep: &Endpoint,
        req: &Request,
        auth: Option<&str>,
    ) -> Result<Response> {
        let mut url = req.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let same_origin = origin(&url) == origin(&ep.base);
            let mut rb = self
                .client_for(&url, ep)?
                .request(req.method.clone(), url.clone());
            rb = rb.headers(req.headers.clone());
            if let (true, Some(a)) = (same_origin, auth) {
                rb = rb.header(reqwest::header::AUTHORIZATION, a);
            }
            match &req.body {
                Body::File { .. } => {}
                _ => rb = rb.timeout(self.opts.read_timeout),
            }
            if let Some(b) = req.body.make()? {
                rb = rb.body(b);
            }
            let resp = self.execute(&req.method, &url, rb)?;
            let follow =
                matches!(req.method, Method::GET | Method::HEAD) && resp.status().is_redirection();
            let location = resp
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok());
            match (follow, location) {
                (true, Some(loc)) => {
                    url = url.join(loc).map_err(|e| {
                        protocol_error(
                            req.method.as_str(),
                            &url,
                            None,
                            format!("bad redirect: {e}"),
                        )
                    })?;
                }
                _ => return Ok(resp),
            }
        }
        Err(protocol_error(
            req.method.as_str(),
            &req.url,
            None,
            "too many redirects",
        ))
    }

    /// Send one built request, counting and logging it.
    pub fn execute(
        &self,
        method: &Method,
        url: &Url,
        rb: reqwest::blocking::RequestBuilder,
    ) -> Result<Response> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let start = Instant::now();
        let verbose = self.opts.verbose;
        let (client, req) = rb.build_split();
        let req = req.map_err(|e| connection_error(method.as_str(), url, &e))?;
        if verbose > 1 {
            for (k, v) in req.headers() {
                eprintln!(
                    "kiln:   > {k}: {}",
                    redact_header(k.as_str(), v.to_str().unwrap_or("<binary>"))
                );
            }
        }
        let res = client.execute(req);
        let ms = start.elapsed().as_millis();
        match res {
            Ok(resp) => {
                if verbose > 0 {
                    eprintln!(
                        "kiln: {method} {} -> {} ({ms} ms)",
                        redact(url),
                        resp.status().as_u16()
                    );
                }
                if verbose > 1 {
                    for (k, v) in resp.headers() {
                        eprintln!(
                            "kiln:   < {k}: {}",
                            redact_header(k.as_str(), v.to_str().unwrap_or("<binary>"))
                        );
                    }
                }
                Ok(resp)
            }
            Err(e) => {
                let err = connection_error(method.as_str(), url, &e);
                if verbose > 0 {
                    eprintln!("kiln: {err} ({ms} ms)");
                }
                Err(err)
            }
        }
    }
}

/// Read at most `max` bytes of a response body (for error messages and small documents).
pub(crate) fn read_limited(resp: Response, max: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = resp.take(max).read_to_end(&mut buf);
    buf
}
