//! `kiln push oci:PATH[:TAG] REGISTRY/REPO[:TAG]`: an image already in a layout, to a registry, with the same
//! tag policy as `build`.

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::cli::PushArgs;
use crate::commands::base::{self, LoadedBase};
use crate::commands::remote::{self, PublishCtx};
use crate::output::{Published, Reporter};
use kiln_engine::error::{Error, Result};
use kiln_engine::image::{ANNOTATION_BASE_NAME, Json, PlatformSpec};
use kiln_engine::reference::Reference;
use kiln_engine::registry::Client;
use kiln_engine::store::{Layout, read_image};
use kiln_engine::target::Target;

pub fn run(args: &PushArgs, verbose: u8, report: &Reporter) -> Result<Published> {
    let src = match args.source.parse::<Target>()? {
        Target::Layout(l) => l,
        Target::DockerArchive { path, reference } => {
            return crate::commands::archive::push(
                args,
                &path,
                reference.as_ref(),
                verbose,
                report,
            );
        }
        Target::Registry(r) => {
            return Err(Error::invalid_arg(
                "source",
                r,
                "kiln push reads a local layout: oci:PATH[:TAG|@DIGEST]",
            ));
        }
    };
    let dest = Reference::destination(&args.destination, "destination")?;
    let request = args.tagging.request()?;
    let layout = Layout::open(&src.path)?;
    let (manifest, config) = read_image(&layout, &src)?;
    let client = Client::new(args.registry.options(verbose))?;
    let repo = client.repository(&dest);
    let base = mountable_base(&client, &dest, &manifest, &config, report);
    let cwd = std::env::current_dir().map_err(|e| Error::io(".", e))?;
    let ctx = PublishCtx {
        repo: &repo,
        reference: &dest,
        layout: &layout,
        base: base.as_ref(),
        request: &request,
        build_dir: &cwd,
        pushed_early: &[],
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
    report: &Reporter,
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
    match base::load(
        &Target::Registry(name.clone()),
        || Ok(client.clone()),
        Some(&platform),
    ) {
        Ok(b) => Some(b),
        Err(e) => {
            report.debug(format_args!(
                "base {name} not readable, uploading its layers instead: {e}"
            ));
            None
        }
    }
}
