//! One upload session of a layer streamed while it is compressed: opened by `POST`, fed by one streamed `PATCH`
//! (or sized ones with `--chunk-size`), closed by `PUT ?digest=`, cancelled by `DELETE` when anything fails.

use std::io;
use std::pin::Pin;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use url::Url;

use crate::digest::Digest;
use crate::error::Result;
use crate::registry::auth::Endpoint;
use crate::registry::body::Body;
use crate::registry::client::Repository;
use crate::registry::errors::{protocol_error, status_error};
use crate::registry::http::Scope;
use crate::registry::streaming::Streamer;
use crate::registry::upload::{
    OCTETS, chunk_request, close_session, expect, location_of, resolve_location,
};

/// What the compressor's side queues for the session: the blob's bytes, then its digest and size.
pub(super) enum Msg {
    Chunk(Vec<u8>),
    End { digest: Digest, size: u64 },
}

/// Where a streamed upload stands: bytes handed to requests, and how the feed ended.
#[derive(Default)]
struct Progress {
    sent: u64,
    /// The compressor's end: the blob's digest and size.
    end: Option<(Digest, u64)>,
    /// The feed was dropped unfinished (the layer failed).
    dropped: bool,
}

/// The body of the streamed `PATCH`: queued buffers in order, until the end or a dropped feed.
struct QueueBody {
    rx: tokio::sync::mpsc::Receiver<Msg>,
    spare: Sender<Vec<u8>>,
    progress: Arc<Mutex<Progress>>,
}

/// A buffer lent to the request: back to the compressor for refilling once the transport has written it.
struct Lent {
    buf: Vec<u8>,
    back: Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let _ = self.back.send(std::mem::take(&mut self.buf));
    }
}

impl http_body::Body for QueueBody {
    type Data = bytes::Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<io::Result<http_body::Frame<bytes::Bytes>>>> {
        let this = &mut *self;
        let msg = match this.rx.poll_recv(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(m) => m,
        };
        let mut progress = this.progress.lock().unwrap_or_else(|p| p.into_inner());
        match msg {
            Some(Msg::Chunk(buf)) => {
                progress.sent += buf.len() as u64;
                let lent = Lent {
                    buf,
                    back: this.spare.clone(),
                };
                Poll::Ready(Some(Ok(http_body::Frame::data(bytes::Bytes::from_owner(
                    lent,
                )))))
            }
            Some(Msg::End { digest, size }) => {
                progress.end = Some((digest, size));
                Poll::Ready(None)
            }
            None => {
                progress.dropped = true;
                Poll::Ready(None)
            }
        }
    }
}

fn abandoned(loc: &Url) -> crate::error::Error {
    protocol_error("PATCH", loc, None, "abandoned: the layer was not completed")
}

/// One upload session.
pub(super) struct Session<'a> {
    repo: &'a Repository,
    ep: std::sync::Arc<Endpoint>,
    scopes: Vec<Scope>,
    loc: Url,
    /// Bytes accepted so far.
    offset: u64,
}

impl<'a> Session<'a> {
    /// Open a session (`POST`) for chunks of at most `chunk` bytes; refused, and cancelled, when the registry's
    /// `OCI-Chunk-Min-Length` (distribution spec, "Pushing a blob in chunks") is above that.
    pub(super) fn open(repo: &'a Repository, chunk: u64) -> Result<Self> {
        let ep = repo.endpoint()?;
        let scopes = repo.push_scope();
        let (loc, resp) = repo.post_session(&ep)?;
        let url = repo.url(&ep, "blobs/uploads/");
        let session = Session {
            repo,
            ep,
            scopes,
            loc,
            offset: 0,
        };
        let min = resp
            .headers()
            .get("oci-chunk-min-length")
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        if let Some(min) = min.filter(|m| *m > chunk) {
            session.cancel();
            return Err(protocol_error(
                "POST",
                &url,
                Some(202),
                format!("chunks must be at least {min} bytes (OCI-Chunk-Min-Length)"),
            ));
        }
        Ok(session)
    }

    /// The whole blob as one streamed `PATCH` of the queued buffers, then the commit.
    pub(super) fn send_streamed(
        &mut self,
        rx: tokio::sync::mpsc::Receiver<Msg>,
        spare: Sender<Vec<u8>>,
    ) -> Result<()> {
        let progress = Arc::new(Mutex::new(Progress::default()));
        let body = QueueBody {
            rx,
            spare,
            progress: progress.clone(),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static(OCTETS),
        );
        let reply = Streamer::new(
            &self.repo.transport().auth,
            &self.ep,
            &self.loc,
            &self.scopes,
        )?
        .send(Method::PATCH, &self.loc, headers, body)?;
        if reply.status != 202 {
            return Err(status_error("PATCH", &self.loc, reply.status, &reply.body));
        }
        let loc = reply
            .headers
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| {
                protocol_error(
                    "PATCH",
                    &self.loc,
                    Some(202),
                    "no Location header in the answer",
                )
            })?;
        self.loc = resolve_location(&self.loc, loc)?;
        let p = progress.lock().unwrap_or_else(|p| p.into_inner());
        self.offset = p.sent;
        match (&p.end, p.dropped) {
            (Some((digest, size)), false) => self.commit(digest, *size),
            _ => Err(abandoned(&self.loc)),
        }
    }

    /// Sized `PATCH`es, one per queued chunk, then the commit.
    pub(super) fn send_chunks(
        &mut self,
        mut rx: tokio::sync::mpsc::Receiver<Msg>,
        spare: Sender<Vec<u8>>,
    ) -> Result<()> {
        while let Some(msg) = rx.blocking_recv() {
            match msg {
                Msg::Chunk(b) => {
                    let b = self.patch(b)?;
                    let _ = spare.send(b);
                }
                Msg::End { digest, size } => return self.commit(&digest, size),
            }
        }
        Err(abandoned(&self.loc))
    }

    /// Send `buf` as the next chunk; the buffer comes back to be reused.
    fn patch(&mut self, buf: Vec<u8>) -> Result<Vec<u8>> {
        let len = buf.len() as u64;
        let req = chunk_request(&self.loc, &self.scopes, self.offset, len, Body::bytes(buf));
        let resp = self.repo.transport().send(&self.ep, &req)?;
        let resp = expect("PATCH", &self.loc, resp, 202)?;
        self.loc = location_of("PATCH", &self.loc, &resp)?;
        self.offset += len;
        let Body::Bytes(mut shared) = req.body else {
            unreachable!("the body given above")
        };
        // The chunk comes back for refilling once the transport lets go of it, which it does as it finishes the
        // request (the answer is in): wait briefly rather than allocate another chunk, so at most three ever
        // exist.
        for _ in 0..200 {
            match Arc::try_unwrap(shared) {
                Ok(b) => return Ok(b),
                Err(s) => shared = s,
            }
            std::thread::sleep(std::time::Duration::from_micros(250));
        }
        Ok(Vec::new())
    }

    fn commit(&self, digest: &Digest, size: u64) -> Result<()> {
        if self.offset != size {
            return Err(protocol_error(
                "PUT",
                &self.loc,
                None,
                format!("streamed {} bytes of a {size}-byte blob", self.offset),
            ));
        }
        close_session(
            self.repo.transport(),
            &self.ep,
            &self.loc,
            &self.scopes,
            digest,
            Body::Empty,
        )
    }

    /// Best effort: tell the registry the session is abandoned.
    pub(super) fn cancel(&self) {
        self.repo.delete_session(&self.ep, &self.loc);
    }
}
