//! Walk a build-output directory into the sorted, normalized list of entries a layer is made of.
//!
//! The walk never follows a symlink except `root` itself, refuses what cannot be represented faithfully in an
//! image layer (sockets, devices, FIFOs, names runtimes would read as whiteouts), and records what `layer` needs to
//! notice a file changing under it (`stamp`). Owners and times are not recorded: the layer normalizes them.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod exclude;
#[cfg(test)]
pub(crate) mod fixture;
mod order;
mod scan;
mod sys;
#[cfg(test)]
mod tests;

pub use exclude::{Exclude, IGNORE_FILE, Pattern, outputs_inside, patterns_for};

/// What an entry is. Owners and times are not recorded: the layer normalizes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    Dir,
    /// A regular file of `size` bytes (as seen by the walk; a different size when read is an error).
    File {
        size: u64,
    },
    /// A symlink, stored as a link with its target verbatim; never followed.
    Symlink {
        target: PathBuf,
    },
    /// A second (or later) name of an inode already listed: `target` is the archive path of the first name.
    Hardlink {
        target: PathBuf,
    },
}

/// One entry of a layer.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path inside the image, relative, without leading `/` (e.g. `app/bin/server`); directories without
    /// trailing slash. Sorted byte-wise; parents come before children.
    pub path: PathBuf,
    /// Where to read it on disk (`None` for synthesized parent directories of the prefix).
    pub source: Option<PathBuf>,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// (st_mtime, st_mtime_nsec, st_ctime, st_ctime_nsec, st_ino) at walk time, to detect a file changed while
    /// it is being read.
    pub stamp: (i64, i64, i64, i64, u64),
    /// A directory the base image has: written with the base's owner and time (and mode, in `mode`) instead of
    /// the build's (`base::BaseTree::adopt`).
    pub from_base: Option<Box<FromBase>>,
}

/// The owner and time of a base image's directory, kept when kiln's layer writes the directory again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromBase {
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
}

/// Mode of the directories synthesized for the components of `dest`.
pub const DEST_DIR_MODE: u32 = 0o755;

/// The prefix runtimes read as a whiteout (OCI image spec, "Whiteouts"); a file named like this in a layer would
/// delete the same name from the layers below instead of being a file.
const WHITEOUT_PREFIX: &[u8] = b".wh.";

