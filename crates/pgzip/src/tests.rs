//! Determinism and format tests for the parallel gzip encoder.

use std::io::{Read, Write};
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};

use super::{BLOCK_SIZE, DICT_SIZE, ParGzEncoder};

/// Deterministic mix of pseudo-random bytes (xorshift) and repetitive text, in runs of varying length.
fn sample(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "layer", "digest", "manifest", "blob", "config", "tar", "gzip", "kiln", "sha256", "index",
        "\n",
    ];
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let run = 1000 + (next() % 70_000) as usize;
        if next() % 2 == 0 {
            for _ in 0..run {
                out.push(next() as u8);
            }
        } else {
            let start = out.len();
            while out.len() < start + run {
                out.extend_from_slice(WORDS[(next() % WORDS.len() as u64) as usize].as_bytes());
                out.push(b' ');
            }
        }
    }
    out.truncate(len);
    out
}

fn encode_with(data: &[u8], level: u32, workers: usize, write_sizes: &[usize]) -> Vec<u8> {
    let mut enc = ParGzEncoder::with_workers(Vec::new(), level, workers).unwrap();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = write_sizes[i % write_sizes.len()].min(rest.len());
        // Mix `write` and `write_all`: both take everything.
        if i % 2 == 0 {
            assert_eq!(enc.write(&rest[..n]).unwrap(), n);
        } else {
            enc.write_all(&rest[..n]).unwrap();
        }
        enc.flush().unwrap();
        rest = &rest[n..];
        i += 1;
    }
    enc.finish().unwrap().0
}

