//! Loading a base image: its manifest and config from a layout or a registry, and its blobs when needed.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::digest::Digest;
use crate::error::{Error, Result, ResultExt};
use crate::image::{self, Base, Json, PlatformSpec};
use crate::platform::normalize;
use crate::reference::{DOCKER_HUB, Reference};
use crate::registry::{Client, RawManifest, Repository};
use crate::store::Layout;
use crate::store::{read_manifest_bytes, resolve_ref};
use crate::target::Target;

/// Where a base's blobs can be fetched from.
pub enum BaseSource {
    Layout(Layout),
    Registry {
        repo: Repository,
        reference: Reference,
    },
}

pub struct LoadedBase {
    pub base: Base,
    pub source: BaseSource,
    /// A layout holding blobs of a registry base fetched already (to read its tree: `read.rs`), copied from
    /// there instead of downloaded again.
    pub fetched: Option<Layout>,
}

impl LoadedBase {
    /// The base's layer digests, bottom first.
    pub fn layer_digests(&self) -> Result<Vec<Digest>> {
        self.base
            .manifest
            .value
            .layers()
            .iter()
            .map(|l| Digest::from_oci(l.digest()))
            .collect()
    }

    /// The size the base's manifest declares for layer `digest`.
    fn layer_size(&self, digest: &Digest) -> Result<u64> {
        let layers = self.base.manifest.value.layers();
        let found = layers
            .iter()
            .find(|l| l.digest().to_string() == digest.to_string());
        found.map(|l| l.size()).ok_or_else(|| Error::Image {
            what: format!("base image {}", self.base.name),
            reason: format!("has no layer {digest}"),
        })
    }

    /// Make sure `dst` holds blob `digest` of this base (copied or downloaded, verified). Returns whether it
    /// was added (false: it was there already).
    pub fn ensure_blob(&self, dst: &Layout, digest: &Digest) -> Result<bool> {
        if dst.has_blob(digest) {
            return Ok(false);
        }
        if let Some(f) = self.fetched.as_ref().filter(|f| f.has_blob(digest)) {
            dst.import_blob(f, digest)?;
            return Ok(true);
        }
        match &self.source {
            BaseSource::Layout(l) => dst.import_blob(l, digest)?,
            BaseSource::Registry { repo, reference } => {
                let size = self.layer_size(digest)?;
                let mut w = dst.blob_writer()?;
                repo.get_blob(digest, size, &mut w)
                    .context(|| format!("fetching layer {digest} of base image {reference}"))?;
                let (got, _) = dst.finish_blob(w)?;
                if got != *digest {
                    let _ = std::fs::remove_file(dst.blob_path(&got));
                    return Err(Error::Image {
                        what: format!("base image {reference}"),
                        reason: format!("blob {digest} arrived with digest {got}"),
                    });
                }
            }
        }
        Ok(true)
    }
}

