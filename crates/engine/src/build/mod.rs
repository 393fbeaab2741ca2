//! `kiln build`: walk → layers → config + manifest → layout → (registry) → tags → output.
//!
//! A layout target receives the blobs directly. A registry target builds into the local cache layout (so an
//! unchanged blob is never recompressed into a new file, and base blobs are fetched once), then pushes.

mod archive;
mod early;
mod parts;
mod plan;
mod txn;
mod walking;

pub use plan::{BuildPlan, LayerSource, created_by};
use txn::Txn;

use std::collections::HashSet;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::attest;
use crate::base::LoadedBase;
use crate::cache::{CacheLock, LayerCache};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{self, Json, LayerRecord, PlatformSpec, Root};
use crate::layer::LayerOptions;
use crate::publish::Published;
use crate::publish::known_layers::KnownLayers;
use crate::publish::remote;
use crate::publish::tagging::{self, LayoutTags};
use crate::registry::{Client, LayerStreams};
use crate::split::{self};
use crate::store::Layout;
use crate::target::{LayoutRef, Target};
use crate::walk;
use early::{Early, Finished};
use parts::{Part, build_parts};
use walking::{PlatformJob, walk_all};

/// One platform's build: the image (or why not) and the blobs it added.
type JobResult = (
    Result<(Json<ImageManifest>, Json<ImageConfiguration>)>,
    Vec<Digest>,
);

/// A built image: its platform, manifest and config.
type BuiltImage = (PlatformSpec, Json<ImageManifest>, Json<ImageConfiguration>);

/// Build `plan`'s image and publish it to its target.
pub fn run(plan: &BuildPlan, report: &Report) -> Result<Published> {
    archive::precheck(plan)?;
    // Held while the cache directory is in use (the layer cache, or the cache layout a registry build writes to),
    // so no other build prunes it meanwhile; pruned, when due, after a successful build.
    let uses_cache = !plan.no_cache || !matches!(plan.target, Target::Layout(_));
    let lock = uses_cache.then(|| CacheLock::shared(&plan.cache)).flatten();
    let published = build_and_publish(plan, report)?;
    if let Some(lock) = lock {
        let removed = lock.release_and_prune(&plan.cache, plan.cache_max_age);
        if removed > 0 {
            report.debug(format_args!(
                "cache {}: removed {removed} entries unused for {} days",
                plan.cache.display(),
                plan.cache_max_age
            ));
        }
    }
    Ok(published)
}

