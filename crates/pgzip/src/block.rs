//! One block's deflate bytes, per the format rules in the module doc of `pgzip`: a function of the block's
//! dictionary, its data, the level and whether it is the last, and of nothing else.
//!
//! The data is looked at in [`PIECE`]-sized pieces. A piece that is as good as random bytes (compressed files:
//! images, fonts, archives, a binary's embedded assets) is stored; runs of the other pieces are deflated, each by a
//! fresh stream (kiln's deflate at level 1, zlib-rs's above) primed with the [`DICT_SIZE`] bytes before the run,
//! and sync-flushed so the next run starts on a byte boundary. A block of text is one run (deflated exactly as a whole block); a block of random bytes is
//! stored whole. Deflating random bytes only spends time, at a fraction of the speed of text: where random and
//! compressible data share blocks (a binary's embedded assets, a PNG beside the sources in one block, the `big`
//! bench fixture's tar compressed without entry marks) storing just the random pieces halves the work.

use zlib_rs::{Deflate, DeflateFlush, Status};

use super::deflate::Deflater;
use super::huffman::{BitWriter, stored_len};
use super::reuse::{BlockKey, Reuse};

/// Bytes of preceding input each block is primed with (deflate's whole window). Part of the format.
pub const DICT_SIZE: usize = 32 * 1024;

/// One block: its dictionary and data going in, its deflate bytes and CRC coming back.
pub(crate) struct Job {
    pub(crate) level: i32,
    /// `dict_len` bytes of dictionary, then the block's data.
    pub(crate) data: Vec<u8>,
    pub(crate) dict_len: usize,
    pub(crate) last: bool,
    pub(crate) out: Vec<u8>,
    pub(crate) crc: u32,
    /// The block's key, when it was deflated and keys are wanted.
    pub(crate) key: Option<BlockKey>,
    /// CRC-32 of `out`, when there is a key.
    pub(crate) out_crc: u32,
    /// Its bytes were copied from an earlier stream.
    pub(crate) reused: bool,
    pub(crate) error: Option<String>,
}

thread_local! {
    /// Level 1's scratch (hash table, tokens), kept per compression thread.
    static DEFLATER: std::cell::RefCell<Deflater> = std::cell::RefCell::new(Deflater::default());
}

/// Bytes looked at together when telling random bytes from the rest. Part of the format.
const PIECE: usize = 8 * 1024;
/// Bytes of each piece tested first: text and code fail there, for a thirty-second of the work.
const HEAD: usize = 256;

/// Compress one block into `job.out` (or copy it from an earlier stream).
pub(super) fn compress_block(job: &mut Job, reuse: &Reuse) -> Result<(), String> {
    let (dict, input) = job.data.split_at(job.dict_len);
    job.crc = zlib_rs::crc32::crc32(0, input);
    job.out.clear();
    let runs = if job.level > 0 {
        runs(input)
    } else {
        vec![(0..input.len(), false)]
    };
    if let [(_, true)] = runs.as_slice() {
        // Nothing to deflate: not keyed, storing costs nothing to redo.
        write_stored(&mut job.out, input, job.last);
        return Ok(());
    }
    if reuse.record || reuse.old.is_some() {
        let key = block_key(job.level, job.last, dict, input);
        job.key = Some(key);
        if let Some(crc) = reuse.old.as_ref().and_then(|o| o.read(&key, &mut job.out)) {
            job.reused = true;
            job.out_crc = crc;
            return Ok(());
        }
        job.out.clear();
    }
    deflate_block(job, runs)?;
    if job.key.is_some() {
        job.out_crc = zlib_rs::crc32::crc32(0, &job.out);
    }
    Ok(())
}

