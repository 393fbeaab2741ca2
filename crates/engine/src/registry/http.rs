//! The bottom layer of the registry client: sending one request (following redirects) and logging it. No auth
//! state, no retries: `auth` and `transport` build on this.
//!
//! Scheme: HTTPS with verified TLS by default. Loopback hosts are asked over plain HTTP first, then HTTPS
//! (verified) when they answer that they expect TLS; hosts in `insecure` get HTTPS first and plain HTTP on a
//! transport failure (see `ping`). Only `insecure` hosts accept unverified certificates.
//! Redirects are followed by hand (GET/HEAD only: a blob `GET` may be answered with a redirect to a storage
//! backend, OCI distribution spec, "Pulling blobs") and `Authorization` is attached only when the URL's origin
//! is the registry's own: never to storage backends (pre-signed URLs carry their own signature, and S3 rejects a
//! request with both), token realms (they get their own), or cross-host upload URLs.
//! Timeouts (`--timeout`, [`ClientOptions::read_timeout`]): `connect_timeout`; without a file body, `read_timeout`
//! bounds the wait for the headers and each body read; a file body goes through `files`, bounded by progress (see
//! `watch`: a slow moving upload goes on, a registry that took the body and never answers is given up on).
//! `TCP_USER_TIMEOUT` and keepalive guard the connection. Timeouts are final; quiet requests are noted once.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::{Client as Blocking, Response};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::errors::{connection_error, failure, protocol_error, timeout_error};
use super::files::FileSender;
use super::options::ClientOptions;
use super::redact::{redact, redact_header};
pub(crate) use super::request::{Request, Scope};
use super::tls::{TlsBuilder, ca_file_config, pem_certs};
use super::warnings::Warnings;
use super::watch::{Progress, Tracked, Watchdog};
use crate::error::{Error, Result};
use crate::events::Level;

const MAX_REDIRECTS: usize = 10;

/// How long an idle connection is probed: long uploads through NAT and load balancers keep their connection.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// A registry as reached: its name and base URL (scheme decided by the ping), and whether its TLS is unverified.
#[derive(Clone, Debug)]
pub(crate) struct Site {
    pub registry: String,
    pub base: Url,
    pub insecure_tls: bool,
}

/// A URL's origin (RFC 6454): scheme, host, port. `Authorization` goes only to the registry's own.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: Option<String>,
    port: Option<u16>,
}

impl Origin {
    pub fn of(u: &Url) -> Self {
        Origin {
            scheme: u.scheme().to_string(),
            host: u.host_str().map(str::to_ascii_lowercase),
            port: u.port_or_known_default(),
        }
    }
}

/// How a request is secured (see [`Http::tls_choice`]).
pub(crate) enum TlsChoice {
    Plain,
    Verified { accept_invalid: bool },
}

/// The HTTP clients (built on first use) and the request counter, shared by all threads.
pub(crate) struct Http {
    verified: OnceLock<Blocking>,
    unverified: OnceLock<Blocking>,
    /// For `http://` URLs only (loopback or `--insecure-registry`): it never loads the system's CA certificates.
    plain: OnceLock<Blocking>,
    /// `--ca-file`'s PEM bundle.
    ca: Option<Vec<u8>>,
    /// Requests with a file body (see `send_file`).
    files: OnceLock<FileSender>,
    pub watchdog: Watchdog,
    pub opts: ClientOptions,
    requests: AtomicU64,
    /// `Warning` headers already shown.
    warned: Warnings,
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

fn setup_error(e: impl std::fmt::Display) -> Error {
    Error::Usage(format!("cannot set up the HTTP client: {e}"))
}

impl Http {
    pub fn new(opts: ClientOptions) -> Result<Self> {
        // reqwest is built without a bundled crypto provider (`rustls-no-provider`): ring is ours, installed once
        // per process (a second install, e.g. by a second client, is a harmless no-op).
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
        Ok(Http {
            verified: OnceLock::new(),
            unverified: OnceLock::new(),
            plain: OnceLock::new(),
            ca,
            files: OnceLock::new(),
            watchdog: Watchdog::new(opts.report.clone(), opts.read_timeout),
            opts,
            requests: AtomicU64::new(0),
            warned: Warnings::default(),
        })
    }

