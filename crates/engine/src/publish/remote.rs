//! Publishing to a registry: blobs (HEAD skip, mount, streamed upload, in parallel), then the manifest by digest,
//! then tags through the same policy as a layout (`tagging::publish_tags`).

use std::sync::Mutex;

use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageManifest, MediaType};

use super::policy::{TagTarget, WriteOutcome};
use super::published::Published;
use super::tagging::{self, Prepared, TagRequest};
use crate::base::{BaseSource, LoadedBase};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{Json, PlatformSpec, Root};
use crate::reference::Reference;
use crate::registry::{BlobItem, BlobOutcome, RawManifest, Repository};
use crate::store::Layout;
use crate::tag::Tag;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// What a push did, for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct PushStats {
    pub uploaded: usize,
    pub uploaded_bytes: u64,
    pub existing: usize,
    pub mounted: usize,
}

impl PushStats {
    fn add(&mut self, o: PushStats) {
        self.uploaded += o.uploaded;
        self.uploaded_bytes += o.uploaded_bytes;
        self.existing += o.existing;
        self.mounted += o.mounted;
    }
}

/// Push every blob of `manifest` (found in `layout`, or mounted/fetched from `base`). True when the manifest itself
/// is already in the repository (then nothing was sent); the caller stores it otherwise.
pub fn push_image(
    repo: &Repository,
    layout: &Layout,
    manifest: &Json<ImageManifest>,
    base: Option<&LoadedBase>,
    pushed_early: &[(Digest, u64)],
    known: &[Digest],
    report: &Report,
) -> Result<(PushStats, bool)> {
    // The manifest already in the repository (an unchanged rebuild): the registry accepted it only with all its
    // blobs present (OCI distribution spec, "Pushing Manifests": MANIFEST_BLOB_UNKNOWN; the reference registry
    // and the major ones enforce it), so one HEAD replaces a HEAD per blob and the manifest PUT. Only a shortcut:
    // if the HEAD fails, the push below proceeds (and reports what really fails). Not asked when one of its blobs
    // was just uploaded: the registry lacked that blob, so it cannot have held the manifest.
    let blobs = manifest_blobs(&manifest.value)?;
    let uploaded_one = blobs
        .iter()
        .any(|d| pushed_early.iter().any(|(p, _)| p == d));
    if !uploaded_one
        && let Ok(Some((d, _, _))) = repo.head_manifest(&manifest.digest.to_string())
        && d == manifest.digest
    {
        let blobs = blobs.len();
        let early: u64 = pushed_early.iter().map(|p| p.1).sum();
        report.step(format_args!(
            "manifest {} already in {}: its {blobs} blobs are there",
            manifest.digest.short(),
            repo.name()
        ));
        let stats = PushStats {
            uploaded: pushed_early.len(),
            uploaded_bytes: early,
            existing: blobs.saturating_sub(pushed_early.len()),
            mounted: 0,
        };
        return Ok((stats, true));
    }
    let stats = Mutex::new(PushStats::default());
    // Blobs settled already: pushed during the build, or base layers mounted (or found present) below.
    let mut settled: Vec<Digest> = Vec::new();
    for (d, size) in pushed_early {
        let mut s = stats.lock().expect("stats");
        s.uploaded += 1;
        s.uploaded_bytes += size;
        settled.push(d.clone());
    }
    if let Some(b) = base {
        let same_registry = match &b.source {
            BaseSource::Registry { repo: from, .. } => {
                Some(from).filter(|f| f.registry() == repo.registry())
            }
            BaseSource::Layout(_) => None,
        };
        let ours: Vec<Digest> = manifest
            .value
            .layers()
            .iter()
            .map(|l| Digest::from_oci(l.digest()))
            .collect::<Result<_>>()?;
        // Only the base layers this image still uses (a base tag may have moved since it was built).
        for d in b.layer_digests()?.into_iter().filter(|d| ours.contains(d)) {
            // Same registry: mount instead of fetching; what cannot be mounted is fetched and uploaded.
            if let Some(from) = same_registry {
                if repo.blob_exists(&d)?.is_some() {
                    stats.lock().expect("stats").existing += 1;
                    report.step(format_args!("blob {} exists, skipped", d.short()));
                    settled.push(d);
                    continue;
                }
                if from.name() != repo.name() && repo.mount_blob(&d, from.name())? {
                    stats.lock().expect("stats").mounted += 1;
                    report.step(format_args!(
                        "blob {} mounted from {}",
                        d.short(),
                        from.name()
                    ));
                    settled.push(d);
                    continue;
                }
            }
            b.ensure_blob(layout, &d)?;
        }
    }
    let m = &manifest.value;
    let mut items: Vec<BlobItem> = Vec::new();
    for desc in std::iter::once(m.config()).chain(m.layers().iter()) {
        let d = Digest::from_oci(desc.digest())?;
        if known.contains(&d) && !settled.contains(&d) {
            stats.lock().expect("stats").existing += 1;
            report.step(format_args!(
                "blob {} exists (in the tag's image), skipped",
                d.short()
            ));
            settled.push(d);
            continue;
        }
        if !settled.contains(&d) && !items.iter().any(|i| i.0 == d) {
            items.push((d.clone(), desc.size(), layout.blob_path(&d), None));
        }
    }
    // Live: one bar over every blob's bytes (bytes read by uploads, whole blobs found or mounted).
    let total: u64 = items.iter().map(|i| i.1).sum();
    let bar = report.bytes(
        || {
            format!(
                "pushing {} blob{} to {}",
                items.len(),
                if items.len() == 1 { "" } else { "s" },
                repo.name()
            )
        },
        total,
    );
    let bar = &bar;
    let positions: Mutex<(u64, std::collections::HashMap<Digest, u64>)> = Mutex::default();
    let positions = std::sync::Arc::new(positions);
    let sizes: std::collections::HashMap<Digest, u64> =
        items.iter().map(|i| (i.0.clone(), i.1)).collect();
    let upload_repo = if bar.is_live() {
        let (pos, live) = (positions.clone(), bar.handle());
        repo.clone()
            .with_upload_progress(std::sync::Arc::new(move |d: &Digest, at: u64| {
                let mut p = pos.lock().expect("positions");
                p.1.insert(d.clone(), at);
                let now = p.0 + p.1.values().sum::<u64>();
                live.set_position(now);
            }))
    } else {
        repo.clone()
    };
    let progress = |d: &Digest, o: &BlobOutcome| {
        {
            let mut p = positions.lock().expect("positions");
            p.1.remove(d);
            p.0 += sizes.get(d).copied().unwrap_or(0);
            bar.set_position(p.0 + p.1.values().sum::<u64>());
        }
        let mut s = stats.lock().expect("stats");
        match o {
            BlobOutcome::Exists => {
                s.existing += 1;
                report.step(format_args!("blob {} exists, skipped", d.short()));
            }
            BlobOutcome::Mounted { from } => {
                s.mounted += 1;
                report.step(format_args!("blob {} mounted from {from}", d.short()));
            }
            BlobOutcome::Uploaded { bytes } => {
                s.uploaded += 1;
                s.uploaded_bytes += bytes;
                report.step(format_args!(
                    "blob {} uploaded ({})",
                    d.short(),
                    crate::events::human_bytes(*bytes)
                ));
            }
        }
    };
    upload_repo.push_blobs(items, Some(&progress))?;
    bar.finish();
    Ok((stats.into_inner().expect("stats"), false))
}

