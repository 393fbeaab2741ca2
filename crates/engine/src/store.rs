//! The local OCI image layout (`oci:PATH`), written with `ocidir`.
//!
//! Blobs are written through [`BlobWriter`] (a temp file in the layout, anonymous where Linux allows, named by its
//! digest only once every byte is written), so a failed build leaves no half blob. `index.json` is only rewritten
//! after every blob is in place, atomically (temp file + rename) and under an exclusive `flock` on the layout
//! directory, so two kiln processes publishing into one layout never lose each other's tags.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use cap_std_ext::cap_tempfile::TempFile;
use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use ocidir::OciDir;
use ocidir::cap_std::{ambient_authority, fs::Dir};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::fsx::{WriteOptions, write_atomic};
use crate::image::{ANNOTATION_REF_NAME, Json, Root, canonical_json, is_index};
use crate::tag::Tag;
use crate::target::LayoutRef;
use oci_spec::image::{ImageConfiguration, ImageManifest};

pub struct Layout {
    path: PathBuf,
    oci: OciDir,
}

/// One entry of `index.json`: a manifest (or index) and the tag it carries, if any.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub tag: Option<String>,
    pub descriptor: Descriptor,
}

impl IndexEntry {
    /// An untagged entry with an `artifactType`: an artifact (SBOM, provenance…) attached to an image as a
    /// referrer, which `index.json` holds only so the layout keeps it. It is no image of its own: never "the"
    /// image of a layout, and no reason to keep a layout.
    pub fn is_referrer(&self) -> bool {
        self.tag.is_none() && self.descriptor.artifact_type().is_some()
    }
}

impl Layout {
    /// Open an existing layout; a missing or invalid one is an error naming the path.
    pub fn open(path: &Path) -> Result<Self> {
        let marker = path.join("oci-layout");
        if let Err(e) = fs::metadata(&marker) {
            if e.kind() == io::ErrorKind::PermissionDenied {
                return Err(Error::io(marker, e));
            }
        }
        if !marker.is_file() {
            return Err(Error::layout(
                path,
                "not an OCI image layout (no oci-layout file); build into it first with `kiln build DIR --to oci:PATH`",
            ));
        }
        let dir =
            Dir::open_ambient_dir(path, ambient_authority()).map_err(|e| Error::io(path, e))?;
        // ocidir opens blobs/sha256 here, and nothing else.
        let oci = OciDir::open(dir).map_err(|e| oci_error(&path.join("blobs/sha256"), e))?;
        Ok(Layout {
            path: path.to_path_buf(),
            oci,
        })
    }

