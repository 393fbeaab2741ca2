//! SPDX 2.3 JSON. The image is the described package (purpose CONTAINER, its purl by digest); every file kiln
//! added is a file element with SHA1 (required by 2.3) and SHA256; each found package is a package element with
//! its purl and declared license, tied to files by relationships: a package CONTAINS the files that belong to
//! it (its package.json, its dist-info RECORD), a binary or jar CONTAINS the packages built into it, a package
//! is DESCRIBED_BY the lock file that lists it. The base image is a package by digest, the image its
//! DESCENDANT_OF, with the base's own SBOM referrer as an external reference.

use std::collections::HashMap;

use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

use crate::sbom::model::{EvidenceKind, Package, SbomInput};
use crate::sbom::purl;
use crate::sbom::values::{self, License};

const IMAGE: &str = "SPDXRef-Image";
const BASE: &str = "SPDXRef-BaseImage";

pub fn document(input: &SbomInput, packages: &[Package]) -> Value {
    let mut files = input.files.to_vec();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    let file_ids: HashMap<&str, String> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), format!("SPDXRef-File-{}", i + 1)))
        .collect();

    let sha1_of: HashMap<&str, [u8; 20]> =
        files.iter().map(|f| (f.path.as_str(), f.sha1)).collect();
    let mut relationships = vec![rel("SPDXRef-DOCUMENT", "DESCRIBES", IMAGE)];
    let mut extracted = Vec::new();
    let mut spdx_packages = vec![image_package(input, files.iter().map(|f| f.sha1))];
    if let Some(base) = input.base {
        let repo = purl::repository_of(&base.reference);
        let mut refs = vec![purl_ref(&purl::oci(repo, &base.digest.to_string()))];
        if let Some(sbom) = &base.sbom {
            refs.push(json!({
                "referenceCategory": "OTHER",
                "referenceType": "oci-sbom-referrer",
                "referenceLocator": format!("{repo}@{sbom}"),
                "comment": "the base image's own SBOM, an OCI referrer manifest of the base image",
            }));
        }
        spdx_packages.push(json!({
            "name": repo,
            "SPDXID": BASE,
            "versionInfo": base.digest.to_string(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": base.digest.hex()}],
            "externalRefs": refs,
            "comment": format!("the base image, as {}", base.reference),
        }));
        relationships.push(rel(IMAGE, "DESCENDANT_OF", BASE));
    }
    for (i, p) in packages.iter().enumerate() {
        let id = format!("SPDXRef-Package-{}", i + 1);
        let declared = match p.license.as_deref().map(values::license) {
            Some(License::Expression(e)) => e,
            Some(License::Text(text)) => {
                let lid = format!("LicenseRef-{}", extracted.len() + 1);
                extracted.push(json!({
                    "licenseId": lid,
                    "extractedText": text,
                    "comment": format!("the license as {} declares it", p.purl),
                }));
                lid
            }
            None => "NOASSERTION".into(),
        };
        // The files the package CONTAINS (its package.json, its RECORD's files): SPDX then wants the package's
        // files analyzed, with a verification code over them.
        let members: Vec<[u8; 20]> = p
            .evidence
            .iter()
            .filter(|e| e.kind == EvidenceKind::Member)
            .filter_map(|e| sha1_of.get(e.path.as_str()).copied())
            .collect();
        let mut pkg = json!({
            "name": p.name,
            "SPDXID": id,
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": !members.is_empty(),
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": declared,
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "LIBRARY",
            "externalRefs": [purl_ref(&p.purl)],
        });
        if let Some(v) = &p.version {
            pkg["versionInfo"] = json!(v);
        }
        if !members.is_empty() {
            pkg["packageVerificationCode"] = verification_code(members);
        }
        spdx_packages.push(pkg);
        relationships.push(rel(IMAGE, "CONTAINS", &id));
        for e in &p.evidence {
            let Some(fid) = file_ids.get(e.path.as_str()) else {
                continue;
            };
            relationships.push(match e.kind {
                EvidenceKind::Member => rel(&id, "CONTAINS", fid),
                EvidenceKind::Embedded => rel(fid, "CONTAINS", &id),
                EvidenceKind::Lockfile => rel(&id, "DESCRIBED_BY", fid),
            });
        }
    }

    let spdx_files: Vec<Value> = files
        .iter()
        .map(|f| {
            let id = &file_ids[f.path.as_str()];
            relationships.push(rel(IMAGE, "CONTAINS", id));
            json!({
                // SPDX file names are relative to the package root (the validators refuse a leading `/`).
                "fileName": format!(".{}", f.path),
                "SPDXID": id,
                "checksums": [
                    {"algorithm": "SHA1", "checksumValue": hex::encode(f.sha1)},
                    {"algorithm": "SHA256", "checksumValue": f.sha256.hex()},
                ],
                "licenseConcluded": "NOASSERTION",
                "copyrightText": "NOASSERTION",
            })
        })
        .collect();

    let mut doc = json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": format!("{}@{}", input.name, input.subject),
        "documentNamespace": namespace(input),
        "creationInfo": {
            "created": values::rfc3339(input.created),
            "creators": [format!("Tool: kiln-{}", input.tool_version)],
        },
        "packages": spdx_packages,
        "files": spdx_files,
        "relationships": relationships,
    });
    if !extracted.is_empty() {
        doc["hasExtractedLicensingInfos"] = Value::Array(extracted);
    }
    doc
}

fn image_package(input: &SbomInput, sha1s: impl Iterator<Item = [u8; 20]>) -> Value {
    json!({
        "name": input.name,
        "SPDXID": IMAGE,
        "versionInfo": input.subject.to_string(),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": true,
        "packageVerificationCode": verification_code(sha1s.collect()),
        "primaryPackagePurpose": "CONTAINER",
        "checksums": [{"algorithm": "SHA256", "checksumValue": input.subject.hex()}],
        "externalRefs": [purl_ref(&purl::oci(input.name, &input.subject.to_string()))],
        "comment": "the files of the layers kiln added; the base image's own files are in its SBOM",
    })
}

/// Unique per image and the same on every rebuild of it: the SPDX convention's spdx.org/spdxdocs prefix, the
/// repository name (for people) and a UUID derived from the image digest.
fn namespace(input: &SbomInput) -> String {
    let name: String = input
        .name
        .chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' | '/' => c,
            _ => '-',
        })
        .collect();
    format!(
        "https://spdx.org/spdxdocs/kiln/{name}-{}",
        values::uuid(input.subject, "spdx")
    )
}

/// SPDX 2.3 §7.9: the SHA-1 of the files' lower-case hex SHA-1s, sorted and concatenated.
fn verification_code(mut sha1s: Vec<[u8; 20]>) -> Value {
    sha1s.sort_unstable();
    let mut h = Sha1::new();
    for s in &sha1s {
        h.update(hex::encode(s).as_bytes());
    }
    json!({"packageVerificationCodeValue": hex::encode(h.finalize())})
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}

fn rel(a: &str, kind: &str, b: &str) -> Value {
    json!({"spdxElementId": a, "relationshipType": kind, "relatedSpdxElement": b})
}
