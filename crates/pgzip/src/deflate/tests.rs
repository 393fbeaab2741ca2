//! kiln's deflate on its own: decoded by C zlib (flate2) with the dictionary in front, on inputs chosen for the
//! matcher's edges; Huffman code lengths; and independence from what the scratch compressed before.

use flate2::{Decompress, FlushDecompress, Status};

use super::super::huffman::{BitWriter, code_lengths};
use super::encode::{Freq, write_block};
use super::{Deflater, WINDOW};

fn xorshift(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed | 1;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// Words from a small vocabulary: text with many short and long repeats.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "function", "return", "const", "import", "export", "default", "(", ")", "{", "}", ";",
        "\n  ", "require", "module", "x", "y", "0", "1",
    ];
    let mut next = xorshift(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize].as_bytes());
        if next() % 3 == 0 {
            out.push(b' ');
        }
    }
    out.truncate(len);
    out
}

fn random(len: usize, seed: u64) -> Vec<u8> {
    let mut next = xorshift(seed);
    (0..len).map(|_| next() as u8).collect()
}

/// Compress `buf[start..]` (dictionary before it) with `d`, then decode a stream of the dictionary (one stored
/// block) followed by that output with C zlib, and check it gives `buf` back (the sync flush ends on a byte
/// boundary with no final block; `last` must end the stream).
fn check_with(d: &mut Deflater, buf: &[u8], start: usize, last: bool) -> Vec<u8> {
    let dict = &buf[start.saturating_sub(WINDOW)..start];
    let mut out = Vec::new();
    d.deflate(&mut out, buf, start, last);
    let mut stream = Vec::new();
    stream.push(0);
    stream.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    stream.extend_from_slice(&(!(dict.len() as u16)).to_le_bytes());
    stream.extend_from_slice(dict);
    stream.extend_from_slice(&out);
    let mut z = Decompress::new(false);
    let mut got = Vec::with_capacity(buf.len() + 64);
    let status = z
        .decompress_vec(&stream, &mut got, FlushDecompress::Finish)
        .unwrap();
    assert_eq!(z.total_in() as usize, stream.len(), "all input consumed");
    if last {
        assert_eq!(status, Status::StreamEnd, "final block ends the stream");
    } else {
        assert_ne!(status, Status::StreamEnd, "a sync-flushed run is not final");
        assert_eq!(
            &out[out.len() - 4..],
            &[0, 0, 0xff, 0xff],
            "ends with a sync flush"
        );
    }
    assert!(got == [dict, &buf[start..]].concat(), "round trip");
    out
}

fn check(buf: &[u8], start: usize, last: bool) -> Vec<u8> {
    check_with(&mut Deflater::default(), buf, start, last)
}

#[test]
fn round_trips_text_binary_and_runs_with_and_without_a_dictionary() {
    let mut zeros_then_text = vec![0u8; 100_000];
    zeros_then_text.extend(text(50_000, 7));
    let mut mixed = text(40_000, 1);
    mixed.extend(random(30_000, 2));
    mixed.extend(text(200_000, 3));
    let inputs: Vec<(&str, Vec<u8>)> = vec![
        ("text", text(300_000, 5)),
        ("random", random(100_000, 6)),
        ("zeros", zeros_then_text),
        ("mixed", mixed),
        ("one byte repeated", vec![b'a'; 70_000]),
    ];
    for (name, buf) in &inputs {
        for start in [0, 1, 1000, WINDOW, 40_000] {
            for last in [false, true] {
                let out = check(buf, start.min(buf.len()), last);
                if name.starts_with("text") && start == 0 {
                    assert!(out.len() < buf.len() / 2, "{name}: text compresses");
                }
            }
        }
    }
}

#[test]
fn short_and_empty_runs() {
    let t = text(100, 9);
    for len in 0..40 {
        for start in [0, len / 2, len] {
            check(&t[..len], start, false);
            check(&t[..len], start, true);
        }
    }
}

#[test]
fn matches_reach_exactly_one_window_back_and_no_further() {
    // A 64-byte random chunk repeated at distance WINDOW (must match: deflate's largest distance) and at
    // WINDOW + 1 (must not), with random bytes between.
    let chunk = random(64, 11);
    for gap in [WINDOW, WINDOW + 1] {
        let mut buf = chunk.clone();
        buf.extend(random(gap - chunk.len(), 12));
        buf.extend(&chunk);
        buf.extend(random(100, 13));
        let out = check(&buf, 0, true);
        let stored = buf.len() + 5 * buf.len().div_ceil(65535);
        if gap == WINDOW {
            assert!(
                out.len() < stored - 40,
                "distance {gap}: matched ({} bytes)",
                out.len()
            );
        }
        // Primed with the first bytes as dictionary: the same limit applies across the boundary.
        check(&buf, 20, true);
    }
}

#[test]
fn long_repeats_are_cut_into_matches_of_the_longest_length() {
    // A random 300-byte chunk, then five copies of it: matches of 258 bytes (the longest deflate has) at distance
    // 300, and a shorter one before the last few bytes (literals).
    let mut buf = random(300, 21);
    let copy = buf.clone();
    for _ in 0..5 {
        buf.extend(&copy);
    }
    let out = check(&buf, 0, true);
    assert!(out.len() < 400, "{} bytes", out.len());
}

