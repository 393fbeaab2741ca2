//! What `kiln build` was asked to do, validated: the typed plan the CLI resolves from flags, kiln.toml and the
//! environment, once.

use std::path::PathBuf;

use crate::attest::AttestRequest;
use crate::image::{ConfigSpec, PlatformSpec};
use crate::layer::Compression;
use crate::publish::tagging::TagRequest;
use crate::registry::ClientOptions;
use crate::split::Split;
use crate::target::Target;

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
    pub uid: u32,
    pub gid: u32,
    /// Multi-platform builds: each platform and its own main directory (`None`: the shared DIR). Empty for a
    /// single-platform build (then `config.platform` says which).
    pub platforms: Vec<(PlatformSpec, Option<PathBuf>)>,
    pub registry: ClientOptions,
    /// The cache directory: `layout/`, the local layout a registry build writes its blobs to before pushing, and
    /// `layers/`, the layer cache.
    pub cache: PathBuf,
    /// Do not reuse cached layers (every layer is compressed again).
    pub no_cache: bool,
    /// Days a cache entry may go unused before it is pruned (0: never; `cache::CacheLock`).
    pub cache_max_age: u32,
    /// How each source directory is cut into image layers.
    pub split: Split,
    /// `--exclude` patterns (and kiln.toml's `exclude`), applied to every source directory after its
    /// `.kilnignore` (Docker's `.dockerignore` rules: `walk::exclude`).
    pub exclude: Vec<String>,
    /// Files kiln writes besides the target (the `--ref-file`): like the target and the cache directory, left
    /// out of any source directory they are in.
    pub outputs: Vec<PathBuf>,
    /// The SBOM and provenance to attach (`attest`).
    pub attest: AttestRequest,
}

impl BuildPlan {
    /// What this build writes that may lie inside a source directory, and how a message names it: such a path
    /// is never packed (an unchanged `kiln build .` would otherwise pack its last output and never be
    /// unchanged).
    pub(crate) fn own_outputs(&self) -> Vec<(PathBuf, &'static str)> {
        let mut out = Vec::new();
        match &self.target {
            Target::Layout(l) => out.push((l.path.clone(), "the --to layout")),
            Target::DockerArchive { path, .. } => out.push((path.clone(), "the --to archive")),
            Target::Registry(_) => {}
        }
        out.push((self.cache.clone(), "the cache directory"));
        out.extend(self.outputs.iter().map(|p| (p.clone(), "the --ref-file")));
        out
    }

    /// The settings this build ran with, as the provenance records them (`externalParameters.settings`): what
    /// decides the image's bytes and where it went, never credentials. Source directories are named relative to
    /// the build directory: where a runner checks out is not a parameter.
    pub(crate) fn parameters(&self) -> serde_json::Value {
        let root = &self.layers[0].src;
        let rel = |p: &std::path::Path| {
            p.strip_prefix(root).map_or_else(
                |_| p.display().to_string(),
                |r| format!("./{}", r.display()),
            )
        };
        let c = &self.config;
        serde_json::json!({
            "target": self.target.to_string(),
            "base": self.base.as_ref().map(|b| b.to_string()),
            "version": self.tagging.scheme.as_ref().map(|s| format!("{s:?}")),
            "tags": self.tagging.templates,
            "layers": self.layers.iter().map(|l| serde_json::json!({
                "src": rel(&l.src), "dest": l.dest, "chown": l.chown.map(|(u, g)| format!("{u}:{g}")),
                "mode": l.mode.map(|m| format!("{m:o}")),
            })).collect::<Vec<_>>(),
            "platforms": self.platforms.iter().map(|(p, _)| p.to_string()).collect::<Vec<_>>(),
            "platform": c.platform.as_ref().map(|p| p.to_string()),
            "entrypoint": c.entrypoint, "cmd": c.cmd, "workdir": c.workdir, "user": c.user,
            "env": c.env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "labels": c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "annotations": c.annotations.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "expose": c.expose,
            "compression": self.compression.encoding(),
            "chown": format!("{}:{}", self.uid, self.gid),
            "split": format!("{:?}", self.split),
            "exclude": self.exclude,
            "source_date_epoch": c.created,
        })
    }

    /// One plan per platform: a single-platform build is itself; a multi-platform one gets each platform's
    /// directory as its main layer and the platform in its config.
    pub fn per_platform(&self) -> Vec<BuildPlan> {
        if self.platforms.is_empty() {
            return vec![self.clone()];
        }
        self.platforms
            .iter()
            .map(|(platform, dir)| {
                let mut p = self.clone();
                p.platforms.clear();
                p.config.platform = Some(platform.clone());
                if let Some(d) = dir {
                    p.layers[0].src = d.clone();
                    p.layers[0].created_by = created_by(d, &p.layers[0].dest, p.compression);
                }
                p
            })
            .collect()
    }
}

/// History text of a layer: the source directory's own name only — an absolute path would make the config (and
/// so the digest) depend on where the checkout lives.
pub fn created_by(src: &std::path::Path, dest: &str, compression: Compression) -> String {
    let name = src.file_name().map(|n| n.to_string_lossy().into_owned());
    let how = match compression {
        Compression::Gzip { level } => format!("gzip -{level}"),
        Compression::Zstd { level } => format!("zstd -{level}"),
        Compression::None => "uncompressed".into(),
    };
    format!(
        "kiln build: {}/ -> {dest} ({how})",
        name.as_deref().unwrap_or(".")
    )
}

#[derive(Debug, Clone)]
pub struct LayerSource {
    pub src: PathBuf,
    /// Normalized absolute destination in the image.
    pub dest: String,
    pub created_by: String,
    /// Owner of this layer's entries (else the build's `--chown`).
    pub chown: Option<(u32, u32)>,
    /// Permission bits for this layer's regular files (directories and links keep theirs).
    pub mode: Option<u32>,
}
