//! Keeping the cache directory bounded. Every build adds records and blobs (each changed layer's blob, every
//! image's config and manifest, fetched base blobs), so a CI runner that keeps `~/.cache/kiln` between jobs would
//! otherwise grow it forever.
//!
//! After a successful build, at most once a day ([`PRUNE_EVERY`]): layer and slot records not used for
//! `max_age_days` are removed (a cache hit refreshes the mtime of its layer record and of its slot's, [`touch`]),
//! then every blob of the cache layout that no remaining record names and that is itself older than that.
//! Nothing is ever trusted to be
//! present: a hit is used only if its blob is still there with its size, a slot's blocks only if its blob is, a
//! config or manifest is written again when missing, and a base blob fetched again — so pruning costs at most
//! some compression or a download later.
//!
//! Builds sharing the directory hold a shared lock on `.lock` for their whole run; the pruner takes it
//! exclusively and without waiting, so it never runs beside another build (it is skipped, and tried by the next
//! build instead).

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};

use rustix::fs::{FlockOperation, flock};

use super::records;

/// How often the cache is scanned (a stamp file's mtime says when it last was).
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);
const LOCK: &str = ".lock";
const STAMP: &str = ".pruned";

/// A build's hold on the cache directory: pruning waits for (skips while) any is held.
pub struct CacheLock {
    _held: File,
}

impl CacheLock {
    /// A shared lock on `cache_dir`, waiting only while a prune runs; `None` when the directory cannot be
    /// created or locked (a read-only cache, say): the build goes on, and nothing is pruned.
    pub fn shared(cache_dir: &Path) -> Option<Self> {
        let f = open_lock(cache_dir)?;
        flock(&f, FlockOperation::LockShared).ok()?;
        Some(CacheLock { _held: f })
    }

    /// Give up this build's hold, then prune `cache_dir` if it is due and no other build holds it.
    /// Returns how many files were removed.
    pub fn release_and_prune(self, cache_dir: &Path, max_age_days: u32) -> usize {
        drop(self);
        prune(cache_dir, max_age_days, SystemTime::now())
    }
}

fn open_lock(cache_dir: &Path) -> Option<File> {
    fs::create_dir_all(cache_dir).ok()?;
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache_dir.join(LOCK))
        .ok()
}

