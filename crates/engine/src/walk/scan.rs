//! The traversal. Directories are jobs on a shared stack, read by a few threads at once: a warm build of a large
//! tree is mostly this walk, which is system calls that run in parallel on other cores. The order in which
//! threads read directories does not matter: each directory's listing is sorted by name where it was read, and
//! `order` puts the listings together; of several errors the one at the smallest archive path is reported. So
//! the result depends neither on thread timing nor on `readdir` order.

use std::ffi::{CStr, CString, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use super::exclude::{Exclude, Verdict};
use super::order::{self, Found, Listing};
use super::sys::{self, Kind};
use super::{Entry, EntryKind, WHITEOUT_PREFIX};
use crate::error::{Error, Result};

/// Directories below this depth are opened relative to their parent, which stays open until its subdirectories
/// are; deeper ones by full path, so the descriptors held open stay bounded (RLIMIT_NOFILE) whatever the depth.
const MAX_FD_DEPTH: u32 = 64;
/// More threads than this gain nothing on a directory walk.
const MAX_THREADS: usize = 4;
/// Bytes of directory entries read per `getdents64`.
const DIRENT_BUF: usize = 64 * 1024;

/// A directory to read.
struct Job {
    /// Its parent, open (`None`: open by full path, for the root and past `MAX_FD_DEPTH`).
    parent: Option<Arc<OwnedFd>>,
    /// Its archive path.
    arch: Vec<u8>,
    /// 0 for the root.
    depth: u32,
    /// Where its listing goes (0 for the root).
    id: u32,
    /// The exclude patterns it matched (empty without patterns).
    bits: Arc<[bool]>,
}

struct State {
    jobs: Vec<Job>,
    /// Threads reading a directory (which may add jobs).
    busy: usize,
    /// Threads waiting for a job.
    waiting: usize,
    /// A thread panicked: the others stop instead of waiting for its jobs.
    abort: bool,
}

/// What one thread found.
#[derive(Default)]
struct Gathered {
    /// Listings by directory id.
    listings: Vec<(u32, Listing)>,
    /// The error at the smallest archive path, with that path.
    err: Option<(Vec<u8>, Error)>,
    /// What the walk left out.
    skipped: Skipped,
}

/// What a walk left out (archive paths, in no order).
#[derive(Default)]
pub(super) struct Skipped {
    /// Entries excluded outright.
    pub excluded: Vec<Vec<u8>>,
    /// Excluded directories that were read because a `!` pattern may include something below them: kept only
    /// as the parent of something kept.
    pub maybe: Vec<Vec<u8>>,
}

impl Gathered {
    fn fail(&mut self, arch: &[u8], e: Error) {
        if self.err.as_ref().is_none_or(|(p, _)| arch < p.as_slice()) {
            self.err = Some((arch.to_vec(), e));
        }
    }
}

/// Buffers a thread reuses from one directory to the next.
struct Scratch {
    /// For `getdents64`.
    dirents: Vec<u8>,
    /// The entries of the directory being read (a listing gets an exact copy: no growing per directory).
    entries: Vec<Found>,
    /// The exclude patterns the entry being looked at matched.
    bits: Vec<bool>,
    /// The patterns each subdirectory of the directory being read matched.
    subdirs: std::collections::HashMap<Vec<u8>, Arc<[bool]>>,
}

struct Walker<'a> {
    root: &'a Path,
    /// `root` with a trailing `/` (unless it has one): the disk path of an entry is this and its archive path
    /// after `skip` bytes, as `Path::join` would make it.
    root_slash: Vec<u8>,
    /// Length of the archive path of `root` plus its `/` (0 at the image root).
    skip: usize,
    state: Mutex<State>,
    wake: Condvar,
    /// The next directory id.
    next_id: AtomicU32,
    /// What to leave out.
    filter: Option<&'a Exclude>,
}

