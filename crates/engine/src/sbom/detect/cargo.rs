//! Rust: the packages a `Cargo.lock` pins (the workspace's own crates, which have no `source`, are left out:
//! they are the application, not a dependency of it).

use serde::Deserialize;

use crate::sbom::detect::found::{Found, METADATA_CAP, read_capped};
use crate::sbom::model::{Ecosystem, EvidenceKind, FileRecord};

#[derive(Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockedPackage>,
}

#[derive(Deserialize)]
struct LockedPackage {
    name: String,
    version: String,
    source: Option<String>,
}

pub fn lockfile(f: &FileRecord, found: &mut Found) -> Result<(), String> {
    let bytes = read_capped(&f.source, METADATA_CAP)?;
    let text = std::str::from_utf8(&bytes).map_err(|_| "not UTF-8".to_string())?;
    let lock: Lock =
        toml::from_str(text).map_err(|e| format!("not a Cargo.lock: {}", e.message()))?;
    for p in lock.package.iter().filter(|p| p.source.is_some()) {
        found.add(
            Ecosystem::Cargo,
            &p.name,
            Some(&p.version),
            None,
            &f.path,
            EvidenceKind::Lockfile,
        );
    }
    Ok(())
}
