//! The SBOM's file list: every regular file kiln put in its layers, with its sha256 and sha1 (SPDX 2.3 requires
//! a SHA1 for each file).
//!
//! Hashed only when an SBOM is written (a new image, or one without an SBOM referrer yet), on every core, and
//! remembered in the cache by each file's identity (path, size, mtime, ctime, inode: what the layer cache trusts
//! too), so a rebuild with one file changed hashes that file only. Reading the files a second time (the layer pass
//! already did) costs no disk reads: they are in the page cache; on the `small` bench fixture the hashing is
//! ~1 ms per MB of CPU beside ~7 ms per MB to compress.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

use sha1::Digest as _;
use sha2::Sha256;

use crate::cache::LayerCache;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::sbom::FileRecord;
use crate::walk::{Entry, EntryKind};

/// A file's sha256 and sha1.
pub type Digests = (Digest, [u8; 20]);

/// Digests the layer writer computed while it read the files (`LayerOptions::file_digests`), by file identity:
/// an SBOM of layers built in this run costs no second read.
#[derive(Default)]
pub struct Collected(
    std::sync::Mutex<HashMap<String, Digests>>,
    /// Files of layers taken from the registry by diff_id, and the manifest that lists that layer: an equal
    /// diff_id means the same tar, so that image's own SBOM has their digests.
    std::sync::Mutex<HashMap<String, Digest>>,
);

impl Collected {
    /// Record the digests `files` gives for `entries` (what `layer::LayerInfo::files` holds for them).
    pub fn add(&self, entries: &[Entry], files: &[crate::layer::FileDigests]) {
        let mut m = self.0.lock().expect("collected digests");
        for (i, sha256, sha1) in files {
            if let Some(e) = entries.get(*i) {
                let d = Digest::from_sha256(*sha256);
                m.insert(identity(e), (d, *sha1));
            }
        }
    }

    /// The files of `entries` are those of a layer `manifest` lists (`publish::known_layers`).
    pub fn taken_from(&self, entries: &[Entry], manifest: &Digest) {
        let mut m = self.1.lock().expect("collected digests");
        for e in entries {
            if matches!(e.kind, EntryKind::File { .. }) {
                m.insert(identity(e), manifest.clone());
            }
        }
    }
}

/// An image's own SBOM's file digests by path in the image (`attest::prior`), when it has one.
pub type Prior<'a> = dyn Fn(&Digest) -> Option<HashMap<String, Digests>> + 'a;

/// What the digests of a file are remembered by: its path in the image and what the layer cache trusts to tell
/// a changed file (size, mtime, ctime, inode).
pub fn identity(e: &Entry) -> String {
    let size = match e.kind {
        EntryKind::File { size } => size,
        _ => 0,
    };
    let (m, mn, c, cn, ino) = e.stamp;
    format!(
        "/{}\0{size}\0{m}.{mn}\0{c}.{cn}\0{ino}",
        e.path.to_string_lossy()
    )
}

/// A regular file to list: where it is in the image, where it is read from, and its identity for the cache.
struct Wanted<'a> {
    image_path: String,
    source: &'a Path,
    size: u64,
    identity: String,
}

