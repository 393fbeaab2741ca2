//! Referrers of the image a [`Target`] names (`oci:PATH[:TAG|@DIGEST]`, `REGISTRY/REPO[:TAG|@DIGEST]`), for the
//! CLI (`kiln inspect`, `kiln sbom`, `kiln provenance`) and for tests: the subject resolved, then `remote` or
//! `local`.

use oci_spec::image::{Descriptor, ImageManifest, MediaType};

use super::artifact::{Artifact, AttachOptions, Attached, pick};
use super::local::{attach_layout, list_layout};
use super::remote::{attach_registry, list_registry};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{descriptor, is_index};
use crate::registry::{Client, ClientOptions, Repository};
use crate::store::{Layout, resolve_ref};
use crate::target::Target;

/// Largest referrer document kiln reads (an SBOM of a big image is a few MiB).
const MAX_DOCUMENT: u64 = 256 << 20;

/// An image's referrers.
#[derive(Clone, Debug)]
pub struct Referrers {
    /// The target as given, for messages.
    pub name: String,
    /// The manifest (or index) they refer to.
    pub subject: Digest,
    pub referrers: Vec<Descriptor>,
}

/// One referrer's document.
#[derive(Clone, Debug)]
pub struct Document {
    pub subject: Digest,
    /// The referrer (artifact manifest) it came from.
    pub referrer: Descriptor,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

enum Opened {
    Layout(Layout),
    Registry(Repository),
}

/// The medium and the subject's descriptor.
fn open(target: &Target, registry: ClientOptions) -> Result<(Opened, Descriptor)> {
    match target {
        Target::Layout(r) => {
            let layout = Layout::open(&r.path)?;
            let d = resolve_ref(&layout, r)?;
            let bytes = layout.read_blob(&d)?;
            let mt = if is_index(None, &bytes) {
                MediaType::ImageIndex
            } else {
                MediaType::ImageManifest
            };
            let desc = descriptor(mt, &d, bytes.len())?;
            Ok((Opened::Layout(layout), desc))
        }
        Target::Registry(reference) => {
            let repo = Client::new(registry)?.repository(reference);
            let (d, mt, size) = repo
                .head_manifest(&reference.manifest_reference())?
                .ok_or_else(|| Error::Image {
                    what: reference.to_string(),
                    reason: "no such image in the registry".into(),
                })?;
            let desc = descriptor(MediaType::from(mt.as_str()), &d, size as usize)?;
            Ok((Opened::Registry(repo), desc))
        }
        Target::DockerArchive { .. } => Err(Target::archive_unsupported("kiln sbom/provenance")),
    }
}

fn listed(o: &Opened, subject: &Digest, types: &[&str]) -> Result<Vec<Descriptor>> {
    match o {
        Opened::Layout(l) => list_layout(l, subject, types),
        Opened::Registry(r) => list_registry(r, subject, types),
    }
}

/// Attach `artifacts` to the image `target` names. Returns its digest and what was attached.
pub fn attach(
    target: &Target,
    artifacts: &[Artifact],
    opts: &AttachOptions,
    registry: ClientOptions,
    report: &Report,
) -> Result<(Digest, Vec<Attached>)> {
    let (o, subject) = open(target, registry)?;
    let attached = match &o {
        Opened::Layout(l) => attach_layout(l, &subject, artifacts, opts)?,
        Opened::Registry(r) => attach_registry(r, &subject, artifacts, opts, report)?,
    };
    Ok((Digest::from_oci(subject.digest())?, attached))
}

/// The referrers of the image `target` names.
pub fn list(target: &Target, registry: ClientOptions) -> Result<Referrers> {
    let (o, subject) = open(target, registry)?;
    let subject = Digest::from_oci(subject.digest())?;
    Ok(Referrers {
        name: target_name(target),
        referrers: listed(&o, &subject, &[])?,
        subject,
    })
}

/// The document of the referrer of one of `types` (newest by `org.opencontainers.image.created`, else last
/// listed) of the image `target` names; an error naming the image and the types when it has none.
pub fn document(target: &Target, types: &[&str], registry: ClientOptions) -> Result<Document> {
    let (o, subject) = open(target, registry)?;
    let subject = Digest::from_oci(subject.digest())?;
    let all = listed(&o, &subject, types)?;
    let chosen = pick(&all, types).ok_or_else(|| Error::Image {
        what: target_name(target),
        reason: format!(
            "has no referrer of type {} attached to {subject} (kiln build attaches them; `kiln inspect` lists \
             what is attached)",
            types.join(" or ")
        ),
    })?;
    let md = Digest::from_oci(chosen.digest())?;
    let mbytes = match &o {
        Opened::Layout(l) => l.read_blob(&md)?,
        Opened::Registry(r) => r.get_manifest(&md.to_string())?.bytes,
    };
    let m: ImageManifest = serde_json::from_slice(&mbytes).map_err(|e| Error::Image {
        what: format!("referrer {md} of {}", target_name(target)),
        reason: e.to_string(),
    })?;
    let layer = m.layers().first().ok_or_else(|| Error::Image {
        what: format!("referrer {md} of {}", target_name(target)),
        reason: "has no layer (no document)".into(),
    })?;
    let ld = Digest::from_oci(layer.digest())?;
    if layer.size() > MAX_DOCUMENT {
        return Err(Error::Image {
            what: format!("referrer {md} of {}", target_name(target)),
            reason: format!(
                "its document is {} bytes, more than kiln reads ({MAX_DOCUMENT})",
                layer.size()
            ),
        });
    }
    let bytes = match &o {
        Opened::Layout(l) => {
            let size = std::fs::metadata(l.blob_path(&ld))
                .map_err(|e| Error::io(l.blob_path(&ld), e))?
                .len();
            if size != layer.size() {
                return Err(Error::layout(
                    l.path(),
                    format!(
                        "blob {ld} is {size} bytes, its descriptor says {}",
                        layer.size()
                    ),
                ));
            }
            l.read_blob(&ld)?
        }
        Opened::Registry(r) => {
            let mut buf = Vec::new();
            r.get_blob(&ld, layer.size(), &mut buf)?;
            buf
        }
    };
    Ok(Document {
        subject,
        referrer: chosen.clone(),
        media_type: layer.media_type().to_string(),
        bytes,
    })
}

fn target_name(t: &Target) -> String {
    match t {
        Target::Layout(r) => r.to_string(),
        Target::Registry(r) => r.to_string(),
        Target::DockerArchive { path, .. } => path.display().to_string(),
    }
}