/// `PUT` a manifest (or index) by its digest, and check the registry stored it under that digest.
fn put_by_digest(repo: &Repository, bytes: &[u8], digest: &Digest, media_type: &str) -> Result<()> {
    let got = repo.put_manifest(&digest.to_string(), bytes, media_type)?;
    if got != *digest {
        return Err(Error::Image {
            what: format!("{}/{}", repo.registry(), repo.name()),
            reason: format!("the registry stored manifest {digest} as {got}"),
        });
    }
    Ok(())
}

/// The config and layer digests of an image manifest.
fn manifest_blobs(m: &ImageManifest) -> Result<Vec<Digest>> {
    std::iter::once(m.config())
        .chain(m.layers().iter())
        .map(|d| Digest::from_oci(d.digest()))
        .collect()
}

/// What publishing one image to a registry needs.
pub struct PublishCtx<'a> {
    pub repo: &'a Repository,
    pub reference: &'a Reference,
    /// Where the image's blobs are (the cache layout, or the layout `kiln push` reads).
    pub layout: &'a Layout,
    pub base: Option<&'a LoadedBase>,
    pub request: &'a TagRequest,
    /// For git versions and `{git_sha}`.
    pub build_dir: &'a Path,
    /// Blobs already pushed while the image was being built (digest, size): counted as uploaded, not sent again.
    pub pushed_early: &'a [(Digest, u64)],
    /// What the publish starts from, when the build read it already (its one tag listing).
    pub prepared: Option<&'a Prepared>,
}

/// Check every tag, push blobs and the manifest, then write the tags; print nothing, return the result.
pub fn publish(
    ctx: &PublishCtx<'_>,
    manifest: &Json<ImageManifest>,
    config: &Json<ImageConfiguration>,
    report: &Report,
) -> Result<Published> {
    let platform = PlatformSpec::of_config(&config.value);
    let root = Root::manifest(manifest, platform.clone());
    publish_root(ctx, &root, &[(platform, manifest, ctx.base)], report)
}

/// One platform's image in a publish: its manifest and the base it was built on.
pub type PlatformImage<'a> = (
    PlatformSpec,
    &'a Json<ImageManifest>,
    Option<&'a LoadedBase>,
);

