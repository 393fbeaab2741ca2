//! Deflate's entropy coding (RFC 1951 §3.2): an LSB-first bit writer (with stored blocks), length-limited
//! Huffman code lengths, canonical codes, and the dynamic block header. Integer code with every tie broken by symbol number, so the
//! codes — and the bytes — are the same on every machine.

/// Bits of output, least significant first, appended to a byte vector: up to 56 bits are gathered with
/// [`BitWriter::add`] and written out by [`BitWriter::flush`], whole bytes at a time.
pub(super) struct BitWriter<'a> {
    pub(super) out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    pub(super) fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }

    /// Append the low `n` bits of `bits` (the bits above n must be zero; at most 56 bits between flushes).
    #[inline(always)]
    pub(super) fn add(&mut self, bits: u64, n: u32) {
        debug_assert!(self.n + n <= 63 && bits >> n == 0);
        self.acc |= bits << self.n;
        self.n += n;
    }

    /// Write out the whole bytes gathered (up to 7 bits stay).
    #[inline(always)]
    pub(super) fn flush(&mut self) {
        let len = self.out.len();
        if self.out.capacity() - len < 8 {
            self.out.reserve(8);
        }
        // SAFETY: 8 bytes of capacity past `len` were just ensured; `n / 8` of them (at most 7) are kept.
        unsafe {
            self.out
                .as_mut_ptr()
                .add(len)
                .cast::<[u8; 8]>()
                .write_unaligned(self.acc.to_le_bytes());
            self.out.set_len(len + (self.n / 8) as usize);
        }
        self.acc = self.acc.checked_shr(self.n & !7).unwrap_or(0);
        self.n &= 7;
    }

    /// [`BitWriter::add`] then [`BitWriter::flush`] (n ≤ 32).
    #[inline(always)]
    pub(super) fn put(&mut self, bits: u32, n: u32) {
        self.add(u64::from(bits), n);
        self.flush();
    }

    /// Pad with zero bits to a byte boundary and write out everything.
    pub(super) fn align(&mut self) {
        self.n = self.n.div_ceil(8) * 8;
        self.flush();
    }

    /// `data` as stored blocks (RFC 1951 §3.2.4), the last one final if `last`; empty `data` is one empty block
    /// (a sync flush when not `last`). Ends byte-aligned.
    pub(super) fn stored(&mut self, data: &[u8], last: bool) {
        let mut chunks = data.chunks(STORED_MAX).peekable();
        loop {
            let chunk = chunks.next().unwrap_or(&[]);
            let fin = last && chunks.peek().is_none();
            self.put(u32::from(fin), 3);
            self.align();
            let len = chunk.len() as u16;
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&(!len).to_le_bytes());
            self.out.extend_from_slice(chunk);
            if chunks.peek().is_none() {
                return;
            }
        }
    }
}

/// Largest stored block (deflate's LEN is 16 bits).
const STORED_MAX: usize = 65535;

/// Bytes of `n` bytes as stored blocks written from a byte boundary ([`BitWriter::stored`]).
pub(super) fn stored_len(n: usize) -> usize {
    n + 5 * n.div_ceil(STORED_MAX).max(1)
}

/// Longest code deflate allows for literal/length and distance symbols, and for code length symbols.
pub(super) const MAX_BITS: u32 = 15;
const MAX_BL_BITS: u32 = 7;

/// Code lengths for `freq` (none longer than `limit`), written into `lens`. A code of fewer than two used
/// symbols gets its first two symbols (or the used one and another) length 1, so every code is complete: some
/// decoders refuse a code with a single symbol.
pub(super) fn code_lengths(freq: &[u32], limit: u32, lens: &mut [u8]) {
    lens.fill(0);
    // Used symbols, least frequent first (ties: lower symbol first).
    let mut syms: Vec<(u32, u16)> = freq
        .iter()
        .enumerate()
        .filter(|&(_, &f)| f > 0)
        .map(|(s, &f)| (f, s as u16))
        .collect();
    if syms.len() < 2 {
        let used = syms.first().map_or(0, |&(_, s)| s as usize);
        lens[used] = 1;
        lens[if used == 0 { 1 } else { 0 }] = 1;
        return;
    }
    syms.sort_unstable();
    let mut a: Vec<u32> = syms.iter().map(|&(f, _)| f).collect();
    minimum_redundancy(&mut a);
    // a[i] is now the length of syms[i] (non-increasing in i). Limit the lengths by moving leaves up the tree
    // (counts only: the Kraft sum stays exactly 1), then hand the lengths back out longest-first.
    let mut count = [0u32; MAX_BITS as usize + 1];
    for &l in &a {
        count[l.min(limit) as usize] += 1;
    }
    if a[0] > limit {
        let limit = limit as usize;
        let mut total: u64 = (1..=limit)
            .map(|l| u64::from(count[l]) << (limit - l))
            .sum();
        while total > 1 << limit {
            count[limit] -= 1;
            for l in (1..limit).rev() {
                if count[l] != 0 {
                    count[l] -= 1;
                    count[l + 1] += 2;
                    break;
                }
            }
            total -= 1;
        }
    }
    let mut i = 0;
    for l in (1..=limit as usize).rev() {
        for _ in 0..count[l] {
            lens[syms[i].1 as usize] = l as u8;
            i += 1;
        }
    }
}

