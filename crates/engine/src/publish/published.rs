//! The result of publishing one image: what the CLI prints on stdout (one reference per tag, or a JSON object).

use oci_spec::image::ImageManifest;
use serde::Serialize;

use super::tagging::Tagged;
use crate::digest::Digest;
use crate::image::{Json, PlatformSpec, Root};
use crate::tag::Tag;

#[derive(Debug, Clone, Serialize)]
pub struct LayerOut {
    pub digest: Digest,
    pub size: u64,
    #[serde(rename = "mediaType")]
    pub media_type: String,
}

/// The result of publishing one image.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// `oci:PATH` or `host/repo`, without tag.
    pub repository: String,
    pub digest: Digest,
    /// The unique version chosen for this build (also the first of `tags`).
    pub version: Option<Tag>,
    /// True when `version` already pointed at this image (an unchanged rebuild is not a new release).
    pub reused: bool,
    /// Why this version (`next after v41`, `reused: …`), for the summary on stderr.
    #[serde(skip)]
    pub why: Option<String>,
    pub tags: Vec<Tag>,
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub layers: Vec<LayerOut>,
    pub platform: String,
    /// Manifest digest per platform (`os/arch[/variant]` → digest).
    pub platforms: std::collections::BTreeMap<String, Digest>,
    /// `repository:tag@digest` per tag (or `repository@digest`), the lines text output prints.
    pub references: Vec<String>,
}

impl Published {
    /// The result of publishing `root` (a manifest, or an index over `images`) under `tagged`'s tags.
    pub fn new(
        repository: String,
        tagged: &Tagged,
        root: &Root,
        images: &[(PlatformSpec, &Json<ImageManifest>)],
    ) -> Self {
        let digest = root.digest.clone();
        let tags = tagged.tags.clone();
        let references = if tags.is_empty() {
            vec![format!("{repository}@{digest}")]
        } else {
            tags.iter()
                .map(|t| format!("{repository}:{t}@{digest}"))
                .collect()
        };
        // The layers of a single-platform image (an index's are per platform: see `platforms`).
        let layers = match images {
            [(_, m)] => m
                .value
                .layers()
                .iter()
                .map(|l| LayerOut {
                    digest: Digest::from_oci(l.digest()).expect("we only write sha256 layers"),
                    size: l.size(),
                    media_type: l.media_type().to_string(),
                })
                .collect(),
            _ => Vec::new(),
        };
        Published {
            layers,
            repository,
            platforms: images
                .iter()
                .map(|(p, m)| (p.to_string(), m.digest.clone()))
                .collect(),
            digest,
            version: tagged.version.clone(),
            reused: tagged.reused,
            why: tagged.why.clone(),
            tags,
            media_type: root.media_type.to_string(),
            size: root.bytes.len() as u64,
            platform: images
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            references,
        }
    }

    /// The reference to deploy: the version's (first line of the text output).
    pub fn deploy_reference(&self) -> &str {
        &self.references[0]
    }
}