fn encode(data: &[u8], level: u32) -> Vec<u8> {
    encode_with(data, level, 2, &[usize::MAX])
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut d = flate2::read::GzDecoder::new(gz);
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    out
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// One member: the fixed header, and a trailer with the CRC and size of the input at the very end.
fn check_member(gz: &[u8], data: &[u8], level: u32) {
    let xfl = match level {
        0 | 1 => 4,
        9 => 2,
        _ => 0,
    };
    assert_eq!(gz[..10], [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]);
    let n = gz.len();
    let mut crc = flate2::Crc::new();
    crc.update(data);
    assert_eq!(gz[n - 8..n - 4], crc.sum().to_le_bytes());
    assert_eq!(gz[n - 4..], (data.len() as u32).to_le_bytes());
    // The raw deflate stream ends exactly before the trailer (a single member, nothing appended).
    let mut raw = flate2::read::DeflateDecoder::new(&gz[10..n - 8]);
    let mut out = Vec::new();
    raw.read_to_end(&mut out).unwrap();
    assert!(out == data, "raw deflate body decodes to the input");
    assert_eq!(
        raw.total_in() as usize,
        n - 18,
        "deflate stream ends at the trailer"
    );
}

#[test]
fn round_trips_and_is_one_member() {
    let data = sample(2 * BLOCK_SIZE + 12345, 1);
    for level in 0..=9 {
        let gz = encode(&data, level);
        assert!(gunzip(&gz) == data, "level {level}");
        check_member(&gz, &data, level);
    }
}

#[test]
fn same_bytes_for_any_worker_count() {
    let data = sample(5 * BLOCK_SIZE + 777, 2);
    for level in [1, 6] {
        let one = encode_with(&data, level, 1, &[usize::MAX]);
        for workers in [2, 4, 16] {
            assert!(
                encode_with(&data, level, workers, &[usize::MAX]) == one,
                "level {level}, {workers} workers"
            );
        }
    }
}

#[test]
fn same_bytes_for_any_write_pattern() {
    let data = sample(2 * BLOCK_SIZE + DICT_SIZE + 99, 3);
    let whole = encode_with(&data, 1, 2, &[usize::MAX]);
    let patterns: &[&[usize]] = &[
        &[1],
        &[7, 4093, 1, 65537],
        &[BLOCK_SIZE - 1],
        &[BLOCK_SIZE + 1],
        &[DICT_SIZE],
        &[1 << 20],
    ];
    for (i, p) in patterns.iter().enumerate() {
        let workers = 1 + i % 4;
        assert!(encode_with(&data, 1, workers, p) == whole, "pattern {p:?}");
    }
}

#[test]
fn block_boundaries_and_empty_input() {
    for len in [
        0,
        1,
        DICT_SIZE - 1,
        DICT_SIZE,
        DICT_SIZE + 1,
        BLOCK_SIZE - 1,
        BLOCK_SIZE,
        BLOCK_SIZE + 1,
        2 * BLOCK_SIZE,
        2 * BLOCK_SIZE + DICT_SIZE,
    ] {
        let data = sample(len, 4 + len as u64);
        for level in [0, 1, 6] {
            let gz = encode(&data, level);
            assert!(gunzip(&gz) == data, "len {len}, level {level}");
            check_member(&gz, &data, level);
            assert!(
                encode_with(&data, level, 3, &[1000, 1]) == gz,
                "len {len}, level {level}: write pattern"
            );
        }
    }
    // The empty member is fixed too.
    assert_eq!(
        encode(&[], 1),
        [
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]
    );
}

#[test]
fn incompressible_blocks_are_stored() {
    let mut data = Vec::new();
    while data.len() < 2 * BLOCK_SIZE + 5 {
        data.extend_from_slice(&Sha256::digest(data.len().to_le_bytes()));
    }
    data.truncate(2 * BLOCK_SIZE + 5);
    let gz = encode(&data, 1);
    assert!(gunzip(&gz) == data);
    // Stored overhead only: 5 bytes per 64 KiB piece, plus header and trailer.
    assert!(
        gz.len() <= data.len() + 5 * (data.len() / 65535 + 3) + 18,
        "{} bytes",
        gz.len()
    );
}

#[test]
fn independent_of_preceding_blocks_on_the_same_worker() {
    // A worker that compressed something else first must produce the same bytes (fresh state per block).
    let a = sample(BLOCK_SIZE / 2, 5);
    let warm = sample(4 * BLOCK_SIZE, 6);
    let cold = encode_with(&a, 1, 1, &[usize::MAX]);
    let mut enc = ParGzEncoder::with_workers(Vec::new(), 1, 1).unwrap();
    enc.write_all(&warm).unwrap();
    drop(enc.finish().unwrap().0);
    assert!(encode_with(&a, 1, 1, &[usize::MAX]) == cold);
}

#[test]
fn gnu_gzip_decodes_it() {
    if Command::new("gzip").arg("--version").output().is_err() {
        eprintln!("gzip not installed; skipping");
        return;
    }
    let data = sample(3 * BLOCK_SIZE + 4321, 7);
    for level in [1, 9] {
        let gz = encode(&data, level);
        let mut child = Command::new("gzip")
            .args(["-dc"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&gz).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        assert!(out.stdout == data, "level {level}");
    }
}

/// The encoder's bytes are pinned: a change here changes every gzip layer digest (update testdata/golden.txt and
/// the README's "Reproducible" bullet in the same commit, with the reason). Last change: level 1 is kiln's own
/// deflate (`deflate.rs`), not zlib-rs's; levels 2-9 are unchanged. The sample mixes random and text runs within
/// blocks.
#[test]
fn golden_output() {
    let data = sample(3 * BLOCK_SIZE + 1000, 42);
    assert_eq!(
        sha256_hex(&data),
        "7bfe9375f2189dc15db4f4d32054897f41c40c3d6e60ac6683b6a589199ee312"
    );
    let got: Vec<(u32, String)> = [1, 6, 9]
        .into_iter()
        .map(|level| (level, sha256_hex(&encode(&data, level))))
        .collect();
    let want = [
        (
            1,
            "39df0e6d4d34a7462ed1095c7993c2efa8adf470d331498be39b0119e1dd7be0",
        ),
        (
            6,
            "43fe10d4c6fd355c77d0a215d04df5e997bac354af3ef5dc1bf34c854d4942a1",
        ),
        (
            9,
            "42c88261148cf0c805b3dda0248886218b0c3f9a57964074e81b328fba00ca27",
        ),
    ];
    assert_eq!(got, want.map(|(l, h)| (l, h.to_string())));
}

#[test]
fn incompressibility_test_is_conservative() {
    let mut random = Vec::new();
    while random.len() < BLOCK_SIZE {
        random.extend_from_slice(&Sha256::digest(random.len().to_le_bytes()));
    }
    assert!(super::block::looks_incompressible(&random));
    assert!(
        !super::block::looks_incompressible(&random[..8192]),
        "small blocks are always deflated"
    );
    // Half random, half text; and text alone.
    let mut mixed = random[..BLOCK_SIZE / 2].to_vec();
    mixed.extend_from_slice(
        &sample(BLOCK_SIZE, 8)
            .iter()
            .map(|b| b & 0x7f)
            .collect::<Vec<_>>()[..BLOCK_SIZE / 2],
    );
    assert!(!super::block::looks_incompressible(&mixed));
    let text: Vec<u8> = (0..BLOCK_SIZE)
        .map(|i| b"kiln layer digest "[i % 18])
        .collect();
    assert!(!super::block::looks_incompressible(&text));
}

#[test]
fn sink_errors_surface_and_dropping_unfinished_does_not_hang() {
    struct Failing;
    impl Write for Failing {
        fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
            Err(std::io::Error::other("disk full"))
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let data = sample(20 * BLOCK_SIZE, 9);
    let mut enc = ParGzEncoder::with_workers(Failing, 1, 2).unwrap();
    let written = enc.write_all(&data);
    let err = match written {
        Err(e) => e,
        Ok(()) => enc.finish().map(|_| ()).unwrap_err(),
    };
    assert!(err.to_string().contains("disk full"), "{err}");
    // Unfinished, with blocks in flight: dropping joins the workers.
    let mut enc = ParGzEncoder::with_workers(Vec::new(), 1, 4).unwrap();
    enc.write_all(&data).unwrap();
    drop(enc);
}

#[test]
fn random_pieces_inside_a_block_are_stored_and_text_around_them_deflated() {
    // One block: 40 KiB of text, 96 KiB of random bytes, 120 KiB of text, cut at 8 KiB piece boundaries.
    let text = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|i| b"kiln layer digest manifest "[i % 27])
            .collect()
    };
    let mut random = Vec::new();
    while random.len() < 96 * 1024 {
        random.extend_from_slice(&Sha256::digest(random.len().to_le_bytes()));
    }
    let mut data = text(40 * 1024);
    data.extend_from_slice(&random);
    data.extend_from_slice(&text(120 * 1024));
    assert_eq!(data.len(), BLOCK_SIZE);
    let runs: Vec<_> = super::block::runs(&data);
    let k = 1024;
    assert_eq!(
        runs,
        [
            (0..40 * k, false),
            (40 * k..136 * k, true),
            (136 * k..BLOCK_SIZE, false)
        ]
    );
    for workers in [1, 2] {
        let gz = encode_with(&data, 2, workers, &[usize::MAX]);
        assert!(gunzip(&gz) == data);
        // The random bytes stored (+5 bytes per stored block), the text deflated to little.
        assert!(gz.len() < 96 * k + 2 * k, "{} bytes", gz.len());
    }
    // Not cut at piece boundaries: the pieces holding both are deflated, the rest stored, the same bytes for any
    // worker count.
    let mut shifted = text(41_000);
    shifted.extend_from_slice(&random[..90_000]);
    shifted.extend_from_slice(&text(BLOCK_SIZE + 1000 - shifted.len()));
    let gz = encode_with(&shifted, 2, 1, &[usize::MAX]);
    assert!(gunzip(&gz) == shifted);
    assert!(gz == encode_with(&shifted, 2, 3, &[4096]));
    assert!(gz.len() < 90_000 + 2 * k, "{} bytes", gz.len());
    // A block of random bytes is one stored run; of text, one deflated run.
    assert_eq!(super::block::runs(&random[..64 * k]), [(0..64 * k, true)]);
    assert_eq!(
        super::block::runs(&text(BLOCK_SIZE)),
        [(0..BLOCK_SIZE, false)]
    );
    assert_eq!(super::block::runs(&[]), [(0..0, false)]);
}
