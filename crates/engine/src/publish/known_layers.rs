//! The registry as a layer cache (issue 20): the layers of the target repository's recent images, by diff_id.
//!
//! kiln's layers are deterministic, and an image's config lists each layer's diff_id (the sha256 of its tar)
//! beside the manifest's blob digest. So a runner without a layer cache hashes a layer's tar (no compression)
//! and, when the diff_id is one of these and the blob was made with the same encoding
//! (`image::ANNOTATION_LAYER_ENCODING`: encoder, level, encoder revision), takes the registry's blob as its own:
//! compressing the tar again would give exactly those bytes. A blob made any other way (another tool, level or
//! encoder revision) is never taken; a mismatch costs a compression, never a different image.
//!
//! The images read are those the next publish most likely follows: the highest versions of the scheme (or of
//! any version-like tags), the target's own tag and `latest`. They are fetched on a thread of their own while the
//! build output is walked, and waited for only when a layer misses the local cache ([`KnownLayers::get`]).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, mpsc};

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{ANNOTATION_LAYER_ENCODING, is_index};
use crate::registry::Repository;
use crate::tag::Tag;
use crate::versions::{self, Scheme};

/// How many tags are read (each costs a manifest and a config request, on a thread of its own).
const CANDIDATES: usize = 4;
/// Manifests read below an index (one per platform).
const MAX_CHILDREN: usize = 8;
/// Configs bigger than this are not read (a real one is a few KiB; the bound keeps a hostile answer small).
const MAX_CONFIG: u64 = 4 << 20;

/// A blob in the repository and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownLayer {
    pub digest: Digest,
    pub size: u64,
    /// The tag whose image lists it (for messages).
    pub from: String,
    /// The manifest that lists it: its SBOM has the digests of this layer's files (`attest`).
    pub manifest: Digest,
}

/// The known layers by diff_id, for one media type and encoding; filled in the background.
pub struct KnownLayers {
    pending: Mutex<Option<mpsc::Receiver<Found>>>,
    found: OnceLock<Found>,
}

#[derive(Default)]
struct Found {
    layers: HashMap<Digest, KnownLayer>,
    /// Why a tag could not be read (a registry error, a malformed image): the build goes on without it.
    skipped: Vec<String>,
}

impl KnownLayers {
    /// Nothing known (a layout target, an empty repository).
    pub fn none() -> Self {
        let found = OnceLock::new();
        let _ = found.set(Found::default());
        KnownLayers {
            pending: Mutex::new(None),
            found,
        }
    }

    /// Start reading the layers of `tags`' images in `repo` whose blobs are `media_type` made with `encoding`.
    pub fn spawn(repo: Repository, tags: Vec<Tag>, media_type: String, encoding: String) -> Self {
        if tags.is_empty() {
            return Self::none();
        }
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_all(&repo, &tags, &media_type, &encoding));
        });
        KnownLayers {
            pending: Mutex::new(Some(rx)),
            found: OnceLock::new(),
        }
    }

    fn found(&self) -> &Found {
        self.found.get_or_init(|| {
            let rx = self.pending.lock().expect("known layers").take();
            rx.and_then(|rx| rx.recv().ok()).unwrap_or_default()
        })
    }

    /// Waits for the reads to finish (at most the client's request timeouts).
    pub fn get(&self, diff_id: &Digest) -> Option<&KnownLayer> {
        self.found().layers.get(diff_id)
    }

    /// Whether any layer is known (waits like [`KnownLayers::get`]).
    pub fn is_empty(&self) -> bool {
        self.found().layers.is_empty()
    }

    /// Every known blob: they are all in the repository (its images list them), so a publish never sends them.
    pub fn blobs(&self) -> Vec<Digest> {
        match self.found.get() {
            Some(f) => f.layers.values().map(|l| l.digest.clone()).collect(),
            None => Vec::new(),
        }
    }

    /// Tags that could not be read, and why (for `-v`); none when nothing waited for the reads.
    pub fn skipped(&self) -> &[String] {
        self.found.get().map_or(&[], |f| &f.skipped)
    }
}

/// The tags worth reading: the target's tag, the highest versions of `scheme` among `listed` (of the `auto` scheme
/// when the build has none, or a git/explicit one), and `latest`.
pub fn candidates(listed: &[Tag], scheme: Option<&Scheme>, target: Option<&Tag>) -> Vec<Tag> {
    let scheme = match scheme {
        Some(s @ (Scheme::Auto | Scheme::Semver { .. })) => s,
        _ => &Scheme::Auto,
    };
    let mut out: Vec<Tag> = Vec::new();
    let mut push = |t: &Tag| {
        if !out.contains(t) && listed.contains(t) {
            out.push(t.clone());
        }
    };
    if let Some(t) = target {
        push(t);
    }
    for t in versions::scheme_versions(scheme, listed)
        .iter()
        .take(CANDIDATES)
    {
        push(t);
    }
    if let Ok(latest) = "latest".parse::<Tag>() {
        push(&latest);
    }
    out.truncate(CANDIDATES);
    out
}

