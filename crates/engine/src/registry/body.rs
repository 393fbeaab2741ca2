//! Request bodies that can be produced again for a retry: a file is reopened at its offset, never held in memory.

use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

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

    /// Whether it is a file, streamed from disk: such a request gets no whole-request timeout (see `http`).
    pub fn is_file(&self) -> bool {
        matches!(self, Body::File { .. })
    }

    /// A fresh reqwest body for one attempt (`None`: no body).
    pub fn make(&self) -> Result<Option<reqwest::blocking::Body>> {
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
