//! The subcommands, each a thin driver over the pipeline modules.

pub mod archive;
pub mod base;
pub mod build;
pub mod completions;
mod early;
pub mod inspect;
mod parts;
pub mod pin;
pub mod push;
pub mod remote;
pub mod tagging;
pub mod tags;

use std::io::Read;

use crate::cli::{Cli, Command, LoginArgs};
use crate::output::{Published, Reporter};
use kiln_engine::error::{Error, Result};
use kiln_engine::registry::{self, Client};

pub fn run(cli: &Cli) -> Result<()> {
    let report = Reporter::new(cli.quiet, cli.verbose, cli.progress);
    match &cli.command {
        Command::Build(args) => {
            let mut plan = args.plan()?;
            plan.registry.report = crate::output::verbose_log(cli.verbose);
            archive::precheck(&plan)?;
            let published = build::run(&plan, &report)?;
            finish(&published, cli, args.tagging.ref_file.as_deref(), &report)
        }
        Command::Push(args) => {
            let published = push::run(args, cli.verbose, &report)?;
            finish(&published, cli, args.tagging.ref_file.as_deref(), &report)
        }
        Command::Login(args) => login(args, cli.verbose, &report),
        Command::Inspect(args) => inspect::run(args, cli.output, cli.verbose),
        Command::Tags(args) => {
            let target =
                tags::open_target(&args.target, false, &args.registry.options(cli.verbose))?;
            tags::run(target.as_ref(), cli.output, &mut std::io::stdout().lock())
        }
        Command::NextVersion(args) => tags::next_version(args, cli.output, cli.verbose, &report),
        Command::Pin(args) => pin::run(args, cli.output, &report),
        Command::Completions(args) => completions::completions(args.shell),
        Command::Man(args) => completions::man(args.subcommand.as_deref()),
    }
}

fn finish(
    p: &Published,
    cli: &Cli,
    ref_file: Option<&std::path::Path>,
    report: &Reporter,
) -> Result<()> {
    if let Some(f) = ref_file {
        p.write_ref_file(f)?;
    }
    report.summary(p);
    p.print(cli.output);
    Ok(())
}

fn login(args: &LoginArgs, verbose: u8, report: &Reporter) -> Result<()> {
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .map_err(|e| Error::io("standard input", e))?;
    let password = password.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(Error::Usage(
            "kiln login: no password on standard input (pipe it in: `echo \"$TOKEN\" | kiln login …`)".into(),
        ));
    }
    let client = Client::new(args.registry_args.options(verbose))?;
    let registry = kiln_engine::reference::normalize_registry(&args.registry);
    let path = registry::login(&client, &registry, &args.username, password, None)?;
    report.note(format_args!(
        "login to {registry} succeeded; credentials stored in {}",
        path.display()
    ));
    Ok(())
}
