//! `kiln sbom` and `kiln provenance`: the document attached to an image as an OCI referrer, printed as it is.

use crate::cli::ReferrerArgs;
use crate::output::Stdout;
use kiln_engine::ClientOptions;
use kiln_engine::Result;
use kiln_engine::referrers::{PROVENANCE_TYPES, SBOM_TYPES, document};

pub fn sbom(args: &ReferrerArgs, registry: &ClientOptions) -> Result<()> {
    print(args, &SBOM_TYPES, registry)
}

pub fn provenance(args: &ReferrerArgs, registry: &ClientOptions) -> Result<()> {
    print(args, &PROVENANCE_TYPES, registry)
}

fn print(args: &ReferrerArgs, types: &[&str], registry: &ClientOptions) -> Result<()> {
    let doc = document(&args.target.parse()?, types, registry.clone())?;
    Stdout::write(&doc.bytes)
}
