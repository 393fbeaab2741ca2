//! What the detectors share: the packages found so far, merged by purl, and the bounded read of a metadata file.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use crate::sbom::model::{Detection, Ecosystem, Evidence, EvidenceKind, Package};
use crate::sbom::purl;

/// The most a metadata file (package.json, METADATA, RECORD, a lock file, pom.properties) may have: larger ones
/// are not metadata anyone writes by hand or by a package manager, and are skipped with a warning.
pub(crate) const METADATA_CAP: u64 = 16 << 20;

/// Packages as they are found, merged by purl.
#[derive(Default)]
pub(crate) struct Found {
    packages: BTreeMap<String, Package>,
    /// Where each package's name and license came from: the best source wins, whatever order the files come in.
    source: BTreeMap<String, Evidence>,
    warnings: Vec<String>,
}

impl Found {
    /// Record one package seen in the file at `path` (a path in the image).
    pub(crate) fn add(
        &mut self,
        eco: Ecosystem,
        name: &str,
        version: Option<&str>,
        license: Option<&str>,
        path: &str,
        kind: EvidenceKind,
    ) -> &mut Package {
        let version = version.map(str::trim).filter(|v| !v.is_empty());
        let license = license.map(str::trim).filter(|l| !l.is_empty());
        let purl = purl::package(eco, name, version);
        let p = self
            .packages
            .entry(purl.clone())
            .or_insert_with(|| Package {
                ecosystem: eco,
                name: name.to_string(),
                version: version.map(str::to_string),
                purl,
                license: None,
                evidence: Vec::new(),
            });
        let evidence = Evidence {
            path: path.to_string(),
            kind,
        };
        // The package's own metadata is better than a binary's, which is better than a lock file's (the
        // `EvidenceKind` order); among equals, the first path. A source without a license is not better.
        let better = license.is_some()
            && self
                .source
                .get(&p.purl)
                .is_none_or(|best| (evidence.kind, &evidence.path) < (best.kind, &best.path));
        if better {
            p.license = license.map(str::to_string);
            p.name = name.to_string();
            self.source.insert(p.purl.clone(), evidence.clone());
        }
        p.evidence.push(evidence);
        p
    }

    pub(crate) fn warn(&mut self, w: String) {
        self.warnings.push(w);
    }

    pub(crate) fn finish(self) -> Detection {
        let packages = self
            .packages
            .into_values()
            .map(|mut p| {
                let set: BTreeSet<Evidence> = p.evidence.drain(..).collect();
                p.evidence = set.into_iter().collect();
                p
            })
            .collect();
        let mut warnings = self.warnings;
        warnings.sort();
        Detection { packages, warnings }
    }
}

/// Read a whole metadata file, refusing one over `cap` bytes (the size is checked on the open file, and the read
/// is bounded too, in case it grew).
pub(crate) fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut buf = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if buf.len() as u64 > cap {
        return Err(format!("larger than {} MiB", cap >> 20));
    }
    Ok(buf)
}
