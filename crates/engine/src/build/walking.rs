//! Reading what a build packs: each platform's base (and the paths it owns) and its walked source directories.

use super::plan::{BuildPlan, LayerSource};
use crate::base::{self, LoadedBase};
use crate::error::{Result, ResultExt};
use crate::events::Report;
use crate::registry::Client;
use crate::walk;

/// One platform's share of a build: its plan (main layer from its own directory) and what was read for it.
pub(super) struct PlatformJob {
    pub plan: BuildPlan,
    pub base: Option<LoadedBase>,
    pub walked: Vec<Vec<walk::Entry>>,
}

/// Each platform's base and walked sources.
pub(super) fn walk_all(
    plan: &BuildPlan,
    client: &dyn Fn() -> Result<Client>,
    report: &Report,
) -> Result<Vec<PlatformJob>> {
    let mut jobs = Vec::new();
    for p in plan.per_platform() {
        let mut base = p
            .base
            .as_ref()
            .map(|b| base::load(b, client, p.config.platform.as_ref()))
            .transpose()?;
        // Which paths the base has, so that kiln's directories never replace the base's (see base/tree.rs).
        let tree = match base.as_mut() {
            Some(b) if !b.base.manifest.value.layers().is_empty() => {
                Some(base::read_tree(b, &plan.cache, report)?)
            }
            _ => None,
        };
        let mut walked = Vec::with_capacity(p.layers.len());
        let outputs = p.own_outputs();
        for (i, l) in p.layers.iter().enumerate() {
            let flag = if i == 0 { "--prefix" } else { "--layer" };
            let dest = match &tree {
                Some(t) => t.resolve(&l.dest, flag)?,
                None => l.dest.clone(),
            };
            if dest != l.dest {
                report.note(format_args!(
                    "{flag} {}: a symlink in base image {} leads to {dest}; {} lands there",
                    l.dest,
                    tree.as_ref().map_or("", |t| t.name.as_str()),
                    l.src.display()
                ));
            }
            let spinner = report.spinner(|| format!("walking {}", l.src.display()));
            let mut entries = walk_source(l, &dest, &p.exclude, &outputs, report)
                .context(|| format!("reading build output {}", l.src.display()))?;
            if let Some(t) = &tree {
                t.adopt(&mut entries, &l.src)?;
            }
            spinner.finish();
            report.step(format_args!(
                "walked {} ({} entries, {})",
                l.src.display(),
                entries.len(),
                crate::events::human_bytes(file_bytes(&entries))
            ));
            walked.push(entries);
        }
        jobs.push(PlatformJob {
            plan: p,
            base,
            walked,
        });
    }
    Ok(jobs)
}

/// Walk one source directory into `dest` (its destination, resolved through the base's symlinks), leaving out
/// kiln's own outputs inside it and what its `.kilnignore` and the
/// `--exclude` patterns exclude; says (as a note) what was left out.
fn walk_source(
    l: &LayerSource,
    dest: &str,
    exclude: &[String],
    outputs: &[(std::path::PathBuf, &'static str)],
    report: &Report,
) -> Result<Vec<walk::Entry>> {
    let own = walk::outputs_inside(&l.src, outputs);
    let patterns = walk::patterns_for(&l.src, exclude)?;
    let filter = walk::Exclude::new(own.iter().map(|(p, _)| p.clone()).collect(), patterns);
    let walked = walk::walk_excluding(&l.src, dest, &filter)?;
    let (mut by_patterns, mut own_left) = (Vec::new(), Vec::new());
    for p in &walked.excluded {
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(p.as_os_str());
        match own.iter().find(|(o, _)| o == bytes) {
            Some((_, label)) => own_left.push(format!("{} ({label})", p.display())),
            None => by_patterns.push(p.display().to_string()),
        }
    }
    if !own_left.is_empty() {
        report.note(format_args!(
            "left out of the layer from {}: {}, kiln's own output",
            l.src.display(),
            own_left.join(", ")
        ));
    }
    if !by_patterns.is_empty() {
        const SHOWN: usize = 5;
        let more = match by_patterns.len().saturating_sub(SHOWN) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        report.note(format_args!(
            "left out of the layer from {} by {} / --exclude: {}{more}",
            l.src.display(),
            walk::IGNORE_FILE,
            by_patterns[..by_patterns.len().min(SHOWN)].join(", ")
        ));
    }
    Ok(walked.entries)
}

/// Bytes of regular files in a walk.
fn file_bytes(entries: &[walk::Entry]) -> u64 {
    entries
        .iter()
        .map(|e| match e.kind {
            walk::EntryKind::File { size } => size,
            _ => 0,
        })
        .sum()
}