    /// HTTP requests sent so far (every attempt and redirect hop counts).
    pub fn request_count(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The TLS client, built on first use: building one loads and parses the system CA bundle; a run that never
    /// needs the unverified client never pays for it.
    fn tls(&self, accept_invalid: bool) -> Result<&Blocking> {
        let cell = if accept_invalid {
            &self.unverified
        } else {
            &self.verified
        };
        if let Some(c) = cell.get() {
            return Ok(c);
        }
        let c = self
            .verified_tls(self.builder(), accept_invalid)?
            .build()
            .map_err(setup_error)?;
        Ok(cell.get_or_init(|| c))
    }

    /// `b` (blocking or async) securing TLS as `accept_invalid` says: with `--ca-file`, a rustls configuration of
    /// our own (`tls`: its certificates trusted beside the system's, and accepted as the server's own).
    fn verified_tls<B: TlsBuilder>(&self, b: B, accept_invalid: bool) -> Result<B> {
        if accept_invalid {
            return Ok(b.accept_invalid());
        }
        match self.ca.as_deref().map(pem_certs) {
            Some(certs) => Ok(b.preconfigured(ca_file_config(certs).map_err(setup_error)?)),
            None => Ok(b),
        }
    }

    /// The client for plain-HTTP URLs. Loading the system's CA certificates (a bundle and a directory of a few
    /// hundred files) was most of a loopback push's client setup; this one has no roots at all, so a TLS
    /// handshake through it could never succeed (and `client_for` never gives it an `https://` URL).
    fn plain(&self) -> Result<&Blocking> {
        if let Some(c) = self.plain.get() {
            return Ok(c);
        }
        let c = self
            .builder()
            .tls_backend_preconfigured(no_roots_tls()?)
            .build()
            .map_err(setup_error)?;
        Ok(self.plain.get_or_init(|| c))
    }

    fn builder(&self) -> reqwest::blocking::ClientBuilder {
        Blocking::builder()
            .user_agent(self.opts.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(None)
            .connect_timeout(self.opts.connect_timeout)
            .tcp_keepalive(KEEPALIVE)
            .tcp_user_timeout(self.opts.read_timeout)
    }

    /// An async client configured as the blocking one `client_for` would give for `url`, for one streamed
    /// request (see `streaming`).
    pub fn async_client(&self, url: &Url, site: &Site) -> Result<reqwest::Client> {
        let b = reqwest::Client::builder()
            .user_agent(self.opts.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.opts.connect_timeout)
            .tcp_keepalive(KEEPALIVE)
            .tcp_user_timeout(self.opts.read_timeout);
        let b = match self.tls_choice(url, site) {
            TlsChoice::Plain => b.tls_backend_preconfigured(no_roots_tls()?),
            TlsChoice::Verified { accept_invalid } => self.verified_tls(b, accept_invalid)?,
        };
        b.build().map_err(setup_error)
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
    fn tls_choice(&self, url: &Url, site: &Site) -> TlsChoice {
        if url.scheme() == "http" {
            return TlsChoice::Plain;
        }
        let hp = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or("")),
            None => url.host_str().unwrap_or("").to_string(),
        };
        TlsChoice::Verified {
            accept_invalid: (site.insecure_tls && Origin::of(url) == Origin::of(&site.base))
                || self.is_insecure(&hp),
        }
    }

    fn client_for(&self, url: &Url, site: &Site) -> Result<&Blocking> {
        match self.tls_choice(url, site) {
            TlsChoice::Plain => self.plain(),
            TlsChoice::Verified { accept_invalid } => self.tls(accept_invalid),
        }
    }

    /// One attempt of `req` to `site`, following redirects for GET/HEAD; `auth` (an `Authorization` value) only
    /// on the site's own origin.
    pub fn send_following(
        &self,
        site: &Site,
        req: &Request,
        auth: Option<&str>,
    ) -> Result<Response> {
        let mut url = req.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let same_origin = Origin::of(&url) == Origin::of(&site.base);
            let mut rb = self
                .client_for(&url, site)?
                .request(req.method.clone(), url.clone());
            rb = rb.headers(req.headers.clone());
            if let (true, Some(a)) = (same_origin, auth) {
                rb = rb.header(reqwest::header::AUTHORIZATION, a);
            }
            if req.body.is_file() {
                // Never redirected (GET and HEAD have no body).
                return self.send_file(site, req, &url, same_origin.then_some(auth).flatten());
            }
            rb = rb.timeout(self.opts.read_timeout);
            if let Some(b) = req.body.make() {
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
    fn execute(
        &self,
        method: &Method,
        url: &Url,
        rb: reqwest::blocking::RequestBuilder,
    ) -> Result<Response> {
        self.count();
        let start = Instant::now();
        let (client, req) = rb.build_split();
        let req = req.map_err(|e| connection_error(method.as_str(), url, &e))?;
        self.trace_headers(">", req.headers());
        let progress = Progress::new();
        let watched = self
            .watchdog
            .watch(format!("{method} {}", redact(url)), &progress);
        let res = client.execute(req);
        drop(watched);
        let ms = start.elapsed().as_millis();
        match res {
            Ok(resp) => {
                self.log_reply(method, url, "", resp.status().as_u16(), ms);
                self.warned.show(&self.opts.report, url, resp.headers());
                self.trace_headers("<", resp.headers());
                Ok(resp)
            }
            Err(e) => Err(self.log_failure(failure(method.as_str(), url, &e, &self.opts), ms)),
        }
    }

    /// One request with a file body, through the async client (see `files`): it fails once nothing moved for
    /// `read_timeout` (no frame taken, no answer), so a slow upload that moves goes on.
    fn send_file(
        &self,
        site: &Site,
        req: &Request,
        url: &Url,
        auth: Option<&str>,
    ) -> Result<Response> {
        let files = match self.files.get() {
            Some(f) => f,
            None => {
                let f = FileSender::new().map_err(setup_error)?;
                self.files.get_or_init(|| f)
            }
        };
        let slot = match self.tls_choice(url, site) {
            TlsChoice::Plain => 0,
            TlsChoice::Verified { accept_invalid } => 1 + accept_invalid as usize,
        };
        let client = files.client(slot, || self.async_client(url, site))?;
        let (frames, len) = req.body.frames()?.expect("a file body");
        let progress = Progress::new();
        let mut rb = client
            .request(req.method.clone(), url.clone())
            .headers(req.headers.clone())
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(reqwest::Body::wrap(Tracked {
                inner: frames,
                progress: progress.clone(),
            }));
        if let Some(a) = auth {
            rb = rb.header(reqwest::header::AUTHORIZATION, a);
        }
        let rb = rb
            .build()
            .map_err(|e| connection_error(req.method.as_str(), url, &e))?;
        self.trace_headers(">", rb.headers());
        self.count();
        let start = Instant::now();
        let what = format!("{} {}", req.method, redact(url));
        let watched = self.watchdog.watch(what, &progress);
        let res = files.send(client, rb, &progress, self.opts.read_timeout);
        drop(watched);
        let ms = start.elapsed().as_millis();
        match res {
            Ok(Some(answer)) => {
                let resp = Response::from(answer);
                self.log_reply(&req.method, url, "", resp.status().as_u16(), ms);
                self.trace_headers("<", resp.headers());
                Ok(resp)
            }
            Ok(None) => Err(self.log_failure(self.timeout_error(&req.method, url, false), ms)),
            Err(e) => Err(self.log_failure(failure(req.method.as_str(), url, &e, &self.opts), ms)),
        }
    }

    /// A wait that ran out (see `errors::timeout_error`).
    pub fn timeout_error(&self, method: &Method, url: &Url, connecting: bool) -> Error {
        timeout_error(method.as_str(), url, connecting, &self.opts)
    }

    /// `-vv`: a request's (`>`) or an answer's (`<`) headers, secrets masked.
    fn trace_headers(&self, dir: &str, headers: &HeaderMap) {
        if self.opts.report.enabled(Level::Trace) {
            for (k, v) in headers {
                self.opts
                    .report
                    .trace(format_args!("  {dir} {k}: {}", shown(k, v)));
            }
        }
    }

    /// Count a request about to be sent (what [`Http::request_count`] reports).
    pub fn count(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// The `-v` line of an answered request: `METHOD URL{how} -> STATUS (N ms)`.
    pub fn log_reply(&self, method: &Method, url: &Url, how: &str, status: u16, ms: u128) {
        let report = &self.opts.report;
        if report.enabled(Level::Debug) {
            report.debug(format_args!(
                "{method} {}{how} -> {status} ({ms} ms)",
                redact(url)
            ));
        }
    }

    /// The `-v` line of a request that got no answer; the error, to return.
    pub fn log_failure(&self, err: Error, ms: u128) -> Error {
        self.opts.report.debug(format_args!("{err} ({ms} ms)"));
        err
    }
}

/// A header value as `-vv` shows it (secrets masked).
fn shown(name: &HeaderName, value: &HeaderValue) -> String {
    redact_header(name.as_str(), value.to_str().unwrap_or("<binary>"))
}

/// A TLS configuration trusting nothing, for clients that only ever see `http://` URLs.
fn no_roots_tls() -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(setup_error)?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth())
}

/// Read at most `max` bytes of a response body (for error messages and small documents).
pub(crate) fn read_limited(resp: Response, max: u64) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = resp.take(max).read_to_end(&mut buf);
    buf
}
