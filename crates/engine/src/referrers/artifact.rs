//! The artifact manifest of a document about an image, and the choice among an image's referrers.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::{ANNOTATION_CREATED, Json, canonical_json, descriptor};
use crate::tag::Tag;

/// The empty JSON blob (`{}`): the config of every artifact manifest.
pub const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub const EMPTY_BYTES: &[u8] = b"{}";
pub const EMPTY_DIGEST: &str =
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// `artifactType`s of an SBOM: SPDX JSON, CycloneDX JSON.
pub const SBOM_TYPES: [&str; 2] = ["application/spdx+json", "application/vnd.cyclonedx+json"];
/// `artifactType` of provenance: an in-toto statement (SLSA provenance predicate).
pub const PROVENANCE_TYPES: [&str; 1] = ["application/vnd.in-toto+json"];

/// A document to attach.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Artifact {
    /// The manifest's `artifactType`, e.g. `application/spdx+json`.
    pub artifact_type: String,
    /// The media type of the document's blob (usually the same).
    pub blob_media_type: String,
    pub bytes: Vec<u8>,
    /// The artifact manifest's annotations. `org.opencontainers.image.created` only if the caller sets it (from
    /// SOURCE_DATE_EPOCH, for the same bytes from the same inputs).
    pub annotations: BTreeMap<String, String>,
}

/// How an artifact ended up attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum How {
    /// The registry keeps the referrers list (it answered `OCI-Subject`).
    Api,
    /// Listed in the referrers tag (`sha256-<hex>`), which kiln maintains.
    FallbackTag(Tag),
    /// An untagged entry of a layout's `index.json`.
    Layout,
    /// Already there (the same manifest, or with `skip_types_present` one of the same `artifactType`): nothing
    /// was written.
    AlreadyPresent,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    pub artifact_type: String,
    /// The artifact manifest's digest (for `AlreadyPresent` by type: the one already there).
    pub manifest: Digest,
    pub how: How,
}

/// How to attach.
#[derive(Clone, Debug)]
pub struct AttachOptions {
    /// Add nothing for an artifact whose `artifactType` the subject already has a referrer of (an unchanged
    /// rebuild that reuses a version keeps the SBOM it has, even if its bytes would differ: e.g. a time in it).
    pub skip_types_present: bool,
    /// Registries, referrers tag: the wait between a write and its read-back. It must exceed another attacher's
    /// read-to-write time for a concurrent write to be seen (as `settle` for versions).
    pub settle: Duration,
    /// Registries, referrers tag: how many read-modify-write rounds before giving up.
    pub max_rounds: u32,
}

impl Default for AttachOptions {
    fn default() -> Self {
        AttachOptions {
            skip_types_present: false,
            settle: Duration::from_millis(500),
            max_rounds: 32,
        }
    }
}

/// An artifact manifest, as it will be stored: `(manifest, document blob descriptor)`.
pub(crate) struct Built {
    pub artifact_type: String,
    pub manifest: Json<ImageManifest>,
    pub blob: Digest,
}

impl Built {
    /// Its descriptor as a referrers index lists it: with its `artifactType` and annotations.
    pub fn descriptor(&self) -> Result<Descriptor> {
        let mut d = descriptor(
            MediaType::ImageManifest,
            &self.manifest.digest,
            self.manifest.bytes.len(),
        )?;
        d.set_artifact_type(Some(MediaType::from(self.artifact_type.as_str())));
        d.set_annotations(self.manifest.value.annotations().clone());
        Ok(d)
    }
}

/// The artifact manifest of `a` about `subject` (deterministic bytes).
pub(crate) fn build(a: &Artifact, subject: &Descriptor) -> Result<Built> {
    if a.artifact_type.is_empty() || !a.artifact_type.contains('/') {
        return Err(Error::Usage(format!(
            "artifact type {:?} is not a media type (e.g. application/spdx+json)",
            a.artifact_type
        )));
    }
    let blob = Digest::of(&a.bytes);
    let empty = Digest::of(EMPTY_BYTES);
    let config = descriptor(MediaType::EmptyJSON, &empty, EMPTY_BYTES.len())?;
    let layer = descriptor(
        MediaType::from(a.blob_media_type.as_str()),
        &blob,
        a.bytes.len(),
    )?;
    // The subject as a plain descriptor: media type, digest, size (platform and annotations are the index's).
    let subject = descriptor(
        subject.media_type().clone(),
        &Digest::from_oci(subject.digest())?,
        subject.size() as usize,
    )?;
    let annotations: HashMap<String, String> = a.annotations.clone().into_iter().collect();
    let mut m = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::from(a.artifact_type.as_str()))
        .config(config)
        .layers(vec![layer])
        .subject(subject)
        .annotations(annotations)
        .build()
        .map_err(|e| Error::Image {
            what: format!("the {} artifact manifest", a.artifact_type),
            reason: e.to_string(),
        })?;
    // No annotations: no empty object in the bytes either.
    if a.annotations.is_empty() {
        m.set_annotations(None);
    }
    let bytes = canonical_json(&m)?;
    Ok(Built {
        artifact_type: a.artifact_type.clone(),
        manifest: Json {
            digest: Digest::of(&bytes),
            bytes,
            value: m,
        },
        blob,
    })
}

/// What to do with each artifact, given the subject's referrers now: `Err(attached)` for those already there.
pub(crate) fn plan(
    artifacts: &[Artifact],
    subject: &Descriptor,
    existing: &[Descriptor],
    skip_types_present: bool,
) -> Result<Vec<std::result::Result<Built, Attached>>> {
    artifacts
        .iter()
        .map(|a| {
            let b = build(a, subject)?;
            let same = existing
                .iter()
                .any(|d| d.digest().to_string() == b.manifest.digest.to_string());
            let of_type = skip_types_present
                .then(|| pick(existing, &[a.artifact_type.as_str()]))
                .flatten();
            Ok(if same {
                Err(Attached {
                    artifact_type: b.artifact_type,
                    manifest: b.manifest.digest,
                    how: How::AlreadyPresent,
                })
            } else if let Some(d) = of_type {
                Err(Attached {
                    artifact_type: b.artifact_type,
                    manifest: Digest::from_oci(d.digest())?,
                    how: How::AlreadyPresent,
                })
            } else {
                Ok(b)
            })
        })
        .collect()
}

/// The referrer of one of `types` to show: the newest by `org.opencontainers.image.created` (RFC 3339 in UTC
/// sorts as text), else the last listed.
pub fn pick<'a>(referrers: &'a [Descriptor], types: &[&str]) -> Option<&'a Descriptor> {
    let created = |d: &Descriptor| {
        d.annotations()
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_CREATED).cloned())
    };
    referrers
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.artifact_type()
                .as_ref()
                .is_some_and(|t| types.contains(&t.to_string().as_str()))
        })
        .max_by(|(i, a), (j, b)| created(a).cmp(&created(b)).then(i.cmp(j)))
        .map(|(_, d)| d)
}

/// The referrers of `types` only (all with an empty list).
pub(crate) fn of_types(referrers: Vec<Descriptor>, types: &[&str]) -> Vec<Descriptor> {
    if types.is_empty() {
        return referrers;
    }
    referrers
        .into_iter()
        .filter(|d| {
            d.artifact_type()
                .as_ref()
                .is_some_and(|t| types.contains(&t.to_string().as_str()))
        })
        .collect()
}
