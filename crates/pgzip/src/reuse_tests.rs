//! Blocks cut at entry marks, and blocks reused from an earlier stream.

use std::io::{Read, Write};
use std::sync::Arc;

use super::{BLOCK_SIZE, BlockTable, MIN_BLOCK, OldBlocks, ParGzEncoder, Reuse};

/// Text-like entries of varying sizes (some longer than a block), deterministic.
fn entries(n: usize) -> Vec<Vec<u8>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let len = match i % 37 {
                0 => 2 * BLOCK_SIZE + (next() % 100_000) as usize,
                _ => 512 + (next() % 20_000) as usize,
            };
            let mut e = Vec::with_capacity(len);
            while e.len() < len {
                e.extend_from_slice(
                    format!("export const v{} = {};\n", next() % 997, next() % 89).as_bytes(),
                );
            }
            e.truncate(len);
            e
        })
        .collect()
}

/// Encode with a mark before each entry, as the layer writer does.
fn encode(entries: &[Vec<u8>], workers: usize, reuse: Reuse) -> (Vec<u8>, BlockTable) {
    let mut enc = ParGzEncoder::with_reuse(Vec::new(), 2, workers, reuse).unwrap();
    for e in entries {
        enc.mark().unwrap();
        // Uneven writes: block cuts must not depend on how the bytes arrive.
        for piece in e.chunks(7777) {
            enc.write_all(piece).unwrap();
        }
    }
    enc.finish().unwrap()
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn recorded() -> Reuse {
    Reuse {
        record: true,
        old: None,
    }
}

#[test]
fn marked_blocks_are_deterministic_and_decode() {
    let e = entries(300);
    let (one, table) = encode(&e, 1, recorded());
    assert_eq!(gunzip(&one), e.concat());
    assert_eq!(
        encode(&e, 3, Reuse::default()).0,
        one,
        "worker count or keys changed the bytes"
    );
    // Every deflated block is listed where it is, and (but the last) holds at least MIN_BLOCK of input.
    assert!(table.blocks.len() >= e.concat().len() / (MIN_BLOCK + 2 * BLOCK_SIZE));
    let mut end = 10;
    for (_, offset, len, crc) in &table.blocks {
        let bytes = &one[*offset as usize..(*offset + u64::from(*len)) as usize];
        assert_eq!(
            zlib_rs::crc32::crc32(0, bytes),
            *crc,
            "the CRC of the block's bytes"
        );
        assert_eq!(
            *offset, end,
            "blocks are contiguous (the text never looks incompressible)"
        );
        end += u64::from(*len);
    }
    assert_eq!(end as usize, one.len() - 8);
    // The cut rule is part of the format: layer digests depend on it.
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&one));
    assert_eq!(
        digest, "68137d57209eeb02e9af750a9faa041bb2af73ebb76a882c00ce8b62da510de3",
        "marked-block format changed"
    );
}

#[test]
fn a_changed_entry_recompresses_only_its_blocks_and_the_bytes_are_the_same() {
    let e = entries(400);
    let (old, table) = encode(&e, 2, recorded());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.gz");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&old)
        .unwrap();
    let old_blocks = Arc::new(OldBlocks::new(std::fs::File::open(&path).unwrap(), &table));

    // One entry in the middle grows by a line: everything after it shifts by that much.
    let mut changed = e.clone();
    changed[170].extend_from_slice(b"console.log('one more line');\n");
    let (fresh, _) = encode(&changed, 2, Reuse::default());
    let reuse = Reuse {
        record: true,
        old: Some(old_blocks.clone()),
    };
    let (reused, t2) = encode(&changed, 2, reuse);
    assert!(reused == fresh, "reuse changed the bytes");
    assert_eq!(gunzip(&reused), changed.concat());
    assert!(
        t2.reused + 2 >= t2.blocks.len() && t2.reused > 0,
        "{} of {} blocks reused",
        t2.reused,
        t2.blocks.len()
    );

    // Nothing in common (another level): nothing is reused, and the output is still right.
    let mut other = ParGzEncoder::with_reuse(
        Vec::new(),
        6,
        2,
        Reuse {
            record: true,
            old: Some(old_blocks),
        },
    )
    .unwrap();
    for x in &changed {
        other.mark().unwrap();
        other.write_all(x).unwrap();
    }
    let (gz, t3) = other.finish().unwrap();
    assert_eq!(t3.reused, 0);
    assert_eq!(gunzip(&gz), changed.concat());
}

#[test]
fn a_damaged_block_of_the_earlier_stream_is_compressed_again() {
    let e = entries(200);
    let (mut old, table) = encode(&e, 2, recorded());
    // One flipped byte inside the second block (the file keeps its size, as a cache check by size sees it).
    let (_, offset, len, _) = table.blocks[1];
    old[(offset + u64::from(len) / 2) as usize] ^= 0x20;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.gz");
    std::fs::write(&path, &old).unwrap();
    let old_blocks = Arc::new(OldBlocks::new(std::fs::File::open(&path).unwrap(), &table));

    let mut changed = e.clone();
    changed[150].extend_from_slice(b"console.log('one more line');\n");
    let (fresh, fresh_table) = encode(&changed, 2, recorded());
    let reuse = Reuse {
        record: true,
        old: Some(old_blocks.clone()),
    };
    let (reused, t2) = encode(&changed, 2, reuse);
    assert!(reused == fresh, "a damaged block was copied");
    assert_eq!(gunzip(&reused), changed.concat());
    assert_eq!(old_blocks.damaged(), 1);
    assert!(t2.reused > 0, "the intact blocks are still copied");
    assert_eq!(
        t2.blocks, fresh_table.blocks,
        "the same table, CRCs included"
    );
}
