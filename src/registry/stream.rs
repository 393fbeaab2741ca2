//! Uploading a layer while it is still being compressed.
//!
//! Without this, a cold `kiln build --to REGISTRY` compresses a layer into the cache layout and only then uploads
//! the finished file: the two take about as long each on a fast link, one after the other. A [`StreamTee`] sits
//! between the compressor and the blob file instead: everything written to the file is also cut into chunks that
//! a thread sends, while compression goes on, as sized `PATCH`es of one upload session — the OCI distribution
//! spec's chunked upload ("Pushing a blob in chunks",
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-a-blob-in-chunks>): `POST`
//! opens the session, each `PATCH` carries `Content-Range: start-end` and `Content-Length`, and the closing
//! `PUT <location>?digest=` commits the blob once the compressor has finished and the digest is known
//! ([`StreamTee::finish`], in the background). The early uploader then asks [`LayerStreams::wait`] whether the
//! registry has the blob, and pushes the finished file the usual way when it has not: a refused session (or an
//! `OCI-Chunk-Min-Length` above our chunk), a failed chunk or commit only cancel the session (`DELETE`, best
//! effort) and mean that fallback.
//!
//! Sized chunks, not one `PATCH` with a chunked transfer-encoding: distribution ingests a sized body markedly
//! faster, and reqwest's blocking body pump moves a streamed body in 8 KiB frames. At most one chunk waits while
//! one is sent, so memory stays a few chunks whatever the layer size, and compression waits for the upload
//! rather than the other way round. The cost: a layer the registry already has (same content, cold cache) is
//! uploaded again, as its digest is unknown until the end (a warm layer cache never recompresses it, and small
//! layers are not streamed).

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use reqwest::Method;
use reqwest::header::CONTENT_LENGTH;
use url::Url;

use super::Repository;
use super::errors::protocol_error;
use super::transport::{Body, Endpoint, Request};
use super::upload::{chunk_request, close_session, expect, location_of};
use crate::digest::Digest;
use crate::error::Result;

/// Chunk size without `--chunk-size`. Measured with a local distribution registry on 2 cores, a 126 MiB layer:
/// 2 MiB chunks are slower, 4, 8 and 16 MiB alike, and each MiB of chunk costs about 6 MiB of peak RSS (the chunk
/// being filled, the one waiting, the one being sent and the transport's copy of it, allocator slack): 48 MiB at
/// 4 MiB, 72 MiB at 8. 4 MiB is also the most ghcr.io accepts in one request.
const DEFAULT_CHUNK: usize = 4 << 20;

/// The largest `--chunk-size` a layer is streamed with; above it layers are pushed from the file only.
const MAX_CHUNK: u64 = 16 << 20;

/// Chunks waiting while one is being sent.
const QUEUED: usize = 1;

/// Only a layer whose tar is at least this many chunks is streamed. A smaller one would gain little (the
/// overlap is at most its upload time), while pushed from its file it is skipped when the registry already has
/// it; and `--split` parts are small and already overlap: they are pushed while the next ones compress.
const MIN_CHUNKS: u64 = 8;

/// Streamed layer uploads to one repository, and those waiting to be confirmed.
pub struct LayerStreams {
    repo: Repository,
    /// `None`: a `--chunk-size` too big to buffer; nothing is streamed.
    chunk: Option<usize>,
    pending: Mutex<Vec<(Digest, JoinHandle<Result<()>>)>>,
    /// One stream at a time (layers may compress two at once): memory stays that of one stream's chunks.
    busy: Arc<AtomicBool>,
}

