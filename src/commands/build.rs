//! `kiln build`: walk → layers → config + manifest → layout → (registry) → tags → output.
//!
//! A layout target receives the blobs directly. A registry target builds into the local cache layout (so an
//! unchanged blob is never recompressed into a new file, and base blobs are fetched once), then pushes.

use std::path::PathBuf;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::cache::{self, CachedLayer, LayerCache};
use crate::commands::base::{self, LoadedBase};
use crate::commands::remote;
use crate::commands::tagging::{self, LayoutTags, TagRequest, Tagged};
use crate::digest::{Digest, HashingWriter};
use crate::error::{Result, ResultExt};
use crate::image::{self, ConfigSpec, Json, LayerRecord, PlatformSpec};
use crate::layer::{self, Compression, LayerOptions};
use crate::output::{Published, Reporter};
use crate::reference::Reference;
use crate::registry::{Client, ClientOptions};
use crate::store::Layout;
use crate::target::{LayoutRef, Target};
use crate::walk;

/// Everything `kiln build` was asked to do, validated.
#[derive(Debug, Clone)]
pub struct BuildPlan {
    pub target: Target,
    /// Version scheme, `--tag` templates and the tag policy.
    pub tagging: TagRequest,
    pub base: Option<Target>,
    /// The main layer first, then each `--layer`.
    pub layers: Vec<LayerSource>,
    pub config: ConfigSpec,
    pub compression: Compression,
    pub uid: u64,
    pub gid: u64,
    pub registry: ClientOptions,
    /// The cache directory: `layout/`, the local layout a registry build writes its blobs to before pushing, and
    /// `layers/`, the layer cache.
    pub cache: PathBuf,
    /// Do not reuse cached layers (every layer is compressed again).
    pub no_cache: bool,
}

#[derive(Debug, Clone)]
pub struct LayerSource {
    pub src: PathBuf,
    /// Normalized absolute destination in the image.
    pub dest: String,
    pub created_by: String,
}

pub fn run(plan: &BuildPlan, report: &Reporter) -> Result<Published> {
    let client = std::cell::OnceCell::new();
    let client = || -> Result<Client> {
        if let Some(c) = client.get() {
            return Ok(Client::clone(c));
        }
        let c = Client::new(plan.registry.clone())?;
        Ok(client.get_or_init(|| c).clone())
    };
    // Everything that can be checked without writing is checked first: a bad base or input changes nothing.
    let base = plan
        .base
        .as_ref()
        .map(|b| base::load(b, client, plan.config.platform.as_ref()))
        .transpose()?;
    let mut walked = Vec::with_capacity(plan.layers.len());
    for l in &plan.layers {
        let entries = walk::walk(&l.src, &l.dest)
            .context(|| format!("reading build output {}", l.src.display()))?;
        report.step(format_args!(
            "walked {} ({} entries)",
            l.src.display(),
            entries.len()
        ));
        walked.push(entries);
    }
    let (layout_path, reference) = match &plan.target {
        Target::Layout(l) => (l.path.clone(), None),
        Target::Registry(r) => (plan.cache.join("layout"), Some(r.parse::<Reference>()?)),
        Target::DockerArchive { .. } => (plan.cache.join("layout"), None),
    };
    let (layout, created) = Layout::open_or_create(&layout_path)?;
    let mut txn = Txn {
        layout: &layout,
        new_blobs: Vec::new(),
    };
    let result = write_image(&mut txn, plan, base.as_ref(), &walked, report).and_then(
        |(manifest, config)| match (&plan.target, &reference) {
            (Target::Layout(dest), _) => {
                publish_layout(&layout, dest, &manifest, &config, plan, report)
            }
            (Target::DockerArchive { .. }, _) => crate::commands::archive::publish(
                &layout,
                base.as_ref(),
                &manifest,
                &config,
                plan,
                report,
            ),
            (_, Some(r)) => {
                let repo = client()?.repository(r);
                let ctx = remote::PublishCtx {
                    repo: &repo,
                    reference: r,
                    layout: &layout,
                    base: base.as_ref(),
                    request: &plan.tagging,
                    build_dir: &plan.layers[0].src,
                };
                remote::publish(&ctx, &manifest, &config, report)
            }
            _ => unreachable!("a registry target always has a reference"),
        },
    );
    match result {
        Ok(p) => Ok(p),
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

/// Blobs this build added, removed again if it fails so the layout is left as it was.
struct Txn<'a> {
    layout: &'a Layout,
    new_blobs: Vec<Digest>,
}

impl Txn<'_> {
    fn track(&mut self, added: bool, d: &Digest) {
        if added {
            self.new_blobs.push(d.clone());
        }
    }

    fn rollback(&self) {
        for d in &self.new_blobs {
            let _ = std::fs::remove_file(self.layout.blob_path(d));
        }
    }
}

