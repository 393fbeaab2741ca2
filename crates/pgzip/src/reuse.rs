//! Reuse of an earlier stream's compressed blocks: their keys, where they are in the earlier stream, and how to
//! read them back.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The identity of a deflated block: a hash of everything its compressed bytes depend on.
pub type BlockKey = [u8; 16];

/// Where a stream's deflated blocks are in it (stored blocks are not listed: storing costs nothing to redo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockTable {
    /// Key, byte offset in the gzip stream, length, and CRC-32 of the compressed bytes (checked before a block
    /// is copied into a later stream).
    pub blocks: Vec<(BlockKey, u64, u32, u32)>,
    /// How many of them this stream copied from an earlier one (not part of a stored table).
    pub reused: usize,
}

/// The compressed blocks of an earlier stream: its table and its file, read where a key recurs.
///
/// The file is only known to have the right size: a block is copied only if its bytes still have the CRC-32
/// recorded with it, so a damaged earlier blob (a flipped bit on disk, an edited cache) costs compressing those
/// blocks again instead of a broken layer. Per block rather than a digest of the whole earlier blob up front:
/// the CRC runs on bytes read anyway (at several GB/s, a few percent of copying them), while hashing the whole
/// blob first would read and SHA-256 every byte of it, used or not, on every changed build.
pub struct OldBlocks {
    file: File,
    index: HashMap<BlockKey, (u64, u32, u32)>,
    damaged: AtomicUsize,
}

impl OldBlocks {
    /// `file` must hold the stream `table` was recorded from (the caller checks it is that blob, by size).
    pub fn new(file: File, table: &BlockTable) -> Self {
        let index = table
            .blocks
            .iter()
            .map(|(k, o, l, c)| (*k, (*o, *l, *c)))
            .collect();
        OldBlocks {
            file,
            index,
            damaged: AtomicUsize::new(0),
        }
    }

    /// The compressed bytes of the block with `key` into `out`, and their CRC-32, if the earlier stream had it
    /// and they can be read intact.
    pub(crate) fn read(&self, key: &BlockKey, out: &mut Vec<u8>) -> Option<u32> {
        let &(offset, len, crc) = self.index.get(key)?;
        out.clear();
        out.resize(len as usize, 0);
        self.file.read_exact_at(out, offset).ok()?;
        if zlib_rs::crc32::crc32(0, out) != crc {
            self.damaged.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(crc)
    }

    /// How many blocks were found damaged (and compressed again instead).
    pub fn damaged(&self) -> usize {
        self.damaged.load(Ordering::Relaxed)
    }
}

/// What the workers share: whether to key blocks, and the earlier stream's blocks.
#[derive(Clone, Default)]
pub struct Reuse {
    /// Compute every deflated block's key, for a [`BlockTable`] of this stream.
    pub record: bool,
    pub old: Option<Arc<OldBlocks>>,
}
