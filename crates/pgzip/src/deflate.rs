//! kiln's deflate, gzip level 1 (the default): greedy LZ77 over two hash tables, then one Huffman block per
//! [`BLOCK_TOKENS`] tokens. Written for speed on build output, and for bytes that depend on nothing but the input:
//! plain integer code with no CPU-specific paths, so the same input gives the same output on every machine — which
//! a layer digest needs, and which ISA-L (whose output follows the instruction set it detects at run time) does
//! not promise. Everything in this file is part of the output format: changing a constant changes layer digests.
//!
//! Matching (the "double fast" scheme of zstd's fast levels): every position is looked up, and recorded, in a
//! table keyed by its next 8 bytes and one keyed by its next 4, one entry per key (the last position seen).
//! The 8-byte table finds the long repeats of text and code that a 4-byte table loses to nearer, shorter
//! matches; the 4-byte table is tried when it fails and keeps the short matches of binaries. A match is taken
//! as soon as it is found (no lazy matching), and only its first [`INSERT`] positions after the first are
//! recorded. On `benches/` fixtures this is 9% smaller than `igzip -1` on text and 3% on executables, at about
//! twice the speed of zlib-rs's level 2 (see README, "Which gzip encoder").
//!
//! Each call compresses one run of a pgzip block (see `block.rs`) as a fresh stream primed with up to
//! [`WINDOW`] bytes before it: the positions of its last [`DICT_INSERT`] bytes are recorded first, and the run ends
//! sync-flushed (an empty stored block) or final. Each Huffman block is written as dynamic, fixed or stored,
//! whichever is smallest (`deflate/encode.rs`).

use super::huffman::BitWriter;
use encode::{DIST_BASE, Freq, LEN_CODE, MATCH, dist_code, write_block};

/// Deflate's window: the farthest back a match may reach.
const WINDOW: usize = 32 * 1024;
/// Entries in each hash table (log2). 15 was 0.4-0.9% larger for 3% fewer instructions.
const HASH_BITS: u32 = 16;
/// Bytes hashed for the table of short prefixes (5 and 6 were larger on every fixture).
const SHORT_BYTES: u32 = 4;
/// Tokens per Huffman block: a block's codes fit its own statistics, at the cost of a header each (2^13 and
/// 2^15 were larger; runs are at most 512 KiB, so more makes little difference).
const BLOCK_TOKENS: usize = 1 << 16;
/// Shortest match taken (the short table's key).
const MIN_MATCH: usize = 4;
/// Bytes the hashes read at a position: the last few bytes of a run are literals.
const LOOKAHEAD: usize = 8;
const MAX_MATCH: usize = 258;
/// Positions inside a match recorded after its first: 1 was 1.2% larger for 6% fewer instructions, every
/// position 1-2% smaller for 40% more; one step of lazy matching was 0.3-1.3% smaller for 5% more.
const INSERT: usize = 2;
/// Positions of the dictionary recorded before a run (its last ones): matches reach the whole window from later
/// positions, but a run records its dictionary once per block. All 32 KiB was 0.1% smaller for 4% more
/// instructions, the last 8 KiB 0.4% larger for 2% fewer.
const DICT_INSERT: usize = 16 * 1024;
/// Positions are stored in the hash table as `base` + position, `base` starting past [`WINDOW`] so an empty entry
/// (0) is out of reach, and each run's past the previous run's entries by more than a window: entries a run did
/// not write are out of reach too, and the table need not be cleared between runs (the output must not depend
/// on what a thread compressed before).
const OFFSET: u32 = WINDOW as u32 + 1;

/// Per-thread scratch: the hash table and a block's tokens.
pub(super) struct Deflater {
    /// The long table, then the short one (a fixed size, so indexing by a hash needs no bounds check).
    head: Box<[u32; 2 << HASH_BITS]>,
    /// The next run's `base` − [`OFFSET`].
    next_base: u32,
    tokens: Vec<u32>,
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater {
            head: vec![0; 2 << HASH_BITS]
                .into_boxed_slice()
                .try_into()
                .expect("length is the table's"),
            next_base: 0,
            tokens: Vec::with_capacity(BLOCK_TOKENS + 1),
        }
    }
}

#[inline(always)]
fn load32(buf: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(buf[i..i + 4].try_into().unwrap())
}

/// The 8 bytes at `buf[i..]`, without a bounds check: the matcher's loads are its hottest path (a checked load
/// cost 9% more instructions on `small`'s tar).
///
/// # Safety
/// `i + 8 <= buf.len()`. Callers: the hashes of a position `p` with `p + LOOKAHEAD <= end`; a candidate at
/// `p - dist` with `1 <= dist <= p` (checked in [`probe`]), below `p`; and [`match_len`], whose `max` keeps
/// both positions' loads inside the run.
#[inline(always)]
unsafe fn load64(buf: &[u8], i: usize) -> u64 {
    debug_assert!(i + 8 <= buf.len(), "load64 at {i} of {}", buf.len());
    // SAFETY: the caller keeps `i + 8 <= buf.len()`; `read_unaligned` needs no alignment.
    unsafe { buf.as_ptr().add(i).cast::<u64>().read_unaligned() }
}

/// Where position `i` goes in the table of long (8-byte) and of short ([`SHORT_BYTES`]) prefixes.
#[inline(always)]
fn hashes(buf: &[u8], i: usize) -> (usize, usize) {
    assert!(i + LOOKAHEAD <= buf.len());
    // SAFETY: asserted just above (callers hash only positions with LOOKAHEAD bytes left, so it never fails).
    let v = unsafe { load64(buf, i) };
    let long = v.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - HASH_BITS);
    let short =
        (v << (64 - 8 * SHORT_BYTES)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - HASH_BITS);
    (long as usize, (1 << HASH_BITS) + short as usize)
}

