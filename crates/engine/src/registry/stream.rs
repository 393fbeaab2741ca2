//! Uploading a layer while it is still being compressed.
//!
//! Without this, a cold `kiln build --to REGISTRY` compresses a layer into the cache layout and only then uploads
//! the finished file: the two take about as long each on a fast link, one after the other. A [`StreamTee`] sits
//! between the compressor and the blob file instead: everything written to the file is also queued, in small
//! buffers, for a thread that sends it while compression goes on, as the body of one `PATCH` of an upload
//! session with chunked transfer encoding — the OCI distribution spec's streamed upload, which is what docker,
//! containerd and skopeo send (`POST` opens the session; the `PATCH` carries the bytes, no `Content-Range`,
//! length unknown until the end; the closing `PUT <location>?digest=` commits the blob once the compressor has
//! finished and the digest is known: [`StreamTee::finish`], in the background). With `--chunk-size N` the bytes go
//! as sized `PATCH`es of N bytes instead ("Pushing a blob in chunks",
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pushing-a-blob-in-chunks>), for
//! registries that want that. The early uploader then asks [`LayerStreams::wait`] whether the registry has the
//! blob, and pushes the finished file the usual way when it has not: a refused session (or an
//! `OCI-Chunk-Min-Length` above the chunk size), a failed `PATCH` or commit only cancel the session (`DELETE`,
//! best effort) and mean that fallback.
//!
//! One streamed `PATCH`, not a run of sized ones: each request costs the registry a round of session bookkeeping
//! (distribution reloads and saves the hash state and syncs the upload file per `PATCH`), and a sized chunk must
//! be buffered whole before any of it is sent. Measured on 2 cores with a local distribution registry: the same
//! 126 MiB blob pushed from a file, one sized `PUT` 0.77 s, one chunked `PATCH` 0.82 s, 4 MiB `PATCH`es 0.92 s;
//! a cold build+push of the `big` bench fixture (5 interleaved runs each), 4 MiB `PATCH`es 1.29 s and 0.67 s of
//! registry CPU, one streamed `PATCH` 1.17 s and 0.54 s, peak RSS 38 -> 29 MiB. (Streamed `PATCH`es of 32 MiB
//! each, 1.15 s, would save the registry's final sync of the whole file, but docker and containerd send one per
//! session and other registries need not append a second one; sized chunks above 4 MiB are refused by ghcr.io.)
//! At most [`QUEUED`] buffers wait while one is sent, so memory stays a few MiB whatever the layer size, and
//! compression waits for the upload rather than the other way round. The cost: a layer the registry already has
//! (same content, cold cache) is uploaded again, as its digest is unknown until the end (a warm layer cache never
//! recompresses it, and small layers are not streamed).

mod session;

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use super::client::Repository;
use crate::digest::Digest;
use crate::error::Result;
use session::{Msg, Session};

/// Buffer size of a streamed `PATCH`'s body: the compressor fills one while the upload thread sends another.
/// Small, as nothing needs a whole chunk before sending any of it; [`QUEUED`] of them let compression run a few
/// MiB ahead of the registry. A small layer gets smaller ones (down to [`MIN_BUFFER`], about a 32nd of its tar):
/// a rebuilt 4 MiB part compresses to about 1 MiB, which one whole buffer would hold back until the end.
const BUFFER: usize = 1 << 20;
const MIN_BUFFER: usize = 64 << 10;

/// Buffers waiting while one is being sent (of a streamed `PATCH`; with `--chunk-size`, one whole chunk waits).
const QUEUED: usize = 4;

/// The largest `--chunk-size` a layer is streamed with; above it layers are pushed from the file only.
const MAX_CHUNK: u64 = 16 << 20;

/// Only a layer whose tar is at least this big (with `--chunk-size`, this many chunks) is streamed into an empty
/// repository. A smaller one would gain little (the overlap is at most its upload time), while pushed from its
/// file it is skipped when the registry already has it; and `--split` parts are small and already overlap: they
/// are pushed while the next ones compress. A *changed* layer (its slot was built before, from other input) is
/// streamed whatever its size: it is new to the registry but for a revert, and on the usual rebuild it is the
/// only one compressed, so nothing else would overlap its upload (`small`'s one-file-changed rebuild+push, a 4.5
/// MiB part, with the config's session opened ahead as well: medians of 40 runs 48 -> 44 ms, 68 -> 56 ms on a
/// busier host).
const MIN_STREAMED: u64 = 32 << 20;
const MIN_CHUNKS: u64 = 8;

/// How a layer's bytes go up while it is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// One `PATCH` with chunked transfer encoding (the default).
    Streamed,
    /// `--chunk-size`: sized `PATCH`es of this many bytes.
    Chunks(usize),
}

impl Mode {
    /// The buffer size and how many buffers may wait, for a layer of about `tar_size` bytes of tar.
    fn buffers(self, tar_size: u64) -> (usize, usize) {
        match self {
            Mode::Streamed => {
                let b = usize::try_from(tar_size / 32).unwrap_or(BUFFER);
                (b.clamp(MIN_BUFFER, BUFFER), QUEUED)
            }
            Mode::Chunks(c) => (c, 1),
        }
    }

