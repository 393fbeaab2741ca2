//! The layer cache: from a layer's input to the blob it produced, so an unchanged layer is neither recompressed
//! nor re-uploaded (the usual CI case: `dist/` changed, `node_modules/` did not).
//!
//! The key hashes everything the blob depends on: the encoder (kiln's version), compression and level, owner,
//! mtime, destination, and for every entry its path, kind, mode, link target, size and (all but directories) its
//! inode stamp (mtime and ctime to the nanosecond, inode number). Not mtimes alone: `ctime` cannot be set by
//! users (`touch`, `cp -p`, `git checkout` all leave a new ctime), so a file rewritten with its old mtime restored
//! still misses. A hit is only used if the blob is still in a layout with its recorded size; the record itself is
//! written after the blob, atomically, so a crash leaves at most a missing record. Beside these layer records
//! are slot records of gzip block tables (their formats: `records.rs`).

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

// Imports go one way: this file uses `prune` and `records`, `prune` uses `records`, `records` uses neither.
mod prune;
mod records;
pub use prune::CacheLock;
pub use records::{CachedLayer, SlotBlocks};

use crate::error::{Error, Result};
use crate::fsx::{WriteOptions, write_atomic};
use crate::layer::LayerOptions;
use crate::walk::{Entry, EntryKind};

pub struct LayerCache {
    dir: PathBuf,
}

impl LayerCache {
    /// Records live in `dir` (created on first write).
    pub fn new(dir: PathBuf) -> Self {
        LayerCache { dir }
    }

    /// The key of a layer's input. Entries are hashed in a fixed binary encoding, a large buffer at a time (one
    /// `format!` per entry was a sizeable part of a warm build): a path or link target ends with NUL (which no
    /// path contains), a kind is one byte, numbers are fixed-width little-endian, so no two inputs encode alike.
    pub fn key(entries: &[Entry], opts: &LayerOptions) -> String {
        let mut h = Sha256::new();
        h.update(format!("kiln {} layer v2\n", env!("CARGO_PKG_VERSION")));
        h.update(format!(
            "{:?} uid={} gid={} mtime={}\n",
            opts.compression, opts.uid, opts.gid, opts.mtime
        ));
        const CHUNK: usize = 64 * 1024;
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        for e in entries {
            buf.extend_from_slice(e.path.as_os_str().as_bytes());
            buf.push(0);
            match &e.kind {
                // A directory written with a base image's owner and time (`base::BaseTree::adopt`): its own kind
                // byte, then those after the mode, so no other input encodes alike.
                EntryKind::Dir if e.from_base.is_some() => buf.push(b'D'),
                EntryKind::Dir => buf.push(b'd'),
                EntryKind::File { size } => {
                    buf.push(b'f');
                    buf.extend_from_slice(&size.to_le_bytes());
                }
                EntryKind::Symlink { target } => {
                    buf.push(b'l');
                    buf.extend_from_slice(target.as_os_str().as_bytes());
                    buf.push(0);
                }
                EntryKind::Hardlink { target } => {
                    buf.push(b'h');
                    buf.extend_from_slice(target.as_os_str().as_bytes());
                    buf.push(0);
                }
            }
            buf.extend_from_slice(&e.mode.to_le_bytes());
            if let Some(b) = &e.from_base {
                for n in [b.uid, b.gid, b.mtime] {
                    buf.extend_from_slice(&n.to_le_bytes());
                }
            }
            // A directory's tar header holds only its path and mode (times and owners are normalized), so its
            // stamp stays out: adding or replacing a file changes the directory's mtime and ctime, and would
            // otherwise invalidate the layer holding the directory as well as the one holding the file. (The kind
            // byte says whether a stamp follows.)
            if e.kind != EntryKind::Dir {
                let (m, mn, c, cn, ino) = e.stamp;
                for n in [m, mn, c, cn] {
                    buf.extend_from_slice(&n.to_le_bytes());
                }
                buf.extend_from_slice(&ino.to_le_bytes());
            }
            if buf.len() >= CHUNK {
                h.update(&buf);
                buf.clear();
            }
        }
        h.update(&buf);
        hex::encode(h.finalize())
    }

