//! Cut one walked directory into several image layers, so a rebuild after a small change recompresses and
//! re-uploads (and a node re-pulls) only the part that changed, not the whole directory.
//!
//! The cuts are content-defined over the sorted entry list, like chunk boundaries in a deduplicating store: whether
//! to cut after an entry depends only on that entry (a hash of its path, its size) and on how many bytes the
//! current part holds, never on absolute positions. Adding, removing or resizing one file therefore moves at most
//! the boundaries next to it; every other part keeps exactly the same entries, so its layer cache key and its blob
//! digest stay the same. Large files get a layer of their own (a 200 MB binary beside a changed README is not
//! recompressed). Parts never separate a hardlink from the file it links to: a link must resolve inside its layer.
//!
//! Each part is a contiguous run of the sorted entries, so a directory always lands in the same or an earlier
//! layer than its contents; applying the layers in order rebuilds the same tree as one layer would.

use std::collections::HashMap;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;

use crate::error::{Error, Result};
use crate::walk::{Entry, EntryKind};

/// How each layer source is cut into image layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Split {
    /// One image layer per source directory.
    Off,
    /// Parts of about [`auto_target`] bytes of tar: at least 2 MiB, at most ~16 parts per source.
    #[default]
    Auto,
    /// Parts of about this many bytes of tar.
    Size(u64),
}

/// The smallest part size `--split SIZE` accepts, and the smallest automatic target. A one-file-changed rebuild
/// recompresses and uploads about one part, so this is its floor; every part costs a push into a new repository
/// two requests (a runner without a layer cache, pushing where the image was pushed before, a `HEAD`), and a pull
/// one more layer. `small` bench fixture (29 MiB of tar, 3000 files): 4 MiB made 9 layers, a one-file-changed
/// rebuild+push of 51 ms and a cold push of 192 ms; 2 MiB makes 15 layers, 39 ms and 217 ms (medians of 10 and
/// 20 runs): the rebuild CI runs all day is a fifth faster, the first push of a repository an eighth slower.
pub const MIN_TARGET: u64 = 2 << 20;
/// The automatic target aims at no more than about this many parts per source (plus isolated large files).
const AUTO_PARTS: u64 = 16;

impl std::str::FromStr for Split {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "auto" => return Ok(Split::Auto),
            "off" | "none" => return Ok(Split::Off),
            _ => {}
        }
        let bytes = parse_size(s).ok_or_else(|| {
            format!("expected auto, off or a size like 16MiB (B, KiB, MiB, GiB), not {s:?}")
        })?;
        if bytes < MIN_TARGET {
            return Err(format!(
                "{s}: parts smaller than {}MiB would make too many layers",
                MIN_TARGET >> 20
            ));
        }
        Ok(Split::Size(bytes))
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Split::Off => f.write_str("off"),
            Split::Auto => f.write_str("auto"),
            Split::Size(n) => write!(f, "{n}B"),
        }
    }
}

/// `123`, `123B`, `64KiB`, `16MiB`, `1GiB` (also `K`/`M`/`G`, binary units) as bytes.
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// The part size `Auto` aims at for a source of `total` tar bytes: a power of two, so small changes of the total
/// do not move it (and with it every boundary).
pub fn auto_target(total: u64) -> u64 {
    (total / AUTO_PARTS).next_power_of_two().max(MIN_TARGET)
}

/// Bytes an entry takes in the tar stream: its header block and its contents padded to 512-byte blocks (PAX
/// headers for long names are left out: the sizes only steer the cuts).
fn weight(e: &Entry) -> u64 {
    match e.kind {
        EntryKind::File { size } => 512 + size.div_ceil(512) * 512,
        _ => 512,
    }
}

/// FNV-1a over the path, then the murmur3 finalizer so that every bit of the result is well mixed. Fixed here,
/// not a std hasher: the boundaries (and so the layer digests) must be the same on every machine and release.
fn path_hash(path: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in path {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The parts of `entries` (sorted, as `walk` returns them): contiguous, non-empty, covering every entry in order.
#[allow(clippy::single_range_in_vec_init)] // one part holding every entry, not the numbers 0..n
pub fn parts(entries: &[Entry], split: Split) -> Vec<Range<usize>> {
    let n = entries.len();
    let target = match split {
        Split::Off => return vec![0..n],
        Split::Auto => auto_target(entries.iter().map(weight).sum()),
        Split::Size(s) => s,
    };
    // A part holds at least `min` bytes before a hashed cut may end it, and is ended at the first allowed cut
    // past `max`. Between the two, an entry of `w` bytes ends the part with probability w / (2 * target) while
    // the part is below `target`, and 2w / target above it (FastCDC's "normalized chunking": sizes gather near
    // the target instead of spreading exponentially), wherever the bytes are: many small files or a few big ones.
    let (min, max) = (target / 4, target * 2);
    // For each file that later names link to, the index of its last link: no cut may fall in between.
    let mut last_link: HashMap<&[u8], usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if let EntryKind::Hardlink { target } = &e.kind {
            last_link.insert(target.as_os_str().as_bytes(), i);
        }
    }
    let mut out = Vec::new();
    let (mut start, mut acc, mut open_until, mut holds_large) = (0, 0u64, 0usize, false);
    for (i, e) in entries.iter().enumerate() {
        let path = e.path.as_os_str().as_bytes();
        if let Some(&j) = last_link.get(path) {
            open_until = open_until.max(j);
        }
        let w = weight(e);
        acc += w;
        // A large file ends its part at the first allowed cut (right after it, or after its last hardlink).
        holds_large |= w >= target;
        if i + 1 == n {
            break;
        }
        if open_until > i {
            continue;
        }
        let next_large = weight(&entries[i + 1]) >= target;
        let spread = if acc < target { 2 * target } else { target / 2 };
        let hashed =
            acc >= min && u128::from(path_hash(path)) * u128::from(spread) < u128::from(w) << 64;
        if holds_large || next_large || acc >= max || hashed {
            out.push(start..i + 1);
            start = i + 1;
            acc = 0;
            holds_large = false;
        }
    }
    if start < n || out.is_empty() {
        out.push(start..n);
    }
    out
}

/// Refuse an image with more layers than runtimes handle well (overlayfs stacks, docker's historical limit of
/// 127): a base of many layers plus a small `--split SIZE` could otherwise produce one.
pub fn check_layer_count(count: usize) -> Result<()> {
    const MAX_LAYERS: usize = 127;
    if count > MAX_LAYERS {
        return Err(Error::Usage(format!(
            "the image would have {count} layers, more than the {MAX_LAYERS} runtimes reliably stack: use a \
             larger --split SIZE, or --split off"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