    /// The longest chunk the session will send: a streamed `PATCH` is one chunk of the whole blob, so any
    /// `OCI-Chunk-Min-Length` is met.
    fn chunk_len(self) -> u64 {
        match self {
            Mode::Streamed => u64::MAX,
            Mode::Chunks(c) => c as u64,
        }
    }

    /// Whether a layer is streamed: `changed`, one rebuilt from new input (see [`MIN_STREAMED`]).
    fn worth_streaming(self, tar_size: u64, changed: bool) -> bool {
        match self {
            Mode::Streamed => changed || tar_size >= MIN_STREAMED,
            Mode::Chunks(c) => tar_size >= MIN_CHUNKS * c as u64,
        }
    }
}

/// Streamed layer uploads to one repository, and those waiting to be confirmed.
pub struct LayerStreams {
    repo: Repository,
    /// The repository has no tags: any big layer may be streamed (else only changed ones).
    empty: bool,
    /// `None`: a `--chunk-size` too big to buffer; nothing is streamed.
    mode: Option<Mode>,
    pending: Mutex<Vec<(Digest, JoinHandle<Result<()>>)>>,
    /// One stream at a time (layers may compress two at once): memory stays that of one stream's chunks.
    busy: Arc<AtomicBool>,
}

impl LayerStreams {
    /// `empty`: the repository has no tags (a first push).
    pub fn new(repo: Repository, empty: bool) -> Self {
        let mode = match repo.client.options().chunk_size {
            Some(c) if c > 0 => (c <= MAX_CHUNK).then_some(Mode::Chunks(c as usize)),
            _ => Some(Mode::Streamed),
        };
        LayerStreams {
            repo,
            empty,
            mode,
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
    /// `tar_size`: about how many bytes the compressor will read; `changed`: the layer's slot was built before
    /// from other input. Only a big layer into an empty repository, or a changed one, is streamed
    /// ([`MIN_STREAMED`]), and only while no other stream is under way.
    pub fn new(inner: W, streams: Option<&'a LayerStreams>, tar_size: u64, changed: bool) -> Self {
        let stream = streams.and_then(|s| {
            let mode = s
                .mode
                .filter(|m| (s.empty || changed) && m.worth_streaming(tar_size, changed))?;
            let claimed = s
                .busy
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok();
            claimed.then_some(())?;
            Feed::start(&s.repo, mode, tar_size, Busy(s.busy.clone())).map(|f| (s, f))
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

/// The writing side of one streamed upload: the chunk being filled, and the thread sending them.
struct Feed {
    buf: Vec<u8>,
    chunk: usize,
    tx: tokio::sync::mpsc::Sender<Msg>,
    /// Chunks sent, coming back to be filled again.
    spare: Receiver<Vec<u8>>,
    thread: JoinHandle<Result<()>>,
}

impl Feed {
    /// The thread holds `busy` until it is done.
    fn start(repo: &Repository, mode: Mode, tar_size: u64, busy: Busy) -> Option<Feed> {
        let (chunk, queued) = mode.buffers(tar_size);
        // A tokio channel: the streamed PATCH's body polls it from the upload thread's runtime, while the
        // compressor's side blocks on it (it runs outside any runtime).
        let (tx, rx) = tokio::sync::mpsc::channel(queued);
        let (spare_tx, spare) = mpsc::channel();
        let repo = repo.clone();
        let thread = std::thread::Builder::new()
            .name("kiln-stream".into())
            .spawn(move || {
                let _busy = busy;
                send_all(&repo, mode, rx, spare_tx)
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
        if self.tx.blocking_send(Msg::Chunk(full)).is_err() {
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
        self.tx.blocking_send(end).ok().map(|()| self.thread)
    }
}

/// The upload thread: open a session, send chunks as they come, commit at `End`. Dropping the [`Feed`] before
/// `End` cancels the session.
fn send_all(
    repo: &Repository,
    mode: Mode,
    rx: tokio::sync::mpsc::Receiver<Msg>,
    spare: Sender<Vec<u8>>,
) -> Result<()> {
    let result = stream(repo, mode, rx, spare);
    if let Err(e) = &result {
        repo.log(format_args!(
            "streamed layer upload given up ({e}); the layer is pushed from its file"
        ));
    }
    result
}

fn stream(
    repo: &Repository,
    mode: Mode,
    rx: tokio::sync::mpsc::Receiver<Msg>,
    spare: Sender<Vec<u8>>,
) -> Result<()> {
    let mut session = Session::open(repo, mode.chunk_len())?;
    let result = match mode {
        Mode::Streamed => session.send_streamed(rx, spare),
        Mode::Chunks(_) => session.send_chunks(rx, spare),
    };
    if result.is_err() {
        session.cancel();
    }
    result
}