    /// Open a layout, creating it (and its parent directories) if absent. Returns whether it was created, so a
    /// failed first build can remove it again.
    ///
    /// Creation is serialized among kiln processes by a lock on the parent directory, so concurrent first builds
    /// into one new layout all succeed (one creates it, the others open it) instead of seeing a half-made layout.
    pub fn open_or_create(path: &Path) -> Result<(Self, bool)> {
        if path.join("oci-layout").is_file() {
            return Ok((Self::open(path)?, false));
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let _creating = LayoutLock::take(parent)?;
        if path.join("oci-layout").is_file() {
            return Ok((Self::open(path)?, false));
        }
        let existed = path.exists();
        if existed
            && fs::read_dir(path)
                .map_err(|e| Error::io(path, e))?
                .next()
                .is_some()
        {
            return Err(Error::layout(
                path,
                "exists and is not an empty directory or an OCI layout; choose another --to oci:PATH",
            ));
        }
        fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let dir =
            Dir::open_ambient_dir(path, ambient_authority()).map_err(|e| Error::io(path, e))?;
        let oci = OciDir::ensure(dir).map_err(|e| oci_error(path, e))?;
        Ok((
            Layout {
                path: path.to_path_buf(),
                oci,
            },
            !existed,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where a blob lives on disk (for streaming uploads and copies).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.path.join("blobs/sha256").join(digest.hex())
    }

    /// The hex names of every sha256 blob stored now.
    pub fn blob_names(&self) -> Result<std::collections::HashSet<String>> {
        let dir = self.path.join("blobs/sha256");
        fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .map(|e| {
                e.map(|e| e.file_name().to_string_lossy().into_owned())
                    .map_err(|e| Error::io(&dir, e))
            })
            .collect()
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A writer for a new blob: a temp file in the layout; `finish_blob` names it by its digest.
    pub fn blob_writer(&self) -> Result<BlobWriter<'_>> {
        let tmp = TempFile::new(self.oci.dir()).map_err(|e| Error::io(&self.path, e))?;
        Ok(BlobWriter {
            out: HashingWriter::new(BufWriter::with_capacity(BLOB_BUFFER, tmp)),
            path: &self.path,
        })
    }

    /// Complete a blob written through `blob_writer`: returns its digest and size. Its last buffered bytes are
    /// written first and a failure (a full disk) is an error naming the layout; the temp file then goes away.
    pub fn finish_blob(&self, w: BlobWriter<'_>) -> Result<(Digest, u64)> {
        let (digest, size, buffered) = w.out.finish();
        let tmp = buffered
            .into_inner()
            .map_err(|e| Error::io(&self.path, e.into_error()))?;
        let blobs = self.path.join("blobs/sha256");
        tmp.replace(format!("blobs/sha256/{}", digest.hex()))
            .map_err(|e| Error::io(blobs, e))?;
        Ok((digest, size))
    }

    /// Store a small blob (config, manifest) whose digest is already known; a present blob is reused.
    pub fn put_bytes(&self, bytes: &[u8], digest: &Digest) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let mut w = self.blob_writer()?;
        // The error names the layout already (see `BlobWriter`).
        w.write_all(bytes)
            .map_err(|e| Error::io("writing a blob", e))?;
        let (got, _) = self.finish_blob(w)?;
        debug_assert_eq!(&got, digest);
        Ok(())
    }

    /// Read a blob whole (JSON documents only), verifying it hashes to `digest`.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let p = self.blob_path(digest);
        let bytes = fs::read(&p).map_err(|e| Error::io(&p, e))?;
        if Digest::of(&bytes) != *digest {
            return Err(Error::layout(
                &self.path,
                format!("blob {digest} is corrupt (its content has another digest)"),
            ));
        }
        Ok(bytes)
    }

    /// Copy a blob from another layout (base images), verifying it on the way; hardlinked when possible.
    pub fn import_blob(&self, from: &Layout, digest: &Digest) -> Result<()> {
        if self.has_blob(digest) {
            return Ok(());
        }
        let src = from.blob_path(digest);
        if fs::hard_link(&src, self.blob_path(digest)).is_ok() {
            return Ok(());
        }
        let mut f = File::open(&src).map_err(|e| Error::io(&src, e))?;
        let mut w = HashingWriter::new(self.blob_writer()?);
        io::copy(&mut f, &mut w).map_err(|e| Error::io(&src, e))?;
        let (got, _, w) = w.finish();
        if got != *digest {
            return Err(Error::layout(
                from.path(),
                format!("blob {digest} is corrupt (its content has digest {got})"),
            ));
        }
        self.finish_blob(w)?;
        Ok(())
    }

    /// All entries of index.json (an absent index is empty).
    pub fn entries(&self) -> Result<Vec<IndexEntry>> {
        Ok(self
            .read_index()?
            .manifests()
            .iter()
            .map(|d| IndexEntry {
                tag: d
                    .annotations()
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_REF_NAME).cloned()),
                descriptor: d.clone(),
            })
            .collect())
    }

    /// The manifest a tag points at.
    pub fn resolve(&self, tag: &str) -> Result<Option<Descriptor>> {
        Ok(self
            .entries()?
            .into_iter()
            .find(|e| e.tag.as_deref() == Some(tag))
            .map(|e| e.descriptor))
    }

    /// Tags present, in index order.
    pub fn tags(&self) -> Result<Vec<String>> {
        Ok(self.entries()?.into_iter().filter_map(|e| e.tag).collect())
    }

    fn read_index(&self) -> Result<ImageIndex> {
        let p = self.path.join("index.json");
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| Error::layout(&self.path, format!("index.json is not valid: {e}"))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ImageIndexBuilder::default()
                .schema_version(2u32)
                .media_type(MediaType::ImageIndex)
                .manifests(vec![])
                .build()
                .expect("empty index")),
            Err(e) => Err(Error::io(p, e)),
        }
    }

    /// Take the layout's lock for a read-check-write of index.json. Held until the guard drops.
    pub fn lock(&self) -> Result<LayoutLock> {
        LayoutLock::take(&self.path)
    }

    /// Point `tag` (or, with `None`, an untagged entry) at a manifest already stored. Caller holds the lock and has
    /// decided the tag may be (re)written; any entry with the same tag is replaced.
    pub fn set_tag(&self, _lock: &LayoutLock, tag: Option<&Tag>, root: &Root) -> Result<()> {
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        let mut desc = root.descriptor()?;
        match tag {
            Some(t) => {
                manifests.retain(|d| {
                    d.annotations()
                        .as_ref()
                        .and_then(|a| a.get(ANNOTATION_REF_NAME))
                        != Some(&t.to_string())
                });
                let mut ann = std::collections::HashMap::new();
                ann.insert(ANNOTATION_REF_NAME.to_string(), t.to_string());
                desc.set_annotations(Some(ann));
            }
            None => {
                if manifests.iter().any(|d| d.digest() == desc.digest()) {
                    return Ok(());
                }
            }
        }
        manifests.push(desc);
        index.set_manifests(manifests);
        index.set_media_type(Some(MediaType::ImageIndex));
        self.write_index(&index)
    }

    /// Add an untagged entry for a manifest already stored (a referrer); an entry with its digest already there
    /// is kept as it is. Caller holds the lock. Returns whether it was added.
    pub fn add_entry(&self, _lock: &LayoutLock, desc: Descriptor) -> Result<bool> {
        let mut index = self.read_index()?;
        let mut manifests = index.manifests().clone();
        if manifests.iter().any(|d| d.digest() == desc.digest()) {
            return Ok(false);
        }
        manifests.push(desc);
        index.set_manifests(manifests);
        index.set_media_type(Some(MediaType::ImageIndex));
        self.write_index(&index)?;
        Ok(true)
    }

    fn write_index(&self, index: &ImageIndex) -> Result<()> {
        // Synced: index.json is what makes the blobs an image; other tools read the layout after kiln exits.
        let opts = WriteOptions::new().sync(true);
        write_atomic(&self.path.join("index.json"), &canonical_json(index)?, opts)
    }

    /// Remove this layout, which this process created, after its build failed, unless another process has
    /// published into it meanwhile (concurrent first builds into one new layout). Best effort.
    pub fn remove_if_unused(&self) {
        let Ok(_lock) = self.lock() else { return };
        if self
            .entries()
            .is_ok_and(|e| e.iter().all(IndexEntry::is_referrer))
        {
            let _ = fs::remove_dir_all(&self.path);
        }
    }

    /// Open a blob for streaming reads.
    pub fn open_blob(&self, digest: &Digest) -> Result<impl Read> {
        let p = self.blob_path(digest);
        File::open(&p).map_err(|e| Error::io(&p, e))
    }
}