#[inline(always)]
fn insert(head: &mut [u32; 2 << HASH_BITS], buf: &[u8], q: usize, base: u32) {
    let (l, s) = hashes(buf, q);
    head[l] = base + q as u32;
    head[s] = base + q as u32;
}

/// Length of the common prefix of `buf[a..]` and `buf[b..]` (a < b), from `from` up to `max` bytes.
#[inline(always)]
fn match_len(buf: &[u8], a: usize, b: usize, from: usize, max: usize) -> usize {
    assert!(a < b && b + max <= buf.len());
    let mut len = from;
    while len + 8 <= max {
        // SAFETY: a + len + 8 < b + len + 8 <= b + max <= buf.len() (asserted above).
        let x = unsafe { load64(buf, a + len) ^ load64(buf, b + len) };
        if x != 0 {
            return len + (x.trailing_zeros() / 8) as usize;
        }
        len += 8;
    }
    while len < max && buf[a + len] == buf[b + len] {
        len += 1;
    }
    len
}

/// Look up (and record) position `p` (with at least [`LOOKAHEAD`] bytes left): the match with the position last
/// seen under its hash, as (length, distance); length 0 when there is none.
#[inline(always)]
fn probe(
    head: &mut [u32; 2 << HASH_BITS],
    buf: &[u8],
    p: usize,
    end: usize,
    base: u32,
) -> (usize, usize) {
    let (l, s) = hashes(buf, p);
    let (cand_l, cand_s) = (head[l], head[s]);
    let here = base + p as u32;
    head[l] = here;
    head[s] = here;
    let max = MAX_MATCH.min(end - p);
    let dist = here.wrapping_sub(cand_l) as usize;
    // 1 <= dist <= min(p, WINDOW): an entry this run wrote (see OFFSET), so the candidate is inside `buf`.
    let reach = p.min(WINDOW);
    // SAFETY: p + LOOKAHEAD <= end = buf.len() (the caller's loop; `hashes` asserted it), and p - dist < p.
    if dist.wrapping_sub(1) < reach && unsafe { load64(buf, p - dist) == load64(buf, p) } {
        return (match_len(buf, p - dist, p, 8, max), dist);
    }
    let dist = here.wrapping_sub(cand_s) as usize;
    if dist.wrapping_sub(1) < reach && load32(buf, p - dist) == load32(buf, p) {
        return (match_len(buf, p - dist, p, MIN_MATCH, max), dist);
    }
    (0, 0)
}

impl Deflater {
    /// Deflate `buf[start..]`, with the [`WINDOW`] bytes before `start` as the dictionary, appending to `out`:
    /// sync-flushed (byte-aligned, not final), or the final block if `last`.
    pub(super) fn deflate(&mut self, out: &mut Vec<u8>, buf: &[u8], start: usize, last: bool) {
        let end = buf.len();
        // Runs are at most a block and its dictionary (under 1 MiB): positions fit the table's u32s.
        assert!(end < 1 << 28, "deflate run of {end} bytes");
        // Leave room past this run's entries for the next base; clear the table when the counter would wrap.
        let span = (end + WINDOW + 1) as u32;
        if u64::from(self.next_base) + 2 * u64::from(span) + u64::from(OFFSET) > u64::from(u32::MAX)
        {
            self.head.fill(0);
            self.next_base = 0;
        }
        let base = self.next_base + OFFSET;
        self.next_base += span;
        let head = &mut *self.head;
        for q in start.saturating_sub(DICT_INSERT)..start.min(end.saturating_sub(LOOKAHEAD - 1)) {
            insert(head, buf, q, base);
        }
        let mut w = BitWriter::new(out);
        let mut freq = Freq::default();
        let tokens = &mut self.tokens;
        tokens.clear();
        let mut block_start = start;
        let mut p = start;
        while p + LOOKAHEAD <= end {
            if tokens.len() >= BLOCK_TOKENS {
                write_block(&mut w, tokens, &mut freq, &buf[block_start..p], false);
                block_start = p;
            }
            let (len, dist) = probe(head, buf, p, end, base);
            if len >= MIN_MATCH {
                let (ls, _, lv) = LEN_CODE[len - 3];
                let ds = dist_code(dist - 1);
                let dv = (dist - 1) as u32 - DIST_BASE[ds as usize];
                tokens.push(
                    MATCH
                        | u32::from(ls - 257) << 23
                        | u32::from(lv) << 18
                        | u32::from(ds) << 13
                        | dv,
                );
                freq.lit[ls as usize] += 1;
                freq.dist[ds as usize] += 1;
                // The first positions inside the match go into the table too.
                let stop = (p + len)
                    .min(p + INSERT + 1)
                    .min(end.saturating_sub(LOOKAHEAD - 1));
                for q in p + 1..stop {
                    insert(head, buf, q, base);
                }
                p += len;
            } else {
                tokens.push(u32::from(buf[p]));
                freq.lit[buf[p] as usize] += 1;
                p += 1;
            }
        }
        for &b in &buf[p..] {
            tokens.push(u32::from(b));
            freq.lit[b as usize] += 1;
        }
        if !tokens.is_empty() || last {
            write_block(&mut w, tokens, &mut freq, &buf[block_start..], last);
        }
        if last {
            w.align();
        } else {
            // Sync flush: an empty stored block ends the run on a byte boundary.
            w.stored(&[], false);
        }
    }
}

mod encode;

#[cfg(test)]
mod tests;
