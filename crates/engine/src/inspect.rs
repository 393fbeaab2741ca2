//! `kiln inspect`: find an image (or a multi-platform index) in a layout or a registry, for the CLI to show.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

use crate::base;
use crate::error::Result;
use crate::image::{Json, PlatformSpec};
use crate::registry::{Client, ClientOptions};
use crate::store::{Layout, read_image};
use crate::target::Target;

/// What `kiln inspect` found.
pub enum Inspected {
    /// One image: its manifest and config, and the tags naming it.
    Image {
        name: String,
        manifest: Box<Json<ImageManifest>>,
        config: Box<Json<ImageConfiguration>>,
        tags: Vec<String>,
    },
    /// A multi-platform index, shown when no platform was asked for.
    Index {
        name: String,
        media_type: String,
        index: Box<Json<ImageIndex>>,
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
            let layout = Layout::open(&r.path)?;
            let (manifest, config) = read_image(&layout, r)?;
            let tags = layout
                .entries()?
                .into_iter()
                .filter(|e| e.descriptor.digest().to_string() == manifest.digest.to_string())
                .filter_map(|e| e.tag)
                .collect();
            Ok(Inspected::Image {
                name: r.to_string(),
                manifest: Box::new(manifest),
                config: Box::new(config),
                tags,
            })
        }
        Target::Registry(reference) => {
            let client = Client::new(registry)?;
            let repo = client.repository(reference);
            let raw = repo.get_manifest(&reference.manifest_reference())?;
            let is_index = crate::image::is_index(Some(&raw.media_type), &raw.bytes);
            let name = reference.to_string();
            if is_index && platform.is_none() {
                let index = Box::new(Json::decode(raw.bytes, &format!("index of {name}"))?);
                return Ok(Inspected::Index {
                    name,
                    media_type: raw.media_type,
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
                manifest: Box::new(manifest),
                config: Box::new(config),
                tags,
            })
        }
        Target::DockerArchive { .. } => Err(Target::archive_unsupported("kiln inspect")),
    }
}