fn build_and_publish(plan: &BuildPlan, report: &Report) -> Result<Published> {
    let client = std::cell::OnceCell::new();
    let client = || -> Result<Client> {
        if let Some(c) = client.get() {
            return Ok(Client::clone(c));
        }
        let c = Client::new(plan.registry.clone())?;
        Ok(client.get_or_init(|| c).clone())
    };
    let reference = match &plan.target {
        Target::Registry(r) => Some(r.clone()),
        _ => None,
    };
    let repo = reference
        .as_ref()
        .map(|r| Ok::<_, Error>(client()?.repository(r)))
        .transpose()?;
    // Everything that can be checked without writing is checked first: a bad base or input changes nothing. The
    // registry's answers (its tags) are awaited while the build output is walked.
    let (jobs, early) = std::thread::scope(|s| {
        let check = repo
            .as_ref()
            .zip(reference.as_ref())
            .map(|(repo, r)| s.spawn(move || Early::check(repo, r, plan)));
        let jobs = walk_all(plan, &client, report);
        let early = check.map(|h| h.join().expect("the registry check panicked"));
        (jobs, early)
    });
    let jobs = jobs?;
    let (prepared, known, early) = match early.transpose()? {
        Some((p, k, e)) => (Some(p), k, e),
        None => (None, KnownLayers::none(), None),
    };
    let layout_path = match &plan.target {
        Target::Layout(l) => l.path.clone(),
        Target::Registry(_) | Target::DockerArchive { .. } => plan.cache.join("layout"),
    };
    let (layout, created) = Layout::open_or_create(&layout_path)?;
    let collected = attest::Collected::default();
    let before = match plan.target {
        Target::Layout(_) => layout.blob_names()?,
        _ => HashSet::new(),
    };
    let mut txn = Txn {
        layout: &layout,
        new_blobs: Vec::new(),
        before: &before,
        streams: None,
        known: &known,
        collected: &collected,
    };
    // Blobs go up while the image is built when the publish cannot be refused (commands::early). A layer may
    // even be uploaded while it is compressed (registry::stream); its uploader waits for that upload and pushes
    // the file only if it failed. A streamed layer's digest is unknown until it is complete, so it cannot be
    // HEAD-skipped: into a repository that has images only a layer known to have changed since its last build is
    // streamed, as an unchanged one rebuilt by a runner without a cache (split layers make that common) would go
    // up again.
    let streams = match (&repo, early) {
        (Some(repo), Some(Early { empty })) => Some(LayerStreams::new(repo.clone(), empty)),
        _ => None,
    };
    txn.streams = streams.as_ref();
    let to = repo
        .as_ref()
        .zip(early)
        .map(|(repo, e)| early::Destination {
            repo,
            layout: &layout,
            streams: streams.as_ref(),
            skip_head: e.empty,
        });
    let (built, pushed_early) = early::with_uploads(to, plan.registry.max_parallel, report, |f| {
        build_all(&mut txn, &jobs, f, report)
    });
    for why in known.skipped() {
        report.debug(format_args!("registry layers not read from {why}"));
    }
    let result = built.and_then(|(root, images)| {
        let listed: Vec<(PlatformSpec, &Json<ImageManifest>)> =
            images.iter().map(|(p, m, _)| (p.clone(), m)).collect();
        let attest = attest_for(plan, &images, &jobs, &collected);
        let attach = |root: &Root| -> Result<()> {
            let dest = match (&plan.target, &repo) {
                (Target::Registry(_), Some(repo)) => attest::Dest::Registry(repo),
                (Target::Layout(_), _) => attest::Dest::Layout(&layout),
                _ => attest::Dest::None,
            };
            match &attest {
                Some(a) => a.run(root, dest, report).map(|_| ()),
                None => Ok(()),
            }
        };
        // Published is published: documents that fail to attach are an error of their own, after the match
        // below, never a reason to roll the layout back.
        let after = |p: Published| Ok((attach(&root).err(), p));
        match (&plan.target, &reference) {
            (Target::Layout(dest), _) => {
                publish_layout(&layout, dest, &root, &listed, plan, report).and_then(after)
            }
            (Target::DockerArchive { .. }, _) => match (images.as_slice(), jobs.as_slice()) {
                ([(_, manifest, config)], [job]) => {
                    archive::publish(&layout, job.base.as_ref(), manifest, config, plan, report)
                        .and_then(after)
                }
                _ => Err(Error::Usage(
                    "a docker-archive holds one platform's image: give a single --platform".into(),
                )),
            },
            (_, Some(r)) => {
                let repo = repo.as_ref().expect("a registry target has a repository");
                let with_bases: Vec<remote::PlatformImage<'_>> = images
                    .iter()
                    .zip(&jobs)
                    .map(|((p, m, _), j)| (p.clone(), m, j.base.as_ref()))
                    .collect();
                std::thread::scope(|s| {
                    // The documents are written (files hashed, nothing sent) while the publish checks its tags;
                    // the publish attaches them once nothing can refuse it (`remote::PublishCtx::attach`).
                    let dest = attest::Dest::Registry(repo);
                    let writing = attest.as_ref().map(|a| {
                        s.spawn(|| a.documents(&root, &attest::Dest::Registry(repo), report))
                    });
                    let writing = std::sync::Mutex::new(writing);
                    let attach_written = |_: &Root| -> Result<()> {
                        let planned = writing.lock().expect("documents").take();
                        match (planned, &attest) {
                            (Some(h), Some(a)) => {
                                let planned = h.join().expect("writing the documents panicked")?;
                                a.attach(planned, &dest, report).map(|_| ())
                            }
                            _ => Ok(()),
                        }
                    };
                    let ctx = remote::PublishCtx {
                        repo,
                        reference: r,
                        layout: &layout,
                        base: None,
                        request: &plan.tagging,
                        build_dir: &plan.layers[0].src,
                        pushed_early: &pushed_early,
                        prepared: prepared.as_ref(),
                        known: &known.blobs(),
                        attach: attest.is_some().then_some(&attach_written as _),
                    };
                    remote::publish_root(&ctx, &root, &with_bases, report).map(|p| (None, p))
                })
            }
            _ => unreachable!("a registry target always has a reference"),
        }
    });
    match result {
        Ok((None, p)) => Ok(p),
        Ok((Some(e), p)) => Err(attest::attach_failed(p.deploy_reference(), e)),
        Err(e) => {
            // The cache layout keeps what was built (it is only a cache); a target layout is restored, and one
            // this build created is removed unless another publisher has meanwhile published into it.
            if matches!(plan.target, Target::Layout(_)) {
                txn.rollback();
                if created {
                    layout.remove_if_unused();
                }
            }
            Err(e)
        }
    }
}

