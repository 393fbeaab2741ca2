//! Huffman blocks of the matcher's tokens (RFC 1951 §3.2.5-3.2.7): each block written as dynamic, fixed or
//! stored, whichever is smallest, and the tables from match lengths and distances to their symbols.

use super::super::huffman::{BitWriter, Header, MAX_BITS, code_lengths, codes, stored_len};

/// Match tokens have this bit set, then the length symbol − 257 in bits 23..28, its extra bits' value in 18..23,
/// the distance symbol in 13..18 and its extra bits' value in 0..13; literal tokens are the byte.
pub(super) const MATCH: u32 = 1 << 31;

/// Symbol counts of the block being gathered.
pub(super) struct Freq {
    pub(super) lit: [u32; 288],
    pub(super) dist: [u32; 30],
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
pub(super) static LEN_CODE: [(u16, u8, u8); 256] = len_codes();

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
pub(super) fn dist_code(x: usize) -> u8 {
    if x < 256 {
        DIST_CODE[x]
    } else {
        DIST_CODE[256 + (x >> 7)]
    }
}

/// First distance − 1 of each distance symbol.
pub(super) static DIST_BASE: [u32; 30] = {
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
/// Count of extra bits of each distance symbol.
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
pub(super) fn write_block(
    w: &mut BitWriter,
    tokens: &mut Vec<u32>,
    freq: &mut Freq,
    raw: &[u8],
    last: bool,
) {
    freq.lit[256] = 1;
    // Extra bits are the same under either Huffman code.
    let len_extra = freq.lit[257..286].iter().zip(&LEN_BITS);
    let extra: u64 = len_extra
        .chain(freq.dist.iter().zip(&DIST_BITS))
        .map(|(&f, &b)| u64::from(f) * u64::from(b))
        .sum();
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
    // Up to 7 bits of padding before the first stored block.
    let stored = 8 * stored_len(raw.len()) as u64 + 7;
    if stored < dynamic.min(fixed) {
        w.stored(raw, last);
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