/// Layers by diff_id, as read from one tag's image(s).
type Layers = Vec<(Digest, KnownLayer)>;

fn read_all(repo: &Repository, tags: &[Tag], media_type: &str, encoding: &str) -> Found {
    let results: Vec<(String, Result<Layers>)> = std::thread::scope(|s| {
        let handles: Vec<_> = tags
            .iter()
            .map(|t| {
                (
                    t.to_string(),
                    s.spawn(move || read_tag(repo, t, media_type, encoding)),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(t, h)| {
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(bad(&t, "reading it panicked")));
                (t, r)
            })
            .collect()
    });
    let mut found = Found::default();
    for (tag, r) in results {
        match r {
            Ok(layers) => {
                for (diff_id, l) in layers {
                    found.layers.entry(diff_id).or_insert(l);
                }
            }
            Err(e) => found.skipped.push(format!("{tag}: {e}")),
        }
    }
    found
}

/// The layers of the image(s) `tag` points at: one manifest, or each platform's below an index.
fn read_tag(repo: &Repository, tag: &Tag, media_type: &str, encoding: &str) -> Result<Layers> {
    let Some(root) = repo.find_manifest(tag.as_str())? else {
        return Ok(Vec::new());
    };
    let manifests = if is_index(Some(&root.media_type), &root.bytes) {
        let index: ImageIndex = serde_json::from_slice(&root.bytes).map_err(|e| bad(tag, e))?;
        let mut out = Vec::new();
        for d in index.manifests().iter().take(MAX_CHILDREN) {
            let digest = Digest::from_oci(d.digest())?;
            out.push(repo.get_manifest(&digest.to_string())?);
        }
        out
    } else {
        vec![root]
    };
    let mut layers = Vec::new();
    for raw in manifests {
        let m: ImageManifest = serde_json::from_slice(&raw.bytes).map_err(|e| bad(tag, e))?;
        layers.extend(read_image(
            repo,
            tag,
            &raw.digest,
            &m,
            media_type,
            encoding,
        )?);
    }
    Ok(layers)
}

/// Pair each layer made with `encoding` with its diff_id from the config.
fn read_image(
    repo: &Repository,
    tag: &Tag,
    digest: &Digest,
    m: &ImageManifest,
    media_type: &str,
    encoding: &str,
) -> Result<Layers> {
    let ours = |d: &oci_spec::image::Descriptor| {
        d.media_type().to_string() == media_type
            && d.annotations()
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_LAYER_ENCODING))
                .is_some_and(|e| e == encoding)
    };
    if !m.layers().iter().any(ours) {
        return Ok(Vec::new());
    }
    let cd = m.config();
    if cd.size() > MAX_CONFIG {
        return Ok(Vec::new());
    }
    let mut bytes = Vec::new();
    repo.get_blob(&Digest::from_oci(cd.digest())?, cd.size(), &mut bytes)?;
    let config: ImageConfiguration = serde_json::from_slice(&bytes).map_err(|e| bad(tag, e))?;
    let diff_ids = config.rootfs().diff_ids();
    // The config lists one diff_id per layer, in order (image-spec config.md, rootfs.diff_ids); an image where the
    // counts differ is malformed and is not trusted at all.
    if diff_ids.len() != m.layers().len() {
        return Err(bad(
            tag,
            format!(
                "{} layers but {} diff_ids in its config",
                m.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (l, diff_id) in m.layers().iter().zip(diff_ids) {
        if ours(l) {
            out.push((
                diff_id.parse::<Digest>()?,
                KnownLayer {
                    digest: Digest::from_oci(l.digest())?,
                    size: l.size(),
                    from: tag.to_string(),
                    manifest: digest.clone(),
                },
            ));
        }
    }
    Ok(out)
}

fn bad(tag: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Image {
        what: format!("the image tagged {tag}"),
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(v: &[&str]) -> Vec<Tag> {
        v.iter().map(|t| t.parse().unwrap()).collect()
    }

    #[test]
    fn candidates_are_the_target_the_highest_versions_and_latest() {
        let listed = tags(&["v1", "v2", "v10", "latest", "feature-x", "v3"]);
        let got = candidates(&listed, Some(&Scheme::Auto), None);
        assert_eq!(got, tags(&["v10", "v3", "v2", "v1"]));
        let got = candidates(&listed, None, Some(&"feature-x".parse().unwrap()));
        assert_eq!(got, tags(&["feature-x", "v10", "v3", "v2"]));
        // A target tag that does not exist yet costs no request.
        let got = candidates(&tags(&["latest"]), None, Some(&"v1".parse().unwrap()));
        assert_eq!(got, tags(&["latest"]));
        assert!(candidates(&[], Some(&Scheme::Auto), None).is_empty());
    }
}