/// Append the entries under `root` (archive path `base`) to `out`, sorted by archive path, and the (dev, ino, index
/// in `out`) of each regular file with more than one link to `links`; leave out what `filter` excludes (an
/// excluded directory is not read, unless a `!` pattern may include something below it), and say what in
/// `skipped`.
pub(super) fn scan(
    root: &Path,
    base: &[u8],
    filter: Option<&Exclude>,
    out: &mut Vec<Entry>,
    links: &mut Vec<(u64, u64, usize)>,
    skipped: &mut Skipped,
) -> Result<()> {
    let mut root_slash = root.as_os_str().as_bytes().to_vec();
    if root_slash.last() != Some(&b'/') {
        root_slash.push(b'/');
    }
    let w = Walker {
        root,
        root_slash,
        skip: if base.is_empty() { 0 } else { base.len() + 1 },
        state: Mutex::new(State {
            jobs: vec![Job {
                parent: None,
                arch: base.to_vec(),
                depth: 0,
                id: 0,
                bits: Arc::from(Vec::new()),
            }],
            busy: 0,
            waiting: 0,
            abort: false,
        }),
        wake: Condvar::new(),
        next_id: AtomicU32::new(1),
        filter: filter.filter(|f| !f.is_empty()),
    };
    // Helpers start only once there is a second directory to read: small trees never need them. A helper that
    // cannot be started (thread limit) only means fewer threads.
    let found: Vec<Gathered> = std::thread::scope(|s| {
        let mut helpers = Vec::new();
        let mut spawn = || {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            for _ in 1..threads.min(MAX_THREADS) {
                let helper = std::thread::Builder::new()
                    .name("kiln-walk".into())
                    .spawn_scoped(s, || w.work(None));
                helpers.extend(helper.ok());
            }
        };
        let mut found = vec![w.work(Some(&mut spawn))];
        for h in helpers {
            found.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        }
        found
    });
    let mut err: Option<(Vec<u8>, Error)> = None;
    let mut listings: Vec<Option<Listing>> = Vec::new();
    listings.resize_with(w.next_id.load(Ordering::Relaxed) as usize, || None);
    for f in found {
        for (id, l) in f.listings {
            listings[id as usize] = Some(l);
        }
        skipped.excluded.extend(f.skipped.excluded);
        skipped.maybe.extend(f.skipped.maybe);
        if let Some((p, e)) = f.err {
            if err.as_ref().is_none_or(|(q, _)| p < *q) {
                err = Some((p, e));
            }
        }
    }
    if let Some((_, e)) = err {
        return Err(e);
    }
    order::concat(listings, out, links);
    Ok(())
}

/// Tells the other threads to stop if this one unwinds (they would wait for its jobs forever).
struct AbortOnPanic<'a>(&'a Walker<'a>);

impl Drop for AbortOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Ok(mut st) = self.0.state.lock() {
                st.abort = true;
            }
            self.0.wake.notify_all();
        }
    }
}

