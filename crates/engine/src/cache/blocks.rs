//! Gzip block tables in the layer cache: for each layer *slot* — where a layer sits in the image (its compression
//! and the path of its first entry, which `--split` keeps stable when a file inside the layer changes) — the blob
//! its last build produced and where that blob's deflated blocks are. A changed layer is then compressed only
//! where its blocks differ: the others are copied from the earlier blob (see `layer::pgzip`), byte for byte what
//! compressing them again would give.
//!
//! A record is a small binary file written atomically after its blob; a missing, stale or unreadable one only
//! means compressing everything again.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;

use sha2::{Digest as _, Sha256};

use super::LayerCache;
use crate::digest::Digest;
use crate::layer::{BlockTable, LayerOptions};
use crate::walk::Entry;

/// First line of a record: the format, so a future layout is never misread.
const MAGIC: &[u8] = b"kiln gzip blocks v1\n";
/// Bytes per block: key, offset, length.
const RECORD: usize = 16 + 8 + 4;

/// The blob a slot's last build produced and its block table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotBlocks {
    pub digest: Digest,
    pub size: u64,
    pub table: BlockTable,
}

impl LayerCache {
    /// The slot of a layer: its compression and the path of its first entry (`None`: an empty layer).
    pub fn slot(entries: &[Entry], opts: &LayerOptions) -> Option<String> {
        let first = entries.first()?;
        let mut h = Sha256::new();
        h.update(format!("kiln slot v1\n{:?}\n", opts.compression));
        h.update(first.path.as_os_str().as_bytes());
        Some(format!("slot-{}", hex::encode(h.finalize())))
    }

    /// The last block table recorded for `slot`.
    pub fn blocks(&self, slot: &str) -> Option<SlotBlocks> {
        decode(&fs::read(self.dir.join(slot)).ok()?)
    }

    /// Mark `slot`'s record as used now: a layer taken from the cache keeps its slot's blocks from being pruned
    /// (`prune.rs`), for when the layer does change.
    pub fn touch_slot(&self, slot: &str) {
        super::prune::touch(&self.dir.join(slot));
    }

    /// Record `blocks` for `slot`; failures only cost compressing more next time.
    pub fn put_blocks(&self, slot: &str, blocks: &SlotBlocks) {
        let _ = self.write_atomic(slot, &encode(blocks));
    }

    pub(super) fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{name}.{}", std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        drop(f);
        fs::rename(&tmp, self.dir.join(name))
    }
}

fn encode(b: &SlotBlocks) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 80 + b.table.blocks.len() * RECORD);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(b.digest.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&b.size.to_le_bytes());
    for (key, offset, len) in &b.table.blocks {
        out.extend_from_slice(key);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
    }
    out
}

pub(super) fn decode(bytes: &[u8]) -> Option<SlotBlocks> {
    let rest = bytes.strip_prefix(MAGIC)?;
    let nl = rest.iter().position(|&b| b == b'\n')?;
    let digest: Digest = std::str::from_utf8(&rest[..nl]).ok()?.parse().ok()?;
    let rest = &rest[nl + 1..];
    let size = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    let records = &rest[8..];
    if records.len() % RECORD != 0 {
        return None;
    }
    let blocks = records
        .chunks_exact(RECORD)
        .map(|r| {
            let key: [u8; 16] = r[..16].try_into().expect("16 bytes");
            let offset = u64::from_le_bytes(r[16..24].try_into().expect("8 bytes"));
            let len = u32::from_le_bytes(r[24..28].try_into().expect("4 bytes"));
            (key, offset, len)
        })
        .collect();
    Some(SlotBlocks {
        digest,
        size,
        table: BlockTable { blocks, reused: 0 },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_junk_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(dir.path().to_path_buf());
        let b = SlotBlocks {
            digest: Digest::of(b"blob"),
            size: 1234,
            table: BlockTable {
                blocks: vec![([7; 16], 10, 300), ([9; 16], 310, 4)],
                reused: 0,
            },
        };
        assert_eq!(cache.blocks("slot-x"), None);
        cache.put_blocks("slot-x", &b);
        assert_eq!(cache.blocks("slot-x"), Some(b.clone()));
        let mut bytes = encode(&b);
        bytes.pop();
        assert_eq!(decode(&bytes), None, "a truncated record");
        assert_eq!(decode(b"kiln gzip blocks v0\n"), None);
    }
}
