//! A parallel, deterministic gzip encoder (pigz-style): level 1 (the default) over kiln's own deflate
//! (`deflate.rs`), levels 2-9 over the pure-Rust zlib-rs deflate.
//!
//! The format is fixed so the bytes are a function of the input and the level only — never of the worker count,
//! the machine, or how the input was cut into `write` calls:
//!
//! - The input is cut into blocks. A block is cut once it holds at least [`MIN_BLOCK`] bytes, at the first
//!   *mark* (the caller marks where each tar entry starts: [`ParGzEncoder::mark`]) or the first offset that is a
//!   multiple of [`BLOCK_SIZE`] past the last mark (the start of the stream counts as one), whichever comes first.
//!   The last block is the remainder (possibly empty). Without marks this is blocks of exactly [`BLOCK_SIZE`]
//!   bytes at fixed offsets. With them, block boundaries move with the entries: a file that grows or shrinks
//!   shifts the bytes after it, but the blocks after it still start at the same entries, hold the same bytes, and
//!   compress to the same bytes — which a later build reuses instead of compressing them again ([`OldBlocks`]).
//! - Each block is compressed as raw deflate by a *freshly initialized* stream (never a reset zlib-rs one: a
//!   reused window would carry bytes of whatever block that worker compressed before; kiln's deflate keeps its
//!   hash table between blocks but never reads an entry an earlier block wrote), primed with the [`DICT_SIZE`]
//!   input bytes that precede the block as a preset dictionary (none for the first block).
//!   Inside a block, 8 KiB pieces that look like random bytes are stored and the runs between them deflated the
//!   same way, each primed with the 32 KiB before it (`block.rs`).
//! - Every block but the last ends with a sync flush (byte-aligned, non-final); the last with a finish.
//! - A block whose deflate output would be larger than storing it is written as stored blocks instead
//!   (non-final, or the last one final for the last block). Matches in later blocks refer to input bytes, so how
//!   a block was encoded never matters to the next one.
//! - One gzip member: header `1f 8b 08 00 00000000 XFL ff` (no name, mtime 0, OS 255; XFL 4 for level ≤ 1, 2 for
//!   level 9, else 0), the concatenated blocks, then CRC-32 and ISIZE of the whole input.
//!
//! Memory is bounded: at most [`IN_FLIGHT_PER_WORKER`]` × workers` blocks are in flight; output is written to the sink in order by the
//! thread that calls `write`/`finish`, so the sink need not be `Send`.
//!
//! Reuse: since a block's bytes depend only on its dictionary, its data, whether it is the last and the level, an
//! encoder given the [`BlockTable`] of an earlier stream (and that stream's file) copies the compressed bytes of
//! every deflated block whose key — a BLAKE3 hash of exactly those inputs — it finds there instead of deflating it
//! again. The output is the same bytes either way; only the work differs.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

/// Bytes of input per block inside a long entry (and without marks). Part of the format: changing it changes
/// every gzip layer digest.
pub const BLOCK_SIZE: usize = 256 * 1024;
/// Fewest bytes of input in a block but the last. Part of the format.
pub const MIN_BLOCK: usize = 256 * 1024;
/// Most compression threads used; the output is the same for any count ≥ 1.
const MAX_WORKERS: usize = 16;
/// Blocks in flight per worker. The reading thread runs ahead of the workers by this much: through input that
/// compresses fast (incompressible blocks are only stored) it queues blocks for the slow stretches to come. On
/// the `big` bench fixture (alternating MiB of random bytes and text) a cold build took 0.655 s with 2, 0.575 s
/// with 3 and 0.545 s with 4 (4 runs each); `small` and `node` were alike for all three, while each step costs
/// a block's buffers per worker (`node`, two parts at once: 51 -> 53 -> 57 MiB peak RSS).
const IN_FLIGHT_PER_WORKER: usize = 3;

type Queued = (Job, mpsc::SyncSender<Job>);

/// The layer encoder: write the input (marking tar entry starts), then `finish`. Public for
/// `benches/gzfilter.rs`, which measures it beside other gzip encoders.
pub struct ParGzEncoder<W: Write> {
    sink: Option<W>,
    level: i32,
    /// The block being filled: dictionary (`cur_dict` bytes) then data.
    cur: Vec<u8>,
    cur_dict: usize,
    /// Input bytes so far, where the current block starts, and the last mark (all stream offsets).
    pos: u64,
    start: u64,
    mark_at: u64,
    /// Bytes of output so far (the offset of the next block) and the table being recorded.
    out_pos: u64,
    table: Option<BlockTable>,
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
    /// `workers` threads compress (at least one); the bytes written are the same for every count.
    pub fn with_workers(sink: W, level: u32, workers: usize) -> io::Result<Self> {
        Self::with_reuse(sink, level, workers, Reuse::default())
    }

