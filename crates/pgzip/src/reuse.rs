//! Reuse of an earlier stream's compressed blocks: their keys, where they are in the earlier stream, and how to
//! read them back.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

/// The identity of a deflated block: a hash of everything its compressed bytes depend on.
pub type BlockKey = [u8; 16];

/// Where a stream's deflated blocks are in it (stored blocks are not listed: storing costs nothing to redo).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockTable {
    /// Key, byte offset in the gzip stream, length.
    pub blocks: Vec<(BlockKey, u64, u32)>,
    /// How many of them this stream copied from an earlier one (not part of a stored table).
    pub reused: usize,
}

/// The compressed blocks of an earlier stream: its table and its file, read where a key recurs.
pub struct OldBlocks {
    file: File,
    index: HashMap<BlockKey, (u64, u32)>,
}

impl OldBlocks {
    /// `file` must hold the stream `table` was recorded from (the caller checks it is that blob).
    pub fn new(file: File, table: &BlockTable) -> Self {
        let index = table
            .blocks
            .iter()
            .map(|(k, o, l)| (*k, (*o, *l)))
            .collect();
        OldBlocks { file, index }
    }

    /// The compressed bytes of the block with `key`, if the earlier stream had it and they can be read.
    pub(crate) fn read(&self, key: &BlockKey, out: &mut Vec<u8>) -> bool {
        let Some(&(offset, len)) = self.index.get(key) else {
            return false;
        };
        out.clear();
        out.resize(len as usize, 0);
        self.file.read_exact_at(out, offset).is_ok()
    }
}

/// What the workers share: whether to key blocks, and the earlier stream's blocks.
#[derive(Clone, Default)]
pub struct Reuse {
    /// Compute every deflated block's key, for a [`BlockTable`] of this stream.
    pub record: bool,
    pub old: Option<Arc<OldBlocks>>,
}
