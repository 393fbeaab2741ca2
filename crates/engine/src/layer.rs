//! Turn walked entries into one layer blob in one pass: tar → sha256 (diff_id) → compressor → sink.
//!
//! The tar bytes depend only on the entries and `LayerOptions`: owners, times and names are normalized, headers
//! are written by hand (`header`), and the encoders are pinned (gzip header without name or time, zstd always in
//! multi-threaded mode whose output does not depend on the worker count). Files are read straight into one
//! reused 1 MiB buffer that is handed to the hasher and compressor in big writes; a file that changes while it
//! is read is an error, never a silently different layer.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::sync::mpsc;

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::walk::{Entry, EntryKind};

mod compress;
mod header;

pub use kiln_pgzip::{BlockTable, OldBlocks, Reuse};
#[cfg(test)]
mod tests;

pub use compress::{Compression, CompressionKind};
use compress::{Compressor, write_error};
use header::{BLOCK, Fields};

/// How entries are normalized in the tar stream.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// mtime of every entry (SOURCE_DATE_EPOCH, default 0).
    pub mtime: u64,
    pub uid: u32,
    pub gid: u32,
    pub compression: Compression,
    /// Also hash each regular file (sha256 and sha1, for the SBOM: `LayerInfo::files`) from the bytes read for
    /// the tar, so an SBOM costs no second read. Not part of the layer's bytes.
    pub file_digests: bool,
}

/// A regular file's (entry index, sha256, sha1), from the bytes read for the tar.
pub type FileDigests = (usize, [u8; 32], [u8; 20]);

/// What the layer step knows once the stream is written; the blob digest and size come from the sink.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// Where the gzip blob's deflated blocks are, when `Reuse::record` asked for it (else empty).
    pub blocks: BlockTable,
    /// With `LayerOptions::file_digests`: each regular file's (entry index, sha256, sha1), in order.
    pub files: Vec<FileDigests>,
}

/// Size of the buffer files are read into and the tar stream is written from.
const BUF_SIZE: usize = 1 << 20;

/// Write the layer for `entries` (from `walk`) as a compressed tar into `sink`, hashing the tar on the way.
/// Returns the sink (finished compressor output fully written into it, not flushed further) and the diff_id.
///
/// Two threads, one pass: a scoped thread reads the files into the tar stream and hashes it (the diff_id), this
/// thread compresses and writes to `sink` (which therefore need not be `Send`); 1 MiB buffers go back and forth.
#[cfg(test)]
pub fn write_layer<W: Write>(
    entries: &[Entry],
    opts: &LayerOptions,
    sink: W,
) -> Result<(LayerInfo, W)> {
    write_layer_with_progress(entries, opts, sink, Reuse::default(), &mut |_| {})
}

