//! A parallel, deterministic gzip encoder (pigz-style), over the pure-Rust zlib-rs deflate.
//!
//! The format is fixed so the bytes are a function of the input and the level only — never of the worker count,
//! the machine, or how the input was cut into `write` calls:
//!
//! - The input is cut into blocks of exactly [`BLOCK_SIZE`] bytes at fixed offsets; the last block is the
//!   remainder (possibly empty: an input that is a multiple of the block size ends with an empty final block).
//! - Each block is compressed as raw deflate by a *freshly initialized* zlib-rs stream (never a reset one: a
//!   reused window would carry bytes of whatever block that worker compressed before), primed with the
//!   [`DICT_SIZE`] input bytes that precede the block as a preset dictionary (none for the first block).
//! - Every block but the last ends with a sync flush (byte-aligned, non-final); the last with a finish.
//! - A block whose deflate output would be larger than storing it is written as stored blocks instead
//!   (non-final, or the last one final for the last block). Matches in later blocks refer to input bytes, so how
//!   a block was encoded never matters to the next one.
//! - One gzip member: header `1f 8b 08 00 00000000 XFL ff` (no name, mtime 0, OS 255; XFL 4 for level ≤ 1, 2 for
//!   level 9, else 0), the concatenated blocks, then CRC-32 and ISIZE of the whole input.
//!
//! Memory is bounded: at most `2 × workers` blocks are in flight; output is written to the sink in order by the
//! thread that calls `write`/`finish`, so the sink need not be `Send`.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use zlib_rs::{Deflate, DeflateFlush, Status};

/// Bytes of input per block. Part of the format: changing it changes every gzip layer digest.
pub const BLOCK_SIZE: usize = 256 * 1024;
/// Bytes of preceding input each block is primed with (deflate's whole window). Part of the format.
pub const DICT_SIZE: usize = 32 * 1024;
/// Most compression threads used; the output is the same for any count ≥ 1.
const MAX_WORKERS: usize = 16;
/// Largest stored block (deflate's LEN is 16 bits).
const STORED_MAX: usize = 65535;

/// One block: its dictionary and data going in, its deflate bytes and CRC coming back.
struct Job {
    level: i32,
    /// `dict_len` bytes of dictionary, then the block's data.
    data: Vec<u8>,
    dict_len: usize,
    last: bool,
    out: Vec<u8>,
    crc: u32,
    error: Option<String>,
}

type Queued = (Job, mpsc::SyncSender<Job>);

pub struct ParGzEncoder<W: Write> {
    sink: Option<W>,
    level: i32,
    /// The block being filled: dictionary (`cur_dict` bytes) then data.
    cur: Vec<u8>,
    cur_dict: usize,
    /// Results in input order.
    pending: VecDeque<mpsc::Receiver<Job>>,
    max_pending: usize,
    spare: Vec<Job>,
    jobs: Option<mpsc::Sender<Queued>>,
    workers: Vec<JoinHandle<()>>,
    header_written: bool,
    crc: u32,
    size: u64,
}

/// Compression threads for this machine (the output does not depend on it).
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, MAX_WORKERS)
}

impl<W: Write> ParGzEncoder<W> {
    pub fn new(sink: W, level: u32) -> io::Result<Self> {
        Self::with_workers(sink, level, default_workers())
    }

