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
//! [`WINDOW`] bytes before it: the dictionary's positions are recorded first, and the run ends sync-flushed (an
//! empty stored block) or final. Each Huffman block is written as dynamic, fixed or stored, whichever is smallest.

use super::huffman::{BitWriter, Header, MAX_BITS, code_lengths, codes};

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
/// Match tokens have this bit set, then the length symbol − 257 in bits 23..28, its extra bits' value in 18..23,
/// the distance symbol in 13..18 and its extra bits' value in 0..13; literal tokens are the byte.
const MATCH: u32 = 1 << 31;
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

#[inline(always)]
fn load64(buf: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(buf[i..i + 8].try_into().unwrap())
}

/// Where position `i` goes in the table of long (8-byte) and of short ([`SHORT_BYTES`]) prefixes.
#[inline(always)]
fn hashes(buf: &[u8], i: usize) -> (usize, usize) {
    let v = load64(buf, i);
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
    let mut len = from;
    while len + 8 <= max {
        let x = load64(buf, a + len) ^ load64(buf, b + len);
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
    if dist.wrapping_sub(1) < WINDOW && load64(buf, p - dist) == load64(buf, p) {
        return (match_len(buf, p - dist, p, 8, max), dist);
    }
    let dist = here.wrapping_sub(cand_s) as usize;
    if dist.wrapping_sub(1) < WINDOW && load32(buf, p - dist) == load32(buf, p) {
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
            w.put(0, 3);
            w.align();
            w.out.extend_from_slice(&[0, 0, 0xff, 0xff]);
        }
    }
}

/// Symbol counts of the block being gathered.
struct Freq {
    lit: [u32; 288],
    dist: [u32; 30],
}

impl Default for Freq {
    fn default() -> Self {
        Freq {
            lit: [0; 288],
            dist: [0; 30],
        }
    }
}

/// Literal/length symbol, extra bit count and extra value for each match length − 3.
static LEN_CODE: [(u16, u8, u8); 256] = len_codes();

const fn len_codes() -> [(u16, u8, u8); 256] {
    let mut t = [(0u16, 0u8, 0u8); 256];
    let mut x = 0;
    while x < 256 {
        t[x] = if x == 255 {
            (285, 0, 0)
        } else if x < 8 {
            (257 + x as u16, 0, 0)
        } else {
            let k = 31 - (x as u32).leading_zeros();
            let nb = k - 2;
            (
                (257 + 4 * (k - 1) + ((x as u32 >> nb) & 3)) as u16,
                nb as u8,
                (x as u32 & ((1 << nb) - 1)) as u8,
            )
        };
        x += 1;
    }
    t
}

/// Distance symbol of a distance − 1: zlib's split table, direct below 256, by `x >> 7` above.
static DIST_CODE: [u8; 512] = dist_codes();

const fn dist_codes() -> [u8; 512] {
    let mut t = [0u8; 512];
    let mut i = 0;
    while i < 512 {
        let x = if i < 256 {
            i as u32
        } else {
            ((i - 256) as u32) << 7
        };
        t[i] = if x < 4 {
            x as u8
        } else {
            let k = 31 - x.leading_zeros();
            (2 * k + ((x >> (k - 1)) & 1)) as u8
        };
        i += 1;
    }
    t
}

#[inline(always)]
fn dist_code(x: usize) -> u8 {
    if x < 256 {
        DIST_CODE[x]
    } else {
        DIST_CODE[256 + (x >> 7)]
    }
}

/// First distance − 1 of each distance symbol, and its count of extra bits.
static DIST_BASE: [u32; 30] = {
    let mut t = [0u32; 30];
    let mut d = 0;
    while d < 30 {
        t[d] = if d < 4 {
            d as u32
        } else {
            (2 + (d as u32 & 1)) << (d as u32 / 2 - 1)
        };
        d += 1;
    }
    t
};
static DIST_BITS: [u8; 30] = {
    let mut t = [0u8; 30];
    let mut d = 4;
    while d < 30 {
        t[d] = (d / 2 - 1) as u8;
        d += 1;
    }
    t
};
/// Count of extra bits of each length symbol − 257.
static LEN_BITS: [u8; 29] = {
    let mut t = [0u8; 29];
    let mut s = 8;
    while s < 28 {
        t[s] = ((s - 4) / 4) as u8;
        s += 1;
    }
    t
};