/// Publish `root` — one image's manifest, or an index over `images` — with its tags: every tag is checked, then
/// each image's blobs and manifest are pushed (by digest), then `root` (for an index), then the tags.
pub fn publish_root(
    ctx: &PublishCtx<'_>,
    root: &Root,
    images: &[PlatformImage<'_>],
    report: &Report,
) -> Result<Published> {
    let mut req = ctx.request.clone();
    req.add_target_tag(ctx.reference.tag.as_ref());
    // With a tag to publish, the root is stored by the tag's own PUT (the same bytes): a publish ends with each of
    // its tags written or already pointing at the root, so a PUT by digest first would only store it twice.
    let tagged_root = req.scheme.is_some() || !req.templates.is_empty();
    let target = RegistryTags::new(ctx.repo, ctx.reference, root);
    let mut stats = PushStats::default();
    let own;
    let prepared = match ctx.prepared {
        Some(p) => p,
        None => {
            own = tagging::prepare(&target, &req, ctx.build_dir)?;
            &own
        }
    };
    let tagged = tagging::publish_tags(&target, &root.digest, &req, prepared, &mut || {
        let known = target.known_blobs();
        for (_, manifest, base) in images {
            let (s, present) = push_image(
                ctx.repo,
                ctx.layout,
                manifest,
                *base,
                ctx.pushed_early,
                &known,
                report,
            )?;
            stats.add(s);
            let stored_by_tag = tagged_root && manifest.digest == root.digest;
            if !(present || stored_by_tag) {
                put_by_digest(ctx.repo, &manifest.bytes, &manifest.digest, OCI_MANIFEST)?;
            }
        }
        if root.media_type == MediaType::ImageIndex && !tagged_root {
            put_by_digest(
                ctx.repo,
                &root.bytes,
                &root.digest,
                root.media_type.as_ref(),
            )?;
        }
        Ok(())
    })?;
    report.step(format_args!(
        "pushed to {}: {} blobs uploaded ({}), {} already there, {} mounted",
        ctx.reference.name(),
        stats.uploaded,
        crate::events::human_bytes(stats.uploaded_bytes),
        stats.existing,
        stats.mounted
    ));
    report.record(|s| {
        s.pushed_to = Some(ctx.reference.name());
        s.uploaded += stats.uploaded;
        s.uploaded_bytes += stats.uploaded_bytes;
        s.existing += stats.existing;
        s.mounted += stats.mounted;
    });
    tagging::report_tags(report, &tagged);
    let listed: Vec<(PlatformSpec, &Json<ImageManifest>)> =
        images.iter().map(|(p, m, _)| (p.clone(), *m)).collect();
    Ok(Published::new(ctx.reference.name(), &tagged, root, &listed))
}

/// A registry repository's tags, read only (`kiln tags`, `kiln next-version`, the early-push check of a build).
/// The tag list is fetched once: every question asked of one probe is answered from the same listing.
pub struct RemoteTags {
    pub repo: Repository,
    pub reference: Reference,
    listed: std::sync::OnceLock<Vec<String>>,
}

impl RemoteTags {
    pub fn new(repo: Repository, reference: Reference) -> Self {
        RemoteTags {
            repo,
            reference,
            listed: std::sync::OnceLock::new(),
        }
    }

    /// Every tag of the repository, including those that are not versions (fetched on first use).
    pub fn raw_tags(&self) -> Result<&[String]> {
        if let Some(t) = self.listed.get() {
            return Ok(t);
        }
        let t = self.repo.list_tags()?;
        Ok(self.listed.get_or_init(|| t))
    }
}

impl TagTarget for RemoteTags {
    fn describe(&self) -> String {
        self.reference.name()
    }

    fn list_tags(&self) -> Result<Vec<Tag>> {
        Ok(parse_tags(self.raw_tags()?.iter().map(String::as_str)))
    }

    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
        resolve_tag(&self.repo, tag)
    }

    fn write_tag(&self, tag: &Tag) -> Result<WriteOutcome> {
        Err(Error::Usage(format!(
            "{}: tag {tag} cannot be written from a read-only listing",
            self.reference.name()
        )))
    }
}

/// What a tag points at now (`HEAD` on the manifest).
fn resolve_tag(repo: &Repository, tag: &Tag) -> Result<Option<Digest>> {
    Ok(repo.head_manifest(tag.as_str())?.map(|(d, _, _)| d))
}

/// Tags that follow the grammar (registries may hold others, e.g. from old tools; they are not versions).
fn list_tags(repo: &Repository) -> Result<Vec<Tag>> {
    Ok(parse_tags(repo.list_tags()?.iter().map(String::as_str)))
}

fn parse_tags<'a>(raw: impl Iterator<Item = &'a str>) -> Vec<Tag> {
    raw.filter_map(|t| t.parse().ok()).collect()
}

