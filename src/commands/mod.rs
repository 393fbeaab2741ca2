//! The subcommands, each thin: its flags (and kiln.toml) → the engine's typed plan → the engine → stdout.

mod build;
mod check;
mod completions;
mod inspect;
mod login;
mod pin;
mod referrers;
mod tags;

use std::sync::Arc;

use clap::ArgMatches;

use crate::cli::{Cli, Command, OutputFormat, target_registry};
use crate::output::{print_published, write_ref_file};
use crate::progress::Terminal;
use kiln_engine::Published;
use kiln_engine::Result;
use kiln_engine::events::Report;

pub fn run(cli: Cli, matches: &ArgMatches) -> Result<()> {
    let terminal = Arc::new(Terminal::new(cli.quiet, cli.verbose, cli.progress));
    let report = Report::new(terminal.clone());
    let out = Finish {
        terminal: &terminal,
        report: &report,
        format: cli.output,
    };
    match cli.command {
        Command::Build(args) => {
            let ref_file = args.tagging.ref_file.clone();
            out.published(&build::build(*args, matches, &report)?, ref_file.as_deref())
        }
        Command::Push(args) => out.published(
            &build::push(&args, &report)?,
            args.tagging.ref_file.as_deref(),
        ),
        Command::Login(args) => login::run(&args, &report),
        Command::Inspect(args) => {
            let registry = args
                .registry
                .options(&report, target_registry(&args.target).as_deref());
            inspect::run(&args, cli.output, registry)
        }
        Command::Sbom(args) => {
            let registry = args
                .registry
                .options(&report, target_registry(&args.target).as_deref());
            referrers::sbom(&args, &registry)
        }
        Command::Provenance(args) => {
            let registry = args
                .registry
                .options(&report, target_registry(&args.target).as_deref());
            referrers::provenance(&args, &registry)
        }
        Command::Tags(args) => {
            let registry = args
                .registry
                .options(&report, target_registry(&args.target).as_deref());
            tags::tags(&args, cli.output, &registry)
        }
        Command::NextVersion(args) => {
            let registry = args
                .registry
                .options(&report, target_registry(&args.target).as_deref());
            tags::next(&args, cli.output, &registry, &report)
        }
        Command::Pin(args) => pin::run(&args, cli.output, &report),
        Command::Check(args) => check::run(&args, cli.output, &report),
        Command::Completions(args) => completions::completions(args.shell),
        Command::Man(args) => completions::man(args.subcommand.as_deref()),
    }
}

/// How a build or push ends: the `--ref-file`, the summary on stderr, the result on stdout.
struct Finish<'a> {
    terminal: &'a Terminal,
    report: &'a Report,
    format: OutputFormat,
}

impl Finish<'_> {
    fn published(&self, p: &Published, ref_file: Option<&std::path::Path>) -> Result<()> {
        if let Some(f) = ref_file {
            write_ref_file(p, f)?;
        }
        self.terminal.summary(&self.report.tally(), p);
        print_published(p, self.format)
    }
}