/// Bytes a [`BlobWriter`] buffers (as ocidir's did).
const BLOB_BUFFER: usize = 128 * 1024;

/// A blob being written into a layout, hashed on the way. Not ocidir's `BlobWriter`: that one buffers, and
/// panics when the last flush fails (a full disk); this one is flushed, checked, by [`Layout::finish_blob`]. A
/// write error names the layout directory; dropped unfinished, the temp file is removed.
pub struct BlobWriter<'a> {
    out: HashingWriter<BufWriter<TempFile<'a>>>,
    path: &'a Path,
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out
            .write(buf)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.path.display())))
    }

    /// Does nothing: everything is written, and checked, by [`Layout::finish_blob`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An error of ocidir's as ours: an OS error keeps its cause (ocidir's own text is only "i/o error").
fn oci_error(path: &Path, e: ocidir::Error) -> Error {
    match e {
        ocidir::Error::Io(e) => Error::io(path, e),
        e => Error::layout(path, e),
    }
}

/// Exclusive lock on a layout; released on drop (closing the fd releases the flock).
pub struct LayoutLock {
    _file: File,
}

/// Find one image in a layout by tag or digest (or the only one), and read its manifest and config.
pub fn read_image(
    layout: &Layout,
    r: &LayoutRef,
) -> Result<(Json<ImageManifest>, Json<ImageConfiguration>)> {
    let md = resolve_ref(layout, r)?;
    let mbytes = layout.read_blob(&md)?;
    check_manifest_type(&mbytes, r)?;
    read_manifest_bytes(layout, mbytes, &md, r)
}

