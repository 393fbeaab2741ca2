//! SPDX 2.3 JSON. The image is the described package (purpose CONTAINER, its purl by digest); every file kiln
//! added is a file element with SHA1 (required by 2.3) and SHA256; each found package is a package element with
//! its purl and declared license, tied to files by relationships: a package CONTAINS the files that belong to
//! it (its package.json, its dist-info RECORD), a binary or jar CONTAINS the packages built into it, a package
//! is DESCRIBED_BY the lock file that lists it. The base image is a package by digest, the image its
//! DESCENDANT_OF, with the base's own SBOM referrer as an external reference.

use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Value, json};
use sha1::{Digest as _, Sha1};

use crate::sbom::model::{self, EvidenceKind, FileRecord, Package, SbomInput};
use crate::sbom::purl;
use crate::sbom::values::{self, Hex, License};

/// An element id. Files and relationships are typed (not `serde_json::Value`s) and borrow from the input: an
/// image of 20 000 files is 40 000 elements, and building them as values would cost more memory and time than
/// detection itself.
#[derive(Clone, Copy)]
enum Id {
    Document,
    Image,
    Base,
    /// 1-based, in path order.
    File(usize),
    /// 1-based, in purl order.
    Package(usize),
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Id::Document => f.write_str("SPDXRef-DOCUMENT"),
            Id::Image => f.write_str("SPDXRef-Image"),
            Id::Base => f.write_str("SPDXRef-BaseImage"),
            Id::File(n) => write!(f, "SPDXRef-File-{n}"),
            Id::Package(n) => write!(f, "SPDXRef-Package-{n}"),
        }
    }
}

impl Serialize for Id {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// An SPDX file name: the image path with a leading `.` (SPDX file names are relative to the package root; the
/// validators refuse a leading `/`).
struct FileName<'a>(&'a str);

impl Serialize for FileName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!(".{}", self.0))
    }
}

#[derive(Serialize)]
struct Relationship {
    #[serde(rename = "spdxElementId")]
    a: Id,
    #[serde(rename = "relationshipType")]
    kind: &'static str,
    #[serde(rename = "relatedSpdxElement")]
    b: Id,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Checksum<'a> {
    algorithm: &'static str,
    checksum_value: Hex<'a>,
}

/// licenseConcluded and copyrightText are optional in SPDX 2.3 and would only say NOASSERTION here: left out,
/// 60 bytes a file.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct File<'a> {
    file_name: FileName<'a>,
    #[serde(rename = "SPDXID")]
    id: Id,
    checksums: [Checksum<'a>; 2],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    spdx_version: &'static str,
    data_license: &'static str,
    #[serde(rename = "SPDXID")]
    id: Id,
    name: String,
    document_namespace: String,
    creation_info: Value,
    packages: Vec<Value>,
    files: Vec<File<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    has_extracted_licensing_infos: Vec<Value>,
    relationships: Vec<Relationship>,
}

fn rel(a: Id, kind: &'static str, b: Id) -> Relationship {
    Relationship { a, kind, b }
}

/// The document, to be serialized as it is. `files` are the input's files as [`model::sorted`] gives them.
pub fn document<'a>(
    input: &SbomInput<'a>,
    files: &[&'a FileRecord],
    packages: &[Package],
) -> impl Serialize + 'a {
    let file_id = |path: &str| model::find(files, path).map(|i| (Id::File(i + 1), files[i].sha1));

    let mut relationships = vec![rel(Id::Document, "DESCRIBES", Id::Image)];
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
            "SPDXID": Id::Base.to_string(),
            "versionInfo": base.digest.to_string(),
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": false,
            "primaryPackagePurpose": "CONTAINER",
            "checksums": [{"algorithm": "SHA256", "checksumValue": base.digest.hex()}],
            "externalRefs": refs,
            "comment": format!("the base image, as {}", base.reference),
        }));
        relationships.push(rel(Id::Image, "DESCENDANT_OF", Id::Base));
    }
    for (i, p) in packages.iter().enumerate() {
        let id = Id::Package(i + 1);
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
            .filter_map(|e| file_id(&e.path).map(|(_, sha1)| sha1))
            .collect();
        let mut pkg = json!({
            "name": p.name,
            "SPDXID": id.to_string(),
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
        relationships.push(rel(Id::Image, "CONTAINS", id));
        for e in &p.evidence {
            let Some((fid, _)) = file_id(&e.path) else {
                continue;
            };
            relationships.push(match e.kind {
                EvidenceKind::Member => rel(id, "CONTAINS", fid),
                EvidenceKind::Embedded => rel(fid, "CONTAINS", id),
                EvidenceKind::Lockfile => rel(id, "DESCRIBED_BY", fid),
            });
        }
    }

    let spdx_files: Vec<File<'a>> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let id = Id::File(i + 1);
            relationships.push(rel(Id::Image, "CONTAINS", id));
            File {
                file_name: FileName(&f.path),
                id,
                checksums: [
                    Checksum {
                        algorithm: "SHA1",
                        checksum_value: Hex::Sha1(&f.sha1),
                    },
                    Checksum {
                        algorithm: "SHA256",
                        checksum_value: Hex::Str(f.sha256.hex()),
                    },
                ],
            }
        })
        .collect();

    Document {
        spdx_version: "SPDX-2.3",
        data_license: "CC0-1.0",
        id: Id::Document,
        name: format!("{}@{}", input.name, input.subject),
        document_namespace: namespace(input),
        creation_info: json!({
            "created": values::rfc3339(input.created),
            "creators": [format!("Tool: kiln-{}", input.tool_version)],
        }),
        packages: spdx_packages,
        files: spdx_files,
        has_extracted_licensing_infos: extracted,
        relationships,
    }
}

fn image_package(input: &SbomInput, sha1s: impl Iterator<Item = [u8; 20]>) -> Value {
    json!({
        "name": input.name,
        "SPDXID": Id::Image.to_string(),
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
    let mut buf = [0u8; 40];
    for s in &sha1s {
        // 20 bytes always encode into 40.
        hex::encode_to_slice(s, &mut buf).expect("40 hex digits");
        h.update(buf);
    }
    json!({"packageVerificationCodeValue": hex::encode(h.finalize())})
}

fn purl_ref(purl: &str) -> Value {
    json!({"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl})
}
