//! Publishing to a registry: blobs (HEAD skip, mount, streamed upload, in parallel), then the manifest by digest,
//! then tags through the same policy as a layout (`tagging::publish_tags`).

use std::sync::Mutex;

use std::path::Path;

use oci_spec::image::{ImageConfiguration, ImageManifest, MediaType};

use super::published::Published;
use super::registry_tags::{RegistryTags, manifest_blobs};
use super::tagging::{self, Prepared, TagRequest};
use crate::base::{BaseSource, LoadedBase};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{Json, PlatformSpec, Root};
use crate::reference::Reference;
use crate::registry::{BlobItem, BlobOutcome, Repository};
use crate::store::Layout;

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
                "blob {} exists (an image in the repository lists it), skipped",
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

/// Attaches a published root's referrers (`attest`).
pub type Attach<'a> = dyn Fn(&Root) -> Result<()> + Sync + 'a;

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
    /// Blobs the repository's images list (`known_layers`): the layers a build took from the registry are among
    /// them, and none of them is sent.
    pub known: &'a [Digest],
    /// Attach the image's SBOM and provenance (`attest`). Run once the image's blobs and manifests are pushed,
    /// beside the tag writes: a new version's read-back wait (`policy::settle_time`) covers it.
    pub attach: Option<&'a Attach<'a>>,
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
    let (tagged, attached) = std::thread::scope(|s| {
        let mut attaching = None;
        let tagged = tagging::publish_tags(&target, &root.digest, &req, prepared, &mut || {
            // Every tag is checked by now (nothing refuses the publish but a failure). A registry accepts a
            // manifest whose subject it does not hold yet (distribution spec 1.1, "Pushing Manifests with
            // Subject"), so the documents are written and attached while the blobs go up and the version is
            // claimed: their referrers tag's read-back wait overlaps the push and the version's own.
            if let (Some(a), None) = (ctx.attach, &attaching) {
                attaching = Some(s.spawn(move || a(root)));
            }
            let mut known = target.known_blobs();
            known.extend(ctx.known.iter().cloned());
            for (_, manifest, base) in images {
                let (st, present) = push_image(
                    ctx.repo,
                    ctx.layout,
                    manifest,
                    *base,
                    ctx.pushed_early,
                    &known,
                    report,
                )?;
                stats.add(st);
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
        });
        let attached = attaching.map(|h| h.join().expect("attaching referrers panicked"));
        (tagged, attached)
    });
    let tagged = tagged?;
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
    let published = Published::new(ctx.reference.name(), &tagged, root, &listed);
    if let Some(Err(e)) = attached {
        return Err(crate::attest::attach_failed(
            published.deploy_reference(),
            e,
        ));
    }
    Ok(published)
}