/// A manifest's bytes (already read, hashing to `md`) parsed, and its config read.
pub fn read_manifest_bytes(
    layout: &Layout,
    mbytes: Vec<u8>,
    md: &Digest,
    r: &LayoutRef,
) -> Result<(Json<ImageManifest>, Json<ImageConfiguration>)> {
    let manifest: Json<ImageManifest> = Json::decode(mbytes, &format!("manifest {md} in {r}"))?;
    let cd = Digest::from_oci(manifest.value.config().digest())?;
    let config: Json<ImageConfiguration> =
        Json::decode(layout.read_blob(&cd)?, &format!("config {cd} in {r}"))?;
    Ok((manifest, config))
}

/// The digest `r` names in the layout: its digest, its tag's entry, or the layout's only entry.
pub fn resolve_ref(layout: &Layout, r: &LayoutRef) -> Result<Digest> {
    let mut entries = layout.entries()?;
    // Referrers (untagged artifacts) are not images a reference can name by tag or by "the only one".
    entries.retain(|e| !e.is_referrer());
    let found: Option<Digest> = if let Some(d) = &r.digest {
        layout.has_blob(d).then(|| d.clone())
    } else if let Some(t) = &r.tag {
        entries
            .iter()
            .find(|e| e.tag.as_deref() == Some(t.as_str()))
            .map(|e| Digest::from_oci(e.descriptor.digest()))
            .transpose()?
    } else if entries.len() == 1 {
        Some(Digest::from_oci(entries[0].descriptor.digest())?)
    } else {
        None
    };
    let md = found.ok_or_else(|| {
        let tags: Vec<String> = entries.iter().filter_map(|e| e.tag.clone()).collect();
        Error::TagNotFound {
            path: r.path.clone(),
            tag: match (&r.tag, &r.digest) {
                (Some(t), _) => t.to_string(),
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    "(none given, and the layout does not hold exactly one image: add :TAG)".into()
                }
            },
            available: if tags.is_empty() {
                "none".into()
            } else {
                tags.join(", ")
            },
        }
    })?;
    Ok(md)
}

fn check_manifest_type(bytes: &[u8], r: &LayoutRef) -> Result<()> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(|e| Error::Image {
        what: format!("manifest in {r}"),
        reason: e.to_string(),
    })?;
    if is_index(None, bytes) {
        return Err(Error::Image {
            what: r.to_string(),
            reason: "is a multi-platform index; name one platform's manifest with @sha256:…".into(),
        });
    }
    Ok(())
}

impl LayoutLock {
    /// Exclusive `flock` on directory `dir`, waiting for it.
    fn take(dir: &Path) -> Result<LayoutLock> {
        let f = File::open(dir).map_err(|e| Error::io(dir, e))?;
        // SAFETY: flock on a valid, owned fd; no memory is involved.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(Error::io(dir, io::Error::last_os_error()));
        }
        Ok(LayoutLock { _file: f })
    }
}
