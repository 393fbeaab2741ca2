//! Docker archives as a build target (`--to docker-archive:PATH[:REPO:TAG]`) and as a push source
//! (`kiln push docker-archive:PATH REGISTRY/REPO[:TAG]`). The tarball format is in `docker_archive`.

use oci_spec::image::{ImageConfiguration, ImageManifest};

use super::plan::BuildPlan;
use crate::base::LoadedBase;
use crate::docker_archive::{self};
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{Json, PlatformSpec, Root};
use crate::publish::Published;
use crate::publish::tagging::Tagged;
use crate::store::Layout;
use crate::target::Target;

/// Before anything is built: an archive holds exactly the one `REPO:TAG` of its target (no versions, no
/// `--tag`), and is a new file (an existing one is exit 3 unless `--force-tag`).
pub fn precheck(plan: &BuildPlan) -> Result<()> {
    let Target::DockerArchive { path, .. } = &plan.target else {
        return Ok(());
    };
    if plan.tagging.scheme.is_some() || !plan.tagging.templates.is_empty() {
        return Err(Error::Usage(format!(
            "--to docker-archive:{}: an archive's only name is the REPO:TAG in the target \
             (docker-archive:PATH:REPO:TAG); --version and --tag do not apply",
            path.display()
        )));
    }
    if !plan.tagging.policy.force && std::fs::symlink_metadata(path).is_ok() {
        return Err(Error::ArchiveExists { path: path.clone() });
    }
    Ok(())
}

/// Write the image just built into the cache layout as a docker archive (the base's layers fetched into the
/// layout first if needed).
pub fn publish(
    layout: &Layout,
    base: Option<&LoadedBase>,
    manifest: &Json<ImageManifest>,
    config: &Json<ImageConfiguration>,
    plan: &BuildPlan,
    report: &Report,
) -> Result<Published> {
    let Target::DockerArchive { path, reference } = &plan.target else {
        unreachable!("archive::publish is only called for a docker-archive target")
    };
    let name = reference.as_ref();
    if let Some(b) = base {
        for d in b.layer_digests()? {
            b.ensure_blob(layout, &d)?;
        }
    }
    let force = plan.tagging.policy.force;
    docker_archive::write(layout, path, manifest, name, plan.config.created, force)?;
    report.step(format_args!(
        "wrote {} ({} layers)",
        path.display(),
        manifest.value.layers().len()
    ));
    let tagged = Tagged {
        version: None,
        tags: name.map(|(_, t)| t.clone()).into_iter().collect(),
        reused: false,
        raced: Vec::new(),
        why: None,
    };
    let platform = PlatformSpec::of_config(&config.value);
    let root = Root::manifest(manifest, platform.clone());
    Ok(Published::new(
        Target::archive_display(path, name),
        &tagged,
        &root,
        &[(platform, manifest)],
    ))
}