/// Tags of a registry repository, written by `PUT /v2/<name>/manifests/<tag>` with the image's exact bytes.
pub struct RegistryTags<'a> {
    pub repo: &'a Repository,
    pub reference: &'a Reference,
    pub root: &'a Root,
    /// The image the target's own tag pointed at when first resolved (`None` inside: the tag was absent).
    tagged: std::sync::OnceLock<Option<RawManifest>>,
    /// The last answer, when, and the client's request count then (see `resolve`).
    last: std::sync::Mutex<Option<Resolved>>,
}

/// A tag's resolution as of a moment.
struct Resolved {
    tag: Tag,
    digest: Option<Digest>,
    at: std::time::Instant,
    requests: u64,
}

/// How long an answer stays as good as a new one if nothing was sent meanwhile: far longer than building a
/// manifest, far shorter than anything that could let a check go stale unnoticed.
const FRESH: std::time::Duration = std::time::Duration::from_millis(500);

impl<'a> RegistryTags<'a> {
    pub fn new(repo: &'a Repository, reference: &'a Reference, root: &'a Root) -> Self {
        RegistryTags {
            repo,
            reference,
            root,
            tagged: std::sync::OnceLock::new(),
            last: std::sync::Mutex::new(None),
        }
    }

    /// The blobs of the image the target tag pointed at, which the repository therefore holds (a registry accepts
    /// a manifest only with its blobs): a rebuild pushed to the same tag skips a `HEAD` for each layer it kept.
    /// Empty when the reference has no tag, the tag was absent or names an index.
    fn known_blobs(&self) -> Vec<Digest> {
        let Some(Some(raw)) = self.tagged.get() else {
            return Vec::new();
        };
        serde_json::from_slice::<ImageManifest>(&raw.bytes)
            .ok()
            .and_then(|m| manifest_blobs(&m).ok())
            .unwrap_or_default()
    }
}

impl TagTarget for RegistryTags<'_> {
    fn describe(&self) -> String {
        self.reference.name()
    }

    fn list_tags(&self) -> Result<Vec<Tag>> {
        list_tags(self.repo)
    }

    fn resolve(&self, tag: &Tag) -> Result<Option<Digest>> {
        // Asked again with nothing sent since (the check before the push, then the one before the write, when the
        // push had nothing left to send): the answer of a moment ago is all a new request could tell — the same
        // registry state, a round trip older. Used once; every later check asks the registry.
        let sent = self.repo.request_count();
        if let Some(r) = self.last.lock().expect("last resolution").take()
            && r.tag == *tag
            && r.requests == sent
            && r.at.elapsed() < FRESH
        {
            return Ok(r.digest);
        }
        // The first look at the target's own tag is a GET, as much work for the registry as a HEAD, and its body
        // tells which blobs are there (`known_blobs`). Later looks are HEADs.
        let digest = if self.reference.tag.as_ref() == Some(tag) && self.tagged.get().is_none() {
            let found = self.repo.find_manifest(tag.as_str())?;
            let digest = found.as_ref().map(|m| m.digest.clone());
            let _ = self.tagged.set(found);
            digest
        } else {
            resolve_tag(self.repo, tag)?
        };
        *self.last.lock().expect("last resolution") = Some(Resolved {
            tag: tag.clone(),
            digest: digest.clone(),
            at: std::time::Instant::now(),
            requests: self.repo.request_count(),
        });
        Ok(digest)
    }

    fn write_tag(&self, tag: &Tag) -> Result<WriteOutcome> {
        match self.repo.put_manifest(
            tag.as_str(),
            &self.root.bytes,
            self.root.media_type.as_ref(),
        ) {
            Ok(_) => Ok(WriteOutcome::Written),
            Err(e) if is_immutable_refusal(&e) => Ok(WriteOutcome::Refused),
            Err(e) => Err(e),
        }
    }
}

/// Registries with tag immutability answer an overwrite with an error, not a silent move: ECR `TAG_INVALID`
/// ("tag … already exists … immutable"), Harbor 412 `PRECONDITION`, Artifact Registry 400/409 mentioning
/// immutable tags, distribution forks with `MANIFEST_TAGGED`/`DENIED`. All mean "taken".
fn is_immutable_refusal(e: &Error) -> bool {
    match e {
        Error::Registry {
            status,
            code,
            message,
            ..
        } => {
            let code = code.as_deref().unwrap_or("");
            let msg = message.to_ascii_lowercase();
            matches!(status, Some(409 | 412))
                || matches!(code, "TAG_INVALID" | "MANIFEST_TAGGED")
                || (msg.contains("immutable") && matches!(status, Some(400 | 403)))
        }
        Error::Context { source, .. } => is_immutable_refusal(source),
        _ => false,
    }
}
