//! `kiln completions SHELL` and `kiln man`: generated from the clap definitions, so they never drift from the
//! real flags.

use clap::CommandFactory;

use crate::cli::Cli;
use crate::output::Stdout;
use kiln_engine::{Error, Result};

/// Print completions for `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    let mut cmd = Cli::command();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kiln", &mut buf);
    write_stdout(&buf)
}

/// Print a man page (roff) on stdout: kiln(1), or kiln-SUBCOMMAND(1) for `kiln man SUBCOMMAND`.
pub fn man(subcommand: Option<&str>) -> Result<()> {
    let mut buf = Vec::new();
    render_man(subcommand, &mut buf)?;
    write_stdout(&buf)
}

pub fn render_man(subcommand: Option<&str>, out: &mut Vec<u8>) -> Result<()> {
    let mut cmd = Cli::command();
    cmd.build();
    let page = match subcommand {
        None => cmd,
        Some(name) => {
            let sub = cmd
                .get_subcommands()
                .find(|s| s.get_name() == name)
                .ok_or_else(|| {
                    Error::invalid_arg(
                        "SUBCOMMAND",
                        name,
                        format!(
                            "one of {}",
                            cmd.get_subcommands()
                                .filter(|s| !s.is_hide_set())
                                .map(|s| s.get_name())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            let full: &'static str = Box::leak(format!("kiln-{name}").into_boxed_str());
            sub.clone().name(full)
        }
    };
    clap_mangen::Man::new(page)
        .render(out)
        .map_err(|e| Error::io("man page", e))
}

/// Generated text is UTF-8; print it through the one stdout policy (`output::Stdout`).
fn write_stdout(buf: &[u8]) -> Result<()> {
    Stdout::print(&String::from_utf8_lossy(buf))
}