#[test]
fn output_does_not_depend_on_what_the_scratch_did_before() {
    let a = text(200_000, 31);
    let mut b = text(100_000, 31); // same words: stale entries would find matches
    b.extend(text(100_000, 32));
    let fresh = check(&b, 1000, false);
    let mut d = Deflater::default();
    check_with(&mut d, &a, 0, false);
    check_with(&mut d, &a, 5000, true);
    assert!(
        check_with(&mut d, &b, 1000, false) == fresh,
        "after other runs"
    );
    // Near the end of the position counter the table is cleared: still the same bytes.
    d.next_base = u32::MAX - 300_000;
    assert!(
        check_with(&mut d, &b, 1000, false) == fresh,
        "counter about to wrap"
    );
    assert!(
        check_with(&mut d, &b, 1000, false) == fresh,
        "after the counter wrapped"
    );
}

#[test]
fn code_lengths_are_limited_complete_and_optimal() {
    fn kraft(lens: &[u8]) -> f64 {
        lens.iter()
            .filter(|&&l| l > 0)
            .map(|&l| 2f64.powi(-i32::from(l)))
            .sum()
    }
    // Fibonacci frequencies make an unlimited Huffman code as deep as there are symbols.
    let mut fib = vec![1u32, 1];
    while fib.len() < 30 {
        let n = fib[fib.len() - 1] + fib[fib.len() - 2];
        fib.push(n);
    }
    let mut lens = [0u8; 30];
    code_lengths(&fib, 15, &mut lens);
    assert!(lens.iter().all(|&l| (1..=15).contains(&l)), "{lens:?}");
    assert_eq!(kraft(&lens), 1.0);
    let mut lens7 = [0u8; 30];
    code_lengths(&fib, 7, &mut lens7);
    assert!(lens7.iter().all(|&l| (1..=7).contains(&l)), "{lens7:?}");
    assert!(kraft(&lens7) <= 1.0);
    // Equal frequencies: a flat code. Powers of two: lengths 1, 2, 3, ...
    let mut flat = [0u8; 16];
    code_lengths(&[5; 16], 15, &mut flat);
    assert_eq!(flat, [4; 16]);
    let mut pow = [0u8; 5];
    code_lengths(&[8, 4, 2, 1, 1], 15, &mut pow);
    assert_eq!(pow, [1, 2, 3, 4, 4]);
    // Fewer than two used symbols still make a complete code of two.
    for freq in [[0u32, 0, 0], [0, 0, 9], [9, 0, 0]] {
        let mut l = [0u8; 3];
        code_lengths(&freq, 15, &mut l);
        assert_eq!(kraft(&l), 1.0, "{freq:?} -> {l:?}");
        for (f, len) in freq.iter().zip(l) {
            assert!(*f == 0 || len == 1);
        }
    }
}

/// Raw deflate `stream` decoded by C zlib (flate2), expected to be complete.
fn inflate(stream: &[u8], cap: usize) -> Vec<u8> {
    let mut z = Decompress::new(false);
    let mut got = Vec::with_capacity(cap + 64);
    let status = z
        .decompress_vec(stream, &mut got, FlushDecompress::Finish)
        .unwrap();
    assert_eq!(status, Status::StreamEnd);
    got
}

#[test]
fn a_block_whose_huffman_code_would_be_deeper_than_15_bits_is_limited_and_decodes() {
    // Literals only, byte i occurring fib(i) times (1, 1, 2, 3, 5, ... 28657): an unlimited Huffman code for these
    // is 21 deep, so the block's code lengths must be limited to deflate's 15.
    let mut fib = vec![1usize, 1];
    while fib.len() < 22 {
        fib.push(fib[fib.len() - 1] + fib[fib.len() - 2]);
    }
    let mut raw: Vec<u8> = Vec::new();
    for (b, &n) in fib.iter().enumerate() {
        raw.extend(std::iter::repeat_n(b as u8, n));
    }
    // A fixed shuffle (Fisher-Yates over xorshift), so the order is the same on every run.
    let mut next = xorshift(77);
    for i in (1..raw.len()).rev() {
        raw.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    let mut tokens: Vec<u32> = raw.iter().map(|&b| u32::from(b)).collect();
    let mut freq = Freq::default();
    for &b in &raw {
        freq.lit[b as usize] += 1;
    }
    let mut out = Vec::new();
    let mut w = BitWriter::new(&mut out);
    write_block(&mut w, &mut tokens, &mut freq, &raw, true);
    w.align();
    assert_eq!(out[0] & 0b111, 0b101, "a final dynamic block");
    assert!(out.len() < raw.len() / 3, "{} bytes", out.len());
    assert!(inflate(&out, raw.len()) == raw);
}

#[test]
fn random_structured_inputs_round_trip() {
    // Copies of earlier stretches at random distances (some beyond the window), random lengths, random bytes
    // and byte runs between them, at random run starts: 60 inputs.
    let mut next = xorshift(4242);
    let mut d = Deflater::default();
    for _ in 0..60 {
        let len = (next() % 150_000) as usize;
        let mut buf: Vec<u8> = Vec::with_capacity(len + 300);
        while buf.len() < len {
            match next() % 4 {
                0 if buf.len() > 8 => {
                    let dist = 1 + (next() % (buf.len() as u64).min(40_000)) as usize;
                    let n = 3 + (next() % 300) as usize;
                    for _ in 0..n {
                        buf.push(buf[buf.len() - dist]);
                    }
                }
                1 => {
                    let n = (next() % 64) as usize;
                    for _ in 0..n {
                        buf.push(next() as u8);
                    }
                }
                2 => {
                    let b = next() as u8;
                    buf.extend(std::iter::repeat_n(b, (next() % 600) as usize));
                }
                _ => buf.extend_from_slice(b"const layer = await build(dist);\n"),
            }
        }
        buf.truncate(len);
        let start = (next() % (len as u64 + 1)) as usize;
        let last = next() % 2 == 0;
        let fresh = check(&buf, start, last);
        assert!(
            check_with(&mut d, &buf, start, last) == fresh,
            "reused scratch"
        );
    }
}
