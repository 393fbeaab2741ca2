//! `kiln push oci:PATH[:TAG] REGISTRY/REPO[:TAG]`: an image already in a layout, to a registry, with the same
//! tag policy as `build`.

mod archive;
mod plan;

pub use plan::PushPlan;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::base::{self, LoadedBase};
use crate::error::{Error, Result};
use crate::events::Report;
use crate::image::{ANNOTATION_BASE_NAME, Json, PlatformSpec};
use crate::publish::Published;
use crate::publish::remote::{self, PublishCtx};
use crate::reference::Reference;
use crate::registry::Client;
use crate::store::{Layout, read_image};
use crate::target::Target;

pub fn run(plan: &PushPlan, report: &Report) -> Result<Published> {
    let src = match &plan.source {
        Target::Layout(l) => l,
        Target::DockerArchive { path, reference } => {
            return archive::push(plan, path, reference.as_ref(), report);
        }
        Target::Registry(r) => {
            return Err(Error::invalid_arg(
                "source",
                r.to_string(),
                "kiln push reads a local layout: oci:PATH[:TAG|@DIGEST]",
            ));
        }
    };
    let dest = &plan.destination;
    let layout = Layout::open(&src.path)?;
    let (manifest, config) = read_image(&layout, src)?;
    let client = Client::new(plan.registry.clone())?;
    let repo = client.repository(dest);
    let base = mountable_base(&client, dest, &manifest, &config, report);
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let ctx = PublishCtx {
        repo: &repo,
        reference: dest,
        layout: &layout,
        base: base.as_ref(),
        request: &plan.tagging,
        build_dir: &cwd,
        pushed_early: &[],
        prepared: None,
        known: &[],
        attach: None,
    };
    remote::publish(&ctx, &manifest, &config, report)
}

/// An image built on a base from the destination's registry records it in its annotations; reading that base
/// lets its layers be mounted instead of uploaded. Any failure just means no mount.
fn mountable_base(
    client: &Client,
    dest: &Reference,
    manifest: &Json<ImageManifest>,
    config: &Json<ImageConfiguration>,
    report: &Report,
) -> Option<LoadedBase> {
    let name = manifest
        .value
        .annotations()
        .as_ref()?
        .get(ANNOTATION_BASE_NAME)?;
    let r: Reference = name.parse().ok()?;
    if r.registry != dest.registry || r.repository == dest.repository {
        return None;
    }
    let platform = PlatformSpec::of_config(&config.value);
    match base::load(&Target::Registry(r), || Ok(client.clone()), Some(&platform)) {
        Ok(b) => Some(b),
        Err(e) => {
            report.debug(format_args!(
                "base {name} not readable, uploading its layers instead: {e}"
            ));
            None
        }
    }
}