/// Every regular file (and hard link, with its target's digests) of `sources`, in order, with its digests, and
/// how many of those came from the SBOM of an image a layer was taken from.
/// `cache` remembers digests by file identity between builds (`None`: `--no-cache`).
/// `scope` names the build (image and platform): each keeps its own record.
pub fn file_records(
    sources: &[&[Entry]],
    cache: Option<&LayerCache>,
    scope: &str,
    collected: &Collected,
    prior: &Prior<'_>,
) -> Result<(Vec<FileRecord>, usize)> {
    let record = format!("{RECORD}-{}", &Digest::of(scope.as_bytes()).hex()[..16]);
    let mut wanted = Vec::new();
    let mut links = Vec::new();
    for entries in sources {
        for e in *entries {
            let image_path = format!("/{}", e.path.to_string_lossy());
            match (&e.kind, &e.source) {
                (EntryKind::File { size }, Some(src)) => {
                    wanted.push(Wanted {
                        identity: identity(e),
                        image_path,
                        source: src,
                        size: *size,
                    });
                }
                (EntryKind::Hardlink { target }, _) => {
                    links.push((image_path, format!("/{}", target.to_string_lossy())));
                }
                _ => {}
            }
        }
    }
    let mut remembered = cache.map(|c| load(c, &record)).unwrap_or_default();
    let new: Vec<(String, Digests)> = collected
        .0
        .lock()
        .expect("collected digests")
        .drain()
        .collect();
    let fresh = !new.is_empty();
    remembered.extend(new);
    // Files of layers taken from the registry: from the SBOM of the image that has that layer.
    let from_images = collected.1.lock().expect("collected digests").clone();
    let mut sboms: HashMap<Digest, Option<HashMap<String, Digests>>> = HashMap::new();
    let mut from_sboms = 0;
    for w in &wanted {
        if remembered.contains_key(&w.identity) {
            continue;
        }
        let Some(m) = from_images.get(&w.identity) else {
            continue;
        };
        let sbom = sboms.entry(m.clone()).or_insert_with(|| prior(m));
        if let Some(d) = sbom.as_ref().and_then(|s| s.get(&w.image_path)) {
            remembered.insert(w.identity.clone(), d.clone());
            from_sboms += 1;
        }
    }
    let missing: Vec<usize> = (0..wanted.len())
        .filter(|i| !remembered.contains_key(&wanted[*i].identity))
        .collect();
    let computed = hash_all(&wanted, &missing)?;
    let mut by_identity = remembered;
    for (i, d) in missing.iter().zip(computed) {
        by_identity.insert(wanted[*i].identity.clone(), d);
    }
    let mut out: Vec<FileRecord> = Vec::with_capacity(wanted.len() + links.len());
    for w in &wanted {
        let (sha256, sha1) = by_identity[&w.identity].clone();
        out.push(FileRecord {
            path: w.image_path.clone(),
            size: w.size,
            sha256,
            sha1,
            source: w.source.to_path_buf(),
        });
    }
    for (path, target) in links {
        if let Some(t) = out.iter().find(|f| f.path == target).cloned() {
            out.push(FileRecord { path, ..t });
        }
    }
    if let Some(c) = cache
        && (!missing.is_empty() || fresh)
    {
        let keep: HashMap<&str, &(Digest, [u8; 20])> = wanted
            .iter()
            .map(|w| (w.identity.as_str(), &by_identity[&w.identity]))
            .collect();
        store(c, &record, &keep);
    }
    Ok((out, from_sboms))
}

/// The digests of `wanted[i]` for each i in `which`, in that order, hashed on every core.
fn hash_all(wanted: &[Wanted<'_>], which: &[usize]) -> Result<Vec<(Digest, [u8; 20])>> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(8);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: std::sync::Mutex<Vec<Option<Result<Digests>>>> =
        std::sync::Mutex::new((0..which.len()).map(|_| None).collect());
    std::thread::scope(|s| {
        for _ in 0..workers.min(which.len().max(1)) {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = which.get(k) else { break };
                    let r = hash_file(wanted[i].source, &mut buf);
                    results.lock().expect("file digests")[k] = Some(r);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("file digests")
        .into_iter()
        .map(|r| r.expect("every file was hashed"))
        .collect()
}

fn hash_file(path: &Path, buf: &mut [u8]) -> Result<(Digest, [u8; 20])> {
    let err = |e| Error::io(format!("reading {} for the SBOM", path.display()), e);
    let mut f = std::fs::File::open(path).map_err(err)?;
    let (mut a, mut b) = (Sha256::new(), sha1::Sha1::new());
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(err(e)),
        };
        sha2::Digest::update(&mut a, &buf[..n]);
        b.update(&buf[..n]);
    }
    let sha256 = format!("sha256:{}", hex::encode(sha2::Digest::finalize(a))).parse()?;
    Ok((sha256, b.finalize().into()))
}

/// The cache record: one line per file, `sha256hex sha1hex identity` (the identity holds NULs, never newlines:
/// a path with a newline is simply not remembered).
const RECORD: &str = "sbom-file-digests";

fn load(c: &LayerCache, record: &str) -> HashMap<String, (Digest, [u8; 20])> {
    let Some(raw) = c.get_raw(record) else {
        return HashMap::new();
    };
    let text = String::from_utf8_lossy(&raw);
    text.lines()
        .filter_map(|l| {
            let (a, rest) = l.split_once(' ')?;
            let (b, id) = rest.split_once(' ')?;
            let sha256: Digest = format!("sha256:{a}").parse().ok()?;
            let sha1: [u8; 20] = hex::decode(b).ok()?.try_into().ok()?;
            Some((id.to_string(), (sha256, sha1)))
        })
        .collect()
}

/// Replace the record with this build's files (a record of every file ever seen would only grow).
fn store(c: &LayerCache, record: &str, files: &HashMap<&str, &(Digest, [u8; 20])>) {
    let mut out = String::new();
    for (id, (sha256, sha1)) in files {
        if id.contains('\n') {
            continue;
        }
        out.push_str(sha256.hex());
        out.push(' ');
        out.push_str(&hex::encode(sha1));
        out.push(' ');
        out.push_str(id);
        out.push('\n');
    }
    c.put_raw(record, out.as_bytes());
}
