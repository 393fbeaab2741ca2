//! Walk a build-output directory into the sorted, normalized list of entries a layer is made of.
//! (Stub: the interface is fixed, the implementation is being written.)

use std::path::{Path, PathBuf};

use crate::error::Result;

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

/// Walk `root`; its contents land under `dest` (an absolute image path like `/` or `/app`), with a directory
/// entry for each component of `dest`.
pub fn walk(root: &Path, dest: &str) -> Result<Vec<Entry>> {
    let _ = (root, dest);
    unimplemented!("walk")
}