impl LayerStreams {
    pub fn new(repo: Repository) -> Self {
        let chunk = match repo.client.options().chunk_size {
            Some(c) if c > 0 => (c <= MAX_CHUNK).then_some(c as usize),
            _ => Some(DEFAULT_CHUNK),
        };
        LayerStreams {
            repo,
            chunk,
            pending: Mutex::new(Vec::new()),
            busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Wait for the streamed upload of `digest`, if one was committed: true when the registry stored it.
    pub fn wait(&self, digest: &Digest) -> bool {
        let handle = {
            let mut p = self.pending.lock().expect("pending lock");
            match p.iter().position(|(d, _)| d == digest) {
                Some(i) => p.swap_remove(i).1,
                None => return false,
            }
        };
        matches!(handle.join(), Ok(Ok(())))
    }
}

/// A writer that passes everything to `inner` and, when given [`LayerStreams`], also uploads it (see the module
/// doc). Dropped before [`StreamTee::finish`], its upload session is cancelled.
pub struct StreamTee<'a, W> {
    inner: W,
    stream: Option<(&'a LayerStreams, Feed)>,
}

impl<'a, W: Write> StreamTee<'a, W> {
    /// `tar_size`: about how many bytes the compressor will read. Only a big layer is streamed ([`MIN_CHUNKS`]),
    /// and only while no other stream is under way.
    pub fn new(inner: W, streams: Option<&'a LayerStreams>, tar_size: u64) -> Self {
        let stream = streams.and_then(|s| {
            let chunk = s.chunk.filter(|c| tar_size >= MIN_CHUNKS * *c as u64)?;
            let claimed = s
                .busy
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            claimed.then_some(())?;
            Feed::start(&s.repo, chunk, Busy(s.busy.clone())).map(|f| (s, f))
        });
        StreamTee { inner, stream }
    }

    /// Complete the blob with `complete` (which returns its digest and size), then have the upload commit it in
    /// the background ([`LayerStreams::wait`] tells how that went).
    pub fn finish(
        self,
        complete: impl FnOnce(W) -> Result<(Digest, u64)>,
    ) -> Result<(Digest, u64)> {
        let (digest, size) = complete(self.inner)?;
        if let Some((streams, feed)) = self.stream
            && let Some(thread) = feed.end(&digest, size)
        {
            streams
                .pending
                .lock()
                .expect("pending lock")
                .push((digest.clone(), thread));
        }
        Ok((digest, size))
    }
}

impl<W: Write> Write for StreamTee<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some((_, feed)) = &mut self.stream
            && !feed.push(&buf[..n])
        {
            // The upload gave up: the blob file is what counts, and it is pushed from there.
            self.stream = None;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Marks a stream under way; cleared when dropped (a thread that could not start drops it at once).
struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

enum Msg {
    Chunk(Vec<u8>),
    End { digest: Digest, size: u64 },
}

/// The writing side of one streamed upload: the chunk being filled, and the thread sending them.
struct Feed {
    buf: Vec<u8>,
    chunk: usize,
    tx: SyncSender<Msg>,
    /// Chunks sent, coming back to be filled again.
    spare: Receiver<Vec<u8>>,
    thread: JoinHandle<Result<()>>,
}

impl Feed {
    /// The thread holds `busy` until it is done.
    fn start(repo: &Repository, chunk: usize, busy: Busy) -> Option<Feed> {
        let (tx, rx) = mpsc::sync_channel(QUEUED);
        let (spare_tx, spare) = mpsc::channel();
        let repo = repo.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-stream".into())
            .spawn(move || {
                let _busy = busy;
                send_all(&repo, chunk, rx, spare_tx)
            })
            .ok()?;
        Some(Feed {
            buf: Vec::with_capacity(chunk),
            chunk,
            tx,
            spare,
            thread,
        })
    }

    /// Queue `data`; false once the upload has given up.
    fn push(&mut self, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let n = (self.chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == self.chunk && !self.send_buf() {
                return false;
            }
        }
        true
    }

    fn send_buf(&mut self) -> bool {
        let full = std::mem::take(&mut self.buf);
        if self.tx.send(Msg::Chunk(full)).is_err() {
            return false;
        }
        // The thread takes a chunk only after returning the one it sent before: refill that one.
        self.buf = match self.spare.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Vec::with_capacity(self.chunk),
        };
        true
    }

    /// Send what is left and the end; the thread to wait for, unless the upload has already given up.
    fn end(mut self, digest: &Digest, size: u64) -> Option<JoinHandle<Result<()>>> {
        if !self.buf.is_empty() && !self.send_buf() {
            return None;
        }
        let end = Msg::End {
            digest: digest.clone(),
            size,
        };
        self.tx.send(end).ok().map(|()| self.thread)
    }
}

/// The upload thread: open a session, send chunks as they come, commit at `End`. Dropping the [`Feed`] before
/// `End` cancels the session.
fn send_all(
    repo: &Repository,
    chunk: usize,
    rx: Receiver<Msg>,
    spare: Sender<Vec<u8>>,
) -> Result<()> {
    let result = stream(repo, chunk, rx, spare);
    if let Err(e) = &result {
        repo.log(format_args!(
            "streamed layer upload given up ({e}); the layer is pushed from its file"
        ));
    }
    result
}

fn stream(
    repo: &Repository,
    chunk: usize,
    rx: Receiver<Msg>,
    spare: Sender<Vec<u8>>,
) -> Result<()> {
    let mut session = Session::open(repo, chunk)?;
    let result = (|| {
        for msg in &rx {
            match msg {
                Msg::Chunk(b) => {
                    let b = session.patch(b)?;
                    let _ = spare.send(b);
                }
                Msg::End { digest, size } => return session.commit(&digest, size),
            }
        }
        Err(protocol_error(
            "PATCH",
            &session.loc,
            None,
            "abandoned: the layer was not completed",
        ))
    })();
    if result.is_err() {
        session.cancel();
    }
    result
}

/// One upload session, fed chunk by chunk.
struct Session<'a> {
    repo: &'a Repository,
    ep: std::sync::Arc<Endpoint>,
    scopes: Vec<String>,
    loc: Url,
    /// Bytes accepted so far.
    offset: u64,
}

impl<'a> Session<'a> {
    fn open(repo: &'a Repository, chunk: usize) -> Result<Self> {
        let ep = repo.endpoint()?;
        let scopes = repo.push_scope();
        let url = repo.url(&ep, "blobs/uploads/");
        let req = Request::new(Method::POST, url.clone(), &scopes)
            .no_retry()
            .header(CONTENT_LENGTH, "0");
        let resp = expect("POST", &url, repo.client.t.send(&ep, &req)?, 202)?;
        let loc = location_of("POST", &url, &resp)?;
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
        if let Some(min) = min.filter(|m| *m > chunk as u64) {
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

    /// Send `buf` as the next chunk; the buffer comes back to be reused.
    fn patch(&mut self, buf: Vec<u8>) -> Result<Vec<u8>> {
        let len = buf.len() as u64;
        let req = chunk_request(&self.loc, &self.scopes, self.offset, len, Body::bytes(buf));
        let resp = self.repo.client.t.send(&self.ep, &req)?;
        let resp = expect("PATCH", &self.loc, resp, 202)?;
        self.loc = location_of("PATCH", &self.loc, &resp)?;
        self.offset += len;
        let Body::Bytes(mut shared) = req.body else {
            unreachable!("the body given above")
        };
        // The chunk comes back for refilling once the transport lets go of it, which it does as it finishes the
        // request (the answer is in): wait briefly rather than allocate another 4 MiB, so at most QUEUED + 2
        // chunks ever exist.
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
            &self.repo.client.t,
            &self.ep,
            &self.loc,
            &self.scopes,
            digest,
            Body::Empty,
        )
    }

    /// Best effort: tell the registry the session is abandoned.
    fn cancel(&self) {
        let req = Request::new(Method::DELETE, self.loc.clone(), &self.scopes).no_retry();
        let _ = self.repo.client.t.send(&self.ep, &req);
    }
}