impl Walker<'_> {
    /// Take jobs until there are none left and no thread can add one. `spawn` starts the other threads, the
    /// first time there is a job left for them.
    fn work(&self, mut spawn: Option<&mut dyn FnMut()>) -> Gathered {
        let _guard = AbortOnPanic(self);
        let mut found = Gathered::default();
        let mut scratch = Scratch {
            dirents: Vec::with_capacity(DIRENT_BUF),
            entries: Vec::new(),
            bits: Vec::new(),
            subdirs: Default::default(),
        };
        let mut new_jobs = Vec::new();
        let mut had_job = false;
        loop {
            let (job, more) = {
                let mut st = self.state.lock().expect("walk state");
                // Hand over what the last directory added, and take the next job, under one lock.
                if had_job {
                    st.busy -= 1;
                }
                st.jobs.append(&mut new_jobs);
                if st.waiting > 0 && (!st.jobs.is_empty() || st.busy == 0) {
                    self.wake.notify_all();
                }
                loop {
                    if st.abort {
                        return found;
                    }
                    if let Some(j) = st.jobs.pop() {
                        st.busy += 1;
                        break (j, !st.jobs.is_empty());
                    }
                    if st.busy == 0 {
                        return found;
                    }
                    st.waiting += 1;
                    st = self.wake.wait(st).expect("walk state");
                    st.waiting -= 1;
                }
            };
            had_job = true;
            if more {
                if let Some(spawn) = spawn.take() {
                    spawn();
                }
            }
            self.read_dir(job, &mut scratch, &mut found, &mut new_jobs);
        }
    }

    /// The disk path of the entry at archive path `arch` (`root` itself for the root).
    fn disk(&self, arch: &[u8]) -> PathBuf {
        if arch.len() < self.skip || arch.is_empty() {
            return self.root.to_path_buf();
        }
        let rel = &arch[self.skip..];
        let mut p = Vec::with_capacity(self.root_slash.len() + rel.len());
        p.extend_from_slice(&self.root_slash);
        p.extend_from_slice(rel);
        PathBuf::from(OsString::from_vec(p))
    }

    /// Read the directory of `job`: its listing goes to `found`, its subdirectories to `jobs`.
    fn read_dir(&self, job: Job, scratch: &mut Scratch, found: &mut Gathered, jobs: &mut Vec<Job>) {
        let opened = match &job.parent {
            Some(parent) => {
                let name = job.arch.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
                let name = CString::new(name).expect("names have no NUL");
                sys::open_dir_at(parent.as_fd(), &name)
            }
            // Only the root may be a symlink (to a directory).
            None => sys::open_dir(&self.disk(&job.arch), job.depth == 0),
        };
        let dir = match opened {
            Ok(fd) => Arc::new(fd),
            Err(e) => return found.fail(&job.arch, Error::io(self.disk(&job.arch), e)),
        };
        let entries = &mut scratch.entries;
        let (bits, subdirs) = (&mut scratch.bits, &mut scratch.subdirs);
        subdirs.clear();
        let read = sys::read_names(
            dir.as_fd(),
            || self.disk(&job.arch),
            &mut scratch.dirents,
            |name| {
                let mut path = Vec::with_capacity(job.arch.len() + 1 + name.to_bytes().len());
                if !job.arch.is_empty() {
                    path.extend_from_slice(&job.arch);
                    path.push(b'/');
                }
                path.extend_from_slice(name.to_bytes());
                let mut maybe = false;
                if let Some(filter) = self.filter {
                    match filter.verdict(&path[self.skip.min(path.len())..], &job.bits, bits) {
                        Verdict::Keep => {}
                        Verdict::Maybe => maybe = true,
                        Verdict::Skip => return found.skipped.excluded.push(path),
                    }
                }
                let Some(f) = self.entry(&dir, name, path, found) else {
                    return;
                };
                if f.0.kind == EntryKind::Dir {
                    if !bits.is_empty() || maybe {
                        let arch = f.0.path.as_os_str().as_bytes().to_vec();
                        if maybe {
                            found.skipped.maybe.push(arch.clone());
                        }
                        subdirs.insert(arch, Arc::from(bits.as_slice()));
                    }
                } else if maybe {
                    // Excluded: only a directory may hold something a `!` pattern includes.
                    return found
                        .skipped
                        .excluded
                        .push(f.0.path.into_os_string().into_vec());
                }
                entries.push(f);
            },
        );
        if let Err(e) = read {
            entries.clear();
            return found.fail(&job.arch, Error::io(self.disk(&job.arch), e));
        }
        let child_parent = (job.depth + 1 < MAX_FD_DEPTH).then_some(&dir);
        let subdirs = &mut scratch.subdirs;
        let listing = Listing::new(job.arch, entries, |arch| {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let bits = subdirs
                .remove(&arch)
                .unwrap_or_else(|| Arc::from(Vec::new()));
            jobs.push(Job {
                parent: child_parent.cloned(),
                arch,
                depth: job.depth + 1,
                id,
                bits,
            });
            id
        });
        found.listings.push((job.id, listing));
    }

    /// The entry `name` of `dir` (archive path `path`); `None` if it is an error, recorded in `found`.
    fn entry(
        &self,
        dir: &OwnedFd,
        name: &CStr,
        path: Vec<u8>,
        found: &mut Gathered,
    ) -> Option<Found> {
        if name.to_bytes().starts_with(WHITEOUT_PREFIX) {
            let e = Error::input(
                self.disk(&path),
                "a file named .wh.* would be read by container runtimes as a whiteout (deleting a file of \
                 the lower layers), not as a file; rename or remove it",
            );
            found.fail(&path, e);
            return None;
        }
        // lstat: never follow.
        let st = match sys::lstat_at(dir.as_fd(), name) {
            Ok(st) => st,
            Err(e) => {
                let e = Error::io(self.disk(&path), e);
                found.fail(&path, e);
                return None;
            }
        };
        let mut link = None;
        let kind = match sys::kind(st.mode) {
            Kind::Dir => EntryKind::Dir,
            Kind::File => {
                if st.nlink > 1 {
                    link = Some((st.dev, st.ino));
                }
                EntryKind::File { size: st.size }
            }
            Kind::Symlink => match sys::readlink_at(dir.as_fd(), name, st.size) {
                Ok(t) => EntryKind::Symlink {
                    target: PathBuf::from(OsString::from_vec(t)),
                },
                Err(e) => {
                    let e = Error::io(self.disk(&path), e);
                    found.fail(&path, e);
                    return None;
                }
            },
            Kind::Other(what) => {
                let e = Error::input(
                    self.disk(&path),
                    format!(
                        "is a {what}; kiln only puts regular files, directories and symlinks in a layer"
                    ),
                );
                found.fail(&path, e);
                return None;
            }
        };
        let e = Entry {
            source: Some(self.disk(&path)),
            path: PathBuf::from(OsString::from_vec(path)),
            kind,
            mode: st.mode & 0o7777,
            stamp: (st.mtime.0, st.mtime.1, st.ctime.0, st.ctime.1, st.ino),
            from_base: None,
        };
        Some((e, link))
    }
}