    /// The record of `key`, marked as used now (records unused for long are pruned: `prune.rs`).
    pub fn get(&self, key: &str) -> Option<CachedLayer> {
        let path = self.dir.join(key);
        let bytes = fs::read(&path).ok()?;
        let layer = serde_json::from_slice(&bytes).ok()?;
        prune::touch(&path);
        Some(layer)
    }

    /// Remember a finished layer; failures only cost a future cache miss.
    pub fn put(&self, key: &str, layer: &CachedLayer) {
        let _ = self.try_put(key, layer);
    }

    fn try_put(&self, key: &str, layer: &CachedLayer) -> Result<()> {
        self.write(key, &serde_json::to_vec(layer).expect("serializable"))
    }

    /// Another kind of record by name (a base layer's index: `base/read.rs`), marked as used now.
    pub fn get_raw(&self, name: &str) -> Option<Vec<u8>> {
        let path = self.dir.join(name);
        let bytes = fs::read(&path).ok()?;
        prune::touch(&path);
        Some(bytes)
    }

    /// Keep another kind of record; failures only cost reading its source again.
    pub fn put_raw(&self, name: &str, bytes: &[u8]) {
        let _ = self.write(name, bytes);
    }

    /// The slot of a layer: its compression and the path of its first entry (`None`: an empty layer).
    pub fn slot(entries: &[Entry], opts: &LayerOptions) -> Option<String> {
        let first = entries.first()?;
        let mut h = Sha256::new();
        h.update(format!("kiln slot v1\n{:?}\n", opts.compression));
        h.update(first.path.as_os_str().as_bytes());
        Some(format!("slot-{}", hex::encode(h.finalize())))
    }

    /// The last block table recorded for `slot`.
    pub fn blocks(&self, slot: &str) -> Option<SlotBlocks> {
        records::decode_blocks(&fs::read(self.dir.join(slot)).ok()?)
    }

    /// Mark `slot`'s record as used now: a layer taken from the cache keeps its slot's blocks from being pruned
    /// (`prune.rs`), for when the layer does change.
    pub fn touch_slot(&self, slot: &str) {
        prune::touch(&self.dir.join(slot));
    }

    /// Record `blocks` for `slot`; failures only cost compressing more next time.
    pub fn put_blocks(&self, slot: &str, blocks: &SlotBlocks) {
        let _ = self.write(slot, &records::encode_blocks(blocks));
    }

    /// A record replaced atomically, so a reader never sees half of one. Not synced: a record lost in a crash
    /// only costs a cache miss, and a build writes many.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        write_atomic(&self.dir.join(name), bytes, WriteOptions::new())
    }
}