/// Build every platform's image (in parallel when there are several) and what tags will point at: the single
/// manifest, or an index over all of them (stored in the layout too).
fn build_all(
    txn: &mut Txn<'_>,
    jobs: &[PlatformJob],
    early: Option<&Finished>,
    report: &Report,
) -> Result<(Root, Vec<BuiltImage>)> {
    let (layout, proto) = (txn.layout, txn.fork());
    // Each platform tracks the blobs it adds, merged below so a failure anywhere rolls all of them back.
    let build_one = |job: &PlatformJob| -> JobResult {
        let mut t = proto.fork();
        let r = write_image(
            &mut t,
            &job.plan,
            job.base.as_ref(),
            &job.walked,
            early,
            report,
        );
        (r, t.new_blobs)
    };
    let results: Vec<JobResult> = if let [job] = jobs {
        vec![build_one(job)]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs.iter().map(|j| s.spawn(|| build_one(j))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("a platform build panicked"))
                .collect()
        })
    };
    let mut images = Vec::with_capacity(results.len());
    let mut first_err = None;
    for (r, blobs) in results {
        txn.new_blobs.extend(blobs);
        match r {
            Ok((m, c)) => images.push((PlatformSpec::of_config(&c.value), m, c)),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let root = match images.as_slice() {
        [(p, m, _)] => Root::manifest(m, p.clone()),
        _ => {
            let listed: Vec<(PlatformSpec, &Json<ImageManifest>)> =
                images.iter().map(|(p, m, _)| (p.clone(), m)).collect();
            let index = image::build_index(&listed, jobs[0].plan.config.created)?;
            let added = !layout.has_blob(&index.digest);
            layout.put_bytes(&index.bytes, &index.digest)?;
            txn.track(added, &index.digest);
            Root::index(&index)
        }
    };
    Ok((root, images))
}

fn write_image(
    txn: &mut Txn<'_>,
    plan: &BuildPlan,
    base: Option<&LoadedBase>,
    walked: &[Vec<walk::Entry>],
    early: Option<&Finished>,
    report: &Report,
) -> Result<(Json<ImageManifest>, Json<ImageConfiguration>)> {
    let layout = txn.layout;
    // A layout target gets a self-contained image: the base's blobs are copied in. A registry target fetches
    // them only if it cannot mount them (remote::push_image).
    if let (Some(b), Target::Layout(_)) = (base, &plan.target) {
        for d in b.layer_digests()? {
            let added = b.ensure_blob(layout, &d)?;
            txn.track(added, &d);
        }
    }
    let cache = (!plan.no_cache).then(|| LayerCache::new(plan.cache.join(LAYER_CACHE_DIR)));
    // Every source's parts first: the layer count is checked before anything is compressed.
    let mut sources = Vec::with_capacity(plan.layers.len());
    for (src, entries) in plan.layers.iter().zip(walked) {
        let entries = with_mode(entries, src.mode);
        let ranges = split::parts(&entries, plan.split);
        sources.push((src, entries, ranges));
    }
    let base_layers = base.map_or(0, |b| b.base.manifest.value.layers().len());
    split::check_layer_count(base_layers + sources.iter().map(|s| s.2.len()).sum::<usize>())?;
    let mut parts = Vec::new();
    for (src, entries, ranges) in &sources {
        let (uid, gid) = src.chown.unwrap_or((plan.uid, plan.gid));
        let opts = LayerOptions {
            mtime: plan.config.created,
            uid,
            gid,
            compression: plan.compression,
            // The SBOM lists every file's digests: taken from the bytes read for the tar.
            file_digests: plan.attest.sbom.is_some(),
        };
        let count = ranges.len();
        for (i, range) in ranges.iter().enumerate() {
            let (label, created_by) = match count {
                1 => (src.src.display().to_string(), src.created_by.clone()),
                _ => (
                    format!("{} (part {}/{count})", src.src.display(), i + 1),
                    format!("{} [part {}/{count}]", src.created_by, i + 1),
                ),
            };
            parts.push(Part {
                entries: &entries[range.clone()],
                label,
                created_by,
                opts: opts.clone(),
            });
        }
    }
    let layers = build_parts(txn, plan, cache.as_ref(), &parts, early, report)?;
    let records: Vec<LayerRecord> = parts
        .iter()
        .zip(layers)
        .map(|(part, layer)| LayerRecord {
            digest: layer.digest,
            size: layer.size,
            media_type: plan.compression.media_type(),
            diff_id: layer.diff_id,
            created_by: part.created_by.clone(),
            encoding: plan.compression.encoding(),
        })
        .collect();
    let config = image::build_config(base.map(|b| &b.base.config.value), &plan.config, &records)?;
    let manifest = image::build_manifest(base.map(|b| &b.base), &config, &records, &plan.config)?;
    for (bytes, digest) in [
        (&config.bytes, &config.digest),
        (&manifest.bytes, &manifest.digest),
    ] {
        let added = !layout.has_blob(digest);
        layout.put_bytes(bytes, digest)?;
        txn.track(added, digest);
    }
    // The config goes up with the layers (it is complete once the last one is): the publish is left with only
    // the manifest to send.
    if let Some(tx) = early {
        tx.config(&config.digest, config.bytes.len() as u64);
    }
    Ok((manifest, config))
}

/// What writes and attaches the image's SBOM and provenance, unless neither is asked for.
fn attest_for<'a>(
    plan: &'a BuildPlan,
    images: &'a [BuiltImage],
    jobs: &'a [PlatformJob],
    collected: &'a attest::Collected,
) -> Option<attest::Attest<'a>> {
    let req = &plan.attest;
    if !req.any() {
        return None;
    }
    let name = match &plan.target {
        Target::Registry(r) => r.name(),
        Target::Layout(l) => format!("oci:{}", l.path.display()),
        Target::DockerArchive { path, .. } => path.display().to_string(),
    };
    Some(attest::Attest {
        request: req,
        name,
        images: images
            .iter()
            .zip(jobs)
            .map(|((p, m, _), j)| attest::PlatformInputs {
                platform: p.clone(),
                manifest: m,
                sources: j.walked.iter().map(Vec::as_slice).collect(),
                base: j.base.as_ref(),
            })
            .collect(),
        created: plan.config.created,
        cache: (!plan.no_cache).then(|| plan.cache.join(LAYER_CACHE_DIR)),
        settle: plan.tagging.policy.settle,
        build_dir: &plan.layers[0].src,
        parameters: plan.parameters(),
        collected,
    })
}