/// [`write_layer`], reusing and recording gzip blocks as `reuse` says, and calling `progress` (on this thread)
/// with the number of tar bytes compressed so far after each chunk: progress bars (`kiln build` on a terminal)
/// compare it with the walk's total.
pub fn write_layer_with_progress<W: Write>(
    entries: &[Entry],
    opts: &LayerOptions,
    sink: W,
    reuse: Reuse,
    progress: &mut dyn FnMut(u64),
) -> Result<(LayerInfo, W)> {
    let mut compressor = Compressor::new(opts.compression, sink, reuse)?;
    let (full_tx, full_rx) = mpsc::sync_channel::<Chunk>(BUFFERS - 2);
    let (empty_tx, empty_rx) = mpsc::channel::<Chunk>();
    let (produced, written) = std::thread::scope(|s| {
        let producer = s.spawn(move || {
            let mut out = TarOut {
                chunk: Chunk::new(),
                allocated: 1,
                hasher: HashingWriter::new(io::sink()),
                full: full_tx,
                empty: empty_rx,
                file_spans: opts.file_digests,
            };
            produce(&mut out, entries, opts)?;
            let (diff_id, tar_size, _) = out.hasher.finish();
            Ok(LayerInfo {
                diff_id,
                tar_size,
                blocks: BlockTable::default(),
                files: Vec::new(),
            })
        });
        // Consumer. On a write error, dropping `full_rx` (by leaving the loop) stops the producer.
        let mut written = Ok(());
        let mut done = 0u64;
        let mut hashes = FileHashes::default();
        for chunk in full_rx {
            if let Err(e) = chunk.write_to(&mut compressor) {
                written = Err(write_error(e));
                break;
            }
            // The files' own digests, on this thread while the reading one fills the next chunk.
            hashes.feed(&chunk);
            done += chunk.len as u64;
            progress(done);
            // The producer may be done and gone: nothing to recycle then.
            let _ = empty_tx.send(chunk);
        }
        // Whatever happened, the producer must not wait for a buffer that will not come back.
        drop(empty_tx);
        let produced: Result<LayerInfo> = match producer.join() {
            Ok(r) => r.map(|info| LayerInfo {
                files: std::mem::take(&mut hashes.done),
                ..info
            }),
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (produced, written)
    });
    // A sink error explains a producer that stopped because nobody was listening any more.
    written?;
    let mut info = produced?;
    let (sink, blocks) = compressor.finish().map_err(write_error)?;
    info.blocks = blocks;
    Ok((info, sink))
}

/// Buffers in flight: one being filled, one queued, one being compressed.
const BUFFERS: usize = 3;

fn produce(out: &mut TarOut, entries: &[Entry], opts: &LayerOptions) -> Result<()> {
    let mut headers = Vec::with_capacity(4 * BLOCK);
    for (i, e) in entries.iter().enumerate() {
        out.mark();
        write_entry(out, &mut headers, e, opts, i)?;
    }
    // End of archive: two zero blocks.
    out.mark();
    out.put(&[0; 2 * BLOCK])?;
    out.flush()
}

fn write_entry(
    out: &mut TarOut,
    headers: &mut Vec<u8>,
    e: &Entry,
    opts: &LayerOptions,
    index: usize,
) -> Result<()> {
    let path = e.path.as_os_str().as_bytes();
    if path.is_empty() || path[0] == b'/' || path.contains(&0) {
        return Err(Error::input(
            &e.path,
            "is not a valid path inside a layer (expected a relative path without NUL)",
        ));
    }
    let mut dir_path;
    let (typeflag, path, link, size) = match &e.kind {
        EntryKind::Dir => {
            dir_path = Vec::with_capacity(path.len() + 1);
            dir_path.extend_from_slice(path);
            dir_path.push(b'/');
            (header::DIRECTORY, &dir_path[..], &b""[..], 0)
        }
        EntryKind::File { size } => (header::REGULAR, path, &b""[..], *size),
        EntryKind::Symlink { target } => (header::SYMLINK, path, target.as_os_str().as_bytes(), 0),
        EntryKind::Hardlink { target } => {
            (header::HARDLINK, path, target.as_os_str().as_bytes(), 0)
        }
    };
    if link.contains(&0)
        || (typeflag != header::REGULAR && typeflag != header::DIRECTORY && link.is_empty())
    {
        return Err(Error::input(
            &e.path,
            "has an empty link target or one containing NUL",
        ));
    }
    // Open before writing the header: a file that cannot be read fails cleanly.
    let file = match &e.kind {
        EntryKind::File { .. } => {
            let src = e.source.as_deref().ok_or_else(|| {
                Error::input(
                    &e.path,
                    "is a regular file without a source path to read it from",
                )
            })?;
            Some((open_source(src)?, src))
        }
        _ => None,
    };
    headers.clear();
    header::encode(
        headers,
        &Fields {
            path,
            link,
            typeflag,
            mode: e.mode,
            size,
            uid: e.from_base.as_ref().map_or(opts.uid.into(), |b| b.uid),
            gid: e.from_base.as_ref().map_or(opts.gid.into(), |b| b.gid),
            mtime: e.from_base.as_ref().map_or(opts.mtime, |b| b.mtime),
        },
    );
    out.put(headers)?;
    if let Some((mut f, src)) = file {
        out.copy_file(&mut f, size, src, index)?;
        check_unchanged(&f, size, e.stamp, src)?;
        out.put(&[0; BLOCK][..header::padding(size)])?;
    }
    Ok(())
}

/// Open a walked regular file without following a symlink that replaced it, and without blocking if it was
/// replaced by a FIFO (the fstat after reading notices either way).
fn open_source(src: &Path) -> Result<File> {
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(src)
        .map_err(|e| Error::io(src, e))
}

/// After reading: the file must still be the one the walk saw, with the size that was read.
fn check_unchanged(
    f: &File,
    size: u64,
    stamp: (i64, i64, i64, i64, u64),
    src: &Path,
) -> Result<()> {
    let md = f.metadata().map_err(|e| Error::io(src, e))?;
    let now = (
        md.mtime(),
        md.mtime_nsec(),
        md.ctime(),
        md.ctime_nsec(),
        md.ino(),
    );
    if !md.is_file() || md.len() != size || now != stamp {
        let what = if !md.is_file() || md.ino() != stamp.4 {
            "was replaced by another file".to_string()
        } else if md.len() != size {
            format!("size went from {size} to {} bytes", md.len())
        } else {
            "it was modified".to_string()
        };
        return Err(changed(src, &what));
    }
    Ok(())
}

fn changed(src: &Path, what: &str) -> Error {
    Error::input(
        src,
        format!(
            "changed while it was being read; {what}. Build the image once the build output is complete \
             (nothing may write into it while kiln runs)"
        ),
    )
}

/// Only seen if the compressing side stopped without an error of its own (it cannot, short of a panic).
fn consumer_gone() -> Error {
    write_error(io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the compressor stopped",
    ))
}

