//! Request bodies that can be produced again for a retry: a file is reopened at its offset, never held in memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};

use crate::error::{Error, Result};

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
pub(crate) struct ReadProgress(pub Arc<dyn Fn(u64) + Send + Sync>);

impl std::fmt::Debug for ReadProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReadProgress")
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

    /// Whether it is a file, streamed from disk: such a request gets no whole-request timeout (see `http`).
    pub fn is_file(&self) -> bool {
        matches!(self, Body::File { .. })
    }

    /// A file body's frames for one attempt through the async client (see `http::Http::send_file`).
    pub fn frames(&self) -> Result<Option<(FileFrames, u64)>> {
        match self {
            Body::File {
                path,
                offset,
                len,
                progress,
            } => {
                let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
                f.seek(SeekFrom::Start(*offset))
                    .map_err(|e| Error::io(path, e))?;
                Ok(Some((
                    FileFrames::new(f, *offset, *len, progress.clone()),
                    *len,
                )))
            }
            _ => Ok(None),
        }
    }

    /// A fresh reqwest body for one attempt through the blocking client (`None`: no body). A file body never
    /// comes here: it goes through the async client frame by frame (`frames`, `http::Http::send_file`), so that
    /// its wait is bounded by progress rather than by a whole-request deadline.
    pub fn make(&self) -> Option<reqwest::blocking::Body> {
        debug_assert!(!self.is_file(), "file bodies are sent by Http::send_file");
        match self {
            Body::Bytes(b) => Some(bytes::Bytes::from_owner(Shared(b.clone())).into()),
            Body::Empty | Body::File { .. } => None,
        }
    }
}

/// Frames of a file region, read as the connection takes them.
pub(crate) struct FileFrames {
    reader: std::io::Take<std::fs::File>,
    left: u64,
    pos: u64,
    progress: Option<ReadProgress>,
}

/// Frames of at most this size: small enough that a slow link still takes one within any sane timeout.
const FRAME: u64 = 256 * 1024;

impl FileFrames {
    pub fn new(file: std::fs::File, offset: u64, len: u64, progress: Option<ReadProgress>) -> Self {
        if let Some(p) = &progress {
            (p.0)(offset);
        }
        FileFrames {
            reader: file.take(len),
            left: len,
            pos: offset,
            progress,
        }
    }
}

impl http_body::Body for FileFrames {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.left == 0 {
            return Poll::Ready(None);
        }
        // A read of the page cache or a local disk: short enough to do in place.
        let want = self.left.min(FRAME) as usize;
        let mut buf = vec![0; want];
        let mut got = 0;
        while got < want {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Some(Err(e))),
            }
        }
        if got == 0 {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the file is shorter than the blob",
            ))));
        }
        buf.truncate(got);
        self.left -= got as u64;
        self.pos += got as u64;
        if let Some(p) = &self.progress {
            (p.0)(self.pos);
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(buf)))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}
