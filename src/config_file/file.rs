//! What kiln.toml may say: its keys, and the values read from it.

use std::path::PathBuf;

use kiln_engine::CompressionKind;
use kiln_engine::Split;

/// The file `kiln build` reads when `--config` is not given (if it exists).
pub const DEFAULT_FILE: &str = "kiln.toml";

pub(super) const KEYS: &[&str] = &[
    "dir",
    "to",
    "base",
    "version",
    "tags",
    "prefix",
    "entrypoint",
    "cmd",
    "env",
    "workdir",
    "user",
    "labels",
    "annotations",
    "expose",
    "compression",
    "compression-level",
    "split",
    "platforms",
    "allow-floating",
    "always-new",
    "chown",
    "layer",
    "pre",
    "allow-dirty",
    "floating-tags",
    "ref-file",
    "registry-mirrors",
    "exclude",
    "sbom",
    "provenance",
];
pub(super) const LAYER_KEYS: &[&str] = &["src", "dest", "chown", "mode"];

/// Values read from the file, already validated; `None` = not in the file. Paths are resolved against the
/// file's directory.
#[derive(Debug, Default, Clone)]
pub struct FileBuild {
    pub dir: Option<PathBuf>,
    pub to: Option<String>,
    pub base: Option<String>,
    pub version: Option<String>,
    pub tags: Option<Vec<String>>,
    pub prefix: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub labels: Option<Vec<String>>,
    pub annotations: Option<Vec<String>>,
    pub expose: Option<Vec<String>>,
    pub compression: Option<CompressionKind>,
    pub compression_level: Option<i32>,
    pub split: Option<Split>,
    /// `os/arch[/variant]` values, in order (one per platform of a multi-platform build).
    pub platforms: Option<Vec<String>>,
    pub allow_floating: Option<bool>,
    pub always_new: Option<bool>,
    pub chown: Option<String>,
    /// `SRC:DEST` per `[[layer]]`, like `--layer`.
    pub layers: Option<Vec<String>>,
    pub pre: Option<String>,
    pub allow_dirty: Option<bool>,
    pub floating_tags: Option<Vec<String>>,
    /// `registry-mirrors = ["docker.io=mirror.gcr.io"]`, parsed.
    pub registry_mirrors: Option<Vec<(String, String)>>,
    pub ref_file: Option<PathBuf>,
    /// `--exclude` patterns (relative to each build directory, not to the file).
    pub exclude: Option<Vec<String>>,
    /// `sbom = "spdx" | "cyclonedx" | "none"`, checked by the rule `--sbom` uses.
    pub sbom: Option<String>,
    /// `provenance = "slsa" | "none"`, checked by the rule `--provenance` uses.
    pub provenance: Option<String>,
}
