//! The layer cache: from a layer's input to the blob it produced, so an unchanged layer is neither recompressed
//! nor re-uploaded (the usual CI case: `dist/` changed, `node_modules/` did not).
//!
//! The key hashes everything the blob depends on: the encoder (kiln's version), compression and level, owner,
//! mtime, destination, and for every entry its path, kind, mode, link target, size and (all but directories) its
//! inode stamp (mtime and ctime to the nanosecond, inode number). Not mtimes alone: `ctime` cannot be set by users (`touch`, `cp -p`,
//! `git checkout` all leave a new ctime), so a file rewritten with its old mtime restored still misses. A hit is
//! only used if the blob is still in a layout with its recorded size; the record itself is written after the blob,
//! atomically, so a crash leaves at most a missing record.

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::layer::LayerOptions;
use crate::walk::{Entry, EntryKind};

/// A finished layer as the cache remembers it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CachedLayer {
    pub digest: Digest,
    pub size: u64,
    pub diff_id: Digest,
    pub tar_size: u64,
}

pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// Records live in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        LayerCache { dir }
    }

    /// The key of a layer's input.
    pub fn key(entries: &[Entry], opts: &LayerOptions) -> String {
        let mut h = Sha256::new();
        h.update(format!("kiln {} layer v1\n", env!("CARGO_PKG_VERSION")));
        h.update(format!(
            "{:?} uid={} gid={} mtime={}\n",
            opts.compression, opts.uid, opts.gid, opts.mtime
        ));
        for e in entries {
            h.update(e.path.as_os_str().as_bytes());
            h.update([0]);
            match &e.kind {
                EntryKind::Dir => h.update(b"d"),
                EntryKind::File { size } => h.update(format!("f{size}")),
                EntryKind::Symlink { target } => {
                    h.update(b"l");
                    h.update(target.as_os_str().as_bytes());
                }
                EntryKind::Hardlink { target } => {
                    h.update(b"h");
                    h.update(target.as_os_str().as_bytes());
                }
            }
            // A directory's tar header holds only its path and mode (times and owners are normalized), so its
            // stamp stays out: adding or replacing a file changes the directory's mtime and ctime, and would
            // otherwise invalidate the layer holding the directory as well as the one holding the file.
            let (m, mn, c, cn, ino) = match e.kind {
                EntryKind::Dir => (0, 0, 0, 0, 0),
                _ => e.stamp,
            };
            h.update(format!(" {:o} {m}.{mn} {c}.{cn} {ino}\n", e.mode));
        }
        hex::encode(h.finalize())
    }

    pub fn get(&self, key: &str) -> Option<CachedLayer> {
        let bytes = fs::read(self.dir.join(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Remember a finished layer; failures only cost a future cache miss.
    pub fn put(&self, key: &str, layer: &CachedLayer) {
        let _ = self.try_put(key, layer);
    }

    fn try_put(&self, key: &str, layer: &CachedLayer) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
        let mut f = fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(layer).expect("serializable"))?;
        drop(f);
        fs::rename(&tmp, self.dir.join(key))
    }
}

/// Whether `path` holds a blob of `size` bytes (a cache hit is only trusted if its blob is intact in size).
pub fn blob_ok(path: &Path, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}
