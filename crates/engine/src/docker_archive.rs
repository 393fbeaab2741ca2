//! Docker archives (`docker save` tarballs): written from an image in a layout, and read back into one.
//!
//! The written archive is what `docker save` writes since Docker 25: `manifest.json` (the file `docker load`,
//! `podman load` and skopeo's `docker-archive:` read) naming the config and layers under `blobs/sha256/`, plus
//! `index.json` and `oci-layout`, so the same file is an OCI layout holding the image's manifest, and
//! `repositories`. Layers are stored as built (gzip and zstd layers are accepted by `docker load`). Entries are
//! sorted, owned by 0:0 with empty names, stamped with `SOURCE_DATE_EPOCH`: the same image gives the same bytes.
//! Blobs are streamed from the layout file by file, never held in memory.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{ImageManifest, MediaType};
use serde::{Deserialize, Serialize};

use crate::digest::{Digest, HashingWriter};
use crate::error::{Error, Result};
use crate::fsx::{WriteOptions, write_atomic_with};
use crate::image::{ANNOTATION_REF_NAME, Json, canonical_json, descriptor};
use crate::reference::Reference;
use crate::store::Layout;
use crate::tag::Tag;

/// One image in `manifest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestItem {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn blob_name(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

/// Write the image `manifest` (all of whose blobs are in `layout`) as a docker archive at `path`: a temp file
/// beside it, renamed into place only when complete. An existing `path` is an error unless `replace`.
pub fn write(
    layout: &Layout,
    path: &Path,
    manifest: &Json<ImageManifest>,
    name: Option<&(String, Tag)>,
    mtime: u64,
    replace: bool,
) -> Result<()> {
    if !replace && fs::symlink_metadata(path).is_ok() {
        return Err(Error::ArchiveExists { path: path.into() });
    }
    // Synced: the archive is the build's product, loaded after kiln exits. Without `replace` it is linked into
    // place, which fails if the path appeared since the check above (a plain rename would clobber it).
    let opts = WriteOptions::new().sync(true).replace(replace);
    let written = write_atomic_with(path, opts, |f, tmp| {
        let out = write_tar(layout, BufWriter::new(f), tmp, manifest, name, mtime)?;
        out.into_inner()
            .map(drop)
            .map_err(|e| Error::io(tmp, e.into_error()))
    });
    match written {
        Err(Error::Io { path: p, source })
            if !replace && p == path && source.kind() == io::ErrorKind::AlreadyExists =>
        {
            Err(Error::ArchiveExists { path: p })
        }
        other => other,
    }
}

/// The archive's entries, sorted by name, written to `out` (`tmp` names it in errors).
fn write_tar<W: Write>(
    layout: &Layout,
    out: W,
    tmp: &Path,
    manifest: &Json<ImageManifest>,
    name: Option<&(String, Tag)>,
    mtime: u64,
) -> Result<W> {
    let io_err = |e| Error::io(tmp, e);
    let m = &manifest.value;
    let config = Digest::from_oci(m.config().digest())?;
    let layers: Vec<Digest> = m
        .layers()
        .iter()
        .map(|l| Digest::from_oci(l.digest()))
        .collect::<Result<_>>()?;
    let mut blobs: Vec<&Digest> = layers.iter().chain([&config, &manifest.digest]).collect();
    blobs.sort_by(|a, b| a.hex().cmp(b.hex()));
    blobs.dedup();

    let item = ManifestItem {
        config: blob_name(&config),
        repo_tags: name.map(|(repo, tag)| vec![format!("{repo}:{tag}")]),
        layers: layers.iter().map(blob_name).collect(),
    };
    let mut desc = descriptor(
        MediaType::ImageManifest,
        &manifest.digest,
        manifest.bytes.len(),
    )?;
    let mut docs = Vec::new();
    if let Some((repo, tag)) = name {
        // As Docker 25+ saves it: containerd (docker load) and podman read the full name from containerd's
        // annotation (docker.io/library/app:v1); `ref.name` is the tag alone, as the OCI layout convention has it,
        // so `skopeo inspect oci-archive:app.tar:v1` finds the image.
        let full = format!(
            "{}:{tag}",
            repo.parse::<Reference>().map_or(repo.clone(), |r| r.name())
        );
        let ann = [
            (CONTAINERD_NAME, full),
            (ANNOTATION_REF_NAME, tag.to_string()),
        ];
        desc.set_annotations(Some(
            ann.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        ));
        let repositories = serde_json::json!({ repo: { tag.as_str(): config.hex() } });
        docs.push(("repositories", canonical_json(&repositories)?));
    }
    let index = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]});
    docs.push(("index.json", canonical_json(&index)?));
    docs.push(("manifest.json", canonical_json(&[item])?));
    docs.push(("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()));
    docs.sort();

    let mut tar = tar::Builder::new(out);
    let header = |kind: tar::EntryType, size: u64, mode: u32| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_mtime(mtime);
        h.set_uid(0);
        h.set_gid(0);
        h
    };
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        tar.append_data(&mut h, dir, io::empty()).map_err(io_err)?;
    }
    for d in blobs {
        let p = layout.blob_path(d);
        let f = File::open(&p).map_err(|e| Error::io(&p, e))?;
        let size = f.metadata().map_err(|e| Error::io(&p, e))?.len();
        // Exactly `size` bytes, whatever happens to the file meanwhile (the header is already written).
        let mut h = header(tar::EntryType::Regular, size, 0o644);
        tar.append_data(&mut h, blob_name(d), f.take(size))
            .map_err(io_err)?;
    }
    for (name, bytes) in docs {
        let mut h = header(tar::EntryType::Regular, bytes.len() as u64, 0o644);
        tar.append_data(&mut h, name, bytes.as_slice())
            .map_err(io_err)?;
    }
    tar.into_inner().map_err(io_err)
}