fn write_image(
    txn: &mut Txn<'_>,
    plan: &BuildPlan,
    base: Option<&LoadedBase>,
    walked: &[Vec<walk::Entry>],
    report: &Reporter,
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
    let opts = LayerOptions {
        mtime: plan.config.created,
        uid: plan.uid,
        gid: plan.gid,
        compression: plan.compression,
    };
    let cache = (!plan.no_cache).then(|| LayerCache::new(plan.cache.join(LAYER_CACHE_DIR)));
    let mut records = Vec::new();
    for (src, entries) in plan.layers.iter().zip(walked) {
        let key = LayerCache::key(entries, &opts);
        let hit = cache.as_ref().and_then(|c| c.get(&key));
        let layer = match hit.filter(|h| reuse_blob(txn, &plan.cache, h)) {
            Some(h) => {
                report.step(format_args!(
                    "layer {} from {}: unchanged, reused",
                    h.digest.short(),
                    src.src.display()
                ));
                h
            }
            None => {
                let l = build_layer(txn, src, entries, &opts, report)?;
                if let Some(c) = &cache {
                    c.put(&key, &l);
                }
                l
            }
        };
        records.push(LayerRecord {
            digest: layer.digest,
            size: layer.size,
            media_type: plan.compression.media_type(),
            diff_id: layer.diff_id,
            created_by: src.created_by.clone(),
        });
    }
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
    Ok((manifest, config))
}

/// Where layer-cache records live in the cache directory (beside `layout/`, the cache layout).
const LAYER_CACHE_DIR: &str = "layers";

/// One pass: walk entries → tar → diff_id → compression → blob in the layout.
fn build_layer(
    txn: &mut Txn<'_>,
    src: &LayerSource,
    entries: &[walk::Entry],
    opts: &LayerOptions,
    report: &Reporter,
) -> Result<CachedLayer> {
    let layout = txn.layout;
    // Hashing the sink too tells us the digest before the blob is named, so a blob that was already in the
    // layout (another image's) is never removed by a rollback.
    let sink = HashingWriter::new(layout.blob_writer()?);
    let (info, sink) = layer::write_layer(entries, opts, sink)
        .context(|| format!("building the layer from {}", src.src.display()))?;
    let (digest, size, sink) = sink.finish();
    let added = !layout.has_blob(&digest);
    layout.finish_blob(sink)?;
    txn.track(added, &digest);
    report.step(format_args!(
        "layer {} from {}: {} bytes of tar → {} bytes{}",
        digest.short(),
        src.src.display(),
        info.tar_size,
        size,
        if added { "" } else { " (already stored)" }
    ));
    Ok(CachedLayer {
        digest,
        size,
        diff_id: info.diff_id,
        tar_size: info.tar_size,
    })
}

/// A cache hit is used only if its blob is intact (by size) in the layout being written, or can be linked in
/// from the cache layout.
fn reuse_blob(txn: &mut Txn<'_>, cache_dir: &std::path::Path, hit: &CachedLayer) -> bool {
    let layout = txn.layout;
    if cache::blob_ok(&layout.blob_path(&hit.digest), hit.size) {
        return true;
    }
    let Ok(from) = Layout::open(&cache_dir.join("layout")) else {
        return false;
    };
    if !cache::blob_ok(&from.blob_path(&hit.digest), hit.size)
        || layout.import_blob(&from, &hit.digest).is_err()
    {
        return false;
    }
    txn.track(true, &hit.digest);
    true
}

/// Choose and write the tags (version first), all checked before any is written.
fn publish_layout(
    layout: &Layout,
    dest: &LayoutRef,
    manifest: &Json<ImageManifest>,
    config: &Json<ImageConfiguration>,
    plan: &BuildPlan,
    report: &Reporter,
) -> Result<Published> {
    let platform = PlatformSpec::of_config(&config.value);
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
        manifest,
        platform: platform.to_oci(),
        policy: &req.policy,
    };
    let tagged = tagging::publish_tags(
        &target,
        &manifest.digest,
        &req,
        &plan.layers[0].src,
        &mut || Ok(()),
    )?;
    if tagged.tags.is_empty() {
        let lock = layout.lock()?;
        layout.set_tag(&lock, None, manifest, Some(platform.to_oci()))?;
    }
    report_tags(report, &tagged);
    Ok(Published::new(repo, &tagged, manifest, platform))
}

/// One stderr line per decision: the version and why, versions lost to other publishers.
pub fn report_tags(report: &Reporter, t: &Tagged) {
    for lost in &t.raced {
        report.step(format_args!(
            "version {lost} was taken by another publisher meanwhile; trying the next"
        ));
    }
    if let Some(v) = &t.version {
        if t.reused {
            report.step(format_args!(
                "version {v} reused: it already points at this image"
            ));
        } else {
            report.step(format_args!("version {v}: new"));
        }
    }
}
