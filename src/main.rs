//! The `kiln` binary: parse the command line → resolve it into the engine's plan → run → print the result on
//! stdout and the error chain on stderr → the exit code (0 success, 1 failure, 2 usage, 3 a tag would move). The
//! engine (`kiln_engine`) never prints; `progress` shows its events, `output` owns stdout.

mod cli;
mod commands;
mod config_file;
mod output;
mod progress;

use clap::{CommandFactory, FromArgMatches};

fn main() {
    keep_freed_memory();
    std::process::exit(run());
}

fn run() -> i32 {
    let matches = match cli::Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => return clap_exit(e),
    };
    let cli = match cli::Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => return clap_exit(e),
    };
    match commands::run(cli, &matches) {
        Ok(()) => 0,
        // `kiln inspect … | head -1`: the reader has what it wanted.
        Err(e) if output::is_broken_pipe(&e) => 0,
        Err(e) => {
            eprint!("{}", output::error_report(&e));
            e.exit_code()
        }
    }
}

/// clap's own messages: `--help`/`--version` (exit 0) or a usage error (exit 2).
fn clap_exit(e: clap::Error) -> i32 {
    let _ = e.print();
    if e.use_stderr() { 2 } else { 0 }
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
