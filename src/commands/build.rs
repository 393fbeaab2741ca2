//! `kiln build` and `kiln push`: flags (and, for build, kiln.toml) → the engine's plan → publish.

use clap::ArgMatches;
use clap::parser::ValueSource;

use crate::cli::{BuildArgs, PushArgs};
use kiln_engine::Published;
use kiln_engine::Reference;
use kiln_engine::Result;
use kiln_engine::events::Report;
use kiln_engine::push::PushPlan;
use kiln_engine::settings::cache_dir;

pub fn build(mut args: BuildArgs, matches: &ArgMatches, report: &Report) -> Result<Published> {
    // kiln.toml fills what the command line (or the environment) did not say.
    if let Some(("build", m)) = matches.subcommand() {
        let given = |id: &str| {
            matches!(
                m.value_source(id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        crate::config_file::load_into(&mut args, &given)?;
    }
    kiln_engine::build::run(&args.plan(report)?, report)
}

pub fn push(args: &PushArgs, report: &Report) -> Result<Published> {
    let destination = Reference::destination(&args.destination, "destination")?;
    let plan = PushPlan {
        source: args.source.parse()?,
        registry: args.registry.options(report, Some(&destination.registry)),
        destination,
        tagging: args.tagging.request()?,
        cache: cache_dir(std::env::var_os("KILN_CACHE").map(Into::into)),
    };
    kiln_engine::push::run(&plan, report)
}
