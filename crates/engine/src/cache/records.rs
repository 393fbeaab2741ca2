//! The two kinds of record in the cache's `layers/` directory, and nothing else: this file imports no other part
//! of the cache, so both the cache (`cache.rs`, which reads and writes records) and the pruner (`prune.rs`, which
//! reads them to learn which blobs are still named) depend on it and never on each other.
//!
//! * A layer record (named by the layer's input key) is the JSON of a [`CachedLayer`].
//! * A slot record (`slot-…`) holds gzip block tables: for each layer *slot* — where a layer sits in the image
//!   (its compression and the path of its first entry, which `--split` keeps stable when a file inside the layer
//!   changes) — the blob its last build produced and where that blob's deflated blocks are. A changed layer is
//!   then compressed only where its blocks differ: the others are copied from the earlier blob (see
//!   `layer::pgzip`), byte for byte what compressing them again would give, once their bytes are checked
//!   against the CRC-32 recorded with them. It is a small binary file.
//!
//! Both are written atomically after their blob; a missing, stale or unreadable one only means compressing (and
//! uploading) again.

use crate::digest::Digest;
use crate::layer::BlockTable;

/// A finished layer as the cache remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub tar_size: u64,
}

/// The blob a slot's last build produced and its block table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotBlocks {
    pub digest: Digest,
    pub size: u64,
    pub table: BlockTable,
}

/// First line of a slot record: the format, so a future layout is never misread. v2 added each block's CRC-32;
/// a v1 record (no CRCs) reads as absent: that slot's layer is compressed whole once, and recorded anew.
const MAGIC: &[u8] = b"kiln gzip blocks v2\n";
/// Bytes per block: key, offset, length, CRC-32 of the compressed bytes.
const RECORD: usize = 16 + 8 + 4 + 4;

/// The blob a record of either kind names (the pruner keeps those blobs); `None` for anything else.
pub(super) fn blob_of(bytes: &[u8]) -> Option<Digest> {
    if let Ok(l) = serde_json::from_slice::<CachedLayer>(bytes) {
        return Some(l.digest);
    }
    decode_blocks(bytes).map(|s| s.digest)
}

pub(super) fn encode_blocks(b: &SlotBlocks) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + 80 + b.table.blocks.len() * RECORD);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(b.digest.to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&b.size.to_le_bytes());
    for (key, offset, len, crc) in &b.table.blocks {
        out.extend_from_slice(key);
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
    }
    out
}

pub(super) fn decode_blocks(bytes: &[u8]) -> Option<SlotBlocks> {
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
            let crc = u32::from_le_bytes(r[28..32].try_into().expect("4 bytes"));
            (key, offset, len, crc)
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
        let b = SlotBlocks {
            digest: Digest::of(b"blob"),
            size: 1234,
            table: BlockTable {
                blocks: vec![([7; 16], 10, 300, 0xdead_beef), ([9; 16], 310, 4, 1)],
                reused: 0,
            },
        };
        let mut bytes = encode_blocks(&b);
        assert_eq!(decode_blocks(&bytes), Some(b.clone()));
        assert_eq!(blob_of(&bytes), Some(b.digest.clone()));
        bytes.pop();
        assert_eq!(decode_blocks(&bytes), None, "a truncated record");
        assert_eq!(decode_blocks(b"kiln gzip blocks v0\n"), None);
        // A v1 record (no CRCs, 28 bytes a block; 8 of them would parse as 7 of v2) is absent,
        // not misread.
        let mut v1 = b"kiln gzip blocks v1\n".to_vec();
        v1.extend_from_slice(format!("{}\n", b.digest).as_bytes());
        v1.extend_from_slice(&1234u64.to_le_bytes());
        v1.extend_from_slice(&[0; 8 * 28]);
        assert_eq!(decode_blocks(&v1), None);
        assert_eq!(blob_of(b"kiln gzip blocks v0\n"), None);

        let l = CachedLayer {
            digest: Digest::of(b"layer"),
            size: 1,
            diff_id: Digest::of(b"tar"),
            tar_size: 2,
        };
        assert_eq!(blob_of(&serde_json::to_vec(&l).unwrap()), Some(l.digest));
        assert_eq!(blob_of(b"{}"), None);
    }
}