/// Moffat and Katajainen's in-place minimum-redundancy code: `a` holds frequencies in non-decreasing order (at
/// least two) and comes back holding each one's code length.
fn minimum_redundancy(a: &mut [u32]) {
    let n = a.len();
    // Phase 1: build the tree, leaves from the front, internal nodes (weights, then parent indices) behind them.
    a[0] += a[1];
    let (mut root, mut leaf) = (0, 2);
    for next in 1..n - 1 {
        if leaf >= n || a[root] < a[leaf] {
            a[next] = a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] = a[leaf];
            leaf += 1;
        }
        if leaf >= n || (root < next && a[root] < a[leaf]) {
            a[next] += a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] += a[leaf];
            leaf += 1;
        }
    }
    // Phase 2: internal node depths.
    a[n - 2] = 0;
    for next in (0..n - 2).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    // Phase 3: leaf depths.
    let (mut avail, mut used, mut depth) = (1i64, 0i64, 0u32);
    let (mut root, mut next) = (n as isize - 2, n as isize - 1);
    while avail > 0 {
        while root >= 0 && a[root as usize] == depth {
            used += 1;
            root -= 1;
        }
        while avail > used {
            a[next as usize] = depth;
            next -= 1;
            avail -= 1;
        }
        avail = 2 * used;
        depth += 1;
        used = 0;
    }
}

/// Canonical codes for `lens`, bit-reversed for the LSB-first writer.
pub(super) fn codes(lens: &[u8], codes: &mut [u16]) {
    let mut count = [0u16; MAX_BITS as usize + 1];
    for &l in lens {
        count[l as usize] += 1;
    }
    count[0] = 0;
    let mut next = [0u16; MAX_BITS as usize + 2];
    let mut code = 0u16;
    for bits in 1..=MAX_BITS as usize {
        code = (code + count[bits - 1]) << 1;
        next[bits] = code;
    }
    for (s, &l) in lens.iter().enumerate() {
        if l > 0 {
            let c = next[l as usize];
            next[l as usize] += 1;
            codes[s] = c.reverse_bits() >> (16 - u32::from(l));
        } else {
            codes[s] = 0;
        }
    }
}

/// Order in which code length code lengths are sent (RFC 1951 §3.2.7).
const BL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// A dynamic block's header: the literal/length and distance code lengths, run-length coded.
pub(super) struct Header {
    /// Code length symbols with their extra bits (value, count of extra bits).
    ops: Vec<(u8, u8, u8)>,
    hlit: usize,
    hdist: usize,
    bl_lens: [u8; 19],
    bl_codes: [u16; 19],
    hclen: usize,
}

impl Header {
    pub(super) fn new(lit_lens: &[u8], dist_lens: &[u8]) -> Self {
        let hlit = 257.max(lit_lens.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1));
        let hdist = 1.max(dist_lens.iter().rposition(|&l| l > 0).map_or(0, |p| p + 1));
        let all: Vec<u8> = lit_lens[..hlit]
            .iter()
            .chain(&dist_lens[..hdist])
            .copied()
            .collect();
        let ops = run_lengths(&all);
        let mut freq = [0u32; 19];
        for &(s, _, _) in &ops {
            freq[s as usize] += 1;
        }
        let mut bl_lens = [0u8; 19];
        code_lengths(&freq, MAX_BL_BITS, &mut bl_lens);
        let mut bl_codes = [0u16; 19];
        codes(&bl_lens, &mut bl_codes);
        let hclen = 4.max(
            BL_ORDER
                .iter()
                .rposition(|&s| bl_lens[s] > 0)
                .map_or(0, |p| p + 1),
        );
        Header {
            ops,
            hlit,
            hdist,
            bl_lens,
            bl_codes,
            hclen,
        }
    }

    /// Size in bits, after the 3 block header bits.
    pub(super) fn bits(&self) -> u64 {
        let mut bits = 5 + 5 + 4 + 3 * self.hclen as u64;
        for &(s, _, extra) in &self.ops {
            bits += u64::from(self.bl_lens[s as usize]) + u64::from(extra);
        }
        bits
    }

    pub(super) fn write(&self, w: &mut BitWriter) {
        w.put((self.hlit - 257) as u32, 5);
        w.put((self.hdist - 1) as u32, 5);
        w.put((self.hclen - 4) as u32, 4);
        for &s in &BL_ORDER[..self.hclen] {
            w.put(u32::from(self.bl_lens[s]), 3);
        }
        for &(s, value, extra) in &self.ops {
            w.put(
                u32::from(self.bl_codes[s as usize]),
                u32::from(self.bl_lens[s as usize]),
            );
            if extra > 0 {
                w.put(u32::from(value), u32::from(extra));
            }
        }
    }
}

/// Code lengths as code length symbols: 16 repeats the previous length 3-6 times, 17 and 18 are runs of 3-10
/// and 11-138 zeros.
fn run_lengths(lens: &[u8]) -> Vec<(u8, u8, u8)> {
    let mut ops = Vec::with_capacity(lens.len());
    let mut i = 0;
    while i < lens.len() {
        let l = lens[i];
        let run = lens[i..].iter().take_while(|&&x| x == l).count();
        let mut rest = run;
        if l == 0 {
            while rest >= 11 {
                let k = rest.min(138);
                ops.push((18, (k - 11) as u8, 7));
                rest -= k;
            }
            if rest >= 3 {
                ops.push((17, (rest - 3) as u8, 3));
                rest = 0;
            }
        } else {
            ops.push((l, 0, 0));
            rest -= 1;
            while rest >= 3 {
                let k = rest.min(6);
                ops.push((16, (k - 3) as u8, 2));
                rest -= k;
            }
        }
        ops.extend(std::iter::repeat_n((l, 0, 0), rest));
        i += run;
    }
    ops
}