/// Deflate (or store) the block's data, run by run, into `job.out`.
fn deflate_block(job: &mut Job, runs: Vec<(std::ops::Range<usize>, bool)>) -> Result<(), String> {
    let input = &job.data[job.dict_len..];
    // The output space is a fixed function of the block length (deflate's output may depend on how much room
    // it is given, e.g. at level 0): room for the stored form plus a little. Filling it means storing wins.
    let stored = stored_len(input.len());
    let cap = stored + 64;
    job.out.reserve(cap);
    let n = runs.len();
    for (i, (range, random)) in runs.into_iter().enumerate() {
        let last = job.last && i + 1 == n;
        let data = &input[range.clone()];
        if random {
            write_stored(&mut job.out, data, last);
            continue;
        }
        // The run's dictionary: the DICT_SIZE bytes before it (the block's own dictionary, then its data).
        let end = job.dict_len + range.start;
        if job.level == 1 {
            // kiln's deflate reads the dictionary in place, just before the run.
            let buf = &job.data[..end + data.len()];
            DEFLATER.with_borrow_mut(|d| d.deflate(&mut job.out, buf, end, last));
            if job.out.len() >= cap {
                break;
            }
        } else {
            let run_dict = &job.data[end.saturating_sub(DICT_SIZE)..end];
            if !deflate_into(&mut job.out, job.level, run_dict, data, last, cap)? {
                break;
            }
        }
    }
    if job.out.len() > stored {
        job.out.clear();
        write_stored(&mut job.out, input, job.last);
    }
    Ok(())
}

/// The key of a block: BLAKE3 over the level, the last-block flag, the dictionary's length, the dictionary and the
/// data (every input of `compress_block`), truncated to 128 bits. The label names the encoding rules, so a block
/// of older rules is never copied into a newer stream: v2 stores random pieces inside a block (v1 only whole
/// blocks); v3 deflates level 1 with kiln's own deflate (v2 with zlib-rs's level 1).
fn block_key(level: i32, last: bool, dict: &[u8], input: &[u8]) -> BlockKey {
    let mut h = blake3::Hasher::new();
    h.update(b"kiln pgzip block v3\0");
    h.update(&level.to_le_bytes());
    h.update(&[u8::from(last)]);
    h.update(&(dict.len() as u64).to_le_bytes());
    h.update(dict);
    h.update(input);
    let mut key = [0; 16];
    key.copy_from_slice(&h.finalize().as_bytes()[..16]);
    key
}

/// The block's data as runs of pieces to deflate (`false`) or store (`true`), in order, covering all of it. A
/// block of random pieces is one stored run, and so is a block that is random as a whole though a few of its
/// pieces are not (a file's first or last bytes in a block of random bytes: storing them costs less than a
/// deflate run and two sync flushes). A final piece shorter than [`PIECE`] is deflated (too short to tell).
pub(super) fn runs(input: &[u8]) -> Vec<(std::ops::Range<usize>, bool)> {
    let mut runs: Vec<(std::ops::Range<usize>, bool)> = Vec::new();
    for (i, piece) in input.chunks(PIECE).enumerate() {
        let start = i * PIECE;
        let random = piece.len() == PIECE && piece_looks_random(piece);
        match runs.last_mut() {
            Some((r, kind)) if *kind == random => r.end = start + piece.len(),
            _ => runs.push((start..start + piece.len(), random)),
        }
    }
    if runs.len() > 1 && looks_incompressible(input) {
        return vec![(0..input.len(), true)];
    }
    if runs.is_empty() {
        runs.push((0..0, false));
    }
    runs
}

/// Whether a [`PIECE`] is as good as random bytes: deflating it would only spend time. An integer test, so the
/// decision is the same on every machine: the order-2 Rényi entropy of the byte histogram, −log2(Σpᵢ²), is at
/// least 8 − log2(1 + 1/16) ≈ 7.91 bits per byte (a lower bound on the Shannon entropy: no byte coding could save
/// more than 1.1%). Uniform random 8 KiB give Σcᵢ²·256/n² ≈ 1 + 256/n = 1.031 with a standard deviation of
/// about 0.003, eleven below the bound; text and code give 10 or more. The first [`HEAD`] bytes are tested
/// first against a looser bound (1 + 2: random 256 bytes give 2 ± 0.09; text 10 or more), with a small
/// histogram: a text block fails there 32 times, so that test must cost little beside deflating the block.
fn piece_looks_random(piece: &[u8]) -> bool {
    let mut counts = [0u16; 256];
    for &b in &piece[..HEAD] {
        counts[b as usize] += 1;
    }
    let head: u32 = counts.iter().map(|&c| u32::from(c) * u32::from(c)).sum();
    // 256 Σcᵢ² ≤ h² (1 + 2)
    if 256 * head > (HEAD * HEAD * 3) as u32 {
        return false;
    }
    let n = piece.len() as u128;
    // 256 Σcᵢ² ≤ n² (1 + 1/16)
    256 * 16 * sum_of_squares(piece) <= n * n * 17
}

