//! Referrers in a local OCI layout: the artifact manifest and its blobs stored, and an untagged entry (with its
//! `artifactType`) added to `index.json` under the layout's lock; listed by reading the untagged entries'
//! manifests for their `subject`.

use oci_spec::image::{Descriptor, ImageManifest};

use super::artifact::{Artifact, AttachOptions, Attached, EMPTY_BYTES, How, of_types, plan};
use crate::digest::Digest;
use crate::error::Result;
use crate::image::is_index;
use crate::store::Layout;

/// Attach `artifacts` to `subject` (a manifest or index stored in `layout`). An artifact already listed (same
/// manifest digest, or with `skip_types_present` the same `artifactType`) is not added again.
pub fn attach_layout(
    layout: &Layout,
    subject: &Descriptor,
    artifacts: &[Artifact],
    opts: &AttachOptions,
) -> Result<Vec<Attached>> {
    let subject_digest = Digest::from_oci(subject.digest())?;
    // Blobs first (a blob nothing names yet is harmless), then the decision and the entries under the lock, so
    // two attachers of one layout see each other's entries.
    let built: Vec<_> = artifacts
        .iter()
        .map(|a| super::artifact::build(a, subject))
        .collect::<Result<_>>()?;
    layout.put_bytes(EMPTY_BYTES, &Digest::of(EMPTY_BYTES))?;
    for (a, b) in artifacts.iter().zip(&built) {
        layout.put_bytes(&a.bytes, &b.blob)?;
        layout.put_bytes(&b.manifest.bytes, &b.manifest.digest)?;
    }
    let lock = layout.lock()?;
    let existing = list_layout(layout, &subject_digest, &[])?;
    let mut out = Vec::with_capacity(artifacts.len());
    for p in plan(artifacts, subject, &existing, opts.skip_types_present)? {
        out.push(match p {
            Err(already) => already,
            Ok(b) => {
                let added = layout.add_entry(&lock, b.descriptor()?)?;
                Attached {
                    artifact_type: b.artifact_type,
                    manifest: b.manifest.digest,
                    how: if added {
                        How::Layout
                    } else {
                        How::AlreadyPresent
                    },
                }
            }
        });
    }
    Ok(out)
}

/// The referrers of `subject` in `layout` (of `types` only, unless empty), in `index.json` order: the untagged
/// manifests whose `subject` is it. Entries whose blob is missing or not a manifest are skipped (they are not
/// kiln's to judge here).
pub fn list_layout(layout: &Layout, subject: &Digest, types: &[&str]) -> Result<Vec<Descriptor>> {
    let mut out = Vec::new();
    for e in layout.entries()? {
        let d = &e.descriptor;
        if e.tag.is_some() || is_index(Some(d.media_type().as_ref()), b"") {
            continue;
        }
        let Ok(digest) = Digest::from_oci(d.digest()) else {
            continue;
        };
        // Only small documents are read: a manifest is never this big, an image's layer list aside.
        if d.size() > 4 << 20 || !layout.has_blob(&digest) {
            continue;
        }
        let Ok(bytes) = layout.read_blob(&digest) else {
            continue;
        };
        let Ok(m) = serde_json::from_slice::<ImageManifest>(&bytes) else {
            continue;
        };
        if m.subject()
            .as_ref()
            .is_some_and(|s| s.digest().to_string() == subject.to_string())
        {
            let mut d = d.clone();
            // An entry another tool wrote may lack them: the manifest has them.
            if d.artifact_type().is_none() {
                d.set_artifact_type(
                    m.artifact_type()
                        .clone()
                        .or_else(|| Some(m.config().media_type().clone())),
                );
            }
            if d.annotations().is_none() {
                d.set_annotations(m.annotations().clone());
            }
            out.push(d);
        }
    }
    Ok(of_types(out, types))
}
