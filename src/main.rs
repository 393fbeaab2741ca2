mod cli;
mod commands;
mod config_file;
mod output;
mod progress;

fn main() {
    keep_freed_memory();
    std::process::exit(cli::main());
}

/// Every layer (and every 256 KiB gzip block) allocates and frees the same few MiB of buffers and deflate state;
/// with glibc's defaults each big free goes back to the kernel (munmap, heap trim) and the next allocation
/// page-faults it in again: a split directory's nine layers took 9 000 more page faults (~40 ms on 2 cores)
/// than one layer. Allocations up to 8 MiB (1 MiB tar buffers, 4 MiB upload chunks, a block's deflate state)
/// come from the heap, and up to 4 MiB free at its top stays there for reuse. Measured on the `node` fixture
/// (benches/): 25 000 -> 14 000 page faults, build 0.82 -> 0.52-0.60 s, peak RSS 43 -> 47-49 MiB. A larger trim
/// threshold saves a little more time (0.48 s with 256 MiB) but took node to 54-62 MiB, too close to the 64 MiB
/// budget.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator tunables; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 4 << 20);
    }
}
