//! `kiln pin`: pin image references in YAML files; the rewritten file on stdout, or `-i` in place.

use crate::cli::{OutputFormat, PinArgs};
use crate::output::Stdout;
use kiln_engine::events::Report;
use kiln_engine::pin::{PinRequest, pin_files};
use kiln_engine::{Error, Result};

pub fn run(args: &PinArgs, format: OutputFormat, report: &Report) -> Result<()> {
    if !args.in_place && format == OutputFormat::Json {
        return Err(Error::Usage(
            "--output json needs -i: without it stdout is the rewritten file".into(),
        ));
    }
    let req = PinRequest {
        files: args.files.clone(),
        in_place: args.in_place,
        refs: args.refs.clone(),
        ref_files: args.ref_files.clone(),
        images: args.images.clone(),
        helm_digest: args.helm_digest,
    };
    let done = pin_files(&req, report)?;
    if !args.in_place {
        return Stdout::print(&done[0].result.output);
    }
    if format == OutputFormat::Json {
        let files: Vec<_> = done
            .iter()
            .map(|p| {
                serde_json::json!({
                    "file": p.path.display().to_string(),
                    "changed": p.changed,
                    "replaced": p.result.replaced.iter()
                        .map(|(line, old, new)| serde_json::json!({"line": line, "old": old, "new": new}))
                        .collect::<Vec<_>>(),
                    "warnings": p.result.warnings.iter()
                        .map(|(line, message)| serde_json::json!({"line": line, "message": message}))
                        .collect::<Vec<_>>(),
                })
            })
            .collect();
        return Stdout::print(&crate::output::json_line(
            &serde_json::json!({ "files": files }),
        ));
    }
    Ok(())
}
