//! Turn walked entries into one layer blob in one pass: tar → sha256 (diff_id) → compressor → sink.
//! (Stub: the interface is fixed, the implementation is being written.)

use std::io::Write;

use crate::digest::Digest;
use crate::error::Result;
use crate::walk::Entry;

/// Layer compression. The encoder decides the blob digest, so it is pinned (see README).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip { level: u32 },
    Zstd { level: i32 },
    None,
}

impl Compression {
    pub fn media_type(&self) -> oci_spec::image::MediaType {
        use oci_spec::image::MediaType;
        match self {
            Compression::Gzip { .. } => MediaType::ImageLayerGzip,
            Compression::Zstd { .. } => MediaType::ImageLayerZstd,
            Compression::None => MediaType::ImageLayer,
        }
    }
}

/// How entries are normalized in the tar stream.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    /// mtime of every entry (SOURCE_DATE_EPOCH, default 0).
    pub mtime: u64,
    pub uid: u64,
    pub gid: u64,
    pub compression: Compression,
}

/// What the layer step knows once the stream is written; the blob digest and size come from the sink.
#[derive(Debug, Clone)]
pub struct LayerInfo {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
}

/// Write the layer for `entries` (from `walk`) as a compressed tar into `sink`, hashing the tar on the way.
/// Returns the sink (finished compressor output fully written into it, not flushed further) and the diff_id.
pub fn write_layer<W: Write>(
    entries: &[Entry],
    opts: &LayerOptions,
    sink: W,
) -> Result<(LayerInfo, W)> {
    let _ = (entries, opts);
    let _ = sink;
    unimplemented!("write_layer")
}
