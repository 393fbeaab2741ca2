//! `kiln build`: walk → layers → config + manifest → layout (and, later, registry) → tags → output.

use std::path::PathBuf;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::commands::tagging::{self, LayoutTags, TagRequest, Tagged};
use crate::digest::Digest;
use crate::error::{Error, Result, ResultExt};
use crate::image::{self, Base, ConfigSpec, Json, LayerRecord, PlatformSpec};
use crate::layer::{self, Compression, LayerOptions};
use crate::output::{Published, Reporter};
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
}

#[derive(Debug, Clone)]
pub struct LayerSource {
    pub src: PathBuf,
    /// Normalized absolute destination in the image.
    pub dest: String,
    pub created_by: String,
}

/// A base image read from a layout, with the layout its blobs live in.
struct LoadedBase {
    base: Base,
    layout: Layout,
}

pub fn run(plan: &BuildPlan, report: &Reporter) -> Result<Published> {
    let dest = match &plan.target {
        Target::Layout(l) => l.clone(),
        Target::Registry(r) => {
            return Err(Error::Usage(format!(
                "registry target {r:?}: pushing to registries is not available in this build; use --to oci:PATH"
            )));
        }
    };
    // Everything that can be checked without writing is checked first: a bad base or input changes nothing.
    let base = plan.base.as_ref().map(load_base).transpose()?;
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
    let (layout, created) = Layout::open_or_create(&dest.path)?;
    let mut txn = Txn {
        layout: &layout,
        new_blobs: Vec::new(),
    };
    let result = write_image(&mut txn, plan, base.as_ref(), &walked, report)
        .and_then(|(manifest, config)| publish(&layout, &dest, &manifest, &config, plan, report));
    match result {
        Ok(p) => Ok(p),
        Err(e) => {
            txn.rollback();
            if created {
                layout.remove_if_unused();
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
    fn track(&mut self, existed: bool, d: &Digest) {
        if !existed {
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
    if let Some(b) = base {
        for l in b.base.manifest.value.layers() {
            let d = Digest::from_oci(l.digest())?;
            let existed = layout.has_blob(&d);
            layout.import_blob(&b.layout, &d)?;
            txn.track(existed, &d);
        }
    }
    let opts = LayerOptions {
        mtime: plan.config.created,
        uid: plan.uid,
        gid: plan.gid,
        compression: plan.compression,
    };
    let mut records = Vec::new();
    for (src, entries) in plan.layers.iter().zip(walked) {
        let sink = layout.blob_writer()?;
        let (info, sink) = layer::write_layer(entries, &opts, sink)
            .context(|| format!("building the layer from {}", src.src.display()))?;
        let (digest, size) = layout.finish_blob(sink)?;
        // A blob that was there before this build is not ours to remove on failure.
        txn.track(false, &digest);
        report.step(format_args!(
            "layer {} from {}: {} → {} bytes",
            digest.short(),
            src.src.display(),
            info.tar_size,
            size
        ));
        records.push(LayerRecord {
            digest,
            size,
            media_type: plan.compression.media_type(),
            diff_id: info.diff_id,
            created_by: src.created_by.clone(),
        });
    }
    let config = image::build_config(base.map(|b| &b.base.config.value), &plan.config, &records)?;
    let manifest = image::build_manifest(base.map(|b| &b.base), &config, &records, &plan.config)?;
    for j in [&config.bytes, &manifest.bytes] {
        let d = Digest::of(j);
        let existed = layout.has_blob(&d);
        layout.put_bytes(j, &d)?;
        txn.track(existed, &d);
    }
    Ok((manifest, config))
}

/// Choose and write the tags (version first), all checked before any is written.
fn publish(
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
    if let Some(t) = &dest.tag
        && !req.templates.iter().any(|x| x == t.as_str())
    {
        req.templates.insert(0, t.to_string());
    }
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

fn load_base(t: &Target) -> Result<LoadedBase> {
    match t {
        Target::Layout(r) => {
            let layout = Layout::open(&r.path).context(|| format!("opening base image {r}"))?;
            let (manifest, config) = read_image(&layout, r)?;
            Ok(LoadedBase {
                base: Base {
                    name: r.to_string(),
                    manifest,
                    config,
                },
                layout,
            })
        }
        Target::Registry(r) => Err(Error::Usage(format!(
            "base {r:?}: registry bases are not available in this build; use --base oci:PATH:TAG or scratch"
        ))),
    }
}

/// Find one image in a layout by tag or digest (or the only one), and read its manifest and config.
pub fn read_image(
    layout: &Layout,
    r: &LayoutRef,
) -> Result<(Json<ImageManifest>, Json<ImageConfiguration>)> {
    let entries = layout.entries()?;
    let found: Option<Digest> = if let Some(d) = &r.digest {
        layout.has_blob(d).then(|| d.clone())
    } else if let Some(t) = &r.tag {
        entries
            .iter()
            .find(|e| e.tag.as_deref() == Some(t.as_str()))
            .map(|e| Digest::from_oci(e.descriptor.digest()))
            .transpose()?
    } else if entries.len() == 1 {
        Some(Digest::from_oci(entries[0].descriptor.digest())?)
    } else {
        None
    };
    let md = found.ok_or_else(|| {
        let tags: Vec<String> = entries.iter().filter_map(|e| e.tag.clone()).collect();
        Error::TagNotFound {
            path: r.path.clone(),
            tag: match (&r.tag, &r.digest) {
                (Some(t), _) => t.to_string(),
                (None, Some(d)) => d.to_string(),
                (None, None) => {
                    "(none given, and the layout does not hold exactly one image: add :TAG)".into()
                }
            },
            available: if tags.is_empty() {
                "none".into()
            } else {
                tags.join(", ")
            },
        }
    })?;
    let mbytes = layout.read_blob(&md)?;
    check_manifest_type(&mbytes, r)?;
    let manifest: Json<ImageManifest> = Json::decode(mbytes, &format!("manifest {md} in {r}"))?;
    let cd = Digest::from_oci(manifest.value.config().digest())?;
    let config: Json<ImageConfiguration> =
        Json::decode(layout.read_blob(&cd)?, &format!("config {cd} in {r}"))?;
    Ok((manifest, config))
}

fn check_manifest_type(bytes: &[u8], r: &LayoutRef) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let p: Probe = serde_json::from_slice(bytes).map_err(|e| Error::Image {
        what: format!("manifest in {r}"),
        reason: e.to_string(),
    })?;
    if p.manifests.is_some()
        || p.media_type
            .as_deref()
            .is_some_and(|m| m.contains("index") || m.contains("list"))
    {
        return Err(Error::Image {
            what: r.to_string(),
            reason: "is a multi-platform index; name one platform's manifest with @sha256:…".into(),
        });
    }
    Ok(())
}