/// Whether `path` holds a blob of `size` bytes (a cache hit is only trusted if its blob is intact in size).
pub fn blob_ok(path: &Path, size: u64) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.len() == size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::layer::{BlockTable, Compression};

    #[test]
    fn records_are_written_read_and_touched() {
        let dir = tempfile::tempdir().unwrap();
        let cache = LayerCache::new(dir.path().join("layers"));
        let b = SlotBlocks {
            digest: Digest::of(b"blob"),
            size: 1234,
            table: BlockTable {
                blocks: vec![([7; 16], 10, 300, 3), ([9; 16], 310, 4, 4)],
                reused: 0,
            },
        };
        assert_eq!(cache.blocks("slot-x"), None);
        cache.put_blocks("slot-x", &b);
        assert_eq!(cache.blocks("slot-x"), Some(b.clone()));

        let l = CachedLayer {
            digest: Digest::of(b"layer"),
            size: 1,
            diff_id: Digest::of(b"tar"),
            tar_size: 2,
        };
        assert_eq!(cache.get("k"), None);
        cache.put("k", &l);
        // A hit (and touch_slot) refreshes the record's mtime, which is what keeps it from being pruned.
        let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        for name in ["k", "slot-x"] {
            let f = fs::File::open(dir.path().join("layers").join(name)).unwrap();
            f.set_modified(old).unwrap();
        }
        assert_eq!(cache.get("k"), Some(l));
        cache.touch_slot("slot-x");
        for name in ["k", "slot-x"] {
            let m = fs::metadata(dir.path().join("layers").join(name)).unwrap();
            assert!(m.modified().unwrap() > old, "{name}");
        }
        let mut names: Vec<_> = fs::read_dir(dir.path().join("layers"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["k", "slot-x"], "no temp file left");
    }

    /// Every input of the key changes it: a stale hit would publish a layer that is not the input.
    #[test]
    fn key_changes_with_every_input() {
        let e = |path: &str, kind| Entry {
            path: path.into(),
            source: None,
            kind,
            mode: 0o644,
            stamp: (1, 2, 3, 4, 5),
            from_base: None,
        };
        let base = vec![
            e("a", EntryKind::Dir),
            e("a/f", EntryKind::File { size: 3 }),
            e(
                "a/h",
                EntryKind::Hardlink {
                    target: "a/f".into(),
                },
            ),
            e("a/l", EntryKind::Symlink { target: "f".into() }),
        ];
        let opts = LayerOptions {
            mtime: 0,
            uid: 0,
            gid: 0,
            compression: Compression::Gzip { level: 2 },
            file_digests: false,
        };
        let mut keys = vec![LayerCache::key(&base, &opts)];
        assert_eq!(keys[0], LayerCache::key(&base.clone(), &opts));
        // A directory's stamp is not in its tar header, so not in the key either.
        let mut touched = base.clone();
        touched[0].stamp = (9, 9, 9, 9, 9);
        assert_eq!(keys[0], LayerCache::key(&touched, &opts));
        let edits: &[fn(&mut Vec<Entry>)] = &[
            |v| v[1].path = "a/g".into(),
            |v| v[1].kind = EntryKind::File { size: 4 },
            |v| v[1].kind = EntryKind::Dir,
            |v| {
                v[2].kind = EntryKind::Hardlink {
                    target: "a/g".into(),
                }
            },
            |v| {
                v[2].kind = EntryKind::Symlink {
                    target: "a/f".into(),
                }
            },
            |v| v[3].kind = EntryKind::Symlink { target: "g".into() },
            |v| v[1].mode = 0o755,
            |v| v[1].stamp.0 += 1,
            |v| v[1].stamp.1 += 1,
            |v| v[1].stamp.2 += 1,
            |v| v[1].stamp.3 += 1,
            |v| v[1].stamp.4 += 1,
            |v| v[0].mode = 0o700,
            |v| {
                v.pop();
            },
            // Where one field ends and the next begins is part of the key.
            |v| {
                v[3].path = "a/lf".into();
                v[3].kind = EntryKind::Symlink { target: "".into() };
            },
        ];
        for edit in edits {
            let mut v = base.clone();
            edit(&mut v);
            keys.push(LayerCache::key(&v, &opts));
        }
        for o in [
            LayerOptions {
                mtime: 1,
                ..opts.clone()
            },
            LayerOptions {
                uid: 1,
                ..opts.clone()
            },
            LayerOptions {
                gid: 1,
                ..opts.clone()
            },
            LayerOptions {
                compression: Compression::Gzip { level: 3 },
                ..opts.clone()
            },
            LayerOptions {
                compression: Compression::Zstd { level: 2 },
                ..opts.clone()
            },
        ] {
            keys.push(LayerCache::key(&base, &o));
        }
        let n = keys.len();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), n, "every change gives another key");
    }
}
