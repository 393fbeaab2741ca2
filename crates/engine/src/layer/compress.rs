//! The pinned layer encoders: the compressed bytes must be a function of the tar and the level only.

use std::io::{self, Write};

use crate::error::{Error, Result};

/// Layer compression. The encoder decides the blob digest, so it is pinned (see README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip { level: u32 },
    Zstd { level: i32 },
    None,
}

/// Which encoder, before a level is chosen: `--compression` and kiln.toml's `compression`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionKind {
    Gzip,
    Zstd,
    None,
}

impl CompressionKind {
    pub const NAMES: [&'static str; 3] = ["gzip", "zstd", "none"];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl std::str::FromStr for CompressionKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "gzip" => Ok(CompressionKind::Gzip),
            "zstd" => Ok(CompressionKind::Zstd),
            "none" => Ok(CompressionKind::None),
            _ => Err(Error::invalid_arg(
                "--compression",
                s,
                "expected gzip, zstd or none",
            )),
        }
    }
}

/// Revision of the bytes kiln's gzip encoders write (crates/pgzip: kiln's level 1 and zlib-rs's 2-9) and of the
/// zstd parameters: bump it in the commit that changes any of them (the golden tests in crates/pgzip and
/// testdata/golden.txt fail then). Registry blobs recorded with another revision are never reused.
pub const ENCODER_REVISION: u32 = 1;

/// gzip level when none is given: level 1 is kiln's own deflate (crates/pgzip), about twice as fast as zlib-rs at
/// level 2 and smaller than `igzip -1` on build output; levels 2-9 are zlib-rs's.
pub const DEFAULT_GZIP_LEVEL: i32 = 1;
/// zstd level when none is given (zstd's own default).
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

impl Compression {
    /// The one rule for compression levels (flags, kiln.toml and the encoder all ask it): gzip 1-9, zstd 1-19,
    /// none takes none. `Err` says why (`gzip levels are 1-9`), for the caller to put beside the flag or the file's
    /// line.
    pub fn new(
        kind: CompressionKind,
        level: Option<i32>,
    ) -> std::result::Result<Compression, String> {
        match (kind, level) {
            (CompressionKind::Gzip, l) => {
                let level = l.unwrap_or(DEFAULT_GZIP_LEVEL);
                match u32::try_from(level) {
                    Ok(l @ 1..=9) => Ok(Compression::Gzip { level: l }),
                    _ => Err("gzip levels are 1-9".into()),
                }
            }
            (CompressionKind::Zstd, l) => {
                let level = l.unwrap_or(DEFAULT_ZSTD_LEVEL);
                match level {
                    1..=19 => Ok(Compression::Zstd { level }),
                    _ => Err("zstd levels are 1-19".into()),
                }
            }
            (CompressionKind::None, None) => Ok(Compression::None),
            (CompressionKind::None, Some(_)) => Err("compression \"none\" takes no level".into()),
        }
    }

    pub fn kind(&self) -> CompressionKind {
        match self {
            Compression::Gzip { .. } => CompressionKind::Gzip,
            Compression::Zstd { .. } => CompressionKind::Zstd,
            Compression::None => CompressionKind::None,
        }
    }

    /// How a blob of this compression is made, exactly enough that two blobs of the same tar with the same
    /// encoding are the same bytes: the encoder, its level and the revision of kiln's encoders (libzstd's
    /// version for zstd). Recorded on each layer of the manifest (`image::ANNOTATION_LAYER_ENCODING`) so a fresh
    /// runner may reuse a registry's blob for a tar it hashed (`publish::known_layers`) only when compressing it
    /// again would give the same bytes.
    pub fn encoding(&self) -> String {
        match *self {
            Compression::Gzip { level } => {
                format!("gzip;level={level};kiln-encoders={ENCODER_REVISION}")
            }
            Compression::Zstd { level } => format!(
                "zstd;level={level};libzstd={};kiln-encoders={ENCODER_REVISION}",
                zstd::zstd_safe::version_string()
            ),
            Compression::None => "tar".into(),
        }
    }

    /// This compression's level, if it has one.
    pub fn level(&self) -> Option<i32> {
        match *self {
            Compression::Gzip { level } => Some(level as i32),
            Compression::Zstd { level } => Some(level),
            Compression::None => None,
        }
    }

    pub fn media_type(&self) -> oci_spec::image::MediaType {
        use oci_spec::image::MediaType;
        match self {
            Compression::Gzip { .. } => MediaType::ImageLayerGzip,
            Compression::Zstd { .. } => MediaType::ImageLayerZstd,
            Compression::None => MediaType::ImageLayer,
        }
    }
}

pub(super) fn write_error(e: io::Error) -> Error {
    Error::io("writing the layer", e)
}

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
