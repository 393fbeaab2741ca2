//! The subcommands, each a thin driver over the pipeline modules.

pub mod build;
pub mod inspect;
pub mod pin;
pub mod tagging;
pub mod tags;

use crate::cli::{Cli, Command};
use crate::error::Result;
use crate::output::Reporter;

pub fn run(cli: &Cli) -> Result<()> {
    let report = Reporter {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match &cli.command {
        Command::Build(args) => {
            let plan = args.plan()?;
            let published = build::run(&plan, &report)?;
            published.print(cli.output);
            if let Some(p) = &args.ref_file {
                published.write_ref_file(p)?;
            }
            Ok(())
        }
        Command::Inspect(args) => inspect::run(&args.target, cli.output),
        Command::Tags(args) => {
            let target = tags::open_target(&args.target, false)?;
            tags::run(target.as_ref(), cli.output, &mut std::io::stdout().lock())
        }
        Command::NextVersion(args) => tags::next_version(args, cli.output, &report),
        Command::Pin(args) => pin::run(args, cli.output, &report),
    }
}
