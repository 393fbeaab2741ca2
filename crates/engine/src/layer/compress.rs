//! The pinned layer encoders: the compressed bytes must be a function of the tar and the level only.

use std::io::{self, Write};

use super::{Compression, write_error};
use crate::error::{Error, Result};

/// zstd job size in bytes (fixed: the output depends on it, never on the worker count).
const ZSTD_JOB_SIZE: u32 = 1 << 21;
/// Most zstd workers used; the output is the same for any count ≥ 1.
const MAX_ZSTD_WORKERS: usize = 4;

/// The pinned encoders.
pub(super) enum Compressor<W: Write> {
    /// Parallel, fixed block format (see `pgzip`): the same bytes for any thread count.
    Gzip(kiln_pgzip::ParGzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
    None(W),
}

impl<W: Write> Compressor<W> {
    /// `reuse` applies to gzip only (see `pgzip`): zstd and uncompressed layers are not cut into blocks.
    pub(super) fn new(c: Compression, sink: W, reuse: kiln_pgzip::Reuse) -> Result<Self> {
        // A plan made elsewhere than the CLI gets the same check as a flag.
        Compression::new(c.kind(), c.level())
            .map_err(|why| Error::Usage(format!("compression {c:?}: {why}")))?;
        Ok(match c {
            Compression::Gzip { level } => {
                let workers = kiln_pgzip::default_workers();
                let enc = kiln_pgzip::ParGzEncoder::with_reuse(sink, level, workers, reuse)
                    .map_err(write_error)?;
                Compressor::Gzip(enc)
            }
            Compression::Zstd { level } => {
                let mut enc =
                    zstd::stream::write::Encoder::new(sink, level).map_err(write_error)?;
                // Multi-threaded mode always (≥ 1 worker): its output is the same for any worker count, and differs
                // from single-threaded mode, so the blob never depends on the machine.
                enc.multithread(zstd_workers()).map_err(write_error)?;
                // A fixed job size (part of the format: it decides where jobs split) bounds memory: zstd's default
                // at level 3 is several times the window per worker, which took peak RSS past 90 MiB.
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(ZSTD_JOB_SIZE))
                    .map_err(write_error)?;
                enc.include_checksum(true).map_err(write_error)?;
                Compressor::Zstd(enc)
            }
            Compression::None => Compressor::None(sink),
        })
    }

    /// The sink, and the gzip blocks' table (empty for other encoders or when not recording).
    pub(super) fn finish(self) -> io::Result<(W, kiln_pgzip::BlockTable)> {
        match self {
            Compressor::Gzip(e) => e.finish(),
            Compressor::Zstd(e) => Ok((e.finish()?, Default::default())),
            Compressor::None(w) => Ok((w, Default::default())),
        }
    }

    /// A tar entry starts here (gzip cuts its blocks at entries; the others ignore it).
    pub(super) fn mark(&mut self) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.mark(),
            Compressor::Zstd(_) | Compressor::None(_) => Ok(()),
        }
    }
}

fn zstd_workers() -> u32 {
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    n.clamp(1, MAX_ZSTD_WORKERS) as u32
}

impl<W: Write> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::Gzip(e) => e.write(buf),
            Compressor::Zstd(e) => e.write(buf),
            Compressor::None(w) => w.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::Gzip(e) => e.write_all(buf),
            Compressor::Zstd(e) => e.write_all(buf),
            Compressor::None(w) => w.write_all(buf),
        }
    }

    /// Deliberately does not flush the encoders: a gzip sync flush or a zstd block end would change the bytes of
    /// the blob depending on when it was called. Everything is written by `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
