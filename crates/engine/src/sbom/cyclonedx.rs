//! CycloneDX 1.6 JSON. The image is `metadata.component` (a container by digest); the base image is a container
//! component the image depends on, with its own SBOM referrer as a `bom` external reference; found packages are
//! library components with their purl, licenses and, as `evidence.occurrences`, the files they were found in;
//! every file kiln added is a file component with SHA-1 and SHA-256.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::sbom::model::{Ecosystem, FileRecord, Package, SbomInput};
use crate::sbom::purl;
use crate::sbom::values::{self, Hex, License};

const IMAGE: &str = "image";
const BASE: &str = "base-image";

/// A component: the few package and base-image ones as values, the many file ones typed and borrowing from the
/// input (building 20 000 of them as values would cost more than detection).
#[derive(Serialize)]
#[serde(untagged)]
enum Component<'a> {
    Value(Value),
    File(FileComponent<'a>),
}

#[derive(Serialize)]
struct FileComponent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(rename = "bom-ref")]
    bom_ref: FileRef<'a>,
    name: &'a str,
    hashes: [Hash<'a>; 2],
}

/// `file:PATH`, written without an intermediate string.
struct FileRef<'a>(&'a str);

impl Serialize for FileRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("file:{}", self.0))
    }
}

#[derive(Serialize)]
struct Hash<'a> {
    alg: &'static str,
    content: Hex<'a>,
}

#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "bomFormat")]
    bom_format: &'static str,
    #[serde(rename = "specVersion")]
    spec_version: &'static str,
    #[serde(rename = "serialNumber")]
    serial_number: String,
    version: u32,
    metadata: Value,
    components: Vec<Component<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dependencies: Vec<Value>,
}

/// The document, to be serialized as it is.
/// `files` are the input's files as `model::sorted` gives them.
pub fn document<'a>(
    input: &SbomInput<'a>,
    files: &[&'a FileRecord],
    packages: &[Package],
) -> impl Serialize + 'a {
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
        components.push(Component::Value(c));
        dependencies.push(json!({"ref": IMAGE, "dependsOn": [BASE]}));
    }
    components.extend(packages.iter().map(|p| Component::Value(package(p))));

    components.extend(files.iter().map(|&f| {
        Component::File(FileComponent {
            kind: "file",
            bom_ref: FileRef(&f.path),
            name: &f.path,
            hashes: [
                Hash {
                    alg: "SHA-1",
                    content: Hex::Sha1(&f.sha1),
                },
                Hash {
                    alg: "SHA-256",
                    content: Hex::Str(f.sha256.hex()),
                },
            ],
        })
    }));

    Document {
        bom_format: "CycloneDX",
        spec_version: "1.6",
        serial_number: format!("urn:uuid:{}", values::uuid(input.subject, "cyclonedx")),
        version: 1,
        metadata: json!({
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
        }),
        components,
        dependencies,
    }
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
