//! The file's values under the command line's: what a flag did not say comes from the file.

use std::path::{Path, PathBuf};

use super::file::{DEFAULT_FILE, FileBuild};
use super::parse::parse;
use crate::cli::BuildArgs;
use kiln_engine::CompressionKind;
use kiln_engine::{Error, Result};

/// Load the build's file (`--config PATH`, else `./kiln.toml` if present) into `args`: each value the command
/// line did not give (`given(flag id)` false) is taken from the file. No DIR (nor `--layer`) anywhere is a usage
/// error.
pub fn load_into(args: &mut BuildArgs, given: &dyn Fn(&str) -> bool) -> Result<()> {
    // A multi-platform build whose every --platform names its directory needs no DIR.
    let dirs_per_platform =
        !args.platforms.is_empty() && args.platforms.iter().all(|p| p.contains('='));
    let path = match &args.config {
        Some(p) => p.clone(),
        None if Path::new(DEFAULT_FILE).is_file() => PathBuf::from(DEFAULT_FILE),
        None if args.dir.is_none() && !dirs_per_platform && args.layer.is_empty() => {
            return Err(Error::Usage(format!(
                "no build directory: give DIR (kiln build DIR) or write a {DEFAULT_FILE} with dir = \"…\" \
                 in the current directory (or pass --config PATH)"
            )));
        }
        None => return Ok(()),
    };
    let name = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Usage(format!("--config {name}: no such file")),
        _ => Error::io(&path, e),
    })?;
    // A file that is not UTF-8 is a bad settings file (exit 2, like any other), not a failure to read it.
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count();
        Error::Usage(format!(
            "{name}:{line}: not UTF-8 text (byte {at}): a TOML file must be UTF-8"
        ))
    })?;
    let f = parse(&name, &text)?;
    apply(args, given, f);
    let dirs_per_platform =
        !args.platforms.is_empty() && args.platforms.iter().all(|p| p.contains('='));
    // An image may be only `[[layer]]`s: no `dir` is needed then.
    if args.dir.is_none() && !dirs_per_platform && args.layer.is_empty() {
        return Err(Error::Usage(format!(
            "{name}:1: key \"dir\": missing: set dir = \"…\" (the build output directory, relative to the file), \
             give DIR on the command line, or add [[layer]] tables"
        )));
    }
    Ok(())
}

/// Merge: a value given on the command line wins (a list flag replaces the file's list).
pub fn apply(args: &mut BuildArgs, given: &dyn Fn(&str) -> bool, f: FileBuild) {
    macro_rules! take {
        ($id:literal, $field:expr, $val:expr) => {
            if !given($id)
                && let Some(v) = $val
            {
                $field = v;
            }
        };
    }
    let file_compression = f.compression.unwrap_or(CompressionKind::Gzip);
    take!("dir", args.dir, f.dir.map(Some));
    take!("to", args.to, f.to);
    take!("base", args.base, f.base);
    take!("prefix", args.prefix, f.prefix);
    take!("entrypoint", args.entrypoint, f.entrypoint);
    take!("cmd", args.cmd, f.cmd);
    take!("env", args.env, f.env);
    take!("workdir", args.workdir, f.workdir.map(Some));
    take!("user", args.user, f.user.map(Some));
    take!("label", args.label, f.labels);
    take!("annotation", args.annotation, f.annotations);
    take!("expose", args.expose, f.expose);
    take!("platforms", args.platforms, f.platforms);
    take!("layer", args.layer, f.layers);
    take!("compression", args.compression, f.compression);
    // The file's level belongs to the file's compression: a different --compression drops it.
    if args.compression == file_compression {
        take!(
            "compression_level",
            args.compression_level,
            f.compression_level.map(Some)
        );
    }
    take!("chown", args.chown, f.chown);
    take!("split", args.split, f.split);
    take!("sbom", args.sbom, f.sbom);
    take!("provenance", args.provenance, f.provenance);
    take!("exclude", args.exclude, f.exclude);
    // A docker archive's one name is in its target: the file's version and tags are for its registry or
    // layout target, and do not apply when the command line says `--to docker-archive:…`.
    let archive = args.to.starts_with("docker-archive:") && given("to");
    let t = &mut args.tagging;
    if !archive {
        take!("version_scheme", t.version_scheme, f.version.map(Some));
        take!("tags", t.tags, f.tags);
        take!("pre", t.pre, f.pre.map(Some));
    }
    take!("allow_dirty", t.allow_dirty, f.allow_dirty);
    take!("always_new", t.always_new, f.always_new);
    take!("allow_floating", t.allow_floating, f.allow_floating);
    take!("floating_tags", t.floating_tags, f.floating_tags);
    take!("ref_file", t.ref_file, f.ref_file.map(Some));
    take!("mirrors", args.registry.mirrors, f.registry_mirrors);
}