/// Whether a whole block is as good as random bytes, by the same test with a tighter bound: at least
/// 8 − log2(1 + 1/64) ≈ 7.98 bits per byte (random 256 KiB blocks give 1.001). Blocks under 16 KiB never are. The
/// first 16 KiB are tested first, against a looser bound (1 + 1/16).
pub(super) fn looks_incompressible(data: &[u8]) -> bool {
    const HEAD: usize = 16 * 1024;
    if data.len() < HEAD {
        return false;
    }
    let n = HEAD as u128;
    // 256 Σcᵢ² ≤ n² (1 + 1/16)
    if 256 * 16 * sum_of_squares(&data[..HEAD]) > n * n * 17 {
        return false;
    }
    let n = data.len() as u128;
    // 256 Σcᵢ² ≤ n² (1 + 1/64)
    256 * 64 * sum_of_squares(data) <= n * n * 65
}

/// Σcᵢ² over the byte histogram of `data`.
fn sum_of_squares(data: &[u8]) -> u128 {
    let mut counts = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        counts[0][q[0] as usize] += 1;
        counts[1][q[1] as usize] += 1;
        counts[2][q[2] as usize] += 1;
        counts[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        counts[0][b as usize] += 1;
    }
    (0..256)
        .map(|i| {
            let c = u128::from(counts[0][i] + counts[1][i] + counts[2][i] + counts[3][i]);
            c * c
        })
        .sum()
}

/// Deflate `data` with a fresh stream primed with `dict`, appending to `out`: sync-flushed, or finished if `last`.
/// Returns false once `out` holds `cap` bytes or more (storing the block wins); `out` is then discarded.
fn deflate_into(
    out: &mut Vec<u8>,
    level: i32,
    dict: &[u8],
    data: &[u8],
    last: bool,
    cap: usize,
) -> Result<bool, String> {
    // A fresh stream: its state depends on nothing but this run's dictionary and data.
    let mut d = Deflate::new(level, false, 15);
    if !dict.is_empty() {
        d.set_dictionary(dict).map_err(|e| e.as_str().to_string())?;
    }
    let flush = if last {
        DeflateFlush::Finish
    } else {
        DeflateFlush::SyncFlush
    };
    let mut rest = data;
    while out.len() < cap {
        let (in0, out0) = (d.total_in(), d.total_out());
        let room = cap - out.len();
        let spare = &mut out.spare_capacity_mut()[..room];
        let status = d
            .compress_uninit(rest, spare, flush)
            .map_err(|e| e.as_str().to_string())?;
        let produced = (d.total_out() - out0) as usize;
        // SAFETY: deflate initialized the first `produced` bytes of the spare capacity.
        unsafe { out.set_len(out.len() + produced) };
        rest = &rest[(d.total_in() - in0) as usize..];
        let done = match flush {
            DeflateFlush::Finish => matches!(status, Status::StreamEnd),
            // A sync flush is complete once all input is taken and deflate left output space unused.
            _ => rest.is_empty() && produced < room,
        };
        if done {
            return Ok(true);
        }
        if produced == 0 && (d.total_in() - in0) == 0 {
            return Err(format!("deflate made no progress ({status:?})"));
        }
    }
    Ok(false)
}

/// `data` as byte-aligned stored blocks appended to `out`; the last one final if `last`.
fn write_stored(out: &mut Vec<u8>, data: &[u8], last: bool) {
    BitWriter::new(out).stored(data, last);
}