/// Mark a record as used now, so it outlives the age limit while it keeps being hit.
pub(super) fn touch(path: &Path) {
    if let Ok(f) = File::open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

/// Prune `cache_dir` (records in `layers/`, blobs in `layout/blobs/sha256/`) as of `now`, unless `max_age_days`
/// is 0, the last prune was less than a day ago, or another build holds the directory. How many files went.
pub fn prune(cache_dir: &Path, max_age_days: u32, now: SystemTime) -> usize {
    if max_age_days == 0 {
        return 0;
    }
    let stamp = cache_dir.join(STAMP);
    let due = fs::metadata(&stamp)
        .and_then(|m| m.modified())
        .map_or(true, |t| {
            now.duration_since(t).unwrap_or_default() >= PRUNE_EVERY
        });
    if !due {
        return 0;
    }
    let Some(lock) = open_lock(cache_dir) else {
        return 0;
    };
    if flock(&lock, FlockOperation::NonBlockingLockExclusive).is_err() {
        return 0;
    }
    // Stamped first: a failure below is not retried by every build of the day.
    if File::create(&stamp)
        .and_then(|f| f.set_modified(now))
        .is_err()
    {
        return 0;
    }
    let cutoff = now - Duration::from_secs(u64::from(max_age_days) * 24 * 3600);
    let old = |m: &fs::Metadata| m.modified().is_ok_and(|t| t < cutoff);
    let mut removed = 0;
    let mut live = HashSet::new();
    if let Ok(dir) = fs::read_dir(cache_dir.join("layers")) {
        for e in dir.flatten() {
            let Ok(md) = e.metadata() else { continue };
            if !md.is_file() {
                continue;
            }
            // Old records go, and so do leftovers of interrupted writes (`.NAME.kiln-XXXXXX.tmp`).
            if old(&md) {
                removed += usize::from(fs::remove_file(e.path()).is_ok());
                continue;
            }
            let Ok(bytes) = fs::read(e.path()) else {
                continue;
            };
            if let Some(d) = records::blob_of(&bytes) {
                live.insert(d.hex().to_string());
            }
        }
    }
    if let Ok(dir) = fs::read_dir(cache_dir.join("layout/blobs/sha256")) {
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if live.contains(&name) {
                continue;
            }
            if e.metadata().is_ok_and(|m| m.is_file() && old(&m)) {
                removed += usize::from(fs::remove_file(e.path()).is_ok());
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::records::{CachedLayer, SlotBlocks, encode_blocks};
    use crate::digest::Digest;
    use crate::layer::BlockTable;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    fn set_age(path: &Path, now: SystemTime, days: u64) {
        File::open(path)
            .unwrap()
            .set_modified(now - DAY * days as u32)
            .unwrap();
    }

    fn blob(dir: &Path, name: &[u8], now: SystemTime, days: u64) -> Digest {
        let d = Digest::of(name);
        let p = dir.join("layout/blobs/sha256").join(d.hex());
        fs::write(&p, name).unwrap();
        set_age(&p, now, days);
        d
    }

    /// A layer record naming `digest`, last used `days` ago.
    fn layer(dir: &Path, key: &str, digest: &Digest, now: SystemTime, days: u64) {
        let l = CachedLayer {
            digest: digest.clone(),
            size: 1,
            diff_id: digest.clone(),
            tar_size: 1,
        };
        let p = dir.join("layers").join(key);
        fs::write(&p, serde_json::to_vec(&l).unwrap()).unwrap();
        set_age(&p, now, days);
    }

    #[test]
    fn old_records_and_unreferenced_old_blobs_go() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        fs::create_dir_all(dir.join("layout/blobs/sha256")).unwrap();
        fs::create_dir_all(dir.join("layers")).unwrap();
        let now = SystemTime::now();
        // Hit yesterday, built a month ago: the record was touched, its blob stays however old.
        let kept = blob(dir, b"kept", now, 30);
        layer(dir, "fresh", &kept, now, 1);
        // A record unused for a month goes, and its blob with it.
        let stale = blob(dir, b"stale", now, 30);
        layer(dir, "stale", &stale, now, 30);
        // A slot's last build keeps its blob for block reuse.
        let slot = blob(dir, b"slot", now, 30);
        let blocks = SlotBlocks {
            digest: slot.clone(),
            size: 4,
            table: BlockTable::default(),
        };
        fs::write(dir.join("layers/slot-x"), encode_blocks(&blocks)).unwrap();
        // Configs, manifests, base blobs: no record names them; kept while young.
        let young = blob(dir, b"young", now, 2);
        let orphan = blob(dir, b"orphan", now, 20);
        let exists = |d: &Digest| dir.join("layout/blobs/sha256").join(d.hex()).exists();
        let record = |k: &str| dir.join("layers").join(k).exists();

        assert_eq!(prune(dir, 14, now), 3);
        assert!(exists(&kept) && exists(&slot) && exists(&young));
        assert!(!exists(&stale) && !exists(&orphan));
        assert!(record("fresh") && record("slot-x") && !record("stale"));
        // Once a day: the next build finds the stamp.
        set_age(&dir.join("layers/fresh"), now, 30);
        assert_eq!(prune(dir, 14, now + DAY / 2), 0);
        assert!(record("fresh"));
        // A record marked used is young again.
        touch(&dir.join("layers/fresh"));
        assert!(
            fs::metadata(dir.join("layers/fresh"))
                .unwrap()
                .modified()
                .unwrap()
                > now
        );
        // 0 days: never.
        assert_eq!(prune(dir, 0, now + DAY * 2), 0);
    }

    #[test]
    fn never_beside_another_build() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path();
        fs::create_dir_all(dir.join("layout/blobs/sha256")).unwrap();
        let now = SystemTime::now();
        let old = blob(dir, b"old", now, 30);
        let other = CacheLock::shared(dir).expect("lock");
        assert_eq!(prune(dir, 14, now), 0);
        drop(other);
        let mine = CacheLock::shared(dir).expect("lock");
        assert_eq!(mine.release_and_prune(dir, 14), 1);
        assert!(!dir.join("layout/blobs/sha256").join(old.hex()).exists());
    }
}