    /// `workers` threads compress (at least one); the bytes written are the same for every count.
    pub fn with_workers(sink: W, level: u32, workers: usize) -> io::Result<Self> {
        if level > 9 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("gzip compression level {level} is out of range (0-9)"),
            ));
        }
        let workers = workers.max(1);
        let (tx, rx) = mpsc::channel::<Queued>();
        let rx = Arc::new(Mutex::new(rx));
        let handles = (0..workers)
            .map(|i| {
                let rx = Arc::clone(&rx);
                std::thread::Builder::new()
                    .name(format!("kiln-gzip-{i}"))
                    .spawn(move || worker(&rx))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(ParGzEncoder {
            sink: Some(sink),
            level: level as i32,
            cur: Vec::with_capacity(DICT_SIZE + BLOCK_SIZE),
            cur_dict: 0,
            pending: VecDeque::new(),
            max_pending: 2 * workers,
            spare: Vec::new(),
            jobs: Some(tx),
            workers: handles,
            header_written: false,
            crc: 0,
            size: 0,
        })
    }

    /// Compress what is left, write the trailer, and hand back the sink (not flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.collect_front()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.to_le_bytes());
        trailer[4..].copy_from_slice(&(self.size as u32).to_le_bytes());
        let mut sink = self.sink.take().expect("sink present until finish");
        sink.write_all(&trailer)?;
        Ok(sink)
    }

    fn header(&self) -> [u8; 10] {
        let xfl = match self.level {
            9 => 2,
            0 | 1 => 4,
            _ => 0,
        };
        [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
    }

    /// Hand the current block to the workers (the final one if `last`), keeping its tail as the next dictionary.
    fn dispatch(&mut self, last: bool) -> io::Result<()> {
        while self.pending.len() >= self.max_pending {
            self.collect_front()?;
        }
        let mut job = self.spare.pop().unwrap_or_else(|| Job {
            level: 0,
            data: Vec::new(),
            dict_len: 0,
            last: false,
            out: Vec::new(),
            crc: 0,
            error: None,
        });
        job.level = self.level;
        job.last = last;
        job.dict_len = self.cur_dict;
        job.error = None;
        // The next block starts with the last DICT_SIZE bytes of input (a full block is always longer than that).
        job.data.clear();
        std::mem::swap(&mut job.data, &mut self.cur);
        if !last {
            let tail = job.data.len() - DICT_SIZE.min(job.data.len());
            self.cur.extend_from_slice(&job.data[tail..]);
            self.cur_dict = self.cur.len();
        }
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        self.jobs
            .as_ref()
            .expect("workers present until finish")
            .send((job, reply_tx))
            .map_err(|_| worker_gone())?;
        self.pending.push_back(reply_rx);
        Ok(())
    }

    /// Wait for the oldest block and write it out.
    fn collect_front(&mut self) -> io::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let job = rx.recv().map_err(|_| worker_gone())?;
        if let Some(e) = &job.error {
            return Err(io::Error::other(format!("gzip compression failed: {e}")));
        }
        let len = (job.data.len() - job.dict_len) as u64;
        self.crc = zlib_rs::crc32::crc32_combine(self.crc, job.crc, len);
        self.size += len;
        let header = self.header();
        let sink = self.sink.as_mut().expect("sink present until finish");
        if !self.header_written {
            sink.write_all(&header)?;
            self.header_written = true;
        }
        sink.write_all(&job.out)?;
        self.spare.push(job);
        Ok(())
    }
}

impl<W: Write> Write for ParGzEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let room = self.cur_dict + BLOCK_SIZE - self.cur.len();
            let n = room.min(buf.len());
            self.cur.extend_from_slice(&buf[..n]);
            buf = &buf[n..];
            if self.cur.len() == self.cur_dict + BLOCK_SIZE {
                self.dispatch(false)?;
            }
        }
        Ok(())
    }

    /// Does nothing: a flush must not change the bytes. Everything is written by `finish`.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for ParGzEncoder<W> {
    fn drop(&mut self) {
        // Unfinished (an error on the way): stop the workers and wait for them; their results are discarded.
        self.jobs.take();
        self.pending.clear();
        for h in self.workers.drain(..) {
            let _ = h.join();
        }
    }
}

fn worker_gone() -> io::Error {
    io::Error::other("a gzip compression thread stopped")
}

fn worker(rx: &Mutex<mpsc::Receiver<Queued>>) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((mut job, reply)) = next else { return };
        if let Err(e) = compress_block(&mut job) {
            job.error = Some(e);
        }
        // The encoder may have been dropped: nobody to tell.
        let _ = reply.send(job);
    }
}

