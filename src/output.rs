//! What kiln says: results on stdout (one reference per tag, or one JSON object), progress and logs on stderr.

use std::fmt;
use std::io::Write;

use oci_spec::image::ImageManifest;
use serde::Serialize;

use crate::cli::OutputFormat;
use crate::commands::tagging::Tagged;
use crate::digest::Digest;
use crate::image::{Json, PlatformSpec, Root};
use crate::tag::Tag;

/// Logging to stderr, one plain line per finished step (never on stdout).
#[derive(Debug, Clone, Copy)]
pub struct Reporter {
    pub quiet: bool,
    pub verbose: u8,
}

impl Reporter {
    pub fn step(&self, msg: fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("kiln: {msg}");
        }
    }

    pub fn debug(&self, msg: fmt::Arguments<'_>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("kiln: {msg}");
        }
    }
}

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

    pub fn print(&self, format: OutputFormat) {
        let mut out = std::io::stdout().lock();
        let _ = match format {
            OutputFormat::Text => self
                .references
                .iter()
                .try_for_each(|r| writeln!(out, "{r}")),
            OutputFormat::Json => writeln!(
                out,
                "{}",
                serde_json::to_string(self).expect("serializable")
            ),
        };
    }

    /// The reference to deploy: the version's (first line of the text output).
    pub fn deploy_reference(&self) -> &str {
        &self.references[0]
    }

    /// `--ref-file PATH`: the deploy reference and a newline, for later CI steps (written atomically).
    pub fn write_ref_file(&self, path: &std::path::Path) -> crate::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".kiln-tmp");
        std::fs::write(&tmp, format!("{}\n", self.deploy_reference()))
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| crate::Error::io(path, e))
    }
}