/// Fixed Huffman code lengths (RFC 1951 §3.2.6).
fn fixed_lit_len(s: usize) -> u8 {
    match s {
        0..=143 => 8,
        144..=255 => 9,
        256..=279 => 7,
        _ => 8,
    }
}

/// Write the block of `tokens` (covering `raw`) as whichever of dynamic Huffman, fixed Huffman or stored is
/// smallest, then clear the tokens and counts.
fn write_block(w: &mut BitWriter, tokens: &mut Vec<u32>, freq: &mut Freq, raw: &[u8], last: bool) {
    freq.lit[256] = 1;
    // Extra bits are the same under either Huffman code.
    let mut extra: u64 = 0;
    for s in 265..285 {
        extra += u64::from(freq.lit[s]) * ((s as u64 - 261) / 4);
    }
    for d in 4..30 {
        extra += u64::from(freq.dist[d]) * u64::from(d as u32 / 2 - 1);
    }
    let mut lit_lens = [0u8; 288];
    let mut dist_lens = [0u8; 30];
    code_lengths(&freq.lit[..286], MAX_BITS, &mut lit_lens[..286]);
    code_lengths(&freq.dist, MAX_BITS, &mut dist_lens);
    let header = Header::new(&lit_lens[..286], &dist_lens);
    let mut dynamic = 3 + header.bits() + extra;
    let mut fixed = 3 + extra;
    for (s, (&f, &l)) in freq.lit[..286].iter().zip(&lit_lens).enumerate() {
        dynamic += u64::from(f) * u64::from(l);
        fixed += u64::from(f) * u64::from(fixed_lit_len(s));
    }
    for (&f, &l) in freq.dist.iter().zip(&dist_lens) {
        dynamic += u64::from(f) * u64::from(l);
        fixed += u64::from(f) * 5;
    }
    let stored = 8 * (raw.len() as u64 + 5 * raw.len().div_ceil(65535).max(1) as u64) + 7;
    if stored < dynamic.min(fixed) {
        write_stored(w, raw, last);
    } else {
        if fixed <= dynamic {
            for (s, l) in lit_lens.iter_mut().enumerate() {
                *l = fixed_lit_len(s);
            }
            dist_lens.fill(5);
            w.put(u32::from(last) | (1 << 1), 3);
        } else {
            w.put(u32::from(last) | (2 << 1), 3);
            header.write(w);
        }
        let mut lit_codes = [0u16; 288];
        let mut dist_codes = [0u16; 30];
        codes(&lit_lens, &mut lit_codes);
        codes(&dist_lens, &mut dist_codes);
        write_tokens(w, tokens, &lit_codes, &lit_lens, &dist_codes, &dist_lens);
        w.put(u32::from(lit_codes[256]), u32::from(lit_lens[256]));
    }
    tokens.clear();
    *freq = Freq::default();
}

fn write_tokens(
    w: &mut BitWriter,
    tokens: &[u32],
    lit_codes: &[u16; 288],
    lit_lens: &[u8; 288],
    dist_codes: &[u16; 30],
    dist_lens: &[u8; 30],
) {
    for &t in tokens {
        if t & MATCH == 0 {
            let s = t as usize & 0xff;
            w.add(u64::from(lit_codes[s]), u32::from(lit_lens[s]));
        } else {
            let ls = (t >> 23) as usize & 31;
            let l = u32::from(lit_lens[257 + ls]);
            let lv = u64::from((t >> 18) & 31);
            w.add(
                u64::from(lit_codes[257 + ls]) | lv << l,
                l + u32::from(LEN_BITS[ls]),
            );
            let ds = (t >> 13) as usize & 31;
            let l = u32::from(dist_lens[ds]);
            let dv = u64::from(t & 0x1fff);
            w.add(
                u64::from(dist_codes[ds]) | dv << l,
                l + u32::from(DIST_BITS[ds]),
            );
        }
        w.flush();
    }
}

/// `raw` as stored blocks (the last one final if `last`).
fn write_stored(w: &mut BitWriter, raw: &[u8], last: bool) {
    let mut chunks = raw.chunks(65535).peekable();
    loop {
        let chunk = chunks.next().unwrap_or(&[]);
        let fin = last && chunks.peek().is_none();
        w.put(u32::from(fin), 3);
        w.align();
        let len = chunk.len() as u16;
        w.out.extend_from_slice(&len.to_le_bytes());
        w.out.extend_from_slice(&(!len).to_le_bytes());
        w.out.extend_from_slice(chunk);
        if chunks.peek().is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
