//! Referrers in a registry: the artifact manifest `PUT` by digest, then, unless the registry answered
//! `OCI-Subject`, the referrers tag `sha256-<hex>` updated by read-modify-write with a read-back.

use std::io::Write;

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};

use super::artifact::{Artifact, AttachOptions, Attached, Built, EMPTY_BYTES, How, of_types, plan};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::canonical_json;
use crate::registry::Repository;
use crate::tag::Tag;

const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Attach `artifacts` to `subject` (the image's manifest or index, in `repo`). Returns one [`Attached`] per
/// artifact, in order. An artifact already listed (same manifest digest, or with `skip_types_present` the same
/// `artifactType`) is not written again.
pub fn attach_registry(
    repo: &Repository,
    subject: &Descriptor,
    artifacts: &[Artifact],
    opts: &AttachOptions,
    report: &Report,
) -> Result<Vec<Attached>> {
    let subject_digest = Digest::from_oci(subject.digest())?;
    let existing = list_registry(repo, &subject_digest, &[])?;
    let planned = plan(artifacts, subject, &existing, opts.skip_types_present)?;
    let mut out: Vec<Option<Attached>> = Vec::with_capacity(planned.len());
    let mut fallback: Vec<(usize, Built)> = Vec::new();
    let mut empty_pushed = false;
    for (i, p) in planned.into_iter().enumerate() {
        let b = match p {
            Err(already) => {
                report.debug(format_args!(
                    "{}: {} referrer {} already attached to {subject_digest}",
                    repo.name(),
                    already.artifact_type,
                    already.manifest
                ));
                out.push(Some(already));
                continue;
            }
            Ok(b) => b,
        };
        if !empty_pushed {
            push_blob(repo, &Digest::of(EMPTY_BYTES), EMPTY_BYTES)?;
            empty_pushed = true;
        }
        let a = &artifacts[i];
        push_blob(repo, &b.blob, &a.bytes)?;
        let api = repo
            .put_manifest_with_subject(&b.manifest.bytes, MANIFEST)
            .map_err(|e| {
                e.context(format!(
                    "attaching the {} artifact to {subject_digest} in {}",
                    b.artifact_type,
                    repo.name()
                ))
            })?;
        if api {
            out.push(Some(Attached {
                artifact_type: b.artifact_type.clone(),
                manifest: b.manifest.digest.clone(),
                how: How::Api,
            }));
        } else {
            out.push(None);
            fallback.push((i, b));
        }
    }
    if !fallback.is_empty() {
        let descs = fallback
            .iter()
            .map(|(_, b)| b.descriptor())
            .collect::<Result<Vec<_>>>()?;
        let tag = update_tag(repo, &subject_digest, &descs, opts, report)?;
        for (i, b) in fallback {
            out[i] = Some(Attached {
                artifact_type: b.artifact_type,
                manifest: b.manifest.digest,
                how: How::FallbackTag(tag.clone()),
            });
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// The referrers of `subject` in `repo` (of `types` only, unless empty): through the referrers API, else the
/// referrers tag (absent: none).
pub fn list_registry(
    repo: &Repository,
    subject: &Digest,
    types: &[&str],
) -> Result<Vec<Descriptor>> {
    let filter = (types.len() == 1).then(|| types[0]);
    let listed = match repo.referrers_api(subject, filter)? {
        Some(l) => l,
        None => read_tag(repo, &fallback_tag(subject)?)?.1,
    };
    Ok(of_types(listed, types))
}

/// The referrers tag of a subject: `<algorithm>-<hex>` (distribution spec 1.1, "Referrers Tag Schema").
pub fn fallback_tag(subject: &Digest) -> Result<Tag> {
    let s = subject.to_string().replacen(':', "-", 1);
    let s: String = s.chars().take(128).collect();
    s.parse()
}

/// What the referrers tag holds now: its digest (`None`: absent) and its list.
fn read_tag(repo: &Repository, tag: &Tag) -> Result<(Option<Digest>, Vec<Descriptor>)> {
    let Some(raw) = repo.find_manifest(tag.as_str())? else {
        return Ok((None, Vec::new()));
    };
    if !crate::image::is_index(Some(&raw.media_type), &raw.bytes) {
        return Err(Error::Image {
            what: format!("{}:{tag}", repo.name()),
            reason: "the referrers tag holds something that is not an image index; kiln leaves it alone \
                     (delete it, or attach through a registry with the referrers API)"
                .into(),
        });
    }
    let index: ImageIndex = serde_json::from_slice(&raw.bytes).map_err(|e| Error::Image {
        what: format!("the referrers index {}:{tag}", repo.name()),
        reason: e.to_string(),
    })?;
    Ok((Some(raw.digest), index.manifests().clone()))
}

/// Add `ours` to the referrers tag of `subject`, until a read-back (after `settle`) lists every one of them.
/// A concurrent attacher that read the index before our write and wrote after it drops ours: the read-back sees
/// that, and the next round merges again (theirs are kept, as they keep ours).
fn update_tag(
    repo: &Repository,
    subject: &Digest,
    ours: &[Descriptor],
    opts: &AttachOptions,
    report: &Report,
) -> Result<Tag> {
    let tag = fallback_tag(subject)?;
    for round in 0..opts.max_rounds.max(1) {
        let started = std::time::Instant::now();
        let (seen, mut listed) = read_tag(repo, &tag)?;
        let missing: Vec<&Descriptor> = ours
            .iter()
            .filter(|d| !listed.iter().any(|l| l.digest() == d.digest()))
            .collect();
        if missing.is_empty() {
            return Ok(tag);
        }
        if round > 0 {
            report.debug(format_args!(
                "{}:{tag}: {} of our referrers were dropped by a concurrent writer; merging again",
                repo.name(),
                missing.len()
            ));
        }
        listed.extend(missing.into_iter().cloned());
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(listed)
            .build()
            .map_err(|e| Error::Image {
                what: "the referrers index".into(),
                reason: e.to_string(),
            })?;
        let bytes = canonical_json(&index)?;
        // Written directly, not through the tag policy: this tag is meant to be rewritten.
        match repo.put_tag(tag.as_str(), &bytes, INDEX, seen.as_ref()) {
            Ok(_) => {}
            Err(e) if refused(&e) => return Err(immutable(repo, &tag, subject, seen.is_some(), e)),
            Err(e) => {
                return Err(e.context(format!(
                    "writing the referrers tag {tag} of {subject} in {} (the image itself was published)",
                    repo.name()
                )));
            }
        }
        // As for versions: 3x this read-and-write, at least `settle` (`publish::settle_time`).
        std::thread::sleep(crate::publish::settle_time(opts.settle, started.elapsed()));
    }
    Err(Error::Version(format!(
        "{}: the referrers tag {tag} of {subject} lost our entries to concurrent writers {} times; the image \
         itself was published, attach again",
        repo.name(),
        opts.max_rounds
    )))
}

/// A registry's refusal to (over)write a tag, as immutable repositories answer.
fn refused(e: &Error) -> bool {
    match e.root() {
        Error::Registry {
            status: Some(s), ..
        } => matches!(s, 400 | 403 | 405 | 409 | 412),
        _ => false,
    }
}

fn immutable(repo: &Repository, tag: &Tag, subject: &Digest, existed: bool, e: Error) -> Error {
    let (status, code) = match e.root() {
        Error::Registry { status, code, .. } => (*status, code.clone()),
        _ => (None, None),
    };
    let why = match (code, status) {
        (Some(c), Some(s)) => format!("{c} (HTTP {s})"),
        (None, Some(s)) => format!("HTTP {s}"),
        _ => "an error".into(),
    };
    let state = if existed {
        "the tag exists and the repository does not let it be overwritten"
    } else {
        "the repository does not let kiln create it"
    };
    Error::TagRefused {
        repository: format!("{}/{}", repo.registry(), repo.name()),
        tag: tag.to_string(),
        reason: format!(
            "the registry answered {why}: {state}. This registry has no referrers API, so kiln keeps the \
             referrers of {subject} in that tag. The image itself was published; its referrers are not attached \
             (allow overwriting tags matching sha256-*, or use a registry with the referrers API). Cause: {e}"
        ),
    }
}

/// Upload a small blob from memory unless the registry has it.
fn push_blob(repo: &Repository, digest: &Digest, bytes: &[u8]) -> Result<()> {
    if repo.blob_exists(digest)?.is_some() {
        return Ok(());
    }
    let mut f = tempfile::NamedTempFile::new().map_err(|e| Error::io(std::env::temp_dir(), e))?;
    f.write_all(bytes)
        .and_then(|()| f.flush())
        .map_err(|e| Error::io(f.path(), e))?;
    repo.upload_blob(digest, bytes.len() as u64, f.path())
}
