//! CycloneDX 1.6 JSON. The image is `metadata.component` (a container by digest); the base image is a container
//! component the image depends on, with its own SBOM referrer as a `bom` external reference; found packages are
//! library components with their purl, licenses and, as `evidence.occurrences`, the files they were found in;
//! every file kiln added is a file component with SHA-1 and SHA-256.

use serde_json::{Value, json};

use crate::sbom::model::{Ecosystem, Package, SbomInput};
use crate::sbom::purl;
use crate::sbom::values::{self, License};

const IMAGE: &str = "image";
const BASE: &str = "base-image";

pub fn document(input: &SbomInput, packages: &[Package]) -> Value {
    let mut components = Vec::new();
    let mut dependencies = Vec::new();
    if let Some(base) = input.base {
        let repo = purl::repository_of(&base.reference);
        let mut c = json!({
            "type": "container",
            "bom-ref": BASE,
            "name": repo,
            "version": base.digest.to_string(),
            "purl": purl::oci(repo, &base.digest.to_string()),
            "hashes": [{"alg": "SHA-256", "content": base.digest.hex()}],
            "description": format!("the base image, as {}", base.reference),
        });
        if let Some(sbom) = &base.sbom {
            c["externalReferences"] = json!([{
                "type": "bom",
                "url": format!("{repo}@{sbom}"),
                "comment": "the base image's own SBOM, an OCI referrer manifest of the base image",
            }]);
        }
        components.push(c);
        dependencies.push(json!({"ref": IMAGE, "dependsOn": [BASE]}));
    }
    components.extend(packages.iter().map(package));

    let mut files = input.files.to_vec();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files.dedup_by(|a, b| a.path == b.path);
    components.extend(files.iter().map(|f| {
        json!({
            "type": "file",
            "bom-ref": format!("file:{}", f.path),
            "name": f.path,
            "hashes": [
                {"alg": "SHA-1", "content": hex::encode(f.sha1)},
                {"alg": "SHA-256", "content": f.sha256.hex()},
            ],
        })
    }));

    let mut doc = json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", values::uuid(input.subject, "cyclonedx")),
        "version": 1,
        "metadata": {
            "timestamp": values::rfc3339(input.created),
            "tools": {"components": [{"type": "application", "name": "kiln", "version": input.tool_version}]},
            "component": {
                "type": "container",
                "bom-ref": IMAGE,
                "name": input.name,
                "version": input.subject.to_string(),
                "purl": purl::oci(input.name, &input.subject.to_string()),
                "hashes": [{"alg": "SHA-256", "content": input.subject.hex()}],
            },
        },
        "components": components,
    });
    if !dependencies.is_empty() {
        doc["dependencies"] = Value::Array(dependencies);
    }
    doc
}

fn package(p: &Package) -> Value {
    // CycloneDX names a package by group + name: the npm scope, the Maven groupId; a Go module's whole path is
    // its name.
    let (group, name) = match p.ecosystem {
        Ecosystem::Npm if p.name.starts_with('@') => {
            p.name.split_once('/').unwrap_or(("", &p.name))
        }
        Ecosystem::Maven => p.name.split_once(':').unwrap_or(("", &p.name)),
        _ => ("", p.name.as_str()),
    };
    let mut c = json!({"type": "library", "bom-ref": p.purl, "name": name, "purl": p.purl});
    if !group.is_empty() {
        c["group"] = json!(group);
    }
    if let Some(v) = &p.version {
        c["version"] = json!(v);
    }
    match p.license.as_deref().map(values::license) {
        Some(License::Expression(e)) => c["licenses"] = json!([{"expression": e}]),
        Some(License::Text(t)) => c["licenses"] = json!([{"license": {"name": t}}]),
        None => {}
    }
    let mut paths: Vec<&str> = p.evidence.iter().map(|e| e.path.as_str()).collect();
    paths.dedup();
    let occurrences: Vec<Value> = paths.iter().map(|path| json!({"location": path})).collect();
    if !occurrences.is_empty() {
        c["evidence"] = json!({"occurrences": occurrences});
    }
    c
}