/// Compress one block into `job.out` per the module's format rules.
fn compress_block(job: &mut Job) -> Result<(), String> {
    let (dict, input) = job.data.split_at(job.dict_len);
    job.crc = zlib_rs::crc32::crc32(0, input);
    job.out.clear();
    if job.level > 0 && looks_incompressible(input) {
        write_stored(&mut job.out, input, job.last);
        return Ok(());
    }
    // A fresh stream for every block: its state depends on nothing but this block's dictionary and data.
    let mut d = Deflate::new(job.level, false, 15);
    if !dict.is_empty() {
        d.set_dictionary(dict).map_err(|e| e.as_str().to_string())?;
    }
    let flush = if job.last {
        DeflateFlush::Finish
    } else {
        DeflateFlush::SyncFlush
    };
    // The output space is a fixed function of the block length (deflate's output may depend on how much room
    // it is given, e.g. at level 0): room for the stored form plus a little. Filling it means storing wins.
    let stored = stored_len(input.len());
    let cap = stored + 64;
    job.out.reserve(cap);
    let mut rest = input;
    while job.out.len() < cap {
        let (in0, out0) = (d.total_in(), d.total_out());
        let room = cap - job.out.len();
        let spare = &mut job.out.spare_capacity_mut()[..room];
        let status = d
            .compress_uninit(rest, spare, flush)
            .map_err(|e| e.as_str().to_string())?;
        let produced = (d.total_out() - out0) as usize;
        // SAFETY: deflate initialized the first `produced` bytes of the spare capacity.
        unsafe { job.out.set_len(job.out.len() + produced) };
        rest = &rest[(d.total_in() - in0) as usize..];
        let done = match flush {
            DeflateFlush::Finish => matches!(status, Status::StreamEnd),
            // A sync flush is complete once all input is taken and deflate left output space unused.
            _ => rest.is_empty() && produced < room,
        };
        if done {
            break;
        }
        if produced == 0 && (d.total_in() - in0) == 0 {
            return Err(format!("deflate made no progress ({status:?})"));
        }
    }
    if job.out.len() > stored {
        job.out.clear();
        write_stored(&mut job.out, input, job.last);
    }
    Ok(())
}

/// Whether a block is as good as random bytes (compressed files, mostly): deflating it would only spend time. An
/// integer test, so the decision is the same on every machine: the order-2 Rényi entropy of the byte histogram,
/// −log2(Σpᵢ²), is at least 8 − log2(1 + 1/64) ≈ 7.98 bits per byte (a lower bound on the Shannon entropy: no byte
/// coding could save more than 0.3%). Uniform random blocks of 256 KiB pass with a wide margin (Σcᵢ² ≈ n²/256 ·
/// (1 + 256/n)); text and binaries are far below. Blocks under 16 KiB are always deflated.
fn looks_incompressible(data: &[u8]) -> bool {
    if data.len() < 16 * 1024 {
        return false;
    }
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
    let sum_sq: u128 = (0..256)
        .map(|i| {
            let c = u128::from(counts[0][i] + counts[1][i] + counts[2][i] + counts[3][i]);
            c * c
        })
        .sum();
    let n = data.len() as u128;
    // 256 Σcᵢ² ≤ n² (1 + 1/64)
    256 * 64 * sum_sq <= n * n * 65
}

/// Size of `n` bytes as stored blocks (at least one block, so an empty final block is representable).
fn stored_len(n: usize) -> usize {
    n + 5 * n.div_ceil(STORED_MAX).max(1)
}

/// `data` as byte-aligned stored blocks; the last one final if `last`.
fn write_stored(out: &mut Vec<u8>, data: &[u8], last: bool) {
    let mut pieces = data.chunks(STORED_MAX).peekable();
    if data.is_empty() {
        out.extend_from_slice(&[u8::from(last), 0, 0, 0xff, 0xff]);
        return;
    }
    while let Some(p) = pieces.next() {
        let fin = last && pieces.peek().is_none();
        let len = p.len() as u16;
        out.push(u8::from(fin));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(p);
    }
}

#[cfg(test)]
mod tests;
