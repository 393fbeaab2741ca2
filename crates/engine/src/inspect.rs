//! `kiln inspect`: find an image (or a multi-platform index) in a layout or a registry, for the CLI to show.

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use crate::base;
use crate::error::{Error, Result};
use crate::image::{Json, PlatformSpec};
use crate::referrers::{list_layout, list_registry};
use crate::registry::{Client, ClientOptions};
use crate::store::{Layout, read_manifest_bytes, resolve_ref};
use crate::target::Target;

/// What `kiln inspect` found.
pub enum Inspected {
    /// One image: its manifest and config, and the tags naming it.
    Image {
        name: String,
        manifest: Box<Json<ImageManifest>>,
        config: Box<Json<ImageConfiguration>>,
        tags: Vec<String>,
        /// What is attached to the manifest (OCI 1.1 referrers: SBOM, provenance…).
        referrers: Vec<Descriptor>,
    },
    /// A multi-platform index, shown when no platform was asked for.
    Index {
        name: String,
        media_type: String,
        index: Box<Json<ImageIndex>>,
        /// What is attached to the index.
        referrers: Vec<Descriptor>,
    },
}

/// The image `target` names (for an index: the one for `platform`, or the index itself when `platform` is `None`).
pub fn inspect(
    target: &Target,
    platform: Option<PlatformSpec>,
    registry: ClientOptions,
) -> Result<Inspected> {
    match target {
        Target::Layout(r) => {
            // As for a registry: an index is listed, or resolved to `--platform`'s image.
            let layout = Layout::open(&r.path)?;
            let md = resolve_ref(&layout, r)?;
            let bytes = layout.read_blob(&md)?;
            let name = r.to_string();
            let (manifest, config) = if crate::image::is_index(None, &bytes) {
                let index: Json<ImageIndex> = Json::decode(bytes, &format!("index {md} in {r}"))?;
                let Some(want) = platform else {
                    let media_type = index
                        .value
                        .media_type()
                        .as_ref()
                        .map_or_else(|| MediaType::ImageIndex.to_string(), ToString::to_string);
                    return Ok(Inspected::Index {
                        name,
                        media_type,
                        referrers: list_layout(&layout, &md, &[])?,
                        index: Box::new(index),
                    });
                };
                let pd =
                    base::select_platform(&index.value, &want).ok_or_else(|| Error::Image {
                        what: name.clone(),
                        reason: format!(
                            "has no image for platform {want}; available: {}",
                            base::platforms(&index.value).join(", ")
                        ),
                    })?;
                read_manifest_bytes(&layout, layout.read_blob(&pd)?, &pd, r)?
            } else {
                read_manifest_bytes(&layout, bytes, &md, r)?
            };
            // The tags naming what the reference resolved to (the index, for one platform of it).
            let tags = layout
                .entries()?
                .into_iter()
                .filter(|e| e.descriptor.digest().to_string() == md.to_string())
                .filter_map(|e| e.tag)
                .collect();
            Ok(Inspected::Image {
                name,
                referrers: list_layout(&layout, &manifest.digest, &[])?,
                manifest: Box::new(manifest),
                config: Box::new(config),
                tags,
            })
        }
        Target::Registry(reference) => {
            let report = registry.report.clone();
            let client = Client::new(registry)?;
            let repo = client.repository(reference);
            // What is attached is an addition to what inspect shows: a registry that will not list it (a proxy
            // refusing unknown routes, say) still gets its image shown, with a warning.
            let referrers = |subject: &crate::Digest| {
                list_registry(&repo, subject, &[]).unwrap_or_else(|e| {
                    report.warn(format_args!(
                        "{reference}: its referrers could not be listed: {e}"
                    ));
                    Vec::new()
                })
            };
            let raw = repo.get_manifest(&reference.manifest_reference())?;
            let is_index = crate::image::is_index(Some(&raw.media_type), &raw.bytes);
            let name = reference.to_string();
            if is_index && platform.is_none() {
                let index = Box::new(Json::decode(raw.bytes, &format!("index of {name}"))?);
                return Ok(Inspected::Index {
                    name,
                    media_type: raw.media_type,
                    referrers: referrers(&raw.digest),
                    index,
                });
            }
            let want = platform.unwrap_or_else(PlatformSpec::host);
            let (manifest, config) = if is_index {
                base::fetch_image(&repo, reference, &want)?
            } else {
                let m: Json<ImageManifest> =
                    Json::decode(raw.bytes, &format!("manifest of {name}"))?;
                let cd = crate::Digest::from_oci(m.value.config().digest())?;
                let mut buf = Vec::new();
                repo.get_blob(&cd, m.value.config().size(), &mut buf)?;
                (m, Json::decode(buf, &format!("config of {name}"))?)
            };
            let tags = reference.tag.iter().map(|t| t.to_string()).collect();
            Ok(Inspected::Image {
                name,
                referrers: referrers(&manifest.digest),
                manifest: Box::new(manifest),
                config: Box::new(config),
                tags,
            })
        }
        Target::DockerArchive { .. } => Err(Target::archive_unsupported("kiln inspect")),
    }
}