/// What reading an archive found: `manifest.json`, `index.json` if any, and every file imported as a blob.
pub struct Imported {
    pub items: Vec<ManifestItem>,
    pub index: Option<Vec<u8>>,
    /// Archive path → blob digest (links resolved at lookup).
    files: BTreeMap<PathBuf, Digest>,
    links: BTreeMap<PathBuf, PathBuf>,
}

impl Imported {
    /// The blob a `manifest.json` path names (following the archive's symlinks and hardlinks).
    pub fn blob(&self, name: &str) -> Option<&Digest> {
        let mut p = normalize(Path::new(name))?;
        for _ in 0..16 {
            if let Some(d) = self.files.get(&p) {
                return Some(d);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }
}

fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir => {}
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Read a docker archive in one pass, streaming every regular file into `layout` as a blob (by its digest) and
/// keeping `manifest.json` and `index.json`.
pub fn import(path: &Path, layout: &Layout) -> Result<Imported> {
    let bad = |why: String| Error::input(path, why);
    let f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut tar = tar::Archive::new(io::BufReader::new(f));
    let (mut manifest, mut index) = (None, None);
    let (mut files, mut links) = (BTreeMap::new(), BTreeMap::new());
    for entry in tar.entries().map_err(|e| Error::io(path, e))? {
        let mut entry = entry.map_err(|e| bad(format!("not a readable tar archive: {e}")))?;
        let name = entry.path().map_err(|e| Error::io(path, e))?.into_owned();
        let Some(name) = normalize(&name) else {
            continue;
        };
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            if let Some(target) = entry.link_name().ok().flatten() {
                let base = if kind.is_symlink() {
                    name.parent().unwrap_or(Path::new(""))
                } else {
                    Path::new("")
                };
                if let Some(t) = normalize(&base.join(target)) {
                    links.insert(name, t);
                }
            }
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let small = |entry: &mut tar::Entry<'_, _>| -> Result<Vec<u8>> {
            let mut buf = Vec::new();
            entry
                .take(16 << 20)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(path, e))?;
            Ok(buf)
        };
        match name.to_str() {
            Some("manifest.json") => manifest = Some(small(&mut entry)?),
            Some("index.json") => index = Some(small(&mut entry)?),
            Some("oci-layout" | "repositories") => {}
            _ => {
                let mut w = HashingWriter::new(layout.blob_writer()?);
                io::copy(&mut entry, &mut w).map_err(|e| Error::io(path, e))?;
                let (digest, _, w) = w.finish();
                if !layout.has_blob(&digest) {
                    layout.finish_blob(w)?;
                }
                files.insert(name, digest);
            }
        }
    }
    let manifest = manifest.ok_or_else(|| bad("not a docker archive: no manifest.json".into()))?;
    let items: Vec<ManifestItem> = serde_json::from_slice(&manifest)
        .map_err(|e| bad(format!("manifest.json is not valid: {e}")))?;
    Ok(Imported {
        items,
        index,
        files,
        links,
    })
}
