//! Blob uploads: HEAD skip → cross-repository mount → upload session (one streamed `PUT`, or `PATCH` chunks),
//! and a bounded pool of threads for many blobs. A failed upload is retried as a whole: new session, file reopened.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use reqwest::Method;
use reqwest::blocking::Response;
use reqwest::header::{CONTENT_TYPE, HeaderName, LOCATION};
use url::Url;

use super::auth::Endpoint;
use super::body::{Body, ReadProgress};
use super::client::Repository;
use super::errors::{is_retryable, is_retryable_status, protocol_error, status_error};
use super::http::{Request, Scope, read_limited};
use super::retry::{Verdict, retry};
use super::transport::Transport;
use crate::digest::Digest;
use crate::error::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Already in the repository: nothing sent.
    Exists,
    /// Mounted from another repository of the same registry.
    Mounted {
        from: String,
    },
    Uploaded {
        bytes: u64,
    },
}

/// Called by `push_blobs` as each blob finishes (from the worker threads).
pub type Progress<'a> = dyn Fn(&Digest, &BlobOutcome) + Sync + 'a;

/// An upload session opened before its blob exists (its `POST` answered): the blob then goes up in one `PUT`.
/// A rebuilt image's config is known only once its last layer is, and to a local registry a `POST` costs about
/// what the `PUT` of a small blob does (distribution creates the session's directory and files): opened while the
/// layers build, it leaves that round trip off the end of the push.
#[derive(Debug)]
pub struct OpenSession {
    loc: Url,
}

/// One blob for `push_blobs`: digest, size, file, repository to try mounting from.
pub type BlobItem = (Digest, u64, PathBuf, Option<String>);

/// Resolve an upload `Location` (absolute, or relative to the request URL, as the spec allows).
pub fn resolve_location(request: &Url, location: &str) -> Result<Url> {
    request.join(location.trim()).map_err(|e| {
        protocol_error(
            "POST",
            request,
            None,
            format!("bad Location {location:?}: {e}"),
        )
    })
}

pub(super) fn location_of(method: &str, url: &Url, resp: &Response) -> Result<Url> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| {
            protocol_error(
                method,
                url,
                Some(resp.status().as_u16()),
                "no Location header in the answer",
            )
        })?;
    resolve_location(url, loc)
}

/// The `Content-Type` of blob bytes.
pub(super) const OCTETS: &str = "application/octet-stream";

/// The smallest chunk a 413 shrinks `--chunk-size` chunks to.
const MIN_CHUNK: u64 = 256 * 1024;

/// One chunk of an upload session: `PATCH` with `Content-Range: offset-last` (OCI distribution spec, "Pushing a
/// blob in chunks"), never retried on its own (a retry starts a new session).
pub(super) fn chunk_request(
    loc: &Url,
    scopes: &[Scope],
    offset: u64,
    len: u64,
    body: Body,
) -> Request {
    Request::new(Method::PATCH, loc.clone(), scopes)
        .no_retry()
        .header(CONTENT_TYPE, OCTETS)
        .header(
            HeaderName::from_static("content-range"),
            &format!("{offset}-{}", offset + len - 1),
        )
        .body(body)
}

/// Close an upload session: `PUT <location>?digest=` with the last bytes (or none), expect 201, and refuse a
/// `Docker-Content-Digest` naming another sha256 blob.
pub(super) fn close_session(
    t: &Transport,
    ep: &Endpoint,
    loc: &Url,
    scopes: &[Scope],
    digest: &Digest,
    body: Body,
) -> Result<()> {
    let mut put = loc.clone();
    put.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    let mut req = Request::new(Method::PUT, put.clone(), scopes)
        .no_retry()
        .header(CONTENT_TYPE, OCTETS)
        .body(body);
    if matches!(req.body, Body::Empty) {
        req = req.header(reqwest::header::CONTENT_LENGTH, "0");
    }
    let resp = expect("PUT", &put, t.send(ep, &req)?, 201)?;
    if let Some(d) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|d| d.to_str().ok())
        && d.starts_with("sha256:")
        && d != digest.to_string()
    {
        return Err(protocol_error(
            "PUT",
            &put,
            Some(201),
            format!("registry stored {d}, expected {digest}"),
        ));
    }
    Ok(())
}

