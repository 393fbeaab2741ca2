//! `kiln login`: verify credentials against a registry, then store them in docker's config.json.

use std::io::Read;

use crate::cli::LoginArgs;
use kiln_engine::events::Report;
use kiln_engine::{Client, login};
use kiln_engine::{Error, Result};

pub fn run(args: &LoginArgs, report: &Report) -> Result<()> {
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
    let registry = kiln_engine::normalize_registry(&args.registry);
    let client = Client::new(args.registry_args.options(report, Some(&registry)))?;
    let stored = login(&client, &registry, &args.username, password, None)?;
    report.note(format_args!(
        "login to {registry} succeeded; credentials stored in {stored}"
    ));
    Ok(())
}
