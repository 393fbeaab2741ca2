//! kiln's gzip layer encoder as a stdin → stdout filter, so `benches/encoders.sh` can time it beside other gzip
//! encoders (igzip, libdeflate, pigz) on the same tar: `gzfilter LEVEL WORKERS < in.tar > out.gz`.
//!
//! No tar entry marks: the input is cut into fixed 256 KiB blocks (a layer's blocks also start at entries, which
//! changes little but where they are cut). Not a libtest harness (`harness = false`); run bare, as `cargo bench`
//! does, it prints its usage and exits.

use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

use kiln_pgzip::ParGzEncoder;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [level, workers] => level.parse::<u32>().ok().zip(workers.parse::<usize>().ok()),
        _ => None,
    };
    let Some((level, workers)) = parsed else {
        eprintln!(
            "usage: gzfilter LEVEL WORKERS < input > output.gz (kiln's gzip encoder; see benches/encoders.sh)"
        );
        return ExitCode::SUCCESS;
    };
    match filter(level, workers) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gzfilter: {e}");
            ExitCode::FAILURE
        }
    }
}

fn filter(level: u32, workers: usize) -> io::Result<()> {
    let out = BufWriter::with_capacity(1 << 20, io::stdout().lock());
    let mut enc = ParGzEncoder::with_workers(out, level, workers)?;
    let mut input = io::stdin().lock();
    // The size kiln's layer writer hands the encoder per write.
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        enc.write_all(&buf[..n])?;
    }
    let (mut out, _) = enc.finish()?;
    out.flush()
}
