//! `kiln check`: fail when deployment YAML names an image that is not pinned; one `FILE:LINE: image …: reason`
//! line per problem on stderr (or the JSON report on stdout), a one-line summary when all is pinned.

use crate::cli::{CheckArgs, OutputFormat};
use crate::output::{Stdout, json_line, print_findings};
use kiln_engine::events::Report;
use kiln_engine::pin::{CheckRequest, check};
use kiln_engine::{Error, Result};

pub fn run(args: &CheckArgs, format: OutputFormat, report: &Report) -> Result<()> {
    let req = CheckRequest {
        paths: args.paths.clone(),
        allow: args.allow.clone(),
        // Credentials from the environment go to no registry in particular: the files name several.
        registry: args.online.then(|| args.registry.options(report, None)),
    };
    let r = check(&req, report)?;
    if format == OutputFormat::Json {
        Stdout::print(&json_line(&r))?;
    } else {
        print_findings(&r.problems);
    }
    let allowed = match r.allowed {
        0 => String::new(),
        n => format!(", {n} allowed to float"),
    };
    let scope = format!(
        "{} image{} in {} file{}{allowed}",
        r.images,
        if r.images == 1 { "" } else { "s" },
        r.files,
        if r.files == 1 { "" } else { "s" }
    );
    if !r.problems.is_empty() {
        let n = r.problems.len();
        return Err(Error::Image {
            what: "kiln check".into(),
            reason: format!("{n} problem{} in {scope}", if n == 1 { "" } else { "s" }),
        });
    }
    let how = if args.online {
        "pinned by digest, and every pin holds in its registry"
    } else {
        "pinned by digest"
    };
    report.note(format_args!("checked {scope}: all {how}"));
    Ok(())
}