/// Where layer-cache records live in the cache directory (beside `layout/`, the cache layout).
const LAYER_CACHE_DIR: &str = "layers";

/// A layer's `mode`: the permission bits of its regular files (hardlinks share them); directories and symlinks
/// keep theirs.
fn with_mode(entries: &[walk::Entry], mode: Option<u32>) -> std::borrow::Cow<'_, [walk::Entry]> {
    let Some(mode) = mode else {
        return std::borrow::Cow::Borrowed(entries);
    };
    let mut owned = entries.to_vec();
    for e in &mut owned {
        if matches!(
            e.kind,
            walk::EntryKind::File { .. } | walk::EntryKind::Hardlink { .. }
        ) {
            e.mode = mode;
        }
    }
    std::borrow::Cow::Owned(owned)
}

/// Choose and write the tags (version first), all checked before any is written.
pub(crate) fn publish_layout(
    layout: &Layout,
    dest: &LayoutRef,
    root: &Root,
    images: &[(PlatformSpec, &Json<ImageManifest>)],
    plan: &BuildPlan,
    report: &Report,
) -> Result<Published> {
    let repo = LayoutRef {
        tag: None,
        digest: None,
        ..dest.clone()
    }
    .to_string();
    let mut req = plan.tagging.clone();
    req.add_target_tag(dest.tag.as_ref());
    // One lock-protected write per tag is atomic in a layout: no settle delay is needed to detect a race.
    req.policy.settle = std::time::Duration::ZERO;
    // And a lost version always means another publisher won one: keep going however many publish at once.
    req.policy.max_race_retries = req.policy.max_race_retries.max(1000);
    let target = LayoutTags {
        layout,
        display: repo.clone(),
        root,
        policy: &req.policy,
    };
    let prepared = tagging::prepare(&target, &req, &plan.layers[0].src)?;
    let tagged = tagging::publish_tags(&target, &root.digest, &req, &prepared, &mut || Ok(()))?;
    if tagged.tags.is_empty() {
        let lock = layout.lock()?;
        layout.set_tag(&lock, None, root)?;
    }
    tagging::report_tags(report, &tagged);
    Ok(Published::new(repo, &tagged, root, images))
}