/// A buffer of the tar stream, `len` bytes of it used; `marks`: where entries start in it.
struct Chunk {
    buf: Box<[u8]>,
    len: usize,
    marks: Vec<usize>,
    /// Where each file's bytes are in `buf`, when their digests are asked for (`LayerOptions::file_digests`):
    /// hashed by the compressing thread ([`FileHashes`]), so the reading thread only reads.
    spans: Vec<Span>,
}

/// A file's bytes in a chunk: entry `index`, `buf[start..end]`, and whether they are its last.
struct Span {
    index: usize,
    start: usize,
    end: usize,
    last: bool,
}

/// Each file's sha256 and sha1 over its spans, in order (the compressing thread's side of `file_digests`).
#[derive(Default)]
struct FileHashes {
    current: Option<(usize, sha2::Sha256, sha1::Sha1)>,
    done: Vec<FileDigests>,
}

impl FileHashes {
    fn feed(&mut self, chunk: &Chunk) {
        use sha1::Digest as _;
        for s in &chunk.spans {
            let (_, a, b) = match &mut self.current {
                Some(c) if c.0 == s.index => c,
                _ => self
                    .current
                    .insert((s.index, sha2::Sha256::new(), sha1::Sha1::new())),
            };
            let bytes = &chunk.buf[s.start..s.end];
            a.update(bytes);
            b.update(bytes);
            if s.last
                && let Some((i, a, b)) = self.current.take()
            {
                self.done
                    .push((i, a.finalize().into(), b.finalize().into()));
            }
        }
    }
}

impl Chunk {
    fn new() -> Self {
        Chunk {
            buf: vec![0; BUF_SIZE].into_boxed_slice(),
            len: 0,
            marks: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// Hand the bytes to the compressor, telling it where each entry starts.
    fn write_to<W: Write>(&self, c: &mut Compressor<W>) -> io::Result<()> {
        let mut at = 0;
        for &m in &self.marks {
            c.write_all(&self.buf[at..m])?;
            c.mark()?;
            at = m;
        }
        c.write_all(&self.buf[at..self.len])
    }
}

/// The producing end of the tar stream: files are read straight into the current chunk; a full chunk is hashed
/// and handed to the compressing thread.
struct TarOut {
    chunk: Chunk,
    allocated: usize,
    hasher: HashingWriter<io::Sink>,
    full: mpsc::SyncSender<Chunk>,
    empty: mpsc::Receiver<Chunk>,
    /// Record where each file's bytes are (`LayerOptions::file_digests`).
    file_spans: bool,
}

impl TarOut {
    fn flush(&mut self) -> Result<()> {
        if self.chunk.len == 0 {
            return Ok(());
        }
        self.hasher
            .write_all(&self.chunk.buf[..self.chunk.len])
            .map_err(write_error)?;
        let next = match self.empty.try_recv() {
            Ok(c) => c,
            Err(_) if self.allocated < BUFFERS => {
                self.allocated += 1;
                Chunk::new()
            }
            Err(_) => self.empty.recv().map_err(|_| consumer_gone())?,
        };
        let full = std::mem::replace(&mut self.chunk, next);
        self.chunk.len = 0;
        self.chunk.marks.clear();
        self.chunk.spans.clear();
        self.full.send(full).map_err(|_| consumer_gone())?;
        Ok(())
    }

    /// An entry starts at the current position of the stream.
    fn mark(&mut self) {
        self.chunk.marks.push(self.chunk.len);
    }

    fn put(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            if self.chunk.len == self.chunk.buf.len() {
                self.flush()?;
            }
            let n = bytes.len().min(self.chunk.buf.len() - self.chunk.len);
            self.chunk.buf[self.chunk.len..self.chunk.len + n].copy_from_slice(&bytes[..n]);
            self.chunk.len += n;
            bytes = &bytes[n..];
        }
        Ok(())
    }

    /// Read exactly `size` bytes of `f` into the stream; fewer is an error (the file shrank).
    fn copy_file(&mut self, f: &mut File, size: u64, src: &Path, index: usize) -> Result<()> {
        let mut left = size;
        let mut start = self.chunk.len;
        while left > 0 {
            if self.chunk.len == self.chunk.buf.len() {
                self.span(index, start, false);
                self.flush()?;
                start = 0;
            }
            let room = (self.chunk.buf.len() - self.chunk.len)
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            match f.read(&mut self.chunk.buf[self.chunk.len..self.chunk.len + room]) {
                Ok(0) => {
                    let what = format!("it ended after {} of {size} bytes", size - left);
                    return Err(changed(src, &what));
                }
                Ok(n) => {
                    self.chunk.len += n;
                    left -= n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(src, e)),
            }
        }
        self.span(index, start, true);
        Ok(())
    }

    /// File `index`'s bytes from `start` to the end of the current chunk (`file_spans`).
    fn span(&mut self, index: usize, start: usize, last: bool) {
        if self.file_spans {
            let end = self.chunk.len;
            self.chunk.spans.push(Span {
                index,
                start,
                end,
                last,
            });
        }
    }
}