pub(super) fn expect(method: &str, url: &Url, resp: Response, status: u16) -> Result<Response> {
    if resp.status().as_u16() == status {
        Ok(resp)
    } else {
        let s = resp.status().as_u16();
        Err(status_error(method, url, s, &read_limited(resp, 64 * 1024)))
    }
}

impl Repository {
    /// Try `POST …/blobs/uploads/?mount=&from=`: true when the registry mounted it (201). A 202 (mount refused,
    /// upload session opened) is cancelled; any error means "not mounted".
    pub fn mount_blob(&self, digest: &Digest, from_repository: &str) -> Result<bool> {
        let ep = self.endpoint()?;
        let mut url = self.url(&ep, "blobs/uploads/");
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from_repository);
        let mut scopes = self.push_scope();
        scopes.push(Scope::pull(from_repository));
        let resp = match self
            .transport()
            .send(&ep, &Request::new(Method::POST, url.clone(), &scopes))
        {
            Ok(r) => r,
            Err(e) => {
                self.log(format_args!(
                    "mount of {digest} from {from_repository} failed: {e}"
                ));
                return Ok(false);
            }
        };
        match resp.status().as_u16() {
            201 => Ok(true),
            202 => {
                if let Ok(loc) = location_of("POST", &url, &resp) {
                    let _ = self
                        .transport()
                        .send(&ep, &Request::new(Method::DELETE, loc, &scopes).no_retry());
                }
                Ok(false)
            }
            s => {
                self.log(format_args!(
                    "mount of {digest} from {from_repository}: HTTP {s}"
                ));
                Ok(false)
            }
        }
    }

    /// Open an upload session now, for a blob that will be ready later ([`OpenSession`]).
    pub fn open_session(&self) -> Result<OpenSession> {
        let ep = self.endpoint()?;
        let (loc, _) = self.post_session(&ep)?;
        Ok(OpenSession { loc })
    }

    /// Give up a session opened ahead that no blob used.
    pub fn cancel_session(&self, session: OpenSession) {
        if let Ok(ep) = self.endpoint() {
            self.delete_session(&ep, &session.loc);
        }
    }

    /// `POST blobs/uploads/` with an empty body: the new session's location, and the answer (its headers may
    /// carry the registry's chunk limits). Every upload session starts here, streamed or not. It says
    /// `Content-Length: 0` outright, as the registry API v2 spec's "Initiate Resumable Blob Upload" request does
    /// (docker/distribution docs/spec/api.md).
    pub(super) fn post_session(&self, ep: &Endpoint) -> Result<(Url, Response)> {
        let url = self.url(ep, "blobs/uploads/");
        let req = Request::new(Method::POST, url.clone(), &self.push_scope())
            .no_retry()
            .header(reqwest::header::CONTENT_LENGTH, "0");
        let resp = expect("POST", &url, self.transport().send(ep, &req)?, 202)?;
        let loc = location_of("POST", &url, &resp)?;
        Ok((loc, resp))
    }

    /// `DELETE` an abandoned session, best effort: a registry purges abandoned sessions anyway.
    pub(super) fn delete_session(&self, ep: &Endpoint, loc: &Url) {
        let req = Request::new(Method::DELETE, loc.clone(), &self.push_scope()).no_retry();
        let _ = self.transport().send(ep, &req);
    }

    /// Upload `path` (exactly `size` bytes with digest `digest`), retrying with a fresh session.
    pub fn upload_blob(&self, digest: &Digest, size: u64, path: &Path) -> Result<()> {
        self.upload_blob_in(None, digest, size, path)
    }

    /// [`Repository::upload_blob`], the first attempt in `session` when one was opened ahead.
    pub fn upload_blob_in(
        &self,
        mut session: Option<OpenSession>,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<()> {
        let actual = std::fs::metadata(path)
            .map_err(|e| Error::io(path, e))?
            .len();
        if actual != size {
            return Err(Error::input(
                path,
                format!("is {actual} bytes, expected {size} for blob {digest}"),
            ));
        }
        retry(
            &self.transport().opts().retry,
            || self.upload_once(session.take(), digest, size, path),
            |outcome, _| match outcome {
                Err(e) if is_retryable(e) => {
                    self.log(format_args!(
                        "upload of {digest} failed ({e}); retrying with a new session"
                    ));
                    Verdict::Retry(None)
                }
                _ => Verdict::Done,
            },
        )
    }

    fn upload_once(
        &self,
        session: Option<OpenSession>,
        digest: &Digest,
        size: u64,
        path: &Path,
    ) -> Result<()> {
        let ep = self.endpoint()?;
        let t = self.transport();
        let scopes = self.push_scope();
        let mut loc = match session {
            Some(s) => s.loc,
            None => self.post_session(&ep)?.0,
        };
        let progress = self.upload_progress.as_ref().map(|f| {
            let (f, d) = (f.clone(), digest.clone());
            ReadProgress(std::sync::Arc::new(move |pos| f(&d, pos)))
        });
        let mut body = Body::File {
            path: path.to_path_buf(),
            offset: 0,
            len: size,
            progress: progress.clone(),
        };
        if let Some(chunk) = t.opts().chunk_size.filter(|c| *c > 0) {
            let mut chunk = chunk;
            let (mut offset, mut setbacks) = (0, 0);
            while offset < size {
                let len = chunk.min(size - offset);
                let part = Body::File {
                    path: path.to_path_buf(),
                    offset,
                    len,
                    progress: progress.clone(),
                };
                let req = chunk_request(&loc, &scopes, offset, len, part);
                let exchange = t.send(&ep, &req);
                let status = exchange.as_ref().ok().map(|r| r.status().as_u16());
                if status == Some(202) {
                    loc = location_of("PATCH", &loc, &exchange?)?;
                    offset += len;
                    continue;
                }
                // A registry that takes no chunks at all (Artifact Registry answers a first PATCH with an error)
                // gets the blob whole, in a session of its own.
                if offset == 0 && matches!(status, Some(400 | 405 | 501)) {
                    drop(exchange);
                    self.log(format_args!(
                        "{} takes no chunked uploads (HTTP {}); sending {digest} whole",
                        self.registry(),
                        status.unwrap_or_default()
                    ));
                    self.delete_session(&ep, &loc);
                    loc = self.post_session(&ep)?.0;
                    return close_session(t, &ep, &loc, &scopes, digest, body);
                }
                // A chunk that did not go through need not cost the whole blob: the session says how much it
                // has (its upload status), and the upload goes on from there — with smaller chunks after a 413
                // (GHCR takes at most 4 MiB per PATCH). What cannot heal, or keeps failing, ends this attempt
                // (the caller's retry then starts a new session).
                let shrink = status == Some(413) && len > MIN_CHUNK;
                let healable = shrink
                    || status == Some(416)
                    || matches!(&exchange, Ok(r) if is_retryable_status(r.status().as_u16()))
                    || matches!(&exchange, Err(e) if is_retryable(e));
                setbacks += 1;
                if !healable || setbacks >= t.opts().retry.max_attempts {
                    return expect("PATCH", &loc, exchange?, 202).map(drop);
                }
                drop(exchange);
                if shrink {
                    chunk = (len / 2).max(MIN_CHUNK);
                }
                let (at, status_loc) = self.upload_status(&ep, &loc)?;
                self.log(format_args!(
                    "chunk {offset}-{} of {digest} failed ({}); the session has {at} bytes, going on from there{}",
                    offset + len - 1,
                    status.map_or("no answer".to_string(), |s| format!("HTTP {s}")),
                    if shrink { format!(" in {chunk}-byte chunks") } else { String::new() }
                ));
                (offset, loc) = (at.min(size), status_loc);
            }
            body = Body::Empty;
        }
        close_session(t, &ep, &loc, &scopes, digest, body)
    }

    /// How many bytes an upload session holds (distribution spec, "Get upload status": `GET` the session,
    /// `204` with `Range: 0-LAST`; none yet: no `Range`), and where it goes on.
    fn upload_status(&self, ep: &Endpoint, loc: &Url) -> Result<(u64, Url)> {
        let req = Request::new(Method::GET, loc.clone(), &self.push_scope());
        let resp = expect("GET", loc, self.transport().send(ep, &req)?, 204)?;
        let at = resp
            .headers()
            .get("range")
            .and_then(|r| r.to_str().ok())
            .and_then(|r| r.trim().strip_prefix("0-")?.parse::<u64>().ok())
            .map_or(0, |last| last + 1);
        Ok((at, location_of("GET", loc, &resp)?))
    }

    /// HEAD skip → mount (when `mount_from` is given) → upload.
    pub fn push_blob(
        &self,
        digest: &Digest,
        size: u64,
        source: &Path,
        mount_from: Option<&str>,
    ) -> Result<BlobOutcome> {
        if self.blob_exists(digest)?.is_some() {
            return Ok(BlobOutcome::Exists);
        }
        if let Some(from) = mount_from.filter(|f| *f != self.name)
            && self.mount_blob(digest, from)?
        {
            return Ok(BlobOutcome::Mounted {
                from: from.to_string(),
            });
        }
        self.upload_blob(digest, size, source)?;
        Ok(BlobOutcome::Uploaded { bytes: size })
    }

    /// Push many blobs on `max_parallel` threads. Outcomes are in `items` order; the first error stops the
    /// remaining work and is returned with the blob it concerns. `progress` is called as each blob finishes.
    pub fn push_blobs(
        &self,
        items: Vec<BlobItem>,
        progress: Option<&Progress<'_>>,
    ) -> Result<Vec<BlobOutcome>> {
        let n = items.len();
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        let results: Mutex<Vec<Option<BlobOutcome>>> = Mutex::new(vec![None; n]);
        let workers = self.transport().opts().max_parallel.max(1).min(n);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((digest, size, path, from)) = items.get(i) else {
                            break;
                        };
                        match self.push_blob(digest, *size, path, from.as_deref()) {
                            Ok(outcome) => {
                                if let Some(p) = progress {
                                    p(digest, &outcome);
                                }
                                results.lock().expect("results lock")[i] = Some(outcome);
                            }
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                let mut fe = first_error.lock().expect("error lock");
                                if fe.is_none() {
                                    *fe = Some(e.context(format!(
                                        "pushing blob {digest} ({}) to {}/{}",
                                        path.display(),
                                        self.registry,
                                        self.name
                                    )));
                                }
                            }
                        }
                    }
                });
            }
        });
        if let Some(e) = first_error.into_inner().expect("error lock") {
            return Err(e);
        }
        Ok(results
            .into_inner()
            .expect("results lock")
            .into_iter()
            .map(|r| r.expect("every item done"))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve() {
        let req = Url::parse("https://h:5000/v2/r/blobs/uploads/").unwrap();
        assert_eq!(
            resolve_location(&req, "/v2/r/blobs/uploads/abc?_state=x")
                .unwrap()
                .as_str(),
            "https://h:5000/v2/r/blobs/uploads/abc?_state=x"
        );
        assert_eq!(
            resolve_location(&req, "abc").unwrap().as_str(),
            "https://h:5000/v2/r/blobs/uploads/abc"
        );
        assert_eq!(
            resolve_location(&req, "https://upload.example/u/1?sig=s")
                .unwrap()
                .as_str(),
            "https://upload.example/u/1?sig=s"
        );
        let mut put = resolve_location(&req, "/u/1?_state=x").unwrap();
        put.query_pairs_mut().append_pair("digest", "sha256:ab");
        assert_eq!(
            put.as_str(),
            "https://h:5000/u/1?_state=x&digest=sha256%3Aab"
        );
        let mut put = resolve_location(&req, "/u/1").unwrap();
        put.query_pairs_mut().append_pair("digest", "sha256:ab");
        assert_eq!(put.as_str(), "https://h:5000/u/1?digest=sha256%3Aab");
    }
}