pub fn load(
    t: &Target,
    client: impl Fn() -> Result<Client>,
    platform: Option<&PlatformSpec>,
) -> Result<LoadedBase> {
    match t {
        Target::Layout(r) => {
            let layout = Layout::open(&r.path).context(|| format!("opening base image {r}"))?;
            let md = resolve_ref(&layout, r)?;
            let mut bytes = layout.read_blob(&md)?;
            let mut md = md;
            if image::is_index(None, &bytes) {
                let want = platform.cloned().unwrap_or_else(PlatformSpec::host);
                let index: Json<ImageIndex> = Json::decode(bytes, &format!("index {md} in {r}"))?;
                md = select_platform(&index.value, &want).ok_or_else(|| Error::Image {
                    what: r.to_string(),
                    reason: format!(
                        "has no image for platform {want}; available: {} (choose one with --platform)",
                        platforms(&index.value).join(", ")
                    ),
                })?;
                bytes = layout.read_blob(&md)?;
            }
            let (manifest, config) = read_manifest_bytes(&layout, bytes, &md, r)?;
            Ok(LoadedBase {
                base: Base {
                    name: r.to_string(),
                    manifest,
                    config,
                },
                source: BaseSource::Layout(layout),
                fetched: None,
            })
        }
        Target::Registry(reference) => {
            let client = client()?;
            let want = platform.cloned().unwrap_or_else(PlatformSpec::host);
            // The base keeps its source name whichever registry it is read from: the annotations, mounts and
            // messages speak of it.
            let loaded = |repo: Repository, (manifest, config)| LoadedBase {
                base: Base {
                    name: reference.to_string(),
                    manifest,
                    config,
                },
                source: BaseSource::Registry {
                    repo,
                    reference: reference.clone(),
                },
                fetched: None,
            };
            // Through a mirror first (Docker Hub allows 10 anonymous pulls an hour), the source on a miss.
            for mirror in client.mirrors_for(&reference.registry) {
                // A mirror may keep a registry's repositories under a path of its own (a Harbor proxy project).
                let (host, path) = mirror.split_once('/').unwrap_or((&mirror, ""));
                let via = Reference {
                    registry: host.to_string(),
                    repository: match path {
                        "" => reference.repository.clone(),
                        p => format!("{p}/{}", reference.repository),
                    },
                    ..reference.clone()
                };
                let repo = client.repository(&via);
                match fetch_image(&repo, &via, &want) {
                    Ok(image) => {
                        client.options().report.debug(format_args!(
                            "base image {reference} read through mirror {mirror}"
                        ));
                        return Ok(loaded(repo, image));
                    }
                    Err(e) => client.options().report.note(format_args!(
                        "mirror {mirror} did not serve {reference} ({e}); reading it from {}",
                        reference.registry
                    )),
                }
            }
            let repo = client.repository(reference);
            let image = fetch_image(&repo, reference, &want).map_err(|e| match e.not_found() {
                true if reference.registry == DOCKER_HUB => e.context(format!(
                    "base image {reference} does not exist: check the repository and tag (a name without a \
                     registry host is on Docker Hub)"
                )),
                true => e.context(format!(
                    "base image {reference} does not exist: check the repository and tag"
                )),
                false => e.context(format!("reading base image {reference}")),
            })?;
            Ok(loaded(repo, image))
        }
        Target::DockerArchive { .. } => Err(Target::archive_unsupported("--base")),
    }
}

fn is_index(m: &RawManifest) -> bool {
    image::is_index(Some(&m.media_type), &m.bytes)
}

/// The manifest (resolving an index to `want`) and config of a registry image.
pub fn fetch_image(
    repo: &Repository,
    reference: &Reference,
    want: &PlatformSpec,
) -> Result<(Json<ImageManifest>, Json<ImageConfiguration>)> {
    let mut raw = repo.get_manifest(&reference.manifest_reference())?;
    if is_index(&raw) {
        let index: Json<ImageIndex> = Json::decode(raw.bytes, &format!("index of {reference}"))?;
        let chosen = select_platform(&index.value, want).ok_or_else(|| Error::Image {
            what: reference.to_string(),
            reason: format!(
                "has no image for platform {want}; available: {} (choose one with --platform)",
                platforms(&index.value).join(", ")
            ),
        })?;
        raw = repo.get_manifest(&chosen.to_string())?;
        if is_index(&raw) {
            return Err(Error::Image {
                what: reference.to_string(),
                reason: "an index entry for the platform is itself an index".into(),
            });
        }
    }
    let manifest: Json<ImageManifest> =
        Json::decode(raw.bytes, &format!("manifest of {reference}"))?;
    let cd = Digest::from_oci(manifest.value.config().digest())?;
    let mut buf = Vec::new();
    repo.get_blob(&cd, manifest.value.config().size(), &mut buf)?;
    let config: Json<ImageConfiguration> =
        Json::decode(buf, &format!("config {cd} of {reference}"))?;
    Ok((manifest, config))
}

/// `os/arch[/variant]` of every entry of an index.
pub fn platforms(index: &ImageIndex) -> Vec<String> {
    index
        .manifests()
        .iter()
        .filter_map(|d| d.platform().as_ref())
        .map(|p| {
            let mut s = format!("{}/{}", p.os(), p.architecture());
            if let Some(v) = p.variant() {
                s.push('/');
                s.push_str(v);
            }
            s
        })
        .collect()
}

/// The entry for `want`, comparing normalized platforms (`arm64/v8` is `arm64`, `arm` is `arm/v7`); a `want`
/// without variant matches any variant of its architecture.
pub fn select_platform(index: &ImageIndex, want: &PlatformSpec) -> Option<Digest> {
    let want = normalize(&want.os, &want.arch, want.variant.as_deref());
    index
        .manifests()
        .iter()
        .find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                let have = normalize(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                );
                have.os == want.os
                    && have.arch == want.arch
                    && (want.variant.is_none() || have.variant == want.variant)
            })
        })
        .and_then(|d| Digest::from_oci(d.digest()).ok())
}