    /// [`ParGzEncoder::with_workers`], keying blocks and reusing an earlier stream's as `reuse` says.
    pub fn with_reuse(sink: W, level: u32, workers: usize, reuse: Reuse) -> io::Result<Self> {
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
                let (rx, reuse) = (Arc::clone(&rx), reuse.clone());
                std::thread::Builder::new()
                    .name(format!("kiln-gzip-{i}"))
                    .spawn(move || worker(&rx, &reuse))
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(ParGzEncoder {
            sink: Some(sink),
            level: level as i32,
            cur: Vec::with_capacity(DICT_SIZE + MIN_BLOCK + BLOCK_SIZE),
            cur_dict: 0,
            pos: 0,
            start: 0,
            mark_at: 0,
            out_pos: 0,
            table: reuse.record.then(BlockTable::default),
            pending: VecDeque::new(),
            max_pending: IN_FLIGHT_PER_WORKER * workers,
            spare: Vec::new(),
            jobs: Some(tx),
            workers: handles,
            header_written: false,
            crc: 0,
            size: 0,
        })
    }

    /// A tar entry starts here: the current block ends now if it is long enough (see the module doc).
    pub fn mark(&mut self) -> io::Result<()> {
        if self.pos - self.start >= MIN_BLOCK as u64 {
            self.dispatch(false)?;
        }
        self.mark_at = self.pos;
        Ok(())
    }

    /// Where the current block ends if no mark comes first: the first multiple of [`BLOCK_SIZE`] past the last
    /// mark that leaves the block at least [`MIN_BLOCK`] long.
    fn stride_end(&self) -> u64 {
        let (block, min) = (BLOCK_SIZE as u64, MIN_BLOCK as u64);
        // After a mark that did not cut, the mark lies within the first MIN_BLOCK bytes of the block.
        let steps = (self.start + min - self.mark_at).div_ceil(block).max(1);
        self.mark_at + steps * block
    }

    /// Compress what is left, write the trailer, and hand back the sink (not flushed) with the table of this
    /// stream's blocks (empty unless recording).
    pub fn finish(mut self) -> io::Result<(W, BlockTable)> {
        self.dispatch(true)?;
        while !self.pending.is_empty() {
            self.collect_front()?;
        }
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.crc.to_le_bytes());
        trailer[4..].copy_from_slice(&(self.size as u32).to_le_bytes());
        let mut sink = self.sink.take().expect("sink present until finish");
        sink.write_all(&trailer)?;
        Ok((sink, self.table.take().unwrap_or_default()))
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
            key: None,
            out_crc: 0,
            reused: false,
            error: None,
        });
        job.level = self.level;
        job.last = last;
        job.dict_len = self.cur_dict;
        job.key = None;
        job.reused = false;
        job.error = None;
        self.start = self.pos;
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
            self.out_pos = header.len() as u64;
        }
        sink.write_all(&job.out)?;
        if let (Some(t), Some(key)) = (self.table.as_mut(), job.key) {
            t.blocks
                .push((key, self.out_pos, job.out.len() as u32, job.out_crc));
            t.reused += usize::from(job.reused);
        }
        self.out_pos += job.out.len() as u64;
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
            let end = self.stride_end();
            let n = usize::try_from(end - self.pos).map_or(buf.len(), |room| room.min(buf.len()));
            self.cur.extend_from_slice(&buf[..n]);
            self.pos += n as u64;
            buf = &buf[n..];
            if self.pos == end {
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

fn worker(rx: &Mutex<mpsc::Receiver<Queued>>, reuse: &Reuse) {
    loop {
        let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
        let Ok((mut job, reply)) = next else { return };
        if let Err(e) = compress_block(&mut job, reuse) {
            job.error = Some(e);
        }
        // The encoder may have been dropped: nobody to tell.
        let _ = reply.send(job);
    }
}

mod block;
mod deflate;
mod huffman;
mod reuse;

pub use block::DICT_SIZE;
use block::{Job, compress_block};
pub use reuse::{BlockKey, BlockTable, OldBlocks, Reuse};

#[cfg(test)]
mod reuse_tests;
#[cfg(test)]
mod tests;
