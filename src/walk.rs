//! Walk a build-output directory into the sorted, normalized list of entries a layer is made of.
//!
//! The walk never follows a symlink except `root` itself, refuses what cannot be represented faithfully in an
//! image layer (sockets, devices, FIFOs, names runtimes would read as whiteouts), and records what `layer` needs to
//! notice a file changing under it (`stamp`). Owners and times are not recorded: the layer normalizes them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[cfg(test)]
pub(crate) mod fixture;
#[cfg(test)]
mod tests;

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
pub fn walk(root: &Path, dest: &str) -> Result<Vec<Entry>> {
    let dest = normalize_dest(dest, "layer destination")?;
    // `root` itself may be a symlink to a directory: follow that one (a loop shows up as ELOOP here).
    let root_md = fs::metadata(root).map_err(|e| Error::io(root, e))?;
    if !root_md.is_dir() {
        return Err(Error::input(
            root,
            format!(
                "is not a directory ({}); a layer is built from a directory",
                describe(&root_md.file_type())
            ),
        ));
    }

    // Each entry with the (dev, ino) of a regular file with more than one link, to find hardlinks once sorted.
    let mut entries: Vec<(Entry, Option<(u64, u64)>)> = Vec::new();
    // Archive path of `root`: `dest` without its leading `/` ("" for the image root).
    let base: Vec<u8> = dest.as_bytes()[1..].to_vec();
    let mut prefix = Vec::new();
    for comp in base.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if !prefix.is_empty() {
            prefix.push(b'/');
        }
        prefix.extend_from_slice(comp);
        let e = Entry {
            path: PathBuf::from(OsStr::from_bytes(&prefix)),
            source: None,
            kind: EntryKind::Dir,
            mode: DEST_DIR_MODE,
            stamp: (0, 0, 0, 0, 0),
        };
        entries.push((e, None));
    }

    // Explicit stack of (disk dir, archive path) instead of recursion: trees may be deep.
    let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![(root.to_path_buf(), base)];
    while let Some((dir, arch)) = stack.pop() {
        let rd = fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        for de in rd {
            let de = de.map_err(|e| Error::io(&dir, e))?;
            let name = de.file_name();
            let disk = de.path();
            if name.as_bytes().starts_with(WHITEOUT_PREFIX) {
                return Err(Error::input(
                    &disk,
                    "a file named .wh.* would be read by container runtimes as a whiteout (deleting a file of \
                     the lower layers), not as a file; rename or remove it",
                ));
            }
            let mut path = Vec::with_capacity(arch.len() + 1 + name.len());
            if !arch.is_empty() {
                path.extend_from_slice(&arch);
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());

            // lstat: never follow.
            let md = fs::symlink_metadata(&disk).map_err(|e| Error::io(&disk, e))?;
            let ft = md.file_type();
            let mut link = None;
            let kind = if ft.is_dir() {
                stack.push((disk.clone(), path.clone()));
                EntryKind::Dir
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    link = Some((md.dev(), md.ino()));
                }
                EntryKind::File { size: md.len() }
            } else if ft.is_symlink() {
                let target = fs::read_link(&disk).map_err(|e| Error::io(&disk, e))?;
                EntryKind::Symlink { target }
            } else {
                return Err(Error::input(
                    &disk,
                    format!(
                        "is a {}; kiln only puts regular files, directories and symlinks in a layer",
                        describe(&ft)
                    ),
                ));
            };
            let e = Entry {
                path: PathBuf::from(OsStr::from_bytes(&path)),
                source: Some(disk),
                kind,
                mode: md.mode() & 0o7777,
                stamp: (
                    md.mtime(),
                    md.mtime_nsec(),
                    md.ctime(),
                    md.ctime_nsec(),
                    md.ino(),
                ),
            };
            entries.push((e, link));
        }
    }

    // Byte-wise order of the full path: a parent is a prefix of its children, so it sorts first.
    entries.sort_unstable_by(|(a, _), (b, _)| {
        a.path
            .as_os_str()
            .as_bytes()
            .cmp(b.path.as_os_str().as_bytes())
    });
    // The first name of a multiply-linked inode is the file, later names link to it.
    let mut first_name: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let sorted = entries
        .into_iter()
        .map(|(mut e, link)| {
            if let Some(key) = link {
                match first_name.get(&key) {
                    Some(first) => {
                        e.kind = EntryKind::Hardlink {
                            target: first.clone(),
                        }
                    }
                    None => {
                        first_name.insert(key, e.path.clone());
                    }
                }
            }
            e
        })
        .collect();
    Ok(sorted)
}

/// What a file type is, for error messages.
fn describe(ft: &fs::FileType) -> &'static str {
    if ft.is_dir() {
        "directory"
    } else if ft.is_file() {
        "regular file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_socket() {
        "unix socket"
    } else if ft.is_fifo() {
        "FIFO (named pipe)"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else {
        "special file"
    }
}
