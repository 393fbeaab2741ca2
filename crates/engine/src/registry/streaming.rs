//! One request whose body is produced while it is sent: a layer's bytes as the compressor writes them (see
//! `stream`). reqwest's blocking client cannot send such a body well: it pumps a `Read` in 8 KiB frames, each
//! handed to its runtime thread through a rendezvous channel, and with both cores compressing those hand-offs
//! (a futex wake and a context switch per frame, 16 000 for a 126 MiB layer) cost more CPU than the upload
//! itself — measured, a cold `big` push went from 1.15 s to 1.3-1.7 s. So this one request goes through
//! reqwest's async client on a current-thread runtime of its own, with the compressor's buffers (1 MiB) as the
//! body's frames, moved rather than copied.
//!
//! The client is built for the one request (same settings as the blocking ones: user agent, no redirects,
//! connect timeout, keepalive, `TCP_USER_TIMEOUT`, and the same TLS choice), so no pooled connection outlives
//! its runtime. It is never retried and never re-authenticated: the bytes are gone once sent. A failure here
//! only means the layer is pushed from its file afterwards.
//!
//! Above `auth` (the `Authorization` it sends) and `http` (client settings, counting and logging).

use std::time::Instant;

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};
use url::Url;

use super::auth::{Auth, Endpoint};
use super::errors::connection_error;
use super::http::{Http, Origin, Scope};
use super::redact::redact;
use super::watch::{Progress, Tracked, unless_idle};
use crate::error::{Error, Result};

/// The answer to a streamed request: status, headers and (the first 64 KiB of) the body.
pub(crate) struct StreamedReply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A client for streamed requests to one registry: a current-thread runtime and an async client of its own,
/// used by one upload thread for the requests of one upload session.
pub(crate) struct Streamer<'t> {
    http: &'t Http,
    base: Url,
    auth: Option<HeaderValue>,
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl<'t> Streamer<'t> {
    /// A streamer for requests to `url`'s origin needing `scopes`.
    pub(crate) fn new(auth: &'t Auth, ep: &Endpoint, url: &Url, scopes: &[Scope]) -> Result<Self> {
        let header = match auth.authorization(ep, scopes)? {
            Some(a) => {
                let mut v = HeaderValue::from_str(&a).map_err(|_| {
                    Error::Usage("a registry credential is not a valid header value".into())
                })?;
                v.set_sensitive(true);
                Some(v)
            }
            None => None,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| connection_error("PATCH", url, &e))?;
        Ok(Streamer {
            http: &auth.http,
            base: ep.site.base.clone(),
            auth: header,
            client: auth.http.async_client(url, &ep.site)?,
            rt,
        })
    }

    /// Send `method url` with `body` as it comes (chunked transfer encoding on HTTP/1.1), with the registry's
    /// `Authorization` (its own origin only). Blocks the calling thread until the answer.
    pub(crate) fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: impl http_body::Body<Data = Bytes, Error = std::io::Error> + Send + Sync + 'static,
    ) -> Result<StreamedReply> {
        let progress = Progress::new();
        let mut rb = self
            .client
            .request(method.clone(), url.clone())
            .headers(headers)
            .body(reqwest::Body::wrap(Tracked {
                inner: Box::pin(body),
                progress: progress.clone(),
            }));
        if let (true, Some(a)) = (Origin::of(url) == Origin::of(&self.base), &self.auth) {
            rb = rb.header(reqwest::header::AUTHORIZATION, a.clone());
        }
        self.http.count();
        let start = Instant::now();
        let limit = self.http.opts.read_timeout;
        let watched = self
            .http
            .watchdog
            .watch(format!("{method} {} (streamed)", redact(url)), &progress);
        let res = self.rt.block_on(async {
            let Some(resp) = unless_idle(rb.send(), &progress, limit).await else {
                return Ok(None);
            };
            let mut resp = resp?;
            progress.touch();
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let mut body = Vec::new();
            loop {
                let Some(chunk) = unless_idle(resp.chunk(), &progress, limit).await else {
                    return Ok(None);
                };
                let Some(chunk) = chunk? else { break };
                progress.touch();
                body.extend_from_slice(&chunk);
                if body.len() >= 64 * 1024 {
                    break;
                }
            }
            Ok::<_, reqwest::Error>(Some(StreamedReply {
                status,
                headers,
                body,
            }))
        });
        drop(watched);
        let ms = start.elapsed().as_millis();
        match res {
            Ok(None) => Err(self
                .http
                .log_failure(self.http.timeout_error(&method, url, false), ms)),
            Ok(Some(r)) => {
                self.http
                    .log_reply(&method, url, " (streamed)", r.status, ms);
                Ok(r)
            }
            Err(e) => Err(self
                .http
                .log_failure(connection_error(method.as_str(), url, &e), ms)),
        }
    }
}
