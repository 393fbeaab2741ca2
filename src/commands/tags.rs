//! `kiln tags` and `kiln next-version`: print a target's tags, or the version the next build would get.

use crate::cli::{NextVersionArgs, OutputFormat, TagsArgs};
use crate::output::Stdout;
use kiln_engine::ClientOptions;
use kiln_engine::Result;
use kiln_engine::Scheme;
use kiln_engine::events::Report;
use kiln_engine::tags::{list, next_version, open_target};

/// `kiln tags`: `TAG<TAB>sha256:…` per line, or a JSON array of `{tag, digest}`.
pub fn tags(args: &TagsArgs, format: OutputFormat, registry: &ClientOptions) -> Result<()> {
    let target = open_target(&args.target, false, registry)?;
    let tags = list(target.as_ref())?;
    let text = match format {
        OutputFormat::Text => tags
            .iter()
            .map(|t| format!("{}\t{}\n", t.tag, t.digest))
            .collect(),
        OutputFormat::Json => crate::output::json_line(&tags),
    };
    Stdout::print(&text)
}

/// `kiln next-version TARGET --version SCHEME`.
pub fn next(
    args: &NextVersionArgs,
    format: OutputFormat,
    registry: &ClientOptions,
    report: &Report,
) -> Result<()> {
    let scheme = Scheme::parse(&args.version_scheme, args.pre.as_deref(), args.allow_dirty)?;
    let target = open_target(&args.target, true, registry)?;
    let next = next_version(target.as_ref(), &scheme, &args.dir)?;
    if let Some(d) = &next.existing {
        report.note(format_args!(
            "{} already exists in {} and points at {d}: only that image can be published under it (another \
             would be refused with exit code 3)",
            next.version, next.repository
        ));
    }
    Stdout::print(&match format {
        OutputFormat::Text => format!("{}\n", next.version),
        OutputFormat::Json => crate::output::json_line(&next),
    })
}