/// Validate and normalize an absolute image path given on the command line (`--prefix`, `--layer SRC:DEST`):
/// it must start with `/`, must not contain `..` (a path escaping the image root), NUL or a whiteout name
/// (`.wh.*`); `//` and `.` components collapse. Returns `/` or `/a/b` (no trailing slash). `flag` names the flag
/// in the error.
pub fn normalize_dest(s: &str, flag: &'static str) -> Result<String> {
    let bad = |why: &str| Error::invalid_arg(flag, s, why);
    if s.contains('\0') {
        return Err(bad("a path must not contain a NUL byte"));
    }
    if !s.starts_with('/') {
        return Err(bad(
            "expected an absolute path inside the image, starting with / (e.g. /app)",
        ));
    }
    let mut out = String::with_capacity(s.len());
    for comp in s.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                return Err(bad(
                    "`..` is not allowed: the path must stay inside the image root",
                ));
            }
            c if c.as_bytes().starts_with(WHITEOUT_PREFIX) => {
                return Err(bad(
                    "a component starting with .wh. would be read by container runtimes as a whiteout",
                ));
            }
            c => {
                out.push('/');
                out.push_str(c);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// Walk `root`; its contents land under `dest` (an absolute image path like `/` or `/app`), with a directory
/// entry for each component of `dest`.
#[cfg(test)]
pub fn walk(root: &Path, dest: &str) -> Result<Vec<Entry>> {
    walk_excluding(root, dest, &Exclude::default()).map(|w| w.entries)
}

/// A walk's entries, and what it left out.
#[derive(Debug)]
pub struct Walked {
    pub entries: Vec<Entry>,
    /// Paths relative to `root` that were left out (with everything below them), sorted; inside a left-out
    /// directory only that directory is named.
    pub excluded: Vec<PathBuf>,
}

/// [`walk`], leaving out what `exclude` says (Docker's rules: `exclude` module). A directory left out is not read,
/// unless a `!` pattern may include something below it; then it is in the layer only if something below it is.
pub fn walk_excluding(root: &Path, dest: &str, exclude: &Exclude) -> Result<Walked> {
    let dest = normalize_dest(dest, "layer destination")?;
    // `root` itself may be a symlink to a directory: follow that one (a loop shows up as ELOOP here).
    let root_md = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !root_md.is_dir() {
        return Err(Error::input(
            root,
            format!(
                "is not a directory ({}); a layer is built from a directory",
                sys::describe(root_md.mode())
            ),
        ));
    }

    let mut entries: Vec<Entry> = Vec::new();
    // Archive path of `root`: `dest` without its leading `/` ("" for the image root).
    let base: Vec<u8> = dest.as_bytes()[1..].to_vec();
    // The components of `dest` are prefixes of everything below, so they come first in byte-wise order.
    let mut prefix = Vec::new();
    for comp in base.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(comp);
        entries.push(Entry {
            path: PathBuf::from(OsStr::from_bytes(&prefix)),
            source: None,
            kind: EntryKind::Dir,
            mode: DEST_DIR_MODE,
            stamp: (0, 0, 0, 0, 0),
            from_base: None,
        });
    }
    // (dev, ino, index) of each regular file with more than one link.
    let mut links = Vec::new();
    let mut skipped = scan::Skipped::default();
    scan::scan(
        root,
        &base,
        Some(exclude),
        &mut entries,
        &mut links,
        &mut skipped,
    )?;

    // The first name (in order) of a multiply-linked inode is the file, later names link to it. Sorting is
    // cheaper than a map here: most multiply-linked files have no second name in the tree (a package store's).
    links.sort_unstable();
    for group in links.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
        let first = group[0].2;
        for &(_, _, i) in &group[1..] {
            entries[i].kind = EntryKind::Hardlink {
                target: entries[first].path.clone(),
            };
        }
    }
    let mut excluded = skipped.excluded;
    if !skipped.maybe.is_empty() {
        excluded.extend(drop_unneeded(&mut entries, skipped.maybe));
        // Only the topmost: what is inside a directory left out is named by it.
        let all: std::collections::HashSet<Vec<u8>> = excluded.iter().cloned().collect();
        excluded.retain(|p| {
            let mut end = p.len();
            while let Some(slash) = p[..end].iter().rposition(|&b| b == b'/') {
                end = slash;
                if all.contains(&p[..end]) {
                    return false;
                }
            }
            true
        });
    }
    // Relative to `root`: without the archive path of `root` and its `/`.
    let skip = if base.is_empty() { 0 } else { base.len() + 1 };
    let mut excluded: Vec<PathBuf> = excluded
        .into_iter()
        .map(|p| PathBuf::from(OsStr::from_bytes(&p[skip.min(p.len())..])))
        .collect();
    excluded.sort_unstable();
    Ok(Walked { entries, excluded })
}

/// Remove the `maybe` directories (excluded, read for what a `!` pattern may include) that are no parent of a kept
/// entry; returns them. Hardlinks are resolved before: a removed directory holds no file.
fn drop_unneeded(entries: &mut Vec<Entry>, maybe: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    use std::collections::HashSet;
    let maybe: HashSet<Vec<u8>> = maybe.into_iter().collect();
    let mut needed: HashSet<&[u8]> = HashSet::new();
    for e in entries.iter() {
        let p = e.path.as_os_str().as_bytes();
        if maybe.contains(p) {
            continue;
        }
        let mut end = p.len();
        while let Some(slash) = p[..end].iter().rposition(|&b| b == b'/') {
            end = slash;
            if maybe.contains(&p[..end]) && !needed.insert(&p[..end]) {
                break;
            }
        }
    }
    let needed: HashSet<Vec<u8>> = needed.into_iter().map(<[u8]>::to_vec).collect();
    entries.retain(|e| {
        let p = e.path.as_os_str().as_bytes();
        !maybe.contains(p) || needed.contains(p)
    });
    maybe.into_iter().filter(|p| !needed.contains(p)).collect()
}
