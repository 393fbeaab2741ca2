//! `kiln push docker-archive:PATH[:REPO:TAG] DEST`: an archive made by kiln, docker save or podman save, imported
//! into the cache layout and pushed like any image.

use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageManifest, ImageManifestBuilder, MediaType};

use super::plan::PushPlan;
use crate::digest::Digest;
use crate::docker_archive::{self, Imported};
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{Json, descriptor};
use crate::publish::Published;
use crate::publish::remote::{self, PublishCtx};
use crate::reference::Reference;
use crate::registry::Client;
use crate::store::Layout;
use crate::tag::Tag;

/// `kiln push docker-archive:PATH[:REPO:TAG] DEST`: import the archive into the cache layout (streamed), make
/// its OCI manifest, and push it like any image.
pub fn push(
    plan: &PushPlan,
    path: &Path,
    name: Option<&(String, Tag)>,
    report: &Report,
) -> Result<Published> {
    let dest = &plan.destination;
    let cache = &plan.cache;
    // Held while the cache layout is in use: a build's prune never runs meanwhile (`cache::CacheLock`).
    let _lock = crate::cache::CacheLock::shared(cache);
    let (layout, _) = Layout::open_or_create(&cache.join("layout"))?;
    let imported = docker_archive::import(path, &layout)?;
    let (manifest, config) = oci_image(&layout, path, name, &imported)?;
    report.step(format_args!(
        "read {}: image {} ({} layers)",
        path.display(),
        manifest.digest.short(),
        manifest.value.layers().len()
    ));
    let client = Client::new(plan.registry.clone())?;
    let repo = client.repository(dest);
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let ctx = PublishCtx {
        repo: &repo,
        reference: dest,
        layout: &layout,
        base: None,
        request: &plan.tagging,
        build_dir: &cwd,
        pushed_early: &[],
        prepared: None,
        known: &[],
        attach: None,
    };
    remote::publish(&ctx, &manifest, &config, report)
}

/// The OCI manifest of the archive's image (the one named `REPO:TAG`, or the only one): the archive's own OCI
/// manifest when it carries one for exactly these blobs (kiln's archives do: the digest stays the build's),
/// else one made from `manifest.json` with the exact config bytes.
fn oci_image(
    layout: &Layout,
    path: &Path,
    name: Option<&(String, Tag)>,
    imported: &Imported,
) -> Result<(Json<ImageManifest>, Json<ImageConfiguration>)> {
    let bad = |why: String| Error::input(path, why);
    let want = name.map(|(r, t)| format!("{r}:{t}"));
    let all = || {
        let names: Vec<String> = imported
            .items
            .iter()
            .flat_map(|i| i.repo_tags.clone().unwrap_or_default())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    };
    let item = match &want {
        Some(w) => imported
            .items
            .iter()
            .find(|i| i.repo_tags.iter().flatten().any(|t| same_name(t, w)))
            .ok_or_else(|| bad(format!("no image named {w} (names: {})", all())))?,
        None if imported.items.len() == 1 => &imported.items[0],
        None => {
            return Err(bad(format!(
                "holds {} images; name one: docker-archive:PATH:REPO:TAG (names: {})",
                imported.items.len(),
                all()
            )));
        }
    };
    let lookup = |p: &str| {
        imported.blob(p).cloned().ok_or_else(|| {
            bad(format!(
                "manifest.json names {p}, which is not in the archive"
            ))
        })
    };
    let cd = lookup(&item.config)?;
    let config: Json<ImageConfiguration> = Json::decode(
        layout.read_blob(&cd)?,
        &format!("config {} in {}", item.config, path.display()),
    )?;
    let layers: Vec<Digest> = item
        .layers
        .iter()
        .map(|l| lookup(l))
        .collect::<Result<_>>()?;
    if let Some(m) = own_manifest(layout, imported, &cd, &layers) {
        return Ok((m, config));
    }
    let mut descs = Vec::new();
    for d in &layers {
        let size = std::fs::metadata(layout.blob_path(d))
            .map_err(|e| Error::io(layout.blob_path(d), e))?
            .len();
        descs.push(descriptor(layer_type(layout, d)?, d, size as usize)?);
    }
    let m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(descriptor(MediaType::ImageConfig, &cd, config.bytes.len())?)
        .layers(descs)
        .build()
        .map_err(|e| bad(format!("cannot make a manifest: {e}")))?;
    let manifest = Json::encode(m)?;
    layout.put_bytes(&manifest.bytes, &manifest.digest)?;
    Ok((manifest, config))
}

/// `app:v1` names `docker.io/library/app:v1`: names compare docker-normalized.
fn same_name(a: &str, b: &str) -> bool {
    match (a.parse::<Reference>(), b.parse::<Reference>()) {
        (Ok(a), Ok(b)) => a.name() == b.name() && a.tag == b.tag,
        _ => a == b,
    }
}

/// An OCI manifest listed in the archive's `index.json` whose config and layers are exactly these.
fn own_manifest(
    layout: &Layout,
    imported: &Imported,
    config: &Digest,
    layers: &[Digest],
) -> Option<Json<ImageManifest>> {
    let index: oci_spec::image::ImageIndex =
        serde_json::from_slice(imported.index.as_deref()?).ok()?;
    index.manifests().iter().find_map(|d| {
        let digest = Digest::from_oci(d.digest()).ok()?;
        let m: Json<ImageManifest> =
            Json::decode(layout.read_blob(&digest).ok()?, "manifest").ok()?;
        let same = Digest::from_oci(m.value.config().digest()).ok()? == *config
            && m.value
                .layers()
                .iter()
                .map(|l| Digest::from_oci(l.digest()).ok())
                .collect::<Option<Vec<_>>>()?
                == layers;
        same.then_some(m)
    })
}

/// A layer's media type from its first bytes: gzip, zstd, or a plain tar.
fn layer_type(layout: &Layout, d: &Digest) -> Result<MediaType> {
    use std::io::Read;
    let mut magic = Vec::new();
    let f = layout.open_blob(d)?;
    f.take(4)
        .read_to_end(&mut magic)
        .map_err(|e| Error::io(layout.blob_path(d), e))?;
    Ok(match magic.as_slice() {
        [0x1f, 0x8b, ..] => MediaType::ImageLayerGzip,
        [0x28, 0xb5, 0x2f, 0xfd] => MediaType::ImageLayerZstd,
        _ => MediaType::ImageLayer,
    })
}
